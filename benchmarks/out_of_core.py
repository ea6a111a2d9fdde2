"""Out-of-core EM on a memmap larger than the memory it may use.

Usage::

    python benchmarks/out_of_core.py                          # N=20M, D=8, K=8, 4 passes
    python benchmarks/out_of_core.py --output benchmarks/RESULTS_SCALE.md
    python benchmarks/out_of_core.py --n-samples 2000000 --passes 2   # a quick look

Method
------
* Data: ``n_samples`` x 8 float64 rows drawn from a mixture of 8 Gaussians
  (fixed seed), written to ``--path`` (default /tmp) 250,000 rows at a
  time with plain file writes, so the writer never holds more than one
  block and never maps the file. 20M rows are 1.28 GB.
* Out-of-core child process: ``GaussianMixture(8).fit(np.memmap(path,
  mode='r'))`` with the default settings (k-means on a uniform sample of
  100,000 rows, default chunk size) and ``tol=0, max_iter=passes`` so that it
  runs a fixed number of passes. ``bayesgmm.mixture.sources.scan`` (the
  validation pass) and ``bayesgmm.mixture.streaming.statistics_pass`` (one EM pass)
  are wrapped with timers; the first EM pass includes compilation and is
  reported apart. The file's pages are dropped from the page cache
  (``posix_fadvise(DONTNEED)``) before this child starts, so the validation
  pass reads the disk (a virtual disk may still be cached by its host); the
  1.3 GB then stay in the page cache (not in the process's resident memory)
  and the EM passes read from there.
* In-memory child process, run before and after the out-of-core one: the
  first ``n_subset`` rows loaded into a NumPy array, ``GaussianMixture.fit``
  from the mixture's true parameters with
  ``tol=0``; per-iteration time = (fit with 6 iterations - fit with 2) / 4,
  after a warm-up fit that compiles. Multiplied by ``n_samples / n_subset``
  it is what one pass would cost if the whole data fitted in memory.
* Each child reports its own peak resident memory (``VmHWM``), which
  counts the memmap's pages while they are mapped in.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
import warnings

import _markdown

N_FEATURES = 8
N_COMPONENTS = 8
WRITE_ROWS = 250_000
SECTION_BEGIN = "<!-- out_of_core.py: begin -->"
SECTION_END = "<!-- out_of_core.py: end -->"


def mixture(seed: int = 0):
    """Weights, means and covariance factors of the benchmark's mixture."""
    import numpy as np

    rng = np.random.default_rng(seed)
    weights = rng.dirichlet(np.full(N_COMPONENTS, 5.0))
    means = rng.normal(scale=4.0, size=(N_COMPONENTS, N_FEATURES))
    factors = rng.normal(scale=0.3, size=(N_COMPONENTS, N_FEATURES, N_FEATURES)) + np.eye(
        N_FEATURES
    )
    return weights, means, factors


def write_data(path: str, n_samples: int) -> None:
    """Write the rows to ``path`` block by block (never the whole array in memory)."""
    import numpy as np

    weights, means, factors = mixture()
    rng = np.random.default_rng(1)
    with open(path, "wb") as file:
        for start in range(0, n_samples, WRITE_ROWS):
            count = min(WRITE_ROWS, n_samples - start)
            labels = rng.choice(N_COMPONENTS, size=count, p=weights)
            noise = rng.standard_normal((count, N_FEATURES))
            file.write((means[labels] + np.einsum("nd,nde->ne", noise, factors[labels])).tobytes())


