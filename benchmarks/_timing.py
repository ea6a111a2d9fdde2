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


def without_openblas_overrides() -> None:
    """Re-execute this script without the OpenBLAS overrides, if they are set."""
    if any(name in os.environ for name in OPENBLAS_VARIABLES):
        environment = {k: v for k, v in os.environ.items() if k not in OPENBLAS_VARIABLES}
        os.execve(sys.executable, [sys.executable] + sys.argv, environment)
