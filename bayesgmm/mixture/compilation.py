"""XLA compiler options chosen per call: by dtype and structure, and by the work of the call.

:class:`CompiledPerVariant` is ``jax.jit`` of one function that compiles a
variant per set of compiler options and picks the variant from the
arguments of each call (the data's dtype, the covariance structure, the
size of one pass), so that the choice is a value of the call and not a
global setting.
"""

from __future__ import annotations

import functools
import threading
from typing import Callable

import jax
import numpy as np

from bayesgmm import _program_cache, structures
from bayesgmm.mixture import quadratic

_YNN = "xla_cpu_experimental_ynn_fusion_type"

# XLA:CPU hands matrix products and reductions to YNNPACK by default. What is
# fastest depends on the dtype and on the width of the features (measured per
# E-step pass at N=1M, D=16, K=16 on 2 cores, medians of 21 interleaved runs):
# - float32: XLA's own emitter for everything ('full' 86 vs 102 ms; 'diag' and
#   'spherical' equal, 30 and 28 ms).
# - float64 'diag' and 'spherical': YNNPACK for the elementwise fusions too
#   (the exponential of the responsibilities and the feature build):
#   'diag' 50 vs 53 ms, 'spherical' 37 vs 45 ms.
# - float64 'full' and 'tied': the default (160 ms; 210 with elementwise YNN).
# Other backends ignore these options.
CPU_COMPILER_OPTIONS = {
    "float32": {_YNN: ""},
    "float64-narrow": {
        _YNN: "LIBRARY_FUSION_TYPE_DOT,LIBRARY_FUSION_TYPE_ELTWISE,LIBRARY_FUSION_TYPE_REDUCE"
    },
}

# A program that runs once per fit (the initial M-step) and whose one pass
# is at most this many multiply-adds is compiled without LLVM's
# optimisations on the CPU: that saves 0.06-0.2 s of its compilation and
# costs it about 0.2 ms per million multiply-adds in each run (measured: a
# 20,000 x 8 'full' fit padded to 16 components, 1.4e7, compiled 0.43 ->
# 0.25 s and ran 5.6 -> 8.5 ms). The limit keeps that cost under a
# millisecond, so that a sweep run again in a process (every fit pays it)
# loses nothing a user would see. Loops (the EM program) keep the optimised
# code, which runs several times faster.
QUICK_COMPILE_WORK = 1 << 22
QUICK_COMPILE_OPTIONS = {"xla_backend_optimization_level": 0}


def cpu_variant(dtype, covariance_type: str) -> str | None:
    """The key of ``CPU_COMPILER_OPTIONS`` for a fit, or None for XLA's defaults."""
    if np.dtype(dtype) == np.float32:
        return "float32"
    if structures.get(covariance_type).narrow_features:
        return "float64-narrow"
    return None


def pass_work(data, n_components: int, covariance_type: str) -> int:
    """Multiply-adds of one pass over ``data`` (..., n_features) for ``n_components`` components."""
    n_features = data.shape[-1]
    rows = int(np.prod(data.shape[:-1]))
    return rows * quadratic.feature_count(n_features, covariance_type) * max(int(n_components), 1)


def _on_cpu(data) -> bool:
    platforms = {device.platform for device in getattr(data, "devices", lambda: ())()}
    return platforms == {"cpu"} if platforms else jax.default_backend() == "cpu"


class CompiledPerVariant:
    """``jax.jit`` of ``fn`` with compiler options chosen by each call's arguments.

    Called like ``fn(data, *args, covariance_type=..., **kwargs)``. On the
    CPU the options are ``cpu_options[cpu_variant(data.dtype,
    covariance_type)]`` when that key is given, plus
    :data:`QUICK_COMPILE_OPTIONS` when ``one_pass_work(data, *args,
    covariance_type=..., **kwargs)`` is at most :data:`QUICK_COMPILE_WORK`;
    elsewhere XLA's defaults. Each set of options is its own jitted
    function (compiled on first use, counted in the bound of
    :mod:`bayesgmm._program_cache`).

    Parameters
    ----------
    fn : callable
    static_argnames : tuple of str
    cpu_options : dict of str to dict, optional
        Options per :func:`cpu_variant` key.
    one_pass_work : callable, optional
        For programs that make one pass over the data: its multiply-adds.
        None: never the quick options.
    """

    def __init__(self, fn, static_argnames, cpu_options=None, one_pass_work: Callable | None = None):
        self._fn = fn
        self._static_argnames = static_argnames
        self._cpu_options = dict(cpu_options or {})
        self._one_pass_work = one_pass_work
        self._variants = {}
        self._lock = threading.Lock()
        self._default = self._jitted((None, False))
        functools.update_wrapper(self, fn)

    def _jitted(self, key):
        with self._lock:
            jitted = self._variants.get(key)
            if jitted is None:
                name, quick = key
                options = dict(self._cpu_options.get(name, {}))
                if quick:
                    options.update(QUICK_COMPILE_OPTIONS)
                jitted = _program_cache.register(jax.jit(
                    self._fn, static_argnames=self._static_argnames, compiler_options=options or None
                ))
                self._variants[key] = jitted
            return jitted

    def variant(self, name: str | None = None, quick: bool = False):
        """The jitted function of one set of options: ``cpu_options[name]``, plus the quick ones."""
        return self._jitted((name if name in self._cpu_options else None, quick))

    def _variant(self, data, args, kwargs):
        if not _on_cpu(data):
            return self._default
        quick = (
            self._one_pass_work is not None
            and self._one_pass_work(data, *args, **kwargs) <= QUICK_COMPILE_WORK
        )
        return self.variant(cpu_variant(data.dtype, kwargs["covariance_type"]), quick)

    def __call__(self, data, *args, **kwargs):
        jitted = self._variant(data, args, kwargs)
        _program_cache.release_if_full(jitted)
        return jitted(data, *args, **kwargs)

    def lower(self, data, *args, **kwargs):
        """The lowering of the variant this call would run."""
        return self._variant(data, args, kwargs).lower(data, *args, **kwargs)

    def clear_cache(self) -> None:
        for jitted in list(self._variants.values()):
            jitted.clear_cache()

    def _cache_size(self) -> int:
        """Compiled programs held (all variants), for tests that count compilations."""
        return sum(jitted._cache_size() for jitted in list(self._variants.values()))
