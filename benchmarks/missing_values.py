"""EM and imputation with values missing at random: cost per iteration, patterns, imputation error.

Usage::

    python benchmarks/missing_values.py                          # table on stdout
    python benchmarks/missing_values.py --output benchmarks/RESULTS.md

Method
------
* N = 100,000 rows, D = 10, K = 8 separated clusters (``random_mixture``,
  fixed seed), 'full' covariances, float64; entries removed completely at
  random at 0 %, 10 % and 30 % (rows left with no value get one back).
* Time per EM iteration: the same initial parameters (the true ones, given
  as ``weights_init``/``means_init``/``precisions_init``, so no k-means),
  ``tol=0``, ``max_iter`` fixed; (fit with ``b`` iterations - fit with ``a``)
  / (b - a), medians over ``--repeats`` warm fits (compilation excluded,
  reported apart), after ``_timing.settle``.
* Imputation: ``GaussianMixture(missing='marginalize').fit(X).impute(X)``
  (fit included in the time) against ``SimpleImputer(strategy='mean')`` and
  ``IterativeImputer(max_iter=10)`` (BayesianRidge, scikit-learn's default),
  MSE over the removed entries.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _markdown import write_section  # noqa: E402
from _timing import machine_description, settle  # noqa: E402

BEGIN, END = "<!-- missing_values.py: begin -->", "<!-- missing_values.py: end -->"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rates", default="0,0.1,0.3")
    args = parser.parse_args()

    from sklearn.experimental import enable_iterative_imputer  # noqa: F401
    from sklearn.impute import IterativeImputer, SimpleImputer

    from bayesgmm import GaussianMixture
    from bayesgmm.mixture import incomplete

    n_samples, n_features, n_components = 100_000, 10, 8
    rng = np.random.default_rng(0)
    centres = rng.normal(scale=4.0, size=(n_components, n_features))
    factors = rng.normal(scale=0.4, size=(n_components, n_features, n_features))
    covariances = factors @ np.swapaxes(factors, 1, 2) + 0.5 * np.eye(n_features)
    labels = rng.integers(0, n_components, n_samples)
    X = centres[labels] + np.einsum("nde,ne->nd", np.linalg.cholesky(covariances)[labels],
                                    rng.standard_normal((n_samples, n_features)))
    weights = np.bincount(labels, minlength=n_components) / n_samples
    precisions = np.linalg.inv(covariances)
    start = dict(weights_init=weights, means_init=centres, precisions_init=precisions)

    warnings.simplefilter("ignore")  # ConvergenceWarning of the fixed-length fits
    rows = []
    complete_iteration = None
    for rate in [float(r) for r in args.rates.split(",")]:
        holes = rng.random(X.shape) < rate
        holes[holes.all(axis=1), 0] = False
        X_missing = np.where(holes, np.nan, X)

        def fit(n_iter, X_missing=X_missing):
            return GaussianMixture(n_components, tol=0.0, max_iter=n_iter, missing="marginalize",
                                   **start).fit(X_missing)

        began = time.perf_counter()
        fit(5)
        first = time.perf_counter() - began
        fit(25)
        settle(lambda: fit(5), 5.0)
        per_iteration = []
        for _ in range(args.repeats):
            began = time.perf_counter()
            fit(5)
            short = time.perf_counter() - began
            began = time.perf_counter()
            fit(25)
            per_iteration.append((time.perf_counter() - began - short) / 20)
        iteration = float(np.median(per_iteration))
        if rate == 0:
            complete_iteration = iteration
        compile_s = first - 5 * iteration
        row = dict(rate=rate, patterns=incomplete.n_patterns(X_missing), iteration_ms=1e3 * iteration,
                   ratio=iteration / complete_iteration if complete_iteration else float("nan"),
                   compile_s=compile_s)
        if rate > 0:
            began = time.perf_counter()
            ours = GaussianMixture(n_components, random_state=0, missing="marginalize").fit(X_missing)
            filled = ours.impute(X_missing)
            row["ours"] = (time.perf_counter() - began, np.mean((filled[holes] - X[holes]) ** 2))
            began = time.perf_counter()
            filled = SimpleImputer().fit_transform(X_missing)
            row["mean"] = (time.perf_counter() - began, np.mean((filled[holes] - X[holes]) ** 2))
            began = time.perf_counter()
            filled = IterativeImputer(max_iter=10, random_state=0).fit_transform(X_missing)
            row["iterative"] = (time.perf_counter() - began, np.mean((filled[holes] - X[holes]) ** 2))
        rows.append(row)
        print(row, flush=True)

    lines = [
        BEGIN,
        "## Missing values (`benchmarks/missing_values.py`)",
        "",
        f"N={n_samples:,}, D={n_features}, K={n_components}, 'full', float64, entries missing completely "
        f"at random. {machine_description()}",
        "",
        "| missing | patterns | ms / EM iteration | vs complete | compile s |",
        "|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(f"| {100 * row['rate']:.0f} % | {row['patterns']} | {row['iteration_ms']:.1f} | "
                     f"{row['ratio']:.2f}x | {row['compile_s']:.1f} |")
    lines += ["", "Imputation of the removed entries (time includes the fit; MSE over removed entries):", "",
              "| missing | bayesgmm s | bayesgmm MSE | mean s | mean MSE | IterativeImputer s | IterativeImputer MSE |",
              "|---:|---:|---:|---:|---:|---:|---:|"]
    for row in rows[1:]:
        (a, b), (c, d), (e, f) = row["ours"], row["mean"], row["iterative"]
        lines.append(f"| {100 * row['rate']:.0f} % | {a:.2f} | {b:.4f} | {c:.2f} | {d:.4f} | {e:.2f} | {f:.4f} |")
    lines.append(END)
    text = "\n".join(lines)
    print(text)
    if args.output:
        write_section(args.output, text, BEGIN, END)


if __name__ == "__main__":
    main()
