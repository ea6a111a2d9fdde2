"""The Bayesian Gaussian mixture as a plain NumPyro model function.

:func:`gmm_model` can be handed to ``numpyro.infer.MCMC`` (or SVI) directly;
:class:`bayesgmm.BayesianGaussianMixture` runs it with NUTS. The discrete
assignments of points to components are summed out, so every latent site is
continuous and NUTS applies::

    weights            ~ Dirichlet(weight_concentration * 1_K)
    means[k]           ~ Normal(mean_prior_loc, mean_prior_scale)        (per dimension)
    scales[k]          ~ LogNormal(log(scale_prior_median), scale_prior_log_sd)
    corr_cholesky[k]   ~ LKJCholesky(D, lkj_concentration)               ('full', 'tied')
    x_n                ~ sum_k weights[k] N(means[k], Sigma_k)

with ``Sigma_k = diag(scales[k]) C_k diag(scales[k])`` and ``C_k =
corr_cholesky[k] @ corr_cholesky[k].T`` for 'full'; one shared ``scales``
(D,) and ``corr_cholesky`` (D, D) for 'tied'; ``Sigma_k = diag(scales[k]**2)``
for 'diag'; ``Sigma_k = scales[k]**2 I`` for 'spherical'.

Sites and their shapes (per draw):

=================  ==================  =============  ==============  =============
site               'full'              'tied'         'diag'          'spherical'
=================  ==================  =============  ==============  =============
``weights``        (K,)                (K,)           (K,)            (K,)
``means``          (K, D)              (K, D)         (K, D)          (K, D)
``scales``         (K, D)              (D,)           (K, D)          (K,)
``corr_cholesky``  (K, D, D)           (D, D)         --              --
``x``              (N, D) observed     same           same            same
=================  ==================  =============  ==============  =============

``corr_cholesky`` is absent when D == 1. Component-indexed sites are listed by
:func:`component_sites`; their component axis is the first per-draw axis.
Which covariance sites a covariance type has, their shapes and their mapping
to covariances are entries of the covariance-structure table
(:attr:`bayesgmm.structures.CovarianceStructure.covariance_sites`);
:data:`bayesgmm.bayes.priors.SITE_PRIORS` turns each kind of site into its
NumPyro prior.

The default priors, weakly informative and tied to the data, and each site
kind's prior are in :mod:`bayesgmm.bayes.priors`; the padded Dirichlet of the
weights is in :mod:`bayesgmm.bayes.padded_dirichlet`. Their names are also
importable from here.

Padded components
-----------------
Given ``n_active = K`` (a traced value), only the first K of the
``n_components = B`` entries of the component axis are in the mixture, so
that every K up to B shares one compiled program. The weights are the
deterministic site ``weights`` (B,) of the site ``weight_sticks`` (B - 1,),
Dirichlet on the first K and exactly zero beyond
(:mod:`bayesgmm.bayes.padded_dirichlet`). The other sites keep their shapes
with K replaced by B; the inactive components'
parameters follow their prior, independent of the data and of the active
ones. The joint density is therefore the unpadded model's density of the
active components times a density of the inactive coordinates alone: the
posterior of the active components is exactly that of the unpadded model of
K components. ``padding_density=False`` leaves the inactive part out of the
log joint (for reporting it; a sampler needs it).

``sample_weight`` multiplies each point's log-likelihood (through
``numpyro.handlers.scale``; zero weights through ``numpyro.handlers.mask``), as in the weighted EM of
:class:`bayesgmm.GaussianMixture`. The observations live in a plate named
``"obs"`` that takes ``subsample_size`` for stochastic variational inference.
"""

from __future__ import annotations

import contextlib
import functools

import jax
import jax.numpy as jnp
import numpyro
import numpyro.distributions as dist
from numpyro.distributions import constraints

from bayesgmm import structures
from bayesgmm.bayes import incomplete
from bayesgmm.bayes.padded_dirichlet import (
    PaddedDirichlet,
    padded_log_weights,
    padded_sticks,
)
from bayesgmm.bayes.priors import (
    DEFAULT_LKJ_CONCENTRATION,
    DEFAULT_SCALE_PRIOR_LOG_SD,
    SCALE_PRIOR_FRACTION,
    SITE_PRIORS,
    GMMPrior,
    default_prior,
)

