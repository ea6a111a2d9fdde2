"""The work of ``bayesgmm choose-k``: models compared by BIC/ICL/AIC or PSIS-LOO.

By EM, :class:`~bayesgmm.GaussianMixtureIC` fits every K in the range for
every covariance type asked for, and the lowest criterion among the fits
that are not degenerate wins; by MCMC, the fits are compared by
:func:`arviz.compare` and the fewest components within the noise of the
best are kept (:func:`bayesgmm.bayes.comparison.simplest_within_noise`, the
one-standard-error rule). Like every ``command_*``, :func:`command_choose_k` takes the parsed
arguments and returns the exit status; bad input raises
:class:`~bayesgmm._commands.CLIError`.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from bayesgmm._commands import (
    CLIError,
    _check_missing_options,
    _echo,
    _estimator,
    _loo,
    _make_directory,
    _missing,
    _prepare_outputs,
    _read_table,
    em_prior,
)
from bayesgmm.bayes.comparison import (
    NOISE_DSE,
    components_of,
    labelled_warnings,
    simplest_within_noise,
)


def _grid(args, X):
    """The fitted :class:`~bayesgmm.GaussianMixtureIC` of the EM grid."""
    from bayesgmm import GaussianMixtureIC

    return GaussianMixtureIC(
        args.min_components, args.max_components, covariance_type=args.covariance_type,
        criterion=args.criterion, n_init=args.n_init, max_iter=args.max_iter,
        random_state=args.seed, prior=em_prior(args), missing=_missing(args),
    ).fit(X)


def _criterion_table(choice, criterion: str) -> list[str]:
    """mclust's layout: a row per K, a column per covariance type; ``!`` marks degenerate fits."""
    results = choice.results_
    names = list(dict.fromkeys(results["param_covariance_type"]))
    sizes = sorted(set(int(k) for k in results["param_n_components"]))
    cells = {(name, int(k)): index for index, (name, k) in
             enumerate(zip(results["param_covariance_type"], results["param_n_components"]))}
    chosen = int(np.argmin(results["rank"]))
    lines = [f"{criterion.upper()} (lower is better); ! degenerate, never chosen; * chosen",
             f"{'K':>3}" + "".join(f"  {name:>14}" for name in names)]
    for k in sizes:
        row = f"{k:>3}"
        for name in names:
            index = cells[(name, k)]
            value = results[criterion][index]
            text = "failed" if np.isnan(value) else f"{value:.4f}"
            mark = "*" if index == chosen else "!" if results["degenerate"][index] else " "
            row += f"  {text:>13}{mark}"
        lines.append(row)
    return lines


def _single_type_table(choice, criterion: str) -> list[str]:
    results = choice.results_
    chosen = int(np.argmin(results["rank"]))
    lines = [f"{'K':>3}  {'log-likelihood':>15}  {'BIC':>12}  {'ICL':>12}  {'AIC':>12}  "
             "converged  degenerate"]
    for index, k in enumerate(results["param_n_components"]):
        mark = " *" if index == chosen else "  "
        lines.append(
            f"{int(k):>3}  {results['log_likelihood'][index]:>15.4f}  "
            f"{results['bic'][index]:>12.4f}  {results['icl'][index]:>12.4f}  "
            f"{results['aic'][index]:>12.4f}  {'yes' if results['converged'][index] else 'NO':>9}"
            f"  {'yes' if results['degenerate'][index] else 'no':>10}{mark}"
        )
    return lines


