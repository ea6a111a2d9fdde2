"""mclust's constrained models without an orientation (``D_k = I``): EII, EEI, EVI, VEI.

Their covariances are diagonal, in the 'spherical' (EII) or 'diag'
representation; see :mod:`bayesgmm.structures._constrained` for the
conventions every M-step here follows.
"""

from __future__ import annotations

import jax.numpy as jnp

from bayesgmm.structures._constrained_pooling import (
    MAX_INNER_ITERATIONS,
    _counts,
    _diagonal_scatters,
    _geometric_mean,
    _inner_tolerance,
    _iterate,
    _ones_where_inactive,
    _pool,
    _pooled_max,
    _relative_change,
    _total,
)
from bayesgmm.structures._math import _spherical_m_step_covariances


def eii_m_step_covariances(nk, means, second, reg_covar, active=None):
    """EII, ``lambda I``: one variance for all components, ``sum_k tr(W_k) / (D n)``.

    Parameters
    ----------
    nk : Array of shape (n_components,)
        Summed responsibilities (0 for inactive components).
    means : Array of shape (n_components, n_features)
    second : Array of shape (n_components, n_features)
        'spherical' moments: each component's mean over features of
        ``sum_i r_ik x_i^2``, repeated over the features.
    reg_covar : float
        Added to every variance before the pooling.
    active : Array of shape (n_components,) of bool, optional

    Returns
    -------
    covariances : Array of shape (n_components,)
        The same variance everywhere (1 for inactive components).
    """
    traces = _counts(nk, active) * _spherical_m_step_covariances(nk, means, second, reg_covar, active)
    variance = _pool(traces, active) / _total(nk, active)
    return _ones_where_inactive(jnp.broadcast_to(variance, nk.shape), active)


def eei_m_step_covariances(nk, means, second, reg_covar, active=None):
    """EEI, ``lambda B``: one diagonal covariance for all components, ``diag(sum_k W_k) / n``.

    Parameters
    ----------
    nk : Array of shape (n_components,)
    means : Array of shape (n_components, n_features)
    second : Array of shape (n_components, n_features)
        'diag' moments ``sum_i r_ik x_i^2``.
    reg_covar : float
    active : Array of shape (n_components,) of bool, optional

    Returns
    -------
    covariances : Array of shape (n_components, n_features)
    """
    scatters = _diagonal_scatters(nk, means, second, reg_covar, active)
    variances = _pool(scatters, active) / _total(nk, active)
    return _ones_where_inactive(jnp.broadcast_to(variances, scatters.shape), active)


def evi_m_step_covariances(nk, means, second, reg_covar, active=None):
    """EVI, ``lambda B_k``: equal volumes, diagonal shapes of their own (closed form).

    ``B_k = diag(W_k) / det(diag(W_k))^(1/D)`` and ``lambda = sum_k
    det(diag(W_k))^(1/D) / n`` (mclust's ``msevi``).

    Parameters
    ----------
    nk : Array of shape (n_components,)
    means : Array of shape (n_components, n_features)
    second : Array of shape (n_components, n_features)
        'diag' moments.
    reg_covar : float
    active : Array of shape (n_components,) of bool, optional

    Returns
    -------
    covariances : Array of shape (n_components, n_features)
    """
    scatters = _diagonal_scatters(nk, means, second, reg_covar, active)
    volumes = _geometric_mean(scatters)
    volume = _pool(volumes, active) / _total(nk, active)
    return _ones_where_inactive(volume * scatters / volumes[:, None], active)


def _vei(scatters, counts, active, tol: float, max_iter: int):
    """VEI's alternation (mclust's ``msvei``): (K,) volumes and the (D,) common shape.

    From ``B = I``: ``lambda_k = sum_j w_kj / b_j / (D nk_k)``, then ``b_j =
    sum_k w_kj / lambda_k`` scaled to det 1, until the largest relative change
    of a volume or a shape entry is at most ``tol``. As in mclust the volumes
    returned are those of the last step, computed from the shape before it.
    """
    n_features = scatters.shape[-1]

    def step(volumes, shape):
        new_volumes = jnp.sum(scatters / shape, axis=1) / (n_features * counts)
        new_shape = _pool(scatters / new_volumes[:, None], active)
        new_shape = new_shape / _geometric_mean(new_shape)
        change = jnp.maximum(
            _pooled_max(_relative_change(volumes, new_volumes), active),
            _relative_change(shape, new_shape).max(),
        )
        return change, new_volumes, new_shape

    dtype = scatters.dtype
    start = (jnp.int32(0), jnp.array(jnp.inf, dtype), jnp.ones_like(counts), jnp.ones(n_features, dtype))
    _, _, volumes, shape = _iterate(step, start, tol, max_iter)
    return volumes[:, None] * shape


def vei_m_step_covariances(nk, means, second, reg_covar, active=None):
    """VEI, ``lambda_k B``: volumes of their own, one diagonal shape (iterative).

    Alternates the volumes given the shape and the shape given the volumes
    from ``B = I`` (mclust's ``msvei``); stops when no volume or shape entry
    changes by more than ``sqrt(eps)`` relative to ``1 + |value|``, or after
    :data:`MAX_INNER_ITERATIONS`.

    Parameters
    ----------
    nk : Array of shape (n_components,)
    means : Array of shape (n_components, n_features)
    second : Array of shape (n_components, n_features)
        'diag' moments.
    reg_covar : float
    active : Array of shape (n_components,) of bool, optional

    Returns
    -------
    covariances : Array of shape (n_components, n_features)
    """
    scatters = _diagonal_scatters(nk, means, second, reg_covar, active)
    covariances = _vei(
        scatters, _counts(nk, active), active, _inner_tolerance(scatters.dtype), MAX_INNER_ITERATIONS
    )
    return _ones_where_inactive(covariances, active)
