"""The priors of the Bayesian mixture: hyperparameters tied to the data, and each site kind's prior.

Default priors are weakly informative and tied to the data (pass explicit
values to override them, e.g. for prior predictive checks):

* ``mean_prior_loc``: the (weighted) mean of ``X``;
* ``mean_prior_scale``: twice the (weighted) standard deviation of ``X`` per
  dimension, so component centres anywhere in the data's range are plausible;
* ``scale_prior_median``: half the data's standard deviation per dimension (a
  component is narrower than the whole data); the log-normal keeps scales away
  from zero, where the mixture likelihood is unbounded (one point, zero
  width), with ``scale_prior_log_sd = 1`` putting 95 % of the prior mass
  within a factor 7 of the median;
* ``lkj_concentration = 2``: a mild preference for weak correlations.

:data:`SITE_PRIORS` turns each kind of covariance site of the structures table
(:data:`bayesgmm.structures.SITE_KINDS`) into its NumPyro distribution;
:func:`bayesgmm.bayes.model.gmm_model` samples them.
"""

from __future__ import annotations

import types
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist

from bayesgmm import _validation as v

__all__ = [
    "GMMPrior",
    "default_prior",
    "check_prior_vector",
    "checked_prior",
    "SITE_PRIORS",
    "MEAN_PRIOR_SPREAD",
    "SCALE_PRIOR_FRACTION",
    "DEFAULT_SCALE_PRIOR_LOG_SD",
    "DEFAULT_LKJ_CONCENTRATION",
]

MEAN_PRIOR_SPREAD = 2.0  # mean_prior_scale = 2 * data std
SCALE_PRIOR_FRACTION = 0.5  # scale_prior_median = data std / 2
DEFAULT_SCALE_PRIOR_LOG_SD = 1.0
DEFAULT_LKJ_CONCENTRATION = 2.0


class GMMPrior(NamedTuple):
    """Hyperparameters of :func:`bayesgmm.bayes.model.gmm_model` that depend on the data scale."""

    mean_loc: np.ndarray  # (n_features,)
    mean_scale: np.ndarray  # (n_features,)
    scale_median: np.ndarray  # (n_features,)


def _weighted_moments(X, sample_weight, observed=None):
    """Weighted mean and standard deviation per column; works in NumPy and JAX.

    ``observed`` (N, D) bool restricts each column to its observed entries;
    NumPy data with NaN take ``~isnan(X)``.
    """
    xp = jnp if isinstance(X, jax.Array) else np
    if sample_weight is None:
        sample_weight = xp.ones(X.shape[0], dtype=X.dtype)
    if observed is None and xp is np and np.isnan(X).any():
        observed = ~np.isnan(X)
    if observed is not None:
        entry_weight = xp.where(observed, sample_weight[:, None], 0.0).astype(X.dtype)
        X = xp.where(observed, X, 0.0)
        total = xp.sum(entry_weight, axis=0)
        mean = xp.sum(entry_weight * X, axis=0) / total
        variance = xp.sum(entry_weight * (X - mean) ** 2, axis=0) / total
    else:
        total = xp.sum(sample_weight)
        mean = xp.sum(sample_weight[:, None] * X, axis=0) / total
        variance = xp.sum(sample_weight[:, None] * (X - mean) ** 2, axis=0) / total
    # A constant column would give a zero-width prior; fall back to unit scale.
    std = xp.where(variance > 0, xp.sqrt(xp.where(variance > 0, variance, 1.0)), 1.0)
    return mean, std