__all__ = [
    "GMMPrior",
    "GaussianMixtureLikelihood",
    "PaddedDirichlet",
    "padded_log_weights",
    "padded_sticks",
    "gmm_model",
    "default_prior",
    "component_sites",
    "SITE_PRIORS",
    "precisions_cholesky_from_sites",
    "covariances_from_sites",
    "DEFAULT_LKJ_CONCENTRATION",
    "DEFAULT_SCALE_PRIOR_LOG_SD",
]


def component_sites(covariance_type: str, n_features: int) -> tuple[str, ...]:
    """Names of the sites whose first per-draw axis indexes the components.

    These are the sites a relabelling of the components must permute: the
    weights, the means and the covariance sites with a component axis (the
    'tied' covariance is shared and so is not among them).
    """
    covariance_sites = structures.get(covariance_type).covariance_sites(n_features)
    return ("weights", "means") + tuple(site.name for site in covariance_sites
                                        if site.component_axis)


def _sites(scales, corr_cholesky) -> dict:
    """The covariance sites as the table's functions take them (``None``: absent)."""
    return {"scales": scales, "corr_cholesky": corr_cholesky}


def precisions_cholesky_from_sites(scales, corr_cholesky, covariance_type: str):
    """Precision Cholesky factors (scikit-learn's convention) from the model's sites.

    With ``Sigma = diag(s) C diag(s)`` and ``C = Lc Lc^T`` the factor is
    ``P = diag(1/s) inv(Lc)^T`` (``P @ P.T = inv(Sigma)``); no matrix of size
    D x D is inverted in general form.

    Parameters
    ----------
    scales : Array
        (K, D) for 'full' and 'diag', (D,) for 'tied', (K,) for 'spherical';
        any leading batch axes are kept.
    corr_cholesky : Array or None
        (K, D, D) for 'full', (D, D) for 'tied'; ``None`` means the identity
        (D == 1, 'diag', 'spherical').
    covariance_type : {'full', 'tied', 'diag', 'spherical'}

    Returns
    -------
    precisions_cholesky : Array
        Shape per ``covariance_type`` as in :mod:`bayesgmm.gaussian`.
    """
    structure = structures.get(covariance_type)
    return structure.precisions_cholesky_from_sites(_sites(scales, corr_cholesky))


def covariances_from_sites(scales, corr_cholesky, covariance_type: str):
    """Covariances in scikit-learn's shapes from the model's sites.

    Returns
    -------
    covariances : Array
        (..., K, D, D) for 'full', (..., D, D) for 'tied', (..., K, D) for
        'diag', (..., K) for 'spherical'.
    """
    return structures.get(covariance_type).covariances_from_sites(_sites(scales, corr_cholesky))


class GaussianMixtureLikelihood(dist.Distribution):
    """A Gaussian mixture with the component assignment summed out.

    ``log p(x) = logsumexp_k(log weights[k] + log N(x | means[k], Sigma_k))``,
    computed with :func:`bayesgmm.gaussian.log_gaussian_prob` (one matrix
    product for all components) rather than K triangular solves.

    Parameters
    ----------
    weights : Array of shape (K,)
    means : Array of shape (K, D)
    precisions_cholesky : Array
        Shape per ``covariance_type`` (see :mod:`bayesgmm.gaussian`).
    covariance_type : {'full', 'tied', 'diag', 'spherical'}
    observed : ObservedPatterns, optional
        Each row's observed coordinates (:mod:`bayesgmm.bayes.incomplete`):
        the density of row ``n`` is then its marginal on those coordinates,
        and the distribution's batch shape is (N,), one entry per row.
        ``None``: every coordinate observed.
    """

    arg_constraints = {
        "weights": constraints.simplex,
        "means": constraints.real_matrix,
    }
    support = constraints.real_vector
    pytree_data_fields = ("weights", "means", "precisions_cholesky", "observed")
    pytree_aux_fields = ("covariance_type",)

    def __init__(self, weights, means, precisions_cholesky, covariance_type="full",
                 observed=None, *, validate_args=None):
        self.weights = weights
        self.means = means
        self.precisions_cholesky = precisions_cholesky
        self.covariance_type = covariance_type
        self.observed = observed
        batch_shape = () if observed is None else jnp.shape(observed.row_pattern)
        super().__init__(
            batch_shape=batch_shape, event_shape=means.shape[-1:], validate_args=validate_args
        )

    def component_log_prob(self, value):
        """``log weights[k] + log N(x | k)`` of shape (..., K); ``-inf`` where a weight is 0.

        With ``observed``, ``value`` is (N, D) and missing entries may hold anything.
        """
        flat = jnp.reshape(value, (-1, value.shape[-1]))
        log_prob = incomplete.log_weighted_prob(
            flat, self.weights, self.means, self.precisions_cholesky, self.covariance_type,
            self.observed,
        )
        return jnp.reshape(log_prob, value.shape[:-1] + log_prob.shape[-1:])

    def log_prob(self, value):
        """``log p(x)`` of shape ``value.shape[:-1]``."""
        return jax.nn.logsumexp(self.component_log_prob(value), axis=-1)

    def sample_with_intermediates(self, key, sample_shape=()):
        """Draws and their component labels."""
        label_key, noise_key = jax.random.split(key)
        labels = jax.random.categorical(label_key, jnp.log(self.weights), shape=sample_shape)
        noise = jax.random.normal(noise_key, sample_shape + self.event_shape, self.means.dtype)
        correlate = structures.get(self.covariance_type).correlate_noise
        return self.means[labels] + correlate(noise, labels, self.precisions_cholesky), [labels]

    def sample(self, key, sample_shape=()):
        """Draws of shape ``sample_shape + (D,)``."""
        return self.sample_with_intermediates(key, sample_shape)[0]


