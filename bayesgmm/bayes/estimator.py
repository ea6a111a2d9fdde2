"""``BayesianGaussianMixture``: the posterior of a Gaussian mixture by NUTS (or SVI).

The estimator over :mod:`bayesgmm.bayes.model` (the NumPyro model, its priors
in :mod:`bayesgmm.bayes.priors`): it validates (:mod:`bayesgmm.bayes.validation`),
and :mod:`bayesgmm.bayes.fitting` fits, by :mod:`bayesgmm.bayes.nuts` (chains started by
:mod:`bayesgmm.bayes.chain_start`, relabelled by :mod:`bayesgmm.bayes.relabel`)
or :mod:`bayesgmm.bayes.svi` (stochastic variational inference with
subsampling); the ArviZ side lives in :mod:`bayesgmm.bayes.diagnostics`, the
replicated data and imputations in :mod:`bayesgmm.bayes.replicates`.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Self

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import logsumexp
from sklearn.base import BaseEstimator, DensityMixin
from sklearn.exceptions import NotFittedError
from sklearn.utils import check_random_state

from bayesgmm import _validation as v
from bayesgmm import structures
from bayesgmm.bayes import diagnostics, fitting, posterior, replicates, svi, validation
from bayesgmm.bayes.priors import DEFAULT_LKJ_CONCENTRATION
from bayesgmm.mixture import parameters

if TYPE_CHECKING:
    import arviz as az
    import pandas as pd
    import xarray as xr


class BayesianGaussianMixture(DensityMixin, BaseEstimator):
    """Gaussian mixture whose parameters are sampled from their posterior by NUTS (or SVI).

    The same surface as :class:`bayesgmm.GaussianMixture` where it makes sense
    (``fit``, ``predict``, ``predict_proba``, ``score_samples``, ``score``,
    ``sample``, the same validation and error messages), with the posterior
    uncertainty on top: the spread of each point's cluster probabilities, the
    posterior predictive density, and an ArviZ ``InferenceData`` of the run.

    The model is :func:`bayesgmm.bayes.model.gmm_model` (Dirichlet weights, normal
    means around the data centre, log-normal scales, LKJ correlations, the
    assignments summed out). Chains start from an EM fit, each moved by about
    one posterior standard deviation, and the draws are relabelled to a common
    labelling (Stephens' method with Hungarian assignment) before anything is
    summarised; the raw draws are kept in ``raw_inference_data_``.

    **EM, SVI or NUTS, by data size** (measured on 2 CPU cores for D = 10,
    K = 8, full covariances, first fit with compilation; see
    ``benchmarks/RESULTS_SCALE.md``):

    * EM (:class:`bayesgmm.GaussianMixture`) at any size when a point
      estimate is enough: 2 s at N = 10^3 to 10^4, 4 s at N = 10^6.
    * NUTS (``inference='nuts'``, the default) up to about N = 10^4, for the
      posterior itself with r_hat/ESS diagnostics: 38 s at N = 10^3, 261 s at
      N = 10^4; the cost grows in proportion to N (every leapfrog step passes
      over all points).
    * SVI (``inference='svi'``) from about N = 10^4 on: 16 to 30 s at any N
      from 10^3 to 10^6 (2 to 4 s for a refit), as each step sees a
      subsample. It matched NUTS at N = 10^4 (posterior sds within 3 %, means
      within 0.3 sd) in a twelfth of the time, and EM's predictive density
      at N = 10^6; but it is an approximation without r_hat/ESS that can
      understate the spread of correlated parameters.
    * Small data (N ~ 10^3) gain most from the posterior: NUTS and SVI beat
      EM's held-out log density by 0.08 to 0.09 nats per point there.

    Both Bayesian fits start from one EM fit and stay in its mode: if EM lands
    in a local optimum, so do they (compare ``score`` with
    ``GaussianMixture(n_init=5)``, or refit with another ``random_state``).

    Parameters
    ----------
    n_components : int, default=1
        Number of mixture components K. NUTS fits carry up to a multiple of
        8 components, the extra ones with weight exactly zero and never moved
        by the sampler (the posterior and the sampler's dynamics are those of
        K components; all results have K components), so that fits of one
        covariance type with K = 1..8 reuse one compiled sampler: a sweep
        over K compiles once. Longer runs (``n_samples * 8 * D**2`` for
        'full', ``n_samples * 8 * D`` for the others, times ``num_chains *
        (num_warmup + num_samples)``, above 2**25: with the defaults, about
        260 points in 2-D 'full'; see
        :func:`bayesgmm.bayes.chain_start.component_bucket`) keep K exactly,
        as sampling the padding would cost more than a compilation.
        Likewise the rows: NUTS fits of up to 4096 points carry them
        padded to a bucket (:func:`bayesgmm.bayes.nuts.row_bucket`: at
        least 64 rows, then steps of at most 12.5 %) with weight exactly
        zero, so that refits on other ``n_samples`` of the bucket reuse the
        compiled sampler; everything reported is about the real rows.
    covariance_type : {'full', 'tied', 'diag', 'spherical'}, default='full'
        As in :class:`bayesgmm.GaussianMixture`.
        mclust's names 'VVV', 'EEE', 'VVI' and 'VII' name the same four.
    weight_concentration : float, default=1.0
        Concentration of the symmetric Dirichlet prior on the weights. A
        small value (e.g. ``1 / n_components``) lets an over-fitted mixture
        empty its spare components.
    mean_prior : array-like of shape (n_features,), default=None
        Centre of the normal prior on the means; the (weighted) data mean
        if None.
    mean_prior_scale : float or array-like of shape (n_features,), default=None
        Standard deviation of that prior; twice the data's standard deviation
        per feature if None.
    scale_prior : float or array-like of shape (n_features,), default=None
        Median of the log-normal prior (log-sd 1) on the component standard
        deviations; half the data's standard deviation per feature if None.
    lkj_concentration : float, default=2.0
        LKJ prior concentration of the correlations ('full' and 'tied'); 1 is
        uniform over correlation matrices, larger values favour weak ones.
    num_warmup : int, default=500
        Warm-up (adaptation) iterations per chain, discarded.
    num_samples : int, default=500
        Draws kept per chain.
    num_chains : int, default=4
    chain_method : {'auto', 'parallel', 'vectorized', 'sequential'}, default='auto'
        'auto' runs chains in parallel when there is one device per chain,
        else vectorised on an accelerator and sequentially on the CPU.
    init : {'em', 'prior'}, default='em'
        'em' starts the chains near an EM fit (short warm-up, chains in the
        main mode) and uses it as the first relabelling reference; 'prior'
        starts each chain at a draw from the prior. With ``inference='svi'``
        the guide starts at the EM fit of a random subset of at most 100,000
        points, with the EM fit's approximate posterior standard deviations. If EM fails (a singular
        covariance), 'em' falls back to 'prior' with a warning.
    init_spread : float, default=1.0
        How far (in approximate posterior standard deviations) the chains
        start from the EM fit; r_hat needs chains that do not start at the
        same point.
    target_accept_prob : float, default=0.8
        NUTS step-size adaptation target; raise it (e.g. 0.95) to remove
        divergences.
    max_tree_depth : int, default=10
    inference : {'nuts', 'svi'}, default='nuts'
        'nuts' samples the posterior with NUTS (exact up to Monte Carlo
        error, with r_hat/ESS diagnostics; every step passes over all the
        data). 'svi' fits a Gaussian approximation of the posterior on the
        unconstrained parameters by stochastic variational inference, each
        step on a random subsample of the data, then takes ``svi_num_draws``
        draws from it (see :mod:`bayesgmm.bayes.svi`); ``num_warmup``,
        ``num_samples``, ``num_chains``, ``chain_method``, ``init_spread``,
        ``target_accept_prob`` and ``max_tree_depth`` are then unused. SVI
        draws come from one approximation, not from Markov chains: r_hat and
        ESS do not apply (``summary`` reports mean, sd and HDI only), and the
        approximation tends to understate the posterior spread.
    svi_steps : int, default=2000
        Optimisation steps of SVI.
    svi_subsample_size : int, default=None
        Points per SVI step (the log-likelihood is scaled by
        ``n_samples / svi_subsample_size``); None means
        ``min(n_samples, 2048)``. Larger subsamples lower the noise of each
        step at a proportional cost per step.
    svi_learning_rate : float, default=0.005
        Adam's initial step size, decayed exponentially to 1 % of it over the
        run. With ``init='prior'`` the guide starts far from the posterior and
        needs a larger value (e.g. 0.05) and more steps.
    guide : {'normal', 'lowrank'}, default='normal'
        'normal': independent normals on the unconstrained parameters
        (``AutoNormal``); 'lowrank': a multivariate normal with low-rank plus
        diagonal covariance (``AutoLowRankMultivariateNormal``), which can
        represent correlations between parameters.
    svi_num_draws : int, default=1000
        Draws taken from the fitted guide; they play the part of the NUTS
        draws in every prediction (one "chain").
    posterior_predictive : bool, default=False
        Add one replicated data set per draw to ``inference_data_`` (memory
        ``num_chains * num_samples * n_samples * n_features``); a fitted
        model gets it from :meth:`sample_posterior_predictive`.
    reg_covar : float, default=1e-6
        Regularisation of the EM fit that starts the chains.
    random_state : int, RandomState instance or None, default=None
        Seeds EM, the chains and :meth:`sample`.
    progress_bar : bool, default=True
        Shown only on a terminal and never when the ``CI`` environment
        variable is set.
    dtype : {None, 'float64', 'float32'}, default=None
        The precision of the fit and its predictions. None follows the data,
        as scikit-learn does: float32 for float32 arrays, float64 for
        everything else. float64 is computed in JAX's x64 mode inside a
        scoped context; the global JAX setting is never changed.
    missing : {'raise', 'marginalize'}, default='raise'
        What NaN entries of ``X`` mean. 'raise' refuses them. 'marginalize'
        treats them as values missing at random: each row's likelihood is
        its mixture density on its observed coordinates (the assignments and
        the missing values both integrated out), so NUTS and SVI sample the
        posterior given the observed entries; the EM start, the default
        priors and the relabelling use the observed entries too.
        :meth:`predict_proba` (and its intervals), :meth:`score_samples` and
        ``log_likelihood`` (for ``az.loo``) use the marginal on each row's
        observed coordinates, and :meth:`impute_draws` draws the missing
        values from their posterior. A row with every value missing is
        refused unless its ``sample_weight`` is 0 (it is then left out); a
        column with no observed value is refused. Complete data give the
        same fit as 'raise'.

    Attributes
    ----------
    inference_data_ : arviz.InferenceData
        The relabelled run: ``posterior`` (the free quantities ``weights``,
        ``means``, ``scales``, ``correlations`` and the derived
        ``covariances``; dimension ``component``),
        ``sample_stats``, ``log_likelihood``, ``observed_data`` (and
        ``posterior_predictive``, which ``az.plot_ppc`` needs, from
        :meth:`sample_posterior_predictive`); see :mod:`bayesgmm.bayes.diagnostics`.
        ``az.summary``, ``az.plot_trace``, ``az.loo`` and ``az.compare`` take
        it directly. For SVI: one chain of ``svi_num_draws`` draws, no
        ``sample_stats``, and ``log_likelihood`` only while
        ``svi_num_draws * n_samples <= 2**24`` (beyond, its memory and the
        time to evaluate it outgrow the fit; evaluate
        ``bayesgmm.bayes.posterior.pointwise_log_likelihood`` on a subset
        instead); ``posterior.attrs`` records ``inference='svi'``, the
        settings and the loss history.
    raw_inference_data_ : arviz.InferenceData
        The posterior before relabelling.
    relabel_permutations_ : ndarray of shape (num_chains, num_samples, n_components)
        (1, svi_num_draws, n_components) for SVI.
        ``relabelled[..., i] = raw[..., relabel_permutations_[..., i]]``.
    posterior_params_ : GMMParams
        The relabelled draws, chains merged: ``weights`` (n_draws, K),
        ``means`` (n_draws, K, D), ``covariances`` and ``precisions_cholesky``
        in scikit-learn's shapes with a leading (n_draws,) axis.
    weights_, means_, covariances_ : ndarray
        Posterior means, in the shapes of :class:`bayesgmm.GaussianMixture`.
    em_params_ : GMMParams or None
        The EM fit that started the chains.
    chain_method_ : str or None
        The chain method used (None for SVI).
    losses_ : ndarray of shape (svi_steps,)
        SVI only: the loss (negative ELBO, estimated on each step's
        subsample) of every step; also in
        ``inference_data_.posterior.attrs['loss']``. It should have levelled
        off; a ``bayesgmm.bayes.svi.SVIConvergenceWarning`` says when it had not.
    guide_params_ : dict of ndarray
        SVI only: the fitted guide's parameters (constrained), e.g.
        ``means_auto_loc`` of shape (n_components, n_features).
    n_features_in_ : int

    Examples
    --------
    >>> from bayesgmm import BayesianGaussianMixture
    >>> from bayesgmm.datasets import document_data
    >>> XA, XB, yA, yB = document_data()
    >>> bgm = BayesianGaussianMixture(2, random_state=0).fit(XA)  # doctest: +SKIP
    >>> proba = bgm.predict_proba(XB)  # doctest: +SKIP
    >>> lower, upper = bgm.predict_proba_interval(XB, prob=0.9)  # doctest: +SKIP
    """

    def __init__(
        self,
        n_components=1,
        *,
        covariance_type="full",
        weight_concentration=1.0,
        mean_prior=None,
        mean_prior_scale=None,
        scale_prior=None,
        lkj_concentration=DEFAULT_LKJ_CONCENTRATION,
        num_warmup=500,
        num_samples=500,
        num_chains=4,
        chain_method="auto",
        init="em",
        init_spread=1.0,
        target_accept_prob=0.8,
        max_tree_depth=10,
        inference="nuts",
        svi_steps=2000,
        svi_subsample_size=None,
        svi_learning_rate=0.005,
        guide="normal",
        svi_num_draws=1000,
        posterior_predictive=False,
        reg_covar=1e-6,
        random_state=None,
        progress_bar=True,
        dtype=None,
        missing="raise",
    ):
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.weight_concentration = weight_concentration
        self.mean_prior = mean_prior
        self.mean_prior_scale = mean_prior_scale
        self.scale_prior = scale_prior
        self.lkj_concentration = lkj_concentration
        self.num_warmup = num_warmup
        self.num_samples = num_samples
        self.num_chains = num_chains
        self.chain_method = chain_method
        self.init = init
        self.init_spread = init_spread
        self.target_accept_prob = target_accept_prob
        self.max_tree_depth = max_tree_depth
        self.inference = inference
        self.svi_steps = svi_steps
        self.svi_subsample_size = svi_subsample_size
        self.svi_learning_rate = svi_learning_rate
        self.guide = guide
        self.svi_num_draws = svi_num_draws
        self.posterior_predictive = posterior_predictive
        self.reg_covar = reg_covar
        self.random_state = random_state
        self.progress_bar = progress_bar
        self.dtype = dtype
        self.missing = missing

    # ------------------------------------------------------------ validation

    def _structure_name(self) -> str:
        """The name of the structure's table entry ('full' for 'VVV'): what the model is given."""
        return structures.get(self.covariance_type).name

    def _check_params(self) -> np.dtype:
        """Validate the constructor arguments (before any data is looked at)."""
        return validation.check_params(self)

    def _check_data(self, X, sample_weight, dtype):
        return validation.check_data(self, X, sample_weight, dtype)

    # ------------------------------------------------------------------- fit

    def fit(self, X: ArrayLike, y: object = None, sample_weight: ArrayLike | None = None) -> Self:
        """Sample the posterior of the mixture parameters given ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : Ignored
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative weights multiplying each point's log-likelihood.

        Returns
        -------
        self : BayesianGaussianMixture

        Warns
        -----
        bayesgmm.bayes.diagnostics.SamplingWarning
            Divergences, r_hat above 1.01 or a low effective sample size, with
            what to change.
        bayesgmm.bayes.svi.SVIConvergenceWarning
            With ``inference='svi'``, when the loss has not levelled off.
        """
        self._check_params()
        dtype = v.data_dtype(self.dtype, X)
        v.check_feature_names(self, X, reset=True)
        X, weights, prior = self._check_data(X, sample_weight, dtype)
        fit = fitting.fit_svi if self.inference == "svi" else fitting.fit_nuts
        result = fit(self, X, weights, prior, dtype)
        self.inference_data_ = result.inference_data
        self.raw_inference_data_ = result.raw_inference_data
        self.relabel_permutations_ = result.relabel_permutations
        self.posterior_params_ = params = result.posterior_params
        self.weights_ = params.weights.mean(axis=0)
        self.means_ = params.means.mean(axis=0)
        self.covariances_ = params.covariances.mean(axis=0)
        self.em_params_ = result.em_params
        self.chain_method_ = result.chain_method
        self.n_features_in_ = X.shape[1]
        if self.posterior_predictive:
            self.sample_posterior_predictive()
        if self.inference == "nuts":
            diagnostics.warn_sampling_problems(self.inference_data_)
            return self
        self.losses_, self.guide_params_ = result.losses, result.guide_params
        problem = svi.convergence_problem(result.losses)
        if problem is not None:
            warnings.warn(problem, svi.SVIConvergenceWarning, stacklevel=2)
        return self

    # ------------------------------------------------------------- prediction

    def __sklearn_is_fitted__(self):
        return hasattr(self, "posterior_params_")

    def _check_X(self, X):
        return validation.check_X(self, X)

    def _on_draws(self, function, X):
        """Evaluate ``function(X, posterior_params_, covariance_type)`` in the fit's precision."""
        X = self._check_X(X)
        with parameters.precision_scope(X.dtype):
            return function(X, self.posterior_params_, self._structure_name())

    def predict_proba(
        self, X: ArrayLike, return_std: bool = False
    ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Posterior mean of each point's responsibilities.

        ``E[p(z_n = k | x_n, theta)]`` over the posterior of ``theta``; the
        spread over draws says how sure the model is of that probability.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        return_std : bool, default=False
            Also return the posterior standard deviation.

        Returns
        -------
        proba : ndarray of shape (n_samples, n_components)
        std : ndarray of shape (n_samples, n_components)
            Only when ``return_std`` is True.
        """
        mean, std = self._on_draws(posterior.responsibility_moments, X)
        return (mean, std) if return_std else mean

    def predict_proba_draws(self, X: ArrayLike) -> np.ndarray:
        """The responsibilities under every posterior draw.

        Returns
        -------
        proba : ndarray of shape (n_draws, n_samples, n_components)
            ``n_draws = num_chains * num_samples``; memory grows with
            ``n_draws * n_samples``.
        """
        return np.exp(self._on_draws(posterior.log_responsibilities, X))

    def predict_proba_interval(self, X: ArrayLike, prob: float = 0.9) -> tuple[np.ndarray, np.ndarray]:
        """Equal-tailed credible interval of each point's responsibilities.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        prob : float, default=0.9
            Posterior mass inside the interval.

        Returns
        -------
        lower, upper : ndarray of shape (n_samples, n_components)
        """
        prob = v.check_nonnegative_float("prob", prob, strict=True)
        if prob >= 1:
            raise ValueError(f"Invalid value for 'prob': {prob!r}. It must be in (0, 1).")
        draws = self.predict_proba_draws(X)
        tail = (1.0 - prob) / 2.0
        lower, upper = np.quantile(draws, [tail, 1.0 - tail], axis=0)
        return lower, upper

    def predict(self, X: ArrayLike) -> np.ndarray:
        """The component of highest posterior mean responsibility for each point.

        Returns
        -------
        labels : ndarray of shape (n_samples,)
        """
        return np.argmax(self.predict_proba(X), axis=1)

    def fit_predict(self, X: ArrayLike, y: object = None,
                    sample_weight: ArrayLike | None = None) -> np.ndarray:
        """Fit, then return the labels of ``X``.

        Returns
        -------
        labels : ndarray of shape (n_samples,)
        """
        return self.fit(X, sample_weight=sample_weight).predict(X)

    def score_samples(self, X: ArrayLike) -> np.ndarray:
        """Log posterior predictive density of each point.

        ``log((1/S) sum_s p(x | theta_s))``, the log of the mixture density
        averaged over the S posterior draws.

        Returns
        -------
        log_density : ndarray of shape (n_samples,)
        """
        log_likelihood = self._on_draws(posterior.pointwise_log_likelihood, X)
        n_draws = log_likelihood.shape[0]
        return logsumexp(log_likelihood, axis=0) - np.log(n_draws)

    def score(self, X: ArrayLike, y: object = None, sample_weight: ArrayLike | None = None) -> float:
        """(Weighted) mean log posterior predictive density of ``X``.

        Returns
        -------
        log_density : float
        """
        from bayesgmm.metrics import mean_log_predictive_density

        return mean_log_predictive_density(self, X, sample_weight)

    def sample(self, n_samples: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """Draw points from the posterior predictive distribution.

        Each point takes a posterior draw at random, a component by that
        draw's weights, and a Gaussian draw from that component.

        Parameters
        ----------
        n_samples : int, default=1

        Returns
        -------
        X : ndarray of shape (n_samples, n_features)
        y : ndarray of shape (n_samples,)
            The (relabelled) component of each point.
        """
        if not hasattr(self, "posterior_params_"):
            raise NotFittedError(v.NOT_FITTED_MESSAGE.format(name=type(self).__name__))
        n_samples = v.check_int("n_samples", n_samples, 1)
        return posterior.sample_predictive_points(
            check_random_state(self.random_state), self.posterior_params_, n_samples,
            self._structure_name(),
        )

    def sample_posterior_predictive(
        self, random_state: int | np.random.RandomState | None = None
    ) -> az.InferenceData:
        """Add replicated data to ``inference_data_``, for posterior predictive checks.

        One replicated data set per posterior draw, of the size of the
        training data: each draw's mixture samples ``n_samples`` points. They
        become the ``posterior_predictive`` group of ``inference_data_`` (one
        already there is replaced), which ``az.plot_ppc`` compares with
        ``observed_data``. Fitting with ``posterior_predictive=True`` calls
        this method at the end of ``fit``.

        Parameters
        ----------
        random_state : int, RandomState instance or None, default=None
            Seeds the replicates; None takes the estimator's ``random_state``
            (as :meth:`sample` does), so a fit with an integer
            ``random_state`` always gets the same replicates.

        Returns
        -------
        inference_data : arviz.InferenceData
            ``inference_data_``, with ``posterior_predictive``: ``x`` of shape
            (num_chains, num_samples, n_samples, n_features), dims
            (``chain``, ``draw``, ``observation``, ``feature``); memory
            ``num_chains * num_samples * n_samples * n_features`` values.

        Examples
        --------
        >>> az.plot_ppc(model.sample_posterior_predictive(), var_names=["x"])  # doctest: +SKIP
        """
        if not hasattr(self, "posterior_params_"):
            raise NotFittedError(v.NOT_FITTED_MESSAGE.format(name=type(self).__name__))
        return replicates.sample_posterior_predictive(self, random_state)

    def impute_draws(self, X: ArrayLike | None = None,
                     random_state: int | np.random.RandomState | None = None) -> xr.DataArray:
        """Posterior multiple imputation: for each posterior draw, a draw of the missing values.

        For draw ``s`` of the parameters, each row's component is drawn from
        its responsibilities on its observed coordinates, then its missing
        values from that component's conditional Gaussian given the observed
        ones (:func:`bayesgmm.bayes.posterior.imputation_draws`); the spread
        of the imputations over draws carries the uncertainty of the
        parameters as well as that of the values.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), optional
            Data with NaN marking missing values; default: the training data
            (``inference_data_.observed_data``).
        random_state : int, RandomState instance or None, default=None
            None takes the estimator's ``random_state``.

        Returns
        -------
        imputations : xarray.DataArray
            Named ``x``, dims (``chain``, ``draw``, ``observation``,
            ``feature``), shape (num_chains, num_samples, n_samples,
            n_features): completed copies of ``X`` (observed entries equal in
            every draw). ``imputations.mean(("chain", "draw"))`` is the
            posterior mean imputation.
        """
        if not hasattr(self, "posterior_params_"):
            raise NotFittedError(v.NOT_FITTED_MESSAGE.format(name=type(self).__name__))
        return replicates.impute_draws(self, X, random_state)

    def save(self, path: str | os.PathLike) -> None:
        """Save the fitted model as a netCDF file that ``arviz.from_netcdf`` also reads.

        Load it back with :func:`bayesgmm.load`.
        """
        from bayesgmm._archive_netcdf import write_bayesian

        write_bayesian(self, path)

    def summary(
        self, var_names: Sequence[str] = ("weights", "means", "covariances"), **kwargs: Any
    ) -> pd.DataFrame:
        """ArviZ summary of the relabelled posterior.

        For an SVI fit (``inference='svi'``) the summary defaults to
        ``kind='stats'`` (mean, sd, HDI): its draws come from the fitted
        guide, not from Markov chains, so r_hat and ESS do not apply.

        Parameters
        ----------
        var_names : sequence of str, default=('weights', 'means', 'covariances')
            Posterior variables to summarise (``None`` for all, including
            ``scales`` and ``correlations``).
        **kwargs
            Passed to :func:`arviz.summary` (e.g. ``hdi_prob``, ``kind``).

        Returns
        -------
        pandas.DataFrame
        """
        if not hasattr(self, "inference_data_"):
            raise NotFittedError(v.NOT_FITTED_MESSAGE.format(name=type(self).__name__))
        return diagnostics.summary(self.inference_data_, var_names, **kwargs)

