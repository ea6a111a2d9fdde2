"""The work of the ``bayesgmm`` subcommands fit and demo, and what all subcommands share.

choose-k is in :mod:`bayesgmm._choose_k`, predict and impute in :mod:`bayesgmm._commands_predict`;
the parser and ``main`` are in :mod:`bayesgmm.cli`.

Each ``command_*`` takes the parsed arguments and returns the exit status;
a problem with the input raises :class:`CLIError`, which ``main`` prints on
one line.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np

PROG = "bayesgmm"

EXIT_ERROR = 1

INTERVAL_PROB = 0.9

# Most (draw, row, component) probabilities held at once for credible intervals.
INTERVAL_ELEMENTS = 1 << 23

# What the CSV reader's message about a missing cell suggests in fit and predict.
MARGINALIZE_REMEDY = ("pass --missing marginalize to treat it as missing at random, or drop "
                      "such rows with --drop-missing")


class CLIError(Exception):
    """A problem to report to the user in one line (no traceback)."""


# --------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------


def _echo(message: str = "") -> None:
    print(message, flush=True)


def _check_missing_options(args) -> None:
    """Refuse --missing with --drop-missing, before any work: they say opposite things."""
    if getattr(args, "missing", None) is not None and args.drop_missing:
        raise CLIError(
            f"--missing {args.missing} and --drop-missing cannot be combined: --missing "
            "marginalize keeps the rows with missing values, --drop-missing leaves them out; "
            "choose one."
        )


def _read_table(args, columns, keep_missing: bool = False):
    """The selected columns of ``args.data``; dropped rows are reported on standard error.

    With ``keep_missing``, missing cells are read as NaN (``--missing marginalize``).
    """
    from bayesgmm._io import DROP_REMEDY, read_csv

    remedy = MARGINALIZE_REMEDY if hasattr(args, "missing") else DROP_REMEDY
    table = read_csv(args.data, columns=columns, delimiter=args.delimiter,
                     drop_missing=args.drop_missing, keep_missing=keep_missing,
                     missing_remedy=remedy)
    if len(table.dropped):
        shown = ", ".join(map(str, table.dropped[:10])) + (", ..." if len(table.dropped) > 10 else "")
        # Standard error: predict's standard output is the labels CSV.
        print(f"{PROG}: dropped {len(table.dropped)} of {len(table.dropped) + len(table.lines)} "
              f"data row(s) with a missing value (line(s) {shown}).", file=sys.stderr, flush=True)
    return table


def _check_writable(directory: Path) -> None:
    """Refuse, before any work, an output directory where no file can be written.

    A directory that does not exist yet is created later, so its nearest
    existing ancestor is tried instead. The test is a real (anonymous) file,
    which also catches read-only file systems and immutable directories.
    """
    existing = directory
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise CLIError(f"{existing}: exists and is not a directory; choose another --out.")
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as err:
        raise CLIError(f"{existing}: cannot write there ({err.strerror or err}); choose "
                       "another --out.") from None


def _prepare_outputs(directory: Path, names, force: bool) -> dict:
    """Paths of the output files; refuse (before any work) to replace existing ones."""
    if directory.exists() and not directory.is_dir():
        raise CLIError(f"{directory}: exists and is not a directory; choose another --out.")
    _check_writable(directory)
    paths = {name: directory / name for name in names}
    existing = [str(path) for path in paths.values() if path.exists()]
    if existing and not force:
        raise CLIError(
            f"would replace {', '.join(existing)}; pass --force to replace, or choose "
            "another --out."
        )
    return paths


def _make_directory(directory: Path) -> None:
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise CLIError(f"{directory}: cannot create the output directory ({err.strerror}).") from None


def _estimator(args, n_components: int):
    if args.method == "mcmc":
        return _bayesian_estimator(args, n_components)
    from bayesgmm import GaussianMixture

    return GaussianMixture(
        n_components,
        covariance_type=args.covariance_type,
        n_init=args.n_init,
        max_iter=args.max_iter,
        random_state=args.seed,
        prior=em_prior(args),
        missing=_missing(args),
    )


def _missing(args) -> str:
    """The estimators' ``missing`` of --missing (not given: 'raise')."""
    return getattr(args, "missing", None) or "raise"


def em_prior(args):
    """The ``prior`` of --prior ('none': None)."""
    return None if getattr(args, "prior", "none") == "none" else args.prior


