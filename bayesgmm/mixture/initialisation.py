"""Initial responsibilities and parameters, drawn as scikit-learn draws them.

:func:`initial_responsibilities` reproduces scikit-learn's random stream,
so a ``random_state`` gives the same initialisation as
``sklearn.mixture.GaussianMixture``.
"""

from __future__ import annotations

import contextlib
import functools
import warnings

import jax
import jax.numpy as jnp
import numpy as np

from bayesgmm import gaussian, structures
from bayesgmm.mixture.blocks import DataLayout
from bayesgmm.mixture.forms import EXPANDED, EStepForm
from bayesgmm.mixture.mstep import initial_params_from_responsibilities
from bayesgmm.mixture.parameters import (
    GMMParams,
    _inactive_covariance,
    _padded,
    precision_scope,
)

# --------------------------------------------------------------------------
# Initialisation on the host (scikit-learn's random stream)
# --------------------------------------------------------------------------

# Below this much work (samples x features x components) k-means runs on one
# OpenMP thread: its threads busy-wait at every barrier, and on a CPU shared
# with XLA's worker threads (still spinning after the previous fit) a small
# k-means took several times longer with two threads than with one.
SERIAL_KMEANS_WORK = 1 << 23


@functools.lru_cache(maxsize=1)
def _threadpool_controller():
    """threadpoolctl's view of the loaded thread pools (finding them takes ~10 ms, so once)."""
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def _serial_openmp(work: int):
    """A context that limits OpenMP to one thread when ``work`` is below ``SERIAL_KMEANS_WORK``."""
    if work >= SERIAL_KMEANS_WORK:
        return contextlib.nullcontext()
    return _threadpool_controller().limit(limits=1, user_api="openmp")


@functools.lru_cache(maxsize=1)
def _sklearn_lloyd():
    """scikit-learn's own k-means++ and Lloyd kernels, or None where they are not found."""
    try:
        from sklearn.cluster._kmeans import _kmeans_plusplus, _kmeans_single_lloyd, _tolerance
        from sklearn.utils._openmp_helpers import _openmp_effective_n_threads
        from sklearn.utils.extmath import row_norms
    except ImportError:  # another layout of scikit-learn's private modules
        return None
    return _kmeans_plusplus, _kmeans_single_lloyd, _tolerance, _openmp_effective_n_threads, row_norms


def kmeans_labels(X: np.ndarray, sample_weight, n_components: int, random_state) -> np.ndarray:
    """``KMeans(n_components, n_init=1, random_state=random_state).fit(X, sample_weight).labels_``.

    What scikit-learn's ``GaussianMixture`` starts from. ``KMeans.fit``
    spends most of a small fit validating and setting up (6.5 ms at 1,000 x
    4 where its k-means++ and Lloyd iterations take 0.5 ms), so this runs
    the same steps on scikit-learn's own kernels: ``fit``'s tolerance (on
    the data as given), its centring, k-means++ with its number of local
    trials, Lloyd from those centres, and its warning when fewer distinct
    clusters than asked for are found. The labels and the draws from
    ``random_state`` are ``KMeans``'s (tested); where scikit-learn's private
    kernels are not found, ``KMeans`` itself runs.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Finite, at least ``n_components`` rows (the estimators check both);
        float32 stays float32, any other dtype becomes float64, as in ``KMeans``.
    sample_weight : ndarray of shape (n_samples,) or None
    n_components : int
    random_state : numpy.random.RandomState
        Advanced as ``KMeans`` advances it.

    Returns
    -------
    labels : ndarray of shape (n_samples,), int32
    """
    kernels = _sklearn_lloyd()
    work = X.shape[0] * X.shape[1] * n_components
    if kernels is None:
        from sklearn.cluster import KMeans

        with _serial_openmp(work):
            kmeans = KMeans(n_clusters=n_components, n_init=1, random_state=random_state)
            return kmeans.fit(X, sample_weight=sample_weight).labels_.astype(np.int32)
    kmeans_plusplus, single_lloyd, tolerance, effective_threads, row_norms = kernels
    # A copy (centred below, as KMeans centres its copy), in KMeans's dtypes.
    X = np.array(X, dtype=X.dtype if X.dtype in (np.float32, np.float64) else np.float64, order="C")
    weights = (
        np.ones(X.shape[0], dtype=X.dtype) if sample_weight is None else np.asarray(sample_weight, X.dtype)
    )
    tol = tolerance(X, 1e-4)
    X -= X.mean(axis=0)
    squared_norms = row_norms(X, squared=True)
    centres, _ = kmeans_plusplus(X, n_components, squared_norms, weights, random_state)
    # One thread below SERIAL_KMEANS_WORK, as KMeans runs under _serial_openmp.
    n_threads = 1 if work < SERIAL_KMEANS_WORK else effective_threads()
    labels, _, _, _ = single_lloyd(X, weights, centres, max_iter=300, tol=tol, n_threads=n_threads)
    if len(set(labels)) < n_components:
        from sklearn.exceptions import ConvergenceWarning

        warnings.warn(
            f"Number of distinct clusters ({len(set(labels))}) found smaller than n_clusters "
            f"({n_components}). Possibly due to duplicate points in X.",
            ConvergenceWarning,
            stacklevel=2,
        )
    return labels.astype(np.int32, copy=False)


