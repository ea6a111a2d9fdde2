"""mclust's hierarchical start (bayesgmm.mixture.hierarchical).

Against R mclust 6 on fixed data (tests/fixtures/mclust_hc, written by
make_data.py and make_hc.R there): ``hc(X, "VVV", use = "SVD")`` and
``hclass(tree, 1:9)``; and against independent computations on small cases.
"""

import json
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg
import scipy.stats
from sklearn.metrics import adjusted_rand_score

from bayesgmm.mixture.hierarchical import (
    MCLUST_SUBSET,
    hierarchical_labels,
    labels_for_sizes,
    merge_tree,
    svd_transform,
)

FIXTURES = Path(__file__).parents[1] / "fixtures" / "mclust_hc"
SIZES = range(1, 10)
ALL_DATA = ["iris", "elongated", "copies", "grid", "ties"]
# From the raw data only where the SVD's rounding cannot decide the tree.
# On "ties" (data rounded to one decimal) many merge costs tie up to
# rounding, and the last bits of the SVD decide between them: from our own
# SVD variables the merges leave mclust's at merge 147, and perturbing
# mclust's variables by a few ulps changes its own 2..9-cluster partitions
# in about half the draws. On "grid" the two singular values are equal, so
# the variables are defined only up to a rotation, which moves every tie.
# Only mclust's variables reproduce its tree there. ("copies" ties exactly,
# copy with copy, whatever the rounding.)
ROUNDING_FREE_DATA = ["iris", "elongated", "copies"]


def _load(name):
    X = np.loadtxt(FIXTURES / f"{name}.csv", delimiter=",", ndmin=2)
    with open(FIXTURES / f"{name}.json") as stream:
        reference = json.load(stream)
    return X, reference


def _mclust_labels(reference, size):
    return np.array(reference["hclass"][str(size)]) - 1


# --------------------------------------------------------------------------
# Against mclust
# --------------------------------------------------------------------------


@pytest.mark.parametrize("name", ALL_DATA)
def test_fixture_data_read_as_r_read_them(name):
    X, reference = _load(name)
    np.testing.assert_array_equal(np.array(reference["input"]), X)


@pytest.mark.parametrize("name", ALL_DATA)
def test_merges_from_mclust_variables_are_mclusts(name):
    """Every merge, in order, ties included: the criterion, slot bookkeeping and rounding."""
    _, reference = _load(name)
    tree = merge_tree(np.array(reference["variables"]))
    np.testing.assert_array_equal(tree, np.array(reference["pairs"]) - 1)


@pytest.mark.parametrize("name", ROUNDING_FREE_DATA)
def test_start_partitions_are_mclusts(name):
    """The whole start from the raw data: hclass(hc(X), 1:9), numbering included."""
    X, reference = _load(name)
    start = hierarchical_labels(X, SIZES)
    np.testing.assert_array_equal(start.rows, np.arange(len(X)))
    for size in SIZES:
        expected = _mclust_labels(reference, size)
        assert adjusted_rand_score(expected, start.labels[size]) == 1.0, size
        np.testing.assert_array_equal(start.labels[size], expected)


@pytest.mark.parametrize("name", ROUNDING_FREE_DATA)
def test_whole_tree_is_mclusts(name):
    X, reference = _load(name)
    tree = merge_tree(svd_transform(X))
    np.testing.assert_array_equal(tree, np.array(reference["pairs"]) - 1)


def test_mis_stored_scatter_is_what_makes_elongated_agree():
    """With exact scatter matrices the 2-cluster cut leaves mclust's; the default follows it."""
    _, reference = _load("elongated")
    variables = np.array(reference["variables"])
    exact = labels_for_sizes(merge_tree(variables, exact_scatter=True), [2])[2]
    assert adjusted_rand_score(_mclust_labels(reference, 2), exact) < 0.99
    default = labels_for_sizes(merge_tree(variables), [2])[2]
    np.testing.assert_array_equal(default, _mclust_labels(reference, 2))


@pytest.mark.parametrize("name", ALL_DATA)
def test_svd_transform_is_mclusts_up_to_rotation(name):
    """Equal inner products between rows: the variables up to column signs (and
    rotations within equal singular values, as on "grid")."""
    X, reference = _load(name)
    expected = np.array(reference["variables"])
    Z = svd_transform(X)
    assert Z.shape == expected.shape
    np.testing.assert_allclose(Z @ Z.T, expected @ expected.T, rtol=0, atol=1e-12)


# --------------------------------------------------------------------------
# The SVD transform against an independent computation
# --------------------------------------------------------------------------


