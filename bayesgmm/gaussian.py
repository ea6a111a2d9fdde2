"""Pure Gaussian math in JAX for every covariance type.

Conventions follow scikit-learn. ``precisions_cholesky`` holds a factor ``P``
of each precision matrix with ``precision = P @ P.T``; for a covariance
``Sigma = L @ L.T`` (``L`` lower triangular) it is ``P = inv(L).T``:

=============  ===========================  ===========================
type           covariances                  precisions_cholesky
=============  ===========================  ===========================
``full``       (n_components, D, D)         (n_components, D, D)
``tied``       (D, D)                       (D, D)
``diag``       (n_components, D)            (n_components, D), 1/sqrt(var)
``spherical``  (n_components,)              (n_components,), 1/sqrt(var)
=============  ===========================  ===========================

Nothing here is jitted: the functions compose under ``jit`` and ``vmap`` at
the caller's boundary. A covariance that is not positive definite yields NaN
entries (never an exception inside traced code); callers check finiteness.
"""

from __future__ import annotations

import math

import jax.numpy as jnp
from jax.scipy.linalg import solve_triangular

LOG_2PI = math.log(2.0 * math.pi)


def precisions_cholesky_from_covariances(covariances, covariance_type: str):
    """Cholesky factors of the precisions from covariances.

    Parameters
    ----------
    covariances : Array
        Shape per ``covariance_type`` (see the module docstring).
    covariance_type : {'full', 'tied', 'diag', 'spherical'}

    Returns
    -------
    precisions_cholesky : Array
        Same shape as ``covariances``; NaN where a covariance is not positive
        definite.
    """
    if covariance_type in ("full", "tied"):
        covariance_cholesky = jnp.linalg.cholesky(covariances)
        identity = jnp.broadcast_to(
            jnp.eye(covariances.shape[-1], dtype=covariances.dtype), covariances.shape
        )
        inverse_cholesky = solve_triangular(covariance_cholesky, identity, lower=True)
        return jnp.swapaxes(inverse_cholesky, -1, -2)
    return jnp.where(covariances > 0, 1.0 / jnp.sqrt(jnp.where(covariances > 0, covariances, 1.0)), jnp.nan)


def precisions_cholesky_from_precisions(precisions, covariance_type: str):
    """Upper-triangular factors ``U`` of precision matrices, ``U @ U.T = precisions``.

    The convention of scikit-learn's ``precisions_cholesky_`` (and of the
    factors :func:`precisions_cholesky_from_covariances` returns): the lower
    Cholesky factor of the matrix with rows and columns reversed, reversed back.

    Parameters
    ----------
    precisions : Array
        Shape per ``covariance_type``.
    covariance_type : {'full', 'tied', 'diag', 'spherical'}
    """
    if covariance_type in ("full", "tied"):
        return _reverse(jnp.linalg.cholesky(_reverse(precisions)))
    return jnp.sqrt(precisions)


def _reverse(matrices):
    """Rows and columns in reverse order (the last two axes)."""
    return jnp.flip(matrices, axis=(-2, -1))


def precisions_from_cholesky(precisions_cholesky, covariance_type: str):
    """Precisions ``P @ P.T`` (or ``P**2`` for diag and spherical)."""
    if covariance_type in ("full", "tied"):
        return precisions_cholesky @ jnp.swapaxes(precisions_cholesky, -1, -2)
    return precisions_cholesky**2


def covariances_from_precisions_cholesky(precisions_cholesky, covariance_type: str):
    """Covariances ``inv(P @ P.T)`` computed through the triangular factor."""
    if covariance_type in ("full", "tied"):
        n_features = precisions_cholesky.shape[-1]
        identity = jnp.broadcast_to(
            jnp.eye(n_features, dtype=precisions_cholesky.dtype), precisions_cholesky.shape
        )
        # P is upper triangular in bayesgmm's fits, but user-supplied factors
        # (precisions_cholesky_ set by hand, older pickles) may be lower; a
        # general solve handles both.
        inverse = jnp.linalg.solve(precisions_cholesky, identity)
        return jnp.swapaxes(inverse, -1, -2) @ inverse
    return 1.0 / precisions_cholesky**2