def peak_rss_mb() -> float:
    """This process's peak resident memory.

    ``VmHWM`` where Linux gives it: ``ru_maxrss`` survives ``exec`` and would
    report the parent's peak if that was higher.
    """
    if os.path.exists("/proc/self/status"):
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_stream(path: str, n_samples: int, passes: int) -> dict:
    """The out-of-core fit in this process: timings and peak memory."""
    import jax
    import numpy as np

    from bayesgmm import GaussianMixture
    from bayesgmm.mixture import chunks, sources, streaming

    timings = {"scan": [], "pass": []}

    def timed(name, function, block=False):
        def wrapper(*args, **kwargs):
            start = time.perf_counter()
            result = function(*args, **kwargs)
            if block:
                jax.block_until_ready(result)
            timings[name].append(time.perf_counter() - start)
            return result

        return wrapper

    sources.scan = timed("scan", sources.scan)
    streaming.statistics_pass = timed("pass", streaming.statistics_pass, block=True)
    X = np.memmap(path, dtype=np.float64, mode="r", shape=(n_samples, N_FEATURES))
    baseline = peak_rss_mb()
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = GaussianMixture(N_COMPONENTS, max_iter=passes, tol=0.0, random_state=0).fit(X)
    total = time.perf_counter() - start
    rows = sources.default_rows(N_FEATURES, np.float64, streaming.DEFAULT_CHUNK_BYTES)
    layout = chunks.ChunkLayout.create(rows, n_samples, N_COMPONENTS, N_FEATURES)
    warm = timings["pass"][1:] or timings["pass"]
    return {
        "fit_seconds": total,
        "scan_seconds": timings["scan"][0],
        "first_pass_seconds": timings["pass"][0],
        "pass_seconds": float(np.median(warm)),
        "passes": len(timings["pass"]),
        "chunk_rows": layout.rows,
        "n_chunks": -(-n_samples // layout.rows),
        "lower_bound": model.lower_bound_,
        "rss_after_imports_mb": baseline,
        "peak_rss_mb": peak_rss_mb(),
    }


def run_memory(path: str, n_samples: int, n_subset: int) -> dict:
    """The in-memory fit of the first ``n_subset`` rows: seconds per iteration."""
    import numpy as np

    from bayesgmm import GaussianMixture

    X = np.array(
        np.memmap(path, dtype=np.float64, mode="r", shape=(n_samples, N_FEATURES))[:n_subset]
    )
    weights, means, factors = mixture()
    covariances = factors @ np.swapaxes(factors, 1, 2)
    init = dict(weights_init=weights, means_init=means, precisions_init=np.linalg.inv(covariances))

    def fit(max_iter):
        start = time.perf_counter()
        GaussianMixture(N_COMPONENTS, max_iter=max_iter, tol=0.0, **init).fit(X)
        return time.perf_counter() - start

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        first = fit(2)
        short = min(fit(2) for _ in range(2))
        long = min(fit(6) for _ in range(2))
    return {
        "n_subset": n_subset,
        "iteration_seconds": (long - short) / 4,
        "compile_seconds": max(first - short, 0.0),
        "peak_rss_mb": peak_rss_mb(),
    }


def evict_from_page_cache(path: str) -> bool:
    """Ask the kernel to drop the file's cached pages, so the first pass reads the disk."""
    if not hasattr(os, "posix_fadvise"):
        return False
    file = os.open(path, os.O_RDONLY)
    try:
        os.fsync(file)
        os.posix_fadvise(file, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(file)
    return True


def child(arguments: list[str]) -> dict:
    """Run this script in a fresh process and read its JSON answer."""
    output = subprocess.run(
        [sys.executable, __file__, *arguments], check=True, capture_output=True, text=True
    ).stdout
    return json.loads(output.strip().splitlines()[-1])


def markdown(args, stream: dict, memory: list[dict], write_seconds: float, evicted: bool) -> str:
    """The results as this script's section of RESULTS_SCALE.md."""
    scale = args.n_samples / args.n_subset
    iteration = [run["iteration_seconds"] for run in memory]
    scaled = [seconds * scale for seconds in iteration]
    ratios = sorted(stream["pass_seconds"] / seconds for seconds in scaled)
    size_gb = args.n_samples * N_FEATURES * 8 / 1e9
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return "\n".join(
        [
            SECTION_BEGIN,
            "## Out-of-core EM: a memmap of N=%s, D=%d, K=%d, float64 (%.2f GB)"
            % (f"{args.n_samples:,}", N_FEATURES, N_COMPONENTS, size_gb),
            "",
            "`python benchmarks/out_of_core.py --output benchmarks/RESULTS_SCALE.md`, on %s,"
            " %d CPU cores, Python %s; load average %.1f at the end of the run."
            % (platform.machine(), os.cpu_count(), platform.python_version(), load),
            "Other engineers' jobs shared the two cores during the run, so the times are"
            " noisy: the in-memory iteration was measured before and after the out-of-core"
            " fit and both are shown. The memory figures are not affected.",
            "",
            "| measure | value |",
            "|---|---|",
            f"| writing the file ({WRITE_ROWS:,} rows per write) | {write_seconds:.1f} s |",
            f"| chunk layout (default 1 MiB chunks) | {stream['n_chunks']:,} chunks of"
            f" {stream['chunk_rows']:,} rows |",
            f"| validation pass (checks, centring mean, 100k-row init sample)"
            f"{', file dropped from the page cache first' if evicted else ''} |"
            f" {stream['scan_seconds']:.1f} s |",
            f"| first EM pass (includes compilation) | {stream['first_pass_seconds']:.1f} s |",
            f"| **EM pass, out of core** (median of {max(stream['passes'] - 1, 1)}) |"
            f" **{stream['pass_seconds']:.2f} s** |",
            f"| in-memory EM iteration on the first {args.n_subset:,} rows (before, after) |"
            f" {iteration[0]:.3f} s, {iteration[1]:.3f} s |",
            f"| the same scaled by {scale:g} (one in-memory pass over N) |"
            f" {scaled[0]:.2f} s, {scaled[1]:.2f} s |",
            f"| **out of core / in memory** | **{ratios[0]:.2f} to {ratios[1]:.2f}** |",
            f"| whole out-of-core fit ({stream['passes']} passes, init included) |"
            f" {stream['fit_seconds']:.1f} s |",
            f"| resident memory after imports (JAX, scikit-learn) |"
            f" {stream['rss_after_imports_mb']:.0f} MB |",
            f"| **peak resident memory, out-of-core process** | **{stream['peak_rss_mb']:.0f} MB**"
            f" (limit 600 MB; the file is {size_gb * 1000:.0f} MB) |",
            f"| peak resident memory, in-memory process ({args.n_subset:,} rows) |"
            f" {max(run['peak_rss_mb'] for run in memory):.0f} MB |",
            SECTION_END,
        ]
    )


def write_section(path: str, section: str) -> None:
    """Replace this script's section of ``path`` (or append it)."""
    _markdown.write_section(path, section, SECTION_BEGIN, SECTION_END)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-samples", type=int, default=20_000_000)
    parser.add_argument("--n-subset", type=int, default=2_000_000)
    parser.add_argument("--passes", type=int, default=4)
    parser.add_argument("--path", default="/tmp/bayesgmm_out_of_core.f64")
    parser.add_argument("--output", help="markdown file whose out-of-core section to replace")
    parser.add_argument("--keep", action="store_true", help="keep the data file")
    parser.add_argument("--child", choices=["stream", "memory"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child == "stream":
        print(json.dumps(run_stream(args.path, args.n_samples, args.passes)))
        return
    if args.child == "memory":
        print(json.dumps(run_memory(args.path, args.n_samples, args.n_subset)))
        return
    start = time.perf_counter()
    write_data(args.path, args.n_samples)
    write_seconds = time.perf_counter() - start
    common = ["--path", args.path, "--n-samples", str(args.n_samples)]
    in_memory = ["--child", "memory", "--n-subset", str(args.n_subset), *common]
    try:
        memory = [child(in_memory)]
        evicted = evict_from_page_cache(args.path)
        stream = child(["--child", "stream", "--passes", str(args.passes), *common])
        memory.append(child(in_memory))
    finally:
        if not args.keep:
            os.remove(args.path)
    section = markdown(args, stream, memory, write_seconds, evicted)
    print(section)
    print(json.dumps({"stream": stream, "memory": memory}, indent=1))
    if args.output:
        write_section(args.output, section)


if __name__ == "__main__":
    main()
