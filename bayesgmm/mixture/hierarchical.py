"""R mclust's model-based hierarchical agglomeration, the start of its BIC grid.

``mclustBIC`` starts every EM fit with ``G >= 2`` components from a partition
cut out of one merge tree: ``hclass(hc(X, modelName="VVV", use="SVD"), G)``.
This module is that start in NumPy, run once on the host before any jitted
EM; it follows mclust 6 (``R/mbahc.R`` and the Fortran ``hcvvv`` in
``src/mclust.f``), merge for merge, ties included.

The data are first standardised and rotated (:func:`svd_transform`). The
agglomeration (:func:`merge_tree`) starts from singletons and repeatedly
merges the pair of clusters ``i, j`` with the smallest
``term(i + j) - term(i) - term(j)`` of the regularised VVV criterion::

    term(k) = n_k * log(det(W_k / n_k) + beta * (trace(W_k) + alpha) / n_k)

where ``W_k`` is the scatter matrix of cluster ``k`` about its mean (its
determinant counts as 0 while ``n_k <= n_features``) and ``alpha`` is the
user's ``alpha`` times ``trace(W) / (n_samples * n_features)`` of the whole
data set. The ``alpha`` and ``beta`` terms keep the criterion finite for
clusters too small to have a non-singular covariance; a singleton's term
is ``log(alpha * beta)``. :func:`labels_for_sizes` cuts the tree at given
numbers of clusters (mclust's ``hclass``), and :func:`hierarchical_labels`
is the whole start, subset included.

Three details of mclust are kept on purpose, because its trees depend on
them: the Fortran stores merged clusters' scatter matrices wrongly (see
``_as_stored``; ``merge_tree(exact_scatter=True)`` does without), equal
costs go to the last pair in its slot order, and its sums run in its order.
``hc``'s default ``partition = dupPartition(data)`` (k-means over
duplicate rows) never reaches ``hcVVV`` from ``mclustBIC``, which starts
from singletons, copies included; so does this module.

Examples
--------
>>> import numpy as np
>>> from bayesgmm.mixture.hierarchical import hierarchical_labels
>>> rng = np.random.default_rng(0)
>>> X = np.vstack([rng.normal(0, 1, (20, 2)), rng.normal(10, 1, (20, 2))])
>>> start = hierarchical_labels(X, [1, 2])
>>> start.labels[2][:3], start.labels[2][-3:]
(array([0, 0, 0]), array([1, 1, 1]))
"""

from __future__ import annotations

import numbers
from typing import NamedTuple

import numpy as np
from sklearn.utils import check_random_state

from bayesgmm._validation import (
    check_array,
    check_bool,
    check_int,
    check_nonnegative_float,
)

# mclust.options("subset"): mclustBIC runs hc on this many random rows of a
# larger data set (the agglomeration needs O(n^2) memory and time).
MCLUST_SUBSET = 2000

# Fortran's EPSMAX: hcvvv's floor for alpha, so that the singleton term
# log(alpha * beta) is finite even for data with no spread.
_EPSMAX = np.finfo(np.float64).eps
# Fortran's rthalf: each point's weight in the difference of a pair.
_RTHALF = np.sqrt(0.5)


class HierarchicalStart(NamedTuple):
    """The partitions :func:`hierarchical_labels` starts EM from."""

    labels: dict  # size -> ndarray of shape (n_rows,): partition of X[rows]
    rows: np.ndarray  # (n_rows,) int64, increasing: the rows of X agglomerated


# --------------------------------------------------------------------------
# The "SVD" variables
# --------------------------------------------------------------------------


