"""The two fits of ``BayesianGaussianMixture``: from checked data to one :class:`FittedPosterior`.

:func:`fit_nuts` starts chains from an EM fit (:mod:`bayesgmm.bayes.chain_start`),
samples them (:mod:`bayesgmm.bayes.nuts`), relabels the draws
(:mod:`bayesgmm.bayes.relabel`) and assembles the ArviZ output
(:mod:`bayesgmm.bayes.diagnostics`); :func:`fit_svi` fits a guide instead
(:mod:`bayesgmm.bayes.svi`) and stores its draws the same way. Both read the
estimator's settings and leave it unchanged: the estimator validates them
before, and keeps the result.
"""

from __future__ import annotations

import warnings
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from sklearn.utils import check_random_state

from bayesgmm import _validation as v
from bayesgmm.bayes import chain_start, diagnostics, incomplete, nuts, relabel, svi
from bayesgmm.bayes.priors import GMMPrior
from bayesgmm.mixture import parameters

__all__ = ["FittedPosterior", "em_start", "prior_kwargs", "fit_nuts", "fit_svi"]


class FittedPosterior(NamedTuple):
    """What a fit leaves on the estimator (its attributes of the same names, ending in ``_``)."""

    inference_data: Any  # arviz.InferenceData of the relabelled draws
    raw_inference_data: Any  # arviz.InferenceData, posterior only, before relabelling
    relabel_permutations: np.ndarray  # (num_chains, num_samples, K); (1, n_draws, K) for SVI
    posterior_params: parameters.GMMParams  # relabelled draws, chains merged: (n_draws, ...)
    em_params: parameters.GMMParams | None  # the EM fit that started the chains or the guide
    chain_method: str | None  # None for SVI
    losses: np.ndarray | None = None  # (svi_steps,), SVI only
    guide_params: dict | None = None  # SVI only


def em_start(estimator, X, weights, seed, dtype):
    """The EM fit that starts the chains (or the guide), or None (init='prior', or EM failed).

    A degenerate EM solution (or one that rounding spoiled) falls back to the
    prior with a warning; any other error is raised.
    """
    if estimator.init != "em":
        return None
    try:
        return chain_start.fit_em(
            X, weights, n_components=estimator.n_components,
            covariance_type=estimator._structure_name(), random_state=int(seed), dtype=dtype,
            reg_covar=estimator.reg_covar, missing=estimator.missing,
        ).params
    except ValueError as error:
        if not str(error).startswith(
            (v.ILL_DEFINED_COVARIANCE_MESSAGE, v.PRECISION_LOSS_PREFIX)
        ):
            raise
        # fit -> fit_nuts / fit_svi -> here: the warning points at the user's fit call.
        warnings.warn(
            f"The EM fit that initialises the chains failed ({error}); the chains "
            "start from the prior instead. Pass init='prior' to skip EM.",
            UserWarning, stacklevel=4,
        )
        return None


def prior_kwargs(estimator, dtype, prior: GMMPrior) -> dict:
    """The prior hyperparameters among the keyword arguments of ``gmm_model`` (of fixed shapes)."""
    return {
        "weight_concentration": jnp.asarray(estimator.weight_concentration, dtype),
        "mean_prior_loc": jnp.asarray(prior.mean_loc),
        "mean_prior_scale": jnp.asarray(prior.mean_scale),
        "scale_prior_median": jnp.asarray(prior.scale_median),
        "lkj_concentration": jnp.asarray(estimator.lkj_concentration, dtype),
    }


def data_kwargs(X, convert) -> dict:
    """``X`` (missing entries filled) and its ``observed`` patterns, as ``gmm_model`` takes them.

    ``convert`` makes the arrays (``np.asarray`` keeps them on the host for
    NUTS, which pads them there). Complete data have no ``observed``.
    """
    observed = incomplete.observed_patterns(X)
    if observed is None:
        return {"X": convert(X)}
    return {"X": convert(incomplete.filled(X)),
            "observed": incomplete.ObservedPatterns(*map(convert, observed))}


