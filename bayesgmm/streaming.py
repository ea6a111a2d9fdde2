"""Gaussian mixtures on data larger than memory: exact out-of-core EM and online EM.

Two ways to fit data that never sit in memory at once, both built on the
pieces of :mod:`bayesgmm.em` (the block statistics, the M-step, the
initialisation):

* :func:`fit_streaming`: **exact** EM, one pass over the data per iteration.
  EM's sufficient statistics are sums over the samples, so summing them
  chunk by chunk gives the same iteration as the in-memory fit. The data
  come from a ``numpy.memmap``, a zarr or dask array (duck-typed: any object
  with ``shape``, ``dtype``, row slicing and a ``chunks`` attribute), or a
  callable returning an iterable of chunks. ``GaussianMixture.fit``
  dispatches here for such inputs.
* :func:`partial_fit_batch`: **stepwise online EM** (Cappé & Moulines,
  2009) for true streams, seen once, one batch at a time;
  ``GaussianMixture.partial_fit`` calls it.

One pass of :func:`fit_streaming`
---------------------------------
The rows are regrouped into chunks of a fixed number of rows (the last one
padded with zero-weight rows, so every chunk has the same shape and runs the
same compiled program), centred at a fixed shift and cut into the blocks of
:func:`bayesgmm.em.block_layout`. Per chunk one jitted call adds the chunk's
statistics to a running total on the device; while it runs (JAX dispatch is
asynchronous) the next chunk is read and ``jax.device_put`` to the device.
At most one chunk waits behind the running one, so the memory in use is a few
chunks, whatever the number of rows. After the pass the jitted M-step and the
convergence test of :func:`bayesgmm.em.fit_gmm` run on the totals.

Before the first iteration one validation pass reads every chunk once: it
checks widths, finiteness and weights (naming the chunk and row of a bad
value), computes the weighted mean used as the centring shift, and keeps a
uniform sample of at most ``init_size`` rows for the initialisation.

Examples
--------
A callable that yields the chunks again on every call (here from memory; in
practice from files or a database), then a stream fed one batch at a time:

>>> import numpy as np
>>> from bayesgmm import GaussianMixture
>>> rng = np.random.default_rng(0)
>>> X = np.concatenate([rng.normal(0, 1, (500, 2)), rng.normal(6, 1, (500, 2))])
>>> def chunks():
...     return (X[start : start + 100] for start in range(0, 1000, 100))
>>> exact = GaussianMixture(2, random_state=0).fit(chunks)
>>> in_memory = GaussianMixture(2, random_state=0).fit(X)
>>> bool(np.allclose(exact.means_, in_memory.means_, rtol=1e-10))
True
>>> online = GaussianMixture(2, random_state=0)
>>> for batch in np.array_split(rng.permutation(X), 10):
...     online = online.partial_fit(batch)
>>> online.n_iter_, np.round(np.sort(online.means_[:, 0])) + 0.0
(10, array([0., 6.]))

Pages of a ``numpy.memmap`` that have been copied into a chunk are handed back
to the operating system (``madvise(MADV_DONTNEED)`` on shared mappings), so the
process's resident memory does not grow with the file; the file stays in the
page cache.
"""

from __future__ import annotations

import collections.abc
import functools
import mmap
import numbers
import time
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from bayesgmm import _program_cache, _progress, em
from bayesgmm import _validation as v

# Bytes of data per chunk (rows = DEFAULT_CHUNK_BYTES / (n_features * itemsize)).
# Small on purpose: XLA's temporaries and the allocator's retained memory
# grow with the chunk (measured: +70 MB resident per doubling around 1-8 MiB),
# while a pass is no faster with larger chunks once a chunk is a few blocks.
DEFAULT_CHUNK_BYTES = 1 << 20
# The initialisation sample: at most this many rows, and at most this many bytes.
DEFAULT_INIT_SIZE = 100_000
INIT_SAMPLE_BYTES = 1 << 26
# Step sizes of online EM: gamma_t = (t + STEP_SIZE_OFFSET) ** -STEP_SIZE_EXPONENT.
STEP_SIZE_EXPONENT = 0.6
STEP_SIZE_OFFSET = 2.0

CHUNKED_INPUT_HINT = (
    "Pass a numpy.memmap, a zarr or dask array, or a callable that returns a new "
    "iterable of (n_rows, n_features) chunks (or (X_chunk, weight_chunk) tuples) "
    "on every call."
)


# --------------------------------------------------------------------------
# Sources: where the rows come from
# --------------------------------------------------------------------------


class Piece(NamedTuple):
    """One chunk as read from a source, before validation."""

    index: int  # position of the chunk in the stream, for error messages
    start: int  # index of its first row in the whole stream
    X: object  # array-like of shape (n_rows, n_features)
    weights: object  # array-like of shape (n_rows,), or None for unit weights


def _is_chunked_array(X) -> bool:
    """A zarr, dask or h5py-like array: ``shape``, ``dtype``, slicing and ``chunks``."""
    return (
        not isinstance(X, np.ndarray)
        and getattr(X, "chunks", None) is not None
        and all(hasattr(X, name) for name in ("shape", "dtype", "__getitem__"))
    )


def is_chunked(X) -> bool:
    """Whether ``X`` is read chunk by chunk rather than loaded.

    True for a ``numpy.memmap``, a chunked array (zarr, dask, or any object
    with ``shape``, ``dtype``, row slicing and a non-None ``chunks``), a
    callable (returning chunks) and an iterator (rejected with a clear error
    by :func:`open_source`: EM needs several passes).
    """
    return (
        isinstance(X, np.memmap)
        or _is_chunked_array(X)
        or callable(X)
        or isinstance(X, collections.abc.Iterator)
    )


def _mapping_of(array):
    """The ``mmap.mmap`` behind a ``numpy.memmap`` (or a view of one), or None."""
    base = array
    while base is not None and not isinstance(base, mmap.mmap):
        base = getattr(base, "base", None)
    return base


