"""BayesianGaussianMixture: recovery, parity with EM, the prediction API, ArviZ, errors.

Fits are CI-sized (2 chains, 200 warm-up + 200 draws, small data); tolerances
are stated in posterior standard deviations.
"""

import warnings

import arviz as az
import jax
import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from bayesgmm import BayesianGaussianMixture, GaussianMixture, alignment
from bayesgmm.bayes import chain_start, diagnostics, nuts, posterior
from bayesgmm.datasets import make_mixture
from bayesgmm.mixture import parameters
from tests.compilations import CompileCounter

SMALL = dict(num_warmup=200, num_samples=200, num_chains=2, progress_bar=False)

TRUE_MEANS = np.array([[-3.0, 0.0], [3.0, 1.0]])
TRUE_COVARIANCES = np.array([[[1.0, 0.3], [0.3, 0.5]], [[0.6, -0.2], [-0.2, 1.2]]])
TRUE_WEIGHTS = np.array([0.35, 0.65])


@pytest.fixture(scope="module")
def mixture(two_clusters):
    """conftest's 1000 points from the mixture of TRUE_WEIGHTS, TRUE_MEANS, TRUE_COVARIANCES."""
    truth = two_clusters[2]
    for value, expected in zip(truth[:3], (TRUE_WEIGHTS, TRUE_MEANS, TRUE_COVARIANCES)):
        np.testing.assert_array_equal(value, expected)
    return two_clusters


@pytest.fixture(scope="module")
def fitted(two_clusters_nuts):
    """The NUTS fit of ``mixture`` with K = 2 and the SMALL settings (shared with tests/bayes/test_svi.py)."""
    for name, value in dict(SMALL, n_components=2, random_state=0).items():
        assert two_clusters_nuts.get_params()[name] == value
    return two_clusters_nuts


