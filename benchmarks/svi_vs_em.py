"""SVI against EM (and NUTS on subsets): wall time and held-out log predictive density.

Usage::

    python benchmarks/svi_vs_em.py                                   # N=1M, D=10, K=8
    python benchmarks/svi_vs_em.py --output benchmarks/RESULTS_SCALE.md
    python benchmarks/svi_vs_em.py --n-train 100000 --no-nuts        # a quick look

Method
------
* Data: ``datasets.random_mixture(n_test + n_train, 8, 10)`` (seed 0: eight
  full-covariance components, means at least 6 standard deviations apart,
  every weight >= 1/16), float64. The first ``n_test`` = 20,000 rows are the
  held-out test set of every fit; the training sets are prefixes of the
  remaining rows (1M for the main comparison, 1k/10k/100k for the scaling
  rows).
* Every fit runs in a fresh child process: **cold** is the first fit in the
  process (tracing and compilation included, what a user waits for the first
  time); **warm** is a second fit on the same data with another seed (the
  compiled programs reused). NUTS rows are cold only.
* EM: ``GaussianMixture(8)`` with its defaults (k-means initialisation, one
  restart, ``tol=1e-3``). SVI: ``BayesianGaussianMixture(8,
  inference='svi')`` with its defaults (EM start on a 100k subset, 2000 Adam
  steps on subsamples of 2048 points, 1000 draws from the guide), and
  variants (low-rank guide, subsamples of 8192, float32). NUTS:
  ``BayesianGaussianMixture(8)`` with its defaults (4 chains x (500 warm-up +
  500 draws), EM-started, sequential on the CPU) on the 1k and 10k subsets.
* Score: the mean log predictive density of the test set, ``score(X_test)``:
  EM's plug-in density; for SVI and NUTS the log of the density averaged over
  the posterior draws. "vs EM" is the paired mean difference per test point
  with its standard error.
* Accuracy of the SVI posterior at 1M: the components are matched to EM's
  (Hungarian on the means); ``|mean_SVI - mean_EM| / sd_SVI`` over all
  component means (at N = 1M the posterior mean and the maximum likelihood
  differ by far less than one posterior sd, so this measures the optimiser's
  noise), and ``sd_SVI`` against the large-sample sd ``sqrt(Sigma_kk / (N
  w_k))``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time

import _markdown
import numpy as np

SECTION_BEGIN = "<!-- svi_vs_em.py: begin -->"
SECTION_END = "<!-- svi_vs_em.py: end -->"
N_COMPONENTS = 8
N_FEATURES = 10

SVI_VARIANTS = {
    "svi": {},
    "svi-lowrank": {"guide": "lowrank"},
    "svi-subsample-8192": {"svi_subsample_size": 8192},
    "svi-float32": {"dtype": "float32"},
}


def load(n_train: int, n_test: int):
    """Train and test sets (NumPy float64) and the true parameters."""
    from bayesgmm.datasets import random_mixture

    X, _, truth = random_mixture(n_test + n_train, N_COMPONENTS, N_FEATURES, random_state=0)
    return X[n_test:], X[:n_test], truth


def make_model(method: str, seed: int):
    from bayesgmm import BayesianGaussianMixture, GaussianMixture

    if method == "em":
        return GaussianMixture(N_COMPONENTS, random_state=seed)
    if method == "em-float32":
        return GaussianMixture(N_COMPONENTS, random_state=seed, dtype="float32")
    if method == "nuts":
        return BayesianGaussianMixture(N_COMPONENTS, random_state=seed, progress_bar=False)
    return BayesianGaussianMixture(N_COMPONENTS, inference="svi", random_state=seed,
                                   progress_bar=False, **SVI_VARIANTS[method])


def run_child(method: str, n_train: int, n_test: int, warm: bool) -> dict:
    """Fit (cold, then warm), score the test set; return figures as a dict."""
    import warnings

    X, X_test, truth = load(n_train, n_test)
    result = {"method": method, "n_train": n_train}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        start = time.perf_counter()
        model = make_model(method, 0).fit(X)
        result["cold_s"] = time.perf_counter() - start
        if warm:
            start = time.perf_counter()
            model = make_model(method, 1).fit(X)
            result["warm_s"] = time.perf_counter() - start
    result["warnings"] = sorted({f"{type(w.message).__name__}: {str(w.message)[:120]}"
                                 for w in caught})
    start = time.perf_counter()
    log_density = model.score_samples(X_test)
    result["score_s"] = time.perf_counter() - start
    result["log_density"] = log_density.tolist()
    result["means"] = np.asarray(model.means_).tolist()
    result["weights"] = np.asarray(model.weights_).tolist()
    result["covariances_diag"] = np.diagonal(np.asarray(model.covariances_), axis1=1,
                                             axis2=2).tolist()
    if hasattr(model, "posterior_params_"):
        result["means_sd"] = model.posterior_params_.means.std(axis=0).tolist()
    if method == "nuts":
        summary = model.summary(var_names=("weights", "means"))
        result["max_rhat"] = float(summary["r_hat"].max())
        result["min_ess_bulk"] = float(summary["ess_bulk"].min())
    result["truth_error"] = float(_max_mean_error(np.asarray(model.means_), truth.means))
    return result


def _matching(means, reference):
    from bayesgmm.alignment import permutation_from_cost

    return permutation_from_cost(((reference[:, None] - means[None]) ** 2).sum(-1))


def _max_mean_error(means, true_means):
    return np.abs(means[_matching(means, true_means)] - true_means).max()


def child(method: str, n_train: int, n_test: int, warm: bool) -> dict:
    command = [sys.executable, __file__, "--child", method, "--n-train", str(n_train),
               "--n-test", str(n_test)] + (["--warm"] if warm else [])
    print("running", " ".join(command[2:]), flush=True)
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def paired(result: dict, reference: dict) -> tuple[float, float]:
    """Mean and standard error of the per-point log density difference."""
    difference = np.asarray(result["log_density"]) - np.asarray(reference["log_density"])
    return float(difference.mean()), float(difference.std(ddof=1) / np.sqrt(difference.size))


def svi_accuracy(result: dict, em_result: dict, n_train: int) -> dict:
    """SVI means against EM's, in SVI posterior sds; SVI sds against the large-sample sds."""
    em_means = np.asarray(em_result["means"])
    order = _matching(np.asarray(result["means"]), em_means)
    means = np.asarray(result["means"])[order]
    sd = np.asarray(result["means_sd"])[order]
    z = np.abs(means - em_means) / sd
    expected = np.sqrt(np.asarray(em_result["covariances_diag"])
                       / (n_train * np.asarray(em_result["weights"])[:, None]))
    return {"z_mean": float(z.mean()), "z_max": float(z.max()),
            "sd_ratio": float(np.median(sd / expected))}