def release_pages(array) -> None:
    """Drop the pages of ``array`` (a slice of a ``numpy.memmap``) from resident memory.

    Only for shared mappings (modes 'r', 'r+', 'w+'): their pages stay in the
    page cache and are read again if touched. A copy-on-write mapping (mode
    'c') may hold changes that exist nowhere else and is left alone, as is
    anything that is not a C-contiguous slice of a mapping.
    """
    mapping = _mapping_of(array)
    if (
        mapping is None
        or getattr(array, "mode", "c") == "c"
        or not hasattr(mmap, "MADV_DONTNEED")
        or not array.flags.c_contiguous
        or array.nbytes == 0
    ):
        return
    base_address = np.frombuffer(mapping, dtype=np.uint8, count=1).ctypes.data
    begin = array.ctypes.data - base_address
    end = begin + array.nbytes
    begin -= begin % mmap.PAGESIZE
    mapping.madvise(mmap.MADV_DONTNEED, begin, end - begin)


class ArraySource:
    """Rows of a 2-D array, read a slice at a time.

    Parameters
    ----------
    X : numpy.memmap, zarr/dask array, or duck-typed array of shape (n_samples, n_features)
        Must have a floating dtype: the bytes of a file opened with the wrong
        dtype would otherwise be read as numbers.
    sample_weight : array-like of shape (n_samples,) or None
        Aligned with the rows of ``X`` (a ``numpy.memmap`` is fine).
    """

    def __init__(self, X, sample_weight=None):
        shape = tuple(X.shape)
        kind = type(X).__name__
        if len(shape) != 2:
            raise ValueError(
                f"X ({kind}) has {len(shape)} dimension(s) and shape {shape}; expected a "
                "2-D array of shape (n_samples, n_features). Reshape it or open the file "
                "with shape=(n_samples, n_features)."
            )
        if shape[0] == 0 or shape[1] == 0:
            raise ValueError(
                f"X ({kind}) is empty: shape {shape}. At least one sample and one feature are required."
            )
        if not np.issubdtype(np.dtype(X.dtype), np.floating):
            raise ValueError(
                f"X ({kind}) has dtype {np.dtype(X.dtype)}; chunked data must be float32 or "
                "float64. Open the file with the dtype it was written with (for instance "
                "np.memmap(path, dtype='float64', mode='r', shape=...))."
            )
        if sample_weight is not None and (
            np.ndim(sample_weight) != 1 or len(sample_weight) != shape[0]
        ):
            raise ValueError(
                f"sample_weight has shape {np.shape(sample_weight)}, expected ({shape[0]},): "
                "one weight per row of X."
            )
        self.X = X
        self.sample_weight = sample_weight
        self.n_samples, self.n_features = shape

    def pieces(self, n_rows: int):
        """Yield the rows as :class:`Piece` slices of ``n_rows`` rows."""
        for index, start in enumerate(range(0, self.n_samples, n_rows)):
            stop = min(start + n_rows, self.n_samples)
            rows = self.X[start:stop]
            weights = None if self.sample_weight is None else self.sample_weight[start:stop]
            yield Piece(index, start, rows, weights)
            # The consumer has copied the rows by now.
            release_pages(rows)
            if weights is not None:
                release_pages(weights)


class CallableSource:
    """Chunks produced by a callable, called once per pass.

    Parameters
    ----------
    make_chunks : callable
        ``make_chunks()`` returns a new iterable over the same data on every
        call; each item is an array-like of shape (n_rows, n_features) or a
        tuple ``(X_chunk, weight_chunk)``.
    sample_weight : array-like of shape (n_samples,) or None
        Aligned with the rows of all chunks in order; not allowed with
        ``(X_chunk, weight_chunk)`` tuples.
    """

    def __init__(self, make_chunks, sample_weight=None):
        if sample_weight is not None and np.ndim(sample_weight) != 1:
            raise ValueError(
                f"sample_weight has shape {np.shape(sample_weight)}; expected a 1-D array "
                "with one weight per row of the stream."
            )
        self.make_chunks = make_chunks
        self.sample_weight = sample_weight
        self.n_features = None

    def pieces(self, n_rows: int = 0):
        """Yield the chunks of one call of ``make_chunks`` as :class:`Piece` items."""
        chunks = self.make_chunks()
        if not isinstance(chunks, collections.abc.Iterable) or isinstance(chunks, np.ndarray):
            raise ValueError(
                f"The callable returned {type(chunks).__name__}, not an iterable of chunks. "
                + CHUNKED_INPUT_HINT
            )
        start = 0
        for index, item in enumerate(chunks):
            X_chunk, weights = item if isinstance(item, tuple) and len(item) == 2 else (item, None)
            if weights is not None and self.sample_weight is not None:
                raise ValueError(
                    f"Chunk {index} is an (X_chunk, weight_chunk) tuple and sample_weight "
                    "was also given. Give the weights one way only."
                )
            n_rows_chunk = np.shape(X_chunk)[0] if np.ndim(X_chunk) else 0
            if self.sample_weight is not None:
                weights = self.sample_weight[start : start + n_rows_chunk]
            yield Piece(index, start, X_chunk, weights)
            start += n_rows_chunk


def open_source(X, sample_weight=None):
    """The source of chunks for a chunked input (see :func:`is_chunked`).

    Checks what can be checked without reading data (dimensions, dtype,
    weight length) and raises ``ValueError`` otherwise.
    """
    if isinstance(X, np.memmap) or _is_chunked_array(X):
        return ArraySource(X, sample_weight)
    if callable(X):
        return CallableSource(X, sample_weight)
    raise ValueError(
        f"X is a one-shot {type(X).__name__}; EM reads the data once per iteration. "
        + CHUNKED_INPUT_HINT
    )


# --------------------------------------------------------------------------
# The validation pass: checks, centring shift, initialisation sample
# --------------------------------------------------------------------------


def _where(piece: Piece, row: int) -> str:
    return f"chunk {piece.index} at row {row} (row {piece.start + row} of the data)"


