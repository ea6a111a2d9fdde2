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

``sample_weight`` multiplies each point's log-likelihood (through
``numpyro.handlers.scale``; zero weights through ``numpyro.handlers.mask``), as in the weighted EM of
:class:`bayesgmm.GaussianMixture`. The observations live in a plate named
``"obs"`` that takes ``subsample_size`` for stochastic variational inference.
"""

from __future__ import annotations

import contextlib
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from jax.scipy.linalg import solve_triangular
from numpyro.distributions import constraints

from bayesgmm import gaussian

__all__ = [
    "GMMPrior",
    "GaussianMixtureLikelihood",
    "gmm_model",
    "default_prior",
    "component_sites",
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

    These are the sites a relabelling of the components must permute; the
    'tied' covariance is shared and so is not among them.
    """
    sites = ["weights", "means"]
    if covariance_type != "tied":
        sites.append("scales")
        if covariance_type == "full" and n_features > 1:
            sites.append("corr_cholesky")
    return tuple(sites)


def _inverse_lower_transpose(cholesky):
    """``inv(L).T`` for lower-triangular ``L`` of shape (..., D, D)."""
    identity = jnp.broadcast_to(jnp.eye(cholesky.shape[-1], dtype=cholesky.dtype), cholesky.shape)
    return jnp.swapaxes(solve_triangular(cholesky, identity, lower=True), -1, -2)


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
    if covariance_type in ("diag", "spherical"):
        return 1.0 / scales
    if corr_cholesky is None:
        return jnp.vectorize(jnp.diag, signature="(d)->(d,d)")(1.0 / scales)
    return _inverse_lower_transpose(corr_cholesky) / scales[..., :, None]


def covariances_from_sites(scales, corr_cholesky, covariance_type: str):
    """Covariances in scikit-learn's shapes from the model's sites.

    Returns
    -------
    covariances : Array
        (..., K, D, D) for 'full', (..., D, D) for 'tied', (..., K, D) for
        'diag', (..., K) for 'spherical'.
    """
    if covariance_type in ("diag", "spherical"):
        return scales**2
    if corr_cholesky is None:
        return jnp.vectorize(jnp.diag, signature="(d)->(d,d)")(scales**2)
    cholesky = scales[..., :, None] * corr_cholesky
    return cholesky @ jnp.swapaxes(cholesky, -1, -2)


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
        """``log weights[k] + log N(x | k)`` of shape (..., K)."""
        flat = jnp.reshape(value, (-1, value.shape[-1]))
        log_prob = gaussian.log_gaussian_prob(
            flat, self.means, self.precisions_cholesky, self.covariance_type
        ) + jnp.log(self.weights)
        return jnp.reshape(log_prob, value.shape[:-1] + log_prob.shape[-1:])

    def log_prob(self, value):
        """``log p(x)`` of shape ``value.shape[:-1]``."""
        return jax.nn.logsumexp(self.component_log_prob(value), axis=-1)

    def sample_with_intermediates(self, key, sample_shape=()):
        """Draws and their component labels."""
        label_key, noise_key = jax.random.split(key)
        labels = jax.random.categorical(label_key, jnp.log(self.weights), shape=sample_shape)
        noise = jax.random.normal(noise_key, sample_shape + self.event_shape, self.means.dtype)
        return self.means[labels] + _correlate(noise, labels, self.precisions_cholesky,
                                               self.covariance_type), [labels]

    def sample(self, key, sample_shape=()):
        """Draws of shape ``sample_shape + (D,)``."""
        return self.sample_with_intermediates(key, sample_shape)[0]


def _correlate(noise, labels, precisions_cholesky, covariance_type):
    """Map standard normal ``noise`` (..., D) to N(0, Sigma_label) via ``P^-T``.

    ``Sigma = inv(P P^T) = P^-T P^-1``, so ``P^-T z`` has covariance Sigma.
    """
    if covariance_type in ("diag", "spherical"):
        factor = precisions_cholesky[labels]
        return noise / (factor[..., None] if covariance_type == "spherical" else factor)
    factor = precisions_cholesky if covariance_type == "tied" else precisions_cholesky[labels]
    factor = jnp.broadcast_to(factor, noise.shape + noise.shape[-1:])
    return jnp.linalg.solve(jnp.swapaxes(factor, -1, -2), noise[..., None])[..., 0]


def _covariance_sites(covariance_type, n_components, n_features, prior, log_sd,
                      lkj_concentration):
    """The covariance sites for ``covariance_type``; returns (scales, corr_cholesky)."""
    corr_cholesky = None
    if covariance_type == "tied":
        scales = numpyro.sample(
            "scales", dist.LogNormal(jnp.log(prior.scale_median), log_sd).to_event(1)
        )
        if n_features > 1:
            corr_cholesky = numpyro.sample(
                "corr_cholesky", dist.LKJCholesky(n_features, lkj_concentration)
            )
        return scales, corr_cholesky
    with numpyro.plate("component", n_components, dim=-1):
        if covariance_type == "spherical":
            median = jnp.exp(jnp.mean(jnp.log(prior.scale_median)))
            scales = numpyro.sample("scales", dist.LogNormal(jnp.log(median), log_sd))
        else:
            scales = numpyro.sample(
                "scales", dist.LogNormal(jnp.log(prior.scale_median), log_sd).to_event(1)
            )
        if covariance_type == "full" and n_features > 1:
            corr_cholesky = numpyro.sample(
                "corr_cholesky", dist.LKJCholesky(n_features, lkj_concentration)
            )
    return scales, corr_cholesky


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
    weights = numpyro.sample(
        "weights", dist.Dirichlet(jnp.full((n_components,), weight_concentration, dtype))
    )
    with numpyro.plate("component", n_components, dim=-1):
        means = numpyro.sample(
            "means", dist.Normal(prior.mean_loc, prior.mean_scale).to_event(1)
        )
    scales, corr_cholesky = _covariance_sites(
        covariance_type, n_components, n_features, prior, scale_prior_log_sd,
        lkj_concentration,
    )
    likelihood = GaussianMixtureLikelihood(
        weights, means,
        precisions_cholesky_from_sites(scales, corr_cholesky, covariance_type),
        covariance_type,
    )
    with numpyro.plate("obs", n_samples, subsample_size=subsample_size, dim=-1):
        batch = None if X is None else numpyro.subsample(X, event_dim=1)
        with _weighting(sample_weight):
            numpyro.sample("x", likelihood, obs=batch)


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

