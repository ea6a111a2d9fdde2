"""Progress of long runs: verbose lines and progress bars, one reporter per run.

Compiled loops (EM's ``lax.while_loop``, the NUTS and SVI jobs) report through
``jax.debug.callback``. A compiled program is shared by every run of the
same shapes, so it cannot hold the run's printer; it holds a token, an
integer passed in as data, and :func:`dispatch` hands each callback to the
reporter registered under that token for the duration of its run
(:func:`registered`). Two fits in two threads therefore report to their own
reporters, and a cached program never holds a stale one.

The one rule for bars: only on a terminal (``sys.stderr.isatty()``), never
under CI (the ``CI`` environment variable).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import sys
import threading
import time

# Live reporters by token. Entries exist only while their run does; the lock
# makes registration and lookup safe from several threads and from the
# runtime threads that execute the callbacks.
_LOCK = threading.Lock()
_REPORTERS: dict[int, object] = {}
_TOKENS = itertools.count(1)

NO_REPORTER = 0  # the token of a run that reports nothing


def bar_allowed() -> bool:
    """Whether a progress bar may be shown: on a terminal, never under CI."""
    return not os.environ.get("CI") and sys.stderr.isatty()


def open_bar(total: int, description: str, unit: str = "it"):
    """A tqdm bar of ``total`` steps, closed by the caller (who checked :func:`bar_allowed`)."""
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=description, unit=unit, leave=False)


@contextlib.contextmanager
def registered(reporter):
    """Register ``reporter`` for one run; yields its token (``NO_REPORTER`` for None).

    Remove it only once the run's outputs have been read: on the host the
    callbacks of a computation have run when its outputs are ready.
    """
    if reporter is None:
        yield NO_REPORTER
        return
    with _LOCK:
        token = next(_TOKENS)
        _REPORTERS[token] = reporter
    try:
        yield token
    finally:
        with _LOCK:
            del _REPORTERS[token]


def run_reported(reporter, compiled_run):
    """``compiled_run(token)`` with ``reporter`` registered for it alone, then ``reporter.close()``.

    Parameters
    ----------
    reporter : object with ``close()``, or None
        Receives the run's reports (:func:`dispatch`); None: no reports.
    compiled_run : callable ``(token: jax.Array of shape ()) -> outputs``
        Waited for before the reporter is removed, so that every callback
        of the run has reached it.
    """
    import jax
    import jax.numpy as jnp

    try:
        with registered(reporter) as token:
            return jax.block_until_ready(compiled_run(jnp.asarray(token, jnp.int32)))
    finally:
        if reporter is not None:
            reporter.close()


def report(token, *values) -> None:
    """From inside a compiled loop: send ``values`` to the reporter of ``token``.

    ``jax.debug.callback`` moves its arguments to the host as JAX arrays in
    the runtime's thread, where float64 is off (bayesgmm never turns it on
    globally): a float64 bound would arrive rounded to float32. Floating
    values therefore travel as their bits (``uint32`` words) and are
    restored in :func:`dispatch`.
    """
    import jax
    import jax.numpy as jnp
    from jax import lax

    def encode(value):
        value = jnp.asarray(value)
        if jnp.issubdtype(value.dtype, jnp.floating):
            return lax.bitcast_convert_type(value, jnp.uint32)
        return value

    jax.debug.callback(dispatch, token, *(encode(value) for value in values))


def _decode(value):
    import numpy as np

    value = np.asarray(value)
    if value.dtype != np.uint32:
        return value
    if value.shape[-1:] == (2,):
        return value.view(np.float64)[..., 0]
    return value.view(np.float32)


def dispatch(token, *values) -> None:
    """Callback target of :func:`report`: pass ``values`` to the reporter of ``token``."""
    with _LOCK:
        reporter = _REPORTERS.get(int(token))
    if reporter is not None:
        reporter(*(_decode(value) for value in values))


class IterationReporter:
    """Verbose lines every ``interval`` EM iterations (scikit-learn's format) and a bar.

    Parameters
    ----------
    interval : int
        Print a line every ``interval`` iterations; 0 prints none.
    bar : tqdm bar, optional
        Advanced to each reported iteration; closed by :meth:`close`.
    """

    def __init__(self, interval: int = 0, bar=None):
        self.interval = interval
        self.bar = bar
        self.clock = time.perf_counter()

    def __call__(self, n_iter, change, lower_bound, running=True) -> None:
        """Report iteration ``n_iter``; nothing if ``running`` is False (a stopped candidate)."""
        if not bool(running):
            return
        n_iter = int(n_iter)
        if self.bar is not None and n_iter > self.bar.n:
            self.bar.update(n_iter - self.bar.n)
            self.bar.set_postfix(lower_bound=f"{float(lower_bound):.5f}", change=f"{float(change):.2e}")
        if self.interval and n_iter % self.interval == 0:
            now = time.perf_counter()
            # One write per line: print() writes the text and the newline
            # apart, and two fits in two threads would interleave them.
            sys.stdout.write(
                f"  Iteration {n_iter}\t time lapse {now - self.clock:.5f}s\t "
                f"ll change {float(change):.5f}\t lower bound {float(lower_bound):.5f}\n"
            )
            sys.stdout.flush()
            self.clock = now

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    @property
    def active(self) -> bool:
        """Whether this reporter shows anything (the compiled loop then reports)."""
        return bool(self.interval) or self.bar is not None
