"""Tests of bayesgmm.metrics against the document's formula and scikit-learn."""

import pathlib
import subprocess
import sys

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score
from sklearn.mixture import GaussianMixture as SklearnGaussianMixture

from bayesgmm.datasets import document_data, make_mixture
from bayesgmm.metrics import (
    adjusted_rand_index,
    hard_accuracy,
    mean_log_predictive_density,
    soft_accuracy,
)

REPOSITORY = pathlib.Path(__file__).resolve().parents[1]


def document_accuracy(yP, yB):
    """The document's evaluation, verbatim apart from working on a copy."""
    yP = np.array(yP, copy=True)
    nB = len(yB)
    # Arbitrary labels with unsupervised clustering may need to be reversed
    if len(yB[np.round(yP[:, 0]) != yB]) > nB / 4:
        yP[:, 0] = 1 - yP[:, 0]
    return 100 * (nB - np.sum(np.abs(yP[:, 0] - yB))) / nB


def two_class_proba(y, rng, flip):
    """Informative two-column probabilities, columns reversed if ``flip``."""
    p_true = rng.beta(8, 1, size=y.size)
    p_class_one = np.where(y == 1, p_true, 1 - p_true)
    proba = np.column_stack([1 - p_class_one, p_class_one])
    return proba[:, ::-1] if flip else proba


def test_document_example_with_scikit_learn_gives_97_66():
    XA, XB, yA, yB = document_data()
    yP = SklearnGaussianMixture(n_components=2, random_state=0).fit(XA).predict_proba(XB)
    expected = document_accuracy(yP, yB)
    assert soft_accuracy(yB, yP) == pytest.approx(expected, abs=1e-10)
    assert np.round(soft_accuracy(yB, yP), 2) == 97.66
    assert hard_accuracy(yB, yP) == pytest.approx(98.125)


@pytest.mark.parametrize("flip", [False, True])
def test_soft_accuracy_equals_documents_formula_for_two_classes(flip):
    rng = np.random.default_rng(int(flip))
    y = rng.integers(2, size=300)
    proba = two_class_proba(y, rng, flip)
    assert soft_accuracy(y, proba) == pytest.approx(document_accuracy(proba, y), abs=1e-10)
    if not flip:
        assert soft_accuracy(y, proba, align=False) == pytest.approx(document_accuracy(proba, y))


def test_document_example_script_prints_the_documents_accuracy():
    completed = subprocess.run(
        [sys.executable, str(REPOSITORY / "examples" / "document_example.py")],
        capture_output=True, text=True, cwd=REPOSITORY, timeout=120, check=True,
    )
    lines = completed.stdout.splitlines()
    assert lines[0] == "Accuracy = 97.66%"
    assert lines[1] == "Hard accuracy = 98.12%"


def test_metrics_are_invariant_to_relabelling():
    rng = np.random.default_rng(3)
    n_classes = 4
    y = rng.integers(n_classes, size=400)
    proba = rng.dirichlet(np.ones(n_classes), size=y.size)
    proba[np.arange(y.size), y] += 2.0
    proba /= proba.sum(axis=1, keepdims=True)
    shuffle = rng.permutation(n_classes)
    renamed_y = np.array([7, -2, 30, 4])[y]  # other class ids, another sorted order
    scores = (soft_accuracy(y, proba), hard_accuracy(y, proba), adjusted_rand_index(y, proba))
    relabelled = [(y, proba[:, shuffle]), (renamed_y, proba), (renamed_y, proba[:, shuffle])]
    for labels, probabilities in relabelled:
        assert soft_accuracy(labels, probabilities) == pytest.approx(scores[0])
        assert hard_accuracy(labels, probabilities) == pytest.approx(scores[1])
        assert adjusted_rand_index(labels, probabilities) == pytest.approx(scores[2])
    assert soft_accuracy(y, proba, align=False) == pytest.approx(scores[0])
    assert soft_accuracy(y, proba[:, shuffle], align=False) < scores[0] - 10


