"""Measure JAX's persistent compilation cache for bayesgmm: the first fit of a fresh process.

Runs three fresh processes that each time their first ``GaussianMixture.fit``
(the document's data size, and N=100k, D=10, K=8):

1. no cache (compiles);
2. cache enabled, empty directory (compiles and writes the cache);
3. cache enabled, same directory (reads the compiled programs).

Usage::

    python benchmarks/compile_cache.py

To use the cache in your own programs, set before the first fit either the
environment variable ``JAX_COMPILATION_CACHE_DIR=/path/to/cache`` or::

    import jax
    jax.config.update("jax_compilation_cache_dir", "/path/to/cache")
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.1)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

CHILD = r"""
import json, sys, time, warnings
import numpy as np
cache = sys.argv[1]
if cache != "none":
    import jax
    jax.config.update("jax_compilation_cache_dir", cache)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.1)
from sklearn.datasets import make_blobs
from bayesgmm import GaussianMixture
warnings.simplefilter("ignore")
result = {}
for name, (n, d, k) in {"document (800, 2, 2)": (800, 2, 2), "medium (100k, 10, 8)": (100_000, 10, 8)}.items():
    X, _ = make_blobs(n_samples=n, n_features=d, centers=k, random_state=0)
    start = time.perf_counter()
    GaussianMixture(k, random_state=0, max_iter=20).fit(X)
    first = time.perf_counter() - start
    start = time.perf_counter()
    GaussianMixture(k, random_state=0, max_iter=20).fit(X)
    result[name] = {"first_fit": first, "second_fit": time.perf_counter() - start}
print(json.dumps(result))
"""


def run(cache: str) -> dict:
    output = subprocess.run(
        [sys.executable, "-c", CHILD, cache], check=True, capture_output=True, text=True
    ).stdout
    return json.loads(output.strip().splitlines()[-1])


def main() -> None:
    with tempfile.TemporaryDirectory() as directory:
        runs = {
            "no cache": run("none"),
            "cache, empty (writes)": run(directory),
            "cache, filled (reads)": run(directory),
        }
        entries = len(os.listdir(directory))
    print(f"| process | case | first fit s | second fit s |\n|---|---|---:|---:|")
    for label, result in runs.items():
        for case, times in result.items():
            print(f"| {label} | {case} | {times['first_fit']:.2f} | {times['second_fit']:.2f} |")
    print(f"\n{entries} cache entries written.")


if __name__ == "__main__":
    main()
