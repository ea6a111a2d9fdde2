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
(:attr:`bayesgmm.structures.CovarianceStructure.covariance_sites`); this
module turns each kind of site into its NumPyro prior.

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

Padded components
-----------------
Given ``n_active = K`` (a traced value), the component axis has
``n_components = B >= K`` entries of which only the first K are in the
mixture, so that every K up to B shares one compiled program. The weights
are then the deterministic site ``weights`` (B,), computed from the site
``weight_sticks`` (B - 1,) of :class:`PaddedDirichlet`: the first K are
``Dirichlet(weight_concentration * 1_K)``, in the very coordinates NumPyro
gives a Dirichlet site of size K, and the other B - K are exactly zero. The
other sites keep their shapes with K replaced by B; the inactive components'
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
import math
import types
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from jax import lax
from jax.scipy.special import gammaln
from numpyro.distributions import constraints

from bayesgmm import gaussian, structures

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
]

MEAN_PRIOR_SPREAD = 2.0  # mean_prior_scale = 2 * data std
SCALE_PRIOR_FRACTION = 0.5  # scale_prior_median = data std / 2
DEFAULT_SCALE_PRIOR_LOG_SD = 1.0
DEFAULT_LKJ_CONCENTRATION = 2.0


class GMMPrior(NamedTuple):
    """Hyperparameters of :func:`gmm_model` that depend on the data scale."""

    mean_loc: np.ndarray  # (n_features,)
    mean_scale: np.ndarray  # (n_features,)
    scale_median: np.ndarray  # (n_features,)


def _weighted_moments(X, sample_weight):
    """Weighted mean and standard deviation per column; works in NumPy and JAX."""
    xp = jnp if isinstance(X, jax.Array) else np
    if sample_weight is None:
        sample_weight = xp.ones(X.shape[0], dtype=X.dtype)
    total = xp.sum(sample_weight)
    mean = xp.sum(sample_weight[:, None] * X, axis=0) / total
    variance = xp.sum(sample_weight[:, None] * (X - mean) ** 2, axis=0) / total
    # A constant column would give a zero-width prior; fall back to unit scale.
    std = xp.where(variance > 0, xp.sqrt(xp.where(variance > 0, variance, 1.0)), 1.0)
    return mean, std


