"""Padded components: a model of K components carried on a component axis of B >= K.

The NUTS sampler of :class:`bayesgmm.BayesianGaussianMixture` is compiled for
the bucket B, with K passed as data. These tests pin what makes that exact:
the padded model's potential (and its gradient) on the active coordinates is
the unpadded model's, inactive components have weight exactly zero and never
move, and what the estimator reports has K components only.
"""

import functools
import warnings

import arviz as az
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from numpyro import handlers
from numpyro.distributions.transforms import StickBreakingTransform
from numpyro.infer.util import potential_energy, unconstrain_fn

from bayesgmm import BayesianGaussianMixture, gaussian
from bayesgmm.bayes import chain_start, diagnostics, nuts, relabel
from bayesgmm.bayes.model import (
    DEFAULT_LKJ_CONCENTRATION,
    PaddedDirichlet,
    default_prior,
    gmm_model,
    padded_log_weights,
    padded_sticks,
)
from bayesgmm.datasets import make_mixture
from bayesgmm.mixture.parameters import precision_scope

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")


@pytest.fixture(scope="module")
def data():
    X, _, _ = make_mixture(
        200, [0.4, 0.6], [[0.0, 0.0], [4.0, 1.0]], [0.6, 1.2], "spherical", random_state=3,
    )
    return X


def _model_kwargs(X):
    """The estimator's model arguments (same keys and dtypes, so its fits can reuse ``runs``)."""
    prior = default_prior(X)
    return dict(X=jnp.asarray(X), mean_prior_loc=jnp.asarray(prior.mean_loc),
                mean_prior_scale=jnp.asarray(prior.mean_scale),
                scale_prior_median=jnp.asarray(prior.scale_median),
                weight_concentration=jnp.asarray(0.7, X.dtype),
                lkj_concentration=jnp.asarray(DEFAULT_LKJ_CONCENTRATION, X.dtype))


def _unconstrained_point(model, kwargs, seed):
    """A random point of ``model``'s unconstrained space: every coordinate standard normal.

    The potential takes any real vector there; the sites and their shapes
    come from tracing one prior draw (``jax.eval_shape``: nothing compiles).
    """
    def draw(key):
        trace = handlers.trace(handlers.seed(model, key)).get_trace(**kwargs)
        latent = {name: site["value"] for name, site in trace.items()
                  if site["type"] == "sample" and not site["is_observed"]}
        return unconstrain_fn(model, (), kwargs, latent)

    shapes = jax.eval_shape(draw, jax.random.key(0))
    rng = np.random.default_rng(seed)
    return {name: jnp.asarray(rng.normal(size=shape.shape), shape.dtype)
            for name, shape in shapes.items()}


@functools.partial(jax.jit, static_argnames=("n_components", "covariance_type"))
def _value_and_grad(z, kwargs, *, n_components, covariance_type):
    model = functools.partial(gmm_model, n_components=n_components,
                              covariance_type=covariance_type)
    return jax.value_and_grad(lambda z: potential_energy(model, (), kwargs, z))(z)


def _potential_and_grad(model):
    """The potential of ``model`` (a partial of gmm_model) and its gradient.

    Jitted, as NUTS runs them, with ``kwargs`` as data (one program per
    model: eager dispatch of every op costs more than compiling).
    """
    return functools.partial(_value_and_grad, **model.keywords)


def _embed(z, padded_z, n_components):
    """The unpadded coordinates ``z`` written into the active part of ``padded_z``."""
    embedded = {}
    for name, value in padded_z.items():
        if name == "weight_sticks":
            embedded[name] = value.at[:n_components - 1].set(z["weights"])
        elif value.shape != z[name].shape:
            embedded[name] = value.at[:n_components].set(z[name])
        else:
            embedded[name] = z[name]
    return embedded


# --------------------------------------------------------------------------- the math


