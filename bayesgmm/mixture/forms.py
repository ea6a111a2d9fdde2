"""The E-step and the sufficient statistics of a block, in two forms of one interface.

The statistics are raw weighted moments of data centred once, on the host,
at their weighted mean::

    N_k      = sum_n w_n r_nk
    first_k  = sum_n w_n r_nk x_n
    second_k = sum_n w_n r_nk x_n x_n^T      (as the covariance structure keeps it)

The **expanded** form (:data:`EXPANDED`) computes both halves of an
iteration as matrix products over one feature matrix per block
(:mod:`bayesgmm.mixture.quadratic`): ``Phi = [1, x, x_i x_j (i <= j)]``, the
log densities of all components are ``Phi @ Theta`` and N_k, first and
second of all components are ``(w r)^T @ Phi``; there is no (N, K, D)
intermediate. The **direct** form (:data:`DIRECT`) evaluates
``L^T (x - mu_k)`` and takes the moments about each component's mean: 3-5x
the work, but accurate for components far from the centre in units of their
spread (:mod:`bayesgmm.mixture.rounding` decides). A form is an
:class:`EStepForm` value passed to the engine, never a flag.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from bayesgmm import gaussian, structures
from bayesgmm.mixture import quadratic
from bayesgmm.mixture.parameters import GMMParams, SufficientStats
from bayesgmm.mixture.rounding import expanded_form_is_accurate

# --------------------------------------------------------------------------
# E-step and M-step (pure, unjitted)
# --------------------------------------------------------------------------


def estimate_weighted_log_prob(X, params: GMMParams, covariance_type: str):
    """``log pi_k + log N(x | mu_k, Sigma_k)``, shape (n_samples, n_components).

    One matrix product of the block's quadratic features against the
    coefficients of all components (:mod:`bayesgmm.mixture.quadratic`). ``X`` must be
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

    features: jax.Array  # (K, F): sum_n w_n r_nk phi(x_n), see bayesgmm.mixture.quadratic
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
    moment packed as in :func:`bayesgmm.mixture.quadratic.features`), so that
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
