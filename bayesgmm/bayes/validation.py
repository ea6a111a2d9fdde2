"""The checks ``BayesianGaussianMixture`` runs at its boundary, before any work.

Its constructor arguments (:func:`check_params`, before any data is looked
at), the training data with their weights and the prior they imply
(:func:`check_data`), and the data it predicts on (:func:`check_X`), all on
the shared checks of :mod:`bayesgmm._validation`, so that the messages are
those of :class:`bayesgmm.GaussianMixture`. They live apart from the
estimator so that its module holds its settings and methods only; the
estimator's ``_check_params``, ``_check_data`` and ``_check_X`` call them
(loading and :func:`bayesgmm.bayes.compare` check models through those).
"""

from __future__ import annotations

import numpy as np
from sklearn.exceptions import NotFittedError

from bayesgmm import _validation as v
from bayesgmm import structures
from bayesgmm.bayes import nuts, priors, svi
from bayesgmm.mixture import incomplete as em_incomplete

__all__ = ["INFERENCES", "INITS", "check_X", "check_data", "check_params"]

INITS = ("em", "prior")
INFERENCES = ("nuts", "svi")


def check_params(estimator) -> np.dtype:
    """Validate the constructor arguments (before any data is looked at).

    Parameters
    ----------
    estimator : BayesianGaussianMixture

    Returns
    -------
    dtype : numpy.dtype
        The checked ``dtype`` setting (float64 for None, where no data are known).
    """
    dtype = v.check_dtype(estimator.dtype)
    v.check_int("n_components", estimator.n_components, 1)
    if estimator.covariance_type in structures.NAMES and estimator.covariance_type not in v.COVARIANCE_TYPES:
        raise v.InvalidParameterError(
            f"Invalid value for 'covariance_type': {estimator.covariance_type!r} is one of mclust's "
            "constrained structures, which GaussianMixture fits; the Bayesian model's priors "
            f"cover {', '.join(repr(name) for name in v.COVARIANCE_TYPES)}."
        )
    v.check_choice("covariance_type", estimator.covariance_type, v.COVARIANCE_TYPES)
    v.check_nonnegative_float("weight_concentration", estimator.weight_concentration, strict=True)
    v.check_nonnegative_float("lkj_concentration", estimator.lkj_concentration, strict=True)
    v.check_int("num_warmup", estimator.num_warmup, 0)
    v.check_int("num_samples", estimator.num_samples, 1)
    v.check_int("num_chains", estimator.num_chains, 1)
    v.check_choice("chain_method", estimator.chain_method, nuts.CHAIN_METHODS)
    v.check_choice("init", estimator.init, INITS)
    v.check_nonnegative_float("init_spread", estimator.init_spread)
    target = v.check_nonnegative_float("target_accept_prob", estimator.target_accept_prob,
                                       strict=True)
    if target >= 1:
        raise v.InvalidParameterError(
            f"Invalid value for 'target_accept_prob': {estimator.target_accept_prob!r}. It "
            "must be in (0, 1), e.g. 0.8 (the default) or 0.95 against divergences."
        )
    v.check_int("max_tree_depth", estimator.max_tree_depth, 1)
    v.check_nonnegative_float("reg_covar", estimator.reg_covar)
    v.check_choice("inference", estimator.inference, INFERENCES)
    v.check_bool("progress_bar", estimator.progress_bar)
    em_incomplete.check_missing(estimator.missing)
    svi.check_options(svi_steps=estimator.svi_steps, svi_subsample_size=estimator.svi_subsample_size,
                      svi_learning_rate=estimator.svi_learning_rate, guide=estimator.guide,
                      svi_num_draws=estimator.svi_num_draws)
    return dtype


def check_data(estimator, X, sample_weight, dtype):
    """Validate the training data and weights, and the prior they and the settings give.

    Parameters
    ----------
    estimator : BayesianGaussianMixture
    X : array-like of shape (n_samples, n_features)
    sample_weight : array-like of shape (n_samples,) or None
    dtype : numpy.dtype

    Returns
    -------
    X : ndarray
        Without the rows of weight 0 that have every value missing.
    weights : ndarray or None
    prior : GMMPrior
    """
    X = v.check_array(X, dtype, min_samples=2, missing=estimator.missing)
    v.check_n_samples(X.shape[0], estimator.n_components)
    weights = None
    if sample_weight is not None:
        weights = v.check_sample_weight(sample_weight, X.shape[0], dtype)
    if np.isnan(X).any():
        X, usable = em_incomplete.usable_rows(X, np.ones(X.shape[0], dtype) if weights is None else weights)
        weights = None if weights is None else usable
        v.check_n_samples(X.shape[0], estimator.n_components)
    if weights is not None:
        v.check_positive_weight_count(weights, estimator.n_components)
    prior = priors.checked_prior(X, weights, mean_prior=estimator.mean_prior,
                                 mean_prior_scale=estimator.mean_prior_scale,
                                 scale_prior=estimator.scale_prior)
    return X, weights, prior


def check_X(estimator, X):
    """Validate data to predict on against the fitted ``estimator``.

    Parameters
    ----------
    estimator : BayesianGaussianMixture
    X : array-like of shape (n_samples, n_features)

    Returns
    -------
    X : ndarray
    """
    if not hasattr(estimator, "posterior_params_"):
        raise NotFittedError(v.NOT_FITTED_MESSAGE.format(name=type(estimator).__name__))
    v.check_feature_names(estimator, X, reset=False)
    X = v.check_array(X, estimator.means_.dtype, missing=estimator.missing)
    v.check_n_features(X, estimator.n_features_in_, type(estimator).__name__)
    empty = np.isnan(X).all(axis=1)
    if empty.any():
        raise ValueError(
            f"Row {int(np.flatnonzero(empty)[0])} of X has every value missing: there is "
            "nothing to predict from."
        )
    return X