def log_det_cholesky(precisions_cholesky, covariance_type: str, n_features: int):
    """Log-determinant of the precision Cholesky factors, ``log|P|``.

    Returns
    -------
    log_det : Array of shape (n_components,), or a scalar for 'tied'.
    """
    if covariance_type in ("full", "tied"):
        diagonal = jnp.diagonal(precisions_cholesky, axis1=-2, axis2=-1)
        return jnp.sum(jnp.log(diagonal), axis=-1)
    if covariance_type == "diag":
        return jnp.sum(jnp.log(precisions_cholesky), axis=-1)
    return n_features * jnp.log(precisions_cholesky)


def squared_mahalanobis(X, means, precisions_cholesky, covariance_type: str):
    """Squared Mahalanobis distance of every point to every component.

    The direct form, well conditioned wherever the data lie: the 'full' case
    is one matrix product of ``X`` against all stacked factors,
    ``(n, D) @ (D, K*D)``, so that the K triangular maps cost one BLAS call
    instead of K small ones. (The EM core uses the expanded form of
    :mod:`bayesgmm.quadratic` on centred data instead.)

    Parameters
    ----------
    X : Array of shape (n_samples, n_features)
    means : Array of shape (n_components, n_features)
    precisions_cholesky : Array, shape per ``covariance_type``
    covariance_type : {'full', 'tied', 'diag', 'spherical'}

    Returns
    -------
    distances : Array of shape (n_samples, n_components)
    """
    n_samples, n_features = X.shape
    n_components = means.shape[0]
    if covariance_type == "full":
        stacked = jnp.transpose(precisions_cholesky, (1, 0, 2)).reshape(
            n_features, n_components * n_features
        )
        projected = (X @ stacked).reshape(n_samples, n_components, n_features)
        projected_means = jnp.einsum("kd,kde->ke", means, precisions_cholesky)
        return jnp.sum(jnp.square(projected - projected_means), axis=-1)
    if covariance_type == "tied":
        projected = X @ precisions_cholesky
        projected_means = means @ precisions_cholesky
        return jnp.sum(jnp.square(projected[:, None, :] - projected_means), axis=-1)
    difference = X[:, None, :] - means
    if covariance_type == "diag":
        return jnp.sum(jnp.square(difference * precisions_cholesky), axis=-1)
    return jnp.sum(jnp.square(difference), axis=-1) * precisions_cholesky**2


def log_gaussian_prob(X, means, precisions_cholesky, covariance_type: str):
    """Log density ``log N(x | mu_k, Sigma_k)`` of every point under every component.

    Parameters
    ----------
    X : Array of shape (n_samples, n_features)
    means : Array of shape (n_components, n_features)
    precisions_cholesky : Array, shape per ``covariance_type``
    covariance_type : {'full', 'tied', 'diag', 'spherical'}

    Returns
    -------
    log_prob : Array of shape (n_samples, n_components)
    """
    n_features = X.shape[1]
    log_det = log_det_cholesky(precisions_cholesky, covariance_type, n_features)
    distances = squared_mahalanobis(X, means, precisions_cholesky, covariance_type)
    return -0.5 * (n_features * LOG_2PI + distances) + log_det


def n_parameters(covariance_type: str, n_components: int, n_features: int) -> int:
    """Number of free parameters of a mixture, as used by BIC and AIC."""
    covariance_parameters = {
        "full": n_components * n_features * (n_features + 1) / 2.0,
        "diag": n_components * n_features,
        "tied": n_features * (n_features + 1) / 2.0,
        "spherical": n_components,
    }[covariance_type]
    return int(covariance_parameters + n_features * n_components + n_components - 1)