def test_log_weighted_prob_gives_minus_inf_without_nan_for_zero_weights():
    rng = np.random.default_rng(0)
    inactive, active = np.array([1, 3]), np.array([0, 2])
    with precision_scope("float64"):
        X = jnp.asarray(rng.normal(size=(6, 2)))
        weights = jnp.array([0.3, 0.0, 0.7, 0.0])
        means = jnp.asarray(rng.normal(size=(4, 2)))
        precisions = jnp.full((4, 2), 1.5)
        out = np.asarray(gaussian.log_weighted_prob(X, weights, means, precisions, "diag"))
        expected = np.asarray(gaussian.log_gaussian_prob(X, means, precisions, "diag"))
        # Whatever a zero-weight component holds, it neither shows nor poisons the gradient.
        spoiled = gaussian.log_weighted_prob(X, weights, means.at[1].set(jnp.nan), precisions,
                                             "diag")

        def total(weights, means):
            return jnp.sum(jax.nn.logsumexp(
                gaussian.log_weighted_prob(X, weights, means, precisions, "diag"), axis=1))

        gradients = jax.grad(total, argnums=(0, 1))(weights, means)
    np.testing.assert_array_equal(out[:, inactive], -np.inf)
    np.testing.assert_allclose(out[:, active],
                               expected[:, active] + np.log([0.3, 0.7]), rtol=1e-15)
    np.testing.assert_array_equal(np.asarray(spoiled), out)
    assert all(np.all(np.isfinite(g)) for g in gradients)
    np.testing.assert_array_equal(np.asarray(gradients[1])[inactive], 0.0)


def test_padded_weights_are_numpyros_stick_breaking():
    rng = np.random.default_rng(1)
    with precision_scope("float64"):
        sticks = jnp.asarray(rng.normal(size=(4, 5)))  # B = 6
        # All components active: NumPyro's own map.
        np.testing.assert_allclose(jnp.exp(padded_log_weights(sticks, 6)),
                                   StickBreakingTransform()(sticks), rtol=1e-12)
        # K = 3 of 6: the first two coordinates make a 3-simplex, the rest is exactly 0.
        weights = jnp.exp(padded_log_weights(sticks, jnp.asarray(3)))
        np.testing.assert_allclose(weights[:, :3], StickBreakingTransform()(sticks[:, :2]),
                                   rtol=1e-12)
        np.testing.assert_array_equal(weights[:, 3:], 0.0)
        back = padded_sticks(jnp.log(weights), jnp.asarray(3))
    np.testing.assert_allclose(back[:, :2], sticks[:, :2], rtol=1e-10)
    np.testing.assert_array_equal(back[:, 2:], 0.0)


def test_padded_dirichlet_samples_the_active_dirichlet():
    """Dirichlet(0.5 * 1_3) on the active weights; standard normal unused coordinates."""
    with precision_scope("float64"):
        draws = PaddedDirichlet(0.5, 3, 6).sample(jax.random.key(0), (20000,))
        weights = np.asarray(jnp.exp(padded_log_weights(draws, 3)))
    np.testing.assert_array_equal(weights[:, 3:], 0.0)
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, rtol=1e-12)
    # Dirichlet(0.5, 0.5, 0.5): mean 1/3, variance (1/3)(2/3)/2.5 (sd 0.30, so the
    # standard error of the mean of 20000 draws is 0.002).
    np.testing.assert_allclose(weights[:, :3].mean(axis=0), 1 / 3, atol=0.01)
    np.testing.assert_allclose(weights[:, :3].var(axis=0), (2 / 9) / 2.5, rtol=0.05)
    unused = np.asarray(draws[:, 2:])
    np.testing.assert_allclose(unused.mean(axis=0), 0.0, atol=0.03)
    np.testing.assert_allclose(unused.std(axis=0), 1.0, rtol=0.03)


@pytest.mark.parametrize("covariance_type, n_active, n_padded", [
    *((covariance_type, 3, 5) for covariance_type in COVARIANCE_TYPES), ("diag", 1, 4)])
