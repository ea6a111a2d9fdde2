"""The GaussianMixture estimator: scikit-learn conventions, sample weights, dtypes, errors."""

import warnings

import jax
import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from bayesgmm import GaussianMixture
from bayesgmm.mixture import blocks, driver, engine


def test_params_are_stored_unchanged_and_clone_works():
    means = np.zeros((2, 2))
    model = GaussianMixture(2, covariance_type="diag", means_init=means, dtype="float32")
    assert model.get_params()["means_init"] is means
    copy = clone(model).set_params(n_components=3)
    assert copy.n_components == 3 and copy.covariance_type == "diag" and copy.dtype == "float32"
    assert model.n_components == 2


def test_pipeline_and_grid_search_use_score(blobs_8d):
    X, _ = blobs_8d
    pipeline = make_pipeline(StandardScaler(), GaussianMixture(random_state=0))
    search = GridSearchCV(pipeline, {"gaussianmixture__n_components": [1, 4]}, cv=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        search.fit(X)
    assert search.best_params_["gaussianmixture__n_components"] == 4


def test_fitted_attributes_and_prediction_api(unequal_3d):
    X, y = unequal_3d
    model = GaussianMixture(3, n_init=4, random_state=0).fit(X)
    assert model.n_features_in_ == 3 and model.converged_
    assert model.weights_.shape == (3,) and model.means_.shape == (3, 3)
    assert model.covariances_.shape == model.precisions_.shape == (3, 3, 3)
    np.testing.assert_allclose(model.precisions_ @ model.covariances_, np.broadcast_to(np.eye(3), (3, 3, 3)), atol=1e-9)
    proba = model.predict_proba(X)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    np.testing.assert_array_equal(model.predict(X), proba.argmax(axis=1))
    np.testing.assert_array_equal(GaussianMixture(3, n_init=4, random_state=0).fit_predict(X), model.predict(X))
    # Recovery of the known component sizes 700 / 200 / 40.
    np.testing.assert_allclose(np.sort(model.weights_), np.array([40, 200, 700]) / 940, atol=0.02)
    assert np.isclose(model.score(X), model.score_samples(X).mean())
    assert model.lower_bounds_.shape == (model.n_iter_,)


def test_integer_sample_weights_equal_repeated_rows(unequal_3d):
    X, _ = unequal_3d
    rng = np.random.default_rng(0)
    counts = rng.integers(0, 4, size=X.shape[0])
    init = GaussianMixture(3, random_state=0, max_iter=3).fit(X)
    params = dict(
        n_components=3,
        weights_init=init.weights_,
        means_init=init.means_,
        precisions_init=init.precisions_,
        tol=1e-9,
        max_iter=200,
    )
    weighted = GaussianMixture(**params).fit(X, sample_weight=counts)
    repeated = GaussianMixture(**params).fit(np.repeat(X, counts, axis=0))
    assert weighted.n_iter_ == repeated.n_iter_
    np.testing.assert_allclose(weighted.lower_bound_, repeated.lower_bound_, rtol=1e-10)
    np.testing.assert_allclose(weighted.means_, repeated.means_, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(weighted.covariances_, repeated.covariances_, rtol=1e-8, atol=1e-10)
    X_repeated = np.repeat(X, counts, axis=0)
    assert np.isclose(weighted.score(X, sample_weight=counts), repeated.score(X_repeated))
    assert np.isclose(weighted.bic(X, sample_weight=counts), repeated.bic(X_repeated))
    assert np.isclose(weighted.aic(X, sample_weight=counts), repeated.aic(X_repeated))


def test_zero_weights_ignore_points_even_at_initialisation(blobs_2d):
    X, _ = blobs_2d
    outliers = np.full((30, 2), 1e3)
    weights = np.r_[np.ones(len(X)), np.zeros(len(outliers))]
    for init_params in ["kmeans", "k-means++", "random_from_data"]:
        params = dict(n_components=2, init_params=init_params, random_state=0, tol=1e-12, max_iter=1000)
        model = GaussianMixture(**params).fit(np.vstack([X, outliers]), sample_weight=weights)
        clean = GaussianMixture(**params).fit(X)
        order, clean_order = np.argsort(model.means_[:, 0]), np.argsort(clean.means_[:, 0])
        np.testing.assert_allclose(model.means_[order], clean.means_[clean_order], atol=1e-6)


def test_float32_is_float32_and_close_to_float64(blobs_8d):
    X, _ = blobs_8d
    model64 = GaussianMixture(4, random_state=0).fit(X)
    model32 = GaussianMixture(4, random_state=0, dtype="float32").fit(X)
    for name in ("weights_", "means_", "covariances_", "precisions_cholesky_"):
        assert getattr(model32, name).dtype == np.float32
        assert getattr(model64, name).dtype == np.float64
    assert model32.predict_proba(X).dtype == np.float32
    np.testing.assert_allclose(model32.lower_bound_, model64.lower_bound_, rtol=1e-5)
    np.testing.assert_allclose(model32.means_, model64.means_, rtol=1e-4, atol=1e-4)


def test_float32_holds_for_clusters_a_hundred_sigmas_apart():
    # The documented limit of float32 (GaussianMixture's ``dtype``): the EM
    # core expands squares around the data's mean, so the loss grows with
    # (spread / sigma)^2. At a ratio of 100 the fit must still match float64.
    rng = np.random.default_rng(3)
    centres = np.array([[-100.0, 0.0, 50.0], [100.0, 20.0, -50.0], [0.0, -100.0, 0.0]])
    X = np.concatenate([centre + rng.normal(size=(400, 3)) for centre in centres]) + 1e4
    means_init = centres + 1e4 + 0.5
    model64 = GaussianMixture(3, means_init=means_init, tol=1e-8).fit(X)
    model32 = GaussianMixture(3, means_init=means_init, tol=1e-8, dtype="float32").fit(X)
    np.testing.assert_allclose(model32.means_, model64.means_, rtol=0, atol=1e-2)
    np.testing.assert_allclose(model32.covariances_, model64.covariances_, rtol=0.02, atol=0.02)
    assert abs(model32.lower_bound_ - model64.lower_bound_) < 1e-3 * abs(model64.lower_bound_)
    np.testing.assert_array_equal(model32.predict(X), model64.predict(X))


def test_float64_leaves_global_jax_setting_alone(blobs_2d):
    before = jax.config.jax_enable_x64
    GaussianMixture(2, random_state=0).fit(blobs_2d[0]).score(blobs_2d[0])
    assert jax.config.jax_enable_x64 == before


def test_input_arrays_are_not_modified(blobs_2d):
    X = blobs_2d[0].copy()
    weights = np.linspace(0.5, 2.0, len(X))
    X_before, weights_before = X.copy(), weights.copy()
    means = np.array([[0.0, 0.0], [1.0, 1.0]])
    model = GaussianMixture(2, means_init=means, random_state=0).fit(X, sample_weight=weights)
    model.predict_proba(X)
    np.testing.assert_array_equal(X, X_before)
    np.testing.assert_array_equal(weights, weights_before)
    np.testing.assert_array_equal(means, [[0.0, 0.0], [1.0, 1.0]])


def _compilations(fn):
    return fn._cache_size()


def test_refits_restarts_and_nearby_sizes_do_not_recompile(blobs_8d):
    X, _ = blobs_8d
    GaussianMixture(3, random_state=0).fit(X)
    before = _compilations(engine.run_em)
    GaussianMixture(3, random_state=1).fit(X)
    GaussianMixture(3, random_state=2).fit(X[:-10])
    GaussianMixture(3, random_state=2).fit(X + 1.0, sample_weight=np.ones(len(X)))
    assert _compilations(engine.run_em) == before
    GaussianMixture(3, n_init=3, random_state=0).fit(X)
    after_restarts = _compilations(engine.run_em)
    GaussianMixture(3, n_init=3, random_state=5).fit(X)
    assert _compilations(engine.run_em) == after_restarts
    warm = GaussianMixture(3, warm_start=True, random_state=0).fit(X)
    warm_count = _compilations(engine.run_em)
    warm.fit(X)
    warm.fit(X)
    assert _compilations(engine.run_em) == warm_count


def test_float32_on_cpu_compiles_with_its_own_options(blobs_8d):
    # float32 fits on the CPU are compiled without YNNPACK dots (faster there,
    # see compilation.CPU_COMPILER_OPTIONS); float64 'full' keeps XLA's defaults. Both agree.
    X = blobs_8d[0][:-3, :7]  # a shape no other test compiles
    default, float32_cpu = engine.run_em.variant(None), engine.run_em.variant("float32")
    before = (default._cache_size(), float32_cpu._cache_size())
    single = GaussianMixture(4, dtype="float32", random_state=0, tol=1e-6).fit(X)
    assert float32_cpu._cache_size() == before[1] + 1
    assert default._cache_size() == before[0]
    double = GaussianMixture(4, dtype="float64", random_state=0, tol=1e-6).fit(X)
    assert float32_cpu._cache_size() == before[1] + 1
    assert single.means_.dtype == np.float32
    np.testing.assert_allclose(single.means_, double.means_, rtol=1e-4, atol=1e-4)
    assert abs(single.lower_bound_ - double.lower_bound_) <= 1e-5 * abs(double.lower_bound_)


@pytest.mark.parametrize("covariance_type", ["diag", "spherical"])
def test_float64_narrow_features_compile_with_elementwise_ynn(blobs_8d, covariance_type):
    X = blobs_8d[0][:-5, :6]  # a shape no other test compiles
    narrow = engine.run_em.variant("float64-narrow")
    before = (narrow._cache_size(), engine.run_em.variant(None)._cache_size())
    GaussianMixture(4, covariance_type=covariance_type, random_state=0).fit(X)
    assert narrow._cache_size() == before[0] + 1
    assert engine.run_em.variant(None)._cache_size() == before[1]
    GaussianMixture(4, covariance_type="full", random_state=0).fit(X)
    assert narrow._cache_size() == before[0] + 1


def test_not_converged_warns(blobs_8d):
    with pytest.warns(ConvergenceWarning, match="did not converge"):
        GaussianMixture(4, max_iter=1, random_state=0).fit(blobs_8d[0])


def test_collapsing_component_raises_with_fix():
    X = np.vstack([np.zeros((20, 2)), np.ones((20, 2))])
    with pytest.raises(ValueError, match="increase reg_covar"):
        GaussianMixture(2, reg_covar=0.0, random_state=0).fit(X)
    # The default regularisation handles duplicated points, as in scikit-learn.
    model = GaussianMixture(2, random_state=0).fit(X)
    np.testing.assert_allclose(np.sort(model.means_[:, 0]), [0.0, 1.0], atol=1e-8)


def test_verbose_prints_like_sklearn(blobs_2d, capsys):
    GaussianMixture(2, verbose=2, verbose_interval=1, random_state=0).fit(blobs_2d[0])
    out = capsys.readouterr().out
    assert "Initialization 0" in out
    assert "Iteration 1\t time lapse" in out and "ll change" in out
    assert "Initialization converged" in out


# --------------------------------------------------------------- bad input

BAD_FIT_INPUTS = [
    (dict(), np.zeros(5), None, "Expected a 2-D array for X"),
    (dict(), np.zeros((0, 2)), None, "X is empty: found array with 0 sample\\(s\\) \\(shape=\\(0, 2\\)\\) while a minimum of 1 is required"),
    (dict(), np.zeros((12, 0)), None, "X is empty: found array with 0 feature\\(s\\) \\(shape=\\(12, 0\\)\\)"),
    (dict(), np.ones((5, 2)) + 1j, None, "Complex data not supported: X must be real-valued"),
    (dict(), np.array([[1.0, "a"], [2.0, 3.0]], dtype=object), None, "X must contain numbers, got dtype object"),
    (dict(), np.array([[0.0, 1.0], [np.nan, 2.0], [1.0, 1.0]]), None, "X contains NaN \\(first at row 1, column 0\\)"),
    (dict(), np.array([[0.0, 1.0], [np.inf, 2.0], [1.0, 1.0]]), None, "X contains infinity"),
    (dict(), [["a", "b"], ["c", "d"]], None, "X must contain numbers"),
    (dict(n_components=5), np.zeros((3, 2)), None, "Expected n_samples >= n_components but got n_components = 5, n_samples = 3"),
    (dict(covariance_type="blah"), np.zeros((5, 2)), None, "Invalid value for 'covariance_type': 'blah'"),
    (dict(init_params="bad"), np.zeros((5, 2)), None, "Invalid value for 'init_params': 'bad'"),
    (dict(n_components=0), np.zeros((5, 2)), None, "Invalid value for 'n_components': 0"),
    (dict(tol=-1.0), np.zeros((5, 2)), None, "Invalid value for 'tol'"),
    (dict(dtype="int8"), np.zeros((5, 2)), None, "dtype must be 'float64' or 'float32'"),
    (dict(n_components=2, weights_init=[0.5, 0.6]), np.ones((5, 2)), None, "The parameter 'weights' should be normalized, but got sum\\(weights\\) = 1.10000"),
    (dict(n_components=2, weights_init=[0.5, 0.3, 0.2]), np.ones((5, 2)), None, "The parameter 'weights' should have the shape of \\(2,\\)"),
    (dict(n_components=2, means_init=np.zeros((2, 3))), np.ones((5, 2)), None, "The parameter 'means' should have the shape of \\(2, 2\\)"),
    (dict(n_components=1, precisions_init=-np.eye(2)[None]), np.ones((5, 2)), None, "'full precision' should be symmetric, positive-definite"),
    (dict(n_components=2, weights_init=[1.2, 1.5]), np.ones((5, 2)), None, "The parameter 'weights' should be in the range \\[0, 1\\], but got max value 1.50000, min value 1.20000"),
    (dict(n_components=2, covariance_type="diag", precisions_init=np.ones((2, 3))), np.ones((5, 2)), None, "The parameter 'diag precision' should have the shape of \\(2, 2\\), but got \\(2, 3\\)"),
    (dict(n_components=2, covariance_type="spherical", precisions_init=[1.0, 0.0]), np.ones((5, 2)), None, "'spherical precision' should be positive"),
    (dict(), np.ones((5, 2)), np.ones(4), "sample_weight has shape \\(4,\\), expected \\(5,\\)"),
    (dict(), np.ones((5, 2)), -np.ones(5), "sample_weight contains negative values"),
    (dict(), np.ones((5, 2)), np.zeros(5), "sample_weight is zero for every sample"),
    (dict(n_components=3), np.ones((5, 2)), [1, 1, 0, 0, 0], "Only 2 sample\\(s\\) have a positive sample_weight"),
]


def test_float32_weights_init_is_checked_at_float32_tolerance():
    # As scikit-learn does: float32 weights summing to 1 within float32's
    # rounding (here 1 + 2.2e-8) are accepted also by a float64 fit.
    weights = np.array([0.1, 0.2, 0.3, 0.4], dtype=np.float32)
    assert abs(1.0 - float(weights.astype(np.float64).sum())) > 1e-8
    X = np.random.RandomState(0).randn(100, 3)
    model = GaussianMixture(4, weights_init=weights, random_state=0).fit(X)
    assert model.weights_.dtype == np.float64
    with pytest.raises(ValueError, match="should be normalized"):
        GaussianMixture(4, weights_init=weights.astype(np.float64) + [0, 0, 0, 2e-6]).fit(X)


@pytest.mark.parametrize("params, X, sample_weight, message", BAD_FIT_INPUTS)
def test_bad_fit_input_raises_before_work(params, X, sample_weight, message):
    before = _compilations(engine.run_em)
    with pytest.raises(ValueError, match=message):
        GaussianMixture(**params).fit(X, sample_weight=sample_weight)
    assert _compilations(engine.run_em) == before


def test_sparse_and_object_input_like_scikit_learn(blobs_2d):
    from scipy import sparse

    X = blobs_2d[0]
    with pytest.raises(TypeError, match="Sparse data was passed for X, but dense data is required"):
        GaussianMixture(2).fit(sparse.csr_matrix(X))
    # Numbers stored as Python objects are numbers: same fit as the float array.
    as_objects = X.astype(object)
    fitted = GaussianMixture(2, random_state=0).fit(as_objects)
    np.testing.assert_array_equal(fitted.means_, GaussianMixture(2, random_state=0).fit(X).means_)
    assert as_objects.dtype == object  # the caller's array is left alone
    as_objects[0, 0] = {"not": "a number"}
    with pytest.raises(TypeError, match="X has dtype object and holds a value that is not a number"):
        GaussianMixture(2).fit(as_objects)


def test_unfitted_and_wrong_features_at_predict(blobs_2d):
    with pytest.raises(NotFittedError, match="not fitted yet"):
        GaussianMixture().predict(blobs_2d[0])
    with pytest.raises(NotFittedError):
        GaussianMixture().sample(3)
    model = GaussianMixture(2, random_state=0).fit(blobs_2d[0])
    with pytest.raises(ValueError, match="X has 3 features, but GaussianMixture is expecting 2 features as input"):
        model.predict_proba(np.zeros((4, 3)))
    with pytest.raises(ValueError, match="Invalid value for 'n_samples': 0"):
        model.sample(0)


def test_long_fits_show_a_progress_bar_on_a_terminal_only(blobs_2d, capsys, monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.setattr("sys.stderr.isatty", lambda: True, raising=False)
    assert engine.wants_progress_bar(1_000_000, 16, 16, "full")
    assert not engine.wants_progress_bar(800, 2, 2, "full")
    monkeypatch.setenv("CI", "true")
    assert not engine.wants_progress_bar(1_000_000, 16, 16, "full")
    monkeypatch.setattr(driver, "wants_progress_bar", lambda *args: True)
    GaussianMixture(2, random_state=0, max_iter=50).fit(blobs_2d[0])
    err = capsys.readouterr().err
    assert "EM:" in err and ("it/s" in err or "s/it" in err)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_weighted_column_sum_equals_the_matrix_product(dtype):
    # The host-side centring sum avoids BLAS (whose spinning threads would
    # share the cores with the EM loop that follows); it must still be weights @ X.
    rng = np.random.default_rng(3)
    X = rng.normal(size=(1001, 7)).astype(dtype)
    weights = rng.random(1001).astype(dtype)
    result = blocks.weighted_column_sum(weights, X)
    assert result.dtype == dtype and result.shape == (7,)
    expected = weights.astype(np.float64) @ X.astype(np.float64)
    np.testing.assert_allclose(result, expected, rtol=1e-5 if dtype == np.float32 else 1e-12)


# ------------------------------------------------------------------ feature names

NAMES_DIFFER = "The feature names should match those that were passed during fit."


def test_feature_names_are_kept_and_checked_as_scikit_learn_does(blobs_2d):
    pandas = pytest.importorskip("pandas")
    X = blobs_2d[0]
    frame = pandas.DataFrame(X, columns=["height", "weight"])
    model = GaussianMixture(2, random_state=0).fit(frame)
    np.testing.assert_array_equal(model.feature_names_in_, ["height", "weight"])
    assert model.feature_names_in_.dtype == object
    # The names do not change the fit or the predictions.
    reference = GaussianMixture(2, random_state=0).fit(X)
    np.testing.assert_array_equal(model.means_, reference.means_)
    np.testing.assert_array_equal(model.predict(frame), reference.predict(X))
    for method in ("predict", "predict_proba", "score_samples", "score", "bic", "aic"):
        with pytest.raises(ValueError, match=NAMES_DIFFER):
            getattr(model, method)(frame[["weight", "height"]])
        with pytest.raises(ValueError, match=NAMES_DIFFER):
            getattr(model, method)(frame.set_axis(["x0", "x1"], axis=1))
    with pytest.warns(UserWarning, match="X does not have valid feature names, but "
                      "GaussianMixture was fitted with feature names"):
        model.predict(X)
    # A refit on an array forgets the names, and a frame then warns the other way.
    model.fit(X)
    assert not hasattr(model, "feature_names_in_")
    with pytest.warns(UserWarning, match="X has feature names, but GaussianMixture was "
                      "fitted without feature names"):
        model.predict(frame)


# ------------------------------------------------------------ the scale of weights


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_uniform_weights_of_any_scale_give_the_unweighted_fit(blobs_2d, dtype, tmp_path):
    X = blobs_2d[0][:300]
    unweighted = GaussianMixture(3, random_state=0, dtype=dtype).fit(X)
    streamed_X = np.memmap(tmp_path / "x.dat", dtype=np.float64, mode="w+", shape=X.shape)
    streamed_X[:] = X
    streamed = GaussianMixture(3, random_state=0, dtype=dtype).fit(streamed_X)
    online = GaussianMixture(3, random_state=0, dtype=dtype)
    online.partial_fit(X[:150]).partial_fit(X[150:])
    scales = [1e-30, 1e-20, 1e-3 / len(X), 1e30] + ([1e-310] if dtype == "float64" else [])
    for scale in scales:
        weights = np.full(len(X), scale)
        model = GaussianMixture(3, random_state=0, dtype=dtype).fit(X, sample_weight=weights)
        assert model.n_iter_ == unweighted.n_iter_
        np.testing.assert_array_equal(model.means_, unweighted.means_)
        np.testing.assert_array_equal(model.lower_bound_, unweighted.lower_bound_)
        model = GaussianMixture(3, random_state=0, dtype=dtype).fit(
            streamed_X, sample_weight=weights)
        # The stream's centring shift is a weighted sum of the weights as given: rounding.
        np.testing.assert_allclose(model.means_, streamed.means_,
                                   rtol=1e-12 if dtype == "float64" else 1e-5)
        model = GaussianMixture(3, random_state=0, dtype=dtype)
        model.partial_fit(X[:150], sample_weight=weights[:150])
        model.partial_fit(X[150:], sample_weight=weights[150:])
        np.testing.assert_array_equal(model.means_, online.means_)


def test_weights_beyond_the_dtype_range_are_refused(blobs_2d):
    X = blobs_2d[0][:100]
    weights = np.r_[np.full(99, 1e-40), 1.0]
    message = ("sample_weight spans too many orders of magnitude for float32: the smallest "
               r"positive weight \(1e-40\) is less than 1.17549e-38 times the largest \(1\). "
               "Give the samples that should not count a weight of 0, or pass dtype='float64'.")
    for fit in (lambda model: model.fit(X, sample_weight=weights),
                lambda model: model.partial_fit(X, sample_weight=weights)):
        with pytest.raises(ValueError, match=message):
            fit(GaussianMixture(2, dtype="float32"))
    # float64 holds them: the heavy sample counts, the others barely.
    GaussianMixture(2, random_state=0).fit(X, sample_weight=np.r_[weights[:98], 1.0, 1.0])


# ------------------------------------------------------- max_iter and the history


def test_a_huge_max_iter_costs_no_memory_and_an_impossible_one_is_refused(blobs_2d):
    X = blobs_2d[0]
    model = GaussianMixture(3, random_state=0, max_iter=10**9).fit(X)
    reference = GaussianMixture(3, random_state=0).fit(X)
    assert model.n_iter_ == reference.n_iter_ and model.converged_
    np.testing.assert_array_equal(model.lower_bounds_, reference.lower_bounds_)
    # The loop's state holds at most HISTORY_LENGTH bounds however large max_iter is.
    params = reference._params()
    state = engine.initial_state(params, -np.inf, 10**9)
    assert state.lower_bounds.shape == (engine.HISTORY_LENGTH,)
    with pytest.raises(ValueError, match=r"Invalid value for 'max_iter': 10000000000. It must "
                       r"be an integer in \[0, 2147483647\]."):
        GaussianMixture(3, max_iter=10**10).fit(X)


def test_the_history_keeps_the_last_bounds_in_order(blobs_2d, monkeypatch):
    X = blobs_2d[0][:200]
    settings = dict(n_components=3, random_state=0, tol=0.0, max_iter=37)
    full = GaussianMixture(**settings).fit(X)
    assert full.n_iter_ == 37 and len(full.lower_bounds_) == 37
    monkeypatch.setattr(engine, "HISTORY_LENGTH", 5)
    jax.clear_caches()  # trace again with the shorter history
    short = GaussianMixture(**settings).fit(X)
    jax.clear_caches()
    assert short.n_iter_ == 37
    np.testing.assert_array_equal(short.lower_bounds_, full.lower_bounds_[-5:])
    assert short.lower_bounds_[-1] == short.lower_bound_


def test_ctrl_c_ends_a_long_fit_promptly_and_leaves_it_unfitted():
    import _thread
    import threading
    import time

    X = np.random.RandomState(0).randn(5000, 3)
    model = GaussianMixture(5, random_state=0, tol=0.0, max_iter=10**6)  # minutes of EM
    done = threading.Event()

    def press_ctrl_c():
        # What Ctrl-C does, after 1 s. CPython drops an interrupt that lands
        # while a __del__ or weakref callback runs (it only prints "Exception
        # ignored"); a user presses again, and so does this thread, every 0.5 s.
        if not done.wait(1.0):
            _thread.interrupt_main()
            while not done.wait(0.5):
                _thread.interrupt_main()

    presser = threading.Thread(target=press_ctrl_c)
    start = time.perf_counter()
    presser.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            model.fit(X)
    finally:
        done.set()
        presser.join()
    elapsed = time.perf_counter() - start
    # Stretches of the loop last about engine.STRETCH_SECONDS; generous for a loaded machine.
    assert elapsed < 1.0 + 4.0, elapsed
    assert not hasattr(model, "means_")
    assert GaussianMixture(5, random_state=0).fit(X).converged_  # the process is usable


def test_stretches_of_the_loop_give_the_one_call_fit(blobs_2d, monkeypatch):
    X = blobs_2d[0]
    settings = dict(n_components=3, random_state=0, tol=1e-10, max_iter=500, n_init=2)
    programs = engine.run_em._cache_size()
    whole = GaussianMixture(**settings).fit(X)
    monkeypatch.setattr(engine, "FIRST_STRETCH", 1)
    monkeypatch.setattr(engine, "STRETCH_SECONDS", 1e-9)  # one iteration per call
    calls = []
    original = engine.run_em

    def counted(*args, **kwargs):
        calls.append(int(args[4]))
        return original(*args, **kwargs)

    monkeypatch.setattr(engine, "run_em", counted)
    stretched = GaussianMixture(**settings).fit(X)
    assert calls[:3] == [1, 2, 3] and len(calls) >= whole.n_iter_
    # Every stretch runs one program: the host states of the first call, not device arrays, start the next.
    assert original._cache_size() <= programs + 1
    assert stretched.n_iter_ == whole.n_iter_
    np.testing.assert_array_equal(stretched.lower_bounds_, whole.lower_bounds_)
    np.testing.assert_array_equal(stretched.means_, whole.means_)


# ---------------------------------------------------- dtype and parameter errors


def test_dtype_follows_the_data_unless_given(blobs_2d):
    X = blobs_2d[0]
    X32 = X.astype(np.float32)
    model = GaussianMixture(2, random_state=0).fit(X32)
    for name in ("weights_", "means_", "covariances_", "precisions_cholesky_", "precisions_"):
        assert getattr(model, name).dtype == np.float32, name
    for method in ("predict_proba", "score_samples"):
        assert getattr(model, method)(X32).dtype == np.float32
        assert getattr(model, method)(X).dtype == np.float32  # the model's precision
    forced = GaussianMixture(2, random_state=0, dtype="float32").fit(X)
    np.testing.assert_array_equal(model.means_, forced.means_)
    assert GaussianMixture(2, random_state=0).fit(X).means_.dtype == np.float64
    assert GaussianMixture(2, random_state=0).fit(X.tolist()).means_.dtype == np.float64
    assert GaussianMixture(2, random_state=0, dtype="float64").fit(X32).means_.dtype == np.float64
    online = GaussianMixture(2, random_state=0).partial_fit(X32[:100]).partial_fit(X[100:])
    assert online.means_.dtype == np.float32


def test_complex_weights_and_float32_overflow_are_named(blobs_2d):
    X = blobs_2d[0][:50]
    with pytest.raises(ValueError, match="Complex data not supported: sample_weight must be "
                       "real-valued."):
        GaussianMixture(2).fit(X, sample_weight=np.ones(50) + 1j)
    big = X.copy()
    big[3, 1] = 1e39
    with pytest.raises(ValueError, match=r"X holds 1e\+39 \(first at row 3, column 1\), outside "
                       r"the range of float32 \(largest 3.40282e\+38\). Pass dtype='float64' or "
                       "scale the data."):
        GaussianMixture(2, dtype="float32").fit(big)
    # EM fits scale weights in float64 first (so 1e39 is fine there); where weights
    # are cast to float32 as given, the message says why they do not fit.
    weights = np.r_[np.full(49, 1e10), 1e39]
    GaussianMixture(2, random_state=0, dtype="float32").fit(X, sample_weight=weights)
    from bayesgmm import _validation

    with pytest.raises(ValueError, match=r"sample_weight holds 1e\+39, outside the range of "
                       "float32"):
        _validation.check_sample_weight(weights, 50, np.float32)
