"""Exact out-of-core EM (memmap, chunked arrays, callables): the streamed data pass.

The reference is always the in-memory ``GaussianMixture.fit`` on the same
data with the same initialisation: EM's statistics are sums over the rows,
so reading them chunk by chunk must give the same fit up to rounding (1e-8,
float64).
"""

import warnings

import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

from bayesgmm import GaussianMixture
from bayesgmm.mixture import (
    blocks,
    forms,
    parameters,
    streaming,
)
from tests.mixture.chunked import ChunkedArray, CountingStream, write_memmap

FITTED = (
    "weights_",
    "means_",
    "covariances_",
    "precisions_",
    "precisions_cholesky_",
    "lower_bounds_",
)

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")


def assert_same_fit(fitted, reference, tolerance=1e-8):
    for name in FITTED:
        np.testing.assert_allclose(
            getattr(fitted, name),
            getattr(reference, name),
            rtol=tolerance,
            atol=tolerance,
            err_msg=name,
        )
    assert fitted.n_iter_ == reference.n_iter_
    assert fitted.converged_ == reference.converged_
    assert fitted.lower_bound_ == pytest.approx(reference.lower_bound_, rel=tolerance)
    assert fitted.n_features_in_ == reference.n_features_in_


@pytest.fixture
def small_chunks(monkeypatch):
    """Chunks of 128 rows for 3 features, so the 940-point data span 8 chunks."""
    monkeypatch.setattr(streaming, "DEFAULT_CHUNK_BYTES", 100 * 3 * 8)


@pytest.fixture
def weights(unequal_3d):
    rng = np.random.default_rng(3)
    weights = rng.uniform(0.2, 2.0, size=unequal_3d[0].shape[0])
    weights[rng.choice(weights.shape[0], 50, replace=False)] = 0.0
    return weights


# --------------------------------------------------------------------------
# Exact out-of-core EM
# --------------------------------------------------------------------------


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_memmap_fit_equals_in_memory_fit(
    unequal_3d, weights, tmp_path, small_chunks, covariance_type
):
    X, _ = unequal_3d
    # Random responsibilities start far from the optimum: a long trajectory to follow.
    params = dict(
        n_components=3,
        covariance_type=covariance_type,
        init_params="random",
        tol=1e-7,
        max_iter=500,
        random_state=0,
    )
    reference = GaussianMixture(**params).fit(X, sample_weight=weights)
    X_file = write_memmap(tmp_path / "X.f64", X)
    weight_file = write_memmap(tmp_path / "w.f64", weights)
    streamed = GaussianMixture(**params).fit(X_file, sample_weight=weight_file)
    assert reference.n_iter_ > 10  # a real trajectory, not a two-step fit
    assert_same_fit(streamed, reference)


def test_callable_of_ragged_weighted_chunks_equals_in_memory_fit(unequal_3d, weights, small_chunks):
    X, _ = unequal_3d
    bounds = [0, 1, 40, 41, 300, 700, X.shape[0]]  # a 1-row chunk, chunks across the 128-row chunks
    stream = CountingStream([(X[a:b], weights[a:b]) for a, b in zip(bounds[:-1], bounds[1:])])
    params = dict(n_components=3, tol=1e-7, max_iter=500, random_state=1, init_params="k-means++")
    streamed = GaussianMixture(**params).fit(stream)
    reference = GaussianMixture(**params).fit(X, sample_weight=weights)
    assert_same_fit(streamed, reference)
    assert stream.calls == reference.n_iter_ + 1  # the validation pass, then one pass per iteration


def test_duck_typed_chunked_array_with_restarts_equals_in_memory_fit(unequal_3d, small_chunks):
    X, _ = unequal_3d
    source = ChunkedArray(X.astype(np.float32), rows_per_chunk=64)
    params = dict(n_components=3, covariance_type="diag", n_init=3, random_state=2, tol=1e-7,
                  dtype="float64")  # float32 data fitted in float64: both fits agree to 1e-8
    streamed = GaussianMixture(**params).fit(source)
    reference = GaussianMixture(**params).fit(X.astype(np.float32))
    assert_same_fit(streamed, reference)


def test_user_initialisation_and_warm_start_equal_in_memory(unequal_3d, tmp_path, small_chunks):
    X, _ = unequal_3d
    start = GaussianMixture(3, covariance_type="tied", max_iter=2, random_state=0).fit(X)
    init = dict(
        weights_init=start.weights_, means_init=start.means_, precisions_init=start.precisions_
    )
    params = dict(
        n_components=3, covariance_type="tied", max_iter=4, tol=0.0, warm_start=True, **init
    )
    X_file = write_memmap(tmp_path / "X.f64", X)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        streamed, reference = GaussianMixture(**params), GaussianMixture(**params)
        for _ in range(2):  # the second fit starts from the first one's result
            streamed.fit(X_file)
            reference.fit(X)
            assert_same_fit(streamed, reference)


