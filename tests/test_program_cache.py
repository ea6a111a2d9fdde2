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
    monkeypatch.setattr(_program_cache, "MAP_SHARE", 0.0)  # as if the maps were short
    monkeypatch.setattr(_program_cache, "_HEADROOM", [0])  # whatever earlier tests held
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
    monkeypatch.setattr(_program_cache, "MAP_SHARE", 0.0)
    monkeypatch.setattr(_program_cache, "_HEADROOM", [0])
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
    monkeypatch.setattr(_program_cache, "MAP_SHARE", 0.0)
    monkeypatch.setattr(_program_cache, "_HEADROOM", [0])
    _program_cache.release_if_full(old)
    _program_cache.release_if_full(other)
    assert (old.n, other.n) == (6, 3)
    in_use.n = 4  # it compiled (a sweep's padded programs)
    _program_cache.release_if_full(in_use)  # 13 held: drop the oldest until at most 5
    assert (old.n, other.n, in_use.n) == (0, 0, 4)


def _fake_registry(monkeypatch, *functions):
    monkeypatch.setattr(_program_cache, "_REGISTERED", list(functions))
    monkeypatch.setattr(_program_cache, "_LAST_USED", {})
    monkeypatch.setattr(_program_cache, "_HEADROOM", [0])
    monkeypatch.setattr(_program_cache, "MAX_PROGRAMS", 10)


def _fake_maps(monkeypatch, tmp_path, in_use: int, limit: int):
    """Point the map count at files: ``in_use`` maps of a system limit of ``limit``."""
    (tmp_path / "maps").write_text("map\n" * in_use)
    (tmp_path / "max_map_count").write_text(f"{limit}\n")
    monkeypatch.setattr(_program_cache, "_MAPS", str(tmp_path / "maps"))
    monkeypatch.setattr(_program_cache, "_MAP_LIMIT", str(tmp_path / "max_map_count"))


def test_programs_are_kept_while_the_memory_maps_have_room(monkeypatch, tmp_path):
    # A model-selection grid calls its programs again: dropping them at
    # MAX_PROGRAMS would compile them twice, so they stay while maps allow.
    _fake_maps(monkeypatch, tmp_path, in_use=10, limit=1000)
    old, in_use = _FakeJitted(8), _FakeJitted(4)
    _fake_registry(monkeypatch, old, in_use)
    _program_cache.release_if_full(old)
    _program_cache.release_if_full(in_use)  # 12 held, past MAX_PROGRAMS = 10
    assert (old.n, in_use.n) == (8, 4)
    assert _program_cache._HEADROOM[0] == 12 - 10 + 5  # next look 5 programs later
    in_use.n = 16  # 24 held: still below CEILING * MAX_PROGRAMS = 40
    _program_cache.release_if_full(in_use)
    assert (old.n, in_use.n) == (8, 16)
    in_use.n = 33  # 41 held: at the ceiling, drop until at most 5 are held
    _program_cache.release_if_full(in_use)
    assert (old.n, in_use.n) == (0, 0) and _program_cache._HEADROOM[0] == 0


def test_programs_are_dropped_when_the_memory_maps_run_short(monkeypatch, tmp_path):
    _fake_maps(monkeypatch, tmp_path, in_use=11, limit=40)  # more than a quarter of the limit
    old, in_use = _FakeJitted(8), _FakeJitted(0)
    _fake_registry(monkeypatch, old, in_use)
    _program_cache.release_if_full(old)
    in_use.n = 4  # 12 held, past MAX_PROGRAMS = 10
    _program_cache.release_if_full(in_use)
    assert (old.n, in_use.n) == (0, 4)
    # Where the maps cannot be counted (not Linux), the bound is MAX_PROGRAMS.
    monkeypatch.setattr(_program_cache, "_MAP_LIMIT", str(tmp_path / "absent"))
    old.n = 8
    _program_cache.release_if_full(in_use)
    assert (old.n, in_use.n) == (0, 4)
