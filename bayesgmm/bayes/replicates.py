"""Replicated data and imputations of a fitted ``BayesianGaussianMixture``, by chain and draw.

The estimator's :meth:`~bayesgmm.BayesianGaussianMixture.sample_posterior_predictive`
and :meth:`~bayesgmm.BayesianGaussianMixture.impute_draws` seed their draws
from a ``random_state`` as :meth:`~bayesgmm.BayesianGaussianMixture.sample`
does, evaluate them with :mod:`bayesgmm.bayes.posterior` and lay them out
along the fit's ``chain`` and ``draw`` dimensions; that work lives here, so
that the estimator's module holds its settings and methods only.
"""

from __future__ import annotations

import jax
import numpy as np
from sklearn.utils import check_random_state

from bayesgmm.bayes import diagnostics, posterior
from bayesgmm.mixture import parameters

__all__ = ["impute_draws", "sample_posterior_predictive"]


def sample_posterior_predictive(estimator, random_state):
    """Add one replicated data set per draw to the fitted ``estimator.inference_data_``.

    Parameters
    ----------
    estimator : BayesianGaussianMixture
        Fitted.
    random_state : int, RandomState instance or None
        None takes the estimator's ``random_state``.

    Returns
    -------
    inference_data : arviz.InferenceData
        ``estimator.inference_data_``, with ``posterior_predictive``.
    """
    rng = check_random_state(estimator.random_state if random_state is None else random_state)
    seed = int(rng.randint(np.iinfo(np.int32).max))
    n_samples, n_features = estimator.inference_data_.observed_data["x"].shape
    replicates = posterior.posterior_predictive(
        jax.random.key(seed), estimator.posterior_params_, n_samples, estimator._structure_name())
    diagnostics.add_posterior_predictive(estimator.inference_data_, replicates.reshape(
        estimator.relabel_permutations_.shape[:2] + (n_samples, n_features)))
    return estimator.inference_data_


def impute_draws(estimator, X, random_state):
    """For each posterior draw of the fitted ``estimator``, a draw of the missing values of ``X``.

    Parameters
    ----------
    estimator : BayesianGaussianMixture
        Fitted.
    X : array-like of shape (n_samples, n_features) or None
        Data with NaN marking missing values, checked by the estimator's
        ``_check_X``; None for the training data (``inference_data_.observed_data``).
    random_state : int, RandomState instance or None
        None takes the estimator's ``random_state``.

    Returns
    -------
    imputations : xarray.DataArray
        Named ``x``, dims (``chain``, ``draw``, ``observation``, ``feature``).
    """
    import xarray as xr

    observed = estimator.inference_data_.observed_data["x"]
    X = observed.values if X is None else estimator._check_X(X)
    rng = check_random_state(estimator.random_state if random_state is None else random_state)
    seed = int(rng.randint(np.iinfo(np.int32).max))
    with parameters.precision_scope(X.dtype):
        draws = posterior.imputation_draws(jax.random.key(seed), X, estimator.posterior_params_,
                                           estimator._structure_name())
    by_chain = estimator.relabel_permutations_.shape[:2]
    return xr.DataArray(
        draws.reshape(by_chain + X.shape), name="x",
        dims=("chain", "draw", "observation", "feature"),
        coords={"chain": np.arange(by_chain[0]), "draw": np.arange(by_chain[1]),
                "observation": np.arange(X.shape[0]), "feature": observed.coords["feature"].values},
    )
