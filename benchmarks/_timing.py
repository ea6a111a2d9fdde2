"""Timing helpers shared by the benchmark scripts."""

from __future__ import annotations

import os
import sys
import time

import numpy as np

# This workplace sets these; they slow a current NumPy (and so scikit-learn) down.
OPENBLAS_VARIABLES = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


def median_time(fn, repeats: int, warm_up: bool = True) -> float:
    """Median wall time of ``fn()`` over ``repeats`` calls (seconds).

    ``fn`` must wait for its own result (``jax.block_until_ready``). With
    ``warm_up`` one call is made first and not counted.
    """
    if warm_up:
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def settle(fn, seconds: float) -> int:
    """Call ``fn()`` until ``seconds`` have passed (at least once); return the count.

    On the 2-core virtual machine the benchmarks were written on, a fresh
    process's multithreaded JAX code often runs 2 to 2.5 times slower for its
    first 1 to 7 seconds (seen with per-thread CPU accounting: both XLA
    threads busy on their own core, no steal time, the same work taking
    longer), then settles. Timing after this settles measures the steady
    state that a long fit or a service sees.
    """
    start, count = time.perf_counter(), 0
    while count == 0 or time.perf_counter() - start < seconds:
        fn()
        count += 1
    return count


def without_openblas_overrides() -> None:
    """Re-execute this script without the OpenBLAS overrides, if they are set."""
    if any(name in os.environ for name in OPENBLAS_VARIABLES):
        environment = {k: v for k, v in os.environ.items() if k not in OPENBLAS_VARIABLES}
        os.execve(sys.executable, [sys.executable] + sys.argv, environment)


def machine_description() -> str:
    """CPU model, cores, Python, JAX (platform), NumPy with its BLAS, scikit-learn."""
    import platform

    import jax
    import numpy as np
    import sklearn
    from threadpoolctl import threadpool_info

    model = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            model = next(line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    blas = ", ".join(
        f"{info['internal_api']} {info.get('version', '')} ({info.get('architecture', '?')}, {info['num_threads']} threads)"
        for info in threadpool_info() if info["user_api"] == "blas"
    )
    return (
        f"{model}, {os.cpu_count()} cores; Python {platform.python_version()}, "
        f"jax {jax.__version__} ({jax.devices()[0].platform}), numpy {np.__version__} [{blas}], "
        f"scikit-learn {sklearn.__version__}"
    )
