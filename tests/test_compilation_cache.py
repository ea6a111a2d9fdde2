"""The opt-in persistent compilation cache (bayesgmm._compilation_cache)."""

import json
import os
import subprocess
import sys

import jax
import pytest

import bayesgmm
from bayesgmm import _compilation_cache

# A fit in a fresh process that reports its result and JAX's cache events.
# It leaves by os._exit once the report is out: under heavy load the XLA
# runtime has aborted while the interpreter shut down ("terminate called
# without an active exception", seen once in a full run), after the work
# this test checks.
_FIT = """
import json, os, sys
import jax, numpy as np
events = []
jax.monitoring.register_event_listener(lambda name, **kw: events.append(name))
from bayesgmm import GaussianMixture
X = np.random.default_rng(0).normal(size=(60, 2)); X[:30] += 5
model = GaussianMixture(2, random_state=0).fit(X)
print(json.dumps({
    "means": model.means_.tolist(), "bound": model.lower_bound_,
    "hits": events.count("/jax/compilation_cache/cache_hits"),
    "directory": jax.config.jax_compilation_cache_dir,
}), flush=True)
os._exit(0)
"""


def _fit_in_a_new_process(environment):
    result = subprocess.run(
        [sys.executable, "-c", _FIT], env=environment, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])


def test_a_second_process_reads_the_programs_the_first_compiled(tmp_path):
    environment = dict(os.environ, BAYESGMM_COMPILATION_CACHE=str(tmp_path / "cache"))
    first = _fit_in_a_new_process(environment)
    assert first["directory"] == str((tmp_path / "cache").resolve())
    assert first["hits"] == 0 and any((tmp_path / "cache").iterdir())
    second = _fit_in_a_new_process(environment)
    assert second["hits"] > 0
    assert second["means"] == first["means"] and second["bound"] == first["bound"]
    without = _fit_in_a_new_process({k: v for k, v in os.environ.items() if k != "BAYESGMM_COMPILATION_CACHE"})
    assert without["directory"] is None and without["means"] == first["means"]


@pytest.fixture
def jax_cache_settings():
    names = (
        "jax_compilation_cache_dir",
        "jax_persistent_cache_min_compile_time_secs",
        "jax_persistent_cache_min_entry_size_bytes",
    )
    saved = {name: getattr(jax.config, name) for name in names}
    yield
    for name, value in saved.items():
        jax.config.update(name, value)


def test_the_directory_is_set_once_and_a_second_one_is_refused(tmp_path, jax_cache_settings, monkeypatch):
    monkeypatch.delenv(_compilation_cache.ENVIRONMENT_VARIABLE, raising=False)  # the suite's own (conftest)
    jax.config.update("jax_compilation_cache_dir", None)
    path = bayesgmm.enable_compilation_cache(tmp_path / "programs")
    assert path == (tmp_path / "programs").resolve() and path.is_dir()
    assert jax.config.jax_compilation_cache_dir == str(path)
    assert jax.config.jax_persistent_cache_min_compile_time_secs == 0.0
    assert bayesgmm.enable_compilation_cache(str(tmp_path / "programs")) == path  # same: nothing to do
    assert bayesgmm.enable_compilation_cache() == path  # the directory JAX has
    with pytest.raises(ValueError) as error:
        bayesgmm.enable_compilation_cache(tmp_path / "other")
    assert str(error.value) == (
        f"JAX already keeps its compiled programs in {str(path)!r}; it reads that setting "
        f"once per process, so {str((tmp_path / 'other').resolve())!r} would be ignored. Call "
        "enable_compilation_cache() without a path to keep using it, or start a new process."
    )


def test_a_path_that_cannot_be_a_directory_is_refused(tmp_path, jax_cache_settings):
    jax.config.update("jax_compilation_cache_dir", None)
    (tmp_path / "file").write_text("")
    with pytest.raises(ValueError, match=r"^Cannot use '.*file' for compiled programs: .*Pass a directory"):
        bayesgmm.enable_compilation_cache(tmp_path / "file")
    with pytest.raises(ValueError, match=r"^path must be a directory name \(str or os.PathLike\), got int\.$"):
        bayesgmm.enable_compilation_cache(3)
    assert jax.config.jax_compilation_cache_dir is None


def test_the_default_directory_follows_xdg(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert _compilation_cache.default_directory() == tmp_path / "bayesgmm" / "jax"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert _compilation_cache.default_directory() == tmp_path / "home" / ".cache" / "bayesgmm" / "jax"
