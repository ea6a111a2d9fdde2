"""Tests of bayesgmm.datasets: the document's data, mixtures with known truth, the two rows."""

import itertools

import numpy as np
import pytest
from sklearn.datasets import make_blobs
from sklearn.mixture import GaussianMixture as SklearnGaussianMixture
from sklearn.model_selection import train_test_split

from bayesgmm.datasets import (
    MixtureParams,
    document_data,
    full_covariances,
    make_mixture,
    random_mixture,
    two_rows,
)
from bayesgmm.metrics import adjusted_rand_index, hard_accuracy

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")

WEIGHTS = np.array([0.2, 0.5, 0.3])
MEANS = np.array([[0.0, 0.0, 0.0], [5.0, -2.0, 1.0], [-4.0, 3.0, 2.0]])
COVARIANCES = {
    "full": np.array(
        [
            [[1.0, 0.5, 0.0], [0.5, 2.0, 0.3], [0.0, 0.3, 0.5]],
            [[0.5, -0.2, 0.1], [-0.2, 1.0, 0.0], [0.1, 0.0, 1.5]],
            [[2.0, 0.0, 0.8], [0.0, 0.3, 0.0], [0.8, 0.0, 1.0]],
        ]
    ),
    "tied": np.array([[1.0, 0.4, 0.2], [0.4, 0.8, -0.1], [0.2, -0.1, 1.2]]),
    "diag": np.array([[1.0, 0.5, 2.0], [0.3, 1.0, 0.7], [1.5, 1.5, 0.4]]),
    "spherical": np.array([0.5, 1.0, 2.0]),
}


def test_document_data_is_the_documents_split():
    X, y = make_blobs(n_samples=800, centers=2, n_features=2, random_state=12)
    expected = train_test_split(X, y, test_size=0.2, random_state=21)
    XA, XB, yA, yB = document_data()
    for actual, wanted in zip((XA, XB, yA, yB), expected):
        np.testing.assert_array_equal(actual, wanted)
    assert XA.shape == (640, 2) and XB.shape == (160, 2)
    assert yA.shape == (640,) and yB.shape == (160,)


def test_document_data_parameters_can_be_overridden():
    XA, XB, yA, yB = document_data(n_samples=100, centers=3, n_features=4, test_size=0.5)
    assert XA.shape == (50, 4) and XB.shape == (50, 4)
    assert set(np.unique(np.concatenate([yA, yB]))) == {0, 1, 2}


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_make_mixture_shapes_and_truth(covariance_type):
    X, y, truth = make_mixture(
        200, WEIGHTS, MEANS, COVARIANCES[covariance_type], covariance_type, random_state=0
    )
    assert X.shape == (200, 3) and y.shape == (200,)
    assert isinstance(truth, MixtureParams)
    assert truth.covariance_type == covariance_type
    np.testing.assert_array_equal(truth.weights, WEIGHTS)
    np.testing.assert_array_equal(truth.means, MEANS)
    np.testing.assert_array_equal(truth.covariances, COVARIANCES[covariance_type])
    assert truth.full_covariances().shape == (3, 3, 3)
    assert set(np.unique(y)) <= {0, 1, 2}


def test_make_mixture_is_deterministic_by_random_state():
    args = (300, WEIGHTS, MEANS, COVARIANCES["full"])
    X1, y1, _ = make_mixture(*args, random_state=7)
    X2, y2, _ = make_mixture(*args, random_state=7)
    X3, _, _ = make_mixture(*args, random_state=8)
    np.testing.assert_array_equal(X1, X2)
    np.testing.assert_array_equal(y1, y2)
    assert not np.allclose(X1, X3)
    X4, _, _ = make_mixture(*args, random_state=np.random.default_rng(7))
    np.testing.assert_array_equal(X1, X4)
    X5, _, _ = make_mixture(*args, random_state=np.random.RandomState(7))
    X6, _, _ = make_mixture(*args, random_state=np.random.RandomState(7))
    np.testing.assert_array_equal(X5, X6)