def svd_transform(X) -> np.ndarray:
    """mclust's ``hc(use = "SVD")`` variables: standardised data, whitened by sqrt.

    mclust centres each column, divides it by its standard deviation
    (``ddof=1``), drops the columns that are then not finite (constant
    columns), takes the thin SVD ``Xs = U diag(s) V^T`` and returns
    ``Xs V diag(1 / sqrt(s))``, which equals ``U diag(sqrt(s))``: principal
    components scaled by the square root of their singular values, halfway
    between the principal components (``U diag(s)``) and their sphered form
    (``U``).

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        At least two rows.

    Returns
    -------
    Z : ndarray of shape (n_samples, min(n_samples, n_kept))
        ``n_kept`` is the number of non-constant columns. Its columns are
        defined up to sign (as the SVD's are); nothing downstream depends on
        the signs.

    Raises
    ------
    ValueError
        When every column is constant, or when the standardised columns are
        linearly dependent (a singular value of rounding size, where mclust's
        transform divides by zero or by rounding noise).
    """
    X = check_array(X, np.float64, min_samples=2)
    # R's scale() makes a constant column 0/0 and dropCols() removes it; a
    # direct test avoids keeping one whose computed mean is off by rounding.
    varying = np.ptp(X, axis=0) > 0
    if not varying.any():
        raise ValueError(
            "Every column of X is constant, so the hierarchical start has nothing "
            "to cluster on. Pass data with at least one varying column."
        )
    X = X[:, varying]
    standardised = (X - X.mean(axis=0)) / X.std(axis=0, ddof=1)
    _, singular_values, vt = np.linalg.svd(standardised, full_matrices=False)
    # numpy.linalg.matrix_rank's tolerance: exactly dependent columns leave a
    # singular value of rounding size (how small depends on the LAPACK build).
    tolerance = max(standardised.shape) * np.finfo(np.float64).eps * singular_values[0]
    if not singular_values[-1] > tolerance:
        raise ValueError(
            "The standardised columns of X are linearly dependent (a singular value "
            "is 0), so mclust's SVD transform divides by zero. Drop the redundant "
            "columns."
        )
    return standardised @ vt.T / np.sqrt(singular_values)


# --------------------------------------------------------------------------
# The merge tree (Fortran hcvvv)
# --------------------------------------------------------------------------


def _sum_of_squares(v):
    """``ddot(v, v)`` along the last axis, summed in order as reference BLAS does.

    Rounding decides between pairs whose costs tie in exact arithmetic
    (points a same step apart in rounded data); summing in Fortran's order
    makes those decisions mclust's, given mclust's variables.

    Parameters
    ----------
    v : ndarray of shape (..., n_features)

    Returns
    -------
    sums : ndarray of shape (...)
    """
    return np.cumsum(v * v, axis=-1)[..., -1]


def _regularisation(X, alpha):
    """hcVVV's ``alpha * traceW(X / sqrt(n * p))``, floored at machine epsilon.

    Summed in the order of Fortran ``mcltrw``: column means by ``daxpy``
    over rows, then a ``ddot`` per column.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    alpha : float

    Returns
    -------
    alpha : float
    """
    n_samples, n_features = X.shape
    scaled = X / np.sqrt(n_samples * n_features)
    factor = 1.0 / np.sqrt(n_samples)
    sums = np.cumsum(factor * scaled, axis=0)[-1]
    centred = scaled + (-factor) * sums
    per_column = np.cumsum(centred * centred, axis=0)[-1]
    return max(alpha * np.cumsum(per_column)[-1], _EPSMAX)


def _cluster_terms(counts, traces, logdets, alpha, beta, n_features):
    """Fortran ``vvvtij``: the criterion term of each candidate cluster.

    Parameters
    ----------
    counts : ndarray of shape (m,)
    traces : ndarray of shape (m,)
        ``trace(W)`` of each candidate.
    logdets : ndarray of shape (m,)
        ``log det(W / n)``, ``-inf`` where ``W`` is singular; read only where
        ``counts > n_features``.

    Returns
    -------
    terms : ndarray of shape (m,)
    """
    trace_part = beta * (traces + alpha) / counts
    with np.errstate(over="ignore", invalid="ignore"):
        # log(det + trace_part), written as vvvtij writes it so that the
        # rounding is the same on both sides of det = 1.
        with_det = np.where(
            logdets <= 0,
            np.log(np.exp(logdets) + trace_part),
            np.log(1.0 + np.exp(-logdets) * trace_part) + logdets,
        )
    per_point = np.where(
        (counts <= n_features) | (logdets == -np.inf),
        np.log(trace_part),
        # A cluster of coincident points (trace 0) takes the limit of the
        # regularised form, whatever its determinant's rounding.
        np.where(traces == 0, np.log(alpha * beta / counts), with_det),
    )
    return counts * per_point


