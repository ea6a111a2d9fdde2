"""Chunked data sources and the validation pass: reservoir sample, errors named by chunk and row, pages handed back."""

import os

import numpy as np
import pytest

from bayesgmm import GaussianMixture
from bayesgmm.mixture import (
    sources,
    streaming,
)
from tests.mixture.chunked import ChunkedArray, CountingStream, write_memmap


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
