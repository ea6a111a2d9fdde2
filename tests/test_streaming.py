"""Out-of-core EM (memmap, chunked arrays, callables) and online EM (partial_fit).

The reference is always the in-memory ``GaussianMixture.fit`` on the same
data with the same initialisation: EM's statistics are sums over the rows,
so reading them chunk by chunk must give the same fit up to rounding (1e-8,
float64).
"""

import os
import warnings

import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

from bayesgmm import GaussianMixture
from bayesgmm.mixture import (
    blocks,
    forms,
    mstep,
    online,
    parameters,
    sources,
    streaming,
)

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


def write_memmap(path, array):
    array.tofile(path)
    return np.memmap(path, dtype=array.dtype, mode="r", shape=array.shape)


class ChunkedArray:
    """A zarr-like array: shape, dtype, ndim, chunks and row slicing, and nothing else.

    No ``__array__``: anything that tried to load it whole would fail.
    """

    def __init__(self, data, rows_per_chunk):
        self._data = data
        self.shape, self.dtype, self.ndim = data.shape, data.dtype, data.ndim
        self.chunks = (rows_per_chunk, data.shape[1])
        self.reads = 0

    def __getitem__(self, key):
        self.reads += 1
        return self._data[key].copy()


class CountingStream:
    """A callable returning the chunks of ``parts`` on every call, counting the calls."""

    def __init__(self, parts):
        self.parts = parts
        self.calls = 0

    def __call__(self):
        self.calls += 1
        return iter(self.parts)


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
    params = dict(n_components=3, covariance_type="diag", n_init=3, random_state=2, tol=1e-7)
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


def test_reservoir_sample_is_uniform_and_keeps_short_streams_whole():
    rng = np.random.RandomState(0)
    rows = np.arange(20.0)[:, None]
    counts = np.zeros(20)
    for _ in range(2000):
        reservoir = sources.Reservoir(5, 1, np.float64, weighted=False)
        for start in range(0, 20, 7):
            reservoir.add(rows[start : start + 7], None, rng)
        sample, _ = reservoir.sample()
        assert len(set(sample[:, 0])) == 5
        counts[sample[:, 0].astype(int)] += 1
    # Inclusion probability 5/20 for every row; 5 standard deviations is 0.048.
    np.testing.assert_allclose(counts / 2000, 0.25, atol=0.05)
    short = sources.Reservoir(50, 1, np.float64, weighted=False)
    state = rng.get_state()[1].copy()
    short.add(rows, None, rng)
    np.testing.assert_array_equal(short.sample()[0], rows)
    np.testing.assert_array_equal(rng.get_state()[1], state)  # no draws: same init as in memory


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


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="reads Linux's /proc")
def test_read_memmap_pages_leave_resident_memory(tmp_path):
    def resident_file_mb():
        with open("/proc/self/status") as status:
            line = next(line for line in status if line.startswith("RssFile"))
        return int(line.split()[1]) / 1024

    X_file = write_memmap(tmp_path / "big.f64", np.ones((1 << 22, 2)))  # 64 MiB
    before = resident_file_mb()
    rows = X_file[: 1 << 21]
    assert float(rows.sum()) == 1 << 22  # touches 32 MiB of pages
    assert resident_file_mb() - before > 24
    sources.release_pages(rows)
    assert resident_file_mb() - before < 8


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


# --------------------------------------------------------------------------
# Bad input: clear errors before any EM work
# --------------------------------------------------------------------------