def test_make_mixture_does_not_shuffle_when_asked():
    _, y, _ = make_mixture(
        100, WEIGHTS, MEANS, COVARIANCES["diag"], "diag", random_state=0, shuffle=False
    )
    assert np.all(np.diff(y) >= 0)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_make_mixture_moments_match_truth(covariance_type):
    """Empirical weights, means and covariances lie within 5 standard errors of the truth."""
    n_samples = 30_000
    X, y, truth = make_mixture(
        n_samples, WEIGHTS, MEANS, COVARIANCES[covariance_type], covariance_type, random_state=1
    )
    counts = np.bincount(y, minlength=3)
    weight_se = np.sqrt(WEIGHTS * (1 - WEIGHTS) / n_samples)
    assert np.all(np.abs(counts / n_samples - WEIGHTS) < 5 * weight_se)
    for component, covariance in enumerate(truth.full_covariances()):
        points = X[y == component]
        n_points = points.shape[0]
        mean_se = np.sqrt(np.diag(covariance) / n_points)
        assert np.all(np.abs(points.mean(axis=0) - MEANS[component]) < 5 * mean_se)
        # Var of a sample covariance entry (Gaussian): (S_ii S_jj + S_ij^2) / n.
        variances = np.diag(covariance)
        covariance_se = np.sqrt((np.outer(variances, variances) + covariance**2) / n_points)
        empirical = np.cov(points, rowvar=False)
        assert np.all(np.abs(empirical - covariance) < 5 * covariance_se)


def test_full_covariances_expands_every_type():
    for covariance_type in COVARIANCE_TYPES:
        expanded = full_covariances(COVARIANCES[covariance_type], covariance_type, 3, 3)
        for component in range(3):
            if covariance_type == "full":
                expected = COVARIANCES["full"][component]
            elif covariance_type == "tied":
                expected = COVARIANCES["tied"]
            elif covariance_type == "diag":
                expected = np.diag(COVARIANCES["diag"][component])
            else:
                expected = COVARIANCES["spherical"][component] * np.eye(3)
            np.testing.assert_array_equal(expanded[component], expected)


def test_full_covariances_rejects_an_unknown_type():
    # Before the structure table, an unknown name silently took the 'diag' branch.
    with pytest.raises(ValueError, match="must be one of 'full', 'tied', 'diag', 'spherical'"):
        full_covariances(COVARIANCES["diag"], "Diag", 3, 3)


@pytest.mark.parametrize(
    ("weights", "means", "covariances", "covariance_type", "message"),
    [
        ([0.5, 0.6, 0.3], MEANS, COVARIANCES["full"], "full", "simplex"),
        ([-0.2, 0.9, 0.3], MEANS, COVARIANCES["full"], "full", "simplex"),
        ([[0.2, 0.5, 0.3]], MEANS, COVARIANCES["full"], "full", r"shape \(n_components,\)"),
        (WEIGHTS, MEANS[:2], COVARIANCES["full"], "full", "means must have shape"),
        (WEIGHTS, MEANS, COVARIANCES["full"][:2], "full", r"must have shape \(3, 3, 3\)"),
        (WEIGHTS, MEANS, COVARIANCES["diag"], "spherical", r"must have shape \(3,\)"),
        (WEIGHTS, MEANS, -COVARIANCES["full"], "full", "symmetric positive definite"),
        (WEIGHTS, MEANS, np.triu(COVARIANCES["tied"]), "tied", "symmetric positive definite"),
        (WEIGHTS, MEANS, [0.5, 0.0, 1.0], "spherical", "strictly positive"),
        (WEIGHTS, MEANS, COVARIANCES["full"], "banana", "covariance_type"),
        (WEIGHTS, [[0.0, np.nan, 0.0]] * 3, COVARIANCES["full"], "full", "NaN"),
    ],
)
def test_make_mixture_rejects_bad_parameters(weights, means, covariances, covariance_type, message):
    with pytest.raises(ValueError, match=message):
        make_mixture(10, weights, means, covariances, covariance_type)


