"""Tests of bayesgmm.alignment: Hungarian relabelling of clusters and of draws."""

import itertools

import jax.numpy as jnp
import numpy as np
import pytest

from bayesgmm.alignment import (
    align_labels,
    align_proba,
    apply_permutations,
    match_labels,
    permutation_from_cost,
    permutations_from_costs,
)


def brute_force_minimum(cost):
    """The least total cost over all permutations (small K only)."""
    size = cost.shape[0]
    rows = np.arange(size)
    return min(cost[rows, list(perm)].sum() for perm in itertools.permutations(range(size)))


def noisy_proba(y, n_columns, rng, confidence=0.8):
    """Probabilities whose largest entry sits in column y[n] for each row."""
    proba = rng.uniform(size=(y.size, n_columns)) * (1 - confidence) / n_columns
    proba[np.arange(y.size), y] += confidence
    return proba / proba.sum(axis=1, keepdims=True)


# --------------------------------------------------------------------------
# Draws against a reference
# --------------------------------------------------------------------------


@pytest.mark.parametrize("n_components", range(2, 9))
def test_permutation_from_cost_recovers_a_shuffle_of_means(n_components):
    rng = np.random.default_rng(n_components)
    reference = rng.normal(size=(n_components, 2)) * 10
    shuffle = rng.permutation(n_components)
    candidate = reference[shuffle] + rng.normal(size=(n_components, 2)) * 0.01
    cost = ((reference[:, None, :] - candidate[None, :, :]) ** 2).sum(axis=-1)
    perm = permutation_from_cost(cost)
    assert perm.shape == (n_components,) and np.issubdtype(perm.dtype, np.integer)
    np.testing.assert_array_equal(perm, np.argsort(shuffle))
    np.testing.assert_allclose(candidate[perm], reference, atol=0.1)


@pytest.mark.parametrize("n_components", [2, 3, 4, 5])
def test_permutation_from_cost_is_optimal(n_components):
    rng = np.random.default_rng(0)
    for _ in range(20):
        cost = rng.normal(size=(n_components, n_components))
        perm = permutation_from_cost(cost)
        total = cost[np.arange(n_components), perm].sum()
        np.testing.assert_allclose(total, brute_force_minimum(cost))


def test_permutation_from_cost_of_one_component():
    np.testing.assert_array_equal(permutation_from_cost([[3.0]]), [0])


@pytest.mark.parametrize("n_components", [2, 3, 5, 8, 10])
def test_permutations_from_costs_recovers_random_permutations(n_components):
    rng = np.random.default_rng(n_components)
    n_draws = 300
    # Diagonal far cheaper than the rest: the identity is the unique optimum of the base.
    base = rng.uniform(1.0, 2.0, size=(n_components, n_components)) - 5 * np.eye(n_components)
    shuffles = np.array([rng.permutation(n_components) for _ in range(n_draws)])
    inverse = np.argsort(shuffles, axis=1)
    # Candidate component j of draw s is base component inverse[s, j].
    costs = np.stack([base[:, row] for row in inverse])
    perms = permutations_from_costs(costs)
    assert perms.shape == (n_draws, n_components)
    np.testing.assert_array_equal(perms, shuffles)
    aligned_costs = apply_permutations(costs, perms, axis=2)
    np.testing.assert_array_equal(aligned_costs, np.broadcast_to(base, costs.shape))


@pytest.mark.parametrize("n_components", [2, 3, 4])
def test_permutations_from_costs_agrees_with_single_solver(n_components):
    costs = np.random.default_rng(1).normal(size=(200, n_components, n_components))
    perms = permutations_from_costs(costs)
    for cost, perm in zip(costs, perms):
        np.testing.assert_allclose(
            cost[np.arange(n_components), perm].sum(), brute_force_minimum(cost)
        )
    np.testing.assert_array_equal(perms, [permutation_from_cost(cost) for cost in costs])


def test_apply_permutations_semantics_on_every_axis():
    rng = np.random.default_rng(0)
    n_draws, n_components = 6, 4
    x = rng.normal(size=(n_draws, 3, n_components, 5))
    x_before = x.copy()
    perms = np.array([rng.permutation(n_components) for _ in range(n_draws)])
    for axis in (2, -2):
        aligned = apply_permutations(x, perms, axis=axis)
        for draw, i in itertools.product(range(n_draws), range(n_components)):
            np.testing.assert_array_equal(aligned[draw, :, i, :], x[draw, :, perms[draw, i], :])
    np.testing.assert_array_equal(x, x_before)

    means = rng.normal(size=(n_draws, n_components, 2))
    aligned_means = apply_permutations(means, perms)
    np.testing.assert_array_equal(aligned_means, means[np.arange(n_draws)[:, None], perms])
    inverse = np.argsort(perms, axis=1)
    np.testing.assert_array_equal(apply_permutations(aligned_means, inverse), means)


