"""BayesianGaussianMixture(missing='marginalize'): the marginal likelihood, NUTS and SVI on
incomplete data, predictions on incomplete rows, posterior multiple imputation, errors.

The model's density is checked against scipy's on each row's observed coordinates; fits are
CI-sized (300 points, short chains), tolerances in posterior standard deviations.
"""

import functools
import warnings

import arviz as az
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from numpyro.infer.util import log_density
from scipy.stats import multivariate_normal

from bayesgmm import BayesianGaussianMixture, gaussian
from bayesgmm.bayes import diagnostics, fitting, incomplete, posterior
from bayesgmm.bayes.model import GaussianMixtureLikelihood, gmm_model
from bayesgmm.mixture import parameters

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")
TRUE_MEANS = np.array([[-3.0, 0.0, 1.0], [3.0, 1.0, -1.0]])
TRUE_COVARIANCE = np.array([[1.0, 0.5, 0.2], [0.5, 1.0, 0.3], [0.2, 0.3, 1.0]])
SMALL_NUTS = dict(num_warmup=120, num_samples=120, num_chains=2, progress_bar=False)


def _missing_at_random(X, share, seed):
    """NaN in ``share`` of the entries, never a whole row."""
    rng = np.random.default_rng(seed)
    mask = rng.random(X.shape) < share
    mask[mask.all(axis=1), 0] = False
    X = X.copy()
    X[mask] = np.nan
    return X


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(3)
    labels = rng.random(300) < 0.4
    X = np.where(labels[:, None], TRUE_MEANS[0], TRUE_MEANS[1]) + rng.multivariate_normal(
        np.zeros(3), TRUE_COVARIANCE, 300)
    return X, _missing_at_random(X, 0.2, 4)


def _random_parameters(covariance_type, n_components=3, n_features=3, seed=0):
    """Weights, means and covariances in scikit-learn's shapes for ``covariance_type``."""
    rng = np.random.default_rng(seed)
    A = rng.normal(size=(n_components, n_features, n_features))
    covariances = A @ np.swapaxes(A, 1, 2) + n_features * np.eye(n_features)
    if covariance_type == "tied":
        covariances = covariances[0]
    elif covariance_type == "diag":
        covariances = np.diagonal(covariances, axis1=1, axis2=2).copy()
    elif covariance_type == "spherical":
        covariances = np.diagonal(covariances, axis1=1, axis2=2).mean(axis=1)
    return rng.dirichlet(np.ones(n_components)), rng.normal(size=(n_components, n_features)), covariances


def _dense(covariances, covariance_type, n_components, n_features):
    if covariance_type == "full":
        return covariances
    if covariance_type == "tied":
        return np.broadcast_to(covariances, (n_components, n_features, n_features))
    if covariance_type == "diag":
        return np.stack([np.diag(c) for c in covariances])
    return covariances[:, None, None] * np.eye(n_features)


def _scipy_log_likelihood(X, weights, means, dense):
    values = []
    for x in X:
        observed = ~np.isnan(x)
        values.append(np.log(sum(
            w * multivariate_normal(m[observed], c[np.ix_(observed, observed)]).pdf(x[observed])
            for w, m, c in zip(weights, means, dense))))
    return np.array(values)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_the_likelihood_is_the_density_of_the_observed_coordinates(covariance_type):
    X = _missing_at_random(np.random.default_rng(1).normal(size=(40, 3)) * 2, 0.35, 2)
    weights, means, covariances = _random_parameters(covariance_type)
    dense = _dense(covariances, covariance_type, 3, 3)
    with parameters.precision_scope(np.float64):
        precisions_cholesky = gaussian.precisions_cholesky_from_covariances(jnp.asarray(covariances),
                                                                           covariance_type)
        rows = incomplete.rows(X)
        assert rows.observed.patterns.shape[0] == 8  # 7 patterns of 3 columns, padded to 8
        likelihood = GaussianMixtureLikelihood(jnp.asarray(weights), jnp.asarray(means),
                                               precisions_cholesky, covariance_type, rows.observed)
        assert likelihood.batch_shape == (40,)
        log_prob = np.asarray(likelihood.log_prob(rows.X))
    np.testing.assert_allclose(log_prob, _scipy_log_likelihood(X, weights, means, dense), rtol=1e-12)