def test_svd_transform_against_eigendecomposition():
    """Z = Xs (Xs^T Xs)^(-1/4)-like: Z^T Z = diag(s) and Z Z^T = Xs (Xs^T Xs)^(-1/2) Xs^T."""
    rng = np.random.default_rng(3)
    X = rng.normal(size=(40, 3)) @ rng.normal(size=(3, 3)) + [1.0, -5.0, 20.0]
    standardised = scipy.stats.zscore(X, ddof=1)
    gram = standardised.T @ standardised
    singular_values = np.sqrt(np.sort(np.linalg.eigvalsh(gram))[::-1])
    Z = svd_transform(X)
    np.testing.assert_allclose(Z.T @ Z, np.diag(singular_values), atol=1e-10)
    projector = standardised @ scipy.linalg.fractional_matrix_power(gram, -0.5) @ standardised.T
    np.testing.assert_allclose(Z @ Z.T, projector, atol=1e-10)


def test_svd_transform_drops_constant_columns():
    rng = np.random.default_rng(4)
    X = rng.normal(size=(30, 2))
    with_constant = np.column_stack([X[:, 0], np.full(30, 7.5), X[:, 1]])
    np.testing.assert_allclose(np.abs(svd_transform(with_constant)), np.abs(svd_transform(X)), atol=1e-14)


def test_svd_transform_errors():
    with pytest.raises(ValueError, match="Every column of X is constant"):
        svd_transform(np.ones((5, 2)))
    with pytest.raises(ValueError, match="linearly dependent"):
        svd_transform([[0.0, 0.0], [1.0, 1.0], [2.0, 2.0]])
    with pytest.raises(ValueError, match="NaN"):
        svd_transform([[0.0, 1.0], [np.nan, 2.0], [1.0, 0.0]])


# --------------------------------------------------------------------------
# Small cases
# --------------------------------------------------------------------------


def _two_blobs(seed=0, n_per_blob=20):
    rng = np.random.default_rng(seed)
    first = rng.normal(0.0, 1.0, size=(n_per_blob, 2))
    second = rng.normal(0.0, 1.0, size=(n_per_blob, 2)) + [12.0, 12.0]
    X = np.empty((2 * n_per_blob, 2))
    X[0::2], X[1::2] = first, second  # interleaved, so that numbering by first row is seen
    return X


