"""BayesianGaussianMixture(inference='svi'): recovery, agreement with EM and NUTS,
the prediction API on guide draws, subsampling, ArviZ data, errors.

Fits are CI-sized (1000 points, 1000 steps on subsamples of 200); tolerances
are stated in posterior standard deviations.
"""

import warnings

import arviz as az
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from numpyro import handlers

import bayesgmm
from bayesgmm import BayesianGaussianMixture, GaussianMixture, alignment, metrics
from bayesgmm.bayes import chain_start, diagnostics, posterior, svi

TRUE_MEANS = np.array([[-3.0, 0.0], [3.0, 1.0]])
TRUE_COVARIANCES = np.array([[[1.0, 0.3], [0.3, 0.5]], [[0.6, -0.2], [-0.2, 1.2]]])
TRUE_WEIGHTS = np.array([0.35, 0.65])
SVI_SMALL = dict(inference="svi", svi_steps=1000, svi_subsample_size=200, progress_bar=False)


@pytest.fixture(scope="module")
def mixture(two_clusters):
    """conftest's 1000 points from the mixture of TRUE_WEIGHTS, TRUE_MEANS, TRUE_COVARIANCES."""
    truth = two_clusters[2]
    for value, expected in zip(truth[:3], (TRUE_WEIGHTS, TRUE_MEANS, TRUE_COVARIANCES)):
        np.testing.assert_array_equal(value, expected)
    return two_clusters


@pytest.fixture(scope="module")
def fitted(mixture):
    X, _, _ = mixture
    with warnings.catch_warnings():
        warnings.simplefilter("error", diagnostics.SamplingWarning)  # SVI makes no r_hat claims
        return BayesianGaussianMixture(2, random_state=0, **SVI_SMALL).fit(X)


def _order(means, reference):
    """Permutation putting the components of ``means`` in the order of ``reference``."""
    return alignment.permutation_from_cost(((reference[:, None] - means[None]) ** 2).sum(-1))


# --------------------------------------------------------------------------- recovery


def test_svi_recovers_the_means_and_agrees_with_em_and_nuts(fitted, mixture, two_clusters_nuts):
    X, _, _ = mixture
    draws = fitted.posterior_params_.means[:, _order(fitted.means_, TRUE_MEANS)]
    mean, sd = draws.mean(axis=0), draws.std(axis=0)
    np.testing.assert_array_less(np.abs(mean - TRUE_MEANS), 4 * sd)  # within 4 sds of the truth

    em_fit = GaussianMixture(2, random_state=0).fit(X)
    em_means = em_fit.means_[_order(em_fit.means_, TRUE_MEANS)]
    # N = 1000: the posterior mean is near the maximum likelihood; the
    # subsampling noise of the last steps moves the guide by a fraction of a sd.
    np.testing.assert_array_less(np.abs(mean - em_means), 1.0 * sd)
    np.testing.assert_allclose(fitted.score(X), em_fit.score(X), atol=0.01)

    nuts = two_clusters_nuts  # K = 2, 2 chains x (200 warm-up + 200 draws)
    nuts_draws = nuts.posterior_params_.means[:, _order(nuts.means_, TRUE_MEANS)]
    nuts_sd = nuts_draws.std(axis=0)
    # Roughly the NUTS posterior: means within one NUTS sd, sds within a factor 1.5.
    np.testing.assert_array_less(np.abs(mean - nuts_draws.mean(axis=0)), nuts_sd)
    ratio = sd / nuts_sd
    assert np.all((ratio > 1 / 1.5) & (ratio < 1.5)), ratio


def test_float32_sample_weight_and_lowrank_guide(mixture):
    X, _, _ = mixture
    weights = np.where(np.arange(len(X)) % 2 == 0, 2.0, 0.5)
    # 'diag' (no LKJ sites) compiles faster than 'full'.
    model = BayesianGaussianMixture(2, covariance_type="diag", random_state=1, guide="lowrank",
                                    dtype="float32", **SVI_SMALL).fit(X, sample_weight=weights)
    assert model.means_.dtype == np.float32
    assert model.predict_proba(X[:5]).dtype == np.float32
    assert model.losses_.dtype == np.float32
    em_fit = GaussianMixture(2, covariance_type="diag", random_state=0).fit(
        X, sample_weight=weights)
    draws = model.posterior_params_.means[:, _order(model.means_, em_fit.means_)]
    np.testing.assert_array_less(np.abs(draws.mean(axis=0) - em_fit.means_),
                                 1.0 * draws.std(axis=0))
    np.testing.assert_allclose(model.score(X, sample_weight=weights),
                               em_fit.score(X, sample_weight=weights), atol=0.01)
    # The low-rank guide's vector holds the sites in sorted order (means (2, 2),
    # scales (2, 2), weights (1,)), as svi._initial_guide_params assumes: its
    # means block sits at the EM means with the width of the posterior draws.
    means_block = slice(0, 4)
    np.testing.assert_allclose(model.guide_params_["auto_loc"][means_block].reshape(2, 2),
                               model.em_params_.means, atol=0.1)
    np.testing.assert_allclose(model.guide_params_["auto_scale"][means_block].reshape(2, 2),
                               model.posterior_params_.means.std(axis=0), rtol=0.5)
    # The weighted log-likelihood is stored for LOO, as for NUTS.
    log_likelihood = model.inference_data_.log_likelihood["x"].values
    np.testing.assert_allclose(
        log_likelihood[0, :3, :4],
        posterior.pointwise_log_likelihood(X[:4], jax.tree.map(lambda a: a[:3],
                                                               model.posterior_params_),
                                           "diag") * weights[:4], rtol=1e-4)


