"""The covariance-structure table: everything a covariance type decides, in one entry.

A :class:`CovarianceStructure` bundles the shapes, the free-parameter count
and the pure functions (Cholesky conversions, log densities, quadratic
features, M-step, sampling) of one covariance type, and what it decides in
the Bayesian model: its covariance sites (:class:`Site`), their mapping to
covariances and precision factors and back, how chain starts and data sets
are drawn. The rest of the library looks an entry up with :func:`get` and
calls its fields instead of branching on the type's name, so adding a
structure is adding an entry (and its tests).

Shapes, following scikit-learn (``P`` is the precision Cholesky factor, with
``precision = P @ P.T``; for ``Sigma = L @ L.T`` it is ``P = inv(L).T``):

=============  ===========================  ===========================
name           covariances                  precisions_cholesky
=============  ===========================  ===========================
``full``       (n_components, D, D)         (n_components, D, D)
``tied``       (D, D)                       (D, D)
``diag``       (n_components, D)            (n_components, D), 1/sqrt(var)
``spherical``  (n_components,)              (n_components,), 1/sqrt(var)
=============  ===========================  ===========================

The functions are not jitted, so that they compose under ``jit`` and ``vmap``
at the caller's boundary; an entry is a tuple of strings, booleans and
functions, hence hashable and usable as a static argument. A covariance that
is not positive definite yields NaN entries, never an exception inside
traced code. This module imports only NumPy and JAX, so that
:mod:`bayesgmm.gaussian` and :mod:`bayesgmm.mixture.quadratic` can delegate to it
and the EM half never imports NumPyro: the Bayesian sites are described in
plain terms (a name, a kind from :data:`SITE_KINDS`, named axes), which
:mod:`bayesgmm.bayes.model` turns into NumPyro distributions through one
mapping from kind to prior.

Examples
--------
>>> from bayesgmm import structures
>>> structures.get("diag").parameter_shape(3, 4)
(3, 4)
>>> structures.n_parameters("full", 2, 3)
19
>>> [site.name for site in structures.get("full").covariance_sites(3)]
['scales', 'corr_cholesky']
>>> structures.get("tied").covariance_sites(3)[0].component_axis
False
"""

from __future__ import annotations

import functools
import math
import types
from typing import Callable, NamedTuple

import jax.numpy as jnp
import numpy as np
from jax.scipy.linalg import solve_triangular

LOG_2PI = math.log(2.0 * math.pi)

COMPONENT, FEATURE, FEATURE_BIS = "component", "feature", "feature_bis"

SITE_KINDS = types.MappingProxyType({
    "feature_scales": (
        "standard deviations, one per feature (event shape (D,)), positive; prior "
        "LogNormal(log scale_prior_median, scale_prior_log_sd) per feature"
    ),
    "common_scale": (
        "one standard deviation shared by all features (event shape ()), positive; "
        "prior LogNormal(log m, scale_prior_log_sd) with m the geometric mean of "
        "scale_prior_median"
    ),
    "lkj_cholesky": (
        "the lower Cholesky factor of a D x D correlation matrix (event shape "
        "(D, D)); prior LKJCholesky(D, lkj_concentration)"
    ),
})
"""What a :class:`Site` may be: kind -> its support and prior, in words (read-only).

:mod:`bayesgmm.bayes.model` maps each kind to its NumPyro distribution.
"""


class Site(NamedTuple):
    """One latent site of a structure's covariances in the NumPyro model, in plain terms.

    Attributes
    ----------
    name : str
        The sample site's name, which is also its variable in ``InferenceData``.
    kind : str
        One of :data:`SITE_KINDS`: its support and prior.
    dims : tuple of str
        The named axes of one draw, which are its ArviZ dimensions:
        ``'component'`` (K, first when present), ``'feature'`` and
        ``'feature_bis'`` (D, the second axis of a matrix).

    Examples
    --------
    >>> site = Site("scales", "feature_scales", ("component", "feature"))
    >>> site.component_axis, site.event_dims, site.shape(3, 2)
    (True, ('feature',), (3, 2))
    """

    name: str
    kind: str
    dims: tuple

    @property
    def component_axis(self) -> bool:
        """Whether the site has one entry per component (its first axis).

        Such a site is sampled in the model's ``"component"`` plate, padded
        with the component axis, permuted by a relabelling and informed by
        one component's points; the others are shared by all components.
        """
        return self.dims[:1] == (COMPONENT,)

    @property
    def event_dims(self) -> tuple:
        """The axes of one component's value (all of them for a shared site)."""
        return self.dims[1:] if self.component_axis else self.dims

    def shape(self, n_components: int, n_features: int) -> tuple:
        """The shape of one draw."""
        sizes = {COMPONENT: n_components, FEATURE: n_features, FEATURE_BIS: n_features}
        return tuple(sizes[dim] for dim in self.dims)