def _feature_names(estimator):
    return getattr(estimator, "feature_names_in_", None)


def fit_svi(estimator, X, weights, prior: GMMPrior, dtype) -> FittedPosterior:
    """Fit the guide by SVI and draw from it; the draws stand for NUTS draws (one chain).

    Parameters
    ----------
    estimator : BayesianGaussianMixture
        Its (validated) parameters set the fit; it is not modified.
    X : ndarray of shape (n_samples, n_features)
    weights : ndarray of shape (n_samples,) or None
    prior : GMMPrior
    dtype : numpy.dtype

    Returns
    -------
    FittedPosterior
        The estimator checks ``losses`` (:func:`bayesgmm.bayes.svi.convergence_problem`).
    """
    steps, subsample_size, learning_rate, guide, num_draws = svi.check_options(
        svi_steps=estimator.svi_steps, svi_subsample_size=estimator.svi_subsample_size,
        svi_learning_rate=estimator.svi_learning_rate, guide=estimator.guide,
        svi_num_draws=estimator.svi_num_draws)
    settings = svi.SVISettings(
        num_steps=steps, subsample_size=svi.resolve_subsample_size(subsample_size, X.shape[0]),
        guide=guide, num_draws=num_draws,
        pointwise_log_likelihood=svi.wants_log_likelihood(num_draws, X.shape[0]),
        progress_bar=nuts.progress_bar_enabled(estimator.progress_bar),
    )
    rng = check_random_state(estimator.random_state)
    em_seed, svi_seed = rng.randint(np.iinfo(np.int32).max, size=2)
    with parameters.precision_scope(dtype):
        X_start, weights_start = svi.em_start_points(X, weights, int(em_seed))
        em_params = em_start(estimator, X_start, weights_start, em_seed, dtype)
        model_kwargs = dict(prior_kwargs(estimator, X.dtype, prior),
                            sample_weight=None if weights is None else jnp.asarray(weights),
                            **data_kwargs(X, jnp.asarray))
        fitted = svi.fit_posterior(
            jax.random.key(int(svi_seed)), X, weights, model_kwargs, em_params,
            n_components=estimator.n_components, covariance_type=estimator._structure_name(),
            learning_rate=learning_rate, settings=settings,
        )
    attrs = {"inference": "svi", "guide": guide, "svi_steps": steps,
             "svi_subsample_size": settings.subsample_size or X.shape[0],
             "svi_learning_rate": learning_rate, "loss": fitted.losses,
             "note": svi.NO_RHAT_NOTE}
    return FittedPosterior(
        inference_data=diagnostics.to_inference_data(
            fitted.samples, None, covariance_type=estimator._structure_name(), X=X,
            log_likelihood=fitted.log_likelihood, sample_weight=weights, attrs=attrs,
            feature_names=_feature_names(estimator),
        ),
        raw_inference_data=diagnostics.posterior_dataset(
            fitted.raw_samples, estimator._structure_name(), _feature_names(estimator)),
        relabel_permutations=fitted.permutations,
        posterior_params=fitted.params,
        em_params=em_params,
        chain_method=None,
        losses=fitted.losses,
        guide_params=fitted.guide_params,
    )


def fit_nuts(estimator, X, weights, prior: GMMPrior, dtype) -> FittedPosterior:
    """Sample the posterior by NUTS, relabel the draws and assemble their ``InferenceData``.

    The parameters are those of :func:`fit_svi`; returns a :class:`FittedPosterior`.
    """
    chain_method = nuts.resolve_chain_method(estimator.chain_method, estimator.num_chains)
    rng = check_random_state(estimator.random_state)
    em_seed, nuts_seed = rng.randint(np.iinfo(np.int32).max, size=2)
    with parameters.precision_scope(dtype):
        em_params = em_start(estimator, X, weights, em_seed, dtype)
        run, weight_relabel = _sample(estimator, X, weights, prior, em_params, chain_method,
                                      nuts_seed)
        return _nuts_result(estimator, X, weights, run, weight_relabel, em_params,
                            chain_method)