def _fit(X, **kwargs):
    """A small fit with sampling warnings (expected at CI size) silenced."""
    settings = dict(SMALL, random_state=0)
    settings.update(kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", diagnostics.SamplingWarning)
        return BayesianGaussianMixture(**settings).fit(X)


def _truth_order(means):
    """Permutation putting fitted components in the order of the true ones."""
    cost = ((TRUE_MEANS[:, None, :] - means[None, :, :]) ** 2).sum(-1)
    return alignment.permutation_from_cost(cost)


# --------------------------------------------------------------------------- recovery


def test_posterior_recovers_truth_and_agrees_with_em(fitted, mixture):
    X, _, _ = mixture
    draws = fitted.posterior_params_
    order = _truth_order(fitted.means_)
    mean = {name: getattr(draws, name).mean(axis=0)[order] for name in
            ("weights", "means", "covariances")}
    sd = {name: getattr(draws, name).std(axis=0)[order] for name in mean}
    truth = {"weights": TRUE_WEIGHTS, "means": TRUE_MEANS, "covariances": TRUE_COVARIANCES}
    for name in mean:  # within 4 posterior sds of the truth
        np.testing.assert_array_less(np.abs(mean[name] - truth[name]), 4 * sd[name])
    em_fit = GaussianMixture(2, random_state=0).fit(X)
    em_order = _truth_order(em_fit.means_)
    em = {"weights": em_fit.weights_[em_order], "means": em_fit.means_[em_order],
          "covariances": em_fit.covariances_[em_order]}
    for name in mean:  # N = 1000: the posterior mean is close to the maximum likelihood
        np.testing.assert_array_less(np.abs(mean[name] - em[name]), 1.0 * sd[name] + 1e-3)
    # The predictive density is the EM density up to posterior averaging.
    np.testing.assert_allclose(fitted.score(X), em_fit.score(X), atol=0.01)


def test_prediction_api(fitted, mixture):
    X, y, _ = mixture
    proba, std = fitted.predict_proba(X, return_std=True)
    assert proba.shape == std.shape == (len(X), 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-10)
    np.testing.assert_allclose(proba, fitted.predict_proba(X))
    draws = fitted.predict_proba_draws(X[:50])
    assert draws.shape == (400, 50, 2)
    np.testing.assert_allclose(draws.mean(axis=0), proba[:50], rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(draws.std(axis=0), std[:50], rtol=1e-6, atol=1e-10)
    lower, upper = fitted.predict_proba_interval(X[:50], prob=0.9)
    assert np.all(lower <= proba[:50] + 1e-12) and np.all(proba[:50] <= upper + 1e-12)
    np.testing.assert_allclose(lower, np.quantile(draws, 0.05, axis=0))
    # A point halfway between the clusters is uncertain; a cluster centre is not.
    _, edge_std = fitted.predict_proba(np.array([[0.0, 0.6], [-3.0, 0.0]]), return_std=True)
    assert edge_std[0, 0] > 10 * edge_std[1, 0]
    labels = fitted.predict(X)
    assert (alignment.align_labels(labels, y) == y).mean() > 0.97
    log_density = fitted.score_samples(X[:5])
    expected = np.log(np.exp(posterior.pointwise_log_likelihood(
        X[:5], fitted.posterior_params_, "full")).mean(axis=0))
    np.testing.assert_allclose(log_density, expected, rtol=1e-10)
    sample, sample_labels = fitted.sample(4000)
    assert sample.shape == (4000, 2) and set(np.unique(sample_labels)) == {0, 1}
    np.testing.assert_allclose(sample.mean(axis=0), X.mean(axis=0), atol=0.15)


def test_inference_data_works_with_arviz(fitted, mixture):
    X, _, _ = mixture
    idata = fitted.inference_data_
    assert {"posterior", "sample_stats", "log_likelihood", "observed_data"} <= set(idata.groups())
    assert idata.posterior["means"].dims == ("chain", "draw", "component", "feature")
    assert idata.posterior["covariances"].shape == (2, 200, 2, 2, 2)
    assert idata.log_likelihood["x"].shape == (2, 200, len(X))
    assert idata.observed_data["x"].shape == X.shape
    assert int(idata.sample_stats["diverging"].sum()) == 0
    loo = az.loo(idata)
    assert np.isfinite(loo.elpd_loo)
    # elpd_loo is the sum of pointwise LOO densities, close to the in-sample density.
    assert abs(loo.elpd_loo - fitted.score(X) * len(X)) < 3 * loo.p_loo + 1
    summary = fitted.summary()
    assert "weights[0]" in summary.index and summary["r_hat"].max() < 1.05
    assert summary.loc["weights[0]", "mean"] == pytest.approx(fitted.weights_[0], abs=1e-3)
    assert fitted.raw_inference_data_.posterior["means"].shape == (2, 200, 2, 2)
    assert fitted.relabel_permutations_.shape == (2, 200, 2)
    assert fitted.chain_method_ == nuts.resolve_chain_method("auto", 2)


# --------------------------------------------------------------------------- variants


OTHER_COVARIANCES = {"tied": np.array([[1.0, 0.2], [0.2, 0.5]]),
                     "diag": np.array([[1.0, 0.5], [0.4, 1.2]]), "spherical": np.array([0.5, 1.0])}


@pytest.fixture(scope="module")
def other_fits():
    """``fit(covariance_type) -> (X, model)``: 400 points of that structure, fitted once.

    Shared by test_other_covariance_types_recover_the_means and
    test_posterior_of_every_covariance_type_holds_only_free_quantities, which
    only read the fit.
    """
    fits = {}

    def fit(covariance_type):
        if covariance_type not in fits:
            X, _, _ = make_mixture(400, [0.5, 0.5], TRUE_MEANS, OTHER_COVARIANCES[covariance_type],
                                   covariance_type, random_state=1)
            # The settings of test_small_weight_concentration_empties_spare_components,
            # whose 'diag' sampler (400 points, K padded to 8) this one then reuses.
            fits[covariance_type] = X, _fit(X, n_components=2, covariance_type=covariance_type,
                                            num_samples=150)
        return fits[covariance_type]

    return fit


@pytest.mark.parametrize("covariance_type", ["tied", "diag", "spherical"])
def test_other_covariance_types_recover_the_means(other_fits, covariance_type):
    X, model = other_fits(covariance_type)
    order = _truth_order(model.means_)
    sd = model.posterior_params_.means.std(axis=0)[order]
    np.testing.assert_array_less(np.abs(model.means_[order] - TRUE_MEANS), 4 * sd)
    em_covariances = GaussianMixture(2, covariance_type=covariance_type,
                                     random_state=0).fit(X).covariances_
    assert model.covariances_.shape == em_covariances.shape


def test_float32_and_sample_weight(mixture):
    """float32 fits without touching the global x64 flag; weights act like repeated rows."""
    X, _, _ = mixture
    X = X[:300]
    weights = np.where(np.arange(300) < 100, 2.0, 1.0)
    weights[-10:] = 0.0
    x64_before = jax.config.jax_enable_x64
    model = _fit(X, n_components=2, dtype="float32", num_warmup=150, num_samples=150)
    assert jax.config.jax_enable_x64 == x64_before
    assert model.means_.dtype == np.float32
    assert model.predict_proba(X[:3]).dtype == np.float32
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", diagnostics.SamplingWarning)
        weighted = BayesianGaussianMixture(2, random_state=0, dtype="float32", num_warmup=150,
                                           num_samples=150, num_chains=2,
                                           progress_bar=False).fit(X, sample_weight=weights)
    repeated = np.repeat(X, weights.astype(int), axis=0)
    em_repeated = GaussianMixture(2, random_state=0).fit(repeated)
    order = _truth_order(weighted.means_)
    em_order = _truth_order(em_repeated.means_)
    sd = weighted.posterior_params_.means.std(axis=0)[order]
    np.testing.assert_array_less(
        np.abs(weighted.means_[order] - em_repeated.means_[em_order]), 1.5 * sd + 1e-3
    )
    # Pointwise log-likelihood for LOO: w_n log p(x_n | theta), zero for zero weight.
    log_lik = weighted.inference_data_.log_likelihood["x"].values.reshape(-1, 300)
    unweighted = posterior.pointwise_log_likelihood(
        X.astype(np.float32), weighted.posterior_params_, "full")
    np.testing.assert_allclose(log_lik, unweighted * weights, rtol=1e-5)
    assert np.all(log_lik[:, -10:] == 0.0)
    assert "sample_weight" in weighted.inference_data_.constant_data
    # float32 data without a dtype: float32, as in scikit-learn (the same compiled sampler).
    follows = _fit(X.astype(np.float32), n_components=2, num_warmup=150, num_samples=150)
    assert follows.means_.dtype == np.float32
    np.testing.assert_array_equal(follows.means_, model.means_)
    assert BayesianGaussianMixture().get_params()["dtype"] is None


def test_small_weight_concentration_empties_spare_components():
    """K = 3 on two round clusters with a Dirichlet(1/K) prior: the spare component empties.

    The spare component's parameters follow their prior and mix slowly, so the
    sampler rightly warns; only the weights are checked.
    """
    X, _, _ = make_mixture(400, [0.35, 0.65], TRUE_MEANS, [0.8, 1.2], "spherical",
                           random_state=7)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", diagnostics.SamplingWarning)
        model = BayesianGaussianMixture(3, covariance_type="diag", weight_concentration=1 / 3,
                                        random_state=0, **dict(SMALL, num_samples=150)).fit(X)
    weights = np.sort(model.weights_)
    assert weights[0] < 0.03
    np.testing.assert_allclose(weights[1:], [0.35, 0.65], atol=0.05)


def test_refit_with_same_shapes_does_not_recompile(mixture):
    X, _, _ = mixture
    # The shapes and settings of ``fitted``: its compiled sampler (running it
    # twice costs less than compiling one of its own).
    _fit(X, n_components=2)
    with CompileCounter() as compilations:
        _fit(X[::-1] + 1.0, n_components=2, random_state=1, weight_concentration=0.5)
    assert compilations.count == 0


def test_posterior_predictive_on_request(mixture):
    X, _, _ = mixture
    # The settings of ``fitted`` (its sampler, and the replicates program of
    # test_sample_posterior_predictive_adds_what_plot_ppc_needs).
    model = _fit(X, n_components=2, posterior_predictive=True)
    replicates = model.inference_data_.posterior_predictive["x"]
    assert replicates.shape == (2, 200, len(X), 2)
    np.testing.assert_allclose(replicates.values.mean(axis=(0, 1, 2)), X.mean(axis=0),
                               atol=0.3)


def test_init_prior_and_chain_methods(mixture):
    X, _, _ = mixture
    model = _fit(X[:200], n_components=1, init="prior", num_warmup=100, num_samples=50)
    assert model.em_params_ is None
    np.testing.assert_allclose(model.means_[0], X[:200].mean(axis=0), atol=0.3)
    assert nuts.resolve_chain_method("auto", 1) in ("sequential", "vectorized")
    devices = jax.local_device_count()
    with pytest.raises(ValueError, match="chain_method='parallel' needs one device per chain"):
        nuts.resolve_chain_method("parallel", devices + 1)


def test_degenerate_em_start_falls_back_to_the_prior():
    """Identical points make EM's covariance singular (reg_covar=0): start from the prior."""
    X = np.ones((200, 2))
    with pytest.warns(UserWarning, match="EM fit that initialises the chains failed"):
        # The shapes of test_init_prior_and_chain_methods: nothing is compiled again.
        model = _fit(X, n_components=1, reg_covar=0.0, num_warmup=100, num_samples=50)
    # (Zero-width data have no proper posterior mode to check; the sampler only must run.)
    assert model.em_params_ is None and np.all(np.isfinite(model.means_))


def test_em_start_spoiled_by_rounding_falls_back_to_the_prior(monkeypatch):
    from bayesgmm import _validation

    def spoiled(*args, **kwargs):
        raise ValueError(_validation.PRECISION_LOSS_MESSAGE.format(
            component=0, distance=300.0, dtype="float32", error=8.6, remedy=""))

    monkeypatch.setattr(chain_start, "fit_em", spoiled)
    X = np.random.default_rng(0).normal(size=(200, 2))
    with pytest.warns(UserWarning, match="failed \\(The fit lost its accuracy to rounding"):
        model = _fit(X, n_components=1, reg_covar=0.0, num_warmup=100, num_samples=50)
    assert model.em_params_ is None and np.all(np.isfinite(model.means_))


def test_chains_start_on_a_line_of_points():
    """A barely positive definite EM covariance still gives valid starting points."""
    t = np.linspace(-1.0, 1.0, 200)
    # reg_covar=0 leaves the covariance exactly singular, which EM refuses; 1e-14 leaves
    # it barely positive definite (condition number about 2e14).
    em_fit = GaussianMixture(1, reg_covar=1e-14).fit(np.column_stack([t, 2.0 * t]))
    params = parameters.GMMParams(em_fit.weights_, em_fit.means_, em_fit.covariances_,
                                    em_fit.precisions_cholesky_)
    start = chain_start.em_chain_start(params, 200, covariance_type="full", num_chains=2)
    correlation = start.center["corr_cholesky"][0, 0]
    assert np.all(np.isfinite(correlation)) and correlation[1, 0] > 0.999


def test_progress_bar_only_on_a_terminal_outside_ci(monkeypatch):
    monkeypatch.setenv("CI", "true")
    assert not nuts.progress_bar_enabled(True)
    monkeypatch.delenv("CI")
    monkeypatch.setattr("sys.stderr.isatty", lambda: True, raising=False)
    assert nuts.progress_bar_enabled(True)
    assert not nuts.progress_bar_enabled(False)


# --------------------------------------------------------------------------- warnings


def _synthetic_idata(shift, diverging=0, draws=400):
    rng = np.random.default_rng(0)
    means = rng.normal(size=(2, draws, 2)) + np.array([0.0, shift])[:, None, None]
    stats = np.zeros((2, draws), dtype=bool)
    stats.ravel()[:diverging] = True
    return az.from_dict(posterior={"means": means}, sample_stats={"diverging": stats})


@pytest.mark.filterwarnings("ignore::bayesgmm.bayes.diagnostics.SamplingWarning")
def test_diagnostic_warnings_say_what_to_change():
    assert diagnostics.check_sampling(_synthetic_idata(0.0)) == []
    with pytest.warns(diagnostics.RhatWarning, match="r_hat is up to .* Increase num_warmup"):
        diagnostics.warn_sampling_problems(_synthetic_idata(3.0))
    with pytest.warns(diagnostics.DivergenceWarning, match="3 of 800 .* target_accept_prob"):
        diagnostics.warn_sampling_problems(_synthetic_idata(0.0, diverging=3))
    with pytest.warns(diagnostics.LowESSWarning, match="Increase num_samples"):
        diagnostics.warn_sampling_problems(_synthetic_idata(0.0, draws=30))
    assert issubclass(diagnostics.SamplingWarning, Warning)


@pytest.mark.filterwarnings("ignore::bayesgmm.bayes.diagnostics.SamplingWarning")
def test_fit_warns_on_low_ess(mixture):
    X, _, _ = mixture
    # 2 x 50 draws cannot reach 100 effective draws per chain (the shapes and
    # settings of test_init_prior_and_chain_methods, so nothing is compiled again).
    with pytest.warns(diagnostics.LowESSWarning, match="effective sample size"):
        BayesianGaussianMixture(1, init="prior", random_state=0, num_warmup=100, num_samples=50,
                                num_chains=2, progress_bar=False).fit(X[:200])


# --------------------------------------------------------------------------- bad input


BAD_FITS = [
    (dict(), np.arange(10.0), None, "Expected a 2-D array"),
    (dict(), np.array([[0.0, 1.0], [np.nan, 2.0], [1.0, 1.0]]), None, "X contains NaN"),
    (dict(), np.empty((0, 2)), None, "X is empty"),
    (dict(n_components=5), np.ones((3, 2)), None, "Expected n_samples >= n_components"),
    (dict(covariance_type="banana"), np.ones((4, 2)), None, "Invalid value for 'covariance_type'"),
    (dict(n_components=0), np.ones((4, 2)), None, "Invalid value for 'n_components'"),
    (dict(dtype="float16"), np.ones((4, 2)), None, "dtype must be 'float64' or 'float32'"),
    (dict(), np.ones((4, 2)), np.ones(3), r"sample_weight has shape \(3,\)"),
    (dict(), np.ones((4, 2)), -np.ones(4), "sample_weight contains negative values"),
    (dict(), np.ones((4, 2)), np.zeros(4), "sample_weight is zero for every sample"),
]


@pytest.mark.parametrize("params, X, sample_weight, message", BAD_FITS)
def test_bad_input_same_errors_as_em_before_sampling(monkeypatch, params, X, sample_weight,
                                                     message):
    def no_sampling(*args, **kwargs):
        raise AssertionError("sampling started on invalid input")

    monkeypatch.setattr(nuts, "sample_posterior", no_sampling)
    monkeypatch.setattr(chain_start, "fit_em", no_sampling)
    with pytest.raises(ValueError, match=message) as bayesian_error:
        BayesianGaussianMixture(**params).fit(X, sample_weight=sample_weight)
    with pytest.raises(ValueError, match=message) as em_error:
        GaussianMixture(**params).fit(X, sample_weight=sample_weight)
    if "covariance_type" not in params:  # the Bayesian half takes fewer structures
        assert str(bayesian_error.value) == str(em_error.value)


@pytest.mark.parametrize("params, message", [
    (dict(init="kmeans"), "Invalid value for 'init'"),
    (dict(chain_method="threads"), "Invalid value for 'chain_method'"),
    (dict(num_chains=0), "Invalid value for 'num_chains'"),
    (dict(target_accept_prob=1.0), "'target_accept_prob'.* must be in \\(0, 1\\)"),
    (dict(weight_concentration=0.0), "Invalid value for 'weight_concentration'"),
    (dict(mean_prior_scale=[1.0, -1.0]), "'mean_prior_scale': every entry must be finite and > 0"),
    (dict(mean_prior=[0.0, 0.0, 0.0]), "'mean_prior': expected a number or an array of shape"),
])
def test_bad_settings_raise_before_sampling(params, message):
    with pytest.raises(ValueError, match=message):
        BayesianGaussianMixture(**params).fit(np.random.default_rng(0).normal(size=(20, 2)))


def test_unfitted_and_wrong_features(fitted):
    model = BayesianGaussianMixture(2)
    for method in (model.predict, model.predict_proba, model.score_samples, model.score):
        with pytest.raises(NotFittedError, match="not fitted yet"):
            method(np.ones((2, 2)))
    with pytest.raises(NotFittedError):
        model.sample(3)
    with pytest.raises(NotFittedError):
        model.summary()
    with pytest.raises(ValueError, match="X has 3 features, but BayesianGaussianMixture is expecting 2 features"):
        fitted.predict(np.ones((2, 3)))
    assert clone(fitted).get_params() == fitted.get_params()


def test_feature_names_reach_the_posterior_and_are_checked(fitted, mixture):
    pandas = pytest.importorskip("pandas")
    X, _, _ = mixture
    frame = pandas.DataFrame(X, columns=["height", "weight"])
    # The settings of ``fitted``: the same compiled sampler and the same draws.
    named = _fit(frame, n_components=2)
    np.testing.assert_array_equal(named.feature_names_in_, ["height", "weight"])
    np.testing.assert_array_equal(named.posterior_params_.means, fitted.posterior_params_.means)
    for idata in (named.inference_data_, named.raw_inference_data_):
        assert list(idata.posterior["means"].coords["feature"].values) == ["height", "weight"]
    assert list(named.inference_data_.observed_data["x"].coords["feature"].values) == [
        "height", "weight"]
    assert "height" in str(az.summary(named.inference_data_, var_names=["means"]).index[0])
    for method in (named.predict, named.predict_proba, named.score_samples, named.score):
        with pytest.raises(ValueError, match="The feature names should match those that "
                           "were passed during fit."):
            method(frame[["weight", "height"]])
    with pytest.warns(UserWarning, match="X does not have valid feature names"):
        named.predict(X[:5])
    assert not hasattr(fitted, "feature_names_in_")


def test_chains_start_from_the_best_of_several_em_restarts():
    # Five clusters, two of them close: single k-means starts differ by seed.
    centres = np.array([[0.0, 0.0], [1.5, 0.0], [8.0, 8.0], [-8.0, 8.0], [0.0, -9.0]])
    X = np.concatenate(
        [centre + np.random.default_rng(i).normal(size=(60, 2)) for i, centre in enumerate(centres)]
    )
    for seed in range(4):
        start = chain_start.fit_em(
            X, None, n_components=5, covariance_type="full",
            random_state=np.random.RandomState(seed), dtype=np.float64,
        )
        best_of = GaussianMixture(5, n_init=chain_start.EM_START_RESTARTS, random_state=seed).fit(X)
        single = GaussianMixture(5, random_state=seed).fit(X)
        assert start.lower_bound == pytest.approx(best_of.lower_bound_, rel=1e-10)
        assert start.lower_bound >= single.lower_bound_ - 1e-12


# ------------------------------------------------------------ ArviZ output without noise


def _arviz_noise(idata):
    """What ArviZ complains about on ``idata``: NaN r_hat rows, and its warnings.

    Returns the index of the ``az.summary`` rows whose r_hat is NaN, the
    RuntimeWarnings of ``az.summary`` and the "single value" warnings of
    ``az.plot_trace``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with warnings.catch_warnings(record=True) as summary_warnings:
        warnings.simplefilter("always")
        summary = az.summary(idata)
    with warnings.catch_warnings(record=True) as trace_warnings:
        warnings.simplefilter("always")
        az.plot_trace(idata)
    plt.close("all")
    runtime = [str(w.message) for w in summary_warnings if issubclass(w.category, RuntimeWarning)]
    single = [str(w.message) for w in trace_warnings if "single value" in str(w.message)]
    return list(summary.index[summary["r_hat"].isna()]), runtime, single


def test_posterior_holds_only_free_quantities(fitted):
    for idata in (fitted.inference_data_, fitted.raw_inference_data_):
        assert _arviz_noise(idata) == ([], [], [])
        assert "corr_cholesky" not in idata.posterior
    posterior_group = fitted.inference_data_.posterior
    assert posterior_group["correlations"].dims == ("chain", "draw", "component", "feature_pair")
    assert list(posterior_group["correlations"].coords["feature_pair"].values) == ["0,1"]
    # The correlations are those of the covariances, draw by draw.
    covariances = posterior_group["covariances"].values
    expected = covariances[..., 0, 1] / np.sqrt(covariances[..., 0, 0] * covariances[..., 1, 1])
    np.testing.assert_allclose(posterior_group["correlations"].values[..., 0], expected,
                               rtol=1e-10)


@pytest.mark.parametrize("covariance_type", ["tied", "diag", "spherical"])
def test_posterior_of_every_covariance_type_holds_only_free_quantities(other_fits, covariance_type):
    # The fits of test_other_covariance_types_recover_the_means.
    _, model = other_fits(covariance_type)
    for idata in (model.inference_data_, model.raw_inference_data_):
        assert _arviz_noise(idata) == ([], [], [])
    if covariance_type == "tied":
        assert model.inference_data_.posterior["correlations"].dims == (
            "chain", "draw", "feature_pair")


def test_correlations_of_three_features_in_pair_order():
    rng = np.random.default_rng(0)
    factor = np.linalg.cholesky(np.corrcoef(rng.normal(size=(3, 10))))
    samples = {"weights": np.full((1, 2, 1), 1.0), "means": np.zeros((1, 2, 1, 3)),
               "scales": np.ones((1, 2, 1, 3)), "corr_cholesky": np.broadcast_to(
                   factor, (1, 2, 1, 3, 3))}
    idata = diagnostics.posterior_dataset(samples, "full", np.array(["a", "b", "c"]))
    correlations = idata.posterior["correlations"]
    assert list(correlations.coords["feature_pair"].values) == ["a,b", "a,c", "b,c"]
    correlation = factor @ factor.T
    np.testing.assert_allclose(correlations.values[0, 0, 0],
                               correlation[[0, 0, 1], [1, 2, 2]], rtol=1e-12)


def test_sample_posterior_predictive_adds_what_plot_ppc_needs(fitted, mixture):
    import copy

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from bayesgmm import plot

    X, _, _ = mixture
    model = copy.deepcopy(fitted)  # the session's fit stays as it is
    assert "posterior_predictive" not in model.inference_data_.groups()
    with pytest.raises(ValueError, match=r"Call sample_posterior_predictive\(\) on the fitted "
                       "BayesianGaussianMixture to add one"):
        plot.ppc(model)
    idata = model.sample_posterior_predictive()
    assert idata is model.inference_data_
    replicates = idata.posterior_predictive["x"]
    assert replicates.dims == ("chain", "draw", "observation", "feature")
    assert replicates.shape == (2, 200, len(X), 2)
    np.testing.assert_allclose(replicates.values.mean(axis=(0, 1, 2)), X.mean(axis=0), atol=0.1)
    np.testing.assert_allclose(replicates.values.std(axis=(0, 1, 2)), X.std(axis=0), rtol=0.05)
    # The estimator's random_state seeds it; another seed replaces the group.
    np.testing.assert_array_equal(
        copy.deepcopy(fitted).sample_posterior_predictive().posterior_predictive["x"], replicates)
    other = model.sample_posterior_predictive(random_state=1).posterior_predictive["x"]
    assert other.shape == replicates.shape and not np.array_equal(other, replicates)
    assert np.size(az.plot_ppc(model.inference_data_, num_pp_samples=5)) == 1
    assert np.size(plot.ppc(model, num_pp_samples=5)) == 2  # one panel per feature
    plt.close("all")
    with pytest.raises(NotFittedError, match="not fitted yet"):
        BayesianGaussianMixture(2).sample_posterior_predictive()


def test_parameter_errors_are_scikit_learns_invalid_parameter_error():
    from sklearn.utils._param_validation import InvalidParameterError

    X = np.random.RandomState(0).randn(20, 2)
    for params, message in [
        (dict(progress_bar="yes"), "Invalid value for 'progress_bar': 'yes'. It must be True "
         "or False."),
        (dict(target_accept_prob=1.5), "Invalid value for 'target_accept_prob': 1.5."),
        (dict(num_chains=0), "Invalid value for 'num_chains': 0. It must be an integer >= 1."),
        (dict(mean_prior_scale=-1.0), "Invalid value for 'mean_prior_scale': every entry must "
         "be finite and > 0."),
    ]:
        with pytest.raises(InvalidParameterError, match=message):
            BayesianGaussianMixture(2, **params).fit(X)
