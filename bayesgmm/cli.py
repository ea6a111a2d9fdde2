"""The ``bayesgmm`` command: fit, choose K, predict, impute and a demo, from CSV files.

Examples
--------
Fit three components, write the results to ``points-em-k3/`` and print a
summary::

    bayesgmm fit points.csv --components 3

Compare K = 1 .. 8 by BIC::

    bayesgmm choose-k points.csv --max-components 8

Apply the saved model to new rows::

    bayesgmm predict points-em-k3/model.npz new.csv

Fit a table with empty cells, and fill them in::

    bayesgmm fit holes.csv -k 3 --missing marginalize --out fit3
    bayesgmm impute fit3/model.npz holes.csv --out completed.csv

Every problem with the input is reported on one line that names the file, the
row and the column, with exit status 1 (2 for a mistyped command line); no
traceback is shown unless ``--debug`` is given. Files that already exist are
never replaced unless ``--force`` is given.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings

from bayesgmm._choose_k import command_choose_k
from bayesgmm._commands import (
    EXIT_ERROR,
    PROG,
    CLIError,
    command_demo,
    command_fit,
)
from bayesgmm._commands_predict import command_impute, command_predict
from bayesgmm._version import __version__

__all__ = ["main", "build_parser"]

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")
# mclust's fourteen (bayesgmm.structures.MCLUST_NAMES; this module does not import JAX).
MCLUST_TYPES = (
    "EII", "VII", "EEI", "VEI", "EVI", "VVI", "EEE", "VEE", "EVE", "VVE", "EEV", "VEV", "EVV", "VVV",
)
ONE_FEATURE_TYPES = ("E", "V")  # mclust's names for one feature
METHODS = ("em", "mcmc")


# --------------------------------------------------------------------------
# Argument parsing
# --------------------------------------------------------------------------


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return value


def _structure_list(text: str) -> list[str] | str:
    """``all`` (kept as it is: mclust's grid for the data's dimension) or a list of covariance types."""
    if text == "all":
        return "all"
    names = [name.strip() for name in text.split(",")]
    unknown = [name for name in names
               if name not in COVARIANCE_TYPES + MCLUST_TYPES + ONE_FEATURE_TYPES]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not 'all' or a comma-separated list of "
            f"{', '.join(COVARIANCE_TYPES + MCLUST_TYPES)}"
        )
    if len(set(names)) != len(names):
        raise argparse.ArgumentTypeError(f"{text!r} names a covariance type twice")
    return names


def _nonnegative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 0")
    return value


def _delimiter(text: str) -> str:
    named = {"tab": "\t", "\\t": "\t", "comma": ",", "semicolon": ";"}
    value = named.get(text.lower(), text)
    if len(value) != 1 or value in "\"\r\n":
        raise argparse.ArgumentTypeError(
            f"{text!r} is not one character (a quote and line breaks excluded); 'tab' "
            "names a tab")
    return value


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Keep the hand-wrapped descriptions; show defaults that say something."""

    def _get_help_string(self, action):
        text = action.help or ""
        default = action.default
        silent = default is None or default is False or default is argparse.SUPPRESS
        if not silent and "(default" not in text and action.option_strings:
            text += " (default: %(default)s)"
        return text


def _add_data_arguments(parser, *, drop_missing: bool = True) -> None:
    parser.add_argument("data", metavar="DATA.csv",
                        help="CSV file of numbers, one row per point; a header row is optional")
    parser.add_argument("--columns", metavar="COLS", default=None,
                        help="comma-separated columns to use, by header name or 1-based "
                             "number (default: all columns)")
    parser.add_argument("--delimiter", type=_delimiter, metavar="CHAR", default=None,
                        help="field separator, one character ('tab' for a tab) (default: "
                             "a comma, semicolon or tab, detected from the first rows)")
    if drop_missing:
        parser.add_argument("--drop-missing", action="store_true",
                            help="drop rows with a missing value (empty, NA, NaN, ...) in a "
                                 "used column, and say how many, instead of stopping")


def _add_missing_argument(parser, *, what: str, default: str) -> None:
    parser.add_argument("--missing", choices=("raise", "marginalize"), default=None,
                        help="missing values (empty, NA, NaN, ...) in a used column: 'raise' "
                             "stops with an error naming the row and column; 'marginalize' "
                             f"reads them as missing at random and {what}; not with "
                             f"--drop-missing (default: {default})")


