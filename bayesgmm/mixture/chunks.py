"""Chunks of a fixed shape, staged on the host for the streamed passes.

A streamed pass (:mod:`bayesgmm.mixture.streaming`) regroups the rows of a
source (:mod:`bayesgmm.mixture.sources`) into chunks of one fixed number of
rows (:class:`ChunkLayout`, whole blocks of
:func:`bayesgmm.mixture.blocks.block_layout`; the last chunk padded with
zero-weight rows), so that every chunk has the same shape and runs the same
compiled program. The chunks are centred at a fixed shift and written into a
few host buffers used in turn (:func:`staged_chunks`). With missing values
a chunk's incomplete rows are grouped by pattern into tiles
(:func:`chunk_tiles`, :func:`bayesgmm.mixture.incomplete.tile_rows`).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from bayesgmm.mixture import blocks, incomplete
from bayesgmm.mixture.sources import CHUNKED_INPUT_HINT


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
        return cls(*blocks.block_layout(min(n_rows, n_samples), n_components, n_features))


# Host buffers cycled by staged_chunks; statistics_pass keeps fewer chunks than this in flight.
N_HOST_BUFFERS = 3


def chunk_tiles(X_buffer: np.ndarray, weight_buffer: np.ndarray, tile_sizes):
    """The incomplete rows of one staged chunk as pattern tiles, or None when it has none.

    The incomplete rows are then zeroed, with weight 0, in the buffers (the
    chunk's blocks keep their fixed shape for the complete rows' fast path).
    Each tile group's steps are padded to a power of two (zero-weight tiles),
    so that chunks share a few compiled programs.
    """
    incomplete_rows = np.isnan(X_buffer).any(axis=1)
    if not incomplete_rows.any():
        return None
    tiles, _ = incomplete.tile_rows(
        X_buffer[incomplete_rows], weight_buffer[incomplete_rows], None, tile_sizes
    )
    X_buffer[incomplete_rows], weight_buffer[incomplete_rows] = 0, 0

    def padded(group):
        extra = (1 << (group.shape[0] - 1).bit_length()) - group.shape[0]
        return np.concatenate([group, np.zeros((extra,) + group.shape[1:], group.dtype)]) if extra else group

    return tiles._replace(
        X=tuple(map(padded, tiles.X)), weights=tuple(map(padded, tiles.weights)),
        pattern=tuple(map(padded, tiles.pattern)),
    )


def staged_chunks(source, layout: ChunkLayout, centre: np.ndarray, n_samples: int, dtype,
                  weight_scale: float = 1.0, missing: bool = False):
    """Regroup a source's rows into centred chunks of the fixed ``layout``.

    Small chunks are merged, large ones split; the last chunk is padded with
    zero-weight rows. The chunks are written into ``N_HOST_BUFFERS`` host
    buffers used in turn (fresh arrays every chunk would fragment the heap
    and grow the resident memory): a chunk must have been consumed (moved
    to the device) before ``N_HOST_BUFFERS`` more are taken. Given weights
    are divided by ``weight_scale`` (the stream's largest weight, see
    :func:`bayesgmm._validation.scaled_sample_weight`). With ``missing``
    (data with NaN entries, ``StreamSummary.missing``), rows with every value
    missing are left out, as the validation pass left them out, and a chunk
    with incomplete rows comes with their tiles (:func:`chunk_tiles`).

    Yields
    ------
    X_blocks : ndarray of shape (n_blocks, block_size, n_features)
    weight_blocks : ndarray of shape (n_blocks, block_size)
    tiles : PatternTiles, only for a chunk with incomplete rows
        (:class:`bayesgmm.mixture.incomplete.PatternTiles`, host arrays);
        its rows then have weight 0 in ``weight_blocks``.

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

    tile_sizes = (incomplete.TILE_SIZES[-1:] if layout.rows < incomplete.SMALL_ROWS
                  else incomplete.TILE_SIZES)

    def blocks(X_buffer, weight_buffer):
        tiles = chunk_tiles(X_buffer, weight_buffer, tile_sizes) if missing else None
        shaped = (
            X_buffer.reshape(layout.n_blocks, layout.block_size, n_features),
            weight_buffer.reshape(layout.n_blocks, layout.block_size),
        )
        return shaped if tiles is None else shaped + (tiles,)

    n_chunks = filled = seen = 0
    X_buffer, weight_buffer = buffers[0]
    for piece in source.pieces(layout.rows):
        X = np.asarray(piece.X)
        if X.ndim != 2 or X.shape[1] != n_features:
            raise ValueError(
                f"Chunk {piece.index} has shape {X.shape} in this pass but the data had "
                f"{n_features} features in the first. " + CHUNKED_INPUT_HINT
            )
        weights = (None if piece.weights is None
                   else np.asarray(piece.weights, np.float64) / weight_scale)
        if missing:
            kept = ~np.isnan(X).all(axis=1)
            if not kept.all():
                X, weights = X[kept], None if weights is None else weights[kept]
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
