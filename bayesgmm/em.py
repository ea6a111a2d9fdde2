"""Expectation-maximisation for Gaussian mixtures: a pure functional JAX core.

The data live on the device as fixed-size blocks, ``X_blocks`` of shape
(n_blocks, block_size, n_features) with ``weight_blocks`` of shape
(n_blocks, block_size); padding rows carry weight zero and so contribute
nothing. One EM iteration is one pass over the blocks (``lax.scan``) that
accumulates the sufficient statistics, followed by the M-step on those
statistics. The whole fit is one ``lax.while_loop`` inside one ``jit``, with
the convergence test (change of the mean log-likelihood below ``tol``, as in
scikit-learn) on the device.

The statistics are raw weighted moments of data centred once, on the host,
at their weighted mean::

    N_k      = sum_n w_n r_nk
    first_k  = sum_n w_n r_nk x_n
    second_k = sum_n w_n r_nk x_n x_n^T      (its diagonal for 'diag'/'spherical',
                                              sum_k of it for 'tied')
    mu_k     = first_k / N_k
    Sigma_k  = second_k / N_k - mu_k mu_k^T + reg_covar I

Both halves of an iteration are matrix products over one feature matrix per
block (:mod:`bayesgmm.quadratic`): ``Phi = [1, x, x_i x_j (i <= j)]``, the
log densities of all components are ``Phi @ Theta`` and N_k, first and
second of all components are ``(w r)^T @ Phi``. Each distinct entry of
``x x^T`` is computed once, there is no (N, K, D) or (N, K, D, D)
intermediate, and the block's features are reused from cache by the second
product. Centring the data keeps the expanded squares well conditioned.

Host-side initialisation (``initial_responsibilities``) reproduces
scikit-learn's random stream, so a ``random_state`` gives the same
initialisation as ``sklearn.mixture.GaussianMixture``.
"""

from __future__ import annotations

import contextlib
import functools
import time
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from bayesgmm import _program_cache, _progress, gaussian, quadratic, structures

# Bytes of one block's feature matrix (block_size, F), see bayesgmm.quadratic:
# small enough to stay in the last-level cache between the two matrix
# products that read it, large enough that the per-block overhead of the
# loop is amortised. Measured at N=1M, D=16, K=16 on 2 cores: 4096 rows for
# float64 and 8192 for float32 were fastest (benchmarks/profile_em.py).
BLOCK_BYTES = 1 << 23
MIN_BLOCK_SIZE = 256
# Relative difference of final lower bounds below which restarts tie.
TIE_TOLERANCE = 1e-12
MAX_BLOCK_SIZE = 1 << 16
# Fits carry their components padded to a multiple of COMPONENT_BUCKET, the
# extra ones inactive (weight exactly zero), so that a sweep over
# n_components = 1..16 compiles one program instead of one per value (a
# compilation costs 0.7-2 s, a small fit a few milliseconds). Padding costs
# work in every pass, so it applies only while one pass over the padded
# components stays below PADDING_WORK_LIMIT multiply-adds per product
# (rows x features x components); larger fits, where a compilation is small
# beside the fit itself, keep their exact number of components.
COMPONENT_BUCKET = 16
PADDING_WORK_LIMIT = 1 << 24


class GMMParams(NamedTuple):
    """Parameters of a Gaussian mixture (a pytree of arrays)."""

    weights: jax.Array  # (n_components,)
    means: jax.Array  # (n_components, n_features)
    covariances: jax.Array  # per covariance_type, see bayesgmm.gaussian
    precisions_cholesky: jax.Array  # per covariance_type


class SufficientStats(NamedTuple):
    """Weighted raw moments of the (centred) data."""

    weight_sum: jax.Array  # (n_components,) sum_n w_n r_nk
    first: jax.Array  # (n_components, n_features) sum_n w_n r_nk x_n
    second: jax.Array  # full (K, D, D); tied (D, D); diag/spherical (K, D)
    log_likelihood: jax.Array  # () sum_n w_n log p(x_n)
    total_weight: jax.Array  # () sum_n w_n


class EMState(NamedTuple):
    """Carry of the EM while-loop."""

    params: GMMParams
    lower_bound: jax.Array  # () mean log-likelihood of the last E-step
    n_iter: jax.Array  # () int
    converged: jax.Array  # () bool
    failed: jax.Array  # () bool: a covariance stopped being positive definite
    lower_bounds: jax.Array  # (max_iter,) history, NaN past n_iter


class EMResult(NamedTuple):
    """Result of a fit, as NumPy arrays on the host."""

    params: GMMParams
    lower_bound: float
    n_iter: int
    converged: bool
    lower_bounds: np.ndarray  # (n_iter,)
    failed: bool = False  # a covariance stayed singular (see fit_sweep)


# --------------------------------------------------------------------------
# Precision scope and data layout (host side)
# --------------------------------------------------------------------------


def precision_scope(dtype):
    """Context in which JAX computes in ``dtype`` without touching global settings.

    float64 needs JAX's x64 mode; ``jax.enable_x64`` is scoped, so the user's
    global setting is left as it was.
    """
    if np.dtype(dtype) == np.float64:
        return jax.enable_x64(True)
    return contextlib.nullcontext()


