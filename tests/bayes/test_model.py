"""The NumPyro model: sites, densities against NumPyro's own distributions, weights, dtypes."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
import pytest
from numpyro import handlers
from numpyro.infer import MCMC, NUTS
from numpyro.infer.util import log_density, log_likelihood

from bayesgmm import structures
from bayesgmm.bayes import chain_start, diagnostics, posterior, relabel
from bayesgmm.bayes.model import (
    SITE_PRIORS,
    GaussianMixtureLikelihood,
    component_sites,
    covariances_from_sites,
    default_prior,
    gmm_model,
    precisions_cholesky_from_sites,
)
from bayesgmm.datasets import make_mixture
from bayesgmm.mixture.parameters import precision_scope

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")


@pytest.fixture(scope="module")
def data():
    X, y, _ = make_mixture(
        60, [0.4, 0.6], [[0.0, 0.0, 0.0], [4.0, 1.0, -2.0]], [0.5, 1.5], "spherical",
        random_state=3,
    )
    return X


def _model(covariance_type, **kwargs):
    return functools.partial(gmm_model, n_components=3, covariance_type=covariance_type,
                             **kwargs)


@functools.partial(jax.jit, static_argnames=("covariance_type",))
def _prior_latent(key, X, covariance_type):
    trace = handlers.trace(handlers.seed(_model(covariance_type), key)).get_trace(X)
    return {name: site["value"] for name, site in trace.items()
            if site["type"] == "sample" and not site["is_observed"]}


def _latent_draw(X, covariance_type, seed=0):
    """Latent values of one prior draw (jitted: eager dispatch of each op is slow)."""
    return _prior_latent(jax.random.key(seed), jnp.asarray(X), covariance_type)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_sites_shapes_and_component_plate(data, covariance_type):
    with precision_scope("float64"):
        trace = _abstract_trace(_model(covariance_type), jnp.asarray(data))
    latent = {name: site["value"] for name, site in trace.items()
              if site["type"] == "sample" and not site["is_observed"]}
    expected = {
        "full": {"scales": (3, 3), "corr_cholesky": (3, 3, 3)},
        "tied": {"scales": (3,), "corr_cholesky": (3, 3)},
        "diag": {"scales": (3, 3)},
        "spherical": {"scales": (3,)},
    }[covariance_type]
    expected.update(weights=(3,), means=(3, 3))
    assert {name: value.shape for name, value in latent.items()} == expected
    assert trace["x"]["is_observed"] and trace["x"]["value"].shape == data.shape
    assert [frame.name for frame in trace["x"]["cond_indep_stack"]] == ["obs"]
    in_component_plate = {
        name for name, site in trace.items() if site["type"] == "sample"
        and "component" in [frame.name for frame in site["cond_indep_stack"]]
    }
    # component_sites is what relabelling permutes: the plate's sites plus the weights.
    assert set(component_sites(covariance_type, 3)) == in_component_plate | {"weights"}


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_likelihood_equals_numpyro_mixture_same_family(data, covariance_type):
    with precision_scope("float64"):
        latent = _latent_draw(data, covariance_type, seed=1)
        scales, corr = latent["scales"], latent.get("corr_cholesky")
        covariances = covariances_from_sites(scales, corr, covariance_type)
        full = {
            "full": covariances,
            "tied": jnp.broadcast_to(covariances, (3, 3, 3)),
            "diag": jax.vmap(jnp.diag)(covariances) if covariance_type == "diag" else None,
            "spherical": covariances[:, None, None] * jnp.eye(3),
        }[covariance_type]
        reference = dist.MixtureSameFamily(
            dist.Categorical(probs=latent["weights"]),
            dist.MultivariateNormal(latent["means"], covariance_matrix=full),
        )
        ours = GaussianMixtureLikelihood(
            latent["weights"], latent["means"],
            precisions_cholesky_from_sites(scales, corr, covariance_type), covariance_type,
        )
        X = jnp.asarray(data)
        np.testing.assert_allclose(ours.log_prob(X), reference.log_prob(X), rtol=1e-10)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_precisions_cholesky_inverts_covariances(data, covariance_type):
    with precision_scope("float64"):
        latent = _latent_draw(data, covariance_type, seed=2)
        scales, corr = latent["scales"], latent.get("corr_cholesky")
        covariances = np.asarray(covariances_from_sites(scales, corr, covariance_type))
        factor = np.asarray(precisions_cholesky_from_sites(scales, corr, covariance_type))
    if covariance_type in ("full", "tied"):
        np.testing.assert_allclose(factor @ np.swapaxes(factor, -1, -2),
                                   np.linalg.inv(covariances), rtol=1e-9, atol=1e-12)
        # scikit-learn's convention: an upper-triangular factor.
        np.testing.assert_array_equal(np.tril(factor, -1), 0.0)
    else:
        np.testing.assert_allclose(factor**2, 1.0 / covariances, rtol=1e-12)


def test_integer_sample_weight_equals_repeated_rows(data):
    """Weight 2 on a row is the same log joint density as the row twice."""
    weights = np.ones(len(data))
    weights[:10] = 2.0
    weights[10:15] = 0.0
    repeated = np.repeat(data, weights.astype(int), axis=0)
    with precision_scope("float64"):
        model = _model("full")
        latent = _latent_draw(data, "full", seed=4)
        prior = default_prior(data)
        shared = dict(mean_prior_loc=prior.mean_loc, mean_prior_scale=prior.mean_scale,
                      scale_prior_median=prior.scale_median)
        weighted, _ = log_density(model, (jnp.asarray(data), jnp.asarray(weights)), shared,
                                  latent)
        duplicated, _ = log_density(model, (jnp.asarray(repeated),), shared, latent)
    np.testing.assert_allclose(weighted, duplicated, rtol=1e-12)


def test_pointwise_log_likelihood_matches_numpyro(data):
    """The per-draw evaluation used for LOO equals NumPyro's own log_likelihood."""
    with precision_scope("float64"):
        model = _model("diag")
        draws = jax.vmap(lambda key: _prior_latent(key, jnp.asarray(data), "diag"))(
            jax.random.split(jax.random.key(5), 4)
        )
        expected = log_likelihood(model, draws, jnp.asarray(data))["x"]
        ours = posterior.pointwise_log_likelihood(
            data, posterior.posterior_params(draws, "diag"), "diag"
        )
    np.testing.assert_allclose(ours, expected, rtol=1e-10)