def command_choose_k(args) -> int:
    """``bayesgmm choose-k``: compare numbers of components. Returns the exit status."""
    if args.min_components > args.max_components:
        raise CLIError(
            f"--min-components {args.min_components} is larger than --max-components "
            f"{args.max_components}."
        )
    _check_missing_options(args)
    directory = Path(args.out) if args.out else None
    paths = (_prepare_outputs(directory, ["choose_k.csv", "choose_k.png"], args.force)
             if directory else None)
    table = _read_table(args, args.columns, keep_missing=_missing(args) == "marginalize")
    X = table.X
    if args.max_components > X.shape[0]:
        raise CLIError(
            f"{args.data}: --max-components {args.max_components} is more than the "
            f"{X.shape[0]} data rows; lower it."
        )
    if args.method == "mcmc":
        if args.covariance_type == "all" or len(args.covariance_type) != 1:
            raise CLIError("--method mcmc compares numbers of components of one covariance type; "
                           "give one --covariance-type.")
        args.covariance_type = args.covariance_type[0]
        return _choose_k_mcmc(args, X, directory, paths)
    try:
        choice = _grid(args, X)
    except ValueError as error:
        raise CLIError(f"{args.data}: {error}") from None
    results = choice.results_
    several = args.covariance_type == "all" or len(args.covariance_type) > 1
    lines = (_criterion_table if several else _single_type_table)(choice, args.criterion)
    where = f"K = {choice.n_components_}" + (f", {choice.covariance_type_}" if several else "")
    lines.append(f"Chosen: {where} (lowest {args.criterion.upper()}, marked *)")
    for index in np.flatnonzero(results["degenerate"]):
        lines.append(f"Degenerate: {results['param_covariance_type'][index]} K = "
                     f"{results['param_n_components'][index]}: "
                     f"{results['degenerate_reason'][index]}")
    if directory:
        from bayesgmm._io import write_csv

        _make_directory(directory)
        columns = ["covariance_type", "n_components", "log_likelihood", "bic", "icl", "aic",
                   "n_parameters", "converged", "degenerate", "degenerate_reason"]
        keys = ["param_covariance_type", "param_n_components"] + columns[2:]
        write_csv(paths["choose_k.csv"], columns,
                  ([_plain(results[key][index]) for key in keys]
                   for index in range(len(results["rank"]))))
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        from bayesgmm import plot

        ax = plot.criteria(choice, criterion=args.criterion)
        ax.figure.savefig(paths["choose_k.png"], dpi=110)
        plt.close(ax.figure)
        lines.append(f"Wrote {directory}{os.sep}: choose_k.csv, choose_k.png")
    _echo("\n".join(lines))
    return 0


def _plain(value):
    """A NumPy scalar as the Python value the CSV writer prints plainly."""
    return value.item() if isinstance(value, np.generic) else value


def _choice_line(comparison, chosen: str, best: str) -> str:
    if chosen != best:
        row = comparison.loc[chosen]
        return (f"Chosen: {chosen} (marked *), the fewest components within the noise of the "
                f"highest PSIS-LOO elpd ({best}): {row['elpd_diff']:.2f} below it, under "
                f"{NOISE_DSE:g} dse ({NOISE_DSE * row['dse']:.2f}), so the simpler model is kept "
                "(one-standard-error rule)")
    line = f"Chosen: {best} (highest PSIS-LOO elpd, marked *)"
    if any(components_of(name) < components_of(best) for name in comparison.index):
        line += f"; every model with fewer components is more than {NOISE_DSE:g} dse below it"
    return line


def _choose_k_mcmc(args, X, directory, paths) -> int:
    import arviz as az

    loos = {}
    for n_components in range(args.min_components, args.max_components + 1):
        name = f"K={n_components}"
        # Warnings of each fit and of its PSIS-LOO name the K they belong to.
        model = labelled_warnings(name, lambda: _estimator(args, n_components).fit(X))
        loos[name] = labelled_warnings(name, lambda: _loo(model.inference_data_))
    comparison = az.compare(loos, ic="loo")
    chosen, best = simplest_within_noise(comparison)
    columns = ["rank", "elpd_loo", "p_loo", "elpd_diff", "dse", "weight", "warning"]
    lines = [f"{'model':>6}  {'rank':>4}  {'elpd_loo':>12}  {'p_loo':>8}  {'elpd_diff':>10}  "
             f"{'dse':>8}  {'weight':>6}  warning"]
    rows = []
    for name, row in comparison.sort_index(
            key=lambda index: [components_of(k) for k in index]).iterrows():
        mark = " *" if name == chosen else ""
        lines.append(f"{name:>6}  {int(row['rank']):>4}  {row['elpd_loo']:>12.4f}  "
                     f"{row['p_loo']:>8.2f}  {row['elpd_diff']:>10.4f}  {row['dse']:>8.4f}  "
                     f"{row['weight']:>6.3f}  {'yes' if row['warning'] else 'no'}{mark}")
        rows.append([components_of(name)] + [row[column] for column in columns])
    lines.append(_choice_line(comparison, chosen, best))
    if directory:
        from bayesgmm._io import write_csv

        _make_directory(directory)
        write_csv(paths["choose_k.csv"], ["n_components"] + columns,
                  ([value if not isinstance(value, (bool, np.bool_)) else bool(value)
                    for value in row] for row in rows))
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        from bayesgmm import plot

        ax = plot.loo_comparison(comparison)
        ax.figure.savefig(paths["choose_k.png"], dpi=110, bbox_inches="tight")
        plt.close(ax.figure)
        lines.append(f"Wrote {directory}{os.sep}: choose_k.csv, choose_k.png")
    _echo("\n".join(lines))
    return 0