def _add_model_arguments(parser, *, components: bool, grid: bool = False) -> None:
    if components:
        parser.add_argument("-k", "--components", type=_positive_int, required=True, metavar="K",
                            help="number of mixture components")
    parser.add_argument("--method", choices=METHODS, default="em",
                        help="em: maximum likelihood by EM (fast); mcmc: Bayesian posterior "
                             "by NUTS, with credible intervals (slower)")
    if grid:
        parser.add_argument("--covariance-type", type=_structure_list, default=["full"],
                            metavar="TYPES",
                            help="shapes of the component covariances to compare: 'all' "
                                 "(mclust's fourteen) or a comma-separated list of "
                                 f"{', '.join(COVARIANCE_TYPES)} or mclust's names "
                                 "(EM only; MCMC compares one)")
    else:
        parser.add_argument("--covariance-type",
                            choices=COVARIANCE_TYPES + MCLUST_TYPES + ONE_FEATURE_TYPES,
                            default="full", metavar="TYPE",
                            help=f"shape of the component covariances: {', '.join(COVARIANCE_TYPES)}"
                                 " or one of mclust's fourteen (EII ... VVV; MCMC: the first "
                                 "four and VVV, EEE, VVI, VII)")
    parser.add_argument("--seed", type=_nonnegative_int, metavar="N", default=0,
                        help="random seed; the same seed gives the same fit")
    em = parser.add_argument_group("EM options")
    em.add_argument("--n-init", type=_positive_int, metavar="N", default=1,
                    help="number of EM restarts; the best is kept")
    em.add_argument("--max-iter", type=_positive_int, metavar="N", default=100,
                    help="maximal number of EM iterations per restart")
    em.add_argument("--prior", choices=("none", "default"), default="none",
                    help="'default': MAP-EM with mclust's conjugate prior (priorControl()); "
                         "not for VEE, EVE, VVE, EVV, which 'all' then leaves out")
    mcmc = parser.add_argument_group("MCMC options (with --method mcmc)")
    mcmc.add_argument("--num-samples", type=_positive_int, metavar="N", default=500,
                      help="posterior draws kept per chain")
    mcmc.add_argument("--num-warmup", type=_positive_int, metavar="N", default=500,
                      help="warm-up (tuning) steps per chain")
    mcmc.add_argument("--num-chains", type=_positive_int, metavar="N", default=4,
                      help="number of chains")
    mcmc.add_argument("--no-progress", action="store_true",
                      help="no progress bar (it is shown only on a terminal anyway)")