# --------------------------------------------------------------------------- prediction API


def test_prediction_api_on_guide_draws(fitted, mixture):
    X, y, _ = mixture
    n_draws = fitted.svi_num_draws
    proba, std = fitted.predict_proba(X, return_std=True)
    assert proba.shape == std.shape == (len(X), 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-10)
    assert fitted.predict_proba_draws(X[:7]).shape == (n_draws, 7, 2)
    lower, upper = fitted.predict_proba_interval(X[:7], prob=0.9)
    assert lower.shape == upper.shape == (7, 2) and np.all(lower <= upper)
    labels = fitted.predict(X)
    assert labels.shape == (len(X),)
    assert metrics.hard_accuracy(y, labels) > 0.99
    assert fitted.score_samples(X[:9]).shape == (9,)
    assert np.isfinite(fitted.score(X))
    sample, component = fitted.sample(50)
    assert sample.shape == (50, 2) and component.shape == (50,)
    assert fitted.posterior_params_.means.shape == (n_draws, 2, 2)
    assert fitted.relabel_permutations_.shape == (1, n_draws, 2)
    assert fitted.losses_.shape == (fitted.svi_steps,)
    assert fitted.chain_method_ is None


def test_summary_makes_no_rhat_claims(fitted):
    table = fitted.summary()
    assert {"mean", "sd"} <= set(table.columns)
    assert not {"r_hat", "ess_bulk", "ess_tail"} & set(table.columns)
    assert "r_hat and ESS do not apply" in fitted.inference_data_.posterior.attrs["note"]


def test_inference_data_groups_and_loo(fitted, mixture):
    X, _, _ = mixture
    idata = fitted.inference_data_
    assert set(idata.groups()) == {"posterior", "log_likelihood", "observed_data"}
    posterior = idata.posterior
    assert dict(posterior.sizes)["chain"] == 1
    assert dict(posterior.sizes)["draw"] == fitted.svi_num_draws
    assert posterior["means"].dims == ("chain", "draw", "component", "feature")
    assert idata.log_likelihood["x"].shape == (1, fitted.svi_num_draws, len(X))
    np.testing.assert_array_equal(idata.observed_data["x"].values, X)
    attrs = posterior.attrs
    assert attrs["inference"] == "svi" and attrs["guide"] == "normal"
    assert attrs["svi_subsample_size"] == 200
    np.testing.assert_array_equal(attrs["loss"], fitted.losses_)
    loo = az.loo(idata)
    assert np.isfinite(loo.elpd_loo)
    assert np.all(loo.pareto_k.values < 0.7)
    assert fitted.raw_inference_data_.posterior["means"].shape == posterior["means"].shape


def test_large_data_leave_out_the_pointwise_log_likelihood(fitted, mixture):
    X, _, _ = mixture
    assert svi.wants_log_likelihood(1000, 16_000)
    assert not svi.wants_log_likelihood(1000, 1_000_000)  # 8 GB in float64
    samples = {name: fitted.inference_data_.posterior[name].values
               for name in ("weights", "means", "covariances")}
    idata = diagnostics.to_inference_data(samples, None, covariance_type="full", X=X,
                                          log_likelihood=None, attrs={"inference": "svi"})
    assert set(idata.groups()) == {"posterior", "observed_data"}
    assert idata.posterior.attrs["inference"] == "svi"


def test_loss_levels_off_and_the_convergence_check(fitted):
    assert svi.convergence_problem(fitted.losses_) is None
    rng = np.random.default_rng(0)
    flat = 1000.0 + rng.normal(size=500)
    assert svi.convergence_problem(flat) is None
    falling = flat - np.linspace(0.0, 50.0, 500)
    assert "Increase svi_steps" in svi.convergence_problem(falling)
    assert svi.convergence_problem(falling[:40]) is None  # too short to tell


# --------------------------------------------------------------------------- subsampling