def _as_stored(scatter, count):
    """The scatter matrix hcvvv reads back for a cluster it has stored.

    hcvvv keeps a merged cluster's triangular factor ``R`` (``R^T R =
    scatter``) in spare rows of its data matrix, but its copy loop writes
    the first row of ``R`` into each of them (``dcopy(p, r(1,1), p, x(l,1),
    n)`` where ``r(k,k)`` was meant), and reading back takes row ``k`` from
    column ``k`` on. The matrix read is therefore ``R'`` with ``R'[k, j] =
    R[0, j]`` for ``j >= k``, over ``min(count - 1, n_features)`` rows, and
    its Gram matrix is ``outer(r, r) * (min(i, j, rows - 1) + 1)``.

    Parameters
    ----------
    scatter : ndarray of shape (n_features, n_features)
    count : float
        The cluster's number of points, at least 2.

    Returns
    -------
    stored : ndarray of shape (n_features, n_features)
    """
    n_features = len(scatter)
    # R's first row is scatter[0] / sqrt(scatter[0, 0]), whatever the signs
    # Givens rotations gave it (they cancel in the Gram matrix). When every
    # point shares the first coordinate (a cluster of copies, after the SVD
    # transform) it is 0 for copies and depends on the merge order otherwise;
    # 0 is taken.
    first_row = scatter[0] / np.sqrt(scatter[0, 0]) if scatter[0, 0] > 0 else np.zeros(n_features)
    rows = min(int(count) - 1, n_features)
    index = np.arange(n_features)
    multiplicity = np.minimum(np.minimum.outer(index, index), rows - 1) + 1
    return np.outer(first_row, first_row) * multiplicity


def _last_minimum_per_column(block, columns):
    """The smallest entry above the diagonal of each column, ties to the lowest one.

    Parameters
    ----------
    block : ndarray of shape (n_active, k)
        ``cost[:n_active, columns]``.
    columns : ndarray of shape (k,)
        Slot indices; only rows above each one count.

    Returns
    -------
    minima : ndarray of shape (k,)
        ``inf`` for column 0 (no rows above it).
    rows : ndarray of shape (k,)
        The last row holding the minimum: Fortran scans ``.le.``, so the
        last of equal values wins.
    """
    rows_above = np.arange(block.shape[0])[:, None] < columns[None, :]
    masked = np.where(rows_above, block, np.inf)
    rows = block.shape[0] - 1 - np.argmin(masked[::-1], axis=0)
    return masked[rows, np.arange(len(columns))], rows