def _add_output_arguments(parser, *, default_help: str) -> None:
    parser.add_argument("--out", metavar="DIR", default=None, help=default_help)
    parser.add_argument("--force", action="store_true",
                        help="replace output files that already exist")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``bayesgmm`` command (all sub-commands)."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        formatter_class=_Formatter,
        description=(
            "Fit Gaussian mixture models to the rows of a CSV file, by EM (maximum\n"
            "likelihood) or by MCMC (Bayesian posterior), choose the number of\n"
            "components, apply a saved model to new data, and fill in missing values."
        ),
        epilog=(
            "examples:\n"
            "  bayesgmm demo --out demo\n"
            "  bayesgmm fit points.csv --components 3\n"
            "  bayesgmm fit points.csv -k 3 --columns x,y --method mcmc --out fit3\n"
            "  bayesgmm choose-k points.csv --max-components 8\n"
            "  bayesgmm predict fit3/model.nc new_points.csv --out new_labels.csv\n"
            "  bayesgmm fit holes.csv -k 3 --missing marginalize --out fit3h\n"
            "  bayesgmm impute fit3h/model.npz holes.csv --out completed.csv\n\n"
            "Run 'bayesgmm COMMAND --help' for the options of a command."
        ),
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--debug", action="store_true",
                        help="show the full traceback of an error")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    fit = commands.add_parser(
        "fit", formatter_class=_Formatter, help="fit a mixture and write labels, parameters, model and plot",
        description=(
            "Fit a Gaussian mixture to DATA.csv and write into --out:\n"
            "  labels.csv    the most probable component of each row and the probability\n"
            "                of every component (for MCMC also their 90% credible intervals)\n"
            "  params.json   weights, means and covariances, with the fit statistics\n"
            "  model.npz     the model, for 'bayesgmm predict' and bayesgmm.load(); for MCMC\n"
            "                model.nc, which is also the run's ArviZ InferenceData\n"
            "                (arviz.from_netcdf)\n"
            "  plot.png      the components over the data and the uncertainty map\n"
            "  trace.png     (MCMC) ArviZ trace plot of the weights and means\n"
            "and print a short summary."
        ),
    )
    _add_data_arguments(fit)
    _add_missing_argument(fit, what="fits each row's marginal on its observed columns (the model "
                                    "keeps missing='marginalize')", default="raise")
    _add_model_arguments(fit, components=True)
    _add_output_arguments(fit, default_help="output directory (default: DATA-METHOD-kK in the "
                                            "current directory)")
    fit.add_argument("--no-plot", action="store_true", help="do not draw plot.png")

    choose = commands.add_parser(
        "choose-k", formatter_class=_Formatter,
        help="compare numbers of components (BIC for EM, LOO for MCMC)",
        description=(
            "Fit K = --min-components .. --max-components and print a table of the\n"
            "criterion, marking the chosen K: the lowest BIC (or ICL, AIC) for EM, over\n"
            "every covariance type of --covariance-type (e.g. 'all'; fits whose\n"
            "covariance collapsed, or whose components are too small for it, are\n"
            "marked degenerate and never chosen); for MCMC the\n"
            "fewest components whose expected log predictive density (PSIS-LOO,\n"
            "arviz.compare) is within 2 dse of the highest (the one-standard-error\n"
            "rule: smaller differences are noise). Warnings name the K of their fit.\n"
            "With --out, also write the table (choose_k.csv) and its plot (choose_k.png)."
        ),
    )
    _add_data_arguments(choose)
    choose.add_argument("--max-components", type=_positive_int, default=8, metavar="K",
                        help="largest number of components to try")
    choose.add_argument("--min-components", type=_positive_int, default=1, metavar="K",
                        help="smallest number of components to try")
    choose.add_argument("--criterion", choices=("bic", "icl", "aic"), default="bic",
                        help="criterion that chooses K with --method em")
    _add_model_arguments(choose, components=False, grid=True)
    _add_missing_argument(choose, what="fits and scores every candidate by its observed columns' "
                                       "likelihood", default="raise")
    _add_output_arguments(choose, default_help="directory for choose_k.csv and choose_k.png "
                                               "(default: print only)")

    predict = commands.add_parser(
        "predict", formatter_class=_Formatter, help="apply a saved model to new data",
        description=(
            "Apply a model saved by 'bayesgmm fit' (or bayesgmm.save) to the rows of\n"
            "DATA.csv and write the labels and probabilities as CSV, to standard output\n"
            "or to --out. A model fitted on named columns is applied to the columns of\n"
            "those names (in any order); a file without them is refused, and --columns\n"
            "maps the file's columns onto the model's, in the model's order. A row with\n"
            "missing values is classified from its observed columns with --missing\n"
            "marginalize, or when the model was fitted with it; otherwise it is an error."
        ),
    )
    predict.add_argument("model", metavar="MODEL", help="model file (model.npz or model.nc)")
    _add_data_arguments(predict)
    _add_missing_argument(predict, what="uses each row's marginal on its observed columns",
                          default="the model's setting: raise unless it was fitted with "
                                  "--missing marginalize")
    predict.add_argument("--out", metavar="FILE.csv", default=None,
                         help="write the CSV here instead of to standard output")
    predict.add_argument("--force", action="store_true", help="replace --out if it exists")

    impute = commands.add_parser(
        "impute", formatter_class=_Formatter, help="fill in the missing values of a CSV file with a saved model",
        description=(
            "Write DATA.csv, to standard output or to --out, with each missing value\n"
            "(empty, NA, NaN, ...) of the model's columns replaced by its conditional\n"
            "mean given the row's observed columns under a model saved by 'bayesgmm fit':\n"
            "for EM the mixture's (GaussianMixture.impute), for MCMC the posterior mean\n"
            "(the average of one imputation per posterior draw). The header, the other\n"
            "columns, the observed cells and the delimiter are kept. With --draws M,\n"
            "M completed copies (multiple imputation: draws from the conditional\n"
            "distribution, for MCMC of M posterior draws) are written one after the\n"
            "other, each row led by a column 'draw' (1 .. M). The model's columns are\n"
            "found as in 'bayesgmm predict'."
        ),
    )
    impute.add_argument("model", metavar="MODEL", help="model file (model.npz or model.nc)")
    _add_data_arguments(impute, drop_missing=False)
    impute.add_argument("--draws", type=_positive_int, metavar="M", default=None,
                        help="write M completed copies drawn from the conditional distribution "
                             "instead of the conditional means")
    impute.add_argument("--seed", "--random-state", dest="seed", type=_nonnegative_int,
                        metavar="N", default=0,
                        help="random seed of the draws (and of MCMC's posterior mean)")
    impute.add_argument("--out", metavar="FILE.csv", default=None,
                        help="write the CSV here instead of to standard output")
    impute.add_argument("--force", action="store_true", help="replace --out if it exists")

    demo = commands.add_parser(
        "demo", formatter_class=_Formatter, help="the source document's example, end to end",
        description=(
            "The source document's example: two blobs of 800 points, a two-component\n"
            "mixture fitted to 80% of them, and the accuracy of its probabilities on\n"
            "the other 20%. With --out, also write the data, the model, the labels\n"
            "and the plot there, ready for 'bayesgmm fit' and 'bayesgmm predict'."
        ),
    )
    _add_output_arguments(demo, default_help="directory for the demo's files (default: print only)")
    return parser