def test_default_prior_is_tied_to_weighted_data():
    X = np.array([[0.0, 10.0], [2.0, 10.0], [4.0, 10.0], [100.0, 10.0]])
    weights = np.array([1.0, 1.0, 1.0, 0.0])
    prior = default_prior(X, weights)
    np.testing.assert_allclose(prior.mean_loc, [2.0, 10.0])
    # A constant column gets unit scale instead of a zero-width prior.
    np.testing.assert_allclose(prior.mean_scale, [2.0 * np.sqrt(8.0 / 3.0), 2.0])
    np.testing.assert_allclose(prior.scale_median, [0.5 * np.sqrt(8.0 / 3.0), 0.5])
    overridden = default_prior(X, mean_prior_loc=0.0, scale_prior_median=[1.0, 3.0])
    np.testing.assert_allclose(overridden.mean_loc, [0.0, 0.0])
    np.testing.assert_allclose(overridden.scale_median, [1.0, 3.0])


def _abstract_trace(model, *args, **kwargs):
    """The trace of one run of ``model`` with abstract values (shapes only, nothing compiles).

    Eager dispatch of every op of the model costs seconds; the sites'
    structure (shapes, observed flags, scales) is known from tracing alone.
    """
    traces = []

    def run(key):
        trace = handlers.trace(handlers.seed(model, key)).get_trace(*args, **kwargs)
        traces.append(trace)
        return {name: site["value"] for name, site in trace.items() if "value" in site}

    values = jax.eval_shape(run, jax.random.key(0))
    (trace,) = traces
    return {name: dict(site, value=values.get(name)) for name, site in trace.items()}


def test_prior_predictive_and_subsampled_plate():
    model = functools.partial(gmm_model, n_components=2, covariance_type="tied")
    trace = _abstract_trace(model, n_samples=7, n_features=2)
    assert trace["x"]["value"].shape == (7, 2) and not trace["x"]["is_observed"]
    with pytest.raises(ValueError, match="needs n_samples and n_features"):
        handlers.seed(model, 0)()
    X = jnp.asarray(np.random.default_rng(0).normal(size=(50, 2)))
    sub = _abstract_trace(model, X, subsample_size=10)
    assert sub["x"]["value"].shape == (10, 2)
    assert sub["x"]["scale"] == pytest.approx(5.0)  # n_samples / subsample_size


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_dtype_follows_the_data_without_global_x64(data, dtype):
    x64_before = jax.config.jax_enable_x64
    with precision_scope(dtype):
        latent = _latent_draw(data.astype(dtype), "full")
        log_prob = GaussianMixtureLikelihood(
            latent["weights"], latent["means"],
            precisions_cholesky_from_sites(latent["scales"], latent["corr_cholesky"], "full"),
        ).log_prob(jnp.asarray(data.astype(dtype)))
    assert all(value.dtype == np.dtype(dtype) for value in latent.values())
    assert log_prob.dtype == np.dtype(dtype)
    assert jax.config.jax_enable_x64 == x64_before


