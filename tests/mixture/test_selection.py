"""GaussianMixtureIC: the grid, the choice, degenerate candidates, errors, ICL."""

import warnings

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import load_iris, make_blobs

from bayesgmm import GaussianMixture, GaussianMixtureIC
from bayesgmm.mixture import engine
from bayesgmm.mixture.selection import degeneracy

SETTINGS = dict(random_state=0, tol=1e-6)


@pytest.fixture(scope="module")
def blobs():
    X, labels = make_blobs(n_samples=300, centers=3, cluster_std=0.8, random_state=1)
    return X, labels


@pytest.fixture(scope="module")
def fitted(blobs):
    X, _ = blobs
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return GaussianMixtureIC(1, 5, covariance_type=["full", "spherical"], **SETTINGS).fit(X)


def test_three_blobs_give_three_components(fitted):
    assert fitted.n_components_ == 3
    assert fitted.covariance_type_ in ("full", "spherical")


def test_results_have_one_entry_per_candidate_in_grid_order(fitted):
    results = fitted.results_
    assert list(results["param_covariance_type"]) == ["full"] * 5 + ["spherical"] * 5
    assert list(results["param_n_components"]) == [1, 2, 3, 4, 5] * 2
    for key in ("bic", "icl", "aic", "log_likelihood", "n_parameters", "converged", "n_iter",
                "degenerate", "degenerate_reason", "rank"):
        assert len(results[key]) == 10, key
    assert results["params"][7] == {"covariance_type": "spherical", "n_components": 3}
    assert sorted(results["rank"]) == list(range(1, 11))
    chosen = int(np.argmin(results["rank"]))
    assert results["bic"][chosen] == fitted.criterion_
    sound = ~results["degenerate"]
    assert fitted.criterion_ == np.min(results["bic"][sound])
    # mclust's parameter counts: full 2-D, K=3: 3 * (2 + 3) + 2 = 17; spherical: 3 * 3 + 2 = 11.
    assert results["n_parameters"][2] == 17
    assert results["n_parameters"][7] == 11


def test_each_candidate_is_the_gaussian_mixture_fit(blobs, fitted):
    X, _ = blobs
    results = fitted.results_
    for index in (1, 2, 8):
        n_components = int(results["param_n_components"][index])
        covariance_type = results["param_covariance_type"][index]
        start = results["init_params"][index]
        single = GaussianMixture(n_components, covariance_type=covariance_type, init_params=start,
                                 **SETTINGS).fit(X)
        assert results["n_iter"][index] == single.n_iter_
        np.testing.assert_allclose(results["bic"][index], single.bic(X), rtol=1e-12)
        np.testing.assert_allclose(results["aic"][index], single.aic(X), rtol=1e-12)
        np.testing.assert_allclose(results["icl"][index], single.icl(X), rtol=1e-12)
        np.testing.assert_allclose(
            results["log_likelihood"][index], np.sum(single.score_samples(X)), rtol=1e-12
        )
    best = GaussianMixture(fitted.n_components_, covariance_type=fitted.covariance_type_,
                           init_params=fitted.best_estimator_.init_params, **SETTINGS)
    best.fit(X)
    np.testing.assert_allclose(fitted.best_estimator_.means_, best.means_, rtol=1e-12)


def test_methods_delegate_to_the_chosen_fit(blobs, fitted):
    X, _ = blobs
    best = fitted.best_estimator_
    np.testing.assert_array_equal(fitted.predict(X), best.predict(X))
    np.testing.assert_array_equal(fitted.predict_proba(X), best.predict_proba(X))
    np.testing.assert_array_equal(fitted.score_samples(X), best.score_samples(X))
    assert fitted.score(X) == best.score(X)
    assert fitted.bic(X) == best.bic(X) == fitted.criterion_
    assert fitted.aic(X) == best.aic(X)
    assert fitted.icl(X) == best.icl(X)
    assert fitted.sample(7)[0].shape == (7, 2)
    assert fitted.n_features_in_ == 2