def test_padded_potential_is_the_unpadded_one(data, covariance_type, n_active, n_padded):
    """What NUTS sees on the active coordinates: the same potential and the same forces.

    Without the inactive components' density (as NUTS runs it) the padded
    potential equals the unpadded model's; with it, it differs by a term
    that does not depend on the active coordinates.
    """
    unpadded = functools.partial(gmm_model, n_components=n_active,
                                 covariance_type=covariance_type)
    padded = functools.partial(gmm_model, n_components=n_padded,
                               covariance_type=covariance_type)
    with precision_scope("float64"):
        kwargs = _model_kwargs(data)
        padded_kwargs = dict(kwargs, n_active=jnp.asarray(n_active))
        inactive = _unconstrained_point(padded, padded_kwargs, seed=10)
        unpadded_potential, padded_potential = map(_potential_and_grad, (unpadded, padded))
        offsets = []
        for seed in range(2):
            z = _unconstrained_point(unpadded, kwargs, seed)
            padded_z = _embed(z, inactive, n_active)
            expected, expected_grad = unpadded_potential(z, kwargs)
            value, grad = padded_potential(padded_z, dict(padded_kwargs, padding_density=False))
            np.testing.assert_allclose(value, expected, rtol=1e-11)
            for name, expected_value in _embed(expected_grad, grad, n_active).items():
                np.testing.assert_allclose(grad[name], expected_value, rtol=1e-8, atol=1e-10)
            offsets.append(float(padded_potential(padded_z, padded_kwargs)[0] - expected))
    np.testing.assert_allclose(offsets, offsets[0], atol=1e-9)


def test_component_bucket_pads_small_fits_only():
    short = 2 * (100 + 100)  # iterations of all chains
    assert [chain_start.component_bucket(k, 400, 2, "full", short) for k in (1, 2, 5, 8, 9)] == [
        8, 8, 8, 8, 16]
    # Past PADDING_WORK_LIMIT the padded work would outweigh a compilation.
    assert chain_start.component_bucket(3, 100_000, 2, "diag", short) == 3
    assert chain_start.component_bucket(3, 1000, 10, "full", short) == 3
    # The document's 800 points with the defaults (4 x (500 + 500)): measured slower padded.
    assert chain_start.component_bucket(3, 800, 2, "full", 4 * 1000) == 3
    assert chain_start.component_bucket(3, 200, 2, "full", 4 * 1000) == 8


# --------------------------------------------------------------------------- sampling


@pytest.fixture(scope="module")
def runs(data):
    """The same posterior sampled unpadded (K = 2) and padded (K = 2 of 8)."""
    covariance_type = "diag"
    settings = nuts.NUTSSettings(num_warmup=200, num_samples=300, num_chains=2,
                                      chain_method="sequential")
    with precision_scope("float64"):
        em_fit = chain_start.fit_em(data, None, n_components=2, covariance_type=covariance_type,
                                  random_state=0, dtype="float64")
        start = chain_start.em_chain_start(em_fit.params, len(data),
                                         covariance_type=covariance_type, num_chains=2)
        kwargs = _model_kwargs(data)
        X_relabel, weight = relabel.relabel_points(data, None)
        unpadded = nuts.sample_posterior(
            jax.random.key(0), start, kwargs, X_relabel, em_fit.params, n_components=2,
            covariance_type=covariance_type, settings=settings)
        padded_raw = nuts.sample_posterior(
            jax.random.key(1), chain_start.pad_chain_start(start, 8, covariance_type),
            dict(kwargs, n_active=jnp.asarray(2, jnp.int32)), X_relabel,
            chain_start.pad_params(em_fit.params, 8, covariance_type), n_components=8,
            covariance_type=covariance_type, settings=settings)
    padded = nuts.active_run(padded_raw, 2, covariance_type)
    relabelled = [relabel.relabel_run(run, weight, covariance_type)[0]
                  for run in (unpadded, padded)]
    return unpadded, padded_raw, padded, relabelled