class CovarianceStructure(NamedTuple):
    """One covariance type: its shapes, counts and pure math.

    ``K`` is the number of components, ``D`` the number of features, ``F``
    the number of quadratic features, ``B`` a block of samples. "Parameter
    shape" is the shape of both ``covariances`` and ``precisions_cholesky``
    (see the module docstring).

    Attributes
    ----------
    name : str
        ``'full'``, ``'tied'``, ``'diag'`` or ``'spherical'``.
    component_axis : bool
        Whether the parameters have a leading component axis (False for
        ``'tied'``: one covariance shared by all components).
    narrow_features : bool
        True where ``F`` grows linearly in ``D`` (``'diag'``: ``1 + 2D``,
        ``'spherical'``: ``D + 2``), which decides the orientation of the
        feature products.
    parameter_shape : callable ``(n_components, n_features) -> tuple``
    second_shape : callable ``(n_components, n_features) -> tuple``
        Shape of the second moments of the sufficient statistics
        (:class:`bayesgmm.mixture.parameters.SufficientStats`).
    n_covariance_parameters : callable ``(n_components, n_features) -> float``
        Free covariance parameters (scikit-learn's count, mclust's
        ``nMclustParams``).
    precisions_cholesky_from_covariances : callable ``(covariances) -> precisions_cholesky``
        NaN where a covariance is not positive definite.
    precisions_cholesky_from_precisions : callable ``(precisions) -> precisions_cholesky``
        Upper-triangular factors ``U`` with ``U @ U.T = precisions`` (the
        convention of scikit-learn's ``precisions_cholesky_``).
    precisions_from_cholesky : callable ``(precisions_cholesky) -> precisions``
    covariances_from_precisions_cholesky : callable ``(precisions_cholesky) -> covariances``
    log_det_cholesky : callable ``(precisions_cholesky, n_features) -> log_det``
        ``log|P|``, shape (K,), or a scalar for ``'tied'``.
    squared_mahalanobis : callable ``(X (n, D), means (K, D), precisions_cholesky) -> (n, K)``
        The direct form.
    feature_count : callable ``(n_features) -> int``
        ``F`` of :attr:`features`.
    features : callable ``(X (n, D)) -> Phi (n, F)``
        ``[1, x, x_i x_j (i <= j)]`` ('full', 'tied'), ``[1, x, x^2]``
        ('diag'), ``[1, x, |x|^2]`` ('spherical').
    mean_distances : callable ``(means (K, D), precisions_cholesky, xp=jax.numpy) -> (K,)``
        ``mu_k^T P_k mu_k``; ``xp=numpy`` computes on the host.
    coefficients : callable ``(weights (K,), means (K, D), precisions_cholesky) -> Theta (F, K)``
        ``features(X) @ Theta = log pi_k + log N(x | mu_k, Sigma_k)``.
    moments : callable ``(sums (K, F), n_features) -> (weight_sum (K,), first (K, D), second)``
        ``second`` is (K, D, D) for 'full', (D, D) for 'tied' (summed over
        components), (K, D) for 'diag' and 'spherical' (for 'spherical' the
        mean of the diagonal repeated D times).
    m_step_covariances : callable ``(nk (K,), means (K, D), second, reg_covar, active=None) -> covariances``
        Maximum-likelihood covariances from the raw moments of :attr:`moments`
        and ``means = first / nk`` (``nk`` as the caller floors it), plus
        ``reg_covar`` on the diagonal; 'full' and 'tied' are symmetrised.
        ``active``, a boolean (K,) mask, marks components padded up to a
        bucket (False; zero moments, ``means = first / where(active, nk, 1)``):
        they get identity covariances (ones for 'diag' and 'spherical'), and
        'tied' pools the active components only. Without it, no masking
        operation is traced.
    centred_second : callable ``(scaled (B, K, D), difference (B, K, D)) -> (K, F - 1 - D)``
        The second-moment block of moments about each component's own
        centre, packed like :attr:`features`.
    inactive_parameters : callable ``(n_components, n_features, dtype) -> (covariances, precisions_cholesky)``
        Identity parameters (NumPy arrays) for padding components that carry
        weight 0; ``(None, None)`` without a component axis.
    sample : callable ``(rng, mean (D,), covariance, count) -> (count, D)``
        scikit-learn's draws for one component from a ``np.random.RandomState``.
    component_covariance : callable ``(covariances, k) -> covariance``
        Component ``k``'s covariance (for 'tied', the shared one).
    full_matrices : callable ``(covariances, n_components, n_features) -> (K, D, D)``
        The covariances as a new NumPy array of dense matrices.
    positive_definite : callable ``(covariances) -> bool``
        Whether NumPy covariances of the parameter shape are valid:
        symmetric positive definite matrices, or strictly positive variances.
    covariance_requirement : str
        What :attr:`positive_definite` requires, in words, for error messages
        (``"symmetric positive definite matrices"``).
    random_covariances : callable ``(eigenvalues, rotated, n_components, n_features) -> covariances``
        Random covariances of the parameter shape (NumPy), from the caller's
        generators: ``eigenvalues(*shape)`` draws positive values of a shape,
        ``rotated(eigenvalues (D,))`` a matrix with those eigenvalues. The
        draws are made in a fixed order, so a seeded generator gives fixed
        covariances (:func:`bayesgmm.datasets.random_mixture`).
    covariance_sites : callable ``(n_features) -> tuple of Site``
        The latent sites of the covariances in
        :func:`bayesgmm.bayes.model.gmm_model`, in the order they are
        sampled: ``scales`` (kind ``'feature_scales'``: (K, D) for 'full' and
        'diag', (D,) for 'tied'; ``'common_scale'``: (K,) for 'spherical') and
        ``corr_cholesky`` (``'lkj_cholesky'``, (K, D, D) for 'full', (D, D) for
        'tied'; absent when D == 1). Sites with a component axis are those
        padded, relabelled and counted per component in chain starts.
    covariance_dims : tuple of str
        The ArviZ dimensions of one draw of ``covariances`` (named as in
        :attr:`Site.dims`).
    covariances_from_sites : callable ``(sites) -> covariances``
        Covariances in the parameter shape from a mapping of site name to
        value (other names are ignored), any leading batch axes kept:
        ``Sigma = diag(s) C diag(s)``, ``C = corr_cholesky @ corr_cholesky.T``
        ('full', 'tied'), ``scales**2`` ('diag', 'spherical').
    precisions_cholesky_from_sites : callable ``(sites) -> precisions_cholesky``
        The same for the precision factors: ``P = diag(1/s) inv(Lc)^T``
        (``P @ P.T = inv(Sigma)``, upper triangular, no general D x D
        inverse), ``1 / scales`` ('diag', 'spherical').
    sites_from_covariances : callable ``(covariances, correlation_shrinkage) -> dict``
        The inverse on the host (NumPy), for chain starts: site name -> value
        for every site of :attr:`covariance_sites`; correlation matrices are
        first shrunk by ``correlation_shrinkage`` towards the identity, so
        that a barely positive definite covariance has a Cholesky factor.
    feature_variances : callable ``(covariances, n_features) -> (K, D)``
        The variance of each feature in each component (NumPy), ``(1, D)`` for
        'tied'; chain starts scatter the means by it.
    work_per_component : callable ``(n_features) -> int``
        The likelihood work of one component at one point, relative across
        structures (``D**2`` for 'full', whose component maps each point by
        its own factor; ``D`` for the others): what padding components costs.
    correlate_noise : callable ``(noise (..., D), labels (...), precisions_cholesky) -> (..., D)``
        Standard normal ``noise`` mapped to ``N(0, Sigma_label)`` by
        ``P^-T`` (JAX): draws of the model's likelihood.
    correlate_noise_host : callable ``(noise (n, D), labels (n,), covariances) -> (n, D)``
        The same on the host from covariances, through their Cholesky
        factors: ``covariances`` has a leading axis of points (each point's
        posterior draw) before the parameter shape.
    """

    name: str
    component_axis: bool
    narrow_features: bool
    parameter_shape: Callable[[int, int], tuple]
    second_shape: Callable[[int, int], tuple]
    n_covariance_parameters: Callable[[int, int], float]
    precisions_cholesky_from_covariances: Callable
    precisions_cholesky_from_precisions: Callable
    precisions_from_cholesky: Callable
    covariances_from_precisions_cholesky: Callable
    log_det_cholesky: Callable
    squared_mahalanobis: Callable
    feature_count: Callable[[int], int]
    features: Callable
    mean_distances: Callable
    coefficients: Callable
    moments: Callable
    m_step_covariances: Callable
    centred_second: Callable
    inactive_parameters: Callable
    sample: Callable
    component_covariance: Callable
    full_matrices: Callable
    positive_definite: Callable
    covariance_requirement: str
    random_covariances: Callable
    covariance_sites: Callable[[int], tuple]
    covariance_dims: tuple
    covariances_from_sites: Callable
    precisions_cholesky_from_sites: Callable
    sites_from_covariances: Callable
    feature_variances: Callable
    work_per_component: Callable[[int], int]
    correlate_noise: Callable
    correlate_noise_host: Callable


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