def test_fit_predict_is_fit_then_predict(blobs, fitted):
    X, _ = blobs
    model = clone(fitted)
    np.testing.assert_array_equal(model.fit_predict(X), fitted.predict(X))
    assert model.n_components_ == fitted.n_components_


def test_icl_is_bic_plus_twice_the_classification_entropy(blobs):
    X, _ = blobs
    # Overlapping components: the entropy term is not zero.
    model = GaussianMixture(4, random_state=0).fit(X)
    resp = model.predict_proba(X)
    expected = model.bic(X) - 2.0 * np.sum(np.log(resp[np.arange(len(X)), resp.argmax(axis=1)]))
    assert expected > model.bic(X) + 1.0
    np.testing.assert_allclose(model.icl(X), expected, rtol=1e-12)
    weights = np.random.default_rng(0).uniform(0.5, 2.0, len(X))
    weighted = model.bic(X, weights) - 2.0 * np.sum(weights * np.log(resp.max(axis=1)))
    np.testing.assert_allclose(model.icl(X, weights), weighted, rtol=1e-12)


def test_icl_criterion_prefers_separated_clusters():
    # Two touching blobs and one far away: BIC splits the pair, ICL may not split more.
    X, _ = make_blobs(n_samples=400, centers=[[0, 0], [2.2, 0], [12, 12]], random_state=3)
    kwargs = dict(covariance_type="full", max_components=5, **SETTINGS)
    by_bic = GaussianMixtureIC(criterion="bic", **kwargs).fit(X)
    by_icl = GaussianMixtureIC(criterion="icl", **kwargs).fit(X)
    assert by_icl.n_components_ <= by_bic.n_components_
    assert by_icl.criterion_ == np.min(by_icl.results_["icl"][~by_icl.results_["degenerate"]])


def _tied_values_data():
    # One cluster sits on a single value of the second feature (rounded
    # measurements): a 'diag' component on it collapses to reg_covar.
    rng = np.random.default_rng(0)
    broad = rng.normal([0.0, 0.0], [1.0, 1.0], size=(200, 2))
    flat = np.column_stack([rng.normal(6.0, 1.0, 40), np.full(40, 3.0)])
    return np.vstack([broad, flat])


def test_collapsed_covariance_is_flagged_and_never_chosen():
    X = _tied_values_data()
    with pytest.warns(UserWarning, match=r"degenerate \(component \d's covariance collapsed"):
        model = GaussianMixtureIC(1, 4, covariance_type=["diag", "full"], **SETTINGS).fit(X)
    results = model.results_
    lowest = int(np.argmin(results["bic"]))
    assert results["degenerate"][lowest]
    assert "reg_covar floor" in results["degenerate_reason"][lowest]
    assert not results["degenerate"][int(np.argmin(results["rank"]))]
    assert model.criterion_ > results["bic"][lowest]
    assert results["rank"][lowest] > np.sum(~results["degenerate"])


