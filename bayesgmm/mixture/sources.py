"""Data read chunk by chunk: memmaps, zarr or dask arrays, callables; the validation pass.

Before the first iteration of a streamed fit one validation pass
(:func:`scan`) reads every chunk once: it checks widths, finiteness and
weights (naming the chunk and row of a bad value), computes the weighted
mean used as the centring shift, and keeps a uniform sample of at most
``init_size`` rows for the initialisation. With missing values
(``missing='marginalize'``) it makes the in-memory checks of the missing
entries and the shift is the observed mean (:class:`ObservedColumns`).

Pages of a ``numpy.memmap`` that have been copied into a chunk are handed back
to the operating system (``madvise(MADV_DONTNEED)`` on shared mappings), so the
process's resident memory does not grow with the file; the file stays in the
page cache.
"""

from __future__ import annotations

import collections.abc
import mmap
from typing import NamedTuple

import numpy as np

from bayesgmm import _validation as v
from bayesgmm.mixture import blocks

# The initialisation sample: at most this many rows, and at most this many bytes.
DEFAULT_INIT_SIZE = 100_000

INIT_SAMPLE_BYTES = 1 << 26

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
    piece: Piece, n_features: int | None, dtype, missing: bool = False
) -> tuple[np.ndarray, np.ndarray | None]:
    """Validate one chunk and return it as arrays.

    Parameters
    ----------
    piece : Piece
    n_features : int or None
        The width of earlier chunks (None for the first).
    dtype : numpy.dtype
    missing : bool, default=False
        NaN entries are values missing at random (``missing='marginalize'``),
        not an error; infinities still are.

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
    if missing:
        finite |= np.isnan(X)
    if not finite.all():
        row, column = np.argwhere(~finite)[0]
        if np.isnan(X[row, column]):
            raise ValueError(f"X contains NaN in {_where(piece, row)}, column {column}. " + v.MISSING_HINT)
        raise ValueError(
            f"X contains infinity in {_where(piece, row)}, column {column}. Remove or impute "
            "non-finite values before fitting."
        )
    if piece.weights is None:
        return X, None
    # float64 until scaled for the fit, so that small weights do not underflow first.
    weights = np.asarray(piece.weights, dtype=np.float64)
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
        self.weights = np.empty(capacity, dtype=np.float64) if weighted else None
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
    # The largest weight, by which every chunk's weights are divided for EM
    # (bayesgmm._validation.scaled_sample_weight); 1.0 when no weights were given.
    weight_scale: float = 1.0
    # Whether the data have missing values (NaN, with missing='marginalize'): rows with
    # every value missing (of weight 0) are then left out of n_samples and the sample.
    missing: bool = False


def default_rows(n_features: int, dtype, budget_bytes: int) -> int:
    """Rows of ``n_features`` values of ``dtype`` that fit in ``budget_bytes`` (at least 1)."""
    return max(1, budget_bytes // (n_features * np.dtype(dtype).itemsize))


class ObservedColumns:
    """What the validation pass gathers of data with missing values, chunk by chunk.

    The checks of :func:`bayesgmm.mixture.incomplete.usable_rows` (a row
    with every value missing and a positive weight is refused, naming its
    row of the data; a column with no observed value is refused after the
    pass) and the weighted mean of each column's observed values
    (:func:`bayesgmm.mixture.incomplete.observed_mean`), the centring shift
    and the fill of the mean-imputed initialisation, as in memory.
    """

    def __init__(self, n_features: int):
        self.sums = np.zeros(n_features)
        self.weights = np.zeros(n_features)
        self.seen = np.zeros(n_features, dtype=bool)
        self.any_missing = False

    def add(self, piece: Piece, X: np.ndarray, weights: np.ndarray):
        """Account for one chunk; return its rows and weights without the all-missing rows."""
        observed = ~np.isnan(X)
        if observed.all():
            self.sums += blocks.weighted_column_sum(weights, X.astype(np.float64, copy=False))
            self.weights += weights.sum(dtype=np.float64)
            self.seen |= (weights > 0).any()
            return X, weights
        self.any_missing = True
        empty = ~observed.any(axis=1)
        refused = empty & (weights > 0)
        if refused.any():
            row = piece.start + int(np.flatnonzero(refused)[0])
            raise ValueError(
                f"Row {row} of X has every value missing: it has no likelihood. Remove it, or give "
                "it sample_weight 0 (rows of weight 0 are left out of the fit)."
            )
        if empty.any():
            X, weights, observed = X[~empty], weights[~empty], observed[~empty]
        self.sums += weights @ np.where(observed, X, 0.0).astype(np.float64, copy=False)
        self.weights += weights @ observed
        self.seen |= (observed & (weights > 0)[:, None]).any(axis=0)
        return X, weights

    def mean(self, dtype) -> np.ndarray:
        """The weighted mean of each column's observed values; refuses a column never observed."""
        if not self.seen.all():
            column = int(np.flatnonzero(~self.seen)[0])
            raise ValueError(
                f"Column {column} of X has no observed value (every entry is missing): it cannot "
                "be estimated. Remove the column."
            )
        return (self.sums / self.weights).astype(dtype)


def scan(
    source, *, dtype, n_components: int, init_size: int | None, random_state, n_rows: int,
    missing: bool = False,
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
    missing : bool, default=False
        NaN entries are values missing at random (``missing='marginalize'``):
        checked as in memory (:class:`ObservedColumns`); rows with every value
        missing (and weight 0) are left out; the centring shift is the
        observed mean.

    Returns
    -------
    StreamSummary

    Raises
    ------
    ValueError
        On a bad chunk (naming it), an empty stream, too few samples or
        positive weights, a row with every value missing and a positive
        weight, a column with no observed value.
    """
    n_features, reservoir, columns = source.n_features, None, None
    # n_read counts every row read; n_samples those of the fit (all-missing rows left out).
    n_read = n_samples = n_positive = 0
    weighted_sum, total_weight = 0.0, 0.0
    largest, smallest_positive = 0.0, np.inf
    for piece in source.pieces(n_rows):
        X, weights = check_piece(piece, n_features, dtype, missing)
        n_read += X.shape[0]
        if X.shape[0] == 0:
            continue
        n_features = X.shape[1]
        if missing:
            columns = columns or ObservedColumns(n_features)
            row_weights = np.ones(X.shape[0]) if weights is None else weights
            X, kept = columns.add(piece, X, row_weights)
            weights = None if weights is None else kept
            if X.shape[0] == 0:
                continue
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
        if weights is not None and (weights > 0).any():
            largest = max(largest, float(weights.max()))
            smallest_positive = min(smallest_positive, float(weights[weights > 0].min()))
        reservoir.add(X.astype(dtype, copy=False), weights, random_state)
        weighted_sum = weighted_sum + blocks.weighted_column_sum(
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
        and len(source.sample_weight) != n_read
    ):
        raise ValueError(
            f"sample_weight has {len(source.sample_weight)} entries but the chunks have "
            f"{n_read} rows in all. Pass one weight per row."
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
    has_missing = columns is not None and columns.any_missing
    centre = columns.mean(dtype) if has_missing else (weighted_sum / total_weight).astype(dtype)
    if sample_weights is None:
        return StreamSummary(n_samples, n_features, centre, sample, None, missing=has_missing)
    sample_weights = v.scaled_sample_weight(sample_weights, largest, smallest_positive, dtype)
    return StreamSummary(n_samples, n_features, centre, sample, sample_weights, largest, has_missing)
