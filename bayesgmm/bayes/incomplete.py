"""Missing values in the Bayesian half: each row's density on its observed coordinates.

With values missing at random, the likelihood of a row is the mixture of
its components' marginals on the coordinates it has,
``sum_k pi_k N(x_o | mu_ko, Sigma_koo)`` (the assignments and the missing
values both summed out), so NUTS and SVI sample the posterior of the
parameters given the observed entries only. The marginal and conditional
Gaussians are those of :mod:`bayesgmm.marginal`, shared with EM.

Rows are grouped by their pattern of observed coordinates on the host
(:func:`observed_patterns`): the factors of each pattern are formed once
per draw (a batch over patterns), and each row reads its pattern's. The
number of patterns is padded to a power of two with complete patterns that
no row uses, so that data sets with nearby numbers of patterns share a
compiled program. Complete data carry no patterns (``None``) and go through
the complete-data density unchanged.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from bayesgmm import gaussian, marginal


class ObservedPatterns(NamedTuple):
    """Which coordinates each row has (a pytree of arrays, passed as data)."""

    patterns: jax.Array  # (P, D) bool, distinct patterns padded with complete ones
    row_pattern: jax.Array  # (N,) int32, each row's pattern


def observed_patterns(X) -> ObservedPatterns | None:
    """The patterns of observed coordinates of ``X`` (NaN marks a missing value).

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)

    Returns
    -------
    ObservedPatterns or None
        NumPy arrays; ``None`` when no value is missing.
    """
    missing = np.isnan(X)
    if not missing.any():
        return None
    patterns, row_pattern = np.unique(~missing, axis=0, return_inverse=True)
    bucket = 1 << max(0, int(len(patterns) - 1).bit_length())
    padding = np.ones((bucket - len(patterns), X.shape[1]), bool)
    return ObservedPatterns(np.concatenate([patterns, padding]), row_pattern.reshape(-1).astype(np.int32))


def filled(X) -> np.ndarray:
    """``X`` with its missing entries set to 0 (they are masked before any arithmetic)."""
    X = np.asarray(X)
    return np.where(np.isnan(X), 0.0, X).astype(X.dtype, copy=False)


class Rows(NamedTuple):
    """Data as the compiled evaluations take them: values and, if any are missing, patterns."""

    X: jax.Array  # (N, D), missing entries filled with 0
    observed: ObservedPatterns | None


def rows(X, n_rows: int | None = None) -> Rows:
    """:class:`Rows` of a host array in which NaN marks a missing value.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    n_rows : int, optional
        Pad to this many rows, repeating the first row (and its pattern).

    Returns
    -------
    Rows
        JAX arrays.
    """
    X = np.asarray(X)
    observed = observed_patterns(X)
    values = X if observed is None else filled(X)
    row_pattern = None if observed is None else observed.row_pattern
    if n_rows is not None and n_rows > X.shape[0]:
        extra = n_rows - X.shape[0]
        values = np.concatenate([values, np.repeat(values[:1], extra, axis=0)])
        if observed is not None:
            row_pattern = np.concatenate([row_pattern, np.repeat(row_pattern[:1], extra)])
    if observed is None:
        return Rows(jnp.asarray(values), None)
    return Rows(jnp.asarray(values), ObservedPatterns(jnp.asarray(observed.patterns), jnp.asarray(row_pattern)))


def _pattern_factors(means, precisions_cholesky, covariance_type, patterns):
    n_components, n_features = means.shape
    covariances = marginal.dense_covariances(precisions_cholesky, covariance_type, n_components, n_features)
    return jax.vmap(marginal.marginal_factors, in_axes=(None, 0))(covariances, patterns)


def log_weighted_prob(X, weights, means, precisions_cholesky, covariance_type: str,
                      observed: ObservedPatterns | None):
    """``log pi_k + log N(x_o | mu_ko, Sigma_koo)`` of every row, shape (N, K).

    Parameters
    ----------
    X : Array of shape (N, D)
        Missing entries may hold anything (they are masked).
    weights : Array of shape (K,)
    means : Array of shape (K, D)
    precisions_cholesky : Array, shape per ``covariance_type``
    covariance_type : str
    observed : ObservedPatterns or None
        ``None``: every entry observed, the complete-data density
        (:func:`bayesgmm.gaussian.log_weighted_prob`).
    """
    if observed is None:
        return gaussian.log_weighted_prob(X, weights, means, precisions_cholesky, covariance_type)
    factors = _pattern_factors(means, precisions_cholesky, covariance_type, observed.patterns)

    def row(x, index):
        row_factors = jax.tree.map(lambda leaf: leaf[index], factors)
        return marginal.log_weighted_prob(x[None], observed.patterns[index], weights, means, row_factors)[0]

    return jax.vmap(row)(X, observed.row_pattern)


def impute_draw(key, X, weights, means, precisions_cholesky, covariance_type: str,
                observed: ObservedPatterns):
    """One draw of the missing values given the observed ones and one parameter draw.

    Each row's component is drawn from its responsibilities on the observed
    coordinates, then its missing coordinates from that component's
    conditional Gaussian; observed entries are returned as they are.

    Returns
    -------
    Array of shape (N, D)
    """
    factors = _pattern_factors(means, precisions_cholesky, covariance_type, observed.patterns)
    label_key, noise_key = jax.random.split(key)
    row_keys = jax.random.split(label_key, X.shape[0])
    noise = jax.random.normal(noise_key, X.shape, X.dtype)

    def row(x, index, row_key, row_noise):
        pattern = observed.patterns[index]
        row_factors = jax.tree.map(lambda leaf: leaf[index], factors)
        log_prob = marginal.log_weighted_prob(x[None], pattern, weights, means, row_factors)[0]
        label = jax.random.categorical(row_key, log_prob)
        centre = marginal.conditional_means(x[None], pattern, means, row_factors)[0, label]
        # The conditional covariance is zero on the observed coordinates; the
        # identity there makes it factorable, and the mask drops those draws.
        covariance = row_factors.conditional_covariance[label] + jnp.diag(pattern.astype(x.dtype))
        spread = jnp.linalg.cholesky(covariance) @ row_noise
        return jnp.where(pattern, x, centre + jnp.where(pattern, 0.0, spread))

    return jax.vmap(row)(X, observed.row_pattern, row_keys, noise)
