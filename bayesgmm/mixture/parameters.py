"""The pytrees of a fit (parameters, statistics, loop state, result) and the padding of their component axis.

Fits carry their components padded to a bucket (:func:`component_bucket`):
the extra components are inactive, with weight exactly zero, so that fits
of every ``n_components`` of one bucket run one compiled program.
"""

from __future__ import annotations

import contextlib
from typing import NamedTuple

import jax
import numpy as np

from bayesgmm import structures
from bayesgmm.mixture import quadratic

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