def test_model_is_subsampled_and_likelihood_scaled(mixture):
    X, _, _ = mixture
    model = svi.subsampled_model(2, "full", 100)
    scales = []

    @jax.jit
    def trace(key):
        sites = handlers.trace(handlers.seed(model, key)).get_trace(X=jnp.asarray(X))
        scales.append(sites["x"]["scale"])
        return sites["obs"]["value"], sites["x"]["value"]

    indices, points = trace(jax.random.key(0))
    other_indices, _ = trace(jax.random.key(1))
    assert indices.shape == (100,) and points.shape == (100, 2)
    assert scales == [pytest.approx(len(X) / 100)]  # the subsample stands for all points
    np.testing.assert_allclose(points, X[np.asarray(indices)], rtol=1e-6)
    assert not np.array_equal(indices, other_indices)
    assert svi.resolve_subsample_size(None, 500) is None  # all points: no subsampling
    assert svi.resolve_subsample_size(None, 10**6) == svi.DEFAULT_SUBSAMPLE_SIZE
    assert svi.resolve_subsample_size(300, 10**6) == 300


def test_init_prior_starts_from_a_prior_draw_and_relabels_to_the_guide(mixture):
    """The path without EM (init='prior', or EM failed): runs, no reference fit."""
    X, _, _ = mixture
    # A small model ('spherical', one feature) keeps the compilation short.
    model = BayesianGaussianMixture(2, covariance_type="spherical", init="prior",
                                    random_state=0, svi_learning_rate=0.05,
                                    **SVI_SMALL).fit(X[:, :1])
    assert model.em_params_ is None
    assert model.posterior_params_.means.shape == (model.svi_num_draws, 2, 1)
    assert np.all(np.isfinite(model.means_)) and np.all(np.isfinite(model.losses_))
    # One Gaussian guide has one labelling: the relabelling keeps (nearly) every
    # draw as it is (here the components overlap, so a rare draw may swap).
    kept = np.all(model.relabel_permutations_ == np.arange(2), axis=-1)
    assert kept.mean() > 0.99


def test_refit_with_same_shapes_does_not_recompile(fitted, mixture):
    X, _, _ = mixture
    before = svi._svi_job._cache_size()
    fitted.set_params(random_state=5, svi_learning_rate=0.002)
    try:
        fitted.fit(X[::-1].copy())
    finally:
        fitted.set_params(random_state=0, svi_learning_rate=0.005)
        fitted.fit(X)
    assert svi._svi_job._cache_size() == before


def test_save_and_load_an_svi_fit(fitted, mixture, tmp_path):
    X, _, _ = mixture
    path = tmp_path / "svi.nc"
    bayesgmm.save(fitted, path)
    loaded = bayesgmm.load(path)
    np.testing.assert_allclose(loaded.predict_proba(X[:20]), fitted.predict_proba(X[:20]))
    assert loaded.inference_data_.posterior.attrs["inference"] == "svi"
    assert "r_hat" not in loaded.summary().columns


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize("params, message", [
    (dict(inference="vi"), "Invalid value for 'inference'"),
    (dict(svi_steps=0), "Invalid value for 'svi_steps'"),
    (dict(svi_steps=10.5), "Invalid value for 'svi_steps'"),
    (dict(svi_subsample_size=0), "Invalid value for 'svi_subsample_size'"),
    (dict(svi_subsample_size=50), "svi_subsample_size=50 is larger than the number of samples"),
    (dict(svi_learning_rate=0.0), "Invalid value for 'svi_learning_rate'"),
    (dict(svi_learning_rate=2.0), "'svi_learning_rate'.*use a value in \\(0, 1\\)"),
    (dict(guide="flow"), "Invalid value for 'guide'"),
    (dict(svi_num_draws=0), "Invalid value for 'svi_num_draws'"),
])
def test_bad_svi_options_raise_before_any_work(monkeypatch, params, message):
    def no_work(*args, **kwargs):
        raise AssertionError("work started on invalid options")

    monkeypatch.setattr(svi, "run_svi", no_work)
    monkeypatch.setattr(chain_start, "fit_em", no_work)
    settings = dict(inference="svi", progress_bar=False)
    settings.update(params)
    with pytest.raises(ValueError, match=message):
        BayesianGaussianMixture(2, **settings).fit(np.random.default_rng(0).normal(size=(20, 2)))


def test_diverging_loss_raises_a_clear_error(mixture, monkeypatch):
    X, _, _ = mixture
    real_job = svi._svi_job

    def nan_losses(*args, **kwargs):
        run = real_job(*args, **kwargs)
        return run._replace(losses=run.losses.at[3:].set(jnp.nan))

    monkeypatch.setattr(svi, "_svi_job", nan_losses)
    with pytest.raises(ValueError, match="SVI diverged: the loss became nan at step 4"):
        BayesianGaussianMixture(2, random_state=0, **SVI_SMALL).fit(X)


def test_sample_posterior_predictive_on_a_loaded_svi_fit(fitted, mixture, tmp_path):
    X, _, _ = mixture
    bayesgmm.save(fitted, tmp_path / "svi.nc")
    loaded = bayesgmm.load(tmp_path / "svi.nc")
    replicates = loaded.sample_posterior_predictive().posterior_predictive["x"]
    assert replicates.shape == (1, fitted.svi_num_draws, len(X), 2)
    np.testing.assert_allclose(replicates.values.mean(axis=(0, 1, 2)), X.mean(axis=0), atol=0.1)