def merge_tree(X, *, alpha: float = 1.0, beta: float = 1.0, exact_scatter: bool = False) -> np.ndarray:
    """The VVV agglomeration of mclust's ``hcVVV``: n - 1 merges, in order.

    Every point starts as its own cluster; each step merges the pair of
    clusters whose merge changes the VVV classification criterion least
    (the module docstring). The bookkeeping follows Fortran ``hcvvv`` so
    that equal costs resolve as in mclust: clusters live in slots; a merge
    writes the new cluster into the lower slot and moves the last slot into
    the upper one; the pair chosen is the last minimum in the order (0, 1),
    (0, 2), (1, 2), (0, 3), ... of slots. The arithmetic follows it too
    (each cluster held as ``sqrt(n_k) * mean_k``, sums in Fortran's order),
    so that costs tied up to rounding fall the same way: from mclust's own
    variables (``attr(hc(X), "data")``) this gives mclust's merges exactly,
    ties included, on every data set tried.

    Memory is one ``(n, n)`` float64 matrix of merge costs (32 MB at
    n = 2000) and one scatter matrix per cluster; each merge recomputes one
    row of costs, vectorised (a batch of determinants of ``n_features``
    square matrices), and keeps a minimum per column so the next pair is
    found in O(n). About 1 s at n = 2000 with 2 to 10 features.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        The variables to agglomerate on, at least two rows; mclust passes
        :func:`svd_transform` of the data.
    alpha : float, default=1.0
        hcVVV's ``alpha``, relative: the criterion uses ``alpha *
        trace(W) / (n_samples * n_features)`` (at least machine epsilon).
    beta : float, default=1.0
        hcVVV's ``beta`` > 0.
    exact_scatter : bool, default=False
        False reproduces mclust, whose Fortran stores each merged cluster's
        scatter matrix wrongly (its triangular factor's first row in every
        row, see ``_as_stored``): the determinants in the costs of merges
        with such clusters are then off, usually slightly (merge costs off
        by up to a relative 2e-5 on iris and 2e-2 on mclust's ``wreath``).
        True prices every merge with the exact scatter matrices; its trees
        can differ from mclust's in the last merges (``wreath``: from 4
        clusters down; the 2-cluster cut of the ``elongated`` test data).

    Returns
    -------
    tree : ndarray of shape (n_samples - 1, 2), int64
        Row ``k`` is merge ``k`` as ``(a, b)``, ``a < b``: each cluster is
        named by its smallest row index (0-based), and after the merge the
        cluster is named ``a``. This is mclust's ``hcPairs`` transposed,
        minus one.
    """
    X = check_array(X, np.float64, min_samples=2)
    alpha = check_nonnegative_float("alpha", alpha)
    beta = check_nonnegative_float("beta", beta, strict=True)
    exact_scatter = check_bool("exact_scatter", exact_scatter)
    n_samples, n_features = X.shape
    alpha = _regularisation(X, alpha)
    singleton_term = np.log(beta * alpha)

    # Per slot. A cluster is held as hcvvv holds it, sqrt(n_k) * mean_k, so
    # that merging is x_new = sqrt(n_i / n) x_i + sqrt(n_j / n) x_j and the
    # merge's rank-one scatter is v v^T, v = sqrt(n_i / n) x_j - sqrt(n_j / n) x_i.
    counts = np.ones(n_samples)
    scaled_means = X.copy()
    scatters = np.zeros((n_samples, n_features, n_features))  # as hcvvv reads them back
    traces = np.zeros(n_samples)  # exact: hcvvv accumulates them apart from the factors
    terms = np.full(n_samples, singleton_term)
    names = np.arange(n_samples)  # smallest row index of each slot's cluster

    # Pairs of singletons, priced by the trace alone for any number of
    # features (the pair's scatter has rank one): v = (x_i - x_j) / sqrt(2).
    cost = np.full((n_samples, n_samples), np.inf)
    for row in range(n_samples - 1):
        pair_traces = _sum_of_squares((X[row] - X[row + 1 :]) * _RTHALF)
        pair_terms = 2.0 * np.log(beta * (pair_traces + alpha) / 2.0)
        cost[row, row + 1 :] = pair_terms - (singleton_term + singleton_term)
        cost[row + 1 :, row] = cost[row, row + 1 :]
    column_min, column_arg = _last_minimum_per_column(cost, np.arange(n_samples))

    tree = np.empty((n_samples - 1, 2), dtype=np.int64)
    n_active = n_samples
    previous = -1  # slot of the cluster made by the previous merge
    previous_terms = previous_traces = None  # its candidates with every slot
    previous_scatter = None  # its scatter matrix as held in memory (exact)
    for step in range(n_samples - 1):
        upper = n_active - 1 - int(np.argmin(column_min[:n_active][::-1]))
        lower = int(column_arg[upper])
        tree[step] = sorted((names[lower], names[upper]))
        names[lower] = tree[step, 0]

        n_lower, n_upper = counts[lower], counts[upper]
        n_new = n_lower + n_upper
        weight_lower = np.sqrt(n_lower * (1.0 / n_new))
        weight_upper = np.sqrt(n_upper * (1.0 / n_new))
        if n_new == 2:
            v = (scaled_means[lower] - scaled_means[upper]) * _RTHALF
        else:
            v = weight_upper * scaled_means[lower] + (-weight_lower) * scaled_means[upper]
        # hcvvv keeps what it priced for pairs with the previous merge
        # (its term and trace, and its factor from memory rather than from
        # storage) and rebuilds the rest; the two differ by rounding, which
        # can decide later ties.
        if step > 0 and previous in (lower, upper):
            other = upper if previous == lower else lower
            new_term, new_trace = previous_terms[other], previous_traces[other]
            merged_scatter = previous_scatter + scatters[other]
        else:
            if step == 0:
                new_term = 2.0 * np.log(beta * (_sum_of_squares(v) + alpha) / 2.0)
            else:
                new_term = cost[lower, upper] + (terms[lower] + terms[upper])
            new_trace = (traces[lower] + traces[upper]) + _sum_of_squares(v)
            merged_scatter = scatters[lower] + scatters[upper]
        merged_scatter = merged_scatter + np.outer(v, v)
        scaled_means[lower] = weight_lower * scaled_means[lower] + weight_upper * scaled_means[upper]
        scatters[lower] = merged_scatter if exact_scatter else _as_stored(merged_scatter, n_new)
        previous_scatter = merged_scatter
        counts[lower], traces[lower], terms[lower] = n_new, new_trace, new_term

        last = n_active - 1
        if upper != last:
            for array in (counts, scaled_means, scatters, traces, terms, names):
                array[upper] = array[last]
            cost[upper, :] = cost[last, :]
            cost[:, upper] = cost[:, last]
            cost[upper, upper] = np.inf
        cost[last, :] = np.inf
        cost[:, last] = np.inf
        column_min[last] = np.inf
        n_active -= 1
        if n_active == 1:
            break

        # The new cluster against every other slot.
        others = np.delete(np.arange(n_active), lower)
        n_pair = counts[others] + n_new
        weight_new = np.sqrt(n_new * (1.0 / n_pair))
        weight_others = np.sqrt(counts[others] * (1.0 / n_pair))
        v = weight_new[:, None] * scaled_means[others] + (-weight_others)[:, None] * scaled_means[lower]
        pair_traces = (traces[lower] + traces[others]) + _sum_of_squares(v)
        logdets = np.full(len(others), -np.inf)
        needs_det = (n_pair > n_features) & (pair_traces != 0)
        if needs_det.any():
            v = v[needs_det]
            pair_scatters = previous_scatter + scatters[others[needs_det]] + v[:, :, None] * v[:, None, :]
            sign, logabsdet = np.linalg.slogdet(pair_scatters)
            # Fortran's det2mc takes |diag(R)| and calls a zero pivot singular.
            logdets[needs_det] = np.where(
                sign != 0, logabsdet - n_features * np.log(n_pair[needs_det]), -np.inf
            )
        previous_terms = np.empty(n_active)
        previous_traces = np.empty(n_active)
        previous_terms[others] = _cluster_terms(n_pair, pair_traces, logdets, alpha, beta, n_features)
        previous_traces[others] = pair_traces
        cost[lower, others] = previous_terms[others] - (new_term + terms[others])
        cost[others, lower] = cost[lower, others]
        previous = lower

        # Column minima: recompute the columns whose rows above the diagonal
        # were replaced, or whose minimum sat in a replaced row; elsewhere
        # only the replaced rows (lower, and upper when it received the last
        # slot) can lower the minimum.
        changed_rows = [lower] + ([upper] if upper < n_active else [])
        columns = np.arange(n_active)
        stale = np.isin(column_arg[:n_active], changed_rows) & (columns > min(changed_rows))
        stale[changed_rows] = True
        for row in changed_rows:
            later = columns[row + 1 :]
            later = later[~stale[later]]
            values = cost[row, later]
            better = (values < column_min[later]) | (
                (values == column_min[later]) & (row > column_arg[later])
            )
            column_min[later[better]] = values[better]
            column_arg[later[better]] = row
        stale_columns = columns[stale]
        column_min[stale_columns], column_arg[stale_columns] = _last_minimum_per_column(
            cost[:n_active, stale_columns], stale_columns
        )
    return tree