def initial_responsibilities(
    X: np.ndarray,
    sample_weight: np.ndarray | None,
    n_components: int,
    init_params: str,
    random_state: np.random.RandomState,
) -> np.ndarray:
    """Initial responsibilities, drawing from ``random_state`` as scikit-learn does.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    sample_weight : ndarray of shape (n_samples,) or None
        ``None`` means unit weights; then the draws equal scikit-learn's.
    n_components : int
    init_params : {'kmeans', 'k-means++', 'random', 'random_from_data', 'hierarchical'}
        'hierarchical': mclust's start (:func:`hierarchical_start`).
    random_state : numpy.random.RandomState

    Returns
    -------
    labels : ndarray of shape (n_samples,), int32
        For the one-hot initialisations ('kmeans', 'k-means++',
        'random_from_data', 'hierarchical'): the component each point is
        assigned to, -1 for none. Stored compactly: at a million points the dense form would
        cost n_samples * n_components floats.
    resp : ndarray of shape (n_samples, n_components)
        For 'random': dense responsibilities.
    """
    from sklearn.cluster import kmeans_plusplus

    n_samples = X.shape[0]
    if init_params == "hierarchical":
        return hierarchical_start(X, sample_weight, [n_components], random_state)[n_components]
    if init_params == "random":
        resp = random_state.uniform(size=(n_samples, n_components)).astype(X.dtype)
        resp /= resp.sum(axis=1)[:, None]
        return resp
    if init_params == "kmeans":
        return kmeans_labels(X, sample_weight, n_components, random_state)
    if init_params == "random_from_data":
        if sample_weight is None:
            indices = random_state.choice(n_samples, size=n_components, replace=False)
        else:
            # Points with zero weight must never seed a component.
            probabilities = (sample_weight > 0) / np.count_nonzero(sample_weight > 0)
            indices = random_state.choice(
                n_samples, size=n_components, replace=False, p=probabilities
            )
    else:  # k-means++
        _, indices = kmeans_plusplus(
            X, n_components, random_state=random_state, sample_weight=sample_weight
        )
    labels = np.full(n_samples, -1, dtype=np.int32)
    labels[indices] = np.arange(n_components)
    return labels


