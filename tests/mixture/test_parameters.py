"""The pytrees of a fit and the precision scope (float64 without touching global JAX settings)."""

import jax
import jax.numpy as jnp
import numpy as np

from bayesgmm.mixture import parameters


def test_precision_scope_does_not_change_global_setting():
    before = jax.config.jax_enable_x64
    with parameters.precision_scope(np.float64):
        assert jnp.ones(1).dtype == jnp.float64
    assert jax.config.jax_enable_x64 == before


def test_component_bucket_pads_small_fits_only():
    assert parameters.component_bucket(1, 1000, 4, "full") == 16
    assert parameters.component_bucket(9, 1000, 4, "full") == 16
    assert parameters.component_bucket(17, 1000, 4, "full") == 32
    assert parameters.component_bucket(16, 1000, 4, "full") == 16
    # One large fit keeps its exact number of components (no padded work).
    assert parameters.component_bucket(8, 100_000, 10, "full") == 8
    assert parameters.component_bucket(16, 1_000_000, 16, "full") == 16


def test_pad_components_adds_inactive_components():
    params = parameters.GMMParams(
        np.array([0.25, 0.75]), np.ones((2, 3)), np.stack([2 * np.eye(3)] * 2), np.stack([np.eye(3)] * 2)
    )
    padded = parameters.pad_components(params, 5, "full")
    np.testing.assert_array_equal(padded.weights, [0.25, 0.75, 0, 0, 0])
    np.testing.assert_array_equal(padded.means[2:], 0.0)
    np.testing.assert_array_equal(padded.covariances[2:], np.broadcast_to(np.eye(3), (3, 3, 3)))
    back = parameters.active_params(padded, 2, "full")
    for original, recovered in zip(params, back):
        np.testing.assert_array_equal(original, recovered)
    tied = parameters.GMMParams(np.array([0.5, 0.5]), np.zeros((2, 3)), np.eye(3), np.eye(3))
    assert parameters.pad_components(tied, 4, "tied").covariances.shape == (3, 3)