# -- The table ---------------------------------------------------------------

_FULL = CovarianceStructure(
    name="full",
    component_axis=True,
    narrow_features=False,
    parameter_shape=lambda n_components, n_features: (n_components, n_features, n_features),
    second_shape=lambda n_components, n_features: (n_components, n_features, n_features),
    n_covariance_parameters=lambda n_components, n_features: n_components * n_features * (n_features + 1) / 2.0,
    precisions_cholesky_from_covariances=_matrix_precisions_cholesky_from_covariances,
    precisions_cholesky_from_precisions=_matrix_precisions_cholesky_from_precisions,
    precisions_from_cholesky=_matrix_precisions_from_cholesky,
    covariances_from_precisions_cholesky=_matrix_covariances_from_precisions_cholesky,
    log_det_cholesky=_matrix_log_det,
    squared_mahalanobis=_full_squared_mahalanobis,
    feature_count=lambda n_features: 1 + n_features + n_features * (n_features + 1) // 2,
    features=_matrix_features,
    mean_distances=_full_mean_distances,
    coefficients=_coefficients_of(_matrix_log_det, _full_mean_distances, _full_linear_and_quadratic),
    moments=_moments_of(lambda rest, first, n_features: rest[:, packed_index(n_features)]),
    m_step_covariances=_matrix_m_step_covariances_of(_full_scatter, per_component=True),
    centred_second=_matrix_centred_second,
    inactive_parameters=_full_inactive_parameters,
    sample=_matrix_sample,
    component_covariance=lambda covariances, k: covariances[k],
    full_matrices=_full_full_matrices,
    positive_definite=_symmetric_positive_definite,
    covariance_requirement="symmetric positive definite matrices",
    random_covariances=_full_random_covariances,
    covariance_sites=_matrix_sites_of(per_component=True),
    covariance_dims=(COMPONENT, FEATURE, FEATURE_BIS),
    covariances_from_sites=_matrix_covariances_from_sites,
    precisions_cholesky_from_sites=_matrix_precisions_cholesky_from_sites,
    sites_from_covariances=_matrix_sites_from_covariances,
    feature_variances=lambda covariances, n_features: np.diagonal(np.asarray(covariances), axis1=-2, axis2=-1),
    work_per_component=lambda n_features: n_features**2,
    correlate_noise=lambda noise, labels, precisions_cholesky: _matrix_correlate_noise(
        noise, precisions_cholesky[labels]
    ),
    correlate_noise_host=_full_correlate_noise_host,
)

