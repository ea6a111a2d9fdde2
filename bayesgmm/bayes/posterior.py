"""Draws evaluated on data: parameters of each draw, responsibilities, pointwise log-likelihood, predictive draws.

Draws are dicts of site name -> array with leading axes (chain, draw); the
evaluation runs over draws in batches of :data:`DRAW_BATCH_SIZE`.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from bayesgmm import _program_cache, structures
from bayesgmm.bayes import incomplete
from bayesgmm.bayes.model import GaussianMixtureLikelihood
from bayesgmm.mixture import parameters

# Draws processed together when mapping a per-draw computation over the posterior.
DRAW_BATCH_SIZE = 64


def flatten_chains(samples: dict) -> dict:
    """Merge the (chain, draw) axes of every site into one draw axis."""
    return {name: value.reshape((-1,) + value.shape[2:]) for name, value in samples.items()}


def _params_from_samples(samples: dict, covariance_type: str) -> parameters.GMMParams:
    structure = structures.get(covariance_type)
    return parameters.GMMParams(
        weights=samples["weights"],
        means=samples["means"],
        covariances=structure.covariances_from_sites(samples),
        precisions_cholesky=structure.precisions_cholesky_from_sites(samples),
    )


def posterior_params(samples: dict, covariance_type: str) -> parameters.GMMParams:
    """Mixture parameters of every draw, in scikit-learn's shapes.

    Parameters
    ----------
    samples : dict
        Site values with any leading draw axes, e.g. (n_draws,) or
        (num_chains, num_samples).
    covariance_type : {'full', 'tied', 'diag', 'spherical'}

    Returns
    -------
    GMMParams
        ``weights`` (..., K), ``means`` (..., K, D), ``covariances`` and
        ``precisions_cholesky`` in the shapes of :mod:`bayesgmm.gaussian`
        with the same leading axes; NumPy arrays.
    """
    with parameters.precision_scope(np.asarray(samples["means"]).dtype):
        samples = {name: jnp.asarray(value) for name, value in samples.items()}
        return _to_numpy(_params_from_samples(samples, covariance_type))


def _per_draw(fn, rows: incomplete.Rows, params: parameters.GMMParams, covariance_type):
    """``fn(log weights + log N)`` of every draw (leading axis), mapped in batches.

    ``rows``: the data and their patterns of observed coordinates
    (:func:`bayesgmm.bayes.incomplete.rows`).
    """
    def one_draw(draw):
        return fn(incomplete.log_weighted_prob(rows.X, *draw, covariance_type, rows.observed))

    draws = (params.weights, params.means, params.precisions_cholesky)
    return lax.map(one_draw, draws, batch_size=DRAW_BATCH_SIZE)


def _log_softmax(log_prob):
    return jax.nn.log_softmax(log_prob, axis=-1)


def _logsumexp(log_prob):
    return jax.nn.logsumexp(log_prob, axis=-1)


def _params_precision(params: parameters.GMMParams):
    """Compute in the precision of the draws (float64 needs JAX's scoped x64 mode)."""
    return parameters.precision_scope(np.asarray(params.means).dtype)


def _as_jax(params: parameters.GMMParams) -> parameters.GMMParams:
    return parameters.GMMParams(*(jnp.asarray(leaf) for leaf in params))


def _to_numpy(params: parameters.GMMParams) -> parameters.GMMParams:
    return parameters.GMMParams(*(np.asarray(leaf) for leaf in params))


@_program_cache.bounded
@functools.partial(jax.jit, static_argnames=("covariance_type",))
def _log_responsibilities(rows, params, covariance_type):
    return _per_draw(_log_softmax, rows, params, covariance_type)


@_program_cache.bounded
@functools.partial(jax.jit, static_argnames=("covariance_type",))
def _log_likelihoods(rows, params, covariance_type):
    return _per_draw(_logsumexp, rows, params, covariance_type)


@_program_cache.bounded
@functools.partial(jax.jit, static_argnames=("covariance_type",))
def _responsibility_moments(rows, params, covariance_type):
    # Welford's update: no cancellation when the spread is tiny against the mean.
    def add_draw(carry, draw):
        count, mean, sum_squares = carry
        resp = jax.nn.softmax(incomplete.log_weighted_prob(rows.X, *draw, covariance_type, rows.observed),
                              axis=-1)
        count = count + 1
        delta = resp - mean
        mean = mean + delta / count
        return (count, mean, sum_squares + delta * (resp - mean)), None

    X = rows.X
    zeros = jnp.zeros((X.shape[0], params.weights.shape[-1]), X.dtype)
    draws = (params.weights, params.means, params.precisions_cholesky)
    (count, mean, sum_squares), _ = lax.scan(add_draw, (jnp.zeros((), X.dtype), zeros, zeros),
                                             draws)
    return mean, jnp.sqrt(sum_squares / count)


def log_responsibilities(X, params: parameters.GMMParams, covariance_type: str) -> np.ndarray:
    """Per-draw log responsibilities ``log p(z_n = k | x_n, theta_s)``.

    Parameters
    ----------
    X : array of shape (n_samples, n_features)
        NaN marks a missing value: a row's responsibilities then use its
        observed coordinates (the marginal of each component).
    params : GMMParams
        Draws with one leading axis (n_draws,).
    covariance_type : {'full', 'tied', 'diag', 'spherical'}

    Returns
    -------
    log_resp : ndarray of shape (n_draws, n_samples, n_components)
    """
    with _params_precision(params):
        return np.asarray(_log_responsibilities(incomplete.rows(X), _as_jax(params), covariance_type))


def pointwise_log_likelihood(X, params: parameters.GMMParams, covariance_type: str) -> np.ndarray:
    """``log p(x_n | theta_s)`` for every draw and point, shape (n_draws, n_samples).

    NaN marks a missing value: ``log p(x_no | theta_s)``, the density of the
    observed coordinates.
    """
    with _params_precision(params):
        return np.asarray(_log_likelihoods(incomplete.rows(X), _as_jax(params), covariance_type))


def responsibility_moments(X, params: parameters.GMMParams, covariance_type: str):
    """Posterior mean and standard deviation of the responsibilities.

    Accumulated draw by draw, so memory stays (n_samples, n_components).
    NaN marks a missing value, as in :func:`log_responsibilities`.

    Returns
    -------
    mean, std : ndarray of shape (n_samples, n_components)
    """
    with _params_precision(params):
        mean, std = _responsibility_moments(incomplete.rows(X), _as_jax(params), covariance_type)
        return np.asarray(mean), np.asarray(std)


@_program_cache.bounded
@functools.partial(jax.jit, static_argnames=("covariance_type",))
def _imputations(keys, rows, params, covariance_type):
    def one_draw(args):
        key, weights, means, precisions_cholesky = args
        return incomplete.impute_draw(key, rows.X, weights, means, precisions_cholesky, covariance_type,
                                      rows.observed)

    draws = (keys, params.weights, params.means, params.precisions_cholesky)
    return lax.map(one_draw, draws, batch_size=DRAW_BATCH_SIZE)


def imputation_draws(key, X, params: parameters.GMMParams, covariance_type: str) -> np.ndarray:
    """Posterior multiple imputation: one completed copy of ``X`` per posterior draw.

    For draw ``s``, each row's component is drawn from its responsibilities
    on its observed coordinates under ``theta_s``, then its missing values
    from that component's conditional Gaussian given the observed ones; so
    the imputations carry the uncertainty of the parameters as well as that
    of the values.

    Parameters
    ----------
    key : jax.random key
    X : array of shape (n_samples, n_features)
        NaN marks a missing value.
    params : GMMParams
        Draws with one leading axis (n_draws,).
    covariance_type : str

    Returns
    -------
    imputations : ndarray of shape (n_draws, n_samples, n_features)
        Observed entries equal to ``X``'s in every draw.
    """
    with _params_precision(params):
        data = incomplete.rows(X)
        if data.observed is None:
            return np.broadcast_to(np.asarray(X), (params.weights.shape[0],) + np.shape(X)).copy()
        keys = jax.random.split(key, params.weights.shape[0])
        return np.asarray(_imputations(keys, data, _as_jax(params), covariance_type))


# --------------------------------------------------------------------------
# Posterior predictive draws
# --------------------------------------------------------------------------


@_program_cache.bounded
@functools.partial(jax.jit, static_argnames=("n_samples", "covariance_type"))
def _replicate(keys, params, n_samples, covariance_type):
    def one_draw(args):
        key, weights, means, precisions_cholesky = args
        likelihood = GaussianMixtureLikelihood(weights, means, precisions_cholesky,
                                               covariance_type)
        return likelihood.sample(key, (n_samples,))

    draws = (keys, params.weights, params.means, params.precisions_cholesky)
    return lax.map(one_draw, draws, batch_size=DRAW_BATCH_SIZE)


def posterior_predictive(key, params: parameters.GMMParams, n_samples: int,
                         covariance_type: str) -> np.ndarray:
    """One replicated data set of ``n_samples`` points per posterior draw.

    Returns
    -------
    replicates : ndarray of shape (n_draws, n_samples, n_features)
    """
    with _params_precision(params):
        keys = jax.random.split(key, params.weights.shape[0])
        return np.asarray(_replicate(keys, _as_jax(params), n_samples, covariance_type))


def sample_predictive_points(rng: np.random.RandomState, params: parameters.GMMParams,
                             n_samples: int, covariance_type: str):
    """Points from the posterior predictive: a random draw, a component, a Gaussian.

    Parameters
    ----------
    rng : numpy.random.RandomState
    params : GMMParams
        Draws with a leading (n_draws,) axis.
    n_samples : int
    covariance_type : str

    Returns
    -------
    X : ndarray of shape (n_samples, n_features)
    labels : ndarray of shape (n_samples,)
    """
    n_draws, n_components = params.weights.shape
    draws = rng.randint(n_draws, size=n_samples)
    cumulative = np.cumsum(params.weights[draws], axis=1)
    labels = np.minimum((rng.random_sample(n_samples)[:, None] > cumulative).sum(axis=1),
                        n_components - 1)
    noise = rng.standard_normal(size=(n_samples, params.means.shape[-1]))
    correlate = structures.get(covariance_type).correlate_noise_host
    X = params.means[draws, labels] + correlate(noise, labels, params.covariances[draws])
    return X.astype(params.means.dtype), labels