def hierarchical_start(
    X: np.ndarray,
    sample_weight: np.ndarray | None,
    sizes,
    random_state: np.random.RandomState,
) -> dict:
    """mclust's model-based hierarchical start, cut at every size of ``sizes``.

    The VVV agglomeration of :func:`bayesgmm.mixture.hierarchical.merge_tree`
    on mclust's SVD-transformed variables, as ``mclustBIC`` starts EM: the
    initial M-step sees each point's cluster of the tree cut at ``k``
    clusters. The tree is built once for all sizes. Above
    :data:`~bayesgmm.mixture.hierarchical.MCLUST_SUBSET` rows it is built on
    a random subset of that many rows (drawn from a copy of
    ``random_state``, so every size, and a fit of one size alone, get the
    same subset) and the other rows take no part in the initial M-step, as in
    mclust. Rows of zero weight take no part either; the weights of the
    others do not enter the agglomeration (mclust has none), only the
    initial M-step.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    sample_weight : ndarray of shape (n_samples,) or None
    sizes : sequence of int
    random_state : numpy.random.RandomState
        Not advanced.

    Returns
    -------
    dict of int to ndarray of shape (n_samples,), int32
        Labels 0..k-1 per size, -1 for rows outside the tree.

    Raises
    ------
    ValueError
        When the rows hold fewer distinct points than a size asks for, or
        no more rows than features.
    """
    from bayesgmm.mixture import hierarchical

    candidates = np.arange(X.shape[0]) if sample_weight is None else np.flatnonzero(sample_weight > 0)
    start = hierarchical.hierarchical_labels(
        X[candidates], sizes, random_state=copy_random_state(random_state)
    )
    labels = {}
    for size, own in start.labels.items():
        full = np.full(X.shape[0], -1, dtype=np.int32)
        full[candidates[start.rows]] = own
        labels[size] = full
    return labels


# The starts that seed each component with one point and leave every other row unassigned.
SEEDED_STARTS = ("k-means++", "random_from_data")


def scikit_learn_seeded_start(params: GMMParams, labels, rows: np.ndarray, row_weights: np.ndarray | None,
                              covariance_type: str, *, init_params: str, given: dict,
                              prior=None) -> GMMParams:
    """The initial values scikit-learn computes from seeded starts, where they differ.

    After 'k-means++' or 'random_from_data' (:data:`SEEDED_STARTS`: one
    point seeds each component, every other row has no responsibility at
    all) scikit-learn's initial M-step divides the seeds' weights by the
    number of rows, not by the seeds' weight, so they sum to less than one
    (which changes the first lower bound, and so when EM stops), and its
    tied M-step, ``(X^T X - sum_k n_k mu_k mu_k^T) / sum_k n_k`` over every
    row, adds the unassigned rows' uncentred scatter ``sum x x^T / sum_k n_k``
    to the seeds' own covariance
    (:attr:`~bayesgmm.structures.CovarianceStructure.scatter_of_unassigned_rows`).
    The same fit as scikit-learn's needs the same start. User-given
    weights or precisions are kept as given, and a MAP start (``prior``)
    is mclust's, not scikit-learn's.

    Parameters
    ----------
    params : GMMParams
        The batch's initial parameters (leading axis n_candidates), from the
        seeds' responsibilities.
    labels : ndarray of shape (n_rows, n_candidates), int32, or None
        Each candidate's seeds, -1 for rows no component holds (None: no
        responsibilities were drawn).
    rows : ndarray of shape (n_rows, n_features)
        The rows as given (not centred: scikit-learn's sum is of raw rows).
    row_weights : ndarray of shape (n_rows,) or None
    covariance_type : str
    init_params : str
    given : dict
        The user's ``weights_init``, ``means_init``, ``precisions_init`` (None where not given).
    prior : optional

    Returns
    -------
    GMMParams
    """
    structure = structures.get(covariance_type)
    if init_params not in SEEDED_STARTS or prior is not None or labels is None or np.ndim(labels) != 2:
        return params
    weights = np.ones(labels.shape[0]) if row_weights is None else np.asarray(row_weights, np.float64)
    seeded = [np.flatnonzero(labels[:, candidate] >= 0) for candidate in range(labels.shape[1])]
    seed_weights = np.array([weights[seeds].sum() for seeds in seeded])
    dtype = np.asarray(params.weights).dtype
    if given["weights_init"] is None:
        scaled = np.asarray(params.weights, np.float64) * (seed_weights / weights.sum())[:, None]
        params = params._replace(weights=jnp.asarray(scaled, dtype))
    if not structure.scatter_of_unassigned_rows or given["precisions_init"] is not None:
        return params
    rows = np.asarray(rows, dtype=np.float64)
    # Rows with missing values are a case scikit-learn does not fit.
    if not np.isfinite(rows).all():
        return params
    # einsum, not a BLAS product: OpenBLAS's threads would spin into the EM loop.
    every_row = np.einsum("n,ni,nj->ij", weights, rows, rows)
    covariances = np.array(params.covariances, dtype=np.float64)
    for candidate, seeds in enumerate(seeded):
        own = np.einsum("n,ni,nj->ij", weights[seeds], rows[seeds], rows[seeds])
        covariances[candidate] += (every_row - own) / seed_weights[candidate]
    with precision_scope(dtype):
        covariances = jnp.asarray(covariances, dtype)
        factors = jax.vmap(structure.precisions_cholesky_from_covariances)(covariances)
    return params._replace(covariances=covariances, precisions_cholesky=factors)