def test_model_runs_under_numpyro_mcmc(data):
    """Users can hand the model to NumPyro directly."""
    mcmc = MCMC(NUTS(gmm_model), num_warmup=150, num_samples=150, progress_bar=False)
    mcmc.run(jax.random.key(0), jnp.asarray(data, jnp.float32), n_components=1,
             covariance_type="diag")
    samples = mcmc.get_samples()
    assert samples["means"].shape == (150, 1, 3)
    # One component: its mean is the data mean, up to a few posterior sds.
    posterior_sd = data.std(axis=0) / np.sqrt(len(data))
    np.testing.assert_array_less(np.abs(samples["means"].mean(axis=0)[0] - data.mean(axis=0)),
                                 4 * posterior_sd)


def test_every_kind_of_site_has_a_prior_and_a_chain_start():
    assert set(SITE_PRIORS) == set(structures.SITE_KINDS)
    assert set(chain_start.INFORMATION_PER_POINT) == set(structures.SITE_KINDS)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("n_features", [1, 3])
def test_covariance_sites_are_the_tables(covariance_type, n_features):
    """The model samples the entry's sites: names, order, shapes, supports, plate, ArviZ dims."""
    X = np.random.default_rng(0).normal(size=(20, n_features))
    with precision_scope("float64"):
        # Shapes, supports and plates are fixed by tracing; values are not needed.
        trace = _abstract_trace(_model(covariance_type), jnp.asarray(X))
    sites = structures.get(covariance_type).covariance_sites(n_features)
    latent = [name for name, site in trace.items()
              if site["type"] == "sample" and not site["is_observed"]]
    assert latent == ["weights", "means"] + [site.name for site in sites]
    support = {"feature_scales": dist.constraints.positive, "common_scale": dist.constraints.positive,
               "lkj_cholesky": dist.constraints.corr_cholesky}
    dims = diagnostics.site_dims(covariance_type, n_features)
    for site in sites:
        recorded = trace[site.name]
        assert recorded["value"].shape == site.shape(3, n_features)
        fn = recorded["fn"]
        assert getattr(fn.support, "base_constraint", fn.support) is support[site.kind]
        assert fn.event_shape == site.shape(3, n_features)[site.component_axis:]
        plates = [frame.name for frame in recorded["cond_indep_stack"]]
        assert plates == (["component"] if site.component_axis else [])
        assert dims[site.name] == list(site.dims)
    assert dims["covariances"] == list(structures.get(covariance_type).covariance_dims)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("n_features", [1, 3])
def test_relabelling_permutes_exactly_the_component_sites(data, covariance_type, n_features):
    # The module's data (in float64): with 3 features, the prior draws compiled by the
    # likelihood tests above (a prior draw compiles in seconds, 'full' most).
    with precision_scope("float64"):
        latent = _latent_draw(data[:, :n_features], covariance_type)
    draws = {name: np.asarray(value)[None] for name, value in latent.items()}
    reverse = np.array([[2, 1, 0]])
    permuted = relabel.permute_components(draws, reverse, covariance_type)
    changed = {name for name in draws if not np.array_equal(permuted[name], draws[name])}
    assert changed == set(component_sites(covariance_type, n_features))
    covariance_sites = structures.get(covariance_type).covariance_sites(n_features)
    assert changed - {"weights", "means"} == {site.name for site in covariance_sites if site.component_axis}
    for name in changed:
        np.testing.assert_array_equal(permuted[name], draws[name][:, ::-1])
    # The parameters of the draws are permuted alike.
    params = posterior.posterior_params(draws, covariance_type)
    permuted_params = relabel.permute_params(params, reverse, covariance_type)
    expected = posterior.posterior_params(permuted, covariance_type)
    for actual, wanted in zip(permuted_params, expected):
        np.testing.assert_array_equal(actual, wanted)
