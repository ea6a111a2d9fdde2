"""mclust's ten other structures fitted end to end: recovery, constraints, every method."""

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment
from scipy.stats import multivariate_normal, special_ortho_group

from bayesgmm import GaussianMixture, structures
from bayesgmm.persistence import load, save
from tests.test_constrained import _check_constraints

NEW = [name for name in structures.MCLUST_NAMES if name not in structures.ALIASES]
MEANS = np.array([[0.0, 0.0, 0.0], [9.0, 1.0, -2.0], [-3.0, 9.0, 4.0]])
WEIGHTS = np.array([0.5, 0.3, 0.2])


def _true_covariances(name, rng):
    """Three 3-D covariances lambda_k D_k diag(a_k) D_k^T obeying the letters of ``name``."""
    volume, shape, orientation = name
    volumes = np.ones(3) if volume == "E" else np.array([0.6, 1.0, 1.8])
    one_shape = np.array([3.0, 1.0, 1.0 / 3.0])
    shapes = {
        "I": np.ones((3, 3)),
        "E": np.tile(one_shape, (3, 1)),
        "V": np.array([one_shape, [0.25, 2.0, 2.0], [1.0, 4.0, 0.25]]),
    }[shape]
    rotation = special_ortho_group.rvs(3, random_state=rng)
    orientations = {
        "I": np.tile(np.eye(3), (3, 1, 1)),
        "E": np.tile(rotation, (3, 1, 1)),
        "V": special_ortho_group.rvs(3, size=3, random_state=rng),
    }[orientation]
    return np.einsum("k,kij,kj,klj->kil", volumes, orientations, shapes, orientations)


def _sample(covariances, n_samples, rng):
    labels = rng.choice(3, size=n_samples, p=WEIGHTS)
    X = np.empty((n_samples, 3))
    for k in range(3):
        rows = labels == k
        X[rows] = rng.multivariate_normal(MEANS[k], covariances[k], size=rows.sum())
    return X


@pytest.fixture(scope="module", params=NEW)
def fitted(request):
    name = request.param
    rng = np.random.default_rng(sum(map(ord, name)))
    truth = _true_covariances(name, rng)
    X = _sample(truth, 3000, rng)
    model = GaussianMixture(3, covariance_type=name, tol=1e-10, max_iter=500, random_state=0).fit(X)
    return name, truth, X, model


def _full(model):
    structure = structures.get(model.covariance_type)
    return structure.full_matrices(model.covariances_, 3, 3)


def test_known_parameters_are_recovered(fitted):
    name, truth, X, model = fitted
    _, order = linear_sum_assignment(((MEANS[:, None] - model.means_[None]) ** 2).sum(-1))
    np.testing.assert_allclose(model.means_[order], MEANS, atol=0.15)
    np.testing.assert_allclose(model.weights_[order], WEIGHTS, atol=0.03)
    covariances = _full(model)[order]
    error = np.linalg.norm(covariances - truth, axis=(1, 2)) / np.linalg.norm(truth, axis=(1, 2))
    assert error.max() < 0.12, (name, error)
    assert model.converged_


def test_the_constraint_holds_in_the_fit(fitted):
    name, _, _, model = fitted
    _check_constraints(name, _full(model))


def test_attributes_have_the_representations_shapes(fitted):
    name, _, _, model = fitted
    shape = {"I": (3, 3), "E": (3, 3, 3), "V": (3, 3, 3)}[name[2]]
    if name in ("EII",):
        shape = (3,)
    assert model.covariances_.shape == shape
    assert model.precisions_cholesky_.shape == shape
    assert model.precisions_.shape == shape
    full = _full(model)
    precisions = structures.get(name).full_matrices(model.precisions_, 3, 3)
    np.testing.assert_allclose(np.einsum("kij,kjl->kil", full, precisions),
                               np.tile(np.eye(3), (3, 1, 1)), atol=1e-9)