def test_two_obvious_clusters():
    X = _two_blobs()
    start = hierarchical_labels(X, [1, 2, 3])
    np.testing.assert_array_equal(start.labels[1], np.zeros(len(X), dtype=int))
    np.testing.assert_array_equal(start.labels[2], np.tile([0, 1], len(X) // 2))
    # Three clusters split one blob: each label stays within one blob.
    blob = np.tile([0, 1], len(X) // 2)
    for label in range(3):
        assert len(np.unique(blob[start.labels[3] == label])) == 1


def test_tree_is_a_valid_sequence_of_merges():
    rng = np.random.default_rng(5)
    X = rng.normal(size=(60, 3))
    tree = merge_tree(X)
    assert tree.shape == (59, 2) and tree.dtype == np.int64
    assert (tree[:, 0] < tree[:, 1]).all()
    # A cluster merged away under the larger name never appears again.
    retired = set()
    for a, b in tree:
        assert a not in retired and b not in retired
        retired.add(b)
    assert retired == set(range(1, 60))


def _hclass_loop(tree, size):
    """R's hclass, line for line: relabel j as i along the merges, then partconv."""
    labels = np.arange(len(tree) + 1)
    for i, j in tree[: len(tree) + 1 - size]:
        labels[labels == j] = i
    _, first_rows = np.unique(labels, return_index=True)
    order = {label: rank for rank, label in enumerate(labels[np.sort(first_rows)])}
    return np.array([order[label] for label in labels])


def test_labels_for_sizes_is_hclass():
    rng = np.random.default_rng(6)
    tree = merge_tree(rng.normal(size=(50, 2)))
    labels = labels_for_sizes(tree, range(1, 51))
    for size in (1, 2, 3, 7, 25, 49, 50):
        np.testing.assert_array_equal(labels[size], _hclass_loop(tree, size))
        assert labels[size].max() == size - 1
    # Cuts are nested: each partition refines the next coarser one.
    for size in range(2, 51):
        pairs = np.unique(np.column_stack([labels[size], labels[size - 1]]), axis=0)
        assert len(pairs) == size


def test_copies_merge_first():
    rng = np.random.default_rng(7)
    X = rng.normal(size=(30, 2))
    X[[4, 17, 25]] = X[9]
    tree = merge_tree(X)
    assert set(tree[:3].ravel()) == {4, 9, 17, 25}


def test_subset_draws_rows_and_agglomerates_them():
    X = np.vstack([_two_blobs(seed=8), _two_blobs(seed=9)])
    start = hierarchical_labels(X, [1, 2, 4], subset=50, random_state=0)
    assert len(start.rows) == 50 and (np.diff(start.rows) > 0).all()
    assert all(len(start.labels[size]) == 50 for size in (1, 2, 4))
    whole = hierarchical_labels(X[start.rows], [1, 2, 4], subset=None)
    for size in (1, 2, 4):
        np.testing.assert_array_equal(start.labels[size], whole.labels[size])
    again = hierarchical_labels(X, [2], subset=50, random_state=0)
    np.testing.assert_array_equal(again.rows, start.rows)
    other = hierarchical_labels(X, [2], subset=50, random_state=1)
    assert not np.array_equal(other.rows, start.rows)


def test_default_subset_is_mclusts():
    assert MCLUST_SUBSET == 2000
    X = _two_blobs()
    np.testing.assert_array_equal(hierarchical_labels(X, 2).rows, np.arange(len(X)))


# --------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------


def test_hierarchical_labels_errors():
    X = _two_blobs()
    copies = np.repeat(X[:3], 5, axis=0)
    with pytest.raises(ValueError, match="3 distinct points, fewer than the 4 clusters"):
        hierarchical_labels(copies, [1, 4])
    with pytest.raises(ValueError, match="needs more rows than features"):
        hierarchical_labels(np.random.default_rng(0).normal(size=(4, 4)), [2])
    with pytest.raises(ValueError, match="'sizes'"):
        hierarchical_labels(X, [0, 2])
    with pytest.raises(ValueError, match="'sizes'"):
        hierarchical_labels(X, [len(X) + 1])
    with pytest.raises(ValueError, match="sizes is empty"):
        hierarchical_labels(X, [])
    with pytest.raises(ValueError, match="'subset'"):
        hierarchical_labels(X, [2], subset=1)
    with pytest.raises(ValueError, match="infinity"):
        hierarchical_labels(np.vstack([X, [np.inf, 0.0]]), [2])


def test_merge_tree_and_labels_errors():
    with pytest.raises(ValueError, match="at least 2"):
        merge_tree([[1.0, 2.0]])
    with pytest.raises(ValueError, match="'beta'"):
        merge_tree(_two_blobs(), beta=0.0)
    with pytest.raises(ValueError, match="'exact_scatter'"):
        merge_tree(_two_blobs(), exact_scatter="yes")
    with pytest.raises(ValueError, match="shape \\(n_samples - 1, 2\\)"):
        labels_for_sizes(np.zeros((3, 3), dtype=int), [1])
    with pytest.raises(ValueError, match="outside 0 <= a < b < n_samples"):
        labels_for_sizes(np.array([[1, 0], [0, 2]]), [1])


# -- The start in GaussianMixture (init_params="hierarchical") -----------------


def _initial_means(X, labels, n_components):
    return np.array([X[labels == k].mean(axis=0) for k in range(n_components)])


def test_gaussian_mixture_starts_from_the_cut_tree():
    import warnings

    from bayesgmm import GaussianMixture

    rng = np.random.default_rng(3)
    X = np.vstack([rng.normal(0, 1, (80, 2)), rng.normal(6, 1, (60, 2)), rng.normal([0, 8], 1, (50, 2))])
    labels = hierarchical_labels(X, [3]).labels[3]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # max_iter=0: no EM step, "not converged"
        model = GaussianMixture(3, init_params="hierarchical", max_iter=0).fit(X)
    np.testing.assert_allclose(model.means_, _initial_means(X, labels, 3), rtol=1e-12)
    # Rows of zero weight take no part in the tree or the initial M-step.
    weights = np.ones(len(X))
    weights[::7] = 0.0
    kept = weights > 0
    labels = hierarchical_labels(X[kept], [3]).labels[3]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        weighted = GaussianMixture(3, init_params="hierarchical", max_iter=0).fit(X, sample_weight=weights)
    np.testing.assert_allclose(weighted.means_, _initial_means(X[kept], labels, 3), rtol=1e-12)


def test_gaussian_mixture_builds_the_tree_on_a_subset_of_large_data():
    import warnings

    from bayesgmm import GaussianMixture
    from bayesgmm.mixture.hierarchical import MCLUST_SUBSET

    rng = np.random.default_rng(4)
    X = np.vstack([rng.normal(0, 1, (1500, 2)), rng.normal(7, 1, (1200, 2))])
    assert len(X) > MCLUST_SUBSET
    start = hierarchical_labels(X, [2], random_state=np.random.RandomState(0))
    assert len(start.rows) == MCLUST_SUBSET
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = GaussianMixture(2, init_params="hierarchical", max_iter=0, random_state=0).fit(X)
    np.testing.assert_allclose(model.means_, _initial_means(X[start.rows], start.labels[2], 2), rtol=1e-12)