def test_make_mixture_rejects_bad_sample_count_and_random_state():
    with pytest.raises(ValueError, match="n_samples"):
        make_mixture(0, WEIGHTS, MEANS, COVARIANCES["full"])
    with pytest.raises(ValueError, match="random_state"):
        make_mixture(10, WEIGHTS, MEANS, COVARIANCES["full"], random_state="seed")


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_random_mixture_is_well_separated(covariance_type):
    n_components, n_features, separation = 5, 3, 6.0
    X, y, truth = random_mixture(
        400, n_components, n_features, covariance_type, separation=separation, random_state=3
    )
    assert X.shape == (400, n_features) and y.shape == (400,)
    assert truth.covariance_type == covariance_type
    assert truth.means.shape == (n_components, n_features)
    np.testing.assert_allclose(truth.weights.sum(), 1.0)
    assert np.all(truth.weights >= 0.5 / n_components - 1e-12)
    distances = [
        np.linalg.norm(truth.means[a] - truth.means[b])
        for a, b in itertools.combinations(range(n_components), 2)
    ]
    assert min(distances) >= separation
    eigenvalues = np.linalg.eigvalsh(truth.full_covariances())
    assert np.all((eigenvalues > 0.25 - 1e-9) & (eigenvalues <= 1.0 + 1e-9))


def test_random_mixture_is_deterministic_and_recoverable():
    X1, y1, truth1 = random_mixture(600, 4, 2, random_state=11)
    X2, y2, truth2 = random_mixture(600, 4, 2, random_state=11)
    np.testing.assert_array_equal(X1, X2)
    np.testing.assert_array_equal(truth1.means, truth2.means)
    _, _, other = random_mixture(600, 4, 2, random_state=12)
    assert not np.allclose(truth1.means, other.means)
    fitted = SklearnGaussianMixture(4, random_state=0).fit(X1)
    assert hard_accuracy(y1, fitted.predict(X1)) > 99.0


def test_random_mixture_rejects_bad_separation():
    with pytest.raises(ValueError, match="separation"):
        random_mixture(10, 2, 2, separation=0.0)


def test_two_rows_structure_and_determinism():
    datasets = two_rows(n_samples=200, random_state=0)
    assert len(datasets) == 8
    assert [dataset.has_gaps for dataset in datasets] == [False] * 4 + [True] * 4
    assert len({dataset.name for dataset in datasets}) == 8
    for dataset in datasets:
        assert dataset.X.shape == (200, 2) and dataset.y.shape == (200,)
        classes = np.unique(dataset.y)
        np.testing.assert_array_equal(classes, np.arange(classes.size))
        assert classes.size >= 2
    again = two_rows(n_samples=200, random_state=0)
    for first, second in zip(datasets, again):
        np.testing.assert_array_equal(first.X, second.X)
        np.testing.assert_array_equal(first.y, second.y)
    other = two_rows(n_samples=200, random_state=1)
    assert not np.allclose(datasets[0].X, other[0].X)


def test_two_rows_gmm_fails_without_gaps_and_succeeds_with_gaps():
    """The document's claim, checked with scikit-learn's GaussianMixture."""
    for dataset in two_rows(n_samples=400, random_state=0):
        n_classes = np.unique(dataset.y).size
        labels = SklearnGaussianMixture(n_classes, random_state=0).fit(dataset.X).predict(dataset.X)
        if dataset.has_gaps:
            assert hard_accuracy(dataset.y, labels) > 95.0, dataset.name
            assert adjusted_rand_index(dataset.y, labels) > 0.9, dataset.name
        else:
            assert hard_accuracy(dataset.y, labels) < 85.0, dataset.name
            assert adjusted_rand_index(dataset.y, labels) < 0.5, dataset.name