def test_array_errors_before_reading_any_data(tmp_path):
    ints = write_memmap(tmp_path / "i.i8", np.arange(20).reshape(10, 2))
    with pytest.raises(ValueError, match="dtype int64; chunked data must be float32 or float64"):
        GaussianMixture(2).fit(ints)
    flat = write_memmap(tmp_path / "flat.f64", np.zeros(10))
    with pytest.raises(ValueError, match="1 dimension.*shape=\\(n_samples, n_features\\)"):
        GaussianMixture(2).fit(flat)
    source = ChunkedArray(np.zeros((10, 2)), rows_per_chunk=5)
    with pytest.raises(ValueError, match="sample_weight has shape \\(9,\\), expected \\(10,\\)"):
        GaussianMixture(2).fit(source, sample_weight=np.ones(9))
    with pytest.raises(ValueError, match="The parameter 'means' should have the shape of \\(2, 2\\)"):
        GaussianMixture(2, means_init=np.zeros((2, 3))).fit(source)
    with pytest.raises(ValueError, match="run on one device"):
        streaming.fit_streaming(source, n_components=2, devices=1)
    assert source.reads == 0


@pytest.mark.parametrize(
    "parts, message",
    [
        (
            [np.zeros((4, 2)), np.zeros((3, 2)), np.zeros((5, 3))],
            "Chunk 2 has 3 columns but the chunks before it have 2",
        ),
        ([], "The data stream is empty"),
        ([np.zeros((0, 2))], "The data stream is empty"),
        (
            [np.ones((4, 2)), np.where(np.arange(12).reshape(6, 2) == 7, np.nan, 1.0)],
            "NaN in chunk 1 at row 3 \\(row 7 of the data\\), column 1",
        ),
        ([np.ones((4, 2)), np.full((2, 2), np.inf)], "infinity in chunk 1 at row 0"),
        (
            [(np.ones((4, 2)), np.ones(4)), (np.ones((2, 2)), -np.ones(2))],
            "sample_weight is -1.0 in chunk 1 at row 0",
        ),
        (
            [(np.ones((4, 2)), np.ones(4)), np.ones((2, 2))],
            "Chunk 1 has no weights, unlike the chunks before it",
        ),
        (
            [np.ones((4, 2)), np.array(["a", "b"])],
            "Chunk 1 has shape \\(2,\\); every chunk must be 2-D",
        ),
        ([np.ones((1, 2))], "at least 2 are required"),
        ([np.ones((2, 2)), np.ones((1, 2))], "n_components = 4, n_samples = 3"),
    ],
)
def test_bad_streams_raise_in_the_validation_pass(parts, message):
    stream = CountingStream(parts)
    with pytest.raises(ValueError, match=message):
        GaussianMixture(4).fit(stream)
    assert stream.calls <= 1


def test_stream_misuse_is_named():
    X = np.random.default_rng(0).normal(size=(40, 2))
    one_shot = (X[a : a + 10] for a in range(0, 40, 10))
    with pytest.raises(
        ValueError, match="one-shot generator.*callable that returns a new iterable"
    ):
        GaussianMixture(2).fit(one_shot)
    exhausted = iter([X[:20], X[20:]])
    with pytest.raises(ValueError, match="This pass over the data saw 0 rows, the first pass 40"):
        GaussianMixture(2, random_state=0).fit(lambda: exhausted)
    with pytest.raises(ValueError, match="returned ndarray, not an iterable of chunks"):
        GaussianMixture(2).fit(lambda: X)
    with pytest.raises(
        ValueError, match="The weights of chunk 1 have shape \\(19,\\), expected \\(20,\\)"
    ):
        GaussianMixture(2).fit(lambda: [X[:20], X[20:]], sample_weight=np.ones(39))
    with pytest.raises(
        ValueError, match="sample_weight has 41 entries but the chunks have 40 rows"
    ):
        GaussianMixture(2).fit(lambda: [X[:20], X[20:]], sample_weight=np.ones(41))


# --------------------------------------------------------------------------
# Online EM
# --------------------------------------------------------------------------


def test_step_size_schedule():
    assert online.step_size(0) == 1.0
    assert online.step_size(3) == pytest.approx(
        (3 + online.STEP_SIZE_OFFSET) ** -online.STEP_SIZE_EXPONENT
    )
    assert online.step_size(4, exponent=1.0, offset=0.0) == 0.25
    with pytest.raises(ValueError, match="exponent must be in \\(0.5, 1\\]"):
        online.step_size(1, exponent=0.5)