def check_piece(
    piece: Piece, n_features: int | None, dtype
) -> tuple[np.ndarray, np.ndarray | None]:
    """Validate one chunk and return it as arrays.

    Parameters
    ----------
    piece : Piece
    n_features : int or None
        The width of earlier chunks (None for the first).
    dtype : numpy.dtype

    Returns
    -------
    X : ndarray of shape (n_rows, n_features)
    weights : ndarray of shape (n_rows,) or None
    """
    try:
        X = np.asarray(piece.X)
    except (TypeError, ValueError) as err:
        raise ValueError(
            f"Chunk {piece.index} could not be converted to a numeric array ({err})."
        ) from None
    if X.ndim != 2:
        raise ValueError(
            f"Chunk {piece.index} has shape {X.shape}; every chunk must be 2-D, of shape "
            "(n_rows, n_features)."
        )
    if (
        X.dtype == object
        or not (np.issubdtype(X.dtype, np.number) or X.dtype == bool)
        or np.iscomplexobj(X)
    ):
        raise ValueError(f"Chunk {piece.index} has dtype {X.dtype}; chunks must hold real numbers.")
    if n_features is not None and X.shape[1] != n_features:
        raise ValueError(
            f"Chunk {piece.index} has {X.shape[1]} columns but the chunks before it have "
            f"{n_features}. Every chunk must have the same number of features."
        )
    finite = np.isfinite(X.astype(dtype, copy=False))
    if not finite.all():
        row, column = np.argwhere(~finite)[0]
        kind = "NaN" if np.isnan(X[row, column]) else "infinity"
        raise ValueError(
            f"X contains {kind} in {_where(piece, row)}, column {column}. Remove or impute "
            "non-finite values before fitting."
        )
    if piece.weights is None:
        return X, None
    weights = np.asarray(piece.weights, dtype=dtype)
    if weights.shape != (X.shape[0],):
        raise ValueError(
            f"The weights of chunk {piece.index} have shape {weights.shape}, expected "
            f"({X.shape[0]},): one weight per row."
        )
    bad = ~np.isfinite(weights) | (weights < 0)
    if bad.any():
        row = int(np.argmax(bad))
        raise ValueError(
            f"sample_weight is {weights[row]} in {_where(piece, row)}. Weights must be "
            "finite and non-negative."
        )
    return X, weights


class Reservoir:
    """A uniform sample of at most ``capacity`` rows of a stream (algorithm R).

    While the stream has no more rows than ``capacity`` the sample is every
    row, in order, and ``random_state`` is not touched; so a small stream is
    initialised exactly as the in-memory fit.
    """

    def __init__(self, capacity: int, n_features: int, dtype, weighted: bool):
        self.X = np.empty((capacity, n_features), dtype=dtype)
        self.weights = np.empty(capacity, dtype=dtype) if weighted else None
        self.n_seen = 0

    def add(self, X: np.ndarray, weights: np.ndarray | None, random_state) -> None:
        """Offer the rows of one chunk to the sample."""
        capacity = self.X.shape[0]
        n_fill = max(0, min(capacity - self.n_seen, X.shape[0]))
        self.X[self.n_seen : self.n_seen + n_fill] = X[:n_fill]
        if self.weights is not None:
            self.weights[self.n_seen : self.n_seen + n_fill] = weights[:n_fill]
        if n_fill < X.shape[0]:
            # Row j (0-based in the stream) replaces a random slot with probability capacity/(j+1);
            # fancy assignment keeps the last of repeated slots, as the sequential algorithm does.
            seen = self.n_seen + np.arange(n_fill, X.shape[0])
            slots = random_state.randint(0, seen + 1)
            keep = slots < capacity
            self.X[slots[keep]] = X[n_fill:][keep]
            if self.weights is not None:
                self.weights[slots[keep]] = weights[n_fill:][keep]
        self.n_seen += X.shape[0]

    def sample(self):
        """The sampled rows (n_sample, n_features) and their weights (or None)."""
        n_sample = min(self.n_seen, self.X.shape[0])
        weights = None if self.weights is None else self.weights[:n_sample]
        return self.X[:n_sample], weights


class StreamSummary(NamedTuple):
    """What the validation pass learns about the data."""

    n_samples: int
    n_features: int
    centre: np.ndarray  # (n_features,) weighted mean, in the fit's dtype
    sample: np.ndarray  # (n_sample, n_features) the initialisation sample, not centred
    sample_weights: np.ndarray | None  # (n_sample,), None when no weights were given