def test_densities_criteria_and_samples(fitted, tmp_path):
    name, _, X, model = fitted
    rows = X[:50]
    full = _full(model)
    densities = np.column_stack([
        model.weights_[k] * multivariate_normal(model.means_[k], full[k]).pdf(rows) for k in range(3)
    ])
    np.testing.assert_allclose(model.score_samples(rows), np.log(densities.sum(1)), rtol=1e-10)
    np.testing.assert_allclose(model.predict_proba(rows), densities / densities.sum(1, keepdims=True),
                               atol=1e-10)
    n_parameters = structures.n_parameters(name, 3, 3)
    log_likelihood = np.sum(model.score_samples(X))
    np.testing.assert_allclose(model.bic(X), -2 * log_likelihood + n_parameters * np.log(len(X)))
    np.testing.assert_allclose(model.aic(X), -2 * log_likelihood + 2 * n_parameters)
    drawn, labels = model.sample(400)
    assert drawn.shape == (400, 3) and set(labels) <= {0, 1, 2}
    save(model, tmp_path / "model.npz")
    loaded = load(tmp_path / "model.npz")
    assert loaded.covariance_type == name
    np.testing.assert_array_equal(loaded.score_samples(rows), model.score_samples(rows))


def test_streamed_and_float32_fits_of_an_iterative_structure():
    rng = np.random.default_rng(5)
    X = _sample(_true_covariances("VEV", rng), 1500, rng)
    settings = dict(covariance_type="VEV", tol=1e-8, random_state=0)
    memory = GaussianMixture(3, **settings).fit(X)
    chunks = lambda: (X[start:start + 400] for start in range(0, len(X), 400))  # noqa: E731
    streamed = GaussianMixture(3, **settings).fit(chunks)
    assert streamed.n_iter_ == memory.n_iter_
    np.testing.assert_allclose(streamed.covariances_, memory.covariances_, rtol=1e-8)
    single = GaussianMixture(3, covariance_type="VEV", random_state=0, dtype="float32").fit(X)
    assert single.covariances_.dtype == np.float32
    np.testing.assert_allclose(single.covariances_, memory.covariances_, rtol=2e-2, atol=2e-3)


def test_bayesian_half_refuses_the_constrained_structures():
    from bayesgmm import BayesianGaussianMixture

    with pytest.raises(ValueError, match="Invalid value for 'covariance_type': 'VEV' is one of mclust's "
                                         "constrained structures, which GaussianMixture fits"):
        BayesianGaussianMixture(2, covariance_type="VEV").fit(np.zeros((10, 2)))


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("name", ["EII", "VEI", "EVE", "EEV"])  # each shape; an iterative M-step
def test_precisions_init_starts_the_first_e_step(name):
    # Given precisions in the representation's shape, different per component
    # (the constraint need not hold in them): after one iteration the means and
    # weights are those of a 'full' fit from the same matrices, so the first
    # E-step used them as given; the M-step imposes the constraint.
    rng = np.random.default_rng(0)
    X = _sample(_true_covariances("VVV", rng), 400, rng)
    structure = structures.get(name)
    shape = structure.parameter_shape(3, 3)
    precisions = {
        (3,): np.array([0.5, 1.0, 2.0]),
        (3, 3): np.array([[0.5, 1.0, 2.0], [1.0, 0.3, 1.5], [2.0, 2.0, 0.7]]),
        (3, 3, 3): np.linalg.inv(_true_covariances("VVV", rng)),
    }[shape]
    start = dict(weights_init=WEIGHTS, means_init=MEANS + 0.5, max_iter=1)
    one = GaussianMixture(3, covariance_type=name, precisions_init=precisions, **start).fit(X)
    full = GaussianMixture(3, covariance_type="full", **start,
                           precisions_init=structure.full_matrices(precisions, 3, 3)).fit(X)
    np.testing.assert_allclose(one.means_, full.means_, rtol=1e-12)
    np.testing.assert_allclose(one.weights_, full.weights_, rtol=1e-12)
    _check_constraints(name, _full(one), loose=0.0)


def test_precisions_init_of_a_structure_is_checked_in_its_shape():
    X = np.random.default_rng(0).normal(size=(50, 2))
    with pytest.raises(ValueError, match=r"'EII precision' should have the shape of \(3,\), but got \(2,\)"):
        GaussianMixture(3, covariance_type="EII", precisions_init=np.ones(2)).fit(X)
    with pytest.raises(ValueError, match="'VEI precision' should be positive"):
        GaussianMixture(3, covariance_type="VEI", precisions_init=-np.ones((3, 2))).fit(X)
    with pytest.raises(ValueError, match="'EEV precision' should be symmetric, positive-definite"):
        GaussianMixture(3, covariance_type="EEV", precisions_init=-np.stack([np.eye(2)] * 3)).fit(X)