_TIED = CovarianceStructure(
    name="tied",
    component_axis=False,
    narrow_features=False,
    parameter_shape=lambda n_components, n_features: (n_features, n_features),
    second_shape=lambda n_components, n_features: (n_features, n_features),
    n_covariance_parameters=lambda n_components, n_features: n_features * (n_features + 1) / 2.0,
    precisions_cholesky_from_covariances=_matrix_precisions_cholesky_from_covariances,
    precisions_cholesky_from_precisions=_matrix_precisions_cholesky_from_precisions,
    precisions_from_cholesky=_matrix_precisions_from_cholesky,
    covariances_from_precisions_cholesky=_matrix_covariances_from_precisions_cholesky,
    log_det_cholesky=_matrix_log_det,
    squared_mahalanobis=_tied_squared_mahalanobis,
    feature_count=lambda n_features: 1 + n_features + n_features * (n_features + 1) // 2,
    features=_matrix_features,
    mean_distances=_tied_mean_distances,
    coefficients=_coefficients_of(_matrix_log_det, _tied_mean_distances, _tied_linear_and_quadratic),
    moments=_moments_of(lambda rest, first, n_features: rest[:, packed_index(n_features)].sum(axis=0)),
    m_step_covariances=_matrix_m_step_covariances_of(_tied_scatter, per_component=False),
    centred_second=_matrix_centred_second,
    inactive_parameters=_tied_inactive_parameters,
    sample=_matrix_sample,
    component_covariance=lambda covariances, k: covariances,
    full_matrices=_tied_full_matrices,
    positive_definite=_symmetric_positive_definite,
    covariance_requirement="symmetric positive definite matrices",
    random_covariances=_tied_random_covariances,
    covariance_sites=_matrix_sites_of(per_component=False),
    covariance_dims=(FEATURE, FEATURE_BIS),
    covariances_from_sites=_matrix_covariances_from_sites,
    precisions_cholesky_from_sites=_matrix_precisions_cholesky_from_sites,
    sites_from_covariances=_matrix_sites_from_covariances,
    feature_variances=lambda covariances, n_features: np.diagonal(np.asarray(covariances))[None, :],
    work_per_component=lambda n_features: n_features,
    correlate_noise=lambda noise, labels, precisions_cholesky: _matrix_correlate_noise(
        noise, precisions_cholesky
    ),
    correlate_noise_host=_tied_correlate_noise_host,
)