def test_a_component_collapsed_in_every_direction_is_flagged():
    # 15 tied rows: a spherical or diagonal component on them has every
    # variance at reg_covar, with no larger one of its own to compare with.
    rng = np.random.default_rng(0)
    X = np.r_[rng.normal(size=(200, 2)), np.tile([[3.0, 3.0]], (15, 1))]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = GaussianMixtureIC(1, 3, covariance_type=["VII", "VVI"], **SETTINGS).fit(X)
    results = model.results_
    lowest = int(np.argmin(results["bic"]))
    assert results["param_n_components"][lowest] > 1
    assert "collapsed to the reg_covar floor (smallest variance 1e-06)" in results["degenerate_reason"][lowest]
    assert model.n_components_ == 1
    # One feature: mclust's V on the same kind of data.
    line = np.r_[rng.normal(size=200), np.full(15, 3.0)].reshape(-1, 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = GaussianMixtureIC(1, 3, covariance_type=["E", "V"], **SETTINGS).fit(line)
    assert np.min(model.best_estimator_.covariances_) > 1e-3
    assert np.all(model.results_["degenerate"][model.results_["bic"] < model.criterion_])


def test_one_point_per_component_is_degenerate_whatever_the_structure():
    X = np.random.default_rng(0).normal(size=(6, 2))
    model = GaussianMixture(6, covariance_type="EII", random_state=0).fit(X)
    assert degeneracy(model, len(X), 1e-6).startswith("component 0's covariance collapsed")


def test_one_component_structures_that_are_one_model_tie_to_mclusts_first():
    # With one component VVV, EEE, VEV... are one model (so are the diagonal
    # and the spherical ones): their criteria differ by rounding only.
    X, _ = make_blobs(n_samples=300, centers=3, random_state=0)
    programs = engine.run_em._cache_size()
    model = GaussianMixtureIC(1, 1, **SETTINGS).fit(X)
    # The 14 structures are fitted by one EM program per representation (structures.Family).
    assert engine.run_em._cache_size() - programs <= 4
    assert model.covariance_type_ == "EEE"
    results = model.results_
    order = [str(name) for name in results["param_covariance_type"][np.argsort(results["rank"])]]
    assert order == ["EEE", "VEE", "EVE", "VVE", "EEV", "VEV", "EVV", "VVV", "EII", "VII",
                     "EEI", "VEI", "EVI", "VVI"]


def test_degeneracy_of_a_component_with_too_few_points():
    X = _tied_values_data()[:200]
    model = GaussianMixture(2, random_state=0).fit(X)
    assert degeneracy(model, len(X), 1e-6) == ""
    model.weights_ = np.array([1.0 - 2.5 / len(X), 2.5 / len(X)])
    assert degeneracy(model, len(X), 1e-6) == (
        "component 1 has 2.5 effective points, fewer than the 3 its covariance needs"
    )


def test_under_a_prior_only_an_empty_component_is_degenerate():
    X = _tied_values_data()[:200]
    model = GaussianMixture(2, random_state=0, prior="default").fit(X)
    # Few points are the prior's to carry (mclust reports such fits)...
    model.weights_ = np.array([1.0 - 2.5 / len(X), 2.5 / len(X)])
    assert degeneracy(model, len(X), 1e-6) == ""
    # ...but a component with no data left is a fit mclust reports as missing.
    model.weights_ = np.array([1.0 - 1e-17, 1e-17])
    assert degeneracy(model, len(X), 1e-6) == (
        "component 1 is empty (2e-15 effective points): mclust reports such a fit as missing"
    )


def test_hierarchical_starts_that_empty_a_component_under_the_prior_are_flagged():
    # iris, EVI with 8 and 9 components from the hierarchical start: EM empties
    # a component (mclust's mclustBIC reports these cells as NA, return code -3).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = GaussianMixtureIC(7, 9, covariance_type="EVI", init_params="hierarchical",
                                  prior="default", tol=1e-8, max_iter=2000, reg_covar=1e-10,
                                  random_state=0).fit(load_iris().data)
    reasons = list(model.results_["degenerate_reason"])
    assert reasons[0] == "" and model.n_components_ == 7
    assert all(reason.startswith("component ") and "is empty" in reason for reason in reasons[1:])


def test_own_orientations_need_more_points_than_features():
    # Ten points of noise in 3-D: EEV with 3 components turns each small
    # cluster's plane onto the shared shape's smallest axis (measured: BIC
    # 0.4 against 80.8 for one component); each component has fewer than 4 points.
    X = np.random.default_rng(0).normal(size=(10, 3))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = GaussianMixtureIC(1, 3, covariance_type=["EEV", "VEV"], **SETTINGS).fit(X)
    results = model.results_
    for index in np.flatnonzero(results["param_n_components"] == 3):
        assert "fewer than the 4 its covariance needs" in results["degenerate_reason"][index]
    assert model.n_components_ < 3
    # Exactly two points per component are enough for their own variances.
    two = GaussianMixture(2, covariance_type="VVI", random_state=0).fit(
        np.array([[0.0, 0.0], [0.1, 0.3], [9.0, 9.0], [9.2, 9.1]]))
    assert degeneracy(two, 4, 1e-6) == ""