def test_the_model_integrates_out_the_missing_values(data):
    X, X_missing = data
    params = {"weights": np.array([0.4, 0.6]), "means": TRUE_MEANS,
              "scales": np.ones((2, 3)), "corr_cholesky": np.broadcast_to(np.eye(3), (2, 3, 3))}
    model = functools.partial(gmm_model, n_components=2, covariance_type="full")

    @jax.jit
    def density(data):
        priors = dict(mean_prior_loc=jnp.zeros(3), mean_prior_scale=jnp.full(3, 5.0),
                      scale_prior_median=jnp.ones(3))
        return log_density(model, (), dict(priors, **data), params)[0]

    with parameters.precision_scope(np.float64):
        rows = incomplete.rows(X_missing)
        marginal = density({"X": rows.X, "observed": rows.observed})
        # Weight zero on every row leaves the priors' density alone.
        priors_only = density({"X": rows.X, "observed": rows.observed, "sample_weight": jnp.zeros(300)})
    assert incomplete.observed_patterns(X) is None
    expected = _scipy_log_likelihood(X_missing, [0.4, 0.6], TRUE_MEANS, np.broadcast_to(np.eye(3), (2, 3, 3)))
    np.testing.assert_allclose(float(marginal - priors_only), expected.sum(), rtol=1e-11)


def test_default_priors_use_the_observed_entries(data):
    X, X_missing = data
    from bayesgmm.bayes.priors import default_prior

    prior = default_prior(X_missing)
    observed = ~np.isnan(X_missing)
    means = np.array([X_missing[observed[:, j], j].mean() for j in range(3)])
    stds = np.array([X_missing[observed[:, j], j].std() for j in range(3)])
    np.testing.assert_allclose(prior.mean_loc, means, rtol=1e-13)
    np.testing.assert_allclose(prior.scale_median, default_prior(X).scale_median * stds / X.std(axis=0),
                               rtol=1e-12)
    with parameters.precision_scope(np.float64):
        rows = incomplete.rows(X_missing)
        in_jax = default_prior(rows.X, observed=rows.observed.patterns[rows.observed.row_pattern])
    np.testing.assert_allclose(np.asarray(in_jax.mean_loc), prior.mean_loc, rtol=1e-13)


def test_imputation_draws_follow_the_conditional_distribution():
    # One component: the missing coordinate given the observed one is
    # N(mu_m + s_mo / s_oo (x_o - mu_o), s_mm - s_mo^2 / s_oo).
    cov = np.array([[2.0, 0.8], [0.8, 1.0]])
    params = parameters.GMMParams(
        weights=np.ones((1, 1)), means=np.array([[[1.0, -1.0]]]), covariances=cov[None, None],
        precisions_cholesky=np.linalg.cholesky(np.linalg.inv(cov))[None, None])
    params = parameters.GMMParams(*(np.repeat(leaf, 4000, axis=0) for leaf in params))
    X = np.array([[3.0, np.nan], [np.nan, 0.5]])
    draws = posterior.imputation_draws(jax.random.key(0), X, params, "full")
    assert draws.shape == (4000, 2, 2)
    np.testing.assert_array_equal(draws[:, 0, 0], 3.0)
    np.testing.assert_array_equal(draws[:, 1, 1], 0.5)
    first, second = draws[:, 0, 1], draws[:, 1, 0]
    assert abs(first.mean() - (-1.0 + 0.4 * 2.0)) < 4 * np.sqrt(1.0 - 0.32) / np.sqrt(4000)
    assert abs(first.var() / (1.0 - 0.32) - 1) < 0.1
    assert abs(second.mean() - (1.0 + 0.8 * 1.5)) < 4 * np.sqrt(2.0 - 0.64) / np.sqrt(4000)
    assert abs(second.var() / (2.0 - 0.64) - 1) < 0.1


@pytest.fixture(scope="module")
def nuts_fit(data):
    _, X_missing = data
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", diagnostics.SamplingWarning)
        return BayesianGaussianMixture(2, missing="marginalize", random_state=0,
                                       **SMALL_NUTS).fit(X_missing)


def test_nuts_on_incomplete_data_recovers_the_means(nuts_fit):
    order = np.argsort(nuts_fit.means_[:, 0])
    draws = nuts_fit.posterior_params_.means[:, order]
    np.testing.assert_array_less(np.abs(draws.mean(axis=0) - TRUE_MEANS), 4 * draws.std(axis=0) + 0.05)
    covariance = nuts_fit.posterior_params_.covariances[:, order].mean(axis=0)
    np.testing.assert_allclose(covariance, np.broadcast_to(TRUE_COVARIANCE, (2, 3, 3)), atol=0.35)


