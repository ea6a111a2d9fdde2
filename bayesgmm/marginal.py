"""Gaussian marginals and conditionals on a pattern of observed coordinates, in pure JAX.

Shared by both halves for data with missing values. A Gaussian's marginal
on the observed coordinates ``o`` of a row is again Gaussian,
``N(x_o | mu_o, Sigma_oo)``, and the missing coordinates ``m`` given the
observed ones are ``N(mu_m + Sigma_mo Sigma_oo^-1 (x_o - mu_o), Sigma_mm -
Sigma_mo Sigma_oo^-1 Sigma_om)``. Everything here works at the full width
``D`` with a boolean mask instead of gathering the observed coordinates, so
that every pattern has the same shapes (one compiled program serves them
all, batched with ``vmap``): the covariance is replaced by ``Sigma~``, equal
to ``Sigma`` on the observed rows and columns and to the identity on the
missing ones, whose Cholesky factor is block diagonal. Then

- ``y = W (o * (x - mu))`` with ``W = chol(Sigma~)^-1`` is the whitened
  residual of the observed coordinates (zero on the missing ones), and
  ``log N(x_o | mu_o, Sigma_oo) = -(n_o log 2 pi + log|Sigma_oo| + |y|^2) / 2``;
- ``G = Sigma W^T`` (the *gain*, zero columns on the missing coordinates)
  gives the conditional deviation ``E[x | x_o] - mu = G y`` (equal to
  ``x - mu`` on the observed coordinates) and the conditional covariance
  ``Sigma - G G^T`` (zero on the observed rows and columns).

The inverse factor ``W`` is formed once per pattern and component (a
triangular solve of a ``D x D`` identity) so that the rows of a pattern are
whitened by one matrix product rather than one triangular solve per row.
EM over many patterns takes its factors from :func:`sweep_observed`
instead (the marginal precision, the regression of the missing coordinates
on the observed ones and the conditional covariance, by ``D`` batched
rank-one updates). Nothing is jitted. Missing entries may hold
anything (NaN included): they are masked before any arithmetic.

Examples
--------
>>> import numpy as np
>>> from bayesgmm import marginal
>>> cov = np.array([[[2.0, 0.5], [0.5, 1.0]]])
>>> factors = marginal.marginal_factors(cov, np.array([True, False]))
>>> x = np.array([[1.0, np.nan]])
>>> float(np.round(marginal.conditional_means(x, np.array([True, False]), np.zeros((1, 2)), factors)[0, 0, 1], 6))
0.25
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.scipy.linalg import solve_triangular

from bayesgmm import structures

LOG_2PI = structures.LOG_2PI


class MarginalFactors(NamedTuple):
    """What one pattern of observed coordinates needs of each component (see the module docstring)."""

    inverse_cholesky: jax.Array  # (K, D, D) W, lower triangular, W Sigma~ W^T = I
    log_det: jax.Array  # (K,) log|Sigma_oo|
    gain: jax.Array  # (K, D, D) G = Sigma W^T, zero columns on the missing coordinates
    conditional_covariance: jax.Array  # (K, D, D) Sigma - G G^T, zero on observed rows and columns
    n_observed: jax.Array  # () number of observed coordinates


def dense_covariances(precisions_cholesky, covariance_type: str, n_components: int, n_features: int):
    """Every component's covariance as a dense matrix, from the precision factors.

    Generic over the structures: the structure's own ``correlate_noise``
    maps the identity to ``R = P^-1`` (row by row), and ``Sigma = R^T R``.

    Parameters
    ----------
    precisions_cholesky : Array, shape per ``covariance_type``
    covariance_type : str or CovarianceStructure
    n_components, n_features : int

    Returns
    -------
    covariances : Array of shape (n_components, n_features, n_features)
    """
    structure = structures.get(covariance_type)
    identity = jnp.broadcast_to(
        jnp.eye(n_features, dtype=precisions_cholesky.dtype), (n_components, n_features, n_features)
    )
    labels = jnp.broadcast_to(jnp.arange(n_components)[:, None], (n_components, n_features))
    factor = structure.correlate_noise(identity, labels, precisions_cholesky)  # (K, D, D) = P^-1
    return jnp.swapaxes(factor, -1, -2) @ factor


def masked_covariances(covariances, observed):
    """``Sigma~``: ``Sigma`` on the observed rows and columns, the identity elsewhere.

    Parameters
    ----------
    covariances : Array of shape (..., D, D)
    observed : Array of shape (D,) of bool

    Returns
    -------
    Array of shape (..., D, D)
    """
    observed = jnp.asarray(observed, bool)
    both = observed[:, None] & observed[None, :]
    identity = jnp.eye(observed.shape[0], dtype=covariances.dtype)
    return jnp.where(both, covariances, identity)


def marginal_factors(covariances, observed) -> MarginalFactors:
    """The factors of one pattern for every component.

    Parameters
    ----------
    covariances : Array of shape (n_components, D, D)
        Dense covariances (:func:`dense_covariances`).
    observed : Array of shape (D,) of bool

    Returns
    -------
    MarginalFactors
        NaN where a marginal covariance is not positive definite.
    """
    covariances = jnp.asarray(covariances)
    observed = jnp.asarray(observed, bool)
    n_features = observed.shape[0]
    cholesky = jnp.linalg.cholesky(masked_covariances(covariances, observed))
    identity = jnp.broadcast_to(jnp.eye(n_features, dtype=covariances.dtype), covariances.shape)
    inverse = solve_triangular(cholesky, identity, lower=True)
    log_det = 2.0 * jnp.sum(jnp.log(jnp.diagonal(cholesky, axis1=-2, axis2=-1)), axis=-1)
    # Columns of W on the missing coordinates are those of the identity; drop them.
    gain = covariances @ jnp.swapaxes(inverse * observed[None, :], -1, -2)
    missing = ~observed
    conditional = covariances - gain @ jnp.swapaxes(gain, -1, -2)
    conditional = 0.5 * (conditional + jnp.swapaxes(conditional, -1, -2))
    conditional = jnp.where(missing[:, None] & missing[None, :], conditional, 0.0)
    return MarginalFactors(inverse, log_det, gain, conditional, jnp.sum(observed))


class SweptFactors(NamedTuple):
    """One pattern's marginal and conditional for each component, from :func:`sweep_observed`."""

    precision: jax.Array  # (K, D, D) Sigma_oo^-1, zero on the missing rows and columns
    regression: jax.Array  # (K, D, D) Sigma_mo Sigma_oo^-1 on the missing rows and observed columns, else 0
    conditional_covariance: jax.Array  # (K, D, D) Sigma_mm - Sigma_mo Sigma_oo^-1 Sigma_om, else 0
    log_det: jax.Array  # (K,) log|Sigma_oo|
    n_observed: jax.Array  # () number of observed coordinates


