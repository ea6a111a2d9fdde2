"""The pure functions the entries of the covariance-structure table are made of.

One function per structure (or per family: ``_matrix_*`` for 'full' and
'tied', ``_variance_*`` for 'diag' and 'spherical') and per field of
:class:`bayesgmm.structures.CovarianceStructure`; the table in
:mod:`bayesgmm.structures` assembles them. NumPy and JAX only.
"""

from __future__ import annotations

import functools
import math

import jax.numpy as jnp
import numpy as np
from jax.scipy.linalg import solve_triangular

from bayesgmm.structures._sites import COMPONENT, FEATURE, FEATURE_BIS, Site

LOG_2PI = math.log(2.0 * math.pi)


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


# -- Cholesky conversions ---------------------------------------------------


def _matrix_precisions_cholesky_from_covariances(covariances):
    covariance_cholesky = jnp.linalg.cholesky(covariances)
    identity = jnp.broadcast_to(
        jnp.eye(covariances.shape[-1], dtype=covariances.dtype), covariances.shape
    )
    inverse_cholesky = solve_triangular(covariance_cholesky, identity, lower=True)
    return jnp.swapaxes(inverse_cholesky, -1, -2)


def _variance_precisions_cholesky_from_covariances(covariances):
    # The inner where keeps the square root and the division away from
    # non-positive variances (no inf or NaN in either branch, nor in their
    # gradients); the outer one marks those variances NaN.
    return jnp.where(covariances > 0, 1.0 / jnp.sqrt(jnp.where(covariances > 0, covariances, 1.0)), jnp.nan)


def _reverse(matrices):
    """Rows and columns in reverse order (the last two axes)."""
    return jnp.flip(matrices, axis=(-2, -1))


def _matrix_precisions_cholesky_from_precisions(precisions):
    # The lower Cholesky factor of the reversed matrix, reversed back, is
    # the upper-triangular factor scikit-learn stores.
    return _reverse(jnp.linalg.cholesky(_reverse(precisions)))


def _matrix_precisions_from_cholesky(precisions_cholesky):
    # Array methods only, so NumPy input stays on the host (no compilation per shape).
    return precisions_cholesky @ precisions_cholesky.swapaxes(-1, -2)


def _matrix_covariances_from_precisions_cholesky(precisions_cholesky):
    n_features = precisions_cholesky.shape[-1]
    identity = jnp.broadcast_to(
        jnp.eye(n_features, dtype=precisions_cholesky.dtype), precisions_cholesky.shape
    )
    # P is upper triangular in bayesgmm's fits, but user-supplied factors
    # (precisions_cholesky_ set by hand, older pickles) may be lower; a
    # general solve handles both.
    inverse = jnp.linalg.solve(precisions_cholesky, identity)
    return jnp.swapaxes(inverse, -1, -2) @ inverse


def _matrix_log_det(precisions_cholesky, n_features: int):
    diagonal = jnp.diagonal(precisions_cholesky, axis1=-2, axis2=-1)
    return jnp.sum(jnp.log(diagonal), axis=-1)


def _diag_log_det(precisions_cholesky, n_features: int):
    return jnp.sum(jnp.log(precisions_cholesky), axis=-1)


def _spherical_log_det(precisions_cholesky, n_features: int):
    return n_features * jnp.log(precisions_cholesky)


# -- Direct squared Mahalanobis distances ------------------------------------


def _full_squared_mahalanobis(X, means, precisions_cholesky):
    # One product of X against all stacked factors, (n, D) @ (D, K*D): the K
    # triangular maps cost one BLAS call instead of K small ones.
    n_samples, n_features = X.shape
    n_components = means.shape[0]
    stacked = jnp.transpose(precisions_cholesky, (1, 0, 2)).reshape(
        n_features, n_components * n_features
    )
    projected = (X @ stacked).reshape(n_samples, n_components, n_features)
    projected_means = jnp.einsum("kd,kde->ke", means, precisions_cholesky)
    return jnp.sum(jnp.square(projected - projected_means), axis=-1)


def _tied_squared_mahalanobis(X, means, precisions_cholesky):
    projected = X @ precisions_cholesky
    projected_means = means @ precisions_cholesky
    return jnp.sum(jnp.square(projected[:, None, :] - projected_means), axis=-1)


def _diag_squared_mahalanobis(X, means, precisions_cholesky):
    difference = X[:, None, :] - means
    return jnp.sum(jnp.square(difference * precisions_cholesky), axis=-1)


