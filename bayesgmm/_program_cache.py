"""A bound on the compiled programs that bayesgmm keeps alive in one process.

Every new problem shape (samples bucket, features, components, covariance
type, dtype, settings) compiles new XLA programs, and ``jax.jit`` keeps them
all. On the CPU, XLA maps every kernel of a program into memory on its own:
one fit of a new shape adds about 180 memory maps, so a process that fits a
few hundred different shapes (a long notebook, a model-selection sweep,
scikit-learn's ``check_estimator``) reaches Linux's default limit of 65530
maps (``vm.max_map_count``), and LLVM then crashes the process while it
compiles the next program.

Every jitted function of bayesgmm is registered here. Before each call, if
together they hold ``MAX_PROGRAMS`` programs or more, all their caches are
dropped (the next call of each recompiles; programs in use are kept alive
by their callers). Other JAX code of the user is not touched.
"""

from __future__ import annotations

import functools

MAX_PROGRAMS = 96

_REGISTERED: list = []


def _held() -> int:
    return sum(fn._cache_size() for fn in _REGISTERED)


def release_if_full() -> None:
    """Drop the compiled programs of every registered function if there are too many."""
    if _held() >= MAX_PROGRAMS:
        for fn in _REGISTERED:
            fn.clear_cache()


def register(jitted):
    """Count ``jitted`` (a ``jax.jit`` function) in the bound; returns it unchanged."""
    _REGISTERED.append(jitted)
    return jitted


class Bounded:
    """A ``jax.jit`` function that first keeps the bound, then calls through.

    Attributes (``lower``, ``_cache_size``, ``clear_cache``, ...) are the
    jitted function's own.
    """

    def __init__(self, jitted):
        self._jitted = register(jitted)
        functools.update_wrapper(self, jitted)

    def __call__(self, *args, **kwargs):
        release_if_full()
        return self._jitted(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._jitted, name)


def bounded(jitted) -> Bounded:
    """Decorator form of :class:`Bounded`, applied on top of ``jax.jit``."""
    return Bounded(jitted)