def _bucket(count: int) -> int:
    """Round ``count`` up to a multiple of 1/16 of the next power of two.

    Exact up to 16; then 18, 20, ..., 32, 36, 40, ..., 64, 72, ... Sizes
    within a bucket share one compiled program, and less than an eighth of
    the padded work (usually under a sixteenth) is wasted. (Coarser buckets,
    1, 2, 3, 4, 6, 8, 12, ..., padded N = 100k, D = 10, K = 8 by 31 %.)
    """
    if count <= 16:
        return max(count, 1)
    step = (1 << (count - 1).bit_length()) // 16
    return -(-count // step) * step


def component_bucket(
    n_components: int, n_rows: int, n_features: int, covariance_type: str = "full"
) -> int:
    """The number of components a fit of ``n_components`` carries (see ``COMPONENT_BUCKET``).

    Parameters
    ----------
    n_components : int
        Active components of the model.
    n_rows : int
        Rows one device holds (after bucketing of the sample count).
    n_features : int
    covariance_type : str

    Returns
    -------
    n_padded : int
        ``n_components`` rounded up to a multiple of ``COMPONENT_BUCKET`` when
        the padded work per pass is below ``PADDING_WORK_LIMIT``, else
        ``n_components``.
    """
    padded = -(-n_components // COMPONENT_BUCKET) * COMPONENT_BUCKET
    width = quadratic.feature_count(n_features, covariance_type)
    if max(n_rows, 1) * width * padded > PADDING_WORK_LIMIT:
        return n_components
    return padded


def active_components(n_components: int, n_padded: int) -> np.ndarray:
    """Mask of shape (n_padded,): True for the ``n_components`` active components."""
    return np.arange(n_padded) < n_components


def _inactive_covariance(covariance_type: str, n_features: int, dtype):
    """The covariance (and precision factor) of one inactive component; None for 'tied'."""
    covariances, _ = structures.get(covariance_type).inactive_parameters(1, n_features, dtype)
    return None if covariances is None else covariances[0]


def _padded(leaf, n_padded: int, fill, axis: int = 0):
    """``leaf`` with copies of ``fill`` appended along its component ``axis`` up to ``n_padded``."""
    leaf = np.asarray(leaf)
    extra = n_padded - leaf.shape[axis]
    if extra <= 0 or fill is None:
        return leaf
    fill = np.broadcast_to(np.asarray(fill, leaf.dtype), leaf.shape[:axis] + (extra,) + leaf.shape[axis + 1 :])
    return np.concatenate([leaf, fill], axis=axis)


def pad_components(params: GMMParams, n_padded: int, covariance_type: str) -> GMMParams:
    """Host parameters of K components with ``n_padded - K`` inactive ones appended.

    Inactive components have weight exactly zero (so ``log pi_k = -inf``
    removes them from every responsibility, statistic and bound), mean zero
    and identity covariance and precision factor (finite, so the fit's
    finiteness checks see only the active components).

    Parameters
    ----------
    params : GMMParams
        NumPy arrays; leaves may have one leading batch axis.
    n_padded : int
    covariance_type : str

    Returns
    -------
    GMMParams with ``n_padded`` components.
    """
    weights = np.asarray(params.weights)
    axis = weights.ndim - 1
    means = np.asarray(params.means)
    fill = _inactive_covariance(covariance_type, means.shape[-1], means.dtype)
    return GMMParams(
        _padded(weights, n_padded, 0.0, axis),
        _padded(means, n_padded, 0.0, axis),
        _padded(params.covariances, n_padded, fill, axis),
        _padded(params.precisions_cholesky, n_padded, fill, axis),
    )


def active_params(params: GMMParams, n_components: int, covariance_type: str) -> GMMParams:
    """The first ``n_components`` components of padded (unbatched) parameters."""
    if params.weights.shape[0] == n_components:
        return params
    weights, means = params.weights[:n_components], params.means[:n_components]
    if not structures.get(covariance_type).component_axis:
        return GMMParams(weights, means, params.covariances, params.precisions_cholesky)
    return GMMParams(
        weights, means, params.covariances[:n_components], params.precisions_cholesky[:n_components]
    )


def block_layout(
    n_samples: int,
    n_components: int,
    n_features: int,
    itemsize: int = 8,
    covariance_type: str = "full",
) -> tuple[int, int]:
    """Block size and number of blocks for data of ``n_samples`` rows.

    Parameters
    ----------
    n_samples, n_components, n_features : int
    itemsize : int, default=8
        Bytes per element of the data's dtype (4 for float32).
    covariance_type : str, default='full'
        Sets the width of the feature matrix: 'diag' and 'spherical' have
        narrow ones and so take longer blocks.

    Returns
    -------
    block_size, n_blocks : int
        ``block_size * n_blocks >= n_samples``, both bucketed so that nearby
        sample counts reuse the same compiled program.
    """
    width = max(quadratic.feature_count(n_features, covariance_type), n_components)
    block_size = BLOCK_BYTES // (width * itemsize)
    block_size = int(np.clip(block_size, MIN_BLOCK_SIZE, MAX_BLOCK_SIZE))
    block_size = 1 << (block_size.bit_length() - 1)
    if n_samples <= block_size:
        return _bucket(max(n_samples, 8)), 1
    return block_size, _bucket(-(-n_samples // block_size))


def weighted_column_sum(weights: np.ndarray, X: np.ndarray) -> np.ndarray:
    """``weights @ X`` on the host without BLAS.

    After a multithreaded call, OpenBLAS's worker threads keep spinning for
    about 0.1 s, and a device loop started meanwhile on the CPU backend
    shares the cores with them: ``weights @ X`` right before EM made the
    first ~100 ms of N=100k, D=10, K=8 fits run at 8.6 instead of 6.0 ms per
    iteration. NumPy's einsum (without ``optimize``) uses its own loops.

    Parameters
    ----------
    weights : ndarray of shape (n_samples,)
    X : ndarray of shape (n_samples, n_features)

    Returns
    -------
    ndarray of shape (n_features,)
    """
    return np.einsum("n,nd->d", weights, X)


def _aligned_zeros(shape: tuple, dtype, alignment: int = 64) -> np.ndarray:
    """Zeros whose buffer starts on a 64-byte boundary, so the CPU backend can
    adopt it without a copy (see :func:`to_device`)."""
    n_bytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
    raw = np.zeros(n_bytes + alignment, dtype=np.uint8)
    start = (-raw.ctypes.data) % alignment
    return raw[start : start + n_bytes].view(dtype).reshape(shape)


def to_device(array: np.ndarray):
    """Place a host array on the default device.

    On the CPU backend a fresh, aligned array (from :func:`to_blocks`) is
    adopted through DLPack without a copy, which keeps the peak memory of a
    fit at one laid-out copy of the data; elsewhere it is copied as usual.
    Only for arrays nothing else will write to.
    """
    if jax.default_backend() == "cpu" and array.flags.c_contiguous and array.ctypes.data % 64 == 0:
        try:
            return jax.dlpack.from_dlpack(array)
        except (TypeError, ValueError, RuntimeError):  # an unsupported dtype or layout
            pass
    return jnp.asarray(array)


def to_blocks(array: np.ndarray, block_size: int, n_blocks: int, offset=None) -> np.ndarray:
    """Zero-pad the leading axis to ``block_size * n_blocks`` and split it into blocks.

    ``offset``, if given, is subtracted from the rows on the way (no extra copy).
    """
    padded = _aligned_zeros((block_size * n_blocks,) + array.shape[1:], array.dtype)
    if offset is None:
        padded[: array.shape[0]] = array
    else:
        np.subtract(array, offset, out=padded[: array.shape[0]])
    return padded.reshape((n_blocks, block_size) + array.shape[1:])


def from_blocks(blocks, n_samples: int) -> np.ndarray:
    """Inverse of :func:`to_blocks`: a host array of the first ``n_samples`` rows."""
    blocks = np.asarray(blocks)
    return blocks.reshape((-1,) + blocks.shape[2:])[:n_samples]


# --------------------------------------------------------------------------
# E-step and M-step (pure, unjitted)
# --------------------------------------------------------------------------


def estimate_weighted_log_prob(X, params: GMMParams, covariance_type: str):
    """``log pi_k + log N(x | mu_k, Sigma_k)``, shape (n_samples, n_components).

    One matrix product of the block's quadratic features against the
    coefficients of all components (:mod:`bayesgmm.quadratic`). ``X`` must be
    centred (at the data's weighted mean, as ``fit_gmm`` and the estimator
    do): the expanded square is well conditioned only near the origin.
    """
    return _weighted_log_prob(quadratic.features(X, covariance_type), params, covariance_type)


def _weighted_log_prob(Phi, params: GMMParams, covariance_type: str):
    return Phi @ log_density_coefficients(params, covariance_type)


def log_density_coefficients(params: GMMParams, covariance_type: str):
    """``Theta`` of shape (F, K) with ``features(X) @ Theta = log pi_k + log N(x | mu_k, Sigma_k)``."""
    return quadratic.coefficients(
        params.weights, params.means, params.precisions_cholesky, covariance_type
    )


def _normalise(weighted_log_prob):
    log_prob_norm = jax.nn.logsumexp(weighted_log_prob, axis=1)
    return log_prob_norm, weighted_log_prob - log_prob_norm[:, None]


def e_step(X, params: GMMParams, covariance_type: str):
    """Responsibilities in log space.

    Returns
    -------
    log_prob_norm : Array of shape (n_samples,)
        ``log p(x_n)``.
    log_resp : Array of shape (n_samples, n_components)
        ``log r_nk``.
    """
    return _normalise(estimate_weighted_log_prob(X, params, covariance_type))


class FeatureSums(NamedTuple):
    """Raw sums of one pass (or one block) before they are split into moments.

    Adding two of these (from blocks of the same size) adds their data;
    :func:`to_statistics` turns the total into :class:`SufficientStats` once
    per pass. The log-likelihood and the weights are kept per row of a block
    and summed once per pass: a sum over each block's rows was its own
    reduction per block (about 6 % of a 'diag' pass at N=1M, D=16, K=16).
    """

    features: jax.Array  # (K, F): sum_n w_n r_nk phi(x_n), see bayesgmm.quadratic
    log_likelihood: jax.Array  # (B,): sum over blocks of w_n log p(x_n), row by row
    total_weight: jax.Array  # (B,): sum over blocks of w_n, row by row


def to_statistics(sums: FeatureSums, n_features: int, covariance_type: str) -> SufficientStats:
    """Split :class:`FeatureSums` into the M-step's raw moments."""
    weight_sum, first, second = quadratic.moments(sums.features, n_features, covariance_type)
    return SufficientStats(
        weight_sum, first, second, jnp.sum(sums.log_likelihood), jnp.sum(sums.total_weight)
    )


def _feature_sums(Phi, sample_weight, resp, log_likelihood, covariance_type: str) -> FeatureSums:
    """The product of weighted responsibilities and features, ``(w r)^T @ Phi``, (K, F)."""
    weighted_resp = resp * sample_weight[:, None]
    if structures.get(covariance_type).narrow_features:
        # Narrow features (F = 2D + 1, D + 2): contracting the rows of both
        # operands in place beats transposing (w r) first (N=1M, D=16, K=16,
        # whole pass: 'diag' 55 vs 60 ms, 'spherical' 44 vs 56 ms).
        sums = lax.dot_general(Phi, weighted_resp, (((0,), (0,)), ((), ()))).T
    else:
        # Wide features: the (K, B) transpose is materialised (it is small) so
        # that the product is a plain row-major matmul; contracting the rows in
        # place sends it to a slower kernel (173 vs 159 ms per pass at 1M/16/16).
        sums = lax.optimization_barrier(weighted_resp.T) @ Phi
    return FeatureSums(sums, log_likelihood, sample_weight)


def responsibility_sums(X, sample_weight, resp, covariance_type: str) -> FeatureSums:
    """Feature sums of one block for given responsibilities (``log_likelihood`` zero).

    Parameters
    ----------
    X : Array of shape (block_size, n_features)
    sample_weight : Array of shape (block_size,)
    resp : Array of shape (block_size, n_components)
    covariance_type : str
    """
    Phi = quadratic.features(X, covariance_type)
    return _feature_sums(Phi, sample_weight, resp, jnp.zeros_like(sample_weight), covariance_type)


def block_sums(X, sample_weight, theta, covariance_type: str) -> FeatureSums:
    """E-step on one block, reduced at once to feature sums.

    ``theta`` is :func:`log_density_coefficients` of the current parameters,
    computed once per pass rather than once per block.

    The block's features are built once and used by both matrix products
    (log densities, then statistics) while they are still in cache; N_k and
    the first and second moments of all components come from the second
    product, with no (block, K, D) or (block, K, D, D) intermediate.
    """
    Phi = quadratic.features(X, covariance_type)
    log_prob_norm, resp = normalise(Phi @ theta)
    return _feature_sums(Phi, sample_weight, resp, sample_weight * log_prob_norm, covariance_type)


def centred_sums(X, sample_weight, resp, shift, covariance_type: str):
    """Weighted moments about each component's own ``shift``, laid out like ``(w r)^T @ Phi``.

    ``sum_n w_n r_nk [1, x_n - c_k, (x_n - c_k)(x_n - c_k)^T]`` (the second
    moment packed as in :func:`bayesgmm.quadratic.features`), so that
    :func:`to_statistics` and :func:`m_step` read them unchanged and give
    means relative to ``c_k``. Taking the moments about points near each
    component's mean keeps its covariance accurate however far the
    component lies from the origin in units of its spread (scikit-learn's
    M-step does the same about the new means).

    Parameters
    ----------
    X : Array of shape (block_size, n_features)
    sample_weight : Array of shape (block_size,)
    resp : Array of shape (block_size, n_components)
    shift : Array of shape (n_components, n_features)
    covariance_type : str

    Returns
    -------
    sums : Array of shape (n_components, F)
    """
    weighted = resp * sample_weight[:, None]
    difference = X[:, None, :] - shift  # (B, K, D)
    scaled = weighted[:, :, None] * difference
    second = structures.get(covariance_type).centred_second(scaled, difference)
    return jnp.concatenate([jnp.sum(weighted, axis=0)[:, None], jnp.sum(scaled, axis=0), second], axis=1)


def direct_weighted_log_prob(X, params: GMMParams, covariance_type: str):
    """``log pi_k + log N(x | mu_k, Sigma_k)`` from ``L^T (x - mu_k)``, shape (n_samples, K).

    The direct form (:func:`bayesgmm.gaussian.log_weighted_prob`, shared with
    the Bayesian half), accurate however far a component lies from the origin
    in units of its spread.
    """
    return gaussian.log_weighted_prob(
        X, params.weights, params.means, params.precisions_cholesky, covariance_type
    )


def block_sums_direct(X, sample_weight, params: GMMParams, covariance_type: str) -> FeatureSums:
    """E-step on one block in the direct form, with moments about the current means.

    The exact counterpart of :func:`block_sums` for components far from the
    data's centre in units of their spread (a component collapsed onto a
    few distant or duplicated points), where the expanded square loses its
    digits (:func:`precision_loss`): log densities from ``L^T (x - mu_k)``
    (:func:`bayesgmm.gaussian.log_gaussian_prob`) and statistics from
    :func:`centred_sums` about ``params.means``. A pass takes 3 to 5 times
    as long as the expanded form's (measured, 'full' float64: 21.5 vs 6.8 ms
    at N=100k, D=10, K=8; 702 vs 156 ms at 1M/16/16, where scikit-learn
    takes about 2700 ms), so the EM core uses it only for fits that need it.
    """
    log_prob_norm, resp = normalise(direct_weighted_log_prob(X, params, covariance_type))
    sums = centred_sums(X, sample_weight, resp, params.means, covariance_type)
    return FeatureSums(sums, sample_weight * log_prob_norm, sample_weight)


def normalise(weighted_log_prob):
    """``log p(x)`` and the responsibilities, with one exponential per entry.

    (A logsumexp followed by ``exp(log_resp)`` would take two.) Responsibilities
    too small to be a normal floating-point number are exactly zero: subnormal
    numbers slow every later multiplication by them many times over (a fit of
    N=100k, D=10, K=8 ran at 20 ms per iteration instead of 6 once its
    components had separated), and at below 1e-300 (float32: 1e-37) they
    change no statistic.

    Parameters
    ----------
    weighted_log_prob : Array of shape (n_samples, n_components)

    Returns
    -------
    log_prob_norm : Array of shape (n_samples,)
    resp : Array of shape (n_samples, n_components)
    """
    n_components = weighted_log_prob.shape[1]
    shift = lax.stop_gradient(jnp.max(weighted_log_prob, axis=1, keepdims=True))
    shift = jnp.where(jnp.isfinite(shift), shift, 0.0)
    exponent = weighted_log_prob - shift
    # Below this, exp(exponent) / total (total <= K) could be subnormal.
    smallest = float(np.log(jnp.finfo(exponent.dtype).tiny) + np.log(n_components) + 1.0)
    unnormalised = jnp.exp(jnp.where(exponent < smallest, -jnp.inf, exponent))
    total = jnp.sum(unnormalised, axis=1, keepdims=True)
    return (jnp.log(total) + shift)[:, 0], unnormalised / total


class EStepForm(NamedTuple):
    """How the E-step computes log densities and statistics: a value passed to the engine.

    Two implementations exist, :data:`EXPANDED` (the fast expanded square)
    and :data:`DIRECT` (centred per component, for components the expanded
    square cannot represent accurately, see :func:`precision_loss`). Forms
    are hashable and serve as static arguments of the compiled programs.
    """

    name: str
    # (params, covariance_type) -> what every block of one pass needs
    prepare: Callable
    # (X (B, D), prepared, covariance_type) -> log pi_k + log N(x | mu_k, Sigma_k), (B, K)
    weighted_log_prob: Callable
    # (X (B, D), sample_weight (B,), prepared, covariance_type) -> FeatureSums
    block_sums: Callable
    # True: the statistics' moments are about the current means (added back by the M-step)
    centred: bool


def _expanded_log_prob(X, theta, covariance_type: str):
    return quadratic.features(X, covariance_type) @ theta


EXPANDED = EStepForm(
    "expanded",
    prepare=log_density_coefficients,
    weighted_log_prob=_expanded_log_prob,
    block_sums=block_sums,
    centred=False,
)
DIRECT = EStepForm(
    "direct",
    prepare=lambda params, covariance_type: params,
    weighted_log_prob=direct_weighted_log_prob,
    block_sums=block_sums_direct,
    centred=True,
)


def form_for(params: GMMParams, covariance_type: str, dtype) -> EStepForm:
    """:data:`EXPANDED` where it is accurate for these (host, centred) parameters, else :data:`DIRECT`."""
    return EXPANDED if expanded_form_is_accurate(params, covariance_type, dtype) else DIRECT


def block_statistics(X, sample_weight, params: GMMParams, covariance_type: str):
    """:func:`block_sums` split into :class:`SufficientStats`."""
    return to_statistics(
        block_sums(X, sample_weight, log_density_coefficients(params, covariance_type), covariance_type),
        X.shape[1],
        covariance_type,
    )


def _add_stats(total, block):
    return jax.tree_util.tree_map(jnp.add, total, block)


def _varying(tree, axis_name):
    if hasattr(lax, "pcast"):
        return lax.pcast(tree, (axis_name,), to="varying")
    return lax.pvary(tree, (axis_name,))  # jax < 0.8


def _scan_sum(block_fn, *block_arrays, axis_name=None):
    """Sum ``block_fn`` over the leading (block) axis of ``block_arrays``.

    With ``axis_name`` (inside ``shard_map``) the per-device sums are then
    added across devices and processes: only the statistics travel.
    """
    shapes = jax.eval_shape(block_fn, *(array[0] for array in block_arrays))
    zeros = jax.tree_util.tree_map(lambda leaf: jnp.zeros(leaf.shape, leaf.dtype), shapes)
    if axis_name is not None:
        # Inside shard_map the per-block sums differ between devices, so the
        # carry that starts at zero must be typed as varying over the axis.
        zeros = _varying(zeros, axis_name)

    def body(carry, blocks):
        return _add_stats(carry, block_fn(*blocks)), None

    # Scanning over the whole arrays (no ``array[1:]``, which would copy the data).
    total, _ = lax.scan(body, zeros, block_arrays)
    if axis_name is not None:
        total = lax.psum(total, axis_name)
    return total


def accumulate_statistics(
    X_blocks, weight_blocks, params: GMMParams, covariance_type: str, axis_name=None,
    form: EStepForm = EXPANDED,
):
    """E-step over all blocks: the statistics the M-step needs, and the log-likelihood.

    Parameters
    ----------
    X_blocks : Array of shape (n_blocks, block_size, n_features)
    weight_blocks : Array of shape (n_blocks, block_size)
    params : GMMParams
    covariance_type : str
    axis_name : str, optional
        Mesh axis over which the blocks are sharded (inside ``shard_map``).
    form : EStepForm, default=EXPANDED
        With a ``centred`` form the moments are about ``params.means`` (add
        them back to the M-step's means, as :func:`em_step` does with ``shift``).

    Returns
    -------
    SufficientStats
    """
    prepared = form.prepare(params, covariance_type)
    sums = _scan_sum(
        lambda X, w: form.block_sums(X, w, prepared, covariance_type),
        X_blocks, weight_blocks, axis_name=axis_name,
    )
    return to_statistics(sums, X_blocks.shape[-1], covariance_type)


def m_step(
    stats: SufficientStats, reg_covar: float, covariance_type: str, active=None
) -> GMMParams:
    """Maximum-likelihood parameters from sufficient statistics.

    Parameters
    ----------
    stats : SufficientStats
    reg_covar : float
        Added to the diagonal of every covariance.
    covariance_type : str
    active : Array of shape (n_components,) of bool, optional
        The active components (default: all). Inactive ones keep weight
        exactly zero, mean zero and identity covariance, whatever their
        statistics (see :func:`pad_components`).

    Returns
    -------
    GMMParams; ``precisions_cholesky`` holds NaN where a covariance is not
    positive definite.
    """
    dtype = stats.first.dtype
    nk = stats.weight_sum + 10 * jnp.finfo(dtype).eps
    divisor = nk
    if active is not None:
        nk = jnp.where(active, nk, 0.0)
        divisor = jnp.where(active, nk, 1.0)
    means = stats.first / divisor[:, None]
    covariances = structures.get(covariance_type).m_step_covariances(
        nk, means, stats.second, reg_covar, active
    )
    precisions_cholesky = gaussian.precisions_cholesky_from_covariances(
        covariances, covariance_type
    )
    return GMMParams(nk / nk.sum(), means, covariances, precisions_cholesky)


def params_from_responsibilities(
    X_blocks,
    weight_blocks,
    resp_blocks,
    reg_covar: float,
    covariance_type: str,
    n_components: int,
    axis_name=None,
    form: EStepForm = EXPANDED,
    active=None,
) -> GMMParams:
    """M-step from given responsibilities (the initialisation).

    ``resp_blocks`` is (n_blocks, block_size, n_components) responsibilities,
    or (n_blocks, block_size) integer labels (-1: no component), expanded to
    one-hot rows one block at a time. With a ``centred`` form, a second pass takes
    the second moments about the means of the first (:func:`centred_sums`),
    as the direct-form EM loop does. ``active``: see :func:`m_step`.
    """
    def dense(resp):
        if jnp.issubdtype(resp.dtype, jnp.integer):
            return jax.nn.one_hot(resp, n_components, dtype=X_blocks.dtype)
        return resp

    sums = _scan_sum(
        lambda X, w, r: responsibility_sums(X, w, dense(r), covariance_type),
        X_blocks,
        weight_blocks,
        resp_blocks,
        axis_name=axis_name,
    )
    params = m_step(
        to_statistics(sums, X_blocks.shape[-1], covariance_type), reg_covar, covariance_type, active
    )
    if not form.centred:
        return params
    shift = params.means
    sums = _scan_sum(
        lambda X, w, r: FeatureSums(
            centred_sums(X, w, dense(r), shift, covariance_type), jnp.zeros_like(w), w
        ),
        X_blocks,
        weight_blocks,
        resp_blocks,
        axis_name=axis_name,
    )
    params = m_step(
        to_statistics(sums, X_blocks.shape[-1], covariance_type), reg_covar, covariance_type, active
    )
    return params._replace(means=params.means + shift)


PRECISION_LOSS_LIMIT = 0.02
# Measured: float32 fits of two clusters 30 to 1000 standard deviations from
# the data's mean had covariances off by 1.3 to 8 times eps * mu^T P mu.
PRECISION_LOSS_FACTOR = 8.0


def precision_loss(params: GMMParams, covariance_type: str, dtype) -> tuple[int, float, float]:
    """How much the expanded square loses to rounding for these parameters.

    EM's fast path works with the expanded square (:mod:`bayesgmm.quadratic`)
    of data centred at their mean. A component whose mean lies far from that
    centre in units of its own spread loses covariance accuracy in
    proportion to ``eps * mu^T P mu`` (:func:`bayesgmm.quadratic.mean_distances`),
    about ``PRECISION_LOSS_FACTOR`` times that, and its log densities about
    ``eps * mu^T P mu`` nats.

    Parameters
    ----------
    params : GMMParams
        Host arrays, means relative to the centre of the data.
    covariance_type : str
    dtype : numpy.dtype
        The dtype of the computation.

    Returns
    -------
    component : int
        The component that loses most.
    distance : float
        Its mean's distance from the centre in its standard deviations.
    error : float
        The estimated relative error of its covariance.
    """
    distances = quadratic.mean_distances(
        np.asarray(params.means, np.float64),
        np.asarray(params.precisions_cholesky, np.float64),
        covariance_type,
        xp=np,
    )
    component = int(np.nanargmax(distances)) if np.any(np.isfinite(distances)) else 0
    error = PRECISION_LOSS_FACTOR * np.finfo(dtype).eps * float(distances[component])
    return component, float(np.sqrt(distances[component])), error


def expanded_form_is_accurate(params: GMMParams, covariance_type: str, dtype) -> bool:
    """Whether :func:`precision_loss` stays within ``PRECISION_LOSS_LIMIT`` (2 %).

    In float32 that holds for components up to about 145 standard deviations
    from the centre, in float64 up to about 3 million. Fits and predictions
    beyond it use the direct form (:func:`block_sums_direct`).
    """
    return bool(precision_loss(params, covariance_type, dtype)[2] <= PRECISION_LOSS_LIMIT)


def check_precision(params: GMMParams, covariance_type: str, dtype) -> None:
    """Raise when rounding has left a fit's covariances unreliable.

    For the fits that work with the expanded square only (online fits,
    ``partial_fit``; ``fit``, in memory or streamed, switches to the direct
    form instead):
    above ``PRECISION_LOSS_LIMIT`` of estimated covariance error
    (:func:`precision_loss`) the fit is wrong without being non-finite, so it
    is checked here rather than passed on silently.

    Parameters
    ----------
    params : GMMParams
        Host arrays of the fit, means relative to the centre of the data.
    covariance_type : str
    dtype : numpy.dtype
        The dtype the fit ran in.

    Raises
    ------
    ValueError
        When the estimated relative error exceeds ``PRECISION_LOSS_LIMIT``.
    """
    from bayesgmm import _validation as v

    component, distance, error = precision_loss(params, covariance_type, dtype)
    if error > PRECISION_LOSS_LIMIT:
        remedy = "Pass dtype='float64' (the default). " if np.dtype(dtype) == np.float32 else ""
        raise ValueError(
            v.PRECISION_LOSS_MESSAGE.format(
                component=component,
                distance=distance,
                dtype=np.dtype(dtype).name,
                error=100 * error,
                remedy=remedy,
            )
        )


def all_finite(params: GMMParams):
    """Whether every mean and precision factor is finite (no singular covariance)."""
    return jnp.all(jnp.isfinite(params.precisions_cholesky)) & jnp.all(
        jnp.isfinite(params.means)
    )


# --------------------------------------------------------------------------
# The fit: one while-loop inside one jit
# --------------------------------------------------------------------------


def wants_progress_bar(n_samples: int, n_components: int, n_features: int, covariance_type: str) -> bool:
    """Whether a fit is long enough (seconds per few iterations) to show a bar.

    Only where :func:`bayesgmm._progress.bar_allowed`.
    """
    if not _progress.bar_allowed():
        return False
    work = n_samples * n_components * quadratic.feature_count(n_features, covariance_type)
    return work >= 50_000_000


def is_active(state: EMState, max_iter: int):
    """Whether a restart still iterates: not converged, not failed, iterations left."""
    return (state.n_iter < max_iter) & ~state.converged & ~state.failed


def initial_state(params: GMMParams, initial_lower_bound, max_iter: int) -> EMState:
    """The state of one restart before its first iteration."""
    dtype = params.means.dtype
    return EMState(
        params=params,
        lower_bound=jnp.asarray(initial_lower_bound, dtype),
        n_iter=jnp.zeros((), jnp.int32),
        converged=jnp.zeros((), bool),
        failed=~all_finite(params),
        lower_bounds=jnp.full((max(max_iter, 1),), jnp.nan, dtype),
    )


def em_step(
    state: EMState, stats: SufficientStats, *, covariance_type: str, tol: float, reg_covar: float,
    shift=None, active=None,
) -> EMState:
    """One EM update of one restart from the statistics of its E-step.

    The lower bound is the mean log-likelihood of that E-step (the parameters
    before this M-step), and convergence is its change below ``tol``, as in
    scikit-learn. Shared by the in-memory loop and the streaming fit.
    ``shift`` (n_components, n_features): the points the statistics' moments
    were taken about (:func:`centred_sums`), added back to the means.
    ``active`` (n_components,): the active components (:func:`m_step`).
    """
    params = m_step(stats, reg_covar, covariance_type, active)
    if shift is not None:
        params = params._replace(means=params.means + shift)
    lower_bound = stats.log_likelihood / stats.total_weight
    return EMState(
        params=params,
        lower_bound=lower_bound,
        n_iter=state.n_iter + 1,
        converged=jnp.abs(lower_bound - state.lower_bound) < tol,
        failed=~all_finite(params),
        lower_bounds=state.lower_bounds.at[state.n_iter].set(lower_bound),
    )


def _em_loop(
    X_blocks,
    weight_blocks,
    params: GMMParams,
    initial_lower_bound,
    active,
    report_token,
    *,
    covariance_type: str,
    tol: float,
    reg_covar: float,
    max_iter: int,
    report: bool,
    axis_name=None,
    form: EStepForm = EXPANDED,
):
    def body(state: EMState):
        stats = accumulate_statistics(
            X_blocks, weight_blocks, state.params, covariance_type, axis_name, form
        )
        new_state = em_step(
            state, stats, covariance_type=covariance_type, tol=tol, reg_covar=reg_covar,
            shift=state.params.means if form.centred else None, active=active,
        )
        if report:
            change = new_state.lower_bound - state.lower_bound
            # Under vmap the body runs for candidates that have stopped too
            # (their state is kept); only the running ones report.
            _progress.report(
                report_token, new_state.n_iter, change, new_state.lower_bound,
                is_active(state, max_iter),
            )
        return new_state

    return lax.while_loop(
        lambda state: is_active(state, max_iter),
        body,
        initial_state(params, initial_lower_bound, max_iter),
    )


def _over_mesh(fn, mesh, n_sharded: int, n_replicated: int):
    """Wrap ``fn`` in ``shard_map``: the first ``n_sharded`` arguments are split
    over the mesh's data axis, the rest and the outputs are replicated."""
    if mesh is None:
        return fn
    from jax.sharding import PartitionSpec

    data = PartitionSpec(mesh.axis_names[0])
    return jax.shard_map(
        fn,
        mesh=mesh,
        in_specs=(data,) * n_sharded + (PartitionSpec(),) * n_replicated,
        out_specs=PartitionSpec(),
    )


def _axis_name(mesh):
    return None if mesh is None else mesh.axis_names[0]


def _run_em(
    X_blocks,
    weight_blocks,
    initial_params: GMMParams,
    initial_lower_bound,
    active,
    report_token=_progress.NO_REPORTER,
    *,
    covariance_type: str,
    tol: float,
    reg_covar: float,
    max_iter: int,
    report: bool = False,
    mesh=None,
    form: EStepForm = EXPANDED,
):
    """Run EM for a batch of candidates, each to its own convergence.

    Parameters
    ----------
    X_blocks : Array of shape (n_blocks, block_size, n_features)
    weight_blocks : Array of shape (n_blocks, block_size)
    initial_params : GMMParams
        Every leaf has a leading axis of length ``n_init``; the restarts run
        batched (``vmap``), so their number changes the program but their
        values never recompile it.
        Candidates may be restarts, seeds or models with different numbers
        of components: padded to one ``n_components`` (:func:`pad_components`),
        they share the program.
    initial_lower_bound : Array of shape (n_init,)
        ``-inf`` for a fresh start, the previous bound for a warm start.
    active : Array of shape (n_init, n_components) of bool
        Each candidate's active components (:func:`active_components`).
    report_token : int or Array of shape ()
        The run's reporter (:func:`bayesgmm._progress.registered`), data
        rather than a static argument so that runs share the program.
    covariance_type, tol, reg_covar, max_iter, report : static
        ``report`` sends every iteration's bound to the reporter of
        ``report_token`` on the host (verbose printing, progress bar).
    mesh : jax.sharding.Mesh, optional (static)
        A one-axis mesh over which ``X_blocks`` and ``weight_blocks`` are
        sharded along their block axis. Each device runs the E-step on its
        own blocks; only the sufficient statistics are summed across devices
        (and processes).
    form : EStepForm, default=EXPANDED (static)
        How every E-step is computed; :data:`DIRECT` (moments about the
        current means) for fits whose components lie too far from the data's
        centre, in units of their spread, for the expanded square
        (:func:`precision_loss`).

    Returns
    -------
    states : EMState
        Every candidate's final state (leading axis n_init). Under ``vmap`` a
        candidate that has stopped keeps its state while others iterate, so
        each equals the candidate's fit on its own. ``failed`` says whether
        a covariance stopped being positive definite.
    """
    loop = functools.partial(
        _em_loop,
        covariance_type=covariance_type,
        tol=tol,
        reg_covar=reg_covar,
        max_iter=max_iter,
        report=report,
        axis_name=_axis_name(mesh),
        form=form,
    )
    batched = jax.vmap(loop, in_axes=(None, None, 0, 0, 0, None))
    return _over_mesh(batched, mesh, 2, 4)(
        X_blocks, weight_blocks, initial_params, initial_lower_bound, active,
        jnp.asarray(report_token, jnp.int32),
    )


def best_candidate(lower_bounds) -> int:
    """Index of the candidate to keep: the first whose final bound ties the largest.

    scikit-learn keeps the first restart with the largest bound. Restarts
    that reach the same optimum (often with permuted labels) differ only by
    rounding, which depends on the device layout and on the order of sums;
    bounds within ``TIE_TOLERANCE`` (relative) count as equal so the choice
    does not. NaN counts as ``-inf``; where no bound is finite (``max_iter=0``)
    the last candidate is kept, as scikit-learn does. The one rule for every fit.

    Parameters
    ----------
    lower_bounds : array-like of shape (n_candidates,)

    Returns
    -------
    int
    """
    bounds = np.asarray(lower_bounds, np.float64)
    bounds = np.where(np.isnan(bounds), -np.inf, bounds)
    largest = np.max(bounds)
    if not np.isfinite(largest):
        return len(bounds) - 1
    ties = bounds >= largest - TIE_TOLERANCE * max(1.0, abs(largest))
    return int(np.argmax(ties))


_RUN_EM_STATIC = ("covariance_type", "tol", "reg_covar", "max_iter", "report", "mesh", "form")
_YNN = "xla_cpu_experimental_ynn_fusion_type"
# XLA:CPU hands matrix products and reductions to YNNPACK by default. What is
# fastest depends on the dtype and on the width of the features (measured per
# E-step pass at N=1M, D=16, K=16 on 2 cores, medians of 21 interleaved runs):
# - float32: XLA's own emitter for everything ('full' 86 vs 102 ms; 'diag' and
#   'spherical' equal, 30 and 28 ms).
# - float64 'diag' and 'spherical': YNNPACK for the elementwise fusions too
#   (the exponential of the responsibilities and the feature build):
#   'diag' 50 vs 53 ms, 'spherical' 37 vs 45 ms.
# - float64 'full' and 'tied': the default (160 ms; 210 with elementwise YNN).
# Other backends ignore these options.
CPU_COMPILER_OPTIONS = {
    "float32": {_YNN: ""},
    "float64-narrow": {
        _YNN: "LIBRARY_FUSION_TYPE_DOT,LIBRARY_FUSION_TYPE_ELTWISE,LIBRARY_FUSION_TYPE_REDUCE"
    },
}


def cpu_variant(dtype, covariance_type: str) -> str | None:
    """The key of ``CPU_COMPILER_OPTIONS`` for a fit, or None for XLA's defaults."""
    if np.dtype(dtype) == np.float32:
        return "float32"
    if structures.get(covariance_type).narrow_features:
        return "float64-narrow"
    return None


class _CompiledPerVariant:
    """``jax.jit`` of one function with compiler options chosen by the data's
    dtype, the covariance type and the platform, called like the function itself."""

    def __init__(self, fn, static_argnames, cpu_options):
        self._default = _program_cache.register(jax.jit(fn, static_argnames=static_argnames))
        self._cpu = {
            name: _program_cache.register(
                jax.jit(fn, static_argnames=static_argnames, compiler_options=options)
            )
            for name, options in cpu_options.items()
        }
        functools.update_wrapper(self, fn)

    def _variant(self, data, covariance_type):
        platforms = {device.platform for device in getattr(data, "devices", lambda: ())()}
        on_cpu = platforms == {"cpu"} if platforms else jax.default_backend() == "cpu"
        name = cpu_variant(data.dtype, covariance_type) if on_cpu else None
        return self._default if name is None else self._cpu[name]

    def __call__(self, data, *args, covariance_type, **kwargs):
        jitted = self._variant(data, covariance_type)
        _program_cache.release_if_full(jitted)
        return jitted(data, *args, covariance_type=covariance_type, **kwargs)

    def _cache_size(self) -> int:
        """Compiled programs held (all variants), for tests that count compilations."""
        return self._default._cache_size() + sum(fn._cache_size() for fn in self._cpu.values())


run_em = _CompiledPerVariant(_run_em, _RUN_EM_STATIC, CPU_COMPILER_OPTIONS)


@_program_cache.bounded
@functools.partial(
    jax.jit, static_argnames=("reg_covar", "covariance_type", "n_components", "mesh", "form")
)
def initial_params_from_responsibilities(
    X_blocks,
    weight_blocks,
    resp_blocks,
    active,
    *,
    reg_covar: float,
    covariance_type: str,
    n_components: int,
    mesh=None,
    form: EStepForm = EXPANDED,
) -> GMMParams:
    """:func:`params_from_responsibilities` for a batch of responsibilities.

    ``resp_blocks`` has shape (n_blocks, block_size, n_init, n_components), or
    (n_blocks, block_size, n_init) integer labels, so that it shards along the
    block axis like the data; ``active`` (n_init, n_components) marks each
    restart's active components (:func:`m_step`).
    """

    def batched(X_blocks, weight_blocks, resp_blocks, active):
        return jax.vmap(
            lambda resp, mask: params_from_responsibilities(
                X_blocks, weight_blocks, resp, reg_covar, covariance_type, n_components,
                _axis_name(mesh), form, mask,
            ),
            in_axes=(2, 0),
        )(resp_blocks, active)

    return _over_mesh(batched, mesh, 3, 1)(X_blocks, weight_blocks, resp_blocks, active)


@_program_cache.bounded
@functools.partial(jax.jit, static_argnames=("covariance_type", "output", "form"))
def predict_blocks(
    X_blocks, params: GMMParams, *, covariance_type: str, output: str, form: EStepForm = EXPANDED
):
    """One prediction over blocks, computed and reduced on the device.

    Parameters
    ----------
    X_blocks : Array of shape (n_blocks, block_size, n_features)
        Centred like the fit's data.
    params : GMMParams
    covariance_type : str
    output : {'proba', 'labels', 'log_prob_norm'}
        The responsibilities (n_blocks, block_size, K); the most probable
        component (n_blocks, block_size), int32; or ``log p(x)``
        (n_blocks, block_size). Only that result leaves the device.
    form : EStepForm, default=EXPANDED
        :data:`DIRECT` for parameters that the expanded square does not
        represent accurately (:func:`form_for`).
    """
    prepared = form.prepare(params, covariance_type)

    def block(X):
        weighted = form.weighted_log_prob(X, prepared, covariance_type)
        if output == "labels":
            return jnp.argmax(weighted, axis=1).astype(jnp.int32)
        log_prob_norm, resp = normalise(weighted)
        return resp if output == "proba" else log_prob_norm

    return lax.map(block, X_blocks)


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
    init_params : {'kmeans', 'k-means++', 'random', 'random_from_data'}
    random_state : numpy.random.RandomState

    Returns
    -------
    labels : ndarray of shape (n_samples,), int32
        For the one-hot initialisations ('kmeans', 'k-means++',
        'random_from_data'): the component each point is assigned to, -1 for
        none. Stored compactly: at a million points the dense form would
        cost n_samples * n_components floats.
    resp : ndarray of shape (n_samples, n_components)
        For 'random': dense responsibilities.
    """
    from sklearn.cluster import KMeans, kmeans_plusplus

    n_samples = X.shape[0]
    if init_params == "random":
        resp = random_state.uniform(size=(n_samples, n_components)).astype(X.dtype)
        resp /= resp.sum(axis=1)[:, None]
        return resp
    if init_params == "kmeans":
        with _serial_openmp(X.shape[0] * X.shape[1] * n_components):
            kmeans = KMeans(n_clusters=n_components, n_init=1, random_state=random_state)
            return kmeans.fit(X, sample_weight=sample_weight).labels_.astype(np.int32)
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


def n_init_batches(n_init: int, layout: "DataLayout", n_components: int, n_features: int) -> int:
    """How many restarts to run at once so that the batch stays within memory.

    Batched restarts multiply the per-block intermediates and the
    responsibilities kept for initialisation; above ~256 MB they run in
    several batches instead.
    """
    block_size = layout.block_size
    per_init = 8 * (block_size * n_components * n_features + layout.n_rows * n_components)
    return max(1, min(n_init, (256 << 20) // max(per_init, 1)))


# --------------------------------------------------------------------------
# Data layout over devices and processes (host side)
# --------------------------------------------------------------------------


def resolve_mesh(devices):
    """A one-axis ``jax.sharding.Mesh`` from the ``devices`` argument of a fit.

    Parameters
    ----------
    devices : None, int, 'all', sequence of jax.Device, or jax.sharding.Mesh
        None: the default device, no sharding. int n: the first n devices.
        'all': every device of every process (multi-process runs). A Mesh
        must have one axis, or an axis named 'data'.

    Returns
    -------
    mesh : jax.sharding.Mesh or None
    """
    from jax.sharding import Mesh

    if devices is None:
        return None
    if isinstance(devices, Mesh):
        names = devices.axis_names
        if len(names) == 1:
            return devices
        if "data" not in names:
            raise ValueError(
                f"The mesh has axes {names} and none is named 'data'. Name the axis "
                "that splits the samples 'data', or pass a one-axis mesh."
            )
        other = [name for name in names if name != "data"]
        if any(devices.shape[name] != 1 for name in other):
            raise ValueError(
                f"The mesh's axes {other} have size > 1; bayesgmm shards only the "
                "samples. Pass a mesh whose only axis of size > 1 is 'data'."
            )
        return Mesh(devices.devices.reshape(-1), ("data",))
    if isinstance(devices, str):
        if devices != "all":
            raise ValueError(f"devices={devices!r} is not understood. Use 'all', an int, a list of devices or a Mesh.")
        device_list = jax.devices()
    elif isinstance(devices, (int, np.integer)) and not isinstance(devices, bool):
        available = jax.devices()
        if not 1 <= devices <= len(available):
            raise ValueError(
                f"devices={devices} but {len(available)} device(s) are available. "
                f"Use an int between 1 and {len(available)}."
            )
        device_list = available[:devices]
    else:
        device_list = list(devices)
        if not device_list or not all(isinstance(d, jax.Device) for d in device_list):
            raise ValueError("devices must be None, 'all', an int, a non-empty list of jax devices or a Mesh.")
    return Mesh(np.array(device_list), ("data",))


def _process_max(value: int) -> int:
    """Maximum of an int over all processes (identity in a single process)."""
    if jax.process_count() == 1:
        return value
    from jax.experimental import multihost_utils

    return int(np.max(multihost_utils.process_allgather(np.array([value]))))


def process_sum(array: np.ndarray) -> np.ndarray:
    """Sum of a host array over all processes (identity in a single process)."""
    if jax.process_count() == 1:
        return array
    from jax.experimental import multihost_utils

    return np.asarray(multihost_utils.process_allgather(array)).sum(axis=0)


class DataLayout(NamedTuple):
    """Where the rows of this process's data go: blocks per device, padding.

    Rows are split into ``n_local_devices`` contiguous parts of ``rows_per_device``
    rows; each part is zero-padded to ``n_blocks_per_device * block_size`` rows.
    ``n_components`` is the number of components a fit over this layout
    carries (:func:`component_bucket`).
    """

    n_rows: int  # rows held by this process
    rows_per_device: int
    block_size: int
    n_blocks_per_device: int
    mesh: object  # jax.sharding.Mesh or None
    n_components: int = 1

    @classmethod
    def create(
        cls,
        n_rows: int,
        n_components: int,
        n_features: int,
        mesh=None,
        itemsize: int = 8,
        covariance_type: str = "full",
        pad_components: bool = False,
    ) -> "DataLayout":
        """The layout of ``n_rows`` rows; ``pad_components`` pads the components to their bucket."""
        n_local_devices = 1 if mesh is None else len(mesh.local_devices)
        rows_per_device = -(-_process_max(n_rows) // n_local_devices)
        if pad_components:
            n_components = component_bucket(n_components, rows_per_device, n_features, covariance_type)
        block_size, n_blocks = block_layout(
            rows_per_device, n_components, n_features, itemsize, covariance_type
        )
        return cls(n_rows, rows_per_device, block_size, n_blocks, mesh, n_components)

    def blocks(self, array: np.ndarray, offset=None) -> np.ndarray:
        """Host array (n_rows, ...) -> padded (n_local_devices * n_blocks, block_size, ...)."""
        n_local_devices = 1 if self.mesh is None else len(self.mesh.local_devices)
        parts = []
        for device_index in range(n_local_devices):
            start = device_index * self.rows_per_device
            part = array[start : start + self.rows_per_device]
            parts.append(to_blocks(part, self.block_size, self.n_blocks_per_device, offset))
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def put(self, array: np.ndarray, offset=None):
        """Lay out a host array and place it: sharded over the mesh, or on the default device."""
        blocks = self.blocks(array, offset)
        if self.mesh is None:
            return to_device(blocks)
        from jax.sharding import NamedSharding, PartitionSpec

        sharding = NamedSharding(self.mesh, PartitionSpec(self.mesh.axis_names[0]))
        return jax.make_array_from_process_local_data(sharding, blocks)


def to_host(array) -> np.ndarray:
    """A replicated (possibly multi-process) array as a host NumPy array."""
    if getattr(array, "is_fully_addressable", True):
        return np.asarray(array)
    return np.asarray(array.addressable_data(0))


def local_rows(X):
    """This process's rows of a data matrix (NumPy, or a sharded ``jax.Array``).

    Returns
    -------
    rows : array-like of shape (n_local_samples, n_features)
    mesh : jax.sharding.Mesh or None
        The mesh ``X`` is sharded over, when it is a sharded ``jax.Array``.
    """
    from jax.sharding import NamedSharding

    if not isinstance(X, jax.Array):
        return X, None
    sharding = X.sharding
    mesh = sharding.mesh if isinstance(sharding, NamedSharding) else None
    if mesh is not None and (not sharding.spec or sharding.spec[0] is None):
        raise ValueError(
            "X is a jax.Array whose first (sample) axis is not sharded. Shard it with "
            "NamedSharding(mesh, PartitionSpec('data')) or pass a NumPy array."
        )
    if mesh is not None and len(mesh.axis_names) > 1:
        mesh = resolve_mesh(mesh)
    if X.is_fully_addressable:
        return np.asarray(X), mesh
    shards = sorted(X.addressable_shards, key=lambda shard: shard.index[0].start or 0)
    seen, rows = set(), []
    for shard in shards:
        start = shard.index[0].start or 0
        if start not in seen:
            seen.add(start)
            rows.append(np.asarray(shard.data))
    return np.concatenate(rows), mesh


# --------------------------------------------------------------------------
# The host-level fit
# --------------------------------------------------------------------------


def fit_gmm(X, sample_weight=None, *, n_components: int, **settings) -> EMResult:
    """Fit one Gaussian mixture by EM (validation, initialisation, jitted loop).

    :func:`fit_sweep` for one value of ``n_components``; raises when a
    covariance becomes singular. See :func:`fit_sweep` for the parameters.

    Returns
    -------
    EMResult
        NumPy arrays of ``dtype``.

    Raises
    ------
    ValueError
        On invalid input (before any work), or when a covariance becomes
        singular during the fit (increase ``reg_covar``).
    """
    (result,) = fit_sweep(X, sample_weight, n_components=[n_components], **settings)
    if result.failed:
        from bayesgmm import _validation as v

        message = v.ILL_DEFINED_COVARIANCE_MESSAGE
        raise ValueError(message + (v.FLOAT32_HINT if result.params.means.dtype == np.float32 else ""))
    return result


def fit_sweep(
    X,
    sample_weight=None,
    *,
    n_components,
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
    warm_start: tuple[GMMParams, float] | None = None,
    verbose: int = 0,
    verbose_interval: int = 10,
    devices=None,
) -> list[EMResult]:
    """Fit mixtures of several sizes, each with ``n_init`` restarts, in one compiled run.

    Every candidate (a value of ``n_components`` and one of its restarts)
    carries the same padded number of components (:func:`component_bucket`),
    so all run batched in one program (:func:`run_em`): one matrix product
    per block serves the components of every candidate side by side, and
    each candidate stops at its own convergence. The result for each value
    of ``n_components`` equals ``fit_gmm`` with that value alone, and the
    fit of scikit-learn's ``GaussianMixture(n_components=k, n_init=n_init,
    random_state=random_state)`` (the restarts of each value draw from
    ``check_random_state(random_state)`` in turn, as separate fits would).

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        Or a ``jax.Array`` sharded over its first axis with a ``NamedSharding``
        (the fit then runs over that mesh). In a multi-process run, this
        process's rows.
    sample_weight : array-like of shape (n_samples,), optional
        Non-negative weights; every statistic (initialisation included) is
        weighted. ``None`` means unit weights.
    n_components : sequence of int
        The sizes to fit. ``weights_init``, ``means_init``,
        ``precisions_init`` and ``warm_start`` need a single size.
    covariance_type, tol, reg_covar, max_iter, n_init, \
    init_params, random_state, weights_init, means_init, precisions_init
        As in :class:`sklearn.mixture.GaussianMixture`.
    dtype : {'float64', 'float32'}
        Precision of the computation and of the returned arrays.
    warm_start : (GMMParams, float), optional
        Start from these parameters and lower bound instead of initialising
        (one run, no restarts).
    verbose, verbose_interval : int
        Progress printing as in scikit-learn.
    devices : None, int, 'all', list of jax.Device or jax.sharding.Mesh
        Shard the samples over these devices (see :func:`resolve_mesh`).
        Results equal the single-device fit up to rounding. With several
        processes (``jax.distributed.initialize``), 'all' spans every
        process; initial parameters not given by the user are then computed
        on process 0 from its rows and broadcast.

    Returns
    -------
    list of EMResult
        One per value of ``n_components``, in order; ``failed`` is True where
        a covariance stayed singular (its parameters are then not usable).

    Raises
    ------
    ValueError
        On invalid input, before any work.
    """
    from sklearn.utils import check_random_state

    from bayesgmm import _validation as v

    dtype = v.check_dtype(dtype)
    if np.ndim(n_components) == 0:
        n_components = [n_components]
    sizes = [v.check_int("n_components", value, 1) for value in n_components]
    v.check_choice("covariance_type", covariance_type, v.COVARIANCE_TYPES)
    v.check_choice("init_params", init_params, v.INIT_PARAMS)
    tol = v.check_nonnegative_float("tol", tol)
    reg_covar = v.check_nonnegative_float("reg_covar", reg_covar)
    max_iter = v.check_int("max_iter", max_iter, 0)
    n_init = v.check_int("n_init", n_init, 1)
    given = dict(weights_init=weights_init, means_init=means_init, precisions_init=precisions_init)
    if len(sizes) != 1 and (warm_start is not None or any(value is not None for value in given.values())):
        raise ValueError(
            "weights_init, means_init, precisions_init and warm_start fix one number of "
            f"components; got n_components={sizes}. Fit each size on its own."
        )
    if warm_start is not None and np.shape(warm_start[0].weights)[0] != sizes[0]:
        raise ValueError(
            f"warm_start continues a fit of {np.shape(warm_start[0].weights)[0]} components, "
            f"but n_components={sizes[0]}. Keep n_components, or set warm_start=False."
        )
    X, data_mesh = local_rows(X)
    mesh = resolve_mesh(devices) if devices is not None else data_mesh
    multi_process = mesh is not None and jax.process_count() > 1
    if multi_process and len(sizes) != 1:
        raise ValueError(
            f"A multi-process fit takes one number of components; got n_components={sizes}. "
            "Fit each size on its own."
        )
    X = v.check_array(X, dtype, min_samples=1 if multi_process else 2, copy=False)
    n_samples, n_features = X.shape
    weights = v.check_sample_weight(sample_weight, n_samples, dtype)
    totals = process_sum(
        np.concatenate(
            [[n_samples, np.count_nonzero(weights)], weighted_column_sum(weights, X), [weights.sum()]]
        )
    )
    largest = max(sizes)
    v.check_n_samples(int(totals[0]), largest)
    v.check_positive_weight_count(np.ones(int(totals[1])), largest)
    if weights_init is not None:
        given["weights_init"] = v.check_weights(weights_init, largest, dtype)
    if means_init is not None:
        given["means_init"] = v.check_means(means_init, largest, n_features, dtype)
    if precisions_init is not None:
        given["precisions_init"] = v.check_precisions(
            precisions_init, covariance_type, largest, n_features, dtype
        )
    # Initialisation sees the data as given (scikit-learn's draws); EM runs on
    # data centred at their weighted mean, and the means are shifted back.
    centre = (totals[2:-1] / totals[-1]).astype(dtype)
    if given["means_init"] is not None:
        given["means_init"] = given["means_init"] - centre
    bar = None
    if max_iter > 0 and jax.process_index() == 0 and wants_progress_bar(
        int(totals[0]), largest, n_features, covariance_type
    ):
        bar = _progress.open_bar(max_iter, "EM")
    reporter = _progress.IterationReporter(verbose_interval if verbose >= 2 else 0, bar)
    settings = dict(
        covariance_type=covariance_type,
        tol=tol,
        reg_covar=reg_covar,
        max_iter=max_iter,
        report=reporter.active,
        mesh=mesh,
    )

    def run(X_blocks, weight_blocks, params, bounds, active, form, *, token):
        if mesh is None:
            # Fresh, warm-started and user-given starts reach here made in
            # different ways; placing them like the data keeps one program.
            params, bounds, active = jax.device_put((params, bounds, active), X_blocks.sharding)
        return run_em(
            X_blocks, weight_blocks, params, bounds, active, token, form=form, **settings
        )

    problem = _Problem(
        X, weights if sample_weight is not None else None, weights, centre, mesh, multi_process,
        covariance_type, reg_covar, init_params, n_init, dtype, verbose, given,
    )
    try:
        with _progress.registered(reporter if reporter.active else None) as token:
            # An int seeds each size afresh, as separate fits would; a RandomState
            # (or None, NumPy's global one) is drawn from size after size.
            return _fit_groups(
                functools.partial(run, token=token), problem, sizes,
                [check_random_state(random_state) for _ in sizes], warm_start,
            )
    finally:
        reporter.close()


def _copy_random_state(random_state: np.random.RandomState) -> np.random.RandomState:
    """An independent RandomState at the same point of its stream (faster than
    ``copy.deepcopy``, which is a noticeable share of a small fit)."""
    copied = np.random.RandomState(0)
    copied.set_state(random_state.get_state())
    return copied


class _Problem(NamedTuple):
    """What every candidate of one sweep shares (host side)."""

    X: np.ndarray  # (n_samples, n_features) as given (the initialisation's input)
    sample_weight: np.ndarray | None  # None: unit weights (scikit-learn's draws)
    weights: np.ndarray  # (n_samples,)
    centre: np.ndarray  # (n_features,) weighted mean of all processes' rows
    mesh: object
    multi_process: bool
    covariance_type: str
    reg_covar: float
    init_params: str
    n_init: int
    dtype: np.dtype
    verbose: int
    given: dict  # weights_init, means_init (centred), precisions_init: validated or None


def _fit_groups(run, problem: _Problem, sizes, random_states, warm_start) -> list[EMResult]:
    """Lay out the data, run every candidate and bring each size's best fit to the host."""
    n_samples, n_features = problem.X.shape
    dtype, covariance_type = problem.dtype, problem.covariance_type
    with precision_scope(dtype):
        start = time.perf_counter()
        layout = DataLayout.create(
            n_samples, max(sizes), n_features, problem.mesh, np.dtype(dtype).itemsize,
            covariance_type, pad_components=True,
        )
        X_blocks = layout.put(problem.X, offset=problem.centre)
        weight_blocks = layout.put(problem.weights)

        def attempt(indices, form, states):
            """Best (state, failed) per size, and each size's random state before its draws."""
            if warm_start is not None or problem.multi_process:
                before = [_copy_random_state(states[0])]
                starts = _given_starts(problem, layout, sizes, warm_start, states[0])
                return [_run_batch(run, X_blocks, weight_blocks, *starts, form)], before
            return _fit_candidates(
                run, problem, layout, X_blocks, weight_blocks,
                [sizes[i] for i in indices], [states[i] for i in indices], form,
            )

        # A second attempt in the direct form must start where the first did:
        # each size from a copy of its random state taken before its first draw
        # (sizes may share one RandomState, drawn from size after size).
        best, retry_states = attempt(range(len(sizes)), EXPANDED, random_states)
        # Components too far from the centre, in units of their spread, for
        # the expanded square (a cluster collapsed onto distant or duplicated
        # points; float32 data with a constant feature per cluster): the same
        # fit again in the direct form, as accurate as scikit-learn's.
        redo = [
            index for index, (state, failed) in enumerate(best)
            if failed or not expanded_form_is_accurate(
                _host_params(state, dtype, sizes[index], covariance_type), covariance_type, dtype
            )
        ]
        if redo:
            redone, _ = attempt(redo, DIRECT, retry_states)
            for index, again in zip(redo, redone):
                best[index] = again
        results = []
        for size, (state, failed) in zip(sizes, best):
            if problem.verbose:
                status = "converged" if bool(state.converged) else "did not converge"
                print(
                    f"Initialization {status}. time lapse {time.perf_counter() - start:.5f}s\t "
                    f"lower bound {float(state.lower_bound):.5f}",
                    flush=True,
                )
            results.append(_result(state, failed, size, problem.centre, dtype, covariance_type))
        return results


def _result(state: EMState, failed: bool, n_components: int, centre, dtype, covariance_type) -> EMResult:
    """A candidate's host state as an :class:`EMResult`, means shifted back by ``centre``."""
    n_iter = int(state.n_iter)
    params = _host_params(state, dtype, n_components, covariance_type)
    return EMResult(
        params=params._replace(means=params.means + centre),
        lower_bound=float(state.lower_bound),
        n_iter=n_iter,
        converged=bool(state.converged),
        lower_bounds=np.asarray(state.lower_bounds).astype(dtype)[:n_iter],
        failed=bool(failed),
    )


def _host_params(state: EMState, dtype, n_components=None, covariance_type="full") -> GMMParams:
    """The active parameters of a fitted (host or device) state as host arrays of ``dtype``."""
    params = GMMParams(*(to_host(leaf).astype(dtype) for leaf in state.params))
    if n_components is None:
        return params
    return active_params(params, n_components, covariance_type)


def _given_starts(problem: _Problem, layout: "DataLayout", sizes, warm_start, random_state):
    """The one start (padded) of a warm or multi-process fit, which has one size."""
    if warm_start is not None:
        params, lower_bound = warm_start
        params = GMMParams(*(np.asarray(leaf, problem.dtype) for leaf in params))
        params = params._replace(means=params.means - problem.centre)
    else:
        params = _process_zero_initialisation(problem, sizes[0], random_state)
        lower_bound = -np.inf
    params = pad_components(params, layout.n_components, problem.covariance_type)
    batch = GMMParams(*(np.asarray(leaf)[None] for leaf in params))
    active = active_components(sizes[0], layout.n_components)[None]
    return batch, np.full((1,), lower_bound, problem.dtype), active


def _run_batch(run, X_blocks, weight_blocks, params, bounds, active, form):
    """Run one batch of candidates; the best state on the host and whether any failed."""
    states = run(
        X_blocks, weight_blocks, params, jnp.asarray(bounds, X_blocks.dtype), jnp.asarray(active), form
    )
    states = jax.tree_util.tree_map(to_host, states)
    best = best_candidate(states.lower_bound)
    return jax.tree_util.tree_map(lambda leaf: leaf[best], states), bool(np.any(states.failed))


def _process_zero_initialisation(problem: _Problem, n_components: int, random_state) -> GMMParams:
    """Initial parameters computed by process 0 from its rows, sent to every process."""
    from jax.experimental import multihost_utils

    X, covariance_type = problem.X, problem.covariance_type
    n_features = X.shape[1]
    layout = DataLayout(
        X.shape[0], X.shape[0],
        *block_layout(X.shape[0], n_components, n_features, X.dtype.itemsize, covariance_type),
        None, n_components,
    )
    if jax.process_index() == 0:
        # Process 0's rows stand in for the data at initialisation.
        resp = None
        if _needs_responsibilities(problem.given):
            resp = initial_responsibilities(
                X, problem.sample_weight, n_components, problem.init_params, random_state
            )[:, None]
        params = initial_params(
            layout, layout.put(X, offset=problem.centre), layout.put(problem.weights), resp,
            active_components(n_components, n_components)[None],
            covariance_type=covariance_type, reg_covar=problem.reg_covar, **problem.given,
        )
        params = GMMParams(*(np.asarray(leaf[0]) for leaf in params))
    else:
        shape = structures.get(covariance_type).parameter_shape(n_components, n_features)
        zeros = lambda *s: np.zeros(s, X.dtype)  # noqa: E731
        params = GMMParams(zeros(n_components), zeros(n_components, n_features), zeros(*shape), zeros(*shape))
    return GMMParams(*multihost_utils.broadcast_one_to_all(tuple(params)))


def _needs_responsibilities(given: dict) -> bool:
    return any(given[name] is None for name in ("weights_init", "means_init", "precisions_init"))


def _fit_candidates(run, problem: _Problem, layout, X_blocks, weight_blocks, sizes, random_states, form):
    """Initialise and run every (size, restart) candidate in memory-bounded batches.

    Candidates of all sizes share each batch; the best restart of each size
    is kept (:func:`best_candidate`). A ``centred`` ``form`` also makes the initial
    M-step take its moments about the initial means.

    Returns
    -------
    best : list of (EMState on the host, bool failed), one per size
    before : list of numpy.random.RandomState
        Copies of each size's random state before its first draw.
    """
    n_padded = layout.n_components
    n_init = problem.n_init if _needs_responsibilities(problem.given) else 1
    candidates = [(group, restart) for group in range(len(sizes)) for restart in range(n_init)]
    batch_size = n_init_batches(len(candidates), layout, n_padded, problem.X.shape[1])
    finals, failures = [[] for _ in sizes], [False] * len(sizes)
    before = [None] * len(sizes)
    for batch_start in range(0, len(candidates), batch_size):
        batch = candidates[batch_start : batch_start + batch_size]
        resp = []
        for group, restart in batch:
            if restart == 0:
                before[group] = _copy_random_state(random_states[group])
            if problem.verbose:
                print(f"Initialization {restart}", flush=True)
            if _needs_responsibilities(problem.given):
                drawn = initial_responsibilities(
                    problem.X, problem.sample_weight, sizes[group], problem.init_params,
                    random_states[group],
                )
                # Dense ('random') responsibilities are zero for inactive components.
                resp.append(_padded(drawn, n_padded, 0.0, axis=1) if drawn.ndim == 2 else drawn)
        active = np.stack([active_components(sizes[group], n_padded) for group, _ in batch])
        params = initial_params(
            layout, X_blocks, weight_blocks, np.stack(resp, axis=1) if resp else None, active,
            covariance_type=problem.covariance_type, reg_covar=problem.reg_covar,
            form=form, **problem.given,
        )
        states = run(
            X_blocks, weight_blocks, params, jnp.full((len(batch),), -jnp.inf, X_blocks.dtype),
            jnp.asarray(active), form,
        )
        states = jax.tree_util.tree_map(to_host, states)
        for index, (group, _) in enumerate(batch):
            finals[group].append(jax.tree_util.tree_map(lambda leaf: leaf[index], states))
            failures[group] = failures[group] or bool(states.failed[index])
    best = []
    for group_states, failed in zip(finals, failures):
        chosen = best_candidate([state.lower_bound for state in group_states])
        best.append((group_states[chosen], failed))
    return best, before