def test_feature_names_are_kept_and_checked(blobs):
    pd = pytest.importorskip("pandas")
    X, _ = blobs
    frame = pd.DataFrame(X, columns=["height", "weight"])
    model = GaussianMixtureIC(2, 3, covariance_type="diag", **SETTINGS).fit(frame)
    assert list(model.feature_names_in_) == ["height", "weight"]
    assert list(model.best_estimator_.feature_names_in_) == ["height", "weight"]
    with pytest.raises(ValueError, match="The feature names should match"):
        model.predict(frame[["weight", "height"]])


def test_sample_weight_enters_every_fit_and_criterion(blobs):
    X, _ = blobs
    weights = np.random.default_rng(1).uniform(0.2, 3.0, len(X))
    model = GaussianMixtureIC(2, 3, covariance_type="tied", **SETTINGS).fit(X, sample_weight=weights)
    single = GaussianMixture(model.n_components_, covariance_type="tied",
                             init_params=model.best_estimator_.init_params, **SETTINGS)
    single.fit(X, sample_weight=weights)
    np.testing.assert_allclose(model.best_estimator_.means_, single.means_, rtol=1e-12)
    np.testing.assert_allclose(model.criterion_, single.bic(X, weights), rtol=1e-12)


def test_iris_agrees_with_mclust_where_both_reach_the_same_optimum():
    # mclust 6.0 mclustBIC(iris[, 1:4], G = 2, modelNames = "VVV"): -574.0178.
    X = load_iris().data
    model = GaussianMixtureIC(2, 2, covariance_type="full", n_init=5, **SETTINGS).fit(X)
    np.testing.assert_allclose(-model.criterion_, -574.0178, atol=0.01)


def test_each_cell_keeps_the_better_of_the_hierarchical_and_k_means_starts():
    # Elongated, rotated clusters (scikit-learn's k-means assumptions example).
    X, _ = make_blobs(n_samples=450, random_state=170)
    X = X @ np.array([[0.6, -0.64], [-0.41, 0.85]])
    kwargs = dict(min_components=1, max_components=5, covariance_type=["VVV", "EEV"], **SETTINGS)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        both = GaussianMixtureIC(**kwargs).fit(X)
        kmeans = GaussianMixtureIC(init_params="kmeans", **kwargs).fit(X)
        tree = GaussianMixtureIC(init_params="hierarchical", **kwargs).fit(X)
    assert set(both.results_["init_params"]) <= {"hierarchical", "kmeans"}
    assert set(kmeans.results_["init_params"]) == {"kmeans"}
    sound = ~both.results_["degenerate"]
    best_single = np.maximum(kmeans.results_["log_likelihood"], tree.results_["log_likelihood"])
    np.testing.assert_allclose(both.results_["log_likelihood"][sound], best_single[sound], rtol=1e-12)
    # The start matters on these data: in some cell the two reach different optima.
    assert np.max(np.abs(kmeans.results_["log_likelihood"] - tree.results_["log_likelihood"])) > 1.0
    assert both.n_components_ == 3


def test_hierarchical_start_reaches_mclusts_optimum_on_iris():
    # mclust 6.0 mclustBIC(iris[, 1:4], G = 3, modelNames = "VVV"): -580.8399 (its tol is 1e-5).
    X = load_iris().data
    model = GaussianMixture(3, covariance_type="VVV", init_params="hierarchical", tol=1e-8,
                            max_iter=1000).fit(X)
    np.testing.assert_allclose(-model.bic(X), -580.8399, atol=0.01)


def test_clone_and_params():
    model = GaussianMixtureIC(2, 4, covariance_type=["full", "tied"], criterion="icl")
    copy = clone(model)
    assert copy.get_params() == model.get_params()
    assert copy.get_params()["covariance_type"] == ["full", "tied"]


