"""Data read chunk by chunk, for the tests of streamed fits."""

import numpy as np


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