def test_predictions_and_loo_use_the_observed_coordinates(nuts_fit, data):
    _, X_missing = data
    draws = nuts_fit.posterior_params_
    rows = X_missing[:12]
    pointwise = posterior.pointwise_log_likelihood(rows, draws, "full")
    for s in (0, 77, 239):
        dense = draws.covariances[s]
        np.testing.assert_allclose(pointwise[s], _scipy_log_likelihood(rows, draws.weights[s], draws.means[s],
                                                                       dense), rtol=1e-10)
    np.testing.assert_allclose(nuts_fit.score_samples(rows),
                               np.log(np.mean(np.exp(pointwise), axis=0)), rtol=1e-10)
    stored = nuts_fit.inference_data_.log_likelihood["x"].values.reshape(240, -1)
    np.testing.assert_allclose(stored[:, :12], pointwise, rtol=1e-10)
    loo = az.loo(nuts_fit.inference_data_)
    assert np.isfinite(loo.elpd_loo)
    lower, upper = nuts_fit.predict_proba_interval(rows)
    proba_draws = nuts_fit.predict_proba_draws(rows)
    np.testing.assert_allclose(lower, np.quantile(proba_draws, 0.05, axis=0), rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(upper, np.quantile(proba_draws, 0.95, axis=0), rtol=1e-10, atol=1e-15)
    for s in (0, 239):
        joint = np.stack([np.exp(_scipy_log_likelihood(rows, [1.0], draws.means[s, k:k + 1],
                                                       draws.covariances[s, k:k + 1])) * draws.weights[s, k]
                          for k in range(2)], axis=1)
        np.testing.assert_allclose(proba_draws[s], joint / joint.sum(axis=1, keepdims=True), rtol=1e-8,
                                   atol=1e-14)
    np.testing.assert_allclose(nuts_fit.predict_proba(rows), proba_draws.mean(axis=0), rtol=1e-10)


def test_imputation_draws_keep_the_observed_values(nuts_fit, data):
    X, X_missing = data
    imputations = nuts_fit.impute_draws(random_state=0)
    assert imputations.dims == ("chain", "draw", "observation", "feature")
    assert imputations.shape == (2, 120) + X.shape
    missing = np.isnan(X_missing)
    np.testing.assert_array_equal(imputations.values[..., ~missing], np.broadcast_to(
        X_missing[~missing], (2, 120, int((~missing).sum()))))
    completed = imputations.mean(("chain", "draw")).values
    mean_fill = np.where(missing, np.nanmean(X_missing, axis=0), X_missing)
    assert np.mean((completed - X)[missing] ** 2) < 0.5 * np.mean((mean_fill - X)[missing] ** 2)
    again = nuts_fit.impute_draws(random_state=0)
    np.testing.assert_array_equal(again.values, imputations.values)


def test_svi_on_incomplete_data(data):
    _, X_missing = data
    settings = dict(inference="svi", svi_steps=400, svi_num_draws=100, random_state=0, progress_bar=False)
    fit = BayesianGaussianMixture(2, missing="marginalize", **settings).fit(X_missing)
    order = np.argsort(fit.means_[:, 0])
    np.testing.assert_allclose(fit.means_[order], TRUE_MEANS, atol=0.35)
    assert fit.inference_data_.log_likelihood["x"].shape == (1, 100, 300)


def test_complete_data_take_the_complete_data_path(data):
    X, X_missing = data
    # What the samplers are given: complete data carry no patterns, so gmm_model,
    # the likelihood and every evaluation run exactly as with missing='raise'.
    assert fitting.data_kwargs(X, np.asarray).keys() == {"X"}
    assert fitting.data_kwargs(X, np.asarray)["X"] is X
    assert incomplete.rows(X).observed is None
    assert set(fitting.data_kwargs(X_missing, np.asarray)) == {"X", "observed"}
    assert not np.isnan(fitting.data_kwargs(X_missing, np.asarray)["X"]).any()
    model = BayesianGaussianMixture(2, missing="marginalize")
    checked, weights, prior = model._check_data(X, None, np.dtype(np.float64))
    reference = BayesianGaussianMixture(2)._check_data(X, None, np.dtype(np.float64))
    np.testing.assert_array_equal(checked, reference[0])
    assert weights is None and reference[1] is None
    for ours, theirs in zip(prior, reference[2]):
        np.testing.assert_array_equal(ours, theirs)


def test_bad_input_is_refused_before_any_work(data):
    _, X_missing = data
    row, column = np.argwhere(np.isnan(X_missing))[0]
    with pytest.raises(ValueError) as error:
        BayesianGaussianMixture(2).fit(X_missing)
    assert str(error.value) == (
        f"X contains NaN (first at row {row}, column {column}). Remove or impute non-finite values "
        "before fitting, or pass missing='marginalize' to treat NaN as values missing at random.")
    with pytest.raises(ValueError, match="Invalid value for 'missing'"):
        BayesianGaussianMixture(2, missing="drop").fit(X_missing)
    empty_row = X_missing.copy()
    empty_row[5] = np.nan
    with pytest.raises(ValueError, match=r"^Row 5 of X has every value missing: it has no likelihood\."):
        BayesianGaussianMixture(2, missing="marginalize").fit(empty_row)
    empty_column = data[0].copy()
    empty_column[:, 1] = np.nan
    with pytest.raises(ValueError, match=r"^Column 1 of X has no observed value"):
        BayesianGaussianMixture(2, missing="marginalize").fit(empty_column)
