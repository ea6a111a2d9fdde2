"""Time bayesgmm's EM against scikit-learn's in one run, and print the ratios.

Usage::

    python benchmarks/em_vs_sklearn.py                 # all cases, table on stdout
    python benchmarks/em_vs_sklearn.py --output benchmarks/RESULTS.md
    python benchmarks/em_vs_sklearn.py --cases small,medium --repeats 5

Method
------
* Same data (blobs, fixed seed), same initial parameters (``weights_init``,
  ``means_init``, ``precisions_init``), ``tol=0`` so that both run a fixed
  number of iterations.
* Per-iteration time = (fit with ``b`` iterations - fit with ``a``
  iterations) / (b - a), medians over ``--repeats`` runs; this cancels the
  set-up both libraries do outside the loop. bayesgmm's compile time is
  reported separately (first fit minus a warm fit) and never counted as run
  time.
* Before timing, each process repeats the measured call for 5 s (both
  libraries): on the 2-core VM a fresh process's multithreaded JAX code
  often runs 2-2.5x slower for its first seconds (``_timing.settle``).
* Each (library, case) runs in its own process so that the peak resident
  memory (``ru_maxrss`` of that process) belongs to one library. The two
  libraries' processes alternate for ``--rounds`` rounds and each figure is
  the median over the rounds: on a shared (virtual) machine the speed drifts
  over minutes, and alternating exposes both libraries to the same drift.
* The bayesgmm measured is the one in this checkout (its directory is put
  first on ``sys.path``), not an installed copy.
* The machine's matrix-multiply rate is measured here with NumPy on 4096 x
  4096 matrices; "achieved GFLOP/s" counts 3 N K D^2 flops per iteration of a
  'full' fit, the issue's convention.
* OpenBLAS: this workplace sets OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE, which
  slow a current NumPy (and so scikit-learn) down; the script re-executes
  itself without them so scikit-learn gets the machine's real BLAS kernel
  (``--keep-openblas-env`` disables this).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
import warnings

OPENBLAS_VARIABLES = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPOSITORY)

# name: (n_samples, n_features, n_components, covariance_type, dtype, kind)
CASES = {
    "small": (10_000, 2, 2, "full", "float64", "fit"),
    "medium": (100_000, 10, 8, "full", "float64", "iteration"),
    "large": (1_000_000, 16, 16, "full", "float64", "iteration"),
    "large-float32": (1_000_000, 16, 16, "full", "float32", "iteration"),
    "large-diag": (1_000_000, 16, 16, "diag", "float64", "iteration"),
    "large-spherical": (1_000_000, 16, 16, "spherical", "float64", "iteration"),
    "large-predict_proba": (1_000_000, 16, 16, "full", "float64", "predict_proba"),
}
# Iteration counts (a, b) per library: scikit-learn is slow at the large sizes.
ITERATIONS = {"bayesgmm": (2, 12), "sklearn": (1, 3)}
# Both libraries run the measured call for this long before timing it (see _timing.settle).
SETTLE_SECONDS = 5.0


def make_data(n_samples, n_features, n_components, covariance_type, dtype):
    """Blobs and a fixed starting point shared by both libraries."""
    import numpy as np
    from sklearn.datasets import make_blobs

    X, _ = make_blobs(
        n_samples=n_samples, n_features=n_features, centers=n_components,
        cluster_std=2.0, center_box=(-10, 10), random_state=0,
    )
    rng = np.random.default_rng(1)
    means = X[rng.choice(n_samples, n_components, replace=False)]
    variance = X.var(axis=0)
    precisions = {
        "full": np.broadcast_to(np.diag(1 / variance), (n_components, n_features, n_features)).copy(),
        "diag": np.broadcast_to(1 / variance, (n_components, n_features)).copy(),
        "spherical": np.full(n_components, 1 / variance.mean()),
    }[covariance_type]
    init = dict(
        weights_init=np.full(n_components, 1 / n_components),
        means_init=means, precisions_init=precisions,
    )
    return X.astype(dtype, copy=False), init


def _median_time(fn, repeats):
    from _timing import median_time

    return median_time(fn, repeats, warm_up=False)


def _settle(fn):
    from _timing import settle

    settle(fn, SETTLE_SECONDS)


def run_child(case: str, library: str, repeats: int) -> dict:
    """Measure one library on one case in this process; return a JSON-able dict."""
    import numpy as np

    n_samples, n_features, n_components, covariance_type, dtype, kind = CASES[case]
    X, init = make_data(n_samples, n_features, n_components, covariance_type, dtype)
    if library == "bayesgmm":
        from bayesgmm import GaussianMixture

        extra = dict(dtype=dtype)
    else:
        from sklearn.mixture import GaussianMixture

        extra = {}
    warnings.simplefilter("ignore")
    result: dict = {"case": case, "library": library}

    def model(max_iter, **params):
        return GaussianMixture(
            n_components, covariance_type=covariance_type, max_iter=max_iter, tol=0.0,
            init_params="random_from_data", random_state=0, **params, **extra,
        )

    if kind == "fit":
        def whole_fit():
            return GaussianMixture(n_components, random_state=0, **extra).fit(X)

        start = time.perf_counter()
        whole_fit()
        first = time.perf_counter() - start
        _settle(whole_fit)
        result["seconds"] = _median_time(whole_fit, repeats)
        result["first_fit"] = first
        result["compile"] = max(first - result["seconds"], 0.0)
        result["n_iter"] = whole_fit().n_iter_
    elif kind == "iteration":
        a, b = ITERATIONS[library]
        first = {}
        for count in (a, b):
            start = time.perf_counter()
            fitted = model(count, **init).fit(X)
            first[count] = time.perf_counter() - start
        _settle(lambda: model(b, **init).fit(X))
        times = {count: _median_time(lambda: model(count, **init).fit(X), repeats) for count in (a, b)}
        result["seconds"] = (times[b] - times[a]) / (b - a)
        result["compile"] = max(first[a] - times[a], 0.0) if library == "bayesgmm" else 0.0
        result["lower_bound"] = float(model(b, **init).fit(X).lower_bound_)
        result["iterations"] = b
        result["finite"] = bool(np.isfinite(fitted.lower_bound_) and np.all(np.isfinite(fitted.means_)))
    else:  # predict_proba
        fitted = model(2, **init).fit(X)
        start = time.perf_counter()
        fitted.predict_proba(X)
        first = time.perf_counter() - start
        _settle(lambda: fitted.predict_proba(X))
        result["seconds"] = _median_time(lambda: fitted.predict_proba(X), repeats)
        result["compile"] = max(first - result["seconds"], 0.0) if library == "bayesgmm" else 0.0
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return result


def matmul_rate(dtype: str, size: int = 4096, repeats: int = 3) -> float:
    """NumPy's matrix-multiply rate in GFLOP/s on size x size matrices."""
    import numpy as np

    rng = np.random.default_rng(0)
    a = rng.random((size, size)).astype(dtype)
    b = rng.random((size, size)).astype(dtype)
    a @ b
    return 2 * size**3 / _median_time(lambda: a @ b, repeats) / 1e9