def _spherical_squared_mahalanobis(X, means, precisions_cholesky):
    difference = X[:, None, :] - means
    return jnp.sum(jnp.square(difference), axis=-1) * precisions_cholesky**2


# -- Quadratic features ------------------------------------------------------


def _with_constant_and_linear(X, quadratic_columns):
    """``[1, x, quadratic_columns(X)...]`` as one (n, F) array."""
    columns = [jnp.ones((X.shape[0], 1), X.dtype), X]
    columns += quadratic_columns(X)
    return jnp.concatenate(columns, axis=1)


def _matrix_features(X):
    # Row i of the upper triangle: x_i * x_{i..D-1}.
    return _with_constant_and_linear(X, lambda X: [X[:, i : i + 1] * X[:, i:] for i in range(X.shape[1])])


def _diag_features(X):
    return _with_constant_and_linear(X, lambda X: [jnp.square(X)])


def _spherical_features(X):
    return _with_constant_and_linear(X, lambda X: [jnp.sum(jnp.square(X), axis=1, keepdims=True)])


def _squared_norms(projected, xp):
    return xp.sum(xp.square(projected), axis=1)


def _full_mean_distances(means, precisions_cholesky, xp=jnp):
    return _squared_norms(xp.einsum("kd,kde->ke", means, precisions_cholesky), xp)  # L^T mu


def _tied_mean_distances(means, precisions_cholesky, xp=jnp):
    return _squared_norms(means @ precisions_cholesky, xp)


def _diag_mean_distances(means, precisions_cholesky, xp=jnp):
    return _squared_norms(means * precisions_cholesky, xp)


def _spherical_mean_distances(means, precisions_cholesky, xp=jnp):
    return _squared_norms(means * precisions_cholesky[:, None], xp)


def _full_linear_and_quadratic(means, factors):
    """The coefficients of ``x`` and of the packed ``x_i x_j``, (K, D) and (K, D(D+1)/2)."""
    n_features = means.shape[1]
    projected_means = jnp.einsum("kd,kde->ke", means, factors)  # L^T mu
    linear = jnp.einsum("kde,ke->kd", factors, projected_means)  # P mu
    precisions = jnp.einsum("kde,kfe->kdf", factors, factors)
    rows, columns = np.triu_indices(n_features)
    # x^T P x = sum_i P_ii x_i^2 + 2 sum_{i<j} P_ij x_i x_j
    halves = np.where(rows == columns, 0.5, 1.0).astype(precisions.dtype)
    quadratic = -precisions[:, rows, columns] * halves
    return linear, quadratic


def _tied_linear_and_quadratic(means, precisions_cholesky):
    n_components, n_features = means.shape
    factors = jnp.broadcast_to(precisions_cholesky, (n_components, n_features, n_features))
    return _full_linear_and_quadratic(means, factors)


def _diag_linear_and_quadratic(means, precisions_cholesky):
    precisions = jnp.square(precisions_cholesky)
    return precisions * means, -0.5 * precisions


def _spherical_linear_and_quadratic(means, precisions_cholesky):
    precisions = jnp.square(precisions_cholesky)
    return precisions[:, None] * means, -0.5 * precisions[:, None]


def _coefficients_of(log_det_cholesky, mean_distances, linear_and_quadratic):
    """``coefficients(weights, means, precisions_cholesky) -> (F, K)`` of one structure."""

    def coefficients(weights, means, precisions_cholesky):
        n_features = means.shape[1]
        log_det = log_det_cholesky(precisions_cholesky, n_features)
        linear, quadratic = linear_and_quadratic(means, precisions_cholesky)
        mean_term = mean_distances(means, precisions_cholesky)
        constant = jnp.log(weights) - 0.5 * (n_features * LOG_2PI + mean_term) + log_det
        return jnp.concatenate([constant[:, None], linear, quadratic], axis=1).T

    return coefficients


def _moments_of(second_moment):
    """``moments(sums, n_features)`` of one structure, from ``(rest, first, D) -> second``."""

    def moments(sums, n_features: int):
        weight_sum = sums[:, 0]
        first = sums[:, 1 : 1 + n_features]
        rest = sums[:, 1 + n_features :]
        return weight_sum, first, second_moment(rest, first, n_features)

    return moments


# -- M-step and moments about the components' centres ------------------------


