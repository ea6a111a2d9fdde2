"""Agreement with scikit-learn's GaussianMixture on the same initialisation."""

import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture as SklearnGaussianMixture

from bayesgmm import GaussianMixture

COVARIANCE_TYPES = ["full", "tied", "diag", "spherical"]


def _fit_both(X, **params):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        reference = SklearnGaussianMixture(**params).fit(X)
        ours = GaussianMixture(**params).fit(X)
    return reference, ours


def _assert_same_fit(reference, ours, rtol_bound=1e-6, rtol_params=1e-5):
    assert ours.n_iter_ == reference.n_iter_
    assert ours.converged_ == reference.converged_
    np.testing.assert_allclose(ours.lower_bound_, reference.lower_bound_, rtol=rtol_bound)
    np.testing.assert_allclose(ours.lower_bounds_, reference.lower_bounds_, rtol=rtol_bound)
    scale = np.abs(reference.means_).max()
    for name in ("weights_", "means_", "covariances_", "precisions_", "precisions_cholesky_"):
        expected = getattr(reference, name)
        actual = getattr(ours, name)
        assert actual.shape == expected.shape, name
        atol = rtol_params * (scale if name == "means_" else np.abs(expected).max())
        np.testing.assert_allclose(actual, expected, rtol=rtol_params, atol=atol, err_msg=name)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("dataset", ["blobs_2d", "blobs_8d", "unequal_3d"])
