"""Row buckets: NUTS fits carry their rows padded to ``nuts.row_bucket`` with weight zero.

The padding exists to share compiled samplers between fits of different
``n_samples``; these tests pin that it does (a refit on another N of the
bucket compiles nothing) and that nobody can see it: the padded fit's
posterior, ArviZ data, LOO, relabelling, predictions and saved file are
those of the unpadded fit at the same key.
"""

import functools
import warnings

import arviz as az
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from numpyro import handlers
from numpyro.infer.util import potential_energy, unconstrain_fn

from bayesgmm import BayesianGaussianMixture, load
from bayesgmm.bayes import diagnostics, nuts
from bayesgmm.bayes.model import default_prior, gmm_model
from bayesgmm.datasets import make_mixture
from bayesgmm.mixture.parameters import precision_scope
from tests.compilations import CompileCounter

# Small runs: the properties are exact (same key, same draws), not statistical.
# The rows enter the model only through the likelihood's sum over rows, alike
# for every covariance type; 'diag' compiles fastest.
SETTINGS = dict(n_components=2, covariance_type="diag", num_warmup=30, num_samples=30,
                num_chains=2, max_tree_depth=4, progress_bar=False, random_state=0)

N_SAMPLES = 45  # padded to 64 rows


@pytest.fixture(scope="module")
def data():
    X, _, _ = make_mixture(N_SAMPLES, [0.45, 0.55], [[0.0, 0.0], [4.0, 1.0]], [0.7, 1.0],
                           "spherical", random_state=5)
    weights = np.random.default_rng(2).uniform(0.5, 2.0, N_SAMPLES)
    weights[3] = 0.0  # never a relabelling point, padded or not
    return X, weights


def _fit(X, sample_weight=None, **settings):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", diagnostics.SamplingWarning)
        return BayesianGaussianMixture(**dict(SETTINGS, **settings)).fit(
            X, sample_weight=sample_weight)


@pytest.fixture(scope="module")
def fits(data):
    """{(padded, weighted): fit} on the same data and key."""
    X, weights = data
    fits = {}
    for padded in (True, False):
        with pytest.MonkeyPatch.context() as patch:
            if not padded:
                patch.setattr(nuts, "ROW_PADDING_LIMIT", 0)
            for weighted in (False, True):
                fits[padded, weighted] = _fit(X, weights if weighted else None)
    return fits