# --------------------------------------------------------------------------
# Cutting the tree (hclass) and the whole start
# --------------------------------------------------------------------------


def _check_sizes(sizes, n_samples: int) -> list[int]:
    if isinstance(sizes, numbers.Integral):
        sizes = [sizes]
    sizes = list(sizes)
    if not sizes:
        raise ValueError("sizes is empty. Pass the numbers of clusters wanted, e.g. range(1, 10).")
    return [check_int("sizes", size, 1, n_samples) for size in sizes]


def labels_for_sizes(tree, sizes) -> dict:
    """Partitions cut from a merge tree, as mclust's ``hclass``.

    Parameters
    ----------
    tree : array-like of shape (n_samples - 1, 2), int
        Merges as returned by :func:`merge_tree`.
    sizes : int or iterable of int
        Numbers of clusters, each in ``[1, n_samples]``.

    Returns
    -------
    labels : dict
        ``size -> ndarray of shape (n_samples,)`` of int64 labels
        ``0 .. size - 1``, numbered in the order in which clusters first
        appear down the rows (mclust's ``partconv(consec = TRUE)``, minus
        one): the partition after the first ``n_samples - size`` merges.
    """
    tree = np.asarray(tree)
    if tree.ndim != 2 or tree.shape[1] != 2 or not np.issubdtype(tree.dtype, np.integer):
        raise ValueError(
            f"tree must be an integer array of shape (n_samples - 1, 2), got dtype "
            f"{tree.dtype} and shape {tree.shape}. Pass the output of merge_tree."
        )
    n_samples = len(tree) + 1
    if len(tree) and not (
        (tree[:, 0] >= 0).all() and (tree[:, 0] < tree[:, 1]).all() and (tree[:, 1] < n_samples).all()
    ):
        raise ValueError(
            "tree holds a merge (a, b) outside 0 <= a < b < n_samples. Pass the output of merge_tree."
        )
    labels = {}
    for size in _check_sizes(sizes, n_samples):
        n_merges = n_samples - size
        parent = np.arange(n_samples)
        parent[tree[:n_merges, 1]] = tree[:n_merges, 0]
        # Each merge points the larger name at the smaller, so following the
        # pointers ends at the cluster's smallest row (pointer jumping halves
        # the remaining path each pass).
        while True:
            grandparent = parent[parent]
            if np.array_equal(grandparent, parent):
                break
            parent = grandparent
        # A cluster's smallest row is where it first appears, so ranking the
        # roots numbers clusters in order of first appearance.
        labels[size] = np.unique(parent, return_inverse=True)[1].astype(np.int64)
    return labels


