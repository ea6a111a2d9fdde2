"""The data's layout in fixed-size blocks: bounded padding, shared layouts, round trips."""

import numpy as np
import pytest

from bayesgmm.mixture import blocks


@pytest.mark.parametrize("n_samples", [1, 7, 300, 5000, 70000, 100_000, 1_000_001])
def test_block_layout_covers_data_with_bounded_padding(n_samples):
    block_size, n_blocks = blocks.block_layout(n_samples, 4, 3)
    assert block_size * n_blocks >= n_samples
    # Less than an eighth of padding, plus the rounding to whole blocks.
    whole_blocks = block_size if n_blocks > 1 else 0
    assert block_size * n_blocks <= max(1.125 * n_samples + 1.125 * whole_blocks, 16)


def test_nearby_sizes_share_a_layout():
    assert blocks.block_layout(5000, 4, 3) == blocks.block_layout(5100, 4, 3)
    assert blocks.block_layout(70000, 4, 3) == blocks.block_layout(71000, 4, 3)
    assert blocks.block_layout(70000, 4, 3) != blocks.block_layout(140000, 4, 3)


def test_blocks_round_trip():
    X = np.arange(30.0).reshape(10, 3)
    X_blocks = blocks.to_blocks(X, 4, 3)
    assert X_blocks.shape == (3, 4, 3)
    np.testing.assert_array_equal(blocks.from_blocks(X_blocks, 10), X)
    assert not X_blocks.reshape(-1, 3)[10:].any()