def _divisor(nk, active):
    """``nk`` with 1 for inactive components, whose moments are zero: 0 / 1, never 0 / 0."""
    return nk if active is None else jnp.where(active, nk, 1.0)


def _pooled_weights(nk, active):
    """``nk`` with 0 for inactive components, so that a pooled covariance ignores them."""
    return nk if active is None else jnp.where(active, nk, 0.0)


def _matrix_m_step_covariances_of(centred_scatter, per_component: bool):
    """``m_step_covariances`` of 'full' or 'tied' from ``(nk, second, outer, active) -> scatter``."""

    def m_step_covariances(nk, means, second, reg_covar, active=None):
        outer = means[:, :, None] * means[:, None, :]
        identity = jnp.eye(means.shape[1], dtype=means.dtype)
        covariances = centred_scatter(nk, second, outer, active) + reg_covar * identity
        # The subtraction of the means' outer products may leave rounding asymmetry.
        covariances = 0.5 * (covariances + jnp.swapaxes(covariances, -1, -2))
        if active is None or not per_component:
            return covariances
        return jnp.where(active[:, None, None], covariances, identity)

    return m_step_covariances


def _full_scatter(nk, second, outer, active):
    return second / _divisor(nk, active)[:, None, None] - outer


def _tied_scatter(nk, second, outer, active):
    nk = _pooled_weights(nk, active)
    return (second - jnp.einsum("k,kde->de", nk, outer)) / nk.sum()


def _variances(nk, means, second, reg_covar, active):
    return second / _divisor(nk, active)[:, None] - jnp.square(means) + reg_covar


def _ones_where_inactive(covariances, active):
    if active is None:
        return covariances
    return jnp.where(active.reshape(active.shape + (1,) * (covariances.ndim - 1)), covariances, 1.0)


def _diag_m_step_covariances(nk, means, second, reg_covar, active=None):
    return _ones_where_inactive(_variances(nk, means, second, reg_covar, active), active)


def _spherical_m_step_covariances(nk, means, second, reg_covar, active=None):
    return _ones_where_inactive(_variances(nk, means, second, reg_covar, active).mean(axis=1), active)


def _matrix_centred_second(scaled, difference):
    rows, columns = np.triu_indices(difference.shape[-1])
    return jnp.einsum("bkd,bke->kde", scaled, difference)[:, rows, columns]


def _diag_centred_second(scaled, difference):
    return jnp.einsum("bkd,bkd->kd", scaled, difference)


def _spherical_centred_second(scaled, difference):
    return jnp.einsum("bkd,bkd->k", scaled, difference)[:, None]


# -- Host-side helpers (NumPy) -----------------------------------------------


def _identity_parameters_of(shape):
    """``inactive_parameters`` whose covariances and factors are ones of ``shape(K, D)``."""

    def inactive_parameters(n_components: int, n_features: int, dtype):
        covariances = np.ones(shape(n_components, n_features), dtype=dtype)
        return covariances, covariances.copy()

    return inactive_parameters


def _full_inactive_parameters(n_components: int, n_features: int, dtype):
    covariances = np.tile(np.eye(n_features, dtype=dtype), (n_components, 1, 1))
    return covariances, covariances.copy()


def _tied_inactive_parameters(n_components: int, n_features: int, dtype):
    # The shared covariance has no per-component slot to pad.
    return None, None


def _matrix_sample(rng, mean, covariance, count):
    return rng.multivariate_normal(mean, covariance, int(count))


def _variance_sample(rng, mean, covariance, count):
    return mean + rng.standard_normal(size=(int(count), mean.shape[0])) * np.sqrt(covariance)


def _full_full_matrices(covariances, n_components, n_features):
    return np.array(covariances, copy=True)


def _tied_full_matrices(covariances, n_components, n_features):
    return np.broadcast_to(np.asarray(covariances), (n_components, n_features, n_features)).copy()


def _diag_full_matrices(covariances, n_components, n_features):
    return np.asarray(covariances)[:, :, None] * np.eye(n_features)


def _spherical_full_matrices(covariances, n_components, n_features):
    variances = np.repeat(np.asarray(covariances)[:, None], n_features, axis=1)
    return _diag_full_matrices(variances, n_components, n_features)


def _symmetric_positive_definite(matrices):
    matrices = np.asarray(matrices)
    symmetric = np.allclose(matrices, np.swapaxes(matrices, -1, -2))
    return bool(symmetric and np.all(np.linalg.eigvalsh(matrices) > 0))