def sweep_observed(covariances, observed) -> SweptFactors:
    """The sweep operator on the observed coordinates of every component's covariance.

    Sweeping ``Sigma`` on the coordinates ``o`` (Beaton 1964; Little and Rubin,
    *Statistical Analysis with Missing Data*, 7.5) leaves ``-Sigma_oo^-1`` on
    the observed block, the regression ``Sigma_mo Sigma_oo^-1`` below it and
    the conditional covariance on the missing block; the product of the
    pivots is ``|Sigma_oo|``. It is ``D`` rank-one updates of the whole batch
    (elementwise, no per-matrix factorisation), which is what makes the
    factors of many patterns cheap; :func:`marginal_factors` is the
    Cholesky-based counterpart.

    Parameters
    ----------
    covariances : Array of shape (n_components, D, D)
    observed : Array of shape (D,) of bool

    Returns
    -------
    SweptFactors
        NaN where a marginal covariance is not positive definite.
    """
    covariances = jnp.asarray(covariances)
    observed = jnp.asarray(observed, bool)
    n_features = observed.shape[0]
    index = jnp.arange(n_features)

    def sweep(j, carry):
        swept, log_det = carry
        pivot = swept[:, j, j]
        column = swept[:, :, j] / pivot[:, None]
        row = swept[:, j, :]
        updated = swept - column[:, :, None] * row[:, None, :]
        on_row, on_column = index[:, None] == j, index[None, :] == j
        updated = jnp.where(on_column, column[:, :, None], updated)
        updated = jnp.where(on_row, (row / pivot[:, None])[:, None, :], updated)
        updated = jnp.where(on_row & on_column, -1.0 / pivot[:, None, None], updated)
        keep = observed[j]
        return jnp.where(keep, updated, swept), log_det + jnp.where(keep, jnp.log(pivot), 0.0)

    swept, log_det = jax.lax.fori_loop(
        0, n_features, sweep, (covariances, jnp.zeros(covariances.shape[:1], covariances.dtype))
    )
    missing = ~observed
    precision = jnp.where(observed[:, None] & observed[None, :], -swept, 0.0)
    precision = 0.5 * (precision + jnp.swapaxes(precision, -1, -2))
    regression = jnp.where(missing[:, None] & observed[None, :], swept, 0.0)
    conditional = jnp.where(missing[:, None] & missing[None, :], swept, 0.0)
    conditional = 0.5 * (conditional + jnp.swapaxes(conditional, -1, -2))
    return SweptFactors(precision, regression, conditional, log_det, jnp.sum(observed))


