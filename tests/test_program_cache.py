"""The bound on compiled programs: many shapes in one process neither crash nor change results."""

import os

import numpy as np
import pytest

from bayesgmm import GaussianMixture, _program_cache
from bayesgmm.mixture import engine


def _memory_maps() -> int:
    with open("/proc/self/maps") as maps:
        return sum(1 for _ in maps)


def test_every_jitted_function_is_registered():
    from bayesgmm.bayes import nuts, posterior, svi  # noqa: F401  (registered on import)
    from bayesgmm.mixture import online, streaming  # noqa: F401

    names = {getattr(fn, "__name__", "") for fn in _program_cache._REGISTERED}
    assert {"_run_em", "predict_blocks", "initial_params_from_responsibilities",
            "add_chunk_statistics", "em_update", "stepwise_update", "_chains",
            "_posterior_job", "_log_likelihoods", "_svi_job"} <= names


def test_programs_are_dropped_at_the_bound_and_fits_stay_the_same(monkeypatch):
    X = np.random.default_rng(0).normal(size=(300, 8))
    reference = GaussianMixture(2, random_state=0).fit(X[:, :3])
    monkeypatch.setattr(_program_cache, "MAX_PROGRAMS", 4)
    held = []
    for n_features in range(2, 9):
        GaussianMixture(2, random_state=0).fit(X[:, :n_features]).predict(X[:, :n_features])
        held.append(_program_cache._held())
    # One fit and predict compile 3 programs; the bound is checked before each call.
    assert max(held) <= 4 + 2
    assert min(held) < max(held)  # programs were dropped along the way
    again = GaussianMixture(2, random_state=0).fit(X[:, :3])  # recompiled after being dropped
    np.testing.assert_array_equal(again.means_, reference.means_)
    assert again.n_iter_ == reference.n_iter_


@pytest.mark.skipif(not os.path.exists("/proc/self/maps"), reason="Linux only")
def test_many_shapes_do_not_accumulate_memory_maps(monkeypatch):
    # About 180 maps per new shape without the bound: 300 shapes would pass
    # Linux's default limit of 65530 and crash the next compilation.
    monkeypatch.setattr(_program_cache, "MAX_PROGRAMS", 6)
    X = np.random.default_rng(1).normal(size=(200, 12))
    GaussianMixture(2).fit(X[:, :2])
    start = _memory_maps()
    for n_features in range(3, 13):
        GaussianMixture(2).fit(X[:, :n_features])
    assert _memory_maps() - start < 6 * 180  # unbounded: about 10 * 180


def test_bounded_function_keeps_the_jitted_interface():
    assert engine.predict_blocks.__name__ == "predict_blocks"
    assert callable(engine.predict_blocks.lower) and callable(engine.predict_blocks.clear_cache)
    assert isinstance(engine.predict_blocks._cache_size(), int)


class _FakeJitted:
    """Stands in for a jitted function holding ``n`` programs."""

    def __init__(self, n):
        self.n = n

    def _cache_size(self):
        return self.n

    def clear_cache(self):
        self.n = 0


def test_the_least_recently_used_functions_are_dropped_first(monkeypatch):
    old, other, in_use = _FakeJitted(6), _FakeJitted(3), _FakeJitted(0)
    monkeypatch.setattr(_program_cache, "_REGISTERED", [in_use, old, other])
    monkeypatch.setattr(_program_cache, "_LAST_USED", {})
    monkeypatch.setattr(_program_cache, "MAX_PROGRAMS", 10)
    _program_cache.release_if_full(old)
    _program_cache.release_if_full(other)
    assert (old.n, other.n) == (6, 3)
    in_use.n = 4  # it compiled (a sweep's padded programs)
    _program_cache.release_if_full(in_use)  # 13 held: drop the oldest until at most 5
    assert (old.n, other.n, in_use.n) == (0, 0, 4)
