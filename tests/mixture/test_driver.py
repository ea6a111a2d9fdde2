"""Components padded to a bucket and batched sweeps: one program for many sizes, same fits."""

import numpy as np
import pytest
from sklearn.datasets import make_blobs
from sklearn.mixture import GaussianMixture as SklearnGaussianMixture

from bayesgmm import GaussianMixture, structures
from bayesgmm.mixture import driver, engine, parameters
from tests.compilations import CompileCounter

COVARIANCE_TYPES = ["full", "tied", "diag", "spherical"]


@pytest.fixture(scope="module")
def blobs():
    X, _ = make_blobs(n_samples=600, centers=4, n_features=3, cluster_std=1.5, random_state=3)
    return X


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_a_sweep_over_sizes_compiles_once(blobs, covariance_type):
    X = blobs[:-7]  # a sample count no other module compiles
    first = GaussianMixture(1, covariance_type=covariance_type, random_state=0).fit(X)
    first.bic(X), first.predict(X)
    with CompileCounter() as compilations:
        for n_components in range(2, 10):
            model = GaussianMixture(n_components, covariance_type=covariance_type, random_state=0)
            model.fit(X).bic(X)
            model.predict(X)
    assert compilations.count == 0


def test_padded_fits_equal_scikit_learn(blobs):
    X = blobs
    for covariance_type in COVARIANCE_TYPES:
        for n_components in (1, 3, 6):
            ours = GaussianMixture(n_components, covariance_type=covariance_type, random_state=0, n_init=2).fit(X)
            reference = SklearnGaussianMixture(
                n_components, covariance_type=covariance_type, random_state=0, n_init=2
            ).fit(X)
            assert ours.weights_.shape == (n_components,)
            assert ours.covariances_.shape == reference.covariances_.shape
            assert ours.n_iter_ == reference.n_iter_
            np.testing.assert_allclose(ours.lower_bound_, reference.lower_bound_, rtol=1e-12)
            np.testing.assert_allclose(ours.means_, reference.means_, rtol=1e-10, atol=1e-10)
            np.testing.assert_allclose(ours.covariances_, reference.covariances_, rtol=1e-9, atol=1e-12)
            np.testing.assert_allclose(ours.predict_proba(X), reference.predict_proba(X), atol=1e-10)
            np.testing.assert_allclose(ours.bic(X), reference.bic(X), rtol=1e-12)