def test_apply_permutations_accepts_jax_arrays():
    perms = np.array([[1, 0, 2], [2, 1, 0]])
    weights = jnp.arange(6.0).reshape(2, 3)
    aligned = apply_permutations(weights, jnp.asarray(perms), axis=-1)
    np.testing.assert_array_equal(aligned, [[1.0, 0.0, 2.0], [5.0, 4.0, 3.0]])


@pytest.mark.parametrize(
    ("x_shape", "perms", "axis", "message"),
    [
        ((2, 3), [[0, 1, 2], [0, 1, 2]], 0, "axis"),
        ((2, 3), [[0, 1, 2], [0, 1, 2]], 2, "axis"),
        ((3,), [[0, 1, 2]], 1, "at least 2 dimensions"),
        ((2, 3), [[0, 1], [1, 0]], 1, "perms has shape"),
        ((2, 3), [[0, 1, 2]], 1, "perms has shape"),
        ((2, 3), [[0, 1, 1], [0, 1, 2]], 1, "permutation of 0 .. K-1"),
        ((2, 3), [[0, 1, 3], [0, 1, 2]], 1, "permutation of 0 .. K-1"),
        ((2, 3), [[0.0, 1.0, 2.0], [0.0, 1.0, 2.0]], 1, "integer array"),
    ],
)
def test_apply_permutations_rejects_bad_input(x_shape, perms, axis, message):
    with pytest.raises(ValueError, match=message):
        apply_permutations(np.zeros(x_shape), np.asarray(perms), axis=axis)


@pytest.mark.parametrize(
    ("function", "cost", "message"),
    [
        (permutation_from_cost, np.zeros((2, 3)), r"shape \(K, K\)"),
        (permutation_from_cost, np.zeros((2, 2, 2)), r"shape \(K, K\)"),
        (permutation_from_cost, [[0.0, np.nan], [1.0, 0.0]], "NaN or infinity"),
        (permutations_from_costs, np.zeros((3, 3)), r"shape \(n_draws, K, K\)"),
        (permutations_from_costs, np.zeros((3, 2, 4)), r"shape \(n_draws, K, K\)"),
        (permutations_from_costs, np.full((1, 2, 2), np.inf), "NaN or infinity"),
    ],
)
def test_cost_solvers_reject_bad_input(function, cost, message):
    with pytest.raises(ValueError, match=message):
        function(cost)


# --------------------------------------------------------------------------
# Clusters against classes
# --------------------------------------------------------------------------


@pytest.mark.parametrize("n_classes", range(2, 9))
def test_align_labels_undoes_a_relabelling(n_classes):
    rng = np.random.default_rng(n_classes)
    reference = rng.integers(n_classes, size=500)
    reference[:n_classes] = np.arange(n_classes)  # every class present
    cluster_ids = rng.permutation(n_classes) * 3 + 10  # arbitrary, non-contiguous ids
    labels = cluster_ids[reference]
    # 10 % of the points land in a wrong cluster: the majority still decides.
    noisy = rng.uniform(size=labels.size) < 0.1
    labels[noisy] = rng.choice(cluster_ids, size=noisy.sum())
    labels_before = labels.copy()
    mapping = match_labels(labels, reference)
    assert mapping == {int(cluster_ids[c]): c for c in range(n_classes)}
    aligned = align_labels(labels, reference)
    np.testing.assert_array_equal(aligned[~noisy], reference[~noisy])
    np.testing.assert_array_equal(labels, labels_before)


def test_match_labels_gives_surplus_clusters_new_ids():
    assert match_labels([1, 1, 0, 0, 2], [5, 5, 7, 7, 7]) == {0: 7, 1: 5, 2: 8}
    labels = np.array([0, 0, 1, 1, 2, 2, 3, 3, 4])
    reference = np.array([4, 4, -1, -1, 4, 9, 9, 9, 4])
    mapping = match_labels(labels, reference)
    assert mapping[0] == 4 and mapping[1] == -1 and mapping[3] == 9
    new_ids = [mapping[2], mapping[4]]
    assert len(set(new_ids)) == 2 and not set(new_ids) & set(reference.tolist())
    aligned = align_labels(labels, reference)
    np.testing.assert_array_equal(aligned, [mapping[label] for label in labels])


