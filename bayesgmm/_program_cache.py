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
together they hold ``MAX_PROGRAMS`` programs or more, the process's memory
maps are counted (``/proc/self/maps``): while they stay below
``MAP_SHARE`` of the system's limit (``vm.max_map_count``) and fewer than
``CEILING * MAX_PROGRAMS`` programs are held, everything is kept and the
next look comes ``MAX_PROGRAMS // 2`` programs later, since dropping
programs that a model-selection grid calls again (14 structures, each K a
program of its own on large data) costs their compilation a second time.
Otherwise, or where the maps cannot be counted, the caches of the functions
used least recently are dropped until at most half of ``MAX_PROGRAMS`` is
held (the next call of each recompiles; programs in use are kept alive by
their callers). The function about to be called goes last, so a sweep that
keeps calling the same few functions (EM over padded components compiles
one program per covariance type) keeps its programs while older ones go.
Other JAX code of the user is not touched.
"""

from __future__ import annotations

import functools
import itertools
import threading

from bayesgmm._compilation_cache import enable_from_environment

MAX_PROGRAMS = 96

# Every jitted module of bayesgmm imports this one, so the environment's
# cache directory is set before bayesgmm compiles its first program.
enable_from_environment()

# Programs are kept past MAX_PROGRAMS while the process holds fewer than
# this share of the system's memory maps, up to CEILING * MAX_PROGRAMS.
MAP_SHARE = 0.25
CEILING = 4

_MAPS = "/proc/self/maps"
_MAP_LIMIT = "/proc/sys/vm/max_map_count"

# Registered jitted functions and the tick of their last call; the lock
# keeps registration, calls and release consistent across threads.
_LOCK = threading.RLock()
_REGISTERED: list = []
_LAST_USED: dict[int, int] = {}
_CLOCK = itertools.count()
# Programs allowed above MAX_PROGRAMS before the maps are counted again.
_HEADROOM = [0]


def _held() -> int:
    return sum(fn._cache_size() for fn in _REGISTERED)


def _maps_have_room() -> bool:
    """Whether the process holds fewer than ``MAP_SHARE`` of the system's memory maps."""
    try:
        with open(_MAP_LIMIT) as handle:
            limit = int(handle.read())
        with open(_MAPS) as handle:
            in_use = sum(1 for _ in handle)
    except (OSError, ValueError):
        return False
    return in_use < MAP_SHARE * limit


def release_if_full(calling=None) -> None:
    """Drop compiled programs, least recently used functions first, if there are too many.

    Parameters
    ----------
    calling : jitted function, optional
        The registered function about to be called: marked as used now, and
        cleared only if clearing every other function is not enough.
    """
    with _LOCK:
        if calling is not None:
            _LAST_USED[id(calling)] = next(_CLOCK)
        held = _held()
        if held < MAX_PROGRAMS + _HEADROOM[0]:
            return
        if held < CEILING * MAX_PROGRAMS and _maps_have_room():
            _HEADROOM[0] = held - MAX_PROGRAMS + MAX_PROGRAMS // 2
            return
        _HEADROOM[0] = 0
        oldest_first = sorted(_REGISTERED, key=lambda fn: _LAST_USED.get(id(fn), -1))
        for fn in oldest_first:
            if held <= MAX_PROGRAMS // 2:
                break
            held -= fn._cache_size()
            fn.clear_cache()


def register(jitted):
    """Count ``jitted`` (a ``jax.jit`` function) in the bound; returns it unchanged."""
    with _LOCK:
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
        release_if_full(self._jitted)
        return self._jitted(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._jitted, name)


def bounded(jitted) -> Bounded:
    """Decorator form of :class:`Bounded`, applied on top of ``jax.jit``."""
    return Bounded(jitted)