def default_prior(X, sample_weight=None, *, mean_prior_loc=None, mean_prior_scale=None,
                  scale_prior_median=None) -> GMMPrior:
    """The data-dependent default hyperparameters, with any given value kept.

    Parameters
    ----------
    X : array of shape (n_samples, n_features)
    sample_weight : array of shape (n_samples,), optional
    mean_prior_loc, mean_prior_scale, scale_prior_median : array-like, optional
        Broadcastable to (n_features,); ``None`` takes the default described
        in the module docstring.

    Returns
    -------
    GMMPrior
        Arrays of shape (n_features,) (NumPy for NumPy input, JAX otherwise).
    """
    mean, std = _weighted_moments(X, sample_weight)
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
    """

    arg_constraints = {
        "weights": constraints.simplex,
        "means": constraints.real_matrix,
    }
    support = constraints.real_vector
    pytree_data_fields = ("weights", "means", "precisions_cholesky")
    pytree_aux_fields = ("covariance_type",)

    def __init__(self, weights, means, precisions_cholesky, covariance_type="full",
                 *, validate_args=None):
        self.weights = weights
        self.means = means
        self.precisions_cholesky = precisions_cholesky
        self.covariance_type = covariance_type
        super().__init__(
            batch_shape=(), event_shape=means.shape[-1:], validate_args=validate_args
        )

    def component_log_prob(self, value):
        """``log weights[k] + log N(x | k)`` of shape (..., K); ``-inf`` where a weight is 0."""
        flat = jnp.reshape(value, (-1, value.shape[-1]))
        log_prob = gaussian.log_weighted_prob(
            flat, self.weights, self.means, self.precisions_cholesky, self.covariance_type
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


def padded_log_weights(sticks, n_active):
    """Log weights of the first ``n_active`` of ``B`` components from stick-breaking coordinates.

    NumPyro's stick-breaking map (the unconstrained space of a Dirichlet
    site) applied to the first ``K - 1 = n_active - 1`` coordinates: with
    ``x_i = sticks[i] - log(K - 1 - i)`` the stick fractions are
    ``sigmoid(x_i)``, component ``i < K - 1`` takes its fraction of what is
    left and component ``K - 1`` the rest. Computed in log space, so no
    weight rounds to zero or one before it is used.

    Parameters
    ----------
    sticks : Array of shape (..., B - 1)
        Coordinates ``K - 1`` and on are ignored.
    n_active : int or integer Array of shape ()
        ``K``, between 1 and ``B``; may be traced.

    Returns
    -------
    log_weights : Array of shape (..., B)
        ``-inf`` for the ``B - K`` inactive components.
    """
    n_sticks = sticks.shape[-1]
    index = jnp.arange(n_sticks)
    active_stick = index < n_active - 1
    x = sticks - jnp.log(jnp.where(active_stick, n_active - 1 - index, 1).astype(sticks.dtype))
    # log of the stick left before component k, and of the fraction k takes of it
    # (the last active component takes all of it).
    left = jnp.cumsum(jnp.where(active_stick, jax.nn.log_sigmoid(-x), 0.0), axis=-1)
    zero = jnp.zeros(sticks.shape[:-1] + (1,), sticks.dtype)
    before = jnp.concatenate([zero, left], axis=-1)
    taken = jnp.concatenate([jnp.where(active_stick, jax.nn.log_sigmoid(x), 0.0), zero], axis=-1)
    return jnp.where(jnp.arange(n_sticks + 1) < n_active, before + taken, -jnp.inf)


def padded_sticks(log_weights, n_active):
    """Inverse of :func:`padded_log_weights` on the active components.

    Parameters
    ----------
    log_weights : Array of shape (..., B)
        Log weights; the first ``n_active`` must sum (as weights) to one, the
        others are ignored.
    n_active : int or integer Array of shape ()

    Returns
    -------
    sticks : Array of shape (..., B - 1)
        Zero from coordinate ``n_active - 1`` on.
    """
    n_sticks = log_weights.shape[-1] - 1
    active = jnp.arange(n_sticks + 1) < n_active
    log_weights = jnp.where(active, log_weights, -jnp.inf)
    # log of the weight of the components after i: what stick i's fraction is taken against.
    after = lax.cumlogsumexp(log_weights, axis=log_weights.ndim - 1, reverse=True)[..., 1:]
    index = jnp.arange(n_sticks)
    active_stick = index < n_active - 1
    offset = jnp.log(jnp.where(active_stick, n_active - 1 - index, 1).astype(log_weights.dtype))
    sticks = log_weights[..., :-1] - jnp.where(active_stick, after, 0.0) + offset
    return jnp.where(active_stick, sticks, 0.0)


class PaddedDirichlet(dist.Distribution):
    """``Dirichlet(concentration 1_K)`` on the first K of B weights, in stick-breaking coordinates.

    The weights of a mixture whose component axis is padded to a bucket of
    ``B`` components with ``K`` active (:func:`gmm_model` with ``n_active``).
    The value is the unconstrained vector of a NumPyro Dirichlet site of
    size B (its support is the real line), mapped to the weights by
    :func:`padded_log_weights`. Its density is

    * on the first ``K - 1`` coordinates: exactly the density NumPyro gives a
      ``Dirichlet(concentration 1_K)`` site in its unconstrained space (the
      Dirichlet density of the weights times the Jacobian of the
      stick-breaking map), so NUTS sees today's unpadded geometry there;
    * on the other ``B - K`` coordinates, which no weight depends on:
      independent standard normal (they must have a proper density, or NUTS
      would drift along them without bound), or nothing when
      ``padding_density`` is False.

    Parameters
    ----------
    concentration : float or Array of shape ()
    n_active : int or integer Array of shape ()
        K, between 1 and ``n_components``; may be traced.
    n_components : int
        B, the size of the padded component axis (static).
    padding_density : bool or bool Array of shape (), default=True
        Whether the inactive coordinates' standard normal density counts.
    """

    arg_constraints = {"concentration": constraints.positive}
    support = constraints.real_vector
    pytree_data_fields = ("concentration", "n_active", "padding_density")

    def __init__(self, concentration, n_active, n_components: int, padding_density=True,
                 *, validate_args=None):
        self.concentration = concentration
        self.n_active = n_active
        self.padding_density = padding_density
        super().__init__(batch_shape=(), event_shape=(n_components - 1,),
                         validate_args=validate_args)

    def _active_sticks(self):
        return jnp.arange(self.event_shape[0]) < self.n_active - 1

    def sample(self, key, sample_shape=()):
        """Stick coordinates of Dirichlet weights; standard normal inactive coordinates."""
        gamma_key, noise_key = jax.random.split(key)
        n_components = self.event_shape[0] + 1
        concentration = jnp.asarray(self.concentration)
        dtype = concentration.dtype
        shape = sample_shape + (n_components,)
        log_gamma = jax.random.loggamma(gamma_key, concentration, shape, dtype)
        active = jnp.arange(n_components) < self.n_active
        log_gamma = jnp.where(active, log_gamma, -jnp.inf)
        log_weights = log_gamma - jax.nn.logsumexp(log_gamma, axis=-1, keepdims=True)
        noise = jax.random.normal(noise_key, sample_shape + self.event_shape, dtype)
        return jnp.where(self._active_sticks(), padded_sticks(log_weights, self.n_active), noise)

    def log_prob(self, value):
        """Log density of stick coordinates of shape (..., B - 1); shape ``value.shape[:-1]``."""
        active_stick = self._active_sticks()
        n_active = self.n_active
        concentration = jnp.asarray(self.concentration, value.dtype)
        log_weights = padded_log_weights(value, n_active)
        active = jnp.arange(value.shape[-1] + 1) < n_active
        used = jnp.where(active, log_weights, 0.0)
        dirichlet = (
            (concentration - 1.0) * jnp.sum(used, axis=-1)
            + gammaln(n_active * concentration) - n_active * gammaln(concentration)
        )
        # NumPyro's stick-breaking Jacobian: log w_i + log sigmoid(x_i) - x_i per stick.
        index = jnp.arange(value.shape[-1])
        x = value - jnp.log(jnp.where(active_stick, n_active - 1 - index, 1).astype(value.dtype))
        jacobian = jnp.sum(
            jnp.where(active_stick, used[..., :-1] + jax.nn.log_sigmoid(x) - x, 0.0), axis=-1
        )
        padding = jnp.sum(
            jnp.where(active_stick, 0.0, -0.5 * (value**2 + math.log(2.0 * math.pi))), axis=-1)
        return dirichlet + jacobian + jnp.where(self.padding_density, padding, 0.0)


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
    likelihood = GaussianMixtureLikelihood(
        weights, means, structure.precisions_cholesky_from_sites(covariance_sites),
        covariance_type,
    )
    with numpyro.plate("obs", n_samples, subsample_size=subsample_size, dim=-1):
        batch = None if X is None else numpyro.subsample(X, event_dim=1)
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