def _seconds(value) -> str:
    if value is None:
        return "-"
    return f"{value:.1f} s" if value < 100 else f"{value:.0f} s"


def markdown(args, main: list[dict], scaling: list[dict], elapsed: float) -> str:
    em = next(r for r in main if r["method"] == "em")
    n = args.n_train
    lines = [
        SECTION_BEGIN,
        f"## Bayesian fits at scale: SVI against EM (N={n:,}, D={N_FEATURES}, "
        f"K={N_COMPONENTS}), NUTS on subsets",
        "",
        f"`python benchmarks/svi_vs_em.py --output benchmarks/RESULTS_SCALE.md`, on "
        f"{platform.machine()}, {os.cpu_count()} CPU cores, Python "
        f"{platform.python_version()}; load average {os.getloadavg()[0]:.1f} at the end of "
        f"the run ({elapsed / 60:.0f} min in all). The two cores were shared with other "
        "engineers' jobs during the run, so every time is noisy (easily +-30 %); each fit "
        "ran in a fresh process (cold: compilation included; warm: a second fit).",
        "",
        f"Held-out test set: {args.n_test:,} points. Score = mean log predictive density "
        "per test point (higher is better); 'vs EM' = paired mean difference +- its "
        "standard error, against EM on the same training points.",
        "",
        "| fit | training points | cold | warm | score (test) | vs EM | max abs(mean - truth) |",
        "|---|---|---|---|---|---|---|",
    ]
    rows = main + scaling
    for result in rows:
        reference = next(r for r in rows
                         if r["method"] == "em" and r["n_train"] == result["n_train"])
        difference, error = paired(result, reference)
        vs_em = "-" if result is reference else f"{difference:+.5f} +- {error:.5f}"
        lines.append(
            f"| {result['method']} | {result['n_train']:,} | {_seconds(result['cold_s'])} | "
            f"{_seconds(result.get('warm_s'))} | {np.mean(result['log_density']):.5f} | "
            f"{vs_em} | {result['truth_error']:.3f} |"
        )
    lines += [
        "",
        f"SVI posterior at N={n:,} against EM (means of the 8 x 10 component means):",
        "",
        "| fit | mean abs(mean_SVI - mean_EM) / sd_SVI | max | median sd_SVI / large-sample sd |",
        "|---|---|---|---|",
    ]
    for result in main:
        if result["method"].startswith("svi"):
            accuracy = svi_accuracy(result, em, n)
            lines.append(f"| {result['method']} | {accuracy['z_mean']:.2f} | "
                         f"{accuracy['z_max']:.2f} | {accuracy['sd_ratio']:.2f} |")
    nuts = [r for r in scaling if r["method"] == "nuts"]
    if nuts:
        lines += ["", "NUTS fits (4 chains x 500 draws): " + "; ".join(
            f"N={r['n_train']:,}: max r_hat {r['max_rhat']:.3f}, min bulk ESS "
            f"{r['min_ess_bulk']:.0f}" for r in nuts) + "."]
    svi_vs_nuts = [(r, next((s for s in nuts if s["n_train"] == r["n_train"]), None))
                   for r in scaling if r["method"] == "svi"]
    rows = [(r, s) for r, s in svi_vs_nuts if s is not None]
    if rows:
        lines += ["", "SVI against NUTS on the same subsets (median over component means "
                  "of sd_SVI / sd_NUTS; max abs(mean_SVI - mean_NUTS) / sd_NUTS): " + "; ".join(
                      "N={:,}: {:.2f}, {:.2f}".format(r["n_train"], *_against_nuts(r, s))
                      for r, s in rows) + "."]
    warned = sorted({w for r in main + scaling for w in r["warnings"]})
    lines += ["", "Warnings during the fits: " + ("; ".join(warned) if warned else "none") + "."]
    lines.append(SECTION_END)
    return "\n".join(lines)


