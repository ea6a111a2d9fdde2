"""Rounding in the expanded square: accurate where it can be, an error where it cannot.

EM evaluates ``x^T P x - 2 mu^T P x + mu^T P mu`` on data centred at their
mean (:mod:`bayesgmm.quadratic`). That is exact enough in float64 for any
realistic data, and more accurate than scikit-learn's own 'diag' and
'spherical' paths when the data sit far from the origin. In float32 a
component far from the centre in units of its own spread loses its
covariance to rounding; such a fit must raise, not return wrong numbers.
"""

import numpy as np
import pytest
from scipy.special import logsumexp
from scipy.stats import norm

from bayesgmm import GaussianMixture, em

LOST = "The fit lost its accuracy to rounding"


def _far_clusters(offset=1e4, n=300, seed=0):
    """Two tight clusters (sd 1) at -offset and +offset: the data's mean is between them."""
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.normal(-offset, 1.0, (n, 2)), rng.normal(offset, 1.0, (n, 2))])


def _exact_log_density(model, X):
    """log p(x) from scipy's normal densities, for 'diag' and 'spherical' fits."""
    variances = model.covariances_
    if model.covariance_type == "spherical":
        variances = np.repeat(variances[:, None], X.shape[1], axis=1)
    return logsumexp(
        [
            np.log(weight) + norm(mean, np.sqrt(variance)).logpdf(X).sum(axis=1)
            for weight, mean, variance in zip(model.weights_, model.means_, variances)
        ],
        axis=0,
    )


@pytest.mark.parametrize("covariance_type", ["diag", "spherical"])
def test_data_far_from_the_origin_keep_full_accuracy(covariance_type):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 2)) + 1e6 + np.repeat([[0.0, 0.0], [5.0, 5.0]], 200, axis=0)
    model = GaussianMixture(2, covariance_type=covariance_type, random_state=0).fit(X)
    # scikit-learn 1.9.1 is off by about 1e-2 here (it expands the square around 0).
    np.testing.assert_allclose(model.score_samples(X), _exact_log_density(model, X), rtol=0, atol=1e-9)
    np.testing.assert_allclose(np.sort(model.means_[:, 0]), [1e6, 1e6 + 5.0], atol=0.2)


def test_far_tight_clusters_are_recovered_in_float64():
    X = _far_clusters()
    model = GaussianMixture(2, covariance_type="spherical", random_state=0).fit(X)
    np.testing.assert_allclose(np.sort(model.means_[:, 0]), [-1e4, 1e4], atol=0.2)
    np.testing.assert_allclose(model.covariances_, 1.0, rtol=0.15)


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
def test_float32_fit_that_rounding_ruins_raises(covariance_type):
    # Clusters 1e4 standard deviations from the centre: float32 keeps ~7 digits
    # of x^2 ~ 1e8, so the covariances (~1) are lost. 'spherical' used to come
    # back finite and wrong (variance ~13); the others fail as non-finite.
    X = _far_clusters()
    with pytest.raises(ValueError, match="(lost its accuracy to rounding|ill-defined empirical covariance).*float64"):
        GaussianMixture(2, covariance_type=covariance_type, random_state=0, dtype="float32").fit(X)


@pytest.mark.parametrize("covariance_type", ["full", "diag", "spherical"])
def test_float32_fit_that_is_finite_but_inaccurate_raises(covariance_type):
    # 300 standard deviations: the float32 fit comes back finite with its
    # covariances 6 to 8 % off (measured against float64); it must not pass.
    X = _far_clusters(offset=300.0)
    message = (
        LOST + r": the mean of component \d lies [0-9.e+]+ standard deviations .* "
        r"in float32 its covariance is only known to about [0-9.e+]+ %\. Pass dtype='float64'"
    )
    with pytest.raises(ValueError, match=message):
        GaussianMixture(2, covariance_type=covariance_type, random_state=0, dtype="float32").fit(X)


def test_float32_keeps_fits_that_rounding_leaves_accurate():
    # 30 standard deviations: float32 covariances (about 1) within 2e-3 of float64 (6e-4 measured).
    X = _far_clusters(offset=30.0)
    single = GaussianMixture(2, random_state=0, dtype="float32").fit(X)
    double = GaussianMixture(2, random_state=0).fit(X)
    np.testing.assert_allclose(single.covariances_, double.covariances_, rtol=0, atol=2e-3)


def test_streamed_and_online_float32_fits_are_checked_too():
    X = _far_clusters(offset=300.0)
    model = GaussianMixture(2, covariance_type="spherical", random_state=0, dtype="float32")
    with pytest.raises(ValueError, match=LOST):
        model.fit(lambda: iter([X[:400], X[400:]]))
    model = GaussianMixture(2, covariance_type="spherical", random_state=0, dtype="float32")
    with pytest.raises(ValueError, match=LOST):
        model.partial_fit(X)


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
def test_check_precision_threshold_depends_on_the_dtype(covariance_type):
    # One component 1000 standard deviations from the centre: float32 loses
    # about 8 eps * 1e6 = 95 % of its covariance, float64 nothing visible.
    shapes = {"full": (2, 2, 2), "tied": (2, 2), "diag": (2, 2), "spherical": (2,)}
    factor = {"full": np.eye(2)[None].repeat(2, 0), "tied": np.eye(2)}.get(
        covariance_type, np.ones(shapes[covariance_type])
    )
    params = em.GMMParams(np.array([0.5, 0.5]), np.array([[0.0, 0.0], [1000.0, 0.0]]), None, factor)
    em.check_precision(params, covariance_type, np.float64)
    with pytest.raises(ValueError, match=LOST + ": the mean of component 1 lies 1e\\+03 standard deviations"):
        em.check_precision(params, covariance_type, np.float32)
    # 100 standard deviations: about 1 % in float32 (0.5 to 0.8 % measured), below the limit.
    em.check_precision(params._replace(means=params.means / 10), covariance_type, np.float32)