_DIAG = CovarianceStructure(
    name="diag",
    component_axis=True,
    narrow_features=True,
    parameter_shape=lambda n_components, n_features: (n_components, n_features),
    second_shape=lambda n_components, n_features: (n_components, n_features),
    n_covariance_parameters=lambda n_components, n_features: float(n_components * n_features),
    precisions_cholesky_from_covariances=_variance_precisions_cholesky_from_covariances,
    precisions_cholesky_from_precisions=jnp.sqrt,
    precisions_from_cholesky=lambda precisions_cholesky: precisions_cholesky**2,
    covariances_from_precisions_cholesky=lambda precisions_cholesky: 1.0 / precisions_cholesky**2,
    log_det_cholesky=_diag_log_det,
    squared_mahalanobis=_diag_squared_mahalanobis,
    feature_count=lambda n_features: 1 + 2 * n_features,
    features=_diag_features,
    mean_distances=_diag_mean_distances,
    coefficients=_coefficients_of(_diag_log_det, _diag_mean_distances, _diag_linear_and_quadratic),
    moments=_moments_of(lambda rest, first, n_features: rest),
    m_step_covariances=_diag_m_step_covariances,
    centred_second=_diag_centred_second,
    inactive_parameters=_identity_parameters_of(lambda n_components, n_features: (n_components, n_features)),
    sample=_variance_sample,
    component_covariance=lambda covariances, k: covariances[k],
    full_matrices=_diag_full_matrices,
    positive_definite=_positive_variances,
    covariance_requirement="strictly positive variances",
    random_covariances=_diag_random_covariances,
    covariance_sites=lambda n_features: (Site("scales", "feature_scales", (COMPONENT, FEATURE)),),
    covariance_dims=(COMPONENT, FEATURE),
    covariances_from_sites=lambda sites: sites["scales"] ** 2,
    precisions_cholesky_from_sites=lambda sites: 1.0 / sites["scales"],
    sites_from_covariances=_variance_sites_from_covariances,
    feature_variances=lambda covariances, n_features: np.asarray(covariances),
    work_per_component=lambda n_features: n_features,
    correlate_noise=lambda noise, labels, precisions_cholesky: noise / precisions_cholesky[labels],
    correlate_noise_host=_diag_correlate_noise_host,
)