def test_padding_does_not_change_a_fit(blobs, monkeypatch):
    # The same fits with padding switched off (every size its own program).
    X = blobs
    padded = [GaussianMixture(k, covariance_type="full", random_state=1).fit(X) for k in (2, 5)]
    monkeypatch.setattr(parameters, "PADDING_WORK_LIMIT", 0)
    assert parameters.component_bucket(5, 600, 3, "full") == 5
    exact = [GaussianMixture(k, covariance_type="full", random_state=1).fit(X) for k in (2, 5)]
    for ours, reference in zip(padded, exact):
        assert ours.n_iter_ == reference.n_iter_
        np.testing.assert_allclose(ours.lower_bounds_, reference.lower_bounds_, rtol=1e-12)
        np.testing.assert_allclose(ours.means_, reference.means_, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(ours.covariances_, reference.covariances_, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_fit_sweep_equals_separate_fits(blobs, covariance_type):
    X = blobs
    sizes = [1, 2, 3, 5, 8]
    swept = driver.fit_sweep(X, n_components=sizes, covariance_type=covariance_type, n_init=2, random_state=7)
    assert len(swept) == len(sizes)
    for size, result in zip(sizes, swept):
        alone = GaussianMixture(size, covariance_type=covariance_type, n_init=2, random_state=7).fit(X)
        assert result.params.weights.shape == (size,)
        assert not result.failed
        assert result.n_iter == alone.n_iter_
        np.testing.assert_allclose(result.lower_bound, alone.lower_bound_, rtol=1e-12)
        np.testing.assert_allclose(result.params.means, alone.means_, rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(result.params.covariances, alone.covariances_, rtol=1e-9, atol=1e-12)


def test_fit_sweep_candidates_stop_at_their_own_convergence(blobs):
    X = blobs
    swept = driver.fit_sweep(X, n_components=[1, 4], random_state=0, tol=1e-6, init_params="random")
    # K = 1 converges at once; K = 4 needs more iterations: each keeps its own count.
    assert swept[0].n_iter == 2
    assert swept[1].n_iter > swept[0].n_iter
    assert len(swept[0].lower_bounds) == swept[0].n_iter


def test_fit_sweep_refuses_initial_values_for_several_sizes(blobs):
    with pytest.raises(ValueError, match="fix one number of components; got n_components=\\[2, 3\\]"):
        driver.fit_sweep(blobs, n_components=[2, 3], means_init=np.zeros((2, 3)))
    with pytest.raises(ValueError, match="n_components"):
        driver.fit_sweep(blobs, n_components=[2, 0])


def test_best_candidate_tie_rule():
    assert engine.best_candidate([-1.0, -0.5, -0.5]) == 1
    assert engine.best_candidate([-0.5 - 1e-14, -0.5]) == 0  # within TIE_TOLERANCE: the first
    assert engine.best_candidate([np.nan, -3.0]) == 1
    assert engine.best_candidate([-np.inf, -np.inf]) == 1  # no finite bound (max_iter=0): the last, as scikit-learn


def test_a_shared_random_state_retry_starts_where_each_size_started(blobs, monkeypatch):
    # Sizes drawn from one RandomState, then all redone in the direct form:
    # each size's retry must start from its own first draw, so the result is
    # that of the first attempt (where the direct form agrees with it).
    monkeypatch.setattr(driver, "expanded_form_is_accurate", lambda *args: False)
    retried = driver.fit_sweep(blobs, n_components=[2, 3], random_state=np.random.RandomState(0))
    monkeypatch.undo()
    plain = driver.fit_sweep(blobs, n_components=[2, 3], random_state=np.random.RandomState(0))
    for one, other in zip(retried, plain):
        assert one.n_iter == other.n_iter
        np.testing.assert_allclose(one.params.means, other.params.means, rtol=1e-9, atol=1e-9)


def test_warm_start_with_another_number_of_components_is_refused(blobs):
    model = GaussianMixture(3, warm_start=True, random_state=0).fit(blobs)
    model.set_params(n_components=4)
    with pytest.raises(ValueError, match="warm_start continues a fit of 3 components, but n_components=4"):
        model.fit(blobs)


def test_verbose_sweep_reports_only_running_candidates(blobs, capsys):
    driver.fit_sweep(
        blobs, n_components=[1, 4], random_state=0, verbose=2, verbose_interval=1,
        init_params="random", tol=1e-6,
    )
    lines = [line for line in capsys.readouterr().out.splitlines() if "Iteration" in line and "\t" in line]
    iterations = [int(line.split()[1]) for line in lines]
    # K = 1 stops after 2 iterations; its iteration 2 is printed once, not on every later step.
    assert iterations.count(2) == 2 and iterations.count(1) == 2
    assert iterations.count(3) == 1


def test_a_grid_of_sizes_carries_its_largest_and_one_size_its_bucket(monkeypatch):
    X, _ = make_blobs(n_samples=300, centers=3, random_state=0)
    carried = []
    create = driver.DataLayout.create
    monkeypatch.setattr(driver.DataLayout, "create", lambda *args, **kwargs: (
        lambda layout: carried.append(layout.n_components) or layout)(create(*args, **kwargs)))
    grid = driver.fit_sweep(X, n_components=[1, 2, 3], random_state=0)
    single = driver.fit_sweep(X, n_components=[3], random_state=0)
    assert carried == [3, parameters.COMPONENT_BUCKET]
    # Padding does not change a fit: the grid's 3-component fit is the one-size fit.
    np.testing.assert_allclose(grid[2].params.means, single[0].params.means, rtol=1e-10)
    assert grid[2].n_iter == single[0].n_iter
    np.testing.assert_allclose(grid[2].lower_bound, single[0].lower_bound, rtol=1e-12)


@pytest.mark.parametrize("names", [["VEE", "EVE", "VVE", "EEV", "VEV", "EVV", "full"], ["EEI", "VEI", "EVI", "diag"]])
def test_a_family_fits_each_member_as_its_own_program_and_compiles_once(blobs, names):
    X = blobs[:-9] * np.array([1.0, 3.0, 0.5])  # a sample count no other module compiles
    family = structures.family(names)
    sizes = [1, 2, 3, 4]
    own = {name: driver.fit_sweep(X, n_components=sizes, covariance_type=name, random_state=0) for name in names}
    driver.fit_sweep(X, n_components=sizes, covariance_type=names[0], random_state=0, family=family)
    with CompileCounter() as compilations:
        shared = {
            name: driver.fit_sweep(X, n_components=sizes, covariance_type=name, random_state=0, family=family)
            for name in names
        }
    assert compilations.count == 0  # the first member's call compiled the family's programs
    for name in names:
        for mine, theirs in zip(shared[name], own[name]):
            assert mine.n_iter == theirs.n_iter and mine.converged == theirs.converged
            np.testing.assert_allclose(mine.lower_bounds, theirs.lower_bounds, rtol=1e-12)
            np.testing.assert_allclose(mine.params.covariances, theirs.params.covariances, rtol=1e-9, atol=1e-12)
            np.testing.assert_allclose(mine.params.means, theirs.params.means, rtol=1e-10, atol=1e-12)
    # Members differ: the traced choice does pick each one's M-step.
    assert not np.allclose(shared[names[0]][-1].params.covariances, shared[names[-1]][-1].params.covariances)


def test_family_validation(blobs):
    with pytest.raises(ValueError, match=r"A family's structures share one representation; got \['diag', 'full'\]"):
        structures.family(["VEV", "VVI"])
    with pytest.raises(ValueError, match="Invalid value for 'covariance_type': 'XYZ'"):
        structures.family(["VEV", "XYZ"])
    family = structures.family(["VVV", "VEV", "full"])
    assert family.names == ("full", "VEV") and family.index("VVV") == 0 and family.index("VEV") == 1
    assert structures.get(family) is structures.get("full") and structures.representation(family) == "full"
    grid = structures.families(["VVV", "EII", "VEV", "VII", "EEE"])
    assert grid["VVV"] == grid["VEV"] == structures.Family(("full", "VEV"), "full")
    assert grid["EII"] == grid["VII"] == structures.Family(("EII", "spherical"), "spherical")
    assert grid["EEE"] is None  # alone in its representation: its own programs
    with pytest.raises(ValueError, match=r"family=.* is not a structures.Family holding 'EVE'"):
        driver.fit_sweep(blobs, n_components=[1, 2], covariance_type="EVE", family=family)