def test_partial_fit_steps_are_stepwise_em(unequal_3d):
    X, _ = unequal_3d
    model = GaussianMixture(3, max_iter=3, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X[:300])
    fitted_attributes = set(vars(model))
    params = parameters.GMMParams(
        model.weights_, model.means_, model.covariances_, model.precisions_cholesky_
    )
    model.partial_fit(X[300:600]).partial_fit(X[600:])
    # By hand: the first batch's statistics (per unit weight) are taken whole,
    # which is one EM step from the fitted parameters; the second batch's are
    # mixed in with step gamma_1.
    with parameters.precision_scope("float64"):
        params = parameters.GMMParams(*(jnp.asarray(leaf) for leaf in params))
        statistics = None
        for batch, gamma in ((X[300:600], 1.0), (X[600:], online.step_size(1))):
            batch_stats = forms.accumulate_statistics(
                jnp.asarray(batch)[None], jnp.ones((1, batch.shape[0])), params, "full"
            )
            batch_stats = parameters.SufficientStats(*(leaf / batch.shape[0] for leaf in batch_stats))
            statistics = (
                batch_stats
                if statistics is None
                else parameters.SufficientStats(
                    *((1 - gamma) * old + gamma * new for old, new in zip(statistics, batch_stats))
                )
            )
            params = mstep.m_step(statistics, 1e-6, "full")
    np.testing.assert_allclose(model.means_, params.means, rtol=1e-8, atol=1e-8)
    np.testing.assert_allclose(model.covariances_, params.covariances, rtol=1e-8, atol=1e-8)
    assert model.n_iter_ == 2 and model.lower_bounds_.shape == (2,)
    assert model.lower_bound_ == pytest.approx(float(statistics.log_likelihood), rel=1e-10)
    assert set(vars(model)) - {"_online_state_"} == fitted_attributes


def test_partial_fit_reaches_the_batch_fit_on_a_stream_of_a_million_points():
    rng = np.random.default_rng(0)
    n_components, n_features, n_samples = 4, 3, 1_000_000
    weights = np.array([0.4, 0.3, 0.2, 0.1])
    means = np.array([[0.0, 0.0, 0.0], [6.0, 0.0, 0.0], [0.0, 6.0, 0.0], [0.0, 0.0, 6.0]])
    mixing = rng.normal(scale=0.5, size=(n_components, n_features, n_features)) + np.eye(n_features)
    labels = rng.choice(n_components, size=n_samples, p=weights)
    X = means[labels] + np.einsum(
        "nd,nde->ne", rng.normal(size=(n_samples, n_features)), mixing[labels]
    )
    covariances = np.einsum("kde,kfe->kdf", mixing, mixing)
    batch = GaussianMixture(
        n_components,
        weights_init=weights,
        means_init=means,
        precisions_init=np.linalg.inv(covariances),
    ).fit(X)
    online = GaussianMixture(n_components, random_state=0)
    for start in range(0, n_samples, 10_000):
        online.partial_fit(X[start : start + 10_000])
    assert online.n_iter_ == 100
    assert abs(online.score(X) - batch.score(X)) < 1e-2
    assert online.lower_bound_ == pytest.approx(batch.lower_bound_, abs=2e-2)


def test_partial_fit_bad_input():
    X = np.random.default_rng(0).normal(size=(30, 2))
    with pytest.raises(ValueError, match="n_components = 4, n_samples = 3"):
        GaussianMixture(4).partial_fit(X[:3])
    model = GaussianMixture(2, random_state=0).partial_fit(X)
    with pytest.raises(ValueError, match="X has 3 features, but GaussianMixture is expecting 2 features as input"):
        model.partial_fit(np.zeros((5, 3)))
    with pytest.raises(ValueError, match="contains NaN"):
        model.partial_fit(np.array([[0.0, np.nan]]))
    model.partial_fit(X[:1])  # later batches may be as small as one row
    assert model.n_iter_ == 2


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