def test_padded_run_has_the_unpadded_posterior(runs):
    """Posterior means agree within 4 Monte Carlo standard errors, sds within 25 %."""
    _, _, _, (unpadded, padded) = runs
    for name in ("weights", "means", "scales"):
        summaries = []
        for samples in (unpadded, padded):
            idata = az.from_dict(posterior={name: samples[name]})
            summaries.append((samples[name].mean(axis=(0, 1)), samples[name].std(axis=(0, 1)),
                              np.asarray(az.ess(idata)[name])))
        (mean_a, sd_a, ess_a), (mean_b, sd_b, ess_b) = summaries
        standard_error = np.sqrt(sd_a**2 / ess_a + sd_b**2 / ess_b)
        np.testing.assert_array_less(np.abs(mean_a - mean_b), 4 * standard_error)
        np.testing.assert_allclose(sd_b, sd_a, rtol=0.25)


def test_padded_run_has_the_unpadded_dynamics(runs):
    """Frozen inactive coordinates: same step sizes and tree sizes, same log density."""
    unpadded, padded_raw, padded, _ = runs
    for stat in ("step_size", "num_steps"):
        a, b = (np.asarray(getattr(run.trace, stat), float).mean() for run in (unpadded, padded))
        np.testing.assert_allclose(b, a, rtol=0.3)
    # lp reports the active components only: the unpadded model's log joint.
    lp_a, lp_b = (-np.asarray(run.trace.potential_energy) for run in (unpadded, padded))
    assert abs(lp_a.mean() - lp_b.mean()) < 4 * np.hypot(lp_a.std(), lp_b.std()) / np.sqrt(50)
    # Inactive components never move and carry weight exactly zero.
    raw = padded_raw.trace.samples
    inactive_means = raw["means"][:, :, 2:]
    np.testing.assert_array_equal(inactive_means,
                                  np.broadcast_to(inactive_means[:, :1], inactive_means.shape))
    np.testing.assert_array_equal(raw["weights"][:, :, 2:], 0.0)
    assert np.all(np.exp(padded_raw.log_resp[..., 2:]) == 0.0)
    assert set(padded.trace.samples) == set(unpadded.trace.samples)
    assert padded.log_resp.shape == unpadded.log_resp.shape


# --------------------------------------------------------------------------- the estimator


def test_estimator_reuses_the_sampler_across_n_components(data):
    # The settings of ``runs``'s padded run, whose compiled sampler these fits
    # then reuse (when the module runs in order and chains run sequentially).
    settings = dict(covariance_type="diag", num_warmup=200, num_samples=300, num_chains=2,
                    progress_bar=False, random_state=0)
    fits = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", diagnostics.SamplingWarning)
        fits[2] = BayesianGaussianMixture(2, **settings).fit(data)
        programs = nuts._posterior_job._cache_size()
        fits[3] = BayesianGaussianMixture(3, **settings).fit(data)
    assert programs >= 1 and nuts._posterior_job._cache_size() == programs
    for n_components, fit in fits.items():
        posterior = fit.inference_data_.posterior
        assert posterior.sizes["component"] == n_components
        assert "weight_sticks" not in posterior
        assert "weight_sticks" not in fit.raw_inference_data_.posterior
        assert fit.relabel_permutations_.shape == (2, 300, n_components)
        assert fit.posterior_params_.means.shape == (600, n_components, 2)
        np.testing.assert_allclose(posterior["weights"].sum("component"), 1.0, rtol=1e-12)
        assert fit.predict_proba(data[:5]).shape == (5, n_components)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            assert np.isfinite(az.loo(fit.inference_data_).elpd_loo)
    # sample_stats' lp is the unpadded model's log joint (unconstrained space) at the draws.
    fit = fits[3]
    unpadded = functools.partial(gmm_model, n_components=3, covariance_type="diag")
    raw = fit.raw_inference_data_.posterior
    with precision_scope("float64"):
        kwargs = _model_kwargs(data)
        kwargs["weight_concentration"] = jnp.asarray(1.0)
        for draw in (0, 57):
            latent = {name: jnp.asarray(raw[name].values[1, draw])
                      for name in ("weights", "means", "scales")}
            z = unconstrain_fn(unpadded, (), kwargs, latent)
            np.testing.assert_allclose(
                -potential_energy(unpadded, (), kwargs, z),
                fit.inference_data_.sample_stats["lp"].values[1, draw], rtol=1e-9)