def _bayesian_estimator(args, n_components: int):
    if em_prior(args) is not None:
        raise CLIError("--prior applies to --method em only.")
    try:
        from bayesgmm.bayes.estimator import BayesianGaussianMixture
    except ImportError as err:
        raise CLIError(f"--method mcmc is not available in this installation ({err}).") from None
    return BayesianGaussianMixture(
        n_components,
        covariance_type=args.covariance_type,
        num_samples=args.num_samples,
        num_warmup=args.num_warmup,
        num_chains=args.num_chains,
        random_state=args.seed,
        progress_bar=not args.no_progress,
        missing=_missing(args),
    )


def _named(X, names):
    """``X`` as a DataFrame of the columns ``names`` (or ``X`` itself when None).

    The estimators record and check feature names as scikit-learn does, so a
    model fitted on named columns is given them again at every call.
    """
    if names is None:
        return X
    import pandas as pd

    return pd.DataFrame(X, columns=[str(name) for name in names], copy=False)


def _intervals(model, data):
    """90% credible intervals of the probabilities, in chunks of rows to bound memory."""
    n_draws = int(np.shape(model.posterior_params_.weights)[0])
    chunk = max(1, INTERVAL_ELEMENTS // (n_draws * len(model.weights_)))
    rows = data.iloc if hasattr(data, "iloc") else data
    parts = [model.predict_proba_interval(rows[start:start + chunk], prob=INTERVAL_PROB)
             for start in range(0, len(data), chunk)]
    return (np.concatenate([lower for lower, _ in parts]),
            np.concatenate([upper for _, upper in parts]))


def _check_enough_rows(table, n_components: int, path: str) -> None:
    if table.X.shape[0] < max(n_components, 2):
        raise CLIError(
            f"{path}: {table.X.shape[0]} data row(s) cannot support {n_components} "
            "component(s); use fewer components or more rows."
        )


def _probability_rows(lines, proba, intervals=None):
    """Rows of labels.csv: line, label, p_k ... (and the interval bounds)."""
    labels = proba.argmax(axis=1)
    n_components = proba.shape[1]
    header = ["line", "label"] + [f"p_{k}" for k in range(n_components)]
    columns = [proba]
    if intervals is not None:
        lower, upper = intervals
        header += [f"p_{k}_low" for k in range(n_components)]
        header += [f"p_{k}_high" for k in range(n_components)]
        columns += [lower, upper]
    values = np.hstack(columns)
    rows = ([int(line), int(label)] + list(row) for line, label, row in zip(lines, labels, values))
    return header, rows


def _as_json(value):
    return np.asarray(value, dtype=float).tolist()


def _format_vector(vector) -> str:
    return "(" + ", ".join(f"{value:.3g}" for value in vector) + ")"


def _save_trace(model, path: Path) -> None:
    """ArviZ trace plot of the weights and means, one colour per component."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from bayesgmm import plot

    axes = plot.trace(model, var_names=["weights", "means"])
    figure = axes.ravel()[0].figure
    figure.savefig(path, dpi=90, bbox_inches="tight")
    plt.close(figure)


def _save_plot(model, X, columns, path: Path, suptitle: str, kind: str = "uncertainty") -> None:
    """The overview figure (ellipses and probability map), or a density for one column."""
    import matplotlib

    matplotlib.use("Agg")  # files only: never open a window from the command line
    import matplotlib.pyplot as plt

    from bayesgmm import plot

    with warnings.catch_warnings():
        # The plots evaluate the model on grids of the columns it was fitted on, in
        # its order, as arrays: scikit-learn's note about missing names is moot.
        warnings.filterwarnings("ignore", message="X does not have valid feature names")
        if X.shape[1] < 2:
            fig, ax = plt.subplots(figsize=(6, 4), layout="constrained")
            grid = np.linspace(X.min(), X.max(), 400)[:, None]
            ax.hist(X[:, 0], bins=40, density=True, color="0.8", label="data")
            ax.plot(grid[:, 0], np.exp(model.score_samples(grid)), color="black",
                    label="mixture density")
            ax.set_xlabel(columns[0])
            ax.legend()
            ax.set_title(suptitle)
        else:
            names = columns if X.shape[1] == 2 else None
            fig = plot.overview(model, X, kind=kind, feature_names=names, suptitle=suptitle)
    fig.savefig(path, dpi=110)
    plt.close(fig)


# --------------------------------------------------------------------------
# Commands
# --------------------------------------------------------------------------


def _fit_summary_em(model, X) -> tuple[list[str], dict]:
    n_samples = len(X)
    total = float(np.sum(model.score_samples(X)))
    bic, aic = float(model.bic(X)), float(model.aic(X))
    status = (f"converged after {model.n_iter_} iteration(s)" if model.converged_
              else f"did NOT converge in {model.n_iter_} iterations (try --max-iter)")
    lines = [
        f"  EM {status}",
        f"  log-likelihood {total:.4f} ({total / n_samples:.4f} per row)",
        f"  BIC {bic:.4f}   AIC {aic:.4f}   (lower is better)",
    ]
    stats = {"log_likelihood": total, "bic": bic, "aic": aic, "converged": bool(model.converged_),
             "n_iter": int(model.n_iter_)}
    return lines, stats


def _component_lines(model, labels) -> list[str]:
    counts = np.bincount(labels, minlength=len(model.weights_))
    lines = [f"  {'component':>9}  {'weight':>6}  {'rows':>6}  mean"]
    for k, (weight, mean) in enumerate(zip(model.weights_, model.means_)):
        lines.append(f"  {k:>9}  {weight:>6.3f}  {counts[k]:>6}  {_format_vector(mean)}")
    return lines


def command_fit(args) -> int:
    """``bayesgmm fit``: fit, write the outputs, print a summary. Returns the exit status."""
    _check_missing_options(args)
    method = args.method
    directory = Path(args.out) if args.out else Path(f"{Path(args.data).stem}-{method}-k{args.components}")
    model_name = "model.nc" if method == "mcmc" else "model.npz"
    plots = [] if args.no_plot else ["plot.png"] + (["trace.png"] if method == "mcmc" else [])
    names = ["labels.csv", "params.json", model_name] + plots
    paths = _prepare_outputs(directory, names, args.force)
    table = _read_table(args, args.columns, keep_missing=_missing(args) == "marginalize")
    X = table.X
    _check_enough_rows(table, args.components, args.data)
    feature_names = table.columns if table.has_header else None
    data = _named(X, feature_names)
    model = _estimator(args, args.components)
    model.fit(data)
    if feature_names is not None:
        # What 'bayesgmm predict' matches the new file's header against.
        model.feature_names_in_ = np.asarray(feature_names, dtype=object)

    proba = np.asarray(model.predict_proba(data))
    labels = proba.argmax(axis=1)
    summary = [
        f"Fitted {args.components} component(s) ({args.covariance_type} covariances) by "
        f"{method.upper()} to {X.shape[0]} rows x {X.shape[1]} column(s) "
        f"({', '.join(table.columns)}) of {args.data}"
    ]
    intervals = None
    if method == "mcmc":
        fit_lines, stats = _fit_summary_mcmc(model, data)
        intervals = _intervals(model, data)
    else:
        fit_lines, stats = _fit_summary_em(model, data)
    holes = np.isnan(X)
    if holes.any():
        fit_lines.insert(0, f"  {int(holes.sum())} missing value(s) in {int(holes.any(axis=1).sum())} "
                            "row(s), marginalized (missing at random)")
    summary += fit_lines + _component_lines(model, labels)
    n_uncertain = int(np.sum(proba.max(axis=1) < 0.9))
    summary.append(f"  {n_uncertain} row(s) ({100 * n_uncertain / X.shape[0]:.1f}%) are uncertain "
                   "(largest component probability < 0.9)")

    from bayesgmm._io import write_csv
    from bayesgmm._version import __version__
    from bayesgmm.persistence import save

    _make_directory(directory)
    header, rows = _probability_rows(table.lines, proba, intervals)
    write_csv(paths["labels.csv"], header, rows)
    params = {
        "bayesgmm_version": __version__,
        "method": method,
        "data": str(args.data),
        "columns": table.columns,
        "n_samples": int(X.shape[0]),
        "n_components": int(args.components),
        "covariance_type": args.covariance_type,
        "missing": model.missing,
        "n_missing_values": int(holes.sum()),
        "weights": _as_json(model.weights_),
        "means": _as_json(model.means_),
        "covariances": _as_json(model.covariances_),
        **stats,
    }
    paths["params.json"].write_text(json.dumps(params, indent=2) + "\n")
    save(model, paths[model_name])
    complete = ~holes.any(axis=1)
    if not args.no_plot:
        if complete.sum() < 2:
            # The plot shows points: rows with a hole have no place on it.
            names.remove("plot.png")
            summary.append("  (no plot.png: fewer than two rows without a missing value to draw)")
        else:
            shown = "" if complete.all() else f" ({int(complete.sum())} complete rows shown)"
            _save_plot(model, X[complete], table.columns, paths["plot.png"],
                       f"{Path(args.data).name}: {args.components} components by {method.upper()}{shown}",
                       kind="interval" if method == "mcmc" else "uncertainty")
        if method == "mcmc":
            _save_trace(model, paths["trace.png"])
    summary.append(f"Wrote {directory}{os.sep}: {', '.join(names)}")
    summary.append(f"Apply the model to new rows with: {PROG} predict {paths[model_name]} NEW.csv")
    _echo("\n".join(summary))
    return 0


def _loo(idata):
    import arviz as az

    return az.loo(idata)


def _fit_summary_mcmc(model, X) -> tuple[list[str], dict]:
    n_samples = len(X)
    total = float(np.sum(model.score_samples(X)))
    loo = _loo(model.inference_data_)
    summary = model.summary()
    divergences = int(np.asarray(model.inference_data_.sample_stats["diverging"]).sum())
    max_rhat = float(np.nanmax(summary["r_hat"]))
    min_ess = float(np.nanmin(summary["ess_bulk"]))
    lines = [
        f"  NUTS: {model.num_chains} chain(s) x {model.num_samples} draws after "
        f"{model.num_warmup} warm-up steps; {divergences} divergence(s), max r_hat "
        f"{max_rhat:.3f}, min bulk ESS {min_ess:.0f}",
        f"  log predictive density {total:.4f} ({total / n_samples:.4f} per row)",
        f"  PSIS-LOO elpd {loo.elpd_loo:.4f} +/- {loo.se:.4f} (p_loo {loo.p_loo:.2f}; higher "
        "is better)",
        "  (weights and means below are posterior means)",
    ]
    stats = {
        "log_predictive_density": total, "elpd_loo": float(loo.elpd_loo),
        "elpd_loo_se": float(loo.se), "p_loo": float(loo.p_loo), "divergences": divergences,
        "max_r_hat": max_rhat, "min_ess_bulk": min_ess, "num_chains": int(model.num_chains),
        "num_samples": int(model.num_samples), "num_warmup": int(model.num_warmup),
        "interval_prob": INTERVAL_PROB,
    }
    return lines, stats


def command_demo(args) -> int:
    """``bayesgmm demo``: the source document's example. Returns the exit status."""
    directory = Path(args.out) if args.out else None
    names = ["document_train.csv", "document_test.csv", "model.npz", "labels.csv", "plot.png"]
    paths = _prepare_outputs(directory, names, args.force) if directory else None

    from bayesgmm import GaussianMixture
    from bayesgmm._io import write_csv
    from bayesgmm.datasets import document_data
    from bayesgmm.metrics import hard_accuracy, soft_accuracy
    from bayesgmm.persistence import save

    XA, XB, yA, yB = document_data()
    model = GaussianMixture(n_components=2, random_state=0).fit(XA)
    proba = model.predict_proba(XB)
    lines = [
        "The source document's example: make_blobs(n_samples=800, centers=2, random_state=12),",
        f"a two-component mixture fitted by EM to {len(XA)} points, tested on the other {len(XB)}.",
        f"  weights {_format_vector(model.weights_)}",
        *(f"  mean {k}  {_format_vector(mean)}" for k, mean in enumerate(model.means_)),
        f"  Accuracy = {np.round(soft_accuracy(yB, proba), 2)}%   (the document's metric: mean "
        "probability of the true class)",
        f"  Hard accuracy = {np.round(hard_accuracy(yB, proba), 2)}%",
        f"  {int(np.sum(proba.max(axis=1) < 0.9))} test point(s) lie near the boundary "
        "(largest probability < 0.9)",
    ]
    if directory is None:
        lines.append(f"Run '{PROG} demo --out DIR' to write the data, model, labels and plot.")
        _echo("\n".join(lines))
        return 0
    _make_directory(directory)
    header = ["x0", "x1", "blob"]
    write_csv(paths["document_train.csv"], header, (list(x) + [int(y)] for x, y in zip(XA, yA)))
    write_csv(paths["document_test.csv"], header, (list(x) + [int(y)] for x, y in zip(XB, yB)))
    model.feature_names_in_ = np.asarray(["x0", "x1"], dtype=object)
    save(model, paths["model.npz"])
    header, rows = _probability_rows(np.arange(2, len(XB) + 2), proba)
    write_csv(paths["labels.csv"], header, rows)
    _save_plot(model, np.vstack([XA, XB]), ["x0", "x1"], paths["plot.png"],
               "The document's example: two blobs, two components")
    lines.append(f"Wrote {directory}{os.sep}: {', '.join(names)}")
    lines.append("Next: " + f"{PROG} fit {paths['document_train.csv']} --columns x0,x1 -k 2; "
                 f"{PROG} predict {paths['model.npz']} {paths['document_test.csv']}")
    _echo("\n".join(lines))
    return 0