def test_row_bucket_rule(monkeypatch):
    assert [nuts.row_bucket(n) for n in (1, 30, 64, 65, 72, 73, 200, 1000, 4096, 4097)] == [
        64, 64, 64, 72, 72, 80, 208, 1024, 4096, 4097]
    buckets = np.array([nuts.row_bucket(n) for n in range(1, 4097)])
    rows = np.arange(1, 4097)
    assert np.all(buckets >= rows) and np.all(np.diff(buckets) >= 0)
    # At most 12.5 % of the rows are padding above the minimum.
    assert np.all(buckets[63:] <= 1.125 * rows[63:])
    assert len(np.unique(buckets)) < 120
    monkeypatch.setattr(nuts, "ROW_PADDING_LIMIT", 0)
    assert nuts.row_bucket(30) == 30


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_padded_rows_leave_the_potential_and_its_forces(data, weighted):
    """What NUTS sees: padded data (weight zero) give the unpadded potential and gradient.

    The padding only reorders the sums over rows (a few ulps); unit weights,
    which an unweighted fit now passes, change nothing at all.
    """
    X, weights = data
    model = functools.partial(gmm_model, n_components=2,
                              covariance_type=SETTINGS["covariance_type"])
    with precision_scope("float64"):
        prior = default_prior(X)
        kwargs = dict(X=jnp.asarray(X), sample_weight=jnp.asarray(weights) if weighted else None,
                      mean_prior_loc=jnp.asarray(prior.mean_loc),
                      mean_prior_scale=jnp.asarray(prior.mean_scale),
                      scale_prior_median=jnp.asarray(prior.scale_median))
        padded_kwargs, _ = nuts._padded_data(kwargs, X)
        unit_kwargs = dict(kwargs, sample_weight=kwargs["sample_weight"]
                           if weighted else jnp.ones(len(X)))
        value_and_grad = jax.jit(jax.value_and_grad(
            lambda z, kwargs: potential_energy(model, (), kwargs, z)))
        for seed in range(2):
            trace = handlers.trace(handlers.seed(model, seed)).get_trace(**kwargs)
            z = unconstrain_fn(model, (), kwargs, {
                name: site["value"] for name, site in trace.items()
                if site["type"] == "sample" and not site["is_observed"]})
            expected, expected_grad = value_and_grad(z, kwargs)
            value, grad = value_and_grad(z, padded_kwargs)
            np.testing.assert_allclose(value, expected, rtol=1e-13)
            for name in z:
                np.testing.assert_allclose(grad[name], expected_grad[name], rtol=1e-11,
                                           atol=1e-11)
            unit, unit_grad = value_and_grad(z, unit_kwargs)
            np.testing.assert_array_equal(unit, expected)
            for name in z:
                np.testing.assert_array_equal(unit_grad[name], expected_grad[name])
    assert padded_kwargs["X"].shape == (64, 2)
    np.testing.assert_array_equal(padded_kwargs["sample_weight"][N_SAMPLES:], 0.0)


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_padded_fit_is_the_unpadded_fit(fits, data, weighted):
    """Same key, same posterior, to rounding errors grown along the trajectories.

    The potential and its gradient differ by a few ulps (the test above);
    NUTS's warm-up amplifies such differences, here up to about 1e-6
    (relative) in single draws and 1e-8 in posterior means, so those are
    compared at 1e-5 and 1e-7; the relabelling must agree exactly.
    """
    X, _ = data
    padded, unpadded = fits[True, weighted], fits[False, weighted]
    for name in ("weights_", "means_", "covariances_"):
        np.testing.assert_allclose(getattr(padded, name), getattr(unpadded, name), rtol=1e-7)
    np.testing.assert_array_equal(padded.relabel_permutations_, unpadded.relabel_permutations_)
    np.testing.assert_allclose(padded.posterior_params_.means, unpadded.posterior_params_.means,
                               rtol=1e-5, atol=1e-7)
    idata, reference = padded.inference_data_, unpadded.inference_data_
    log_likelihood = idata.log_likelihood["x"]
    assert log_likelihood.shape == (2, 30, N_SAMPLES)
    assert dict(log_likelihood.sizes) == dict(reference.log_likelihood["x"].sizes)
    np.testing.assert_array_equal(log_likelihood.coords[log_likelihood.dims[-1]],
                                  np.arange(N_SAMPLES))
    np.testing.assert_allclose(log_likelihood, reference.log_likelihood["x"], rtol=1e-5)
    np.testing.assert_array_equal(idata.observed_data["x"], X)
    np.testing.assert_allclose(idata.sample_stats["lp"], reference.sample_stats["lp"],
                               rtol=1e-6)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loo, loo_reference = az.loo(idata, pointwise=True), az.loo(reference, pointwise=True)
    np.testing.assert_allclose(loo.elpd_loo, loo_reference.elpd_loo, rtol=1e-7)
    assert loo.loo_i.shape == (N_SAMPLES,)
    np.testing.assert_allclose(padded.predict_proba(X), unpadded.predict_proba(X),
                               rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(padded.score_samples(X), unpadded.score_samples(X), rtol=1e-7)


def test_padded_fit_survives_save_and_load(fits, data, tmp_path):
    X, _ = data
    fit = fits[True, False]
    fit.save(tmp_path / "model.nc")
    loaded = load(tmp_path / "model.nc")
    np.testing.assert_array_equal(loaded.inference_data_.log_likelihood["x"],
                                  fit.inference_data_.log_likelihood["x"])
    np.testing.assert_allclose(loaded.predict_proba(X), fit.predict_proba(X), rtol=1e-12)


def test_refit_on_another_n_of_the_bucket_compiles_nothing(data):
    """37 and 40 rows share the EM's block (40 rows) and the sampler's (64 rows).

    The first fit compiles at least the EM for 40 rows (the sampler too when
    this test runs alone), so the counter is seen to count.
    """
    X, weights = data
    with CompileCounter() as first:
        _fit(X[:37])
    with CompileCounter() as refit:
        model = _fit(X[:40])
    with CompileCounter() as weighted:
        _fit(X[:40], weights[5:45])
    assert first.count > 0
    assert refit.count == 0
    assert weighted.count == 0
    assert model.inference_data_.log_likelihood["x"].shape == (2, 30, 40)
