"""Out-of-core EM with values missing at random: streamed fits of data with NaN.

The reference is the in-memory ``GaussianMixture(missing='marginalize').fit``
of the same data: the validation pass makes the in-memory checks and the
same mean-imputed start, and each chunk's statistics are the incomplete-data
statistics of its rows, so the fits agree up to rounding (1e-8, float64).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bayesgmm import GaussianMixture
from bayesgmm.mixture import forms, incomplete, parameters, sources, streaming
from bayesgmm.mixture.chunks import ChunkLayout, staged_chunks
from tests.mixture.chunked import ChunkedArray, CountingStream, write_memmap
from tests.mixture.test_streaming import assert_same_fit

EM = dict(tol=1e-8, max_iter=500, missing="marginalize")


@pytest.fixture
def small_chunks(monkeypatch):
    """Chunks of 128 rows for 3 features, so the 940-point data span 8 chunks."""
    monkeypatch.setattr(streaming, "DEFAULT_CHUNK_BYTES", 100 * 3 * 8)


@pytest.fixture
def holes(unequal_3d):
    """unequal_3d with 15 % of the entries missing, the first 128-row chunk complete."""
    X, _ = unequal_3d
    rng = np.random.default_rng(5)
    X = np.where(rng.random(X.shape) < 0.15, np.nan, X)
    X[:128] = unequal_3d[0][:128]
    X[np.isnan(X).all(axis=1), 0] = 1.0
    return X


@pytest.fixture
def weights(holes):
    rng = np.random.default_rng(3)
    weights = rng.uniform(0.2, 2.0, size=holes.shape[0])
    weights[rng.choice(holes.shape[0], 50, replace=False)] = 0.0
    return weights


def test_memmap_with_missing_values_equals_in_memory_fit(holes, weights, tmp_path, small_chunks):
    X = holes.copy()
    X[[300, 301]] = np.nan  # all-missing rows of weight 0: left out, as in memory
    weights = weights.copy()
    weights[[300, 301]] = 0.0
    params = dict(n_components=3, random_state=0, **EM)
    reference = GaussianMixture(**params).fit(X, sample_weight=weights)
    programs = streaming.add_incomplete_chunk_statistics._cache_size()
    streamed = GaussianMixture(**params).fit(
        write_memmap(tmp_path / "X.f64", X), sample_weight=write_memmap(tmp_path / "w.f64", weights)
    )
    assert reference.n_iter_ > 5
    assert_same_fit(streamed, reference)
    # 7 of the 8 chunks have incomplete rows: their tiles share a few shapes (programs).
    assert streaming.add_incomplete_chunk_statistics._cache_size() - programs <= 2


def test_chunk_sources_with_missing_values_equal_in_memory_fit(holes, small_chunks):
    # Restarts, another structure, a callable of ragged weighted chunks and a chunked array.
    params = dict(n_components=3, covariance_type="diag", random_state=1, n_init=2, init_params="k-means++", **EM)
    weights = np.random.default_rng(2).uniform(0.5, 2.0, holes.shape[0])
    reference = GaussianMixture(**params).fit(holes, sample_weight=weights)
    bounds = [0, 1, 40, 41, 300, 700, holes.shape[0]]
    stream = CountingStream([(holes[a:b], weights[a:b]) for a, b in zip(bounds[:-1], bounds[1:])])
    assert_same_fit(GaussianMixture(**params).fit(stream), reference)
    assert stream.calls > reference.n_iter_  # the validation pass, then one pass per iteration
    chunked = ChunkedArray(holes, rows_per_chunk=64)
    assert_same_fit(GaussianMixture(**params).fit(chunked, sample_weight=weights), reference)


def test_complete_data_take_the_usual_streamed_path(unequal_3d, tmp_path, small_chunks, monkeypatch):
    X, _ = unequal_3d

    def refuse(*args, **kwargs):
        raise AssertionError("complete data went through the incomplete-data statistics")

    monkeypatch.setattr(streaming, "add_incomplete_chunk_statistics", refuse)
    params = dict(n_components=3, random_state=0, tol=1e-8, max_iter=500)
    memmap = write_memmap(tmp_path / "X.f64", X)
    marginalized = GaussianMixture(missing="marginalize", **params).fit(memmap)
    assert_same_fit(marginalized, GaussianMixture(**params).fit(memmap), tolerance=0)


def test_streamed_missing_values_are_checked_as_in_memory(holes, tmp_path, small_chunks):
    X = holes.copy()
    X[517] = np.nan
    memmap = write_memmap(tmp_path / "row.f64", X)
    message = (r"^Row 517 of X has every value missing: it has no likelihood\. Remove it, or give it "
               r"sample_weight 0 \(rows of weight 0 are left out of the fit\)\.$")
    for data in (memmap, X, CountingStream([X[:500], X[500:]])):
        with pytest.raises(ValueError, match=message):
            GaussianMixture(3, **EM).fit(data)
    X = holes.copy()
    X[:, 0], X[:, 2] = np.nan_to_num(X[:, 0], nan=1.0), np.nan
    message = (r"^Column 2 of X has no observed value \(every entry is missing\): it cannot be "
               r"estimated\. Remove the column\.$")
    for data in (write_memmap(tmp_path / "column.f64", X), X):
        with pytest.raises(ValueError, match=message):
            GaussianMixture(3, **EM).fit(data)
    with pytest.raises(ValueError, match=r"^X contains NaN in chunk 1 at row 29 \(row 129 of the data\), "
                                         r"column 1\. Remove or impute .* missing='marginalize'"):
        GaussianMixture(3).fit(write_memmap(tmp_path / "raise.f64", holes))
    infinite = holes.copy()
    infinite[600, 1] = np.inf
    with pytest.raises(ValueError, match=r"X contains infinity in chunk \d+ at row \d+ \(row 600 of the data\)"):
        GaussianMixture(3, **EM).fit(write_memmap(tmp_path / "inf.f64", infinite))



def test_direct_form_statistics_pass_equals_the_in_memory_statistics(holes, weights):
    """The centred form (the driver's retry), which the fits above do not reach."""
    with parameters.precision_scope(np.float64):
        _compare_statistics(holes, weights, forms.DIRECT)


def _compare_statistics(holes, weights, form):
    n_components, n_features = 3, holes.shape[1]
    centre = incomplete.observed_mean(holes, weights)
    covariances = np.stack([np.eye(n_features) * (1 + k) for k in range(n_components)])
    params = parameters.GMMParams(
        jnp.full(n_components, 1 / n_components),
        jnp.asarray(np.random.default_rng(0).normal(size=(n_components, n_features))),
        jnp.asarray(covariances),
        jnp.asarray(np.linalg.cholesky(np.linalg.inv(covariances))),
    )
    layout = ChunkLayout.create(128, holes.shape[0], n_components, n_features)
    chunks = staged_chunks(sources.ArraySource(holes, weights), layout, centre, holes.shape[0],
                           np.float64, missing=True)
    streamed = streaming.statistics_pass(chunks, jax.tree_util.tree_map(lambda leaf: leaf[None], params),
                                         "full", form)
    data, weight_blocks = incomplete.put_incomplete(holes, weights, centre, n_components, "full")
    in_memory = jax.jit(incomplete.incomplete_statistics, static_argnames=("covariance_type", "form"))
    reference = in_memory(data, weight_blocks, params, covariance_type="full", form=form)
    for name, value, expected in zip(reference._fields, streamed, reference):
        np.testing.assert_allclose(value[0], expected, rtol=1e-10, atol=1e-10, err_msg=name)