def default_rows(n_features: int, dtype, budget_bytes: int) -> int:
    """Rows of ``n_features`` values of ``dtype`` that fit in ``budget_bytes`` (at least 1)."""
    return max(1, budget_bytes // (n_features * np.dtype(dtype).itemsize))


def scan(
    source, *, dtype, n_components: int, init_size: int | None, random_state, n_rows: int
) -> StreamSummary:
    """The validation pass: check every chunk, compute the centring shift, sample rows.

    Parameters
    ----------
    source : ArraySource or CallableSource
    dtype : numpy.dtype
    n_components : int
    init_size : int or None
        Rows kept for the initialisation; None: ``DEFAULT_INIT_SIZE``, within
        ``INIT_SAMPLE_BYTES``.
    random_state : numpy.random.RandomState
        Drawn from only when the stream has more than ``init_size`` rows.
    n_rows : int
        Rows per slice read from an array source.

    Returns
    -------
    StreamSummary

    Raises
    ------
    ValueError
        On a bad chunk (naming it), an empty stream, too few samples or
        positive weights.
    """
    n_features, reservoir = source.n_features, None
    n_samples = n_positive = 0
    weighted_sum, total_weight = 0.0, 0.0
    for piece in source.pieces(n_rows):
        X, weights = check_piece(piece, n_features, dtype)
        if X.shape[0] == 0:
            continue
        n_features = X.shape[1]
        if reservoir is None:
            capacity = init_size or min(
                DEFAULT_INIT_SIZE, default_rows(n_features, dtype, INIT_SAMPLE_BYTES)
            )
            reservoir = Reservoir(capacity, n_features, dtype, weighted=weights is not None)
        if (weights is None) != (reservoir.weights is None):
            raise ValueError(
                f"Chunk {piece.index} {'has no' if weights is None else 'has'} weights, unlike "
                "the chunks before it. Yield (X_chunk, weight_chunk) tuples for every chunk, "
                "or for none."
            )
        row_weights = np.ones(X.shape[0], dtype=dtype) if weights is None else weights
        reservoir.add(X.astype(dtype, copy=False), weights, random_state)
        weighted_sum = weighted_sum + em.weighted_column_sum(
            row_weights.astype(np.float64), X.astype(np.float64, copy=False)
        )
        total_weight += float(row_weights.sum(dtype=np.float64))
        n_positive += int(np.count_nonzero(row_weights > 0))
        n_samples += X.shape[0]
    if reservoir is None:
        raise ValueError("The data stream is empty: no chunk had any rows. " + CHUNKED_INPUT_HINT)
    if (
        isinstance(source, CallableSource)
        and source.sample_weight is not None
        and len(source.sample_weight) != n_samples
    ):
        raise ValueError(
            f"sample_weight has {len(source.sample_weight)} entries but the chunks have "
            f"{n_samples} rows in all. Pass one weight per row."
        )
    if n_samples < 2:
        raise ValueError(f"X has {n_samples} sample(s), but at least 2 are required.")
    v.check_n_samples(n_samples, n_components)
    if total_weight <= 0:
        raise ValueError(
            "sample_weight is zero for every sample. At least one weight must be positive."
        )
    v.check_positive_weight_count(np.ones(n_positive), n_components)
    sample, sample_weights = reservoir.sample()
    centre = (weighted_sum / total_weight).astype(dtype)
    return StreamSummary(n_samples, n_features, centre, sample, sample_weights)


# --------------------------------------------------------------------------
# Chunks of fixed shape, and one pass of statistics
# --------------------------------------------------------------------------


class ChunkLayout(NamedTuple):
    """Shape of every chunk sent to the device."""

    block_size: int
    n_blocks: int

    @property
    def rows(self) -> int:
        return self.block_size * self.n_blocks

    @classmethod
    def create(
        cls, n_rows: int, n_samples: int, n_components: int, n_features: int
    ) -> "ChunkLayout":
        """Chunks of about ``n_rows`` rows (no more than the data), in whole blocks."""
        return cls(*em.block_layout(min(n_rows, n_samples), n_components, n_features))


# Host buffers cycled by staged_chunks; statistics_pass keeps fewer chunks than this in flight.
N_HOST_BUFFERS = 3


def staged_chunks(source, layout: ChunkLayout, centre: np.ndarray, n_samples: int, dtype):
    """Regroup a source's rows into centred chunks of the fixed ``layout``.

    Small chunks are merged, large ones split; the last chunk is padded with
    zero-weight rows. The chunks are written into ``N_HOST_BUFFERS`` host
    buffers used in turn (fresh arrays every chunk would fragment the heap
    and grow the resident memory): a chunk must have been consumed (moved
    to the device) before ``N_HOST_BUFFERS`` more are taken.

    Yields
    ------
    X_blocks : ndarray of shape (n_blocks, block_size, n_features)
    weight_blocks : ndarray of shape (n_blocks, block_size)

    Raises
    ------
    ValueError
        When the pass sees other rows than the validation pass (a callable
        that does not give the same data on every call).
    """
    n_features = centre.shape[0]
    buffers = [
        (np.empty((layout.rows, n_features), dtype), np.empty(layout.rows, dtype))
        for _ in range(N_HOST_BUFFERS)
    ]

    def blocks(X_buffer, weight_buffer):
        return (
            X_buffer.reshape(layout.n_blocks, layout.block_size, n_features),
            weight_buffer.reshape(layout.n_blocks, layout.block_size),
        )

    n_chunks = filled = seen = 0
    X_buffer, weight_buffer = buffers[0]
    for piece in source.pieces(layout.rows):
        X = np.asarray(piece.X)
        if X.ndim != 2 or X.shape[1] != n_features:
            raise ValueError(
                f"Chunk {piece.index} has shape {X.shape} in this pass but the data had "
                f"{n_features} features in the first. " + CHUNKED_INPUT_HINT
            )
        weights = None if piece.weights is None else np.asarray(piece.weights)
        seen += X.shape[0]
        offset = 0
        while offset < X.shape[0]:
            take = min(layout.rows - filled, X.shape[0] - offset)
            np.subtract(X[offset : offset + take], centre, out=X_buffer[filled : filled + take])
            weight_buffer[filled : filled + take] = (
                1 if weights is None else weights[offset : offset + take]
            )
            filled, offset = filled + take, offset + take
            if filled == layout.rows:
                yield blocks(X_buffer, weight_buffer)
                n_chunks, filled = n_chunks + 1, 0
                X_buffer, weight_buffer = buffers[n_chunks % N_HOST_BUFFERS]
    if seen != n_samples:
        raise ValueError(
            f"This pass over the data saw {seen} rows, the first pass {n_samples}. "
            + CHUNKED_INPUT_HINT
        )
    if filled:
        X_buffer[filled:], weight_buffer[filled:] = 0, 0
        yield blocks(X_buffer, weight_buffer)


def zero_statistics(
    n_components: int, n_features: int, covariance_type: str, dtype, batch_shape=()
):
    """All-zero :class:`bayesgmm.em.SufficientStats` with a leading ``batch_shape``."""
    second = {"full": (n_components, n_features, n_features), "tied": (n_features, n_features)}
    shapes = em.SufficientStats(
        (n_components,),
        (n_components, n_features),
        second.get(covariance_type, (n_components, n_features)),
        (),
        (),
    )
    return em.SufficientStats(*(jnp.zeros(tuple(batch_shape) + shape, dtype) for shape in shapes))


@_program_cache.bounded
@functools.partial(jax.jit, static_argnames=("covariance_type", "form"))
def add_chunk_statistics(
    total, X_blocks, weight_blocks, params: em.GMMParams, *, covariance_type: str,
    form: em.EStepForm = em.EXPANDED,
):
    """``total`` plus the statistics of one chunk, for every restart.

    Parameters
    ----------
    total : SufficientStats
        Leaves with a leading axis of length n_init.
    X_blocks : Array of shape (n_blocks, block_size, n_features)
    weight_blocks : Array of shape (n_blocks, block_size)
    params : GMMParams
        Leaves with a leading axis of length n_init.
    form : bayesgmm.em.EStepForm, default=EXPANDED
        :data:`bayesgmm.em.DIRECT`: moments about each restart's current means.

    Returns
    -------
    SufficientStats like ``total``.
    """
    chunk = jax.vmap(
        lambda restart: em.accumulate_statistics(
            X_blocks, weight_blocks, restart, covariance_type, form=form
        )
    )(params)
    return jax.tree_util.tree_map(jnp.add, total, chunk)


def statistics_pass(chunks, params: em.GMMParams, covariance_type: str, form: em.EStepForm = em.EXPANDED):
    """One pass over the chunks: the summed statistics of every restart.

    The statistics of chunk i are dispatched (asynchronously), then chunk
    i+1 is read and moved to the device while they compute, then the pass
    waits for chunk i-1. So chunk i+1 is read while chunk i-1 may still run:
    three chunks in flight at most (``N_HOST_BUFFERS``).

    Parameters
    ----------
    chunks : iterable of (X_blocks, weight_blocks) host arrays
        As yielded by :func:`staged_chunks`; at least one.
    params : GMMParams
        On the device, leaves with a leading axis of length n_init.
    covariance_type : str
    form : bayesgmm.em.EStepForm, default=EXPANDED
        See :func:`add_chunk_statistics`.

    Returns
    -------
    SufficientStats
        On the device, leaves with a leading axis of length n_init.
    """
    n_init, n_components, n_features = params.means.shape
    total = zero_statistics(
        n_components, n_features, covariance_type, params.means.dtype, (n_init,)
    )
    iterator = iter(chunks)
    pending = jax.device_put(next(iterator))
    previous = None
    while pending is not None:
        total = add_chunk_statistics(
            total, *pending, params, covariance_type=covariance_type, form=form
        )
        host = next(iterator, None)
        pending = None if host is None else jax.device_put(host)
        if previous is not None:
            jax.block_until_ready(previous)
        previous = total
    return total


# --------------------------------------------------------------------------
# EM driven from the host, one pass per iteration
# --------------------------------------------------------------------------


def _em_update_one(
    state: em.EMState, stats: em.SufficientStats, *, covariance_type, reg_covar, tol, max_iter,
    form,
):
    """:func:`bayesgmm.em.em_step` for one restart; a finished restart is kept as it is."""
    updated = em.em_step(
        state, stats, covariance_type=covariance_type, tol=tol, reg_covar=reg_covar,
        shift=state.params.means if form.centred else None,
    )
    active = em.is_active(state, max_iter)
    return jax.tree_util.tree_map(lambda new, old: jnp.where(active, new, old), updated, state)


@_program_cache.bounded
@functools.partial(
    jax.jit, static_argnames=("covariance_type", "reg_covar", "tol", "max_iter", "form")
)
def em_update(
    state: em.EMState,
    stats: em.SufficientStats,
    *,
    covariance_type: str,
    reg_covar: float,
    tol: float,
    max_iter: int,
    form: em.EStepForm = em.EXPANDED,
):
    """M-step and convergence test for every restart (leading axis of the leaves).

    With a ``centred`` form, ``stats`` hold moments about each restart's current means.
    """
    update = functools.partial(
        _em_update_one,
        covariance_type=covariance_type,
        reg_covar=reg_covar,
        tol=tol,
        max_iter=max_iter,
        form=form,
    )
    return jax.vmap(update)(state, stats)


def initial_state(params: em.GMMParams, initial_lower_bound, max_iter: int) -> em.EMState:
    """The EM state of every restart (leading axis of the leaves) before the first iteration."""
    return jax.vmap(lambda p, bound: em.initial_state(p, bound, max_iter))(
        params, jnp.broadcast_to(jnp.asarray(initial_lower_bound, params.means.dtype), params.weights.shape[:1])
    )

def _checked_initial_values(
    n_features, *, n_components, covariance_type, dtype, weights_init, means_init, precisions_init
):
    """User-given initial values, validated for data of ``n_features`` columns."""
    if weights_init is not None:
        weights_init = v.check_weights(weights_init, n_components, dtype)
    if means_init is not None:
        means_init = v.check_means(means_init, n_components, n_features, dtype)
    if precisions_init is not None:
        precisions_init = v.check_precisions(
            precisions_init, covariance_type, n_components, n_features, dtype
        )
    return dict(weights_init=weights_init, means_init=means_init, precisions_init=precisions_init)


def initial_params_from_sample(
    sample,
    sample_weights,
    centre,
    *,
    n_components,
    covariance_type,
    reg_covar,
    n_init,
    init_params,
    random_state,
    weights_init,
    means_init,
    precisions_init,
    verbose=0,
    form=em.EXPANDED,
) -> em.GMMParams:
    """Initial (centred) parameters of every restart from the initialisation sample.

    The same machinery as the in-memory fit (:func:`bayesgmm.em.initial_responsibilities`
    on the sample as given, then :func:`bayesgmm.em.initial_params` on the
    centred sample); user-given values take precedence, and when all three
    are given there is one restart.

    Returns
    -------
    GMMParams with leaves of leading axis n_init, on the device.
    """
    given = (weights_init, means_init, precisions_init)
    n_init = 1 if all(value is not None for value in given) else n_init
    if verbose:
        for index in range(n_init):
            print(f"Initialization {index}", flush=True)
    resp = None
    if any(value is None for value in given):
        resp = np.stack(
            [
                em.initial_responsibilities(
                    sample, sample_weights, n_components, init_params, random_state
                )
                for _ in range(n_init)
            ],
            axis=1,
        )
    layout = em.DataLayout.create(sample.shape[0], n_components, sample.shape[1])
    weights = np.ones(sample.shape[0], sample.dtype) if sample_weights is None else sample_weights
    return em.initial_params(
        layout,
        layout.put(sample, offset=centre),
        layout.put(weights),
        resp,
        np.ones((n_init, n_components), bool),
        covariance_type=covariance_type,
        reg_covar=reg_covar,
        weights_init=weights_init,
        means_init=None if means_init is None else means_init - centre,
        precisions_init=precisions_init,
        form=form,
    )


def _report_progress(reporter, state: em.EMState, previous: em.EMState, max_iter: int) -> None:
    """Send each restart that just ran to ``reporter`` (verbose lines)."""
    ran = np.asarray(em.is_active(previous, max_iter))
    changes = np.asarray(state.lower_bound - previous.lower_bound)
    for index in np.flatnonzero(ran):
        reporter(state.n_iter[index], changes[index], state.lower_bound[index])


def run_streaming_em(
    source,
    summary: StreamSummary,
    layout: ChunkLayout,
    params: em.GMMParams,
    initial_lower_bound,
    *,
    covariance_type: str,
    tol: float,
    reg_covar: float,
    max_iter: int,
    dtype,
    verbose_interval: int = 0,
    form: em.EStepForm = em.EXPANDED,
) -> em.EMState | None:
    """EM from ``params`` until every restart has converged or run ``max_iter`` passes.

    ``form``: how every pass computes its E-step (:func:`add_chunk_statistics`).

    Returns
    -------
    EMState of the best restart (:func:`bayesgmm.em.best_candidate`, the tie rule of every fit),
    or None as soon as a restart meets a covariance that is not positive
    definite (the rest of the passes would be wasted).
    """
    update = functools.partial(
        em_update, covariance_type=covariance_type, reg_covar=reg_covar, tol=tol,
        max_iter=max_iter, form=form,
    )
    state = initial_state(params, initial_lower_bound, max_iter)
    reporter = _progress.IterationReporter(verbose_interval)
    return _iterate_passes(
        state, update, source, summary, layout, covariance_type, max_iter, dtype, reporter, form
    )


def _iterate_passes(
    state, update, source, summary, layout, covariance_type, max_iter, dtype, reporter, form
):
    """One pass over the chunks per EM iteration until no restart is active."""
    while True:
        if bool(jnp.any(state.failed)):
            return None
        if not bool(jnp.any(em.is_active(state, max_iter))):
            break
        chunks = staged_chunks(source, layout, summary.centre, summary.n_samples, dtype)
        previous, state = state, update(
            state, statistics_pass(chunks, state.params, covariance_type, form)
        )
        if reporter.active:
            _report_progress(reporter, state, previous, max_iter)
    best = em.best_candidate(np.asarray(state.lower_bound))
    return jax.tree_util.tree_map(lambda leaf: leaf[best], state)


def _check_settings(n_components, covariance_type, init_params, tol, reg_covar, dtype):
    dtype = v.check_dtype(dtype)
    v.check_int("n_components", n_components, 1)
    v.check_choice("covariance_type", covariance_type, v.COVARIANCE_TYPES)
    v.check_choice("init_params", init_params, v.INIT_PARAMS)
    return (
        dtype,
        v.check_nonnegative_float("tol", tol),
        v.check_nonnegative_float("reg_covar", reg_covar),
    )


def _check_rows(name: str, value) -> int | None:
    return None if value is None else v.check_int(name, value, 1)


def fit_streaming(
    X,
    sample_weight=None,
    *,
    n_components: int,
    covariance_type: str = "full",
    tol: float = 1e-3,
    reg_covar: float = 1e-6,
    max_iter: int = 100,
    n_init: int = 1,
    init_params: str = "kmeans",
    random_state=None,
    weights_init=None,
    means_init=None,
    precisions_init=None,
    dtype="float64",
    warm_start: tuple[em.GMMParams, float] | None = None,
    verbose: int = 0,
    verbose_interval: int = 10,
    devices=None,
    chunk_size: int | None = None,
    init_size: int | None = None,
) -> em.EMResult:
    """Exact EM over data read chunk by chunk: the out-of-core :func:`bayesgmm.em.fit_gmm`.

    Each iteration is one pass over the data; the result equals the
    in-memory fit of the same data from the same initial parameters (up to
    the rounding of sums taken in another order).

    Parameters
    ----------
    X : numpy.memmap, zarr array, dask array, or callable
        The data, of shape (n_samples, n_features): a ``numpy.memmap`` or
        another 2-D array read by row slices (an object with ``shape``,
        ``dtype``, ``__getitem__`` and a ``chunks`` attribute, as zarr and
        dask arrays have) with a float dtype; or a callable that returns, on
        every call, a new iterable over the same chunks, each an array-like
        of shape (n_rows_i, n_features) or a tuple ``(X_chunk,
        weight_chunk)``.
    sample_weight : array-like of shape (n_samples,), optional
        Aligned with the rows (a ``numpy.memmap`` is read by slices too).
        Not with ``(X_chunk, weight_chunk)`` tuples.
    n_components, covariance_type, tol, reg_covar, max_iter, n_init, \
    init_params, random_state, weights_init, means_init, precisions_init, \
    dtype, warm_start, verbose, verbose_interval
        As in :func:`bayesgmm.em.fit_gmm`. The ``n_init`` restarts run
        batched: one pass serves them all.
    devices : None
        Out-of-core fits run on the default device; anything else raises.
    chunk_size : int, optional
        Rows per chunk sent to the device (rounded up to whole blocks).
        Default: ``DEFAULT_CHUNK_BYTES`` (1 MiB) of data. Peak memory grows
        with it, not with n_samples.
    init_size : int, optional
        Rows of the initialisation sample, a uniform sample of the data
        taken during the validation pass (every row when the data have no
        more). Default: ``DEFAULT_INIT_SIZE`` (100,000) rows, at most
        ``INIT_SAMPLE_BYTES`` (64 MiB). k-means and the other
        ``init_params`` run on this sample, in memory; user-given
        ``weights_init``/``means_init``/``precisions_init`` take precedence.

    Returns
    -------
    EMResult

    Raises
    ------
    ValueError
        On invalid settings or data (before the first iteration: a chunk of
        another width, a non-float array, NaN, naming the chunk and row), or
        when a covariance becomes singular.
    """
    from sklearn.utils import check_random_state

    dtype, tol, reg_covar = _check_settings(
        n_components, covariance_type, init_params, tol, reg_covar, dtype
    )
    max_iter = v.check_int("max_iter", max_iter, 0)
    n_init = v.check_int("n_init", n_init, 1)
    chunk_size = _check_rows("chunk_size", chunk_size)
    init_size = _check_rows("init_size", init_size)
    if devices is not None:
        raise ValueError(
            "Out-of-core fits (memmap, zarr, dask or callable input) run on one device; "
            "leave devices=None, or load the data and shard it."
        )
    source = open_source(X, sample_weight)
    init_checks = functools.partial(
        _checked_initial_values,
        n_components=n_components,
        covariance_type=covariance_type,
        dtype=dtype,
        weights_init=weights_init,
        means_init=means_init,
        precisions_init=precisions_init,
    )
    # Array sources know their width: check the initial values before reading anything.
    initial_values = init_checks(source.n_features) if source.n_features is not None else None
    random_state = check_random_state(random_state)
    summary = scan(
        source,
        dtype=dtype,
        n_components=n_components,
        init_size=init_size,
        random_state=random_state,
        n_rows=_chunk_rows(chunk_size, source.n_features or 1, dtype),
    )
    initial_values = initial_values or init_checks(summary.n_features)
    if warm_start is not None:
        v.check_n_features(np.empty((0, summary.n_features)), np.shape(warm_start[0].means)[1])
    layout = ChunkLayout.create(
        _chunk_rows(chunk_size, summary.n_features, dtype),
        summary.n_samples,
        n_components,
        summary.n_features,
    )
    # A second attempt in the direct form must start where the first did.
    retry_random_state = em._copy_random_state(random_state)

    def attempt(form, random_state):
        if warm_start is not None:
            params, initial_lower_bound = _warm_start_batch(warm_start, summary.centre, dtype)
        else:
            params = initial_params_from_sample(
                summary.sample,
                summary.sample_weights,
                summary.centre,
                n_components=n_components,
                covariance_type=covariance_type,
                reg_covar=reg_covar,
                n_init=n_init,
                init_params=init_params,
                random_state=random_state,
                verbose=verbose,
                form=form,
                **initial_values,
            )
            initial_lower_bound = jnp.full((params.weights.shape[0],), -jnp.inf, dtype)
        return run_streaming_em(
            source,
            summary,
            layout,
            params,
            initial_lower_bound,
            covariance_type=covariance_type,
            tol=tol,
            reg_covar=reg_covar,
            max_iter=max_iter,
            dtype=dtype,
            verbose_interval=verbose_interval if verbose >= 2 else 0,
            form=form,
        )

    with em.precision_scope(dtype):
        start = time.perf_counter()
        best = attempt(em.EXPANDED, random_state)
        # As the in-memory fit does (bayesgmm.em._fit_groups): components
        # too far from the centre for the expanded square, or a failure that
        # rounding may have caused, and the passes are redone in the direct form.
        if best is None or not em.expanded_form_is_accurate(
            em._host_params(best, dtype), covariance_type, dtype
        ):
            best = attempt(em.DIRECT, retry_random_state)
        if best is None:
            message = v.ILL_DEFINED_COVARIANCE_MESSAGE
            raise ValueError(message + (v.FLOAT32_HINT if dtype == np.float32 else ""))
        if verbose:
            status = "converged" if bool(best.converged) else "did not converge"
            print(
                f"Initialization {status}. time lapse {time.perf_counter() - start:.5f}s\t "
                f"lower bound {float(best.lower_bound):.5f}",
                flush=True,
            )
        return _result(best, summary.centre, dtype)


def _chunk_rows(chunk_size: int | None, n_features: int, dtype) -> int:
    """Rows per chunk: ``chunk_size`` if given, else ``DEFAULT_CHUNK_BYTES`` of data."""
    return chunk_size or default_rows(n_features, dtype, DEFAULT_CHUNK_BYTES)


def _warm_start_batch(warm_start, centre: np.ndarray, dtype):
    """One restart from previous (uncentred) parameters and their lower bound."""
    params, lower_bound = warm_start
    params = params._replace(means=np.asarray(params.means) - centre)
    params = jax.tree_util.tree_map(lambda leaf: jnp.asarray(leaf, dtype)[None], params)
    return params, jnp.full((1,), lower_bound, dtype)


def _result(best: em.EMState, centre: np.ndarray, dtype) -> em.EMResult:
    """The best restart's state as host arrays, means shifted back by ``centre``."""
    n_iter = int(best.n_iter)
    params = em._host_params(best, dtype)
    return em.EMResult(
        params=params._replace(means=params.means + centre),
        lower_bound=float(best.lower_bound),
        n_iter=n_iter,
        converged=bool(best.converged),
        lower_bounds=np.asarray(best.lower_bounds, dtype=dtype)[:n_iter],
    )


# --------------------------------------------------------------------------
# Online (stepwise) EM
# --------------------------------------------------------------------------


class OnlineState(NamedTuple):
    """What stepwise EM carries from one batch to the next (host arrays)."""

    statistics: em.SufficientStats  # per unit weight, of data centred at ``centre``
    centre: np.ndarray  # (n_features,) weighted mean of the first batch
    lower_bounds: np.ndarray  # (n_batches,) running mean log-likelihood after each batch
    means: np.ndarray  # (n_components, n_features) the fitted means this state produced


def step_size(
    n_updates: int, exponent: float = STEP_SIZE_EXPONENT, offset: float = STEP_SIZE_OFFSET
) -> float:
    """Step size of the update that follows ``n_updates`` earlier ones.

    ``gamma = 1`` for the first batch (its statistics replace the empty
    ones), then ``gamma_t = (t + offset) ** -exponent``. With ``exponent`` in
    (0.5, 1] the steps sum to infinity and their squares do not, the
    condition under which stepwise EM converges (Cappé & Moulines 2009).

    Parameters
    ----------
    n_updates : int
        Batches already folded into the statistics.
    exponent : float in (0.5, 1]
    offset : float >= 0
        Larger values damp the early steps.

    Returns
    -------
    float
    """
    if not (isinstance(exponent, numbers.Real) and 0.5 < exponent <= 1):
        raise ValueError(f"The step-size exponent must be in (0.5, 1], got {exponent!r}.")
    offset = v.check_nonnegative_float("offset", offset)
    return 1.0 if n_updates == 0 else float((n_updates + offset) ** -exponent)


@_program_cache.bounded
@functools.partial(jax.jit, static_argnames=("covariance_type", "reg_covar"))
def stepwise_update(
    statistics,
    X_blocks,
    weight_blocks,
    params: em.GMMParams,
    step,
    *,
    covariance_type: str,
    reg_covar: float,
):
    """``s <- (1 - step) s + step * s_batch / batch_weight``, then the M-step.

    Parameters
    ----------
    statistics : SufficientStats
        Per unit weight (``total_weight`` 1, ``log_likelihood`` the mean).
    X_blocks : Array of shape (n_blocks, block_size, n_features)
    weight_blocks : Array of shape (n_blocks, block_size)
    params : GMMParams
        The parameters of the E-step on the batch.
    step : Array of shape ()

    Returns
    -------
    statistics : SufficientStats
    params : GMMParams
    """
    batch = em.accumulate_statistics(X_blocks, weight_blocks, params, covariance_type)
    batch = jax.tree_util.tree_map(lambda leaf: leaf / batch.total_weight, batch)
    statistics = jax.tree_util.tree_map(
        lambda old, new: (1 - step) * old + step * new, statistics, batch
    )
    return statistics, em.m_step(statistics, reg_covar, covariance_type)


def partial_fit_batch(
    X,
    sample_weight=None,
    *,
    state: OnlineState | None,
    fitted: em.GMMParams | None,
    n_components: int,
    covariance_type: str = "full",
    tol: float = 1e-3,
    reg_covar: float = 1e-6,
    init_params: str = "kmeans",
    random_state=None,
    weights_init=None,
    means_init=None,
    precisions_init=None,
    dtype="float64",
    exponent: float = STEP_SIZE_EXPONENT,
    offset: float = STEP_SIZE_OFFSET,
) -> tuple[em.EMResult, OnlineState]:
    """One step of stepwise online EM (Cappé & Moulines 2009) on a batch.

    The state is the running sufficient statistics per unit weight ``s``.
    Each batch runs the E-step under the current parameters, and
    ``s <- (1 - gamma_t) s + gamma_t * s_batch / batch_weight`` with
    ``gamma_t`` from :func:`step_size`; the parameters are the M-step of
    ``s``. Each point is seen once; memory does not grow with the stream.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        The batch.
    sample_weight : array-like of shape (n_samples,), optional
    state : OnlineState or None
        From the previous call; used only if ``fitted.means`` is the array
        it produced (otherwise the model was refitted in between).
    fitted : GMMParams or None
        The current parameters (None before any fit). Without a usable
        ``state``: start from them if given, else initialise from this
        batch with ``init_params`` (and any user-given initial values).
    n_components, covariance_type, tol, reg_covar, init_params, random_state, \
    weights_init, means_init, precisions_init, dtype
        As in :func:`bayesgmm.em.fit_gmm`; ``tol`` decides ``converged``
        (change of the running mean log-likelihood below ``tol``).
    exponent, offset : float
        The step-size schedule (see :func:`step_size`).

    Returns
    -------
    result : EMResult
        ``lower_bound`` is the running mean log-likelihood (the ``s`` of
        the log-likelihood), ``n_iter`` the number of batches since the
        start, ``lower_bounds`` its history.
    state : OnlineState
    """
    from sklearn.utils import check_random_state

    dtype, tol, reg_covar = _check_settings(
        n_components, covariance_type, init_params, tol, reg_covar, dtype
    )
    resume = state is not None and fitted is not None and state.means is fitted.means
    X = v.check_array(X, dtype, min_samples=1 if fitted is not None else 2)
    weights = v.check_sample_weight(sample_weight, X.shape[0], dtype)
    if fitted is not None:
        v.check_n_features(X, np.shape(fitted.means)[1])
    else:
        v.check_n_samples(X.shape[0], n_components)
        v.check_positive_weight_count(weights, n_components)
    step = step_size(len(state.lower_bounds) if resume else 0, exponent, offset)
    if resume:
        centre = state.centre
    else:
        centre = (em.weighted_column_sum(weights, X) / weights.sum()).astype(dtype)
    with em.precision_scope(dtype):
        if fitted is not None:
            params = em.GMMParams(*(jnp.asarray(leaf, dtype) for leaf in fitted))
            params = params._replace(means=params.means - centre)
        else:
            params = _first_batch_params(
                X,
                None if sample_weight is None else weights,
                centre,
                dtype=dtype,
                n_components=n_components,
                covariance_type=covariance_type,
                reg_covar=reg_covar,
                init_params=init_params,
                random_state=check_random_state(random_state),
                weights_init=weights_init,
                means_init=means_init,
                precisions_init=precisions_init,
            )
        if resume:
            statistics = jax.tree_util.tree_map(
                lambda leaf: jnp.asarray(leaf, dtype), state.statistics
            )
        else:
            statistics = zero_statistics(n_components, X.shape[1], covariance_type, dtype)
        layout = em.DataLayout.create(X.shape[0], n_components, X.shape[1])
        statistics, params = stepwise_update(
            statistics,
            layout.put(X, offset=centre),
            layout.put(weights),
            params,
            jnp.asarray(step, dtype),
            covariance_type=covariance_type,
            reg_covar=reg_covar,
        )
        if not bool(em.all_finite(params)):
            raise ValueError(
                v.ILL_DEFINED_COVARIANCE_MESSAGE + (v.FLOAT32_HINT if dtype == np.float32 else "")
            )
        statistics = em.SufficientStats(*(np.asarray(leaf) for leaf in statistics))
        params = em.GMMParams(*(np.asarray(leaf, dtype=dtype) for leaf in params))
        em.check_precision(params, covariance_type, dtype)
    history = state.lower_bounds if resume else np.empty(0, dtype)
    history = np.append(history, statistics.log_likelihood).astype(dtype)
    result = em.EMResult(
        params=params._replace(means=params.means + centre),
        lower_bound=float(history[-1]),
        n_iter=history.shape[0],
        converged=bool(history.shape[0] > 1 and abs(history[-1] - history[-2]) < tol),
        lower_bounds=history,
    )
    return result, OnlineState(statistics, centre, history, result.params.means)


def _first_batch_params(X, sample_weight, centre, *, dtype, **settings) -> em.GMMParams:
    """Centred initial parameters from the first batch of a stream (one restart).

    ``settings``: n_components, covariance_type, reg_covar, init_params,
    random_state, weights_init, means_init, precisions_init.
    """
    given = ("weights_init", "means_init", "precisions_init")
    initial_values = _checked_initial_values(
        X.shape[1],
        n_components=settings["n_components"],
        covariance_type=settings["covariance_type"],
        dtype=dtype,
        **{name: settings.pop(name) for name in given},
    )
    params = initial_params_from_sample(
        X, sample_weight, centre, n_init=1, **settings, **initial_values
    )
    return jax.tree_util.tree_map(lambda leaf: leaf[0], params)