def _against_nuts(svi_result, nuts_result):
    nuts_means = np.asarray(nuts_result["means"])
    order = _matching(np.asarray(svi_result["means"]), nuts_means)
    svi_sd = np.asarray(svi_result["means_sd"])[order]
    nuts_sd = np.asarray(nuts_result["means_sd"])
    shift = np.abs(np.asarray(svi_result["means"])[order] - nuts_means) / nuts_sd
    return float(np.median(svi_sd / nuts_sd)), float(shift.max())


def write_section(path: str, section: str) -> None:
    """Replace this script's section of ``path`` (or append it)."""
    _markdown.write_section(path, section, SECTION_BEGIN, SECTION_END)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-train", type=int, default=1_000_000)
    parser.add_argument("--n-test", type=int, default=20_000)
    parser.add_argument("--scaling", default="1000,10000,100000",
                        help="comma-separated training sizes of the scaling rows")
    parser.add_argument("--no-nuts", action="store_true", help="skip the NUTS rows")
    parser.add_argument("--output", help="markdown file whose svi_vs_em section to replace")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--warm", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_child(args.child, args.n_train, args.n_test, args.warm)))
        return
    start = time.perf_counter()
    main_rows = [child(method, args.n_train, args.n_test, warm=True)
                 for method in ("em", "em-float32", *SVI_VARIANTS)]
    scaling = []
    for n_train in (int(size) for size in args.scaling.split(",") if size):
        scaling.append(child("em", n_train, args.n_test, warm=False))
        scaling.append(child("svi", n_train, args.n_test, warm=False))
        if not args.no_nuts and n_train <= 10_000:
            scaling.append(child("nuts", n_train, args.n_test, warm=False))
    section = markdown(args, main_rows, scaling, time.perf_counter() - start)
    print(section)
    if args.output:
        write_section(args.output, section)


if __name__ == "__main__":
    main()