def _sample(estimator, X, weights, prior, em_params, chain_method, seed):
    """Run NUTS and evaluate every draw (one compiled job); return the active run.

    The component axis is padded to :func:`bayesgmm.bayes.chain_start.component_bucket`
    with the number of active components passed as data, so that every
    ``n_components`` of a bucket reuses the compiled sampler; the rows are
    padded to :func:`bayesgmm.bayes.nuts.row_bucket` (with weight zero) by
    :func:`bayesgmm.bayes.nuts.sample_posterior`, so that every
    ``n_samples`` of a bucket does too. ``X`` and ``weights`` stay the
    real rows here, and so does everything the run returns.
    """
    covariance_type = estimator._structure_name()
    n_components = int(estimator.n_components)
    n_padded = chain_start.component_bucket(
        n_components, X.shape[0], X.shape[1], covariance_type,
        int(estimator.num_chains) * (int(estimator.num_warmup) + int(estimator.num_samples)),
    )
    total_weight = X.shape[0] if weights is None else float(weights.sum())
    start = reference = None
    if em_params is not None:
        start = chain_start.pad_chain_start(chain_start.em_chain_start(
            em_params, total_weight, covariance_type=covariance_type,
            num_chains=estimator.num_chains, spread=float(estimator.init_spread),
        ), n_padded, covariance_type)
        reference = chain_start.pad_params(em_params, n_padded, covariance_type)
    # The data stay on the host: sample_posterior pads them to their row
    # bucket before they reach the device (a jnp conversion here would
    # compile a small program for every n_samples).
    model_kwargs = dict(prior_kwargs(estimator, X.dtype, prior), sample_weight=weights,
                        n_active=jnp.asarray(n_components, jnp.int32), **data_kwargs(X, np.asarray))
    settings = nuts.NUTSSettings(
        num_warmup=int(estimator.num_warmup), num_samples=int(estimator.num_samples),
        num_chains=int(estimator.num_chains), chain_method=chain_method,
        target_accept_prob=float(estimator.target_accept_prob),
        max_tree_depth=int(estimator.max_tree_depth),
        progress_bar=nuts.progress_bar_enabled(estimator.progress_bar),
    )
    X_relabel, weight_relabel = relabel.relabel_points(X, weights)
    run = nuts.sample_posterior(
        jax.random.key(int(seed)), start, model_kwargs, X_relabel, reference,
        n_components=n_padded, covariance_type=covariance_type, settings=settings,
    )
    return nuts.active_run(run, n_components, covariance_type), weight_relabel


def _nuts_result(estimator, X, weights, run, weight_relabel, em_params, chain_method):
    """Relabel a run's draws and assemble its ``InferenceData`` (raw and relabelled)."""
    covariance_type = estimator._structure_name()
    samples, params, perms = relabel.relabel_run(run, weight_relabel, covariance_type)
    by_chain = perms.shape[:2]
    log_likelihood = run.log_likelihood if weights is None else run.log_likelihood * weights

    def with_covariances(sites, draws):
        return dict(sites, covariances=draws.covariances.reshape(
            by_chain + draws.covariances.shape[1:]))

    return FittedPosterior(
        inference_data=diagnostics.to_inference_data(
            with_covariances(samples, params), run.trace, covariance_type=covariance_type,
            X=X, log_likelihood=log_likelihood.reshape(by_chain + (-1,)),
            sample_weight=weights, feature_names=_feature_names(estimator),
        ),
        raw_inference_data=diagnostics.posterior_dataset(
            with_covariances(run.trace.samples, run.params), covariance_type,
            _feature_names(estimator),
        ),
        relabel_permutations=perms,
        posterior_params=params,
        em_params=em_params,
        chain_method=chain_method,
    )