def test_same_given_initial_parameters(request, dataset, covariance_type):
    X, y = request.getfixturevalue(dataset)
    n_components = len(np.unique(y))
    # Initial parameters from a deliberately rough start: a crude fit on a subset.
    rough = SklearnGaussianMixture(
        n_components, covariance_type=covariance_type, max_iter=2, random_state=5
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        rough.fit(X[::7])
    params = dict(
        n_components=n_components,
        covariance_type=covariance_type,
        weights_init=rough.weights_,
        means_init=rough.means_,
        precisions_init=rough.precisions_,
        tol=1e-8,
        max_iter=300,
    )
    reference, ours = _fit_both(X, **params)
    assert reference.n_iter_ > 3
    _assert_same_fit(reference, ours)
    np.testing.assert_allclose(
        ours.score_samples(X), reference.score_samples(X), rtol=1e-6, atol=1e-8
    )
    np.testing.assert_allclose(ours.predict_proba(X), reference.predict_proba(X), atol=1e-6)
    np.testing.assert_allclose(ours.bic(X), reference.bic(X), rtol=1e-8)
    np.testing.assert_allclose(ours.aic(X), reference.aic(X), rtol=1e-8)


@pytest.mark.parametrize("init_params", ["kmeans", "k-means++", "random", "random_from_data"])
def test_same_random_state_gives_same_fit(blobs_8d, init_params):
    X, _ = blobs_8d
    reference, ours = _fit_both(
        X, n_components=4, init_params=init_params, random_state=11, n_init=2, max_iter=50
    )
    _assert_same_fit(reference, ours)


@pytest.mark.parametrize("init_params", ["k-means++", "random_from_data"])
@pytest.mark.parametrize("covariance_type", ["tied", "diag", "spherical"])
def test_seeded_starts_give_the_same_fit_for_every_structure(unequal_3d, init_params, covariance_type):
    # These starts seed each component with one point and leave the other rows
    # unassigned; scikit-learn's tied M-step still sums x x^T over every row,
    # so its first tied covariance is much wider than the seeds' own.
    X, _ = unequal_3d
    reference, ours = _fit_both(
        X, n_components=3, covariance_type=covariance_type, init_params=init_params,
        random_state=0, n_init=2, max_iter=50,
    )
    _assert_same_fit(reference, ours)


@pytest.mark.parametrize("given", ["weights_init", "means_init"])
def test_seeded_tied_start_keeps_the_given_values_as_scikit_learn_does(unequal_3d, given):
    X, _ = unequal_3d
    value = {"weights_init": np.array([0.2, 0.3, 0.5]), "means_init": X[:3]}[given]
    reference, ours = _fit_both(
        X, n_components=3, covariance_type="tied", init_params="k-means++", random_state=0,
        max_iter=50, **{given: value},
    )
    _assert_same_fit(reference, ours)


def test_seeded_start_with_weights_is_that_of_repeated_rows(unequal_3d):
    # scikit-learn's start from seeds, with integer weights read as repeated
    # rows: weights n_k / n, the tied covariance (X^T X - sum_k n_k mu_k mu_k^T) / sum_k n_k.
    X, _ = unequal_3d
    counts = np.random.default_rng(3).integers(1, 3, size=len(X)).astype(float)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        start = GaussianMixture(3, covariance_type="tied", init_params="random_from_data", max_iter=0,
                                random_state=0).fit(X, sample_weight=counts)
    seeds = [int(np.argmin(np.sum((X - mean) ** 2, axis=1))) for mean in start.means_]
    np.testing.assert_allclose(start.means_, X[seeds], atol=1e-12)
    n_k = counts[seeds]
    np.testing.assert_allclose(start.weights_, n_k / counts.sum(), rtol=1e-12)
    repeated = np.repeat(X, counts.astype(int), axis=0)
    expected = (repeated.T @ repeated - (n_k[:, None] * X[seeds]).T @ X[seeds]) / n_k.sum()
    np.testing.assert_allclose(start.covariances_, expected + 1e-6 * np.eye(3), rtol=1e-9)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_sample_matches_sklearn(unequal_3d, covariance_type):
    X, _ = unequal_3d
    reference, ours = _fit_both(
        X, n_components=3, covariance_type=covariance_type, random_state=2
    )
    X_ref, y_ref = reference.sample(50)
    X_ours, y_ours = ours.sample(50)
    np.testing.assert_array_equal(y_ours, y_ref)
    np.testing.assert_allclose(X_ours, X_ref, rtol=1e-6, atol=1e-8)


def test_default_initialisation_never_worse_than_sklearn():
    from sklearn.datasets import make_blobs

    worst = -np.inf
    for seed in range(10):
        X, _ = make_blobs(n_samples=600, centers=3, n_features=3, cluster_std=1.5, random_state=seed)
        reference = SklearnGaussianMixture(3, random_state=seed).fit(X)
        ours = GaussianMixture(3, random_state=seed).fit(X)
        worst = max(worst, reference.score(X) - ours.score(X))
    assert worst <= 1e-3


def test_max_iter_zero_returns_initialisation(blobs_2d):
    X, _ = blobs_2d
    reference, ours = _fit_both(X, n_components=2, max_iter=0, random_state=0)
    assert ours.n_iter_ == 0 and not ours.converged_
    assert ours.lower_bound_ == -np.inf
    np.testing.assert_allclose(ours.means_, reference.means_, rtol=1e-10)


@pytest.mark.parametrize("covariance_type", ["full", "tied"])
def test_precisions_init_gives_scikit_learns_upper_factor(blobs_2d, covariance_type):
    # scikit-learn's precisions_cholesky_ is upper triangular, also when it
    # comes from precisions_init (which its own max_iter=0 fit cannot show).
    X, _ = blobs_2d
    factors = np.array([[[2.0, 0.0], [0.7, 1.0]], [[1.0, 0.0], [-0.4, 3.0]]])
    precisions = factors @ np.swapaxes(factors, 1, 2)
    if covariance_type == "tied":
        precisions = precisions[0]
    ours = GaussianMixture(
        2, covariance_type=covariance_type, precisions_init=precisions,
        means_init=[[0.0, 0.0], [1.0, 1.0]], weights_init=[0.5, 0.5], max_iter=0,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours.fit(X)
    factor = ours.precisions_cholesky_
    assert np.all(np.tril(factor, -1) == 0.0)
    np.testing.assert_allclose(factor @ np.swapaxes(factor, -1, -2), precisions, rtol=1e-12)
    np.testing.assert_allclose(ours.precisions_, precisions, rtol=1e-12)


def test_warm_start_continues_like_sklearn(blobs_8d):
    X, _ = blobs_8d
    params = dict(n_components=4, warm_start=True, max_iter=2, random_state=0, tol=1e-10)
    reference = SklearnGaussianMixture(**params)
    ours = GaussianMixture(**params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for _ in range(3):
            reference.fit(X)
            ours.fit(X)
    _assert_same_fit(reference, ours)