def _covariance_sites(structure, n_components, n_features, prior, log_sd,
                      lkj_concentration, padding) -> dict:
    """Sample the covariance sites of ``structure``; returns site name -> value.

    The shared sites first, then the component-indexed ones in one
    ``"component"`` plate (entering a plate draws a key under
    ``numpyro.handlers.seed``, so it is entered once), inside ``padding``,
    the context from :func:`_padding_mask`.
    """
    sites = structure.covariance_sites(n_features)
    values = {}

    def sample(site):
        distribution = SITE_PRIORS[site.kind](prior, n_features, log_sd, lkj_concentration)
        values[site.name] = numpyro.sample(site.name, distribution)

    for site in sites:
        if not site.component_axis:
            sample(site)
    per_component = [site for site in sites if site.component_axis]
    if per_component:
        with numpyro.plate("component", n_components, dim=-1), padding():
            for site in per_component:
                sample(site)
    return values


def gmm_model(
    X=None,
    sample_weight=None,
    *,
    n_components: int,
    covariance_type: str = "full",
    weight_concentration=1.0,
    mean_prior_loc=None,
    mean_prior_scale=None,
    scale_prior_median=None,
    scale_prior_log_sd=DEFAULT_SCALE_PRIOR_LOG_SD,
    lkj_concentration=DEFAULT_LKJ_CONCENTRATION,
    n_samples: int | None = None,
    n_features: int | None = None,
    subsample_size: int | None = None,
    n_active=None,
    padding_density=True,
    observed=None,
):
    """NumPyro model of a Gaussian mixture with the assignments marginalised.

    Parameters
    ----------
    X : Array of shape (n_samples, n_features), optional
        The observations. ``None`` samples them (prior or posterior
        predictive); then ``n_samples`` and ``n_features`` are required and
        the priors default to ``mean_prior_loc = 0``, ``mean_prior_scale = 1``,
        ``scale_prior_median = 0.5`` (standardised data).
    sample_weight : Array of shape (n_samples,), optional
        Non-negative weight multiplying each point's log-likelihood.
    n_components : int
        The number of components K.
    covariance_type : {'full', 'tied', 'diag', 'spherical'}, default='full'
    weight_concentration : float, default=1.0
        Concentration of the symmetric Dirichlet prior on the weights; values
        well below 1 (e.g. ``1 / K``) let an over-fitted mixture empty its
        spare components.
    mean_prior_loc, mean_prior_scale : array-like of shape (n_features,), optional
        Normal prior of every component mean (see the module docstring for
        the defaults).
    scale_prior_median : array-like of shape (n_features,), optional
        Median of the log-normal prior of the component standard deviations.
    scale_prior_log_sd : float, default=1.0
        Standard deviation of the log of the component standard deviations.
    lkj_concentration : float, default=2.0
        LKJ concentration of the correlation matrices ('full' and 'tied').
    n_samples, n_features : int, optional
        Sizes when ``X`` is None.
    subsample_size : int, optional
        Size of the random subsample of the ``"obs"`` plate per step (SVI);
        the log-likelihood is rescaled by ``n_samples / subsample_size``.
    n_active : int or integer Array of shape (), optional
        Pad the component axis: only the first ``n_active`` of the
        ``n_components`` components are in the mixture, the others have
        weight exactly zero and follow their prior (see "Padded components"
        in the module docstring). Pass it as data (a traced value), so that
        every ``n_active`` up to ``n_components`` shares one compiled program.
        ``None``: all components are active, with the Dirichlet site above.
    padding_density : bool or bool Array of shape (), default=True
        With ``n_active``: whether the inactive components' prior density
        counts in the log joint. Samplers need it (the inactive parameters
        must have a proper density); without it the log joint is the one of
        the unpadded model of ``n_active`` components (up to a constant).
    observed : ObservedPatterns, optional
        With values missing from ``X``: which coordinates each row has
        (:func:`bayesgmm.bayes.incomplete.observed_patterns` of the data with
        NaN; pass ``X`` with its missing entries filled by anything finite,
        e.g. :func:`bayesgmm.bayes.incomplete.filled`). Each row's likelihood
        is then its mixture density on its observed coordinates (the missing
        ones integrated out) and the default priors use the observed entries.

    Examples
    --------
    >>> from numpyro.infer import MCMC, NUTS
    >>> mcmc = MCMC(NUTS(gmm_model), num_warmup=200, num_samples=200)  # doctest: +SKIP
    >>> mcmc.run(jax.random.key(0), X, n_components=2)  # doctest: +SKIP
    """
    if X is not None:
        n_samples, n_features = X.shape
        prior = default_prior(
            jnp.asarray(X), None if sample_weight is None else jnp.asarray(sample_weight),
            mean_prior_loc=mean_prior_loc, mean_prior_scale=mean_prior_scale,
            scale_prior_median=scale_prior_median,
            observed=None if observed is None else jnp.asarray(observed.patterns)[observed.row_pattern],
        )
    else:
        if n_samples is None or n_features is None:
            raise ValueError("gmm_model needs n_samples and n_features when X is None.")
        dtype = jnp.result_type(float)
        prior = GMMPrior(*(
            jnp.broadcast_to(jnp.asarray(default if value is None else value, dtype), (n_features,))
            for value, default in ((mean_prior_loc, 0.0), (mean_prior_scale, 1.0),
                                   (scale_prior_median, SCALE_PRIOR_FRACTION))
        ))
    dtype = prior.mean_loc.dtype
    if n_active is None:
        weights = numpyro.sample(
            "weights", dist.Dirichlet(jnp.full((n_components,), weight_concentration, dtype))
        )
    else:
        sticks = numpyro.sample("weight_sticks", PaddedDirichlet(
            jnp.asarray(weight_concentration, dtype), n_active, n_components, padding_density))
        weights = numpyro.deterministic("weights", jnp.exp(padded_log_weights(sticks, n_active)))
    padding = functools.partial(_padding_mask, n_active, n_components, padding_density)
    with numpyro.plate("component", n_components, dim=-1), padding():
        means = numpyro.sample(
            "means", dist.Normal(prior.mean_loc, prior.mean_scale).to_event(1)
        )
    structure = structures.get(covariance_type)
    covariance_sites = _covariance_sites(
        structure, n_components, n_features, prior, scale_prior_log_sd,
        lkj_concentration, padding,
    )
    precisions_cholesky = structure.precisions_cholesky_from_sites(covariance_sites)
    with numpyro.plate("obs", n_samples, subsample_size=subsample_size, dim=-1):
        batch = None if X is None else numpyro.subsample(X, event_dim=1)
        rows = None if observed is None else incomplete.ObservedPatterns(
            observed.patterns, numpyro.subsample(observed.row_pattern, event_dim=0))
        likelihood = GaussianMixtureLikelihood(
            weights, means, precisions_cholesky, covariance_type, rows)
        with _weighting(sample_weight):
            numpyro.sample("x", likelihood, obs=batch)


def _padding_mask(n_active, n_components, padding_density):
    """Inside the component plate: drop the inactive components' prior density when asked."""
    if n_active is None or padding_density is True:
        return contextlib.nullcontext()
    return numpyro.handlers.mask(mask=(jnp.arange(n_components) < n_active) | padding_density)


def _weighting(sample_weight):
    """Multiply each point's log-likelihood by its weight (inside the "obs" plate).

    Zero weights are masked out rather than scaled by zero, which NumPyro's
    ``scale`` handler rejects.
    """
    if sample_weight is None:
        return contextlib.nullcontext()
    weight = numpyro.subsample(sample_weight, event_dim=0)
    stack = contextlib.ExitStack()
    stack.enter_context(numpyro.handlers.mask(mask=weight > 0))
    stack.enter_context(numpyro.handlers.scale(scale=jnp.where(weight > 0, weight, 1.0)))
    return stack

