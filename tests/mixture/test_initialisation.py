"""Initial labels drawn as scikit-learn draws them (bayesgmm.mixture.initialisation)."""

import warnings

import numpy as np
import pytest
from sklearn.cluster import KMeans
from sklearn.exceptions import ConvergenceWarning

from bayesgmm.mixture import initialisation


def _cases():
    rng = np.random.default_rng(0)
    for case in range(40):
        n_samples = int(rng.integers(12, 600))
        n_features = int(rng.integers(1, 7))
        n_components = int(rng.integers(1, 11))
        centres = 4.0 * rng.normal(size=(n_components, n_features))
        X = centres[rng.integers(n_components, size=n_samples)] + rng.normal(size=(n_samples, n_features))
        X = X * np.exp(rng.normal(size=n_features)) + rng.normal(size=n_features) * 50
        weights = None
        if case % 3 == 1:
            weights = rng.exponential(size=n_samples)
            weights[rng.random(n_samples) < 0.1] = 0.0
        dtype = np.float32 if case % 5 == 2 else np.float64
        yield pytest.param(X.astype(dtype), weights, n_components, case, id=f"case{case}")


@pytest.mark.parametrize("X, weights, n_components, seed", list(_cases()))
def test_kmeans_labels_are_kmeans_own(X, weights, n_components, seed):
    expected_state = np.random.RandomState(seed)
    expected = KMeans(n_components, n_init=1, random_state=expected_state).fit(X, sample_weight=weights).labels_
    state = np.random.RandomState(seed)
    X_before = X.copy()
    labels = initialisation.kmeans_labels(X, weights, n_components, state)
    np.testing.assert_array_equal(labels, expected)
    assert labels.dtype == np.int32
    np.testing.assert_array_equal(X, X_before)  # the caller's data is not centred in place
    # The stream goes on where KMeans leaves it (the next restart's draws).
    assert state.randint(1 << 30) == expected_state.randint(1 << 30)


def test_kmeans_labels_warn_as_kmeans_where_points_repeat():
    X = np.repeat(np.arange(3.0)[:, None], 10, axis=0)  # 3 distinct points, 5 clusters asked for
    with pytest.warns(ConvergenceWarning) as expected_warnings:
        expected = KMeans(5, n_init=1, random_state=0).fit(X).labels_
    with pytest.warns(ConvergenceWarning) as got_warnings:
        labels = initialisation.kmeans_labels(X, None, 5, np.random.RandomState(0))
    np.testing.assert_array_equal(labels, expected)
    assert [str(w.message) for w in got_warnings] == [str(w.message) for w in expected_warnings]


def test_kmeans_labels_relocate_empty_clusters_as_kmeans():
    # Far outliers and tight groups: Lloyd empties clusters, which KMeans moves to the farthest points.
    rng = np.random.default_rng(3)
    X = np.vstack([rng.normal(size=(200, 2)) * 0.01, [[50.0, 50.0], [-50.0, 50.0]], rng.normal(size=(5, 2))])
    for seed in range(20):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            expected = KMeans(8, n_init=1, random_state=seed).fit(X).labels_
            labels = initialisation.kmeans_labels(X, None, 8, np.random.RandomState(seed))
        np.testing.assert_array_equal(labels, expected)


def test_without_scikit_learns_kernels_kmeans_itself_runs(monkeypatch):
    X = np.random.default_rng(1).normal(size=(300, 3))
    fast = initialisation.kmeans_labels(X, None, 4, np.random.RandomState(7))
    monkeypatch.setattr(initialisation, "_sklearn_lloyd", lambda: None)
    slow = initialisation.kmeans_labels(X, None, 4, np.random.RandomState(7))
    np.testing.assert_array_equal(fast, slow)


@pytest.mark.parametrize("dtype", [np.int64, np.float16])
def test_kmeans_labels_take_other_dtypes_as_kmeans(dtype):
    X = np.random.default_rng(2).integers(0, 10, size=(200, 2)).astype(dtype)
    expected = KMeans(3, n_init=1, random_state=0).fit(X).labels_
    np.testing.assert_array_equal(initialisation.kmeans_labels(X, None, 3, np.random.RandomState(0)), expected)