def machine_description() -> str:
    from _timing import machine_description as describe

    return describe()


def spawn(case: str, library: str, repeats: int) -> dict:
    output = subprocess.run(
        [sys.executable, __file__, "--child", case, library, "--repeats", str(repeats)],
        check=True, capture_output=True, text=True,
    ).stdout
    return json.loads(output.strip().splitlines()[-1])


def combine(runs: list[dict]) -> dict:
    """One library's rounds on one case: medians of the timings, the largest
    peak memory, the spread of the per-round times."""
    import numpy as np

    combined = dict(runs[0])
    for key in ("seconds", "compile"):
        combined[key] = float(np.median([run[key] for run in runs]))
    combined["peak_rss_mb"] = max(run["peak_rss_mb"] for run in runs)
    combined["round_seconds"] = [run["seconds"] for run in runs]
    return combined


def format_table(rows: list[dict], rate64: float, rate32: float) -> str:
    lines = [
        "| case | N, D, K, covariance, dtype | scikit-learn ms/it | bayesgmm ms/it | ratio | bayesgmm GFLOP/s | share of matmul rate | compile s | peak RSS MB (sklearn / bayesgmm) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        n_samples, n_features, n_components, covariance_type, dtype, kind = CASES[row["case"]]
        ours, theirs = row["bayesgmm"], row["sklearn"]
        unit = {"fit": "whole fit", "iteration": "", "predict_proba": "call"}[kind]
        flops = 3 * n_samples * n_components * n_features**2
        if kind == "iteration" and covariance_type == "full":
            gflops = flops / ours["seconds"] / 1e9
            share = gflops / (rate32 if dtype == "float32" else rate64)
            gflops_text, share_text = f"{gflops:.1f}", f"{100 * share:.0f} %"
        else:
            gflops_text = share_text = "–"
        lines.append(
            f"| {row['case']}{' (' + unit + ')' if unit else ''} | {n_samples:,}, {n_features}, {n_components}, {covariance_type}, {dtype} "
            f"| {1e3 * theirs['seconds']:.1f} | {1e3 * ours['seconds']:.1f} | {theirs['seconds'] / ours['seconds']:.1f}x "
            f"| {gflops_text} | {share_text} | {ours['compile']:.2f} "
            f"| {theirs['peak_rss_mb']:.0f} / {ours['peak_rss_mb']:.0f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", default=",".join(CASES), help="comma-separated case names")
    parser.add_argument("--repeats", type=int, default=5, help="repeats per timing (median)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per case (median)")
    parser.add_argument("--output", help="also write the table as markdown to this file")
    parser.add_argument("--keep-openblas-env", action="store_true")
    parser.add_argument("--child", nargs=2, metavar=("CASE", "LIBRARY"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        if args.child[0] == "matmul":
            print(json.dumps({"float64": matmul_rate("float64"), "float32": matmul_rate("float32")}))
        else:
            print(json.dumps(run_child(*args.child, repeats=args.repeats)))
        return
    if not args.keep_openblas_env and any(name in os.environ for name in OPENBLAS_VARIABLES):
        environment = {k: v for k, v in os.environ.items() if k not in OPENBLAS_VARIABLES}
        os.execve(sys.executable, [sys.executable] + sys.argv, environment)
    # In a child process too: its large matrices must not count in the peak memory of
    # the measurements (ru_maxrss survives fork/exec).
    rates = spawn("matmul", "numpy", args.repeats)
    rate64, rate32 = rates["float64"], rates["float32"]
    rows = []
    for case in args.cases.split(","):
        rounds = {"sklearn": [], "bayesgmm": []}
        for _ in range(args.rounds):
            for library in ("sklearn", "bayesgmm"):
                rounds[library].append(spawn(case, library, args.repeats))
                print(f"# {case} {library}: {json.dumps(rounds[library][-1])}", file=sys.stderr, flush=True)
        rows.append({"case": case, **{library: combine(runs) for library, runs in rounds.items()}})
    notes = [
        "Per-round bayesgmm ms/it (spread): " + "; ".join(
            f"{row['case']} " + "/".join(f"{1e3 * t:.0f}" for t in row["bayesgmm"]["round_seconds"])
            for row in rows
        )
        + ". scikit-learn: " + "; ".join(
            f"{row['case']} " + "/".join(f"{1e3 * t:.0f}" for t in row["sklearn"]["round_seconds"])
            for row in rows
        )
    ]
    by_case = {row["case"]: row for row in rows}
    if "large" in by_case and "large-float32" in by_case:
        f64, f32 = by_case["large"]["bayesgmm"], by_case["large-float32"]["bayesgmm"]
        notes.append(
            f"float32 vs float64 (bayesgmm, large): {f64['seconds'] / f32['seconds']:.2f}x faster, "
            f"finite: {f32['finite']}, lower bound relative difference after {f32['iterations']} "
            f"iterations: {abs(f32['lower_bound'] - f64['lower_bound']) / abs(f64['lower_bound']):.1e}"
        )
    header = (
        f"Machine: {machine_description()}\n\n"
        f"NumPy matrix-multiply rate (4096^2): float64 {rate64:.0f} GFLOP/s, float32 {rate32:.0f} GFLOP/s. "
        f"Each figure: median over {args.rounds} alternating rounds (one process per library "
        f"and round) of medians of {args.repeats} repeats; OpenBLAS environment overrides "
        f"{'kept' if args.keep_openblas_env else 'removed'}.\n"
    )
    text = header + "\n" + format_table(rows, rate64, rate32) + "\n" + "".join(f"\n{note}\n" for note in notes)
    print(text)
    if args.output:
        with open(args.output, "w") as handle:
            handle.write("# EM benchmark: bayesgmm vs scikit-learn\n\n`python benchmarks/em_vs_sklearn.py --output benchmarks/RESULTS.md`\n\n" + text)


if __name__ == "__main__":
    main()
