"""The M-step: parameters from sufficient statistics, inactive components kept inactive."""

import numpy as np
import pytest

from bayesgmm.mixture import mstep, parameters


def test_m_step_keeps_inactive_components_at_zero_weight():
    import jax.numpy as jnp

    with parameters.precision_scope("float64"):
        stats = parameters.SufficientStats(
            jnp.array([3.0, 1.0, 0.0]), jnp.array([[3.0, 0.0], [1.0, 1.0], [0.0, 0.0]]),
            jnp.array([[5.0, 1.0], [2.0, 2.0], [0.0, 0.0]]), jnp.array(0.0), jnp.array(4.0),
        )
        params = mstep.m_step(stats, 1e-6, "diag", jnp.array([True, True, False]))
        params = parameters.GMMParams(*(np.asarray(leaf) for leaf in params))
    assert float(params.weights[2]) == 0.0
    np.testing.assert_allclose(np.sum(params.weights), 1.0, rtol=1e-15)
    np.testing.assert_array_equal(np.asarray(params.means[2]), 0.0)
    np.testing.assert_array_equal(np.asarray(params.covariances[2]), 1.0)
    np.testing.assert_allclose(np.asarray(params.covariances[0]), [5 / 3 - 1 + 1e-6, 1 / 3 + 1e-6], rtol=1e-9)


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
def test_m_step_from_statistics_is_the_weighted_moment_estimate(covariance_type):
    """Weights, means and covariances from raw moments equal the textbook estimates."""
    import jax.numpy as jnp

    rng = np.random.default_rng(0)
    X = rng.normal(size=(50, 3))
    resp = rng.dirichlet(np.ones(2), size=50)
    nk = resp.sum(axis=0)
    means = resp.T @ X / nk[:, None]
    centred = X[None] - means[:, None]  # (K, N, D)
    full = np.einsum("kn,kni,knj->kij", resp.T, centred, centred) / nk[:, None, None]
    reg = 1e-3
    expected = {
        "full": full + reg * np.eye(3),
        "tied": np.einsum("k,kij->ij", nk, full) / nk.sum() + reg * np.eye(3),
        "diag": np.diagonal(full, axis1=1, axis2=2) + reg,
        "spherical": np.diagonal(full, axis1=1, axis2=2).mean(axis=1) + reg,
    }[covariance_type]
    second = np.einsum("nk,ni,nj->kij", resp, X, X)
    second = {"full": second, "tied": second.sum(axis=0)}.get(
        covariance_type, np.diagonal(second, axis1=1, axis2=2)
    )
    with parameters.precision_scope("float64"):
        stats = parameters.SufficientStats(
            jnp.asarray(nk), jnp.asarray(resp.T @ X), jnp.asarray(second), jnp.array(0.0),
            jnp.array(50.0),
        )
        params = mstep.m_step(stats, reg, covariance_type)
        params = parameters.GMMParams(*(np.asarray(leaf) for leaf in params))
    np.testing.assert_allclose(params.weights, nk / 50, rtol=1e-14)
    np.testing.assert_allclose(params.means, means, rtol=1e-12)
    np.testing.assert_allclose(params.covariances, expected, rtol=1e-10)
