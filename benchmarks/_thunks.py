"""Per-operation time of a jitted call, from JAX's profiler (XLA:CPU thunks).

``operation_times(compiled, args)`` runs ``compiled(*args)`` under
``jax.profiler.trace`` and adds up, per compiled operation (an XLA fusion, a
dot, a copy), the time the XLA worker threads spent in it. Operations are
named as in the optimised HLO and described by the JAX operation they came
from (``dot_general``, ``exp``, ``concatenate``...), so a profile says which
product or elementwise pass costs what, and whether the two cores overlap
(thread time above wall time) or take turns.
"""

from __future__ import annotations

import collections
import glob
import re
import tempfile

from _timing import median_time

# Events of the executor itself, not of an operation.
_BOOKKEEPING = ("ThunkExecutor", "SlinkyThreadPool", "ThreadpoolListener", "end:", "while")


def _descriptions(hlo_text: str) -> dict[str, str]:
    """Operation name -> the JAX operation it came from (HLO ``op_name`` metadata)."""
    described = {}
    for match in re.finditer(r"%([\w.\-]+) = [^\n]*?op_name=\"([^\"]+)\"", hlo_text):
        described[match.group(1)] = match.group(2).rsplit("/", 1)[-1]
    return described


def operation_times(compiled, args, repeats: int = 5) -> tuple[float, list[tuple[str, str, float]]]:
    """Median wall time per call and mean thread time per operation per call, in seconds.

    Parameters
    ----------
    compiled : jax.stages.Wrapped
        A ``jax.jit`` function.
    args : tuple
        Its arguments.
    repeats : int
        Calls traced (and timed); the figures are per call.

    Returns
    -------
    wall : float
    operations : list of (operation, description, seconds)
        Largest first.
    """
    import jax

    wall = median_time(lambda: jax.block_until_ready(compiled(*args)), repeats)
    with tempfile.TemporaryDirectory() as directory:
        with jax.profiler.trace(directory):
            for _ in range(repeats):
                jax.block_until_ready(compiled(*args))
        (path,) = glob.glob(f"{directory}/**/*.xplane.pb", recursive=True)
        profile = jax.profiler.ProfileData.from_file(path)
    totals: dict[str, float] = collections.defaultdict(float)
    for plane in profile.planes:
        for line in plane.lines:
            if "XLA" not in line.name and "PjRt" not in line.name:
                continue
            for event in line.events:
                if not event.name.startswith(_BOOKKEEPING):
                    totals[event.name] += event.duration_ns * 1e-9 / repeats
    described = _descriptions(compiled.lower(*args).compile().as_text())
    operations = [(name, described.get(name, ""), seconds) for name, seconds in totals.items()]
    return wall, sorted(operations, key=lambda row: -row[2])