def test_soft_accuracy_extremes_and_definition():
    y = np.array([0, 1, 2, 2])
    assert soft_accuracy(y, np.eye(3)[y]) == 100.0
    assert soft_accuracy(y, np.full((4, 3), 1 / 3)) == pytest.approx(100 / 3)
    proba = np.array([[0.6, 0.3, 0.1], [0.2, 0.7, 0.1], [0.1, 0.1, 0.8], [0.3, 0.2, 0.5]])
    assert soft_accuracy(y, proba) == pytest.approx(100 * np.mean([0.6, 0.7, 0.8, 0.5]))
    assert isinstance(soft_accuracy(y, proba), float)


def test_soft_accuracy_with_more_clusters_than_classes():
    y = np.array([0, 0, 1, 1])
    proba = np.array([[0.9, 0.0, 0.1], [0.5, 0.0, 0.5], [0.0, 1.0, 0.0], [0.0, 0.6, 0.4]])
    assert soft_accuracy(y, proba) == pytest.approx(100 * np.mean([0.9, 0.5, 1.0, 0.6]))


def test_hard_accuracy_of_labels_and_proba():
    y = np.array([0, 0, 0, 1, 1, 1])
    labels = np.array([1, 1, 0, 0, 0, 0])  # clusters reversed, one point misplaced
    assert hard_accuracy(y, labels) == pytest.approx(100 * 5 / 6)
    assert hard_accuracy(y, labels, align=False) == pytest.approx(100 * 1 / 6)
    assert hard_accuracy(y, np.eye(2)[labels]) == pytest.approx(100 * 5 / 6)
    # Three clusters for two classes: the surplus cluster counts as wrong.
    assert hard_accuracy(y, [0, 0, 2, 1, 1, 1]) == pytest.approx(100 * 5 / 6)


def test_adjusted_rand_index_equals_scikit_learn():
    rng = np.random.default_rng(0)
    for _ in range(5):
        y = rng.integers(3, size=100)
        labels = np.where(rng.uniform(size=100) < 0.7, y, rng.integers(4, size=100))
        assert adjusted_rand_index(y, labels) == pytest.approx(adjusted_rand_score(y, labels))


def test_mean_log_predictive_density_equals_mean_score():
    X, _, _ = make_mixture(
        300, [0.4, 0.6], [[0, 0], [4, 4]], [1.0, 0.5], "spherical", random_state=0
    )
    gmm = SklearnGaussianMixture(2, random_state=0).fit(X[:200])
    held_out = X[200:]
    assert mean_log_predictive_density(gmm, held_out) == pytest.approx(gmm.score(held_out))
    weights = np.linspace(0.0, 1.0, held_out.shape[0])
    expected = np.average(gmm.score_samples(held_out), weights=weights)
    weighted = mean_log_predictive_density(gmm, held_out, sample_weight=weights)
    assert weighted == pytest.approx(expected)


def test_mean_log_predictive_density_rejects_bad_input():
    with pytest.raises(TypeError, match="score_samples"):
        mean_log_predictive_density(object(), np.zeros((3, 2)))
    gmm = SklearnGaussianMixture(1).fit(np.random.default_rng(0).normal(size=(20, 2)))
    with pytest.raises(ValueError, match="sample_weight"):
        mean_log_predictive_density(gmm, np.zeros((3, 2)), sample_weight=[1.0, 2.0])


@pytest.mark.parametrize(
    ("metric", "y_true", "prediction", "message"),
    [
        (soft_accuracy, [0, 1], [[0.5, 0.5]] * 3, "n_samples = 2"),
        (soft_accuracy, [0, 1], [0, 1], r"shape \(n_samples, K\)"),
        (soft_accuracy, [[0, 1]], [[0.5, 0.5]], "1-D array"),
        (soft_accuracy, [0, 2], [[0.5, 0.5]] * 2, "align=False"),
        (hard_accuracy, [0, 1, 1], [0, 1], "n_samples = 3"),
        (adjusted_rand_index, [0, 1], [0, 1, 1], "n_samples = 2"),
    ],
)
def test_metrics_reject_bad_input(metric, y_true, prediction, message):
    kwargs = {"align": False} if message == "align=False" else {}
    with pytest.raises(ValueError, match=message):
        metric(y_true, prediction, **kwargs)