def _positive_variances(covariances):
    return bool(np.all(np.asarray(covariances) > 0))


def _full_random_covariances(eigenvalues, rotated, n_components, n_features):
    return np.stack([rotated(eigenvalues(n_features)) for _ in range(n_components)])


def _tied_random_covariances(eigenvalues, rotated, n_components, n_features):
    return rotated(eigenvalues(n_features))


def _diag_random_covariances(eigenvalues, rotated, n_components, n_features):
    return eigenvalues(n_components, n_features)


def _spherical_random_covariances(eigenvalues, rotated, n_components, n_features):
    return eigenvalues(n_components)


def _cholesky_correlate_host(noise, covariances):
    return np.einsum("nij,nj->ni", np.linalg.cholesky(covariances), noise)


def _own_components(covariances, labels):
    """Each point's covariance from the (n, K, ...) covariances of its draw."""
    return covariances[np.arange(labels.shape[0]), labels]


def _full_correlate_noise_host(noise, labels, covariances):
    return _cholesky_correlate_host(noise, _own_components(covariances, labels))


def _tied_correlate_noise_host(noise, labels, covariances):
    return _cholesky_correlate_host(noise, covariances)


def _diag_correlate_noise_host(noise, labels, covariances):
    return noise * np.sqrt(_own_components(covariances, labels))


def _spherical_correlate_noise_host(noise, labels, covariances):
    return noise * np.sqrt(_own_components(covariances, labels))[:, None]


# -- The Bayesian model's sites (pure JAX; NumPy on the host) ------------------


def _matrix_sites_of(per_component: bool):
    """``covariance_sites`` of 'full' (``per_component``) or 'tied': scales and, for D > 1, a correlation."""
    leading = (COMPONENT,) if per_component else ()

    def covariance_sites(n_features: int) -> tuple:
        scales = Site("scales", "feature_scales", leading + (FEATURE,))
        if n_features == 1:
            return (scales,)
        return (scales, Site("corr_cholesky", "lkj_cholesky", leading + (FEATURE, FEATURE_BIS)))

    return covariance_sites


def _diagonal_matrices(vectors):
    return jnp.vectorize(jnp.diag, signature="(d)->(d,d)")(vectors)


def _inverse_lower_transpose(cholesky):
    """``inv(L).T`` for lower-triangular ``L`` of shape (..., D, D)."""
    identity = jnp.broadcast_to(jnp.eye(cholesky.shape[-1], dtype=cholesky.dtype), cholesky.shape)
    return jnp.swapaxes(solve_triangular(cholesky, identity, lower=True), -1, -2)


def _matrix_covariances_from_sites(sites):
    scales, corr_cholesky = sites["scales"], sites.get("corr_cholesky")
    if corr_cholesky is None:  # D == 1: the correlation is 1
        return _diagonal_matrices(scales**2)
    cholesky = scales[..., :, None] * corr_cholesky
    return cholesky @ jnp.swapaxes(cholesky, -1, -2)


def _matrix_precisions_cholesky_from_sites(sites):
    scales, corr_cholesky = sites["scales"], sites.get("corr_cholesky")
    if corr_cholesky is None:
        return _diagonal_matrices(1.0 / scales)
    return _inverse_lower_transpose(corr_cholesky) / scales[..., :, None]


def _matrix_sites_from_covariances(covariances, correlation_shrinkage):
    scales = np.sqrt(np.diagonal(covariances, axis1=-2, axis2=-1))
    if covariances.shape[-1] == 1:
        return {"scales": scales}
    correlation = covariances / (scales[..., :, None] * scales[..., None, :])
    # A barely positive definite EM covariance (points on a line) has a correlation
    # that rounds to singular; shrink it a little towards the identity.
    identity = np.eye(correlation.shape[-1])
    correlation = (1.0 - correlation_shrinkage) * correlation + correlation_shrinkage * identity
    return {"scales": scales, "corr_cholesky": np.linalg.cholesky(correlation)}


def _variance_sites_from_covariances(covariances, correlation_shrinkage):
    return {"scales": np.sqrt(covariances)}


def _matrix_correlate_noise(noise, factor):
    """``P^-T z``: ``Sigma = inv(P P^T) = P^-T P^-1``, so it has covariance Sigma."""
    factor = jnp.broadcast_to(factor, noise.shape + noise.shape[-1:])
    return jnp.linalg.solve(jnp.swapaxes(factor, -1, -2), noise[..., None])[..., 0]