def test_initialisation_sample_is_used_when_the_data_are_larger(tmp_path):
    rng = np.random.default_rng(0)
    centres = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    X = np.repeat(centres, 2000, axis=0) + rng.normal(size=(6000, 2))  # sorted by component
    X_file = write_memmap(tmp_path / "X.f64", X)
    result = streaming.fit_streaming(
        X_file, n_components=3, init_size=300, chunk_size=1000, random_state=0
    )
    reference = GaussianMixture(3, random_state=0).fit(X)
    # The first 300 rows are all from one component; a uniform sample finds the three.
    np.testing.assert_allclose(np.sort(result.params.weights), [1 / 3] * 3, atol=0.01)
    assert result.lower_bound == pytest.approx(reference.lower_bound_, abs=1e-6)
    again = streaming.fit_streaming(
        X_file, n_components=3, init_size=300, chunk_size=1000, random_state=0
    )
    np.testing.assert_array_equal(again.params.means, result.params.means)


def test_chunk_program_compiles_once_per_shape(unequal_3d, tmp_path, small_chunks):
    X, _ = unequal_3d
    model = GaussianMixture(3, covariance_type="spherical", random_state=0)
    model.fit(write_memmap(tmp_path / "a.f64", X))
    before = streaming.add_chunk_statistics._cache_size()
    other = X[::-1] + 1.0  # other values, same shape: same program for every chunk
    model.fit(write_memmap(tmp_path / "b.f64", other))
    assert streaming.add_chunk_statistics._cache_size() == before


def test_statistics_pass_reads_the_next_chunk_while_one_computes(unequal_3d, monkeypatch):
    X, _ = unequal_3d
    events = []
    compute = streaming.add_chunk_statistics

    def recorded_compute(total, X_blocks, *args, **kwargs):
        events.append("compute")
        return compute(total, X_blocks, *args, **kwargs)

    def reading():
        for start in range(0, 800, 200):
            events.append("read")
            yield blocks.to_blocks(X[start : start + 200], 100, 2), np.ones((2, 100))

    monkeypatch.setattr(streaming, "add_chunk_statistics", recorded_compute)
    with parameters.precision_scope("float64"):
        means = jnp.asarray(X[[0, 400, 900]])
        eye = jnp.broadcast_to(jnp.eye(3), (3, 3, 3))
        params = parameters.GMMParams(jnp.full(3, 1 / 3), means, eye, eye)
        batched = parameters.GMMParams(*(leaf[None] for leaf in params))
        total = streaming.statistics_pass(reading(), batched, "full")
        direct = forms.accumulate_statistics(
            jnp.asarray(X[:800])[None], jnp.ones((1, 800)), params, "full"
        )
    # Chunk i+1 is read after chunk i is dispatched, before its result is awaited.
    assert events == ["read", "compute"] * 4
    for summed, reference in zip(total, direct):
        np.testing.assert_allclose(np.asarray(summed)[0], np.asarray(reference), rtol=1e-12)


@pytest.mark.parametrize("library", ["dask.array", "zarr"])
def test_dask_and_zarr_arrays(library, unequal_3d, tmp_path, small_chunks):
    module = pytest.importorskip(library)
    X, _ = unequal_3d
    if library == "zarr":
        source = module.open(
            str(tmp_path / "X.zarr"), mode="w", shape=X.shape, chunks=(200, 3), dtype="f8"
        )
        source[:] = X
    else:
        source = module.from_array(X, chunks=(200, 3))
    streamed = GaussianMixture(3, random_state=0).fit(source)
    assert_same_fit(streamed, GaussianMixture(3, random_state=0).fit(X))


def test_verbose_fit_prints_like_the_in_memory_fit(unequal_3d, tmp_path, capsys):
    X, _ = unequal_3d
    params = dict(n_components=3, n_init=2, verbose=2, verbose_interval=1, random_state=0)
    GaussianMixture(**params).fit(write_memmap(tmp_path / "X.f64", X))
    lines = capsys.readouterr().out.splitlines()
    assert lines[:2] == ["Initialization 0", "Initialization 1"]
    assert sum(line.strip().startswith("Iteration 1\t") for line in lines) == 2  # one per restart
    assert lines[-1].startswith("Initialization converged. time lapse")


def test_docstring_examples_run():
    import doctest

    result = doctest.testmod(streaming, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0 and result.attempted >= 8
