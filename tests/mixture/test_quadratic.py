"""The quadratic-feature form of the log densities and statistics (bayesgmm.mixture.quadratic)."""

import jax.numpy as jnp
import numpy as np
import pytest

from bayesgmm import gaussian
from bayesgmm.mixture import forms, parameters, quadratic

COVARIANCE_TYPES = ["full", "tied", "diag", "spherical"]


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_moments_are_the_weighted_raw_moments(covariance_type):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(30, 5))
    resp = rng.dirichlet(np.ones(3), size=30)
    with parameters.precision_scope(np.float64):
        Phi = quadratic.features(jnp.asarray(X), covariance_type)
        weight_sum, first, second = quadratic.moments(
            jnp.asarray(resp).T @ Phi, X.shape[1], covariance_type
        )
    scatter = np.einsum("nk,ni,nj->kij", resp, X, X)
    expected_second = {
        "full": scatter,
        "tied": scatter.sum(axis=0),
        "diag": np.diagonal(scatter, axis1=1, axis2=2),
        "spherical": np.repeat(
            np.diagonal(scatter, axis1=1, axis2=2).mean(axis=1, keepdims=True), X.shape[1], axis=1
        ),
    }[covariance_type]
    np.testing.assert_allclose(weight_sum, resp.sum(axis=0), rtol=1e-12)
    np.testing.assert_allclose(first, resp.T @ X, rtol=1e-12)
    np.testing.assert_allclose(second, expected_second, rtol=1e-12)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_float32_stays_float32_under_x64(covariance_type):
    # A float64 constant in the coefficients would silently turn every
    # float32 product into a float64 one (and halve the speed).
    n_components, n_features = 3, 4
    covariances = {
        "full": np.broadcast_to(2 * np.eye(n_features), (n_components, n_features, n_features)),
        "tied": 2 * np.eye(n_features),
        "diag": np.full((n_components, n_features), 2.0),
        "spherical": np.full(n_components, 2.0),
    }[covariance_type]
    with parameters.precision_scope(np.float64):
        precisions_cholesky = gaussian.precisions_cholesky_from_covariances(
            jnp.asarray(covariances, jnp.float32), covariance_type
        )
        theta = quadratic.coefficients(
            jnp.full(n_components, 1 / n_components, jnp.float32),
            jnp.zeros((n_components, n_features), jnp.float32),
            precisions_cholesky, covariance_type,
        )
        Phi = quadratic.features(jnp.ones((5, n_features), jnp.float32), covariance_type)
    assert theta.dtype == jnp.float32
    assert Phi.dtype == jnp.float32


def test_packed_index_is_symmetric_and_covers_the_upper_triangle():
    index = quadratic.packed_index(4)
    np.testing.assert_array_equal(index, index.T)
    rows, columns = np.triu_indices(4)
    np.testing.assert_array_equal(index[rows, columns], np.arange(rows.size))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_normalise_gives_zero_not_subnormal_responsibilities(dtype):
    # Subnormal responsibilities slow every later product; they must be 0.
    tiny = np.finfo(dtype).tiny
    gaps = np.array([0.0, -5.0, -80.0, -700.0, -720.0, -740.0, -800.0, -np.inf])
    weighted = np.stack([gaps, gaps[::-1]]).astype(dtype)
    with parameters.precision_scope(dtype):
        log_prob_norm, resp = forms.normalise(jnp.asarray(weighted))
    resp = np.asarray(resp)
    assert not np.any((resp > 0) & (resp < tiny))
    np.testing.assert_allclose(resp.sum(axis=1), 1.0, rtol=1e-6)
    expected = np.logaddexp.reduce(weighted.astype(np.float64), axis=1)
    np.testing.assert_allclose(log_prob_norm, expected, rtol=1e-6)
    # Everything representable as a normal number is kept exactly as softmax gives it.
    reference = np.exp(weighted.astype(np.float64) - expected[:, None])
    normal = reference >= 10 * len(gaps) * np.e * tiny
    np.testing.assert_allclose(resp[normal], reference[normal], rtol=1e-5)
