"""Label-permutation alignment by the Hungarian algorithm.

A mixture's components carry arbitrary labels: component 0 of one fit may be
component 1 of another, and of the true classes. This module finds the
relabelling that agrees best with a reference, in two settings:

* clusters against true classes (:func:`match_labels`, :func:`align_labels`,
  :func:`align_proba`), where the number of clusters may differ from the
  number of classes;
* posterior draws against a reference parameter set
  (:func:`permutation_from_cost`, :func:`permutations_from_costs`,
  :func:`apply_permutations`), where every draw has the same ``K`` components.

The convention throughout is that a permutation ``perm`` of shape (K,) says
where each aligned slot comes from: ``aligned[..., i] = candidate[..., perm[i]]``.

All functions copy their inputs and never modify them.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike
from scipy.optimize import linear_sum_assignment

__all__ = [
    "permutation_from_cost",
    "permutations_from_costs",
    "apply_permutations",
    "match_labels",
    "align_labels",
    "align_proba",
]

# Absolute tolerance on the row sums of a probability matrix (float32 safe).
PROBA_ROW_SUM_ATOL = 1e-3


# --------------------------------------------------------------------------
# Draws against a reference: square cost matrices.
# --------------------------------------------------------------------------


def _check_square_costs(costs, expected_ndim: int, name: str) -> np.ndarray:
    """Return ``costs`` as a finite float array whose last two axes are (K, K)."""
    try:
        costs = np.array(costs, dtype=float, copy=True)
    except (TypeError, ValueError):
        raise ValueError(f"{name} could not be converted to a float array.") from None
    layout = "(K, K)" if expected_ndim == 2 else "(n_draws, K, K)"
    if costs.ndim != expected_ndim or costs.shape[-1] != costs.shape[-2] or costs.shape[-1] == 0:
        raise ValueError(f"{name} must have shape {layout} with K >= 1, got shape {costs.shape}.")
    if not np.all(np.isfinite(costs)):
        raise ValueError(f"{name} contains NaN or infinity; every cost must be finite.")
    return costs


def _solve_square(cost: np.ndarray) -> np.ndarray:
    # For a square matrix the row indices come back as arange(K), so the column
    # indices are exactly perm with aligned[i] = candidate[perm[i]].
    _, columns = linear_sum_assignment(cost)
    return columns.astype(np.intp)


def permutation_from_cost(cost: ArrayLike) -> np.ndarray:
    """The permutation of a candidate's components of least total cost.

    Parameters
    ----------
    cost : array-like of shape (K, K)
        ``cost[i, j]`` is the cost of giving component ``j`` of the candidate
        the reference label ``i`` (e.g. the squared distance between reference
        mean ``i`` and candidate mean ``j``).

    Returns
    -------
    perm : ndarray of int of shape (K,)
        The permutation minimising ``sum_i cost[i, perm[i]]``; align the
        candidate with ``aligned[..., i] = candidate[..., perm[i]]``.

    Examples
    --------
    >>> reference = np.array([0.0, 10.0])
    >>> candidate = np.array([10.2, -0.1])
    >>> perm = permutation_from_cost((reference[:, None] - candidate[None, :]) ** 2)
    >>> candidate[perm]
    array([-0.1, 10.2])
    """
    return _solve_square(_check_square_costs(cost, 2, "cost"))


def permutations_from_costs(costs: ArrayLike) -> np.ndarray:
    """One least-cost permutation per draw, as :func:`permutation_from_cost`.

    Parameters
    ----------
    costs : array-like of shape (n_draws, K, K)
        ``costs[s, i, j]`` is the cost of giving component ``j`` of draw ``s``
        the reference label ``i``.

    Returns
    -------
    perms : ndarray of int of shape (n_draws, K)
        ``perms[s]`` minimises ``sum_i costs[s, i, perms[s, i]]``; pass it to
        :func:`apply_permutations`.
    """
    costs = _check_square_costs(costs, 3, "costs")
    n_draws, n_components, _ = costs.shape
    if n_components == 2:
        # Only two candidates: keep the order unless swapping is strictly cheaper.
        keep = costs[:, 0, 0] + costs[:, 1, 1]
        swap = costs[:, 0, 1] + costs[:, 1, 0]
        perms = np.tile(np.arange(2, dtype=np.intp), (n_draws, 1))
        perms[swap < keep] = [1, 0]
        return perms
    perms = np.empty((n_draws, n_components), dtype=np.intp)
    for draw, cost in enumerate(costs):
        perms[draw] = _solve_square(cost)
    return perms


def apply_permutations(x: ArrayLike, perms: ArrayLike, axis: int = 1) -> np.ndarray:
    """Permute the component axis of each draw.

    Parameters
    ----------
    x : array-like of shape (n_draws, ..., K, ...)
        Per-draw arrays with the ``K`` components along ``axis``, e.g. means of
        shape (n_draws, K, n_features) or responsibilities of shape
        (n_draws, n_samples, K) with ``axis=2``. NumPy or JAX arrays.
    perms : array-like of int of shape (n_draws, K)
        One permutation of ``0 .. K-1`` per draw.
    axis : int, default=1
        The component axis of ``x``; not 0, which indexes the draws. Negative
        values count from the end.

    Returns
    -------
    aligned : ndarray of the shape of ``x``
        A new array with ``aligned[s, ..., i, ...] = x[s, ..., perms[s, i], ...]``.
    """
    x = np.asarray(x)
    perms = np.asarray(perms)
    if x.ndim < 2:
        raise ValueError(
            f"x must have shape (n_draws, ..., K, ...) with at least 2 dimensions, got "
            f"shape {x.shape}."
        )
    if not -x.ndim <= axis < x.ndim or axis % x.ndim == 0:
        raise ValueError(
            f"axis={axis} is not a component axis of x with {x.ndim} dimensions; use an "
            "axis in 1 .. x.ndim - 1 (axis 0 indexes the draws)."
        )
    axis %= x.ndim
    if perms.ndim != 2 or not np.issubdtype(perms.dtype, np.integer):
        raise ValueError(
            f"perms must be an integer array of shape (n_draws, K), got shape {perms.shape} "
            f"and dtype {perms.dtype}."
        )
    if perms.shape != (x.shape[0], x.shape[axis]):
        raise ValueError(
            f"perms has shape {perms.shape} but x has {x.shape[0]} draws and "
            f"{x.shape[axis]} components along axis {axis}; expected "
            f"({x.shape[0]}, {x.shape[axis]})."
        )
    identity = np.broadcast_to(np.arange(perms.shape[1]), perms.shape)
    if not np.array_equal(np.sort(perms, axis=1), identity):
        raise ValueError("Every row of perms must be a permutation of 0 .. K-1.")
    index_shape = [1] * x.ndim
    index_shape[0], index_shape[axis] = perms.shape
    return np.take_along_axis(x, perms.reshape(index_shape), axis=axis)


# --------------------------------------------------------------------------
# Clusters against classes: rectangular contingency tables.
# --------------------------------------------------------------------------


def _check_labels(labels, name: str, require_integers: bool) -> np.ndarray:
    """Return ``labels`` as a fresh non-empty 1-D array (integers if required)."""
    labels = np.array(labels, copy=True)
    if labels.ndim != 1 or labels.size == 0:
        raise ValueError(
            f"{name} must be a non-empty 1-D array of shape (n_samples,), got shape "
            f"{labels.shape}."
        )
    if require_integers:
        if labels.dtype == bool:
            labels = labels.astype(int)
        elif np.issubdtype(labels.dtype, np.floating) and np.all(np.mod(labels, 1) == 0):
            labels = labels.astype(np.int64)
        elif not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(f"{name} must hold integer labels, got dtype {labels.dtype}.")
    return labels


def _check_same_length(labels: np.ndarray, reference: np.ndarray, name: str) -> None:
    if labels.shape[0] != reference.shape[0]:
        raise ValueError(
            f"{name} has {labels.shape[0]} samples but reference has {reference.shape[0]}; "
            "pass one entry per sample for both."
        )


def _class_of_cluster(
    class_index: np.ndarray, n_classes: int, membership: np.ndarray
) -> np.ndarray:
    """Hungarian matching of clusters to classes on the (soft) contingency table.

    Parameters
    ----------
    class_index : ndarray of int of shape (n_samples,)
        The class of each sample, in ``0 .. n_classes - 1``.
    n_classes : int
        The number of classes.
    membership : ndarray of shape (n_samples, n_clusters)
        How much each sample belongs to each cluster: one-hot labels or
        probabilities.

    Returns
    -------
    class_of_cluster : ndarray of int of shape (n_clusters,)
        The class index matched to each cluster, -1 for clusters left without
        a class (when there are more clusters than classes).
    """
    agreement = np.zeros((n_classes, membership.shape[1]))
    np.add.at(agreement, class_index, membership)
    matched_classes, matched_clusters = linear_sum_assignment(agreement, maximize=True)
    class_of_cluster = np.full(membership.shape[1], -1, dtype=np.intp)
    class_of_cluster[matched_clusters] = matched_classes
    return class_of_cluster


def match_labels(labels: ArrayLike, reference: ArrayLike) -> dict[int, int]:
    """Map each cluster id to the reference class it agrees with most.

    The map is one-to-one and maximises the number of samples whose cluster is
    mapped to their reference class (Hungarian algorithm on the contingency
    table). With more clusters than classes, the clusters left over get new
    ids, ``max(reference) + 1, max(reference) + 2, ...`` in increasing order of
    cluster id, so they never count as agreeing with any class.

    Parameters
    ----------
    labels : array-like of int of shape (n_samples,)
        Cluster ids from a clustering, any integers.
    reference : array-like of int of shape (n_samples,)
        True classes, any integers.

    Returns
    -------
    mapping : dict of int to int
        ``mapping[cluster_id]`` is the class (or new id) given to that cluster,
        for every cluster id present in ``labels``.

    Examples
    --------
    >>> match_labels([1, 1, 0, 0, 2], [5, 5, 7, 7, 7])
    {0: 7, 1: 5, 2: 8}
    """
    labels = _check_labels(labels, "labels", require_integers=True)
    reference = _check_labels(reference, "reference", require_integers=True)
    _check_same_length(labels, reference, "labels")
    clusters, cluster_index = np.unique(labels, return_inverse=True)
    classes, class_index = np.unique(reference, return_inverse=True)
    one_hot = np.eye(clusters.size)[cluster_index]
    class_of_cluster = _class_of_cluster(class_index, classes.size, one_hot)
    unmatched = class_of_cluster < 0
    new_ids = classes.max() + 1 + np.arange(np.count_nonzero(unmatched))
    mapped = np.empty(clusters.size, dtype=np.result_type(classes, new_ids))
    mapped[~unmatched] = classes[class_of_cluster[~unmatched]]
    mapped[unmatched] = new_ids
    return {int(cluster): int(target) for cluster, target in zip(clusters, mapped)}


def align_labels(labels: ArrayLike, reference: ArrayLike) -> np.ndarray:
    """Relabel clusters with the reference classes they agree with most.

    Parameters
    ----------
    labels : array-like of int of shape (n_samples,)
        Cluster ids from a clustering.
    reference : array-like of int of shape (n_samples,)
        True classes.

    Returns
    -------
    aligned : ndarray of int of shape (n_samples,)
        ``mapping[labels[n]]`` with ``mapping = match_labels(labels, reference)``;
        surplus clusters get ids not used by ``reference``.
    """
    mapping = match_labels(labels, reference)
    labels = _check_labels(labels, "labels", require_integers=True)
    clusters, cluster_index = np.unique(labels, return_inverse=True)
    return np.array([mapping[int(cluster)] for cluster in clusters], dtype=np.int64)[cluster_index]


def align_proba(proba: ArrayLike, reference: ArrayLike, return_permutation: bool = False,
                ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Reorder probability columns so that column ``c`` is the ``c``-th class.

    Clusters are matched to classes by the Hungarian algorithm on the expected
    contingency table ``agreement[c, k] = sum of proba[n, k] over samples n of
    class c``, which maximises the mean probability given to the true class
    (the soft accuracy of :func:`bayesgmm.metrics.soft_accuracy`).

    Parameters
    ----------
    proba : array-like of shape (n_samples, K)
        Cluster membership probabilities (e.g. ``predict_proba``); each row
        non-negative and summing to one.
    reference : array-like of shape (n_samples,)
        True classes; ``classes = np.unique(reference)`` fixes their order.
    return_permutation : bool, default=False
        Also return where each output column comes from.

    Returns
    -------
    aligned : ndarray of shape (n_samples, max(K, C))
        ``C = len(classes)``. Column ``c < C`` is the probability of
        ``classes[c]``; with K > C the unmatched clusters follow as columns
        ``C .. K-1`` in increasing cluster order; with K < C classes without a
        cluster get a column of zeros.
    source_columns : ndarray of int of shape (max(K, C),)
        Returned if ``return_permutation``: ``aligned[:, c] =
        proba[:, source_columns[c]]``, or zeros where ``source_columns[c] ==
        -1``. When K == C this is a permutation with the convention of
        :func:`permutation_from_cost`.
    """
    try:
        proba = np.array(proba, dtype=float, copy=True)
    except (TypeError, ValueError):
        raise ValueError("proba could not be converted to a float array.") from None
    reference = _check_labels(reference, "reference", require_integers=False)
    if proba.ndim != 2 or proba.shape[1] == 0:
        raise ValueError(
            f"proba must have shape (n_samples, K) with K >= 1, got shape {proba.shape}."
        )
    _check_same_length(proba, reference, "proba")
    if not np.all(np.isfinite(proba)) or np.any(proba < 0):
        raise ValueError("proba must be finite and non-negative.")
    if not np.allclose(proba.sum(axis=1), 1.0, rtol=0.0, atol=PROBA_ROW_SUM_ATOL):
        raise ValueError(
            "Every row of proba must sum to 1 (membership probabilities); normalise the "
            "rows or pass predict_proba output."
        )
    classes, class_index = np.unique(reference, return_inverse=True)
    n_classes, n_clusters = classes.size, proba.shape[1]
    class_of_cluster = _class_of_cluster(class_index, n_classes, proba)
    source_columns = np.full(max(n_classes, n_clusters), -1, dtype=np.intp)
    matched = class_of_cluster >= 0
    source_columns[class_of_cluster[matched]] = np.flatnonzero(matched)
    source_columns[n_classes:] = np.flatnonzero(~matched)
    # A trailing zero column supplies the classes that no cluster was matched to.
    padded = np.concatenate([proba, np.zeros((proba.shape[0], 1))], axis=1)
    aligned = padded[:, source_columns]
    return (aligned, source_columns) if return_permutation else aligned
