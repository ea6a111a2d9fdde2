"""Online (stepwise) EM: partial_fit."""

import warnings

import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

from bayesgmm import GaussianMixture
from bayesgmm.mixture import (
    forms,
    mstep,
    online,
    parameters,
)

# --------------------------------------------------------------------------
# Online EM
# --------------------------------------------------------------------------


def test_step_size_schedule():
    assert online.step_size(0) == 1.0
    assert online.step_size(3) == pytest.approx(
        (3 + online.STEP_SIZE_OFFSET) ** -online.STEP_SIZE_EXPONENT
    )
    assert online.step_size(4, exponent=1.0, offset=0.0) == 0.25
    with pytest.raises(ValueError, match="exponent must be in \\(0.5, 1\\]"):
        online.step_size(1, exponent=0.5)


def test_partial_fit_steps_are_stepwise_em(unequal_3d):
    X, _ = unequal_3d
    model = GaussianMixture(3, max_iter=3, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X[:300])
    fitted_attributes = set(vars(model))
    params = parameters.GMMParams(
        model.weights_, model.means_, model.covariances_, model.precisions_cholesky_
    )
    model.partial_fit(X[300:600]).partial_fit(X[600:])
    # By hand: the first batch's statistics (per unit weight) are taken whole,
    # which is one EM step from the fitted parameters; the second batch's are
    # mixed in with step gamma_1.
    with parameters.precision_scope("float64"):
        params = parameters.GMMParams(*(jnp.asarray(leaf) for leaf in params))
        statistics = None
        for batch, gamma in ((X[300:600], 1.0), (X[600:], online.step_size(1))):
            batch_stats = forms.accumulate_statistics(
                jnp.asarray(batch)[None], jnp.ones((1, batch.shape[0])), params, "full"
            )
            batch_stats = parameters.SufficientStats(*(leaf / batch.shape[0] for leaf in batch_stats))
            statistics = (
                batch_stats
                if statistics is None
                else parameters.SufficientStats(
                    *((1 - gamma) * old + gamma * new for old, new in zip(statistics, batch_stats))
                )
            )
            params = mstep.m_step(statistics, 1e-6, "full")
    np.testing.assert_allclose(model.means_, params.means, rtol=1e-8, atol=1e-8)
    np.testing.assert_allclose(model.covariances_, params.covariances, rtol=1e-8, atol=1e-8)
    assert model.n_iter_ == 2 and model.lower_bounds_.shape == (2,)
    assert model.lower_bound_ == pytest.approx(float(statistics.log_likelihood), rel=1e-10)
    assert set(vars(model)) - {"_online_state_"} == fitted_attributes


def test_partial_fit_reaches_the_batch_fit_on_a_stream_of_a_million_points():
    rng = np.random.default_rng(0)
    n_components, n_features, n_samples = 4, 3, 1_000_000
    weights = np.array([0.4, 0.3, 0.2, 0.1])
    means = np.array([[0.0, 0.0, 0.0], [6.0, 0.0, 0.0], [0.0, 6.0, 0.0], [0.0, 0.0, 6.0]])
    mixing = rng.normal(scale=0.5, size=(n_components, n_features, n_features)) + np.eye(n_features)
    labels = rng.choice(n_components, size=n_samples, p=weights)
    X = means[labels] + np.einsum(
        "nd,nde->ne", rng.normal(size=(n_samples, n_features)), mixing[labels]
    )
    covariances = np.einsum("kde,kfe->kdf", mixing, mixing)
    batch = GaussianMixture(
        n_components,
        weights_init=weights,
        means_init=means,
        precisions_init=np.linalg.inv(covariances),
    ).fit(X)
    online = GaussianMixture(n_components, random_state=0)
    for start in range(0, n_samples, 10_000):
        online.partial_fit(X[start : start + 10_000])
    assert online.n_iter_ == 100
    assert abs(online.score(X) - batch.score(X)) < 1e-2
    assert online.lower_bound_ == pytest.approx(batch.lower_bound_, abs=2e-2)


def test_partial_fit_bad_input():
    X = np.random.default_rng(0).normal(size=(30, 2))
    with pytest.raises(ValueError, match="n_components = 4, n_samples = 3"):
        GaussianMixture(4).partial_fit(X[:3])
    model = GaussianMixture(2, random_state=0).partial_fit(X)
    with pytest.raises(ValueError, match="X has 3 features, but GaussianMixture is expecting 2 features as input"):
        model.partial_fit(np.zeros((5, 3)))
    with pytest.raises(ValueError, match="contains NaN"):
        model.partial_fit(np.array([[0.0, np.nan]]))
    model.partial_fit(X[:1])  # later batches may be as small as one row
    assert model.n_iter_ == 2