_SPHERICAL = CovarianceStructure(
    name="spherical",
    component_axis=True,
    narrow_features=True,
    parameter_shape=lambda n_components, n_features: (n_components,),
    second_shape=lambda n_components, n_features: (n_components, n_features),
    n_covariance_parameters=lambda n_components, n_features: float(n_components),
    precisions_cholesky_from_covariances=_variance_precisions_cholesky_from_covariances,
    precisions_cholesky_from_precisions=jnp.sqrt,
    precisions_from_cholesky=lambda precisions_cholesky: precisions_cholesky**2,
    covariances_from_precisions_cholesky=lambda precisions_cholesky: 1.0 / precisions_cholesky**2,
    log_det_cholesky=_spherical_log_det,
    squared_mahalanobis=_spherical_squared_mahalanobis,
    feature_count=lambda n_features: 2 + n_features,
    features=_spherical_features,
    mean_distances=_spherical_mean_distances,
    coefficients=_coefficients_of(_spherical_log_det, _spherical_mean_distances, _spherical_linear_and_quadratic),
    # The mean of the diagonal repeated D times, so that the M-step treats
    # 'diag' and 'spherical' alike.
    moments=_moments_of(lambda rest, first, n_features: jnp.broadcast_to(rest / n_features, first.shape)),
    m_step_covariances=_spherical_m_step_covariances,
    centred_second=_spherical_centred_second,
    inactive_parameters=_identity_parameters_of(lambda n_components, n_features: (n_components,)),
    sample=_variance_sample,
    component_covariance=lambda covariances, k: covariances[k],
    full_matrices=_spherical_full_matrices,
    positive_definite=_positive_variances,
    covariance_requirement="strictly positive variances",
    random_covariances=_spherical_random_covariances,
    covariance_sites=lambda n_features: (Site("scales", "common_scale", (COMPONENT,)),),
    covariance_dims=(COMPONENT,),
    covariances_from_sites=lambda sites: sites["scales"] ** 2,
    precisions_cholesky_from_sites=lambda sites: 1.0 / sites["scales"],
    sites_from_covariances=_variance_sites_from_covariances,
    feature_variances=lambda covariances, n_features: np.repeat(np.asarray(covariances)[:, None], n_features, axis=1),
    work_per_component=lambda n_features: n_features,
    correlate_noise=lambda noise, labels, precisions_cholesky: noise / precisions_cholesky[labels][..., None],
    correlate_noise_host=_spherical_correlate_noise_host,
)

STRUCTURES = types.MappingProxyType({entry.name: entry for entry in (_FULL, _TIED, _DIAG, _SPHERICAL)})
"""Every structure by name, in a fixed order ('full', 'tied', 'diag', 'spherical'); read-only."""


def get(name) -> CovarianceStructure:
    """The table entry of a covariance type.

    Parameters
    ----------
    name : str or CovarianceStructure
        One of ``STRUCTURES``; an entry is returned as it is, so that callers
        may accept either.

    Returns
    -------
    CovarianceStructure

    Raises
    ------
    ValueError
        For any other value, naming the valid choices.
    """
    if isinstance(name, CovarianceStructure):
        return name
    if isinstance(name, str) and name in STRUCTURES:
        return STRUCTURES[name]
    raise ValueError(
        f"Invalid value for 'covariance_type': {name!r}. It must be one of "
        f"{', '.join(repr(choice) for choice in STRUCTURES)}."
    )


def n_parameters(structure_or_name, n_components: int, n_features: int) -> int:
    """Number of free parameters of a mixture, as used by BIC and AIC.

    Covariance parameters, ``n_features`` per mean and ``n_components - 1``
    weights (they sum to one).

    Parameters
    ----------
    structure_or_name : str or CovarianceStructure
    n_components : int
    n_features : int

    Returns
    -------
    int
    """
    covariance_parameters = get(structure_or_name).n_covariance_parameters(n_components, n_features)
    return int(covariance_parameters + n_features * n_components + n_components - 1)