def copy_random_state(random_state: np.random.RandomState) -> np.random.RandomState:
    """An independent RandomState at the same point of its stream (faster than
    ``copy.deepcopy``, which is a noticeable share of a small fit)."""
    copied = np.random.RandomState(0)
    copied.set_state(random_state.get_state())
    return copied


def initial_params(
    layout: "DataLayout",
    X_blocks,
    weight_blocks,
    resp,
    active: np.ndarray,
    *,
    covariance_type: str,
    reg_covar: float,
    weights_init=None,
    means_init=None,
    precisions_init=None,
    form: EStepForm = EXPANDED,
    prior=None,
    choice=None,
) -> GMMParams:
    """Initial parameters for a batch of candidates, user-given values taking precedence.

    Parameters
    ----------
    layout : DataLayout
    X_blocks, weight_blocks : Array
        The data as laid out by ``layout``.
    resp : ndarray of shape (n_samples, n_candidates, n_padded) or (n_samples, n_candidates)
        Initial responsibilities on the host, zero for inactive components
        (or int32 labels, see :func:`initial_responsibilities`); None when
        weights, means and precisions are all given.
    active : ndarray of shape (n_candidates, n_padded) of bool
        Each candidate's active components (:func:`active_components`).
    weights_init, means_init, precisions_init : ndarray, optional
        Of the active components (one candidate's ``n_components``); padded here.
    form : EStepForm, default=EXPANDED
        A ``centred`` form takes the second moments about the initial means.
    prior : PriorValues, optional
        Each candidate's prior (leading axis n_candidates): the initial
        M-step is then MAP, as mclust's ``me`` starts from ``z``.
    choice : int, optional
        With a :class:`~bayesgmm.structures.Family` as ``covariance_type``,
        the member whose M-step runs.

    Returns
    -------
    GMMParams whose leaves have a leading axis of length n_candidates and
    ``n_padded`` components.
    """
    n_candidates, n_padded = active.shape
    params = None
    if resp is not None:
        params = initial_params_from_responsibilities(
            X_blocks,
            weight_blocks,
            layout.put(resp),
            jnp.asarray(active),
            prior,
            None if choice is None else np.int32(choice),
            reg_covar=reg_covar,
            covariance_type=covariance_type,
            n_components=n_padded,
            mesh=layout.mesh,
            form=form,
        )
    dtype = X_blocks.dtype

    def given(value, fill):
        value = _padded(np.asarray(value, dtype), n_padded, fill)
        return jnp.broadcast_to(jnp.asarray(value), (n_candidates,) + value.shape)

    weights = params.weights if weights_init is None else given(weights_init, 0.0)
    means = params.means if means_init is None else given(means_init, 0.0)
    if precisions_init is None:
        return GMMParams(weights, means, params.covariances, params.precisions_cholesky)
    with precision_scope(dtype):
        factors = gaussian.precisions_cholesky_from_precisions(
            jnp.asarray(precisions_init, dtype), covariance_type
        )
        covariances = gaussian.covariances_from_precisions_cholesky(factors, covariance_type)
    fill = _inactive_covariance(covariance_type, X_blocks.shape[-1], dtype)
    return GMMParams(weights, means, given(covariances, fill), given(factors, fill))
