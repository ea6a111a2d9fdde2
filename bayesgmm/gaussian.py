"""Pure Gaussian math in JAX for every covariance type.

Each function takes the covariance type by name (or as an entry of
:mod:`bayesgmm.structures`) and calls that entry's function, so the
per-type math is written once, in the table. Conventions follow
scikit-learn. ``precisions_cholesky`` holds a factor ``P`` of each precision
matrix with ``precision = P @ P.T``; for a covariance ``Sigma = L @ L.T``
(``L`` lower triangular) it is ``P = inv(L).T``. The shapes of both, per
type, are tabled in :mod:`bayesgmm.structures`.

Nothing here is jitted: the functions compose under ``jit`` and ``vmap`` at
the caller's boundary. A covariance that is not positive definite yields NaN
entries (never an exception inside traced code); callers check finiteness.
"""

from __future__ import annotations

import jax.numpy as jnp

from bayesgmm import structures

LOG_2PI = structures.LOG_2PI


def precisions_cholesky_from_covariances(covariances, covariance_type: str):
    """Cholesky factors of the precisions from covariances.

    Parameters
    ----------
    covariances : Array
        Shape per ``covariance_type`` (see the module docstring).
    covariance_type : {'full', 'tied', 'diag', 'spherical'} or CovarianceStructure

    Returns
    -------
    precisions_cholesky : Array
        Same shape as ``covariances``; NaN where a covariance is not positive
        definite.
    """
    return structures.get(covariance_type).precisions_cholesky_from_covariances(covariances)


def precisions_cholesky_from_precisions(precisions, covariance_type: str):
    """Upper-triangular factors ``U`` of precision matrices, ``U @ U.T = precisions``.

    The convention of scikit-learn's ``precisions_cholesky_`` (and of the
    factors :func:`precisions_cholesky_from_covariances` returns): the lower
    Cholesky factor of the matrix with rows and columns reversed, reversed back.

    Parameters
    ----------
    precisions : Array
        Shape per ``covariance_type``.
    covariance_type : {'full', 'tied', 'diag', 'spherical'} or CovarianceStructure
    """
    return structures.get(covariance_type).precisions_cholesky_from_precisions(precisions)


def precisions_from_cholesky(precisions_cholesky, covariance_type: str):
    """Precisions ``P @ P.T`` (or ``P**2`` for diag and spherical)."""
    return structures.get(covariance_type).precisions_from_cholesky(precisions_cholesky)


def covariances_from_precisions_cholesky(precisions_cholesky, covariance_type: str):
    """Covariances ``inv(P @ P.T)`` computed through the triangular factor."""
    return structures.get(covariance_type).covariances_from_precisions_cholesky(precisions_cholesky)


def log_det_cholesky(precisions_cholesky, covariance_type: str, n_features: int):
    """Log-determinant of the precision Cholesky factors, ``log|P|``.

    Returns
    -------
    log_det : Array of shape (n_components,), or a scalar for 'tied'.
    """
    return structures.get(covariance_type).log_det_cholesky(precisions_cholesky, n_features)


def squared_mahalanobis(X, means, precisions_cholesky, covariance_type: str):
    """Squared Mahalanobis distance of every point to every component.

    The direct form, well conditioned wherever the data lie: the 'full' case
    is one matrix product of ``X`` against all stacked factors,
    ``(n, D) @ (D, K*D)``, so that the K triangular maps cost one BLAS call
    instead of K small ones. (The EM core uses the expanded form of
    :mod:`bayesgmm.mixture.quadratic` on centred data instead.)

    Parameters
    ----------
    X : Array of shape (n_samples, n_features)
    means : Array of shape (n_components, n_features)
    precisions_cholesky : Array, shape per ``covariance_type``
    covariance_type : {'full', 'tied', 'diag', 'spherical'} or CovarianceStructure

    Returns
    -------
    distances : Array of shape (n_samples, n_components)
    """
    return structures.get(covariance_type).squared_mahalanobis(X, means, precisions_cholesky)


def log_gaussian_prob(X, means, precisions_cholesky, covariance_type: str):
    """Log density ``log N(x | mu_k, Sigma_k)`` of every point under every component.

    Parameters
    ----------
    X : Array of shape (n_samples, n_features)
    means : Array of shape (n_components, n_features)
    precisions_cholesky : Array, shape per ``covariance_type``
    covariance_type : {'full', 'tied', 'diag', 'spherical'} or CovarianceStructure

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
    return structures.n_parameters(covariance_type, n_components, n_features)


def log_weighted_prob(X, weights, means, precisions_cholesky, covariance_type: str):
    """``log weights[k] + log N(x_n | mu_k, Sigma_k)`` of every point and component.

    The one copy of the per-component term of a mixture's log density, shared
    by the EM E-step, the NumPyro likelihood and the evaluation of posterior
    draws. Components of weight zero (padding up to a bucket of components)
    get exactly ``-inf``, whatever their other parameters, and pass no NaN to
    the gradient: ``log(0)`` is never evaluated.

    Parameters
    ----------
    X : Array of shape (n_samples, n_features)
    weights : Array of shape (n_components,)
        Non-negative mixture weights.
    means : Array of shape (n_components, n_features)
    precisions_cholesky : Array, shape per ``covariance_type``
    covariance_type : {'full', 'tied', 'diag', 'spherical'}

    Returns
    -------
    log_prob : Array of shape (n_samples, n_components)
    """
    positive = weights > 0
    log_weights = jnp.log(jnp.where(positive, weights, 1.0))
    log_prob = log_gaussian_prob(X, means, precisions_cholesky, covariance_type) + log_weights
    return jnp.where(positive, log_prob, -jnp.inf)