COMMANDS = {
    "fit": command_fit,
    "choose-k": command_choose_k,
    "predict": command_predict,
    "impute": command_impute,
    "demo": command_demo,
}


# --------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------


def _show_warning(message, category, filename, lineno, file=None, line=None):
    """Warnings as one line on standard error, without source lines."""
    text = str(message).splitlines()[0] if str(message) else ""
    print(f"{PROG}: warning: {category.__name__}: {text}", file=sys.stderr, flush=True)


def main(argv=None) -> int:
    """Run the ``bayesgmm`` command.

    Parameters
    ----------
    argv : list of str, optional
        The arguments after the program name; ``sys.argv[1:]`` by default.

    Returns
    -------
    status : int
        0 on success, 1 on an error in the data or the files, 130 when
        interrupted. A mistyped command line exits with status 2 (argparse).

    Examples
    --------
    >>> main(["demo"])  # doctest: +ELLIPSIS
    The source document's example: ...
      Accuracy = 97.66%   (the document's metric: mean probability of the true class)
    ...
    0
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    with warnings.catch_warnings():
        warnings.showwarning = _show_warning
        try:
            return COMMANDS[args.command](args)
        except BrokenPipeError:
            # The reader of standard output (e.g. `| head`) has gone: stop quietly.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            return EXIT_ERROR
        except KeyboardInterrupt:
            print(f"{PROG}: interrupted", file=sys.stderr)
            return 130
        except (CLIError, ValueError, OSError) as err:
            if args.debug:
                raise
            message = " ".join(str(err).split()) or type(err).__name__
            print(f"{PROG}: error: {message}", file=sys.stderr)
            return EXIT_ERROR
        except Exception as err:  # noqa: BLE001 - a bug, still one line unless --debug
            if args.debug:
                raise
            print(f"{PROG}: internal error: {type(err).__name__}: {err} (run again with "
                  "--debug for the traceback, and please report it)", file=sys.stderr)
            return EXIT_ERROR


def run() -> None:
    """The console script: :func:`main`, then leave the process at once.

    Once the command has written its files and its output, the process ends
    with ``os._exit`` instead of the interpreter's shutdown: under load,
    XLA's runtime can abort (``terminate called without an active
    exception``, status -6) while the interpreter tears it down, after the
    work is done, and a script that checks the status would see a failure.
    Standard output and error are flushed first; every file the commands
    write is closed before they return.
    """
    try:
        status = main()
    except SystemExit as exit_:  # argparse's status 2, --help's and --version's 0
        status = exit_.code
        if status is None:
            status = 0
        elif not isinstance(status, int):
            print(status, file=sys.stderr)
            status = 1
    try:
        sys.stdout.flush()
    except (BrokenPipeError, ValueError):
        pass
    try:
        sys.stderr.flush()
    except (BrokenPipeError, ValueError):
        pass
    os._exit(status)


if __name__ == "__main__":  # pragma: no cover
    run()