def whitened_residuals(X, observed, means, factors: MarginalFactors):
    """``y_nk = W_k (o * (x_n - mu_k))`` for rows sharing one pattern.

    Parameters
    ----------
    X : Array of shape (n, D)
        Missing entries may hold anything.
    observed : Array of shape (D,) of bool
    means : Array of shape (K, D)
    factors : MarginalFactors

    Returns
    -------
    Array of shape (n, K, D)
    """
    observed = jnp.asarray(observed, bool)
    X_observed = jnp.where(observed, X, 0.0)
    means_observed = jnp.where(observed, means, 0.0)
    # One product for all components: (n, D) @ (D, K * D), as the direct E-step does.
    whitened = jnp.einsum("nd,ked->nke", X_observed, factors.inverse_cholesky)
    return whitened - jnp.einsum("kd,ked->ke", means_observed, factors.inverse_cholesky)


def marginal_log_prob_from_whitened(whitened, factors: MarginalFactors):
    """``log N(x_o | mu_ko, Sigma_koo)`` from :func:`whitened_residuals`, shape (n, K)."""
    distances = jnp.sum(whitened**2, axis=-1)
    return -0.5 * (factors.n_observed * LOG_2PI + factors.log_det + distances)


def marginal_log_prob(X, observed, means, factors: MarginalFactors):
    """Log density of the observed coordinates under every component, shape (n, K).

    Parameters
    ----------
    X : Array of shape (n, D)
    observed : Array of shape (D,) of bool
    means : Array of shape (K, D)
    factors : MarginalFactors
    """
    return marginal_log_prob_from_whitened(whitened_residuals(X, observed, means, factors), factors)


def conditional_deviations(X, observed, means, factors: MarginalFactors, whitened=None):
    """``E[x | x_o, k] - mu_k``, shape (n, K, D): ``x - mu_k`` on the observed coordinates.

    ``whitened`` (:func:`whitened_residuals`) is computed when not given.
    """
    observed = jnp.asarray(observed, bool)
    if whitened is None:
        whitened = whitened_residuals(X, observed, means, factors)
    predicted = jnp.einsum("kde,nke->nkd", factors.gain, whitened)
    return jnp.where(observed, jnp.where(observed, X, 0.0)[:, None, :] - means, predicted)


def conditional_means(X, observed, means, factors: MarginalFactors):
    """``E[x | x_o, k]`` for every row and component, shape (n, K, D)."""
    return means + conditional_deviations(X, observed, means, factors)


def log_weighted_prob(X, observed, weights, means, factors: MarginalFactors):
    """``log pi_k + log N(x_o | mu_ko, Sigma_koo)``, shape (n, K); weight 0 gives exactly ``-inf``."""
    positive = weights > 0
    log_weights = jnp.log(jnp.where(positive, weights, 1.0))
    log_prob = marginal_log_prob(X, observed, means, factors) + log_weights
    return jnp.where(positive, log_prob, -jnp.inf)


def row_log_weighted_prob(X, observed, weights, means, covariances):
    """:func:`log_weighted_prob` with a pattern per row (each row its own factors).

    For few rows or the Bayesian likelihood; fits group rows by pattern instead
    (:mod:`bayesgmm.mixture.incomplete`).

    Parameters
    ----------
    X : Array of shape (n, D)
    observed : Array of shape (n, D) of bool
    weights : Array of shape (K,)
    means : Array of shape (K, D)
    covariances : Array of shape (K, D, D)

    Returns
    -------
    Array of shape (n, K)
    """

    def one(x, mask):
        factors = marginal_factors(covariances, mask)
        return log_weighted_prob(x[None], mask, weights, means, factors)[0]

    return jax.vmap(one)(X, observed)