@pytest.mark.parametrize(
    "params, message",
    [
        (dict(min_components=4, max_components=3), "min_components=4 is larger than max_components=3."),
        (dict(min_components=0), "Invalid value for 'min_components': 0"),
        (dict(criterion="bbc"), "Invalid value for 'criterion': 'bbc'"),
        (dict(covariance_type="VVX"), "Invalid value for 'covariance_type': 'VVX'"),
        (dict(covariance_type=[]), "Invalid value for 'covariance_type': []. It must be 'all'"),
        (dict(covariance_type=["full", "full"]), "names a structure twice"),
        (dict(max_components=40), "max_components=40 is more than the 30 samples; lower it."),
        (dict(tol=-1.0), "Invalid value for 'tol'"),
        (dict(init_params="kmedoids"), "Invalid value for 'init_params'"),
    ],
)
def test_bad_settings_raise_before_any_fit(params, message):
    X = np.random.default_rng(0).normal(size=(30, 2))
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]").replace("(", r"\(")):
        GaussianMixtureIC(**params).fit(X)


def test_nan_data_and_unfitted_model_raise():
    X = np.random.default_rng(0).normal(size=(30, 2))
    X[3, 1] = np.nan
    with pytest.raises(ValueError, match=r"X contains NaN \(first at row 3, column 1\)"):
        GaussianMixtureIC(1, 2).fit(X)
    with pytest.raises(Exception, match="is not fitted yet"):
        GaussianMixtureIC().predict(X[:2])


def test_every_candidate_degenerate_raises():
    # Two distinct points repeated: every component collapses.
    X = np.repeat(np.array([[0.0, 0.0], [1.0, 1.0]]), 10, axis=0)
    with pytest.raises(ValueError, match="Every candidate fit is degenerate"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            GaussianMixtureIC(1, 2, covariance_type="full", **SETTINGS).fit(X)


def test_the_hierarchical_tree_is_built_once_for_the_grid(blobs, monkeypatch):
    from bayesgmm.mixture import hierarchical

    X, _ = blobs
    calls = []
    original = hierarchical.merge_tree
    monkeypatch.setattr(hierarchical, "merge_tree", lambda *a, **k: calls.append(1) or original(*a, **k))
    model = GaussianMixtureIC(1, 3, covariance_type=["VII", "EEE", "VVV"], **SETTINGS).fit(X)
    assert len(calls) == 1
    # The same start as a fit of one cell, which builds its own tree.
    index = 5
    single = GaussianMixture(int(model.results_["param_n_components"][index]),
                             covariance_type=model.results_["param_covariance_type"][index],
                             init_params="hierarchical", **SETTINGS).fit(X)
    assert len(calls) == 2
    # The cell kept the better of its starts, so at least this fit's likelihood.
    assert model.results_["log_likelihood"][index] >= np.sum(single.score_samples(X)) - 1e-9
    if model.results_["init_params"][index] == "hierarchical":
        np.testing.assert_allclose(model.results_["bic"][index], single.bic(X), rtol=1e-12)


def test_every_size_is_scored_by_one_program_per_structure(blobs, monkeypatch):
    # Past PADDING_WORK_LIMIT (large data; forced here) the fits keep their exact
    # sizes, but the scoring pass pads every candidate to one layout.
    from bayesgmm.mixture import engine, parameters

    X, _ = blobs
    monkeypatch.setattr(parameters, "PADDING_WORK_LIMIT", 0)
    shapes = []
    original = engine.predict_blocks
    monkeypatch.setattr(engine, "predict_blocks", lambda blocks, params, **kw: shapes.append(
        (blocks.shape, params.weights.shape, kw["output"])) or original(blocks, params, **kw))
    model = GaussianMixtureIC(1, 3, covariance_type=["VVV", "VII"], **SETTINGS).fit(X)
    # 3 sizes x 2 starts x 2 structures, all with 16 components and one output.
    assert len(shapes) == 12 and len(set(shapes)) == 1 and shapes[0][1:] == ((16,), "criteria")
    for index in (1, 5):
        single = GaussianMixture(int(model.results_["param_n_components"][index]),
                                 covariance_type=model.results_["param_covariance_type"][index],
                                 init_params=model.results_["init_params"][index], **SETTINGS).fit(X)
        np.testing.assert_allclose(model.results_["bic"][index], single.bic(X), rtol=1e-10)
        np.testing.assert_allclose(model.results_["icl"][index], single.icl(X), rtol=1e-10)
