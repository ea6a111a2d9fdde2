"""Marginal densities and conditionals on observed coordinates against SciPy and closed forms."""

import jax
import numpy as np
import pytest
from scipy.stats import multivariate_normal

from bayesgmm import gaussian, marginal, structures


@pytest.fixture(autouse=True)
def _x64():
    with jax.enable_x64(True):
        yield


def _covariances(rng, n_components, n_features):
    factor = rng.normal(size=(n_components, n_features, n_features))
    return factor @ np.swapaxes(factor, 1, 2) + np.eye(n_features)


@pytest.mark.parametrize(
    "observed", [[True, False, True, False], [True, True, True, True], [False, False, False, True]]
)
def test_marginal_log_prob_matches_scipy(observed):
    rng = np.random.default_rng(0)
    covariances = _covariances(rng, 3, 4)
    means = rng.normal(size=(3, 4))
    observed = np.array(observed)
    X = rng.normal(size=(6, 4))
    X[:, ~observed] = np.nan
    factors = marginal.marginal_factors(covariances, observed)
    got = np.asarray(marginal.marginal_log_prob(X, observed, means, factors))
    expected = np.array([
        [multivariate_normal(means[k, observed], covariances[k][np.ix_(observed, observed)]).logpdf(x[observed])
         for k in range(3)]
        for x in X
    ])
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


def test_conditional_mean_and_covariance_closed_form():
    rng = np.random.default_rng(1)
    covariances = _covariances(rng, 2, 5)
    means = rng.normal(size=(2, 5))
    observed = np.array([True, False, True, True, False])
    missing = ~observed
    X = rng.normal(size=(4, 5))
    X[:, missing] = np.nan
    factors = marginal.marginal_factors(covariances, observed)
    conditional = np.asarray(marginal.conditional_means(X, observed, means, factors))
    for k in range(2):
        sigma = covariances[k]
        gain = sigma[np.ix_(missing, observed)] @ np.linalg.inv(sigma[np.ix_(observed, observed)])
        expected = means[k, missing] + (X[:, observed] - means[k, observed]) @ gain.T
        np.testing.assert_allclose(conditional[:, k][:, missing], expected, rtol=1e-11)
        np.testing.assert_allclose(conditional[:, k][:, observed], X[:, observed], rtol=1e-14, atol=1e-15)
        cov = sigma[np.ix_(missing, missing)] - gain @ sigma[np.ix_(observed, missing)]
        got = np.asarray(factors.conditional_covariance[k])
        np.testing.assert_allclose(got[np.ix_(missing, missing)], cov, rtol=1e-11, atol=1e-12)
        assert not got[observed].any() and not got[:, observed].any()


@pytest.mark.parametrize("covariance_type", list(structures.STRUCTURES_SKLEARN))
def test_dense_covariances_every_structure(covariance_type):
    rng = np.random.default_rng(2)
    structure = structures.get(covariance_type)
    full = _covariances(rng, 3, 3)
    covariances = {
        "full": full, "tied": full[0], "diag": np.diagonal(full, axis1=1, axis2=2), "spherical": full[:, 0, 0],
    }[covariance_type]
    precisions_cholesky = gaussian.precisions_cholesky_from_covariances(covariances, covariance_type)
    dense = np.asarray(marginal.dense_covariances(precisions_cholesky, covariance_type, 3, 3))
    np.testing.assert_allclose(dense, structure.full_matrices(covariances, 3, 3), rtol=1e-12, atol=1e-12)


def test_row_patterns_and_zero_weights():
    rng = np.random.default_rng(3)
    covariances = _covariances(rng, 2, 3)
    means = rng.normal(size=(2, 3))
    weights = np.array([0.3, 0.0])
    X = rng.normal(size=(5, 3))
    observed = rng.random((5, 3)) < 0.7
    observed[:, 0] = True
    X[~observed] = np.nan
    got = np.asarray(marginal.row_log_weighted_prob(X, observed, weights, means, covariances))
    assert np.all(got[:, 1] == -np.inf)
    for n in range(5):
        o = observed[n]
        expected = np.log(0.3) + multivariate_normal(means[0, o], covariances[0][np.ix_(o, o)]).logpdf(X[n, o])
        np.testing.assert_allclose(got[n, 0], expected, rtol=1e-12)


@pytest.mark.parametrize(
    "observed", [[True, False, True, False, True], [True, True, True, True, True], [False, False, False, True, False]]
)
def test_sweep_gives_the_marginal_precision_regression_and_conditional(observed):
    rng = np.random.default_rng(1)
    covariances = _covariances(rng, 3, 5)
    observed = np.array(observed)
    missing = ~observed
    swept = marginal.sweep_observed(covariances, observed)
    for k, covariance in enumerate(covariances):
        inverse = np.linalg.inv(covariance[np.ix_(observed, observed)])
        precision = np.zeros((5, 5))
        precision[np.ix_(observed, observed)] = inverse
        regression = np.zeros((5, 5))
        regression[np.ix_(missing, observed)] = covariance[np.ix_(missing, observed)] @ inverse
        conditional = np.zeros((5, 5))
        explained = regression[np.ix_(missing, observed)] @ covariance[np.ix_(observed, missing)]
        conditional[np.ix_(missing, missing)] = covariance[np.ix_(missing, missing)] - explained
        np.testing.assert_allclose(swept.precision[k], precision, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(swept.regression[k], regression, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(swept.conditional_covariance[k], conditional, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(swept.log_det[k], np.linalg.slogdet(covariance[np.ix_(observed, observed)])[1],
                                   rtol=1e-12)
    assert int(swept.n_observed) == observed.sum()