def test_match_labels_with_fewer_clusters_than_classes():
    reference = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2])
    labels = np.array([5, 5, 5, 5, 5, 3, 3, 3, 3])
    assert match_labels(labels, reference) == {3: 2, 5: 0}
    np.testing.assert_array_equal(align_labels(labels, reference), [0, 0, 0, 0, 0, 2, 2, 2, 2])


def test_match_labels_accepts_integral_floats_and_bools():
    assert match_labels([1.0, 1.0, 0.0], [True, True, False]) == {0: 0, 1: 1}


@pytest.mark.parametrize("n_classes", range(2, 9))
def test_align_proba_undoes_a_column_shuffle(n_classes):
    rng = np.random.default_rng(n_classes)
    reference = np.repeat(np.arange(n_classes), 40)
    proba = noisy_proba(reference, n_classes, rng)
    shuffle = rng.permutation(n_classes)
    shuffled = proba[:, shuffle]
    shuffled_before = shuffled.copy()
    aligned, source_columns = align_proba(shuffled, reference, return_permutation=True)
    np.testing.assert_array_equal(aligned, proba)
    np.testing.assert_array_equal(source_columns, np.argsort(shuffle))
    np.testing.assert_array_equal(shuffled[:, source_columns], proba)
    np.testing.assert_array_equal(align_proba(shuffled, reference + 100), proba)
    np.testing.assert_array_equal(shuffled, shuffled_before)


def test_align_proba_with_more_clusters_than_classes():
    rng = np.random.default_rng(0)
    reference = np.repeat([3, 8], 50)  # classes sorted: 3 -> column 0, 8 -> column 1
    cluster_of_point = np.where(reference == 3, 4, 1)
    cluster_of_point[::10] = 2  # a third, small cluster taking points of both classes
    proba = noisy_proba(cluster_of_point, 5, rng, confidence=0.9)
    aligned, source_columns = align_proba(proba, reference, return_permutation=True)
    assert aligned.shape == (100, 5)
    np.testing.assert_array_equal(source_columns, [4, 1, 0, 2, 3])
    np.testing.assert_array_equal(aligned, proba[:, source_columns])


def test_align_proba_with_fewer_clusters_than_classes():
    rng = np.random.default_rng(0)
    reference = np.repeat([0, 1, 2], [40, 20, 30])
    # Classes 0 and 1 share cluster 1, which goes to the larger class 0.
    cluster_of_point = np.where(reference == 2, 0, 1)
    proba = noisy_proba(cluster_of_point, 2, rng)
    aligned, source_columns = align_proba(proba, reference, return_permutation=True)
    assert aligned.shape == (90, 3)
    assert source_columns[2] == 0 and source_columns[0] == 1 and source_columns[1] == -1
    np.testing.assert_array_equal(aligned[:, 1], 0.0)
    np.testing.assert_array_equal(aligned[:, [0, 2]], proba[:, [1, 0]])


@pytest.mark.parametrize(
    ("labels", "reference", "message"),
    [
        ([0, 1, 1], [0, 1], "3 samples but reference has 2"),
        ([[0, 1]], [0, 1], "1-D array"),
        ([], [], "non-empty"),
        ([0.5, 1.0], [0, 1], "integer labels"),
        ([0, 1], ["a", "b"], "integer labels"),
    ],
)
def test_label_matching_rejects_bad_input(labels, reference, message):
    with pytest.raises(ValueError, match=message):
        match_labels(labels, reference)
    with pytest.raises(ValueError, match=message):
        align_labels(labels, reference)


@pytest.mark.parametrize(
    ("proba", "reference", "message"),
    [
        ([0.5, 0.5], [0, 1], r"shape \(n_samples, K\)"),
        ([[0.5, 0.5]] * 3, [0, 1], "3 samples but reference has 2"),
        ([[0.7, 0.7], [0.5, 0.5]], [0, 1], "sum to 1"),
        ([[1.5, -0.5], [0.5, 0.5]], [0, 1], "non-negative"),
        ([[np.nan, 1.0], [0.5, 0.5]], [0, 1], "finite"),
    ],
)
def test_align_proba_rejects_bad_input(proba, reference, message):
    with pytest.raises(ValueError, match=message):
        align_proba(proba, reference)