def default_prior(X, sample_weight=None, *, mean_prior_loc=None, mean_prior_scale=None,
                  scale_prior_median=None, observed=None) -> GMMPrior:
    """The data-dependent default hyperparameters, with any given value kept.

    Parameters
    ----------
    X : array of shape (n_samples, n_features)
    sample_weight : array of shape (n_samples,), optional
    mean_prior_loc, mean_prior_scale, scale_prior_median : array-like, optional
        Broadcastable to (n_features,); ``None`` takes the default described
        in the module docstring.
    observed : array of shape (n_samples, n_features) of bool, optional
        The entries observed; the moments use those only (NumPy data with
        NaN use the entries that are not NaN).

    Returns
    -------
    GMMPrior
        Arrays of shape (n_features,) (NumPy for NumPy input, JAX otherwise).
    """
    mean, std = _weighted_moments(X, sample_weight, observed)
    xp = jnp if isinstance(X, jax.Array) else np

    def pick(value, default):
        if value is None:
            return default
        return xp.broadcast_to(xp.asarray(value, dtype=X.dtype), default.shape)

    return GMMPrior(
        mean_loc=pick(mean_prior_loc, mean),
        mean_scale=pick(mean_prior_scale, MEAN_PRIOR_SPREAD * std),
        scale_median=pick(scale_prior_median, SCALE_PRIOR_FRACTION * std),
    )


def check_prior_vector(name, value, n_features, dtype, positive):
    """A prior hyperparameter given by the user: ``None``, or a fresh array of shape (n_features,).

    Parameters
    ----------
    name : str
        The estimator parameter, named in the error.
    value : None, float or array-like broadcastable to (n_features,)
    n_features : int
    dtype : numpy.dtype
    positive : bool
        Whether every entry must be > 0 (a scale) rather than only finite.

    Returns
    -------
    ndarray of shape (n_features,) or None

    Raises
    ------
    ValueError
        For a value of another shape, not numeric, not finite or (with
        ``positive``) not positive.
    """
    if value is None:
        return None
    try:
        array = np.array(value, dtype=dtype, copy=True)
        array = np.broadcast_to(array, (n_features,)).copy()
    except (TypeError, ValueError):
        raise v.InvalidParameterError(
            f"Invalid value for '{name}': expected a number or an array of shape "
            f"({n_features},), one value per feature."
        ) from None
    if not np.all(np.isfinite(array)) or (positive and np.any(array <= 0)):
        bound = "finite and > 0" if positive else "finite"
        raise v.InvalidParameterError(f"Invalid value for '{name}': every entry must be {bound}.")
    return array


def checked_prior(X, sample_weight, *, mean_prior=None, mean_prior_scale=None,
                  scale_prior=None) -> GMMPrior:
    """:func:`default_prior` with the estimator's prior parameters, each checked first.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Checked data; the hyperparameters take its dtype.
    sample_weight : ndarray of shape (n_samples,) or None
    mean_prior, mean_prior_scale, scale_prior : None, float or array-like of shape (n_features,)
        ``BayesianGaussianMixture``'s parameters of those names (``None``:
        the default); a ``ValueError`` names the one that is not valid.

    Returns
    -------
    GMMPrior
    """
    n_features, dtype = X.shape[1], X.dtype
    return default_prior(
        X, sample_weight,
        mean_prior_loc=check_prior_vector("mean_prior", mean_prior, n_features, dtype,
                                          positive=False),
        mean_prior_scale=check_prior_vector("mean_prior_scale", mean_prior_scale, n_features,
                                            dtype, positive=True),
        scale_prior_median=check_prior_vector("scale_prior", scale_prior, n_features, dtype,
                                              positive=True),
    )


def _feature_scales_prior(prior, n_features, log_sd, lkj_concentration):
    return dist.LogNormal(jnp.log(prior.scale_median), log_sd).to_event(1)


def _common_scale_prior(prior, n_features, log_sd, lkj_concentration):
    median = jnp.exp(jnp.mean(jnp.log(prior.scale_median)))  # geometric mean over features
    return dist.LogNormal(jnp.log(median), log_sd)


def _lkj_cholesky_prior(prior, n_features, log_sd, lkj_concentration):
    return dist.LKJCholesky(n_features, lkj_concentration)


SITE_PRIORS = types.MappingProxyType({
    "feature_scales": _feature_scales_prior,
    "common_scale": _common_scale_prior,
    "lkj_cholesky": _lkj_cholesky_prior,
})
"""The NumPyro prior of each kind of covariance site (:data:`bayesgmm.structures.SITE_KINDS`).

``kind -> (prior: GMMPrior, n_features, scale_prior_log_sd, lkj_concentration) ->
Distribution``, the distribution of one component's value (or of the shared
value); read-only.
"""
