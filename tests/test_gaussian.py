"""The pure Gaussian math against SciPy's densities."""

import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import multivariate_normal

from bayesgmm import gaussian
from bayesgmm.mixture import parameters, quadratic


def _random_covariances(rng, n_components, n_features):
    factors = rng.normal(size=(n_components, n_features, n_features))
    return factors @ np.swapaxes(factors, 1, 2) + 0.5 * np.eye(n_features)


def _of_type(full, covariance_type):
    """(K, D, D) matrices reduced to the parameter shape of ``covariance_type``."""
    return {
        "full": full,
        "tied": full[0],
        "diag": np.diagonal(full, axis1=1, axis2=2).copy(),
        "spherical": np.diagonal(full, axis1=1, axis2=2).mean(axis=1),
    }[covariance_type]


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
def test_log_gaussian_prob_matches_scipy(covariance_type):
    """Both forms of the log density: direct, and quadratic features (bayesgmm.mixture.quadratic)."""
    rng = np.random.default_rng(0)
    n_components, n_features = 3, 4
    X = rng.normal(size=(50, n_features)) * 2
    means = rng.normal(size=(n_components, n_features))
    full = _random_covariances(rng, n_components, n_features)
    covariances = _of_type(full, covariance_type)
    as_full = {
        "full": lambda k: full[k],
        "tied": lambda k: full[0],
        "diag": lambda k: np.diag(covariances[k]),
        "spherical": lambda k: covariances[k] * np.eye(n_features),
    }[covariance_type]
    expected = np.stack(
        [multivariate_normal(means[k], as_full(k)).logpdf(X) for k in range(n_components)], axis=1
    )
    with parameters.precision_scope(np.float64):
        precisions_cholesky = gaussian.precisions_cholesky_from_covariances(
            jnp.asarray(covariances), covariance_type
        )
        actual = gaussian.log_gaussian_prob(
            jnp.asarray(X), jnp.asarray(means), precisions_cholesky, covariance_type
        )
        round_trip = gaussian.covariances_from_precisions_cholesky(
            precisions_cholesky, covariance_type
        )
        # The EM core's form: quadratic features times coefficients (with the
        # log weights folded in; uniform weights here).
        weights = jnp.full(n_components, 1.0 / n_components)
        expanded = quadratic.features(jnp.asarray(X), covariance_type) @ quadratic.coefficients(
            weights, jnp.asarray(means), precisions_cholesky, covariance_type
        )
        assert actual.dtype == jnp.float64
    np.testing.assert_allclose(actual, expected, rtol=1e-10)
    np.testing.assert_allclose(np.asarray(expanded) - np.log(np.asarray(weights)), expected, rtol=1e-10)
    np.testing.assert_allclose(round_trip, covariances, rtol=1e-10)


def test_non_positive_definite_covariance_gives_nan_not_exception():
    with parameters.precision_scope(np.float64):
        result = gaussian.precisions_cholesky_from_covariances(
            jnp.asarray([[[1.0, 2.0], [2.0, 1.0]]]), "full"
        )
        spherical = gaussian.precisions_cholesky_from_covariances(jnp.asarray([1.0, 0.0]), "spherical")
    assert np.isnan(np.asarray(result)).any()
    assert np.isnan(np.asarray(spherical)[1]) and np.isfinite(np.asarray(spherical)[0])


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
def test_precisions_cholesky_from_precisions_is_scikit_learns(covariance_type):
    """Upper-triangular U with U U^T = P, as scikit-learn's ``precisions_cholesky_``."""
    from sklearn.mixture._gaussian_mixture import (
        _compute_precision_cholesky_from_precisions,
    )

    rng = np.random.default_rng(1)
    full = _random_covariances(rng, 3, 4)
    precisions = _of_type(full, covariance_type)
    with parameters.precision_scope(np.float64):
        ours = np.asarray(gaussian.precisions_cholesky_from_precisions(precisions, covariance_type))
    expected = _compute_precision_cholesky_from_precisions(precisions, covariance_type, xp=np)
    np.testing.assert_allclose(ours, expected, rtol=1e-12, atol=1e-14)
    if covariance_type in ("full", "tied"):
        assert np.all(np.tril(ours, -1) == 0.0)
