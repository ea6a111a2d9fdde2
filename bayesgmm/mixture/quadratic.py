"""The Gaussian log-density as a linear function of quadratic features.

For every covariance type, ``log pi_k + log N(x | mu_k, Sigma_k)`` is linear in
the features ``phi(x) = [1, x, x x^T]`` (only the entries the type needs)::

    log pi_k N(x | mu_k, P_k^-1) =  c_k + (P_k mu_k)^T x - 1/2 x^T P_k x
    c_k = log pi_k - D/2 log(2 pi) + 1/2 log|P_k| - 1/2 mu_k^T P_k mu_k

and the sufficient statistics of the M-step are sums of the same features
weighted by the responsibilities. So one EM pass over a block of data is two
matrix products against one feature matrix::

    Phi   = features(X)                    (B, F)
    log_p = Phi @ coefficients(params)     (B, F) @ (F, K)    E-step
    sums  = (w r)^T @ Phi                  (K, B) @ (B, F)    M-step statistics

with ``F = 1 + D + D(D+1)/2`` for 'full' and 'tied' (each distinct product
``x_i x_j`` once), ``1 + 2D`` for 'diag' and ``D + 2`` for 'spherical'. Both
products contract over long axes, which is what matrix-multiply units are
built for; the direct form (``X`` against the K stacked Cholesky factors,
then a square and a sum over D) contracts over D only and writes a
(B, K, D) intermediate.

Conditioning: the expanded square loses digits in proportion to
``max |x|^2 * ||P_k||``, the squared distance from the origin in units of a
component's standard deviation. The EM core centres the data at their
weighted mean, which keeps this small for data whose clusters are not
extremely tight relative to their spread; the M-step's raw moments
(``second / N_k - mu mu^T``) have the same conditioning.

Each function looks the covariance type up in :mod:`bayesgmm.structures`,
where the per-type forms are written.
"""

from __future__ import annotations

import jax.numpy as jnp

from bayesgmm import structures

LOG_2PI = structures.LOG_2PI

# The packed order of the products x_i x_j, shared with the table's moments.
packed_index = structures.packed_index


def feature_count(n_features: int, covariance_type: str) -> int:
    """Number of features ``F`` of :func:`features`."""
    return structures.get(covariance_type).feature_count(n_features)


def features(X, covariance_type: str):
    """Quadratic features of every row.

    Parameters
    ----------
    X : Array of shape (n_samples, n_features)
    covariance_type : {'full', 'tied', 'diag', 'spherical'} or CovarianceStructure

    Returns
    -------
    Phi : Array of shape (n_samples, F)
        ``[1, x, x_i x_j (i <= j)]`` for 'full' and 'tied', ``[1, x, x^2]``
        for 'diag', ``[1, x, |x|^2]`` for 'spherical'.
    """
    return structures.get(covariance_type).features(X)


def mean_distances(means, precisions_cholesky, covariance_type: str, xp=jnp):
    """Squared Mahalanobis distance ``mu_k^T P_k mu_k`` of every mean from the origin.

    With data centred at their mean this says how much the expanded square
    loses to rounding: ``x^T P x``, ``2 mu^T P x`` and ``mu^T P mu`` are each
    about this large for points of component k, while their sum (and the
    M-step's ``second / N_k - mu mu^T``) is about ``D`` (the covariance).
    The relative error of a component's covariance grows like
    ``eps * mean_distances`` (``eps`` of the dtype); see
    :func:`bayesgmm.mixture.rounding.check_precision`.

    Parameters
    ----------
    means : Array of shape (n_components, n_features)
    precisions_cholesky : Array, shape per ``covariance_type``
    covariance_type : {'full', 'tied', 'diag', 'spherical'} or CovarianceStructure
    xp : module, default=jax.numpy
        ``numpy`` to compute on the host.

    Returns
    -------
    distances : Array of shape (n_components,)
    """
    return structures.get(covariance_type).mean_distances(means, precisions_cholesky, xp)


def coefficients(weights, means, precisions_cholesky, covariance_type: str):
    """Coefficients ``Theta`` with ``features(X) @ Theta = log pi_k + log N(x | mu_k, Sigma_k)``.

    Parameters
    ----------
    weights : Array of shape (n_components,)
    means : Array of shape (n_components, n_features)
    precisions_cholesky : Array, shape per ``covariance_type``
        ``P = L L^T`` as in scikit-learn.
    covariance_type : {'full', 'tied', 'diag', 'spherical'} or CovarianceStructure

    Returns
    -------
    Theta : Array of shape (F, n_components)
    """
    return structures.get(covariance_type).coefficients(weights, means, precisions_cholesky)


def moments(sums, n_features: int, covariance_type: str):
    """Split feature sums ``(w r)^T @ Phi`` into the M-step's raw moments.

    Parameters
    ----------
    sums : Array of shape (n_components, F)
    n_features : int
    covariance_type : {'full', 'tied', 'diag', 'spherical'} or CovarianceStructure

    Returns
    -------
    weight_sum : Array of shape (n_components,)
        ``N_k = sum_n w_n r_nk``.
    first : Array of shape (n_components, n_features)
        ``sum_n w_n r_nk x_n``.
    second : Array
        ``sum_n w_n r_nk x_n x_n^T``: shape (K, D, D) for 'full', its sum over
        components (D, D) for 'tied', its diagonal (K, D) for 'diag', and for
        'spherical' the mean of the diagonal repeated D times (K, D), so that
        the M-step treats 'diag' and 'spherical' alike.
    """
    return structures.get(covariance_type).moments(sums, n_features)
