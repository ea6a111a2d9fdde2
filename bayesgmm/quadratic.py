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
"""

from __future__ import annotations

import functools

import jax.numpy as jnp
import numpy as np

from bayesgmm import gaussian

LOG_2PI = gaussian.LOG_2PI


def feature_count(n_features: int, covariance_type: str) -> int:
    """Number of features ``F`` of :func:`features`."""
    if covariance_type in ("full", "tied"):
        return 1 + n_features + n_features * (n_features + 1) // 2
    if covariance_type == "diag":
        return 1 + 2 * n_features
    return 2 + n_features


@functools.lru_cache(maxsize=None)
def packed_index(n_features: int) -> np.ndarray:
    """(D, D) position of ``x_i x_j`` among the packed products (symmetric).

    The packed products are ordered row by row of the upper triangle:
    ``x_0 x_0, x_0 x_1, ..., x_0 x_{D-1}, x_1 x_1, ...``.
    """
    rows, columns = np.triu_indices(n_features)
    index = np.empty((n_features, n_features), dtype=np.int32)
    index[rows, columns] = np.arange(rows.size)
    index[columns, rows] = np.arange(rows.size)
    return index


def features(X, covariance_type: str):
    """Quadratic features of every row.

    Parameters
    ----------
    X : Array of shape (n_samples, n_features)
    covariance_type : {'full', 'tied', 'diag', 'spherical'}

    Returns
    -------
    Phi : Array of shape (n_samples, F)
        ``[1, x, x_i x_j (i <= j)]`` for 'full' and 'tied', ``[1, x, x^2]``
        for 'diag', ``[1, x, |x|^2]`` for 'spherical'.
    """
    n_samples, n_features = X.shape
    columns = [jnp.ones((n_samples, 1), X.dtype), X]
    if covariance_type in ("full", "tied"):
        # Row i of the upper triangle: x_i * x_{i..D-1}.
        columns += [X[:, i : i + 1] * X[:, i:] for i in range(n_features)]
    elif covariance_type == "diag":
        columns.append(jnp.square(X))
    else:
        columns.append(jnp.sum(jnp.square(X), axis=1, keepdims=True))
    return jnp.concatenate(columns, axis=1)


def mean_distances(means, precisions_cholesky, covariance_type: str, xp=jnp):
    """Squared Mahalanobis distance ``mu_k^T P_k mu_k`` of every mean from the origin.

    With data centred at their mean this says how much the expanded square
    loses to rounding: ``x^T P x``, ``2 mu^T P x`` and ``mu^T P mu`` are each
    about this large for points of component k, while their sum (and the
    M-step's ``second / N_k - mu mu^T``) is about ``D`` (the covariance).
    The relative error of a component's covariance grows like
    ``eps * mean_distances`` (``eps`` of the dtype); see
    :func:`bayesgmm.em.check_precision`.

    Parameters
    ----------
    means : Array of shape (n_components, n_features)
    precisions_cholesky : Array, shape per ``covariance_type``
    covariance_type : {'full', 'tied', 'diag', 'spherical'}
    xp : module, default=jax.numpy
        ``numpy`` to compute on the host.

    Returns
    -------
    distances : Array of shape (n_components,)
    """
    if covariance_type == "full":
        projected = xp.einsum("kd,kde->ke", means, precisions_cholesky)  # L^T mu
    elif covariance_type == "tied":
        projected = means @ precisions_cholesky
    elif covariance_type == "diag":
        projected = means * precisions_cholesky
    else:
        projected = means * precisions_cholesky[:, None]
    return xp.sum(xp.square(projected), axis=1)


def coefficients(weights, means, precisions_cholesky, covariance_type: str):
    """Coefficients ``Theta`` with ``features(X) @ Theta = log pi_k + log N(x | mu_k, Sigma_k)``.

    Parameters
    ----------
    weights : Array of shape (n_components,)
    means : Array of shape (n_components, n_features)
    precisions_cholesky : Array, shape per ``covariance_type``
        ``P = L L^T`` as in scikit-learn.
    covariance_type : {'full', 'tied', 'diag', 'spherical'}

    Returns
    -------
    Theta : Array of shape (F, n_components)
    """
    n_components, n_features = means.shape
    log_det = gaussian.log_det_cholesky(precisions_cholesky, covariance_type, n_features)
    if covariance_type in ("full", "tied"):
        factors = precisions_cholesky
        if covariance_type == "tied":
            factors = jnp.broadcast_to(factors, (n_components, n_features, n_features))
        projected_means = jnp.einsum("kd,kde->ke", means, factors)  # L^T mu
        linear = jnp.einsum("kde,ke->kd", factors, projected_means)  # P mu
        precisions = jnp.einsum("kde,kfe->kdf", factors, factors)
        rows, columns = np.triu_indices(n_features)
        # x^T P x = sum_i P_ii x_i^2 + 2 sum_{i<j} P_ij x_i x_j
        halves = np.where(rows == columns, 0.5, 1.0).astype(precisions.dtype)
        quadratic = -precisions[:, rows, columns] * halves
    elif covariance_type == "diag":
        precisions = jnp.square(precisions_cholesky)
        linear = precisions * means
        quadratic = -0.5 * precisions
    else:
        precisions = jnp.square(precisions_cholesky)
        linear = precisions[:, None] * means
        quadratic = -0.5 * precisions[:, None]
    mean_term = mean_distances(means, precisions_cholesky, covariance_type)
    constant = jnp.log(weights) - 0.5 * (n_features * LOG_2PI + mean_term) + log_det
    return jnp.concatenate([constant[:, None], linear, quadratic], axis=1).T


def moments(sums, n_features: int, covariance_type: str):
    """Split feature sums ``(w r)^T @ Phi`` into the M-step's raw moments.

    Parameters
    ----------
    sums : Array of shape (n_components, F)
    n_features : int
    covariance_type : str

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
    weight_sum = sums[:, 0]
    first = sums[:, 1 : 1 + n_features]
    rest = sums[:, 1 + n_features :]
    if covariance_type in ("full", "tied"):
        second = rest[:, packed_index(n_features)]
        if covariance_type == "tied":
            second = second.sum(axis=0)
    elif covariance_type == "diag":
        second = rest
    else:
        second = jnp.broadcast_to(rest / n_features, first.shape)
    return weight_sum, first, second