def hierarchical_labels(
    X, sizes, *, subset: int | None = MCLUST_SUBSET, random_state=None
) -> HierarchicalStart:
    """mclustBIC's start: ``hclass(hc(X, "VVV", use = "SVD"), sizes)``, subset included.

    When ``X`` has more than ``subset`` rows, mclust agglomerates
    ``subset`` rows drawn at random (``mclust.options("subset")``, 2000)
    and starts EM from them: an M-step on those rows' labels, then an
    E-step on every row. This function returns the labels of the drawn
    rows and their indices; that M-step and E-step are the EM engine's.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        The data as given (the SVD transform is applied here, to the rows
        agglomerated).
    sizes : int or iterable of int
        Numbers of clusters, each at most the number of distinct rows
        agglomerated.
    subset : int or None, default=2000
        Agglomerate at most this many rows (at least 2); None agglomerates
        all of them.
    random_state : int, RandomState instance or None
        Draws the subset, through ``sklearn.utils.check_random_state``. The
        draw cannot match R's ``sample``.

    Returns
    -------
    start : HierarchicalStart
        ``rows``: ndarray of shape (n_rows,), the increasing indices of the
        rows agglomerated (``arange(n_samples)`` without a subset);
        ``labels``: ``size -> ndarray of shape (n_rows,)`` labelling
        ``X[rows]`` as :func:`labels_for_sizes` does. Rows are taken in
        increasing order, not R's random order, which only matters for
        ties.

    Raises
    ------
    ValueError
        When the rows agglomerated are fewer than ``n_features + 1`` (mclust
        then starts from an EII tree, not implemented here) or have fewer
        distinct points than the largest size, and for invalid ``sizes`` or
        ``subset``.
    """
    X = check_array(X, np.float64, min_samples=2)
    n_samples, n_features = X.shape
    if subset is not None:
        subset = check_int("subset", subset, 2)
    if subset is not None and n_samples > subset:
        rng = check_random_state(random_state)
        rows = np.sort(rng.choice(n_samples, size=subset, replace=False))
    else:
        rows = np.arange(n_samples)
    data = X[rows]
    sizes = _check_sizes(sizes, len(rows))
    if len(rows) <= n_features:
        raise ValueError(
            f"The hierarchical start agglomerates {len(rows)} rows of {n_features} "
            "features; the VVV agglomeration needs more rows than features (mclust "
            "switches to an EII tree there, which is not implemented). Pass more rows "
            "or fewer features."
        )
    n_distinct = len(np.unique(data, axis=0))
    if n_distinct < max(sizes):
        raise ValueError(
            f"The rows agglomerated hold {n_distinct} distinct points, fewer than the "
            f"{max(sizes)} clusters asked for. Ask for at most {n_distinct} clusters."
        )
    tree = merge_tree(svd_transform(data))
    return HierarchicalStart(labels=labels_for_sizes(tree, sizes), rows=rows)
