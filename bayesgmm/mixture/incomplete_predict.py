"""Predictions and imputation on rows with values missing at random.

Each row's prediction comes from its marginal on its observed coordinates,
computed tile by tile over the pattern tiles of EM
(:mod:`bayesgmm.mixture.incomplete`): the responsibilities, labels and log
densities of :meth:`bayesgmm.GaussianMixture.predict_proba` and its
siblings, and the conditional means (or draws) of
:meth:`bayesgmm.GaussianMixture.impute`.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from bayesgmm import _program_cache, marginal
from bayesgmm.mixture.blocks import to_host
from bayesgmm.mixture.incomplete import SMALL_ROWS, TILE_SIZES, PatternTiles, pattern_factors, tile_rows, tile_terms
from bayesgmm.mixture.parameters import GMMParams


def _tile_outputs(X, weights, pattern, observed, factors, params: GMMParams, output: str):
    weighted, log_prob_norm, resp, deviations, _ = tile_terms(X, weights, pattern, observed, factors, params)
    if output == "labels":
        return jnp.argmax(weighted, axis=1).astype(jnp.int32)
    if output == "proba":
        return resp
    if output == "log_prob_norm":
        return log_prob_norm
    # 'impute': responsibilities and every component's conditional deviation.
    return resp, deviations


@_program_cache.bounded
@functools.partial(jax.jit, static_argnames=("covariance_type", "output"))
def predict_tiles(tiles: PatternTiles, params: GMMParams, *, covariance_type: str, output: str):
    """One prediction per row of every tile group (shaped like the groups' weights, plus trailing axes)."""
    factors = pattern_factors(tiles, params, covariance_type)
    one_tile = functools.partial(
        _tile_outputs, observed=tiles.observed, factors=factors, params=params, output=output
    )
    return tuple(
        lax.map(lambda arrays: jax.vmap(one_tile)(*arrays), (X, weights, pattern))
        for X, weights, pattern in zip(tiles.X, tiles.weights, tiles.pattern)
    )


def _scatter(results, rows, n_rows: int):
    """Per-tile results back in the order of the rows (padding dropped)."""
    first = np.asarray(results[0])
    out = np.empty((n_rows,) + first.shape[rows[0].ndim:], first.dtype)
    for result, where in zip(results, rows):
        result = np.asarray(result)
        valid = where >= 0
        out[where[valid]] = result[valid]
    return out


def predict(params: GMMParams, X: np.ndarray, covariance_type: str, output: str):
    """A prediction on rows with missing values (NaN), each from its marginal on the observed coordinates.

    Parameters
    ----------
    params : GMMParams
        Host parameters of a fitted model (not centred).
    X : ndarray of shape (n_samples, n_features)
    covariance_type : str
        The structure's entry name.
    output : {'proba', 'labels', 'log_prob_norm', 'impute'}
        As :func:`bayesgmm.mixture.engine.predict_blocks`; 'impute' gives the
        responsibilities (n, K) and the conditional means (n, K, D).
    """
    from bayesgmm.mixture.parameters import precision_scope

    dtype = params.means.dtype
    centre = (params.weights @ params.means).astype(dtype)
    centred = params._replace(means=params.means - centre)
    tiles, rows = tile_rows(X, np.ones(X.shape[0], dtype), centre,
                            TILE_SIZES[-1:] if X.shape[0] < SMALL_ROWS else TILE_SIZES)
    with precision_scope(dtype):
        device_params = GMMParams(*(jnp.asarray(leaf) for leaf in centred))
        results = predict_tiles(
            jax.device_put(tiles), device_params, covariance_type=covariance_type,
            output=output,
        )
        results = jax.tree_util.tree_map(to_host, results)
    if output != "impute":
        return _scatter(results, rows, X.shape[0])
    resp = _scatter([r for r, _ in results], rows, X.shape[0])
    deviations = _scatter([d for _, d in results], rows, X.shape[0])
    return resp, deviations + params.means


def impute(params: GMMParams, X: np.ndarray, covariance_type: str, n_draws=None, random_state=None):
    """``X`` with each missing entry replaced by its conditional mean, or ``n_draws`` draws of it.

    The conditional mean of a row is ``sum_k p(k | x_o) E[x | x_o, k]``. A
    draw first draws the component from ``p(k | x_o)``, then the missing
    coordinates from ``N(E[x_m | x_o, k], Cov[x_m | x_o, k])``.

    Returns
    -------
    ndarray of shape (n_samples, n_features), or (n_draws, n_samples, n_features)
    """
    from sklearn.utils import check_random_state

    missing = np.isnan(X)
    if not missing.any():
        return np.array(X, copy=True) if n_draws is None else np.repeat(X[None], n_draws, axis=0)
    rows = np.flatnonzero(missing.any(axis=1))
    resp, means = predict(params, X[rows], covariance_type, "impute")
    if n_draws is None:
        filled = np.einsum("nk,nkd->nd", resp, means)
        out = np.array(X, copy=True)
        out[rows] = np.where(missing[rows], filled, X[rows])
        return out
    rng = check_random_state(random_state)
    n_components, n_features = params.means.shape
    sub_missing = missing[rows]
    patterns, inverse = np.unique(sub_missing, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    with jax.enable_x64(params.means.dtype == np.float64):
        covariances = marginal.dense_covariances(
            jnp.asarray(params.precisions_cholesky), covariance_type, n_components, n_features
        )
        conditional = np.asarray(jax.vmap(marginal.marginal_factors, in_axes=(None, 0))(
            covariances, jnp.asarray(~patterns)
        ).conditional_covariance, np.float64)  # (n_patterns, K, D, D), zero on observed coordinates
    # Factors of the conditional covariances, with ones on the observed diagonal (noise there is masked).
    eye = np.eye(n_features)
    factors = np.linalg.cholesky(conditional + eye * ~patterns[:, None, :, None])
    draws = np.repeat(np.array(X, copy=True)[None], n_draws, axis=0)
    cumulative = np.cumsum(resp.astype(np.float64), axis=1)
    for draw in range(n_draws):
        uniform = rng.uniform(size=(rows.shape[0], 1)) * cumulative[:, -1:]
        labels = np.minimum((uniform > cumulative).sum(axis=1), n_components - 1)
        values = means[np.arange(rows.shape[0]), labels].astype(np.float64)
        noise = rng.standard_normal(values.shape)
        values += np.einsum("nde,ne->nd", factors[inverse, labels], noise)
        draws[draw][rows] = np.where(sub_missing, values, X[rows])
    return draws.astype(X.dtype, copy=False)
