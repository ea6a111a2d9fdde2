"""EM with values missing at random (``missing='marginalize'``): the likelihood, its maximum, the paths."""

import numpy as np
import pytest
from scipy.optimize import minimize
from scipy.special import logsumexp
from scipy.stats import multivariate_normal
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture as SklearnMixture

from bayesgmm import GaussianMixture, GaussianMixtureIC, datasets, structures
from bayesgmm.metrics import hard_accuracy
from bayesgmm.mixture import incomplete

# One setting for most fits: tol and max_iter are static arguments of the
# compiled loop, so fits of the same shapes then share one program. Fits of
# fewer than incomplete.SMALL_ROWS rows with 3 features (600 here, as in
# _mixture) share the shapes of their pattern tiles; the same number of rows
# also shares the programs of the initialisation.
EM = dict(tol=1e-8, max_iter=500)
# Fits compared with an exact maximum (closed form, optimiser), 2 features.
TIGHT = dict(tol=1e-14, max_iter=5000, reg_covar=0.0)


def _mixture(n_samples=600, seed=0):
    rng = np.random.default_rng(seed)
    first = rng.multivariate_normal(
        [0.0, 0.0, 0.0], [[1.0, 0.6, 0.3], [0.6, 1.0, 0.4], [0.3, 0.4, 1.0]], n_samples // 2
    )
    second = rng.multivariate_normal(
        [3.0, 4.0, 2.0], [[1.0, -0.5, 0.0], [-0.5, 1.5, 0.2], [0.0, 0.2, 0.7]], n_samples // 2
    )
    return np.concatenate([first, second]), rng


def _remove(X, rng, rate, mechanism="MCAR"):
    """NaN at ``rate`` of the entries of columns 1 and 2 (column 0 always observed)."""
    X = X.copy()
    if mechanism == "MCAR":
        drop = rng.random(X.shape) < rate
    else:  # at random given column 0: more holes where column 0 is large
        score = (X[:, :1] - X[:, 0].mean()) / X[:, 0].std()
        probability = 1 / (1 + np.exp(-(2 * score + np.log(rate / (1 - rate)))))
        drop = rng.random(X.shape) < probability
    drop[:, 0] = False
    X[drop] = np.nan
    return X


def _observed_log_likelihood(model, X):
    """Mean observed-data log-likelihood, computed with SciPy row by row."""
    covariances = structures.get(model.covariance_type).full_matrices(
        model.covariances_, model.n_components, X.shape[1]
    )
    total = 0.0
    for x in X:
        o = ~np.isnan(x)
        terms = [
            np.log(model.weights_[k])
            + multivariate_normal(model.means_[k, o], covariances[k][np.ix_(o, o)]).logpdf(x[o])
            for k in range(model.n_components)
        ]
        total += logsumexp(terms)
    return total / X.shape[0]


def test_complete_data_take_the_usual_path(monkeypatch):
    X, _ = _mixture()
    usual = GaussianMixture(2, random_state=0).fit(X)

    def refuse(*args, **kwargs):
        raise AssertionError("complete data went through the missing-value pass")

    monkeypatch.setattr(incomplete, "in_memory_pass", refuse)
    marginalized = GaussianMixture(2, random_state=0, missing="marginalize").fit(X)
    for name in ("weights_", "means_", "covariances_", "precisions_cholesky_", "lower_bounds_"):
        np.testing.assert_array_equal(getattr(marginalized, name), getattr(usual, name))
    np.testing.assert_array_equal(marginalized.score_samples(X), usual.score_samples(X))
    np.testing.assert_array_equal(marginalized.predict_proba(X), usual.predict_proba(X))


@pytest.mark.parametrize("rate, mechanism", [(0.1, "MCAR"), (0.4, "MCAR"), (0.25, "MAR")])
def test_score_is_the_observed_data_likelihood_and_the_bound_rises(rate, mechanism):
    X, rng = _mixture()
    X = _remove(X, rng, rate, mechanism)
    model = GaussianMixture(2, random_state=0, missing="marginalize", **EM).fit(X)
    np.testing.assert_allclose(model.score(X), _observed_log_likelihood(model, X), rtol=1e-10)
    # The bound of the last E-step is the observed-data likelihood of the parameters before it.
    np.testing.assert_allclose(model.lower_bound_, model.score(X), atol=1e-7)
    assert np.all(np.diff(model.lower_bounds_) >= -1e-12)


def test_em_result_is_a_local_maximum():
    """From the EM result, L-BFGS on the observed-data likelihood gains less than 1e-8 per row."""
    X, rng = _mixture(400)
    X = _remove(X[:, :2], rng, 0.3)
    model = GaussianMixture(2, random_state=0, missing="marginalize", **TIGHT).fit(X)
    observed = ~np.isnan(X)

    def unpack(theta):
        logits, means, cholesky = theta[:2], theta[2:6].reshape(2, 2), theta[6:].reshape(2, 3)
        weights = np.exp(logits - logsumexp(logits))
        factors = np.zeros((2, 2, 2))
        factors[:, 0, 0], factors[:, 1, 1] = np.exp(cholesky[:, 0]), np.exp(cholesky[:, 2])
        factors[:, 1, 0] = cholesky[:, 1]
        return weights, means, factors @ np.swapaxes(factors, 1, 2)

    def negative_log_likelihood(theta):
        weights, means, covariances = unpack(theta)
        total = 0.0
        for pattern in np.unique(observed, axis=0):
            rows = X[(observed == pattern).all(axis=1)][:, pattern]
            terms = [np.log(weights[k]) + multivariate_normal(
                means[k, pattern], covariances[k][np.ix_(pattern, pattern)]).logpdf(rows).reshape(-1)
                for k in range(2)]
            total += logsumexp(np.stack(terms), axis=0).sum()
        return -total / X.shape[0]

    cholesky = np.linalg.cholesky(model.covariances_)
    start = np.concatenate([
        np.log(model.weights_), model.means_.ravel(),
        np.stack([np.log(cholesky[:, 0, 0]), cholesky[:, 1, 0], np.log(cholesky[:, 1, 1])], axis=1).ravel(),
    ])
    at_em = negative_log_likelihood(start)
    np.testing.assert_allclose(-at_em, model.score(X), rtol=1e-10)
    found = minimize(negative_log_likelihood, start, method="L-BFGS-B", options=dict(ftol=1e-15, gtol=1e-10))
    assert found.fun >= at_em - 1e-8


def test_one_component_monotone_pattern_closed_form():
    """K=1, x1 always observed, x2 missing for some rows: the factorised MLE (Anderson 1957)."""
    rng = np.random.default_rng(5)
    X = rng.multivariate_normal([1.0, -2.0], [[2.0, 1.2], [1.2, 1.5]], 500)
    X[rng.random(500) < 0.35, 1] = np.nan
    model = GaussianMixture(1, missing="marginalize", **TIGHT).fit(X)
    complete = ~np.isnan(X[:, 1])
    mu1, s11 = X[:, 0].mean(), X[:, 0].var()
    xc, yc = X[complete, 0], X[complete, 1]
    beta = np.cov(xc, yc, bias=True)[0, 1] / xc.var()
    alpha = yc.mean() - beta * xc.mean()
    residual = np.mean((yc - alpha - beta * xc) ** 2)
    mu2 = alpha + beta * mu1
    expected = np.array([[s11, beta * s11], [beta * s11, residual + beta**2 * s11]])
    np.testing.assert_allclose(model.means_[0], [mu1, mu2], rtol=1e-8)
    np.testing.assert_allclose(model.covariances_[0], expected, rtol=1e-7)


def _parameter_error(model, truth_means, truth_covariances):
    order = np.argsort(model.means_[:, 0])
    return (np.abs(model.means_[order] - truth_means).mean()
            + np.abs(model.covariances_[order] - truth_covariances).mean())


@pytest.mark.parametrize("rate", [0.1, 0.3, 0.5])
def test_recovery_beats_complete_case_and_mean_imputation(rate):
    rng = np.random.default_rng(11)
    means = np.array([[0.0, 0.0, 0.0], [4.0, 3.0, 2.0]])
    covariances = np.array([[[1.0, 0.7, 0.5], [0.7, 1.0, 0.6], [0.5, 0.6, 1.0]],
                            [[1.0, -0.4, 0.3], [-0.4, 1.0, 0.2], [0.3, 0.2, 1.0]]])
    X = np.concatenate([rng.multivariate_normal(m, c, 1500) for m, c in zip(means, covariances)])
    X = _remove(X, rng, rate, "MAR")
    ours = GaussianMixture(2, missing="marginalize", random_state=0, **EM).fit(X)
    # The two usual workarounds, fitted by scikit-learn (the same maximum-likelihood EM).
    reference = dict(n_components=2, random_state=0, **EM)
    complete_case = SklearnMixture(**reference).fit(X[~np.isnan(X).any(axis=1)])
    mean_imputed = SklearnMixture(**reference).fit(np.where(np.isnan(X), np.nanmean(X, axis=0), X))
    error = _parameter_error(ours, means, covariances)
    assert error < _parameter_error(complete_case, means, covariances)
    assert error < _parameter_error(mean_imputed, means, covariances)


def test_document_data_accuracy_with_a_fifth_missing():
    XA, XB, yA, yB = datasets.document_data()
    rng = np.random.default_rng(0)
    holes = rng.random(XA.shape) < 0.2
    holes[holes.all(axis=1), rng.integers(0, 2)] = False
    incomplete_XA = np.where(holes, np.nan, XA)
    complete = SklearnMixture(2, random_state=0).fit(XA)  # the complete-data reference
    # TIGHT: the program of the other 2-feature fits.
    model = GaussianMixture(2, random_state=0, missing="marginalize", **TIGHT).fit(incomplete_XA)
    assert abs(hard_accuracy(yB, model.predict(XB)) - hard_accuracy(yB, complete.predict(XB))) <= 3
    assert hard_accuracy(yA, model.predict(incomplete_XA)) >= hard_accuracy(yA, complete.predict(XA)) - 5


@pytest.mark.parametrize("covariance_type", list(structures.NAMES))
def test_statistics_in_every_structure_layout(covariance_type):
    """Full D x D moments laid out as each structure's own second moments (what its M-step reads)."""
    import jax

    with jax.enable_x64(True):
        rng = np.random.default_rng(0)
        X = rng.normal(size=(50, 4))
        resp = rng.dirichlet(np.ones(3), 50)
        structure = structures.get(covariance_type)
        expected = structure.moments(resp.T @ np.asarray(structure.features(X)), 4)
        nk, first = resp.sum(axis=0), resp.T @ X
        second = np.einsum("nk,nd,ne->kde", resp, X, X)
        got = incomplete.statistics_from_matrices(nk, first, second, covariance_type, 0.0, 0.0)
        for value, reference in zip(got[:3], expected):
            np.testing.assert_allclose(value, reference, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("covariance_type", ["tied", "diag", "VEI"])
def test_every_kind_of_structure_fits(covariance_type):
    X, rng = _mixture()
    X = _remove(X, rng, 0.3)
    model = GaussianMixture(2, covariance_type=covariance_type, random_state=0, missing="marginalize", **EM).fit(X)
    assert np.all(np.diff(model.lower_bounds_) >= -1e-10)
    np.testing.assert_allclose(model.score(X), model.lower_bound_, atol=2e-3)
    assert np.isfinite(model.score_samples(X)).all()


def test_sample_weight_n_init_warm_start():
    X, rng = _mixture()
    X = _remove(X, rng, 0.3)
    counts = rng.integers(0, 3, X.shape[0])
    weighted = GaussianMixture(2, random_state=0, missing="marginalize", means_init=[[0, 0, 0], [3, 4, 2]],
                               **EM).fit(X, sample_weight=counts)
    repeated = GaussianMixture(2, random_state=0, missing="marginalize", means_init=[[0, 0, 0], [3, 4, 2]],
                               **EM).fit(np.repeat(X, counts, axis=0))
    np.testing.assert_allclose(weighted.means_, repeated.means_, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(weighted.covariances_, repeated.covariances_, rtol=1e-6, atol=1e-8)
    restarts = GaussianMixture(2, random_state=0, missing="marginalize", n_init=3, **EM).fit(X)
    single = GaussianMixture(2, random_state=0, missing="marginalize", **EM).fit(X)
    assert restarts.lower_bound_ >= single.lower_bound_ - 1e-9
    warm = GaussianMixture(2, random_state=0, missing="marginalize", warm_start=True, tol=1e-8, max_iter=3)
    with pytest.warns(ConvergenceWarning):
        warm.fit(X)
    first = warm.lower_bound_
    warm.set_params(max_iter=500).fit(X)
    assert warm.lower_bound_ >= first - 1e-12
    np.testing.assert_allclose(warm.means_, single.means_, rtol=1e-5)


def test_a_row_of_weight_zero_may_be_all_missing():
    X, rng = _mixture()
    X = _remove(X, rng, 0.2)
    X[5] = np.nan
    with pytest.raises(ValueError, match=r"^Row 5 of X has every value missing: it has no likelihood\. "
                                         r"Remove it, or give it sample_weight 0"):
        GaussianMixture(2, missing="marginalize").fit(X)
    weights = np.ones(X.shape[0])
    weights[5] = 0
    kept = GaussianMixture(2, random_state=0, missing="marginalize", **EM).fit(X, sample_weight=weights)
    dropped = GaussianMixture(2, random_state=0, missing="marginalize", **EM).fit(
        np.delete(X, 5, axis=0), sample_weight=np.delete(weights, 5))
    np.testing.assert_allclose(kept.means_, dropped.means_, rtol=1e-10)


@pytest.mark.parametrize("change, message", [
    (dict(missing="drop"), r"Invalid value for 'missing': 'drop'\. It must be one of 'raise', 'marginalize'"),
    (dict(means_init=[[0.0, np.nan, 0.0], [1.0, 1.0, 1.0]]), r"The parameter 'means' contains NaN or infinity\."),
    (dict(weights_init=[np.nan, 1.0]), r"The parameter 'weights' contains NaN or infinity\."),
])
def test_bad_settings(change, message):
    X, rng = _mixture(100)
    X = _remove(X, rng, 0.2)
    with pytest.raises(ValueError, match=message):
        GaussianMixture(2, **dict(dict(missing="marginalize"), **change)).fit(X)


def test_bad_data_messages():
    X, rng = _mixture(100)
    X = _remove(X, rng, 0.2)
    with pytest.raises(ValueError, match=r"^X contains NaN \(first at row \d+, column \d\)\. Remove or impute "
                                         r"non-finite values before fitting, or pass missing='marginalize'"):
        GaussianMixture(2).fit(X)
    weights = np.ones(X.shape[0])
    weights[3] = np.nan
    with pytest.raises(ValueError, match=r"^sample_weight contains NaN or infinity\. Pass finite weights\.$"):
        GaussianMixture(2, missing="marginalize").fit(X, sample_weight=weights)
    X[:, 2] = np.nan
    with pytest.raises(ValueError, match=r"^Column 2 of X has no observed value \(every entry is missing\): it "
                                         r"cannot be estimated\. Remove the column\.$"):
        GaussianMixture(2, missing="marginalize").fit(X)
    X[0, :] = np.inf
    with pytest.raises(ValueError, match=r"^X contains infinity \(first at row 0, column 0\)"):
        GaussianMixture(2, missing="marginalize").fit(X)


def test_pattern_tiles_cover_every_row_once():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(3000, 6))
    X[rng.random(X.shape) < 0.3] = np.nan
    X = X[~np.isnan(X).all(axis=1)]
    tiles, rows = incomplete.tile_rows(X, np.ones(X.shape[0]))
    placed = np.concatenate([group[group >= 0] for group in rows])
    np.testing.assert_array_equal(np.sort(placed), np.arange(X.shape[0]))
    for group_rows, pattern in zip(rows, tiles.pattern):
        for tile_rows, which in zip(group_rows.reshape(-1, group_rows.shape[-1]), pattern.reshape(-1)):
            members = tile_rows[tile_rows >= 0]
            expected = np.broadcast_to(tiles.observed[which], (members.size, 6))
            np.testing.assert_array_equal(~np.isnan(X[members]), expected)
    # Padding: under one smallest tile per pattern, and the last step of each group.
    padding = 16 * incomplete.n_patterns(X) + incomplete.ROWS_PER_STEP * len(tiles.weights)
    assert sum(w.size for w in tiles.weights) < X.shape[0] + padding


def test_save_and_load_keep_missing(tmp_path):
    from bayesgmm import load

    X, rng = _mixture()
    X = _remove(X, rng, 0.2)
    model = GaussianMixture(2, random_state=0, missing="marginalize", **EM).fit(X)
    model.save(tmp_path / "model.npz")
    loaded = load(tmp_path / "model.npz")
    assert loaded.missing == "marginalize"
    np.testing.assert_array_equal(loaded.score_samples(X), model.score_samples(X))
    model.missing = "sometimes"
    with pytest.raises(ValueError, match="Invalid value for 'missing'"):
        model.save(tmp_path / "bad.npz")
        load(tmp_path / "bad.npz")


def test_partial_fit_with_missing_values():
    X, rng = _mixture(600)
    X = _remove(X, rng, 0.2)
    order = rng.permutation(X.shape[0])
    online = GaussianMixture(2, random_state=0, missing="marginalize", means_init=[[0, 0, 0], [3, 4, 2]])
    for batch in np.array_split(X[order], 3):
        online.partial_fit(batch)
    batch_fit = GaussianMixture(2, random_state=0, missing="marginalize", **EM).fit(X)
    order_online, order_batch = np.argsort(online.means_[:, 0]), np.argsort(batch_fit.means_[:, 0])
    np.testing.assert_allclose(online.means_[order_online], batch_fit.means_[order_batch], atol=0.3)
    assert np.isfinite(online.lower_bound_)


def test_streamed_fits_check_the_missing_option(tmp_path):
    # Streamed fits of missing values: tests/mixture/test_streaming_missing.py.
    X, rng = _mixture(200)
    X = _remove(X, rng, 0.2)
    path = tmp_path / "X.dat"
    memmap = np.memmap(path, dtype=np.float64, mode="w+", shape=X.shape)
    memmap[:] = X
    with pytest.raises(ValueError, match="Invalid value for 'missing'"):
        GaussianMixture(2, missing="maybe").fit(memmap)


def test_model_selection_with_missing_values():
    X, rng = _mixture()
    X_missing = _remove(X, rng, 0.2)
    X_missing = np.concatenate([X_missing, np.full((1, 3), np.nan)])  # left out: weight 0
    weights = np.concatenate([np.ones(len(X)), [0.0]])
    grid = dict(max_components=3, covariance_type=["VVV", "VII"], random_state=0, missing="marginalize")
    model = GaussianMixtureIC(**grid).fit(X_missing, sample_weight=weights)
    assert (model.n_components_, model.covariance_type_) == (2, "VVV")
    best = model.best_estimator_
    assert best.missing == "marginalize"
    # The criterion is the BIC of the observed-data likelihood (SciPy, row by row).
    n_parameters = structures.n_parameters("VVV", 2, 3)
    expected = -2 * len(X) * _observed_log_likelihood(best, X_missing[:-1]) + n_parameters * np.log(len(X))
    np.testing.assert_allclose(model.criterion_, expected, rtol=1e-9)
    assert np.all(np.isfinite(model.results_["bic"]))
    with pytest.raises(ValueError, match=r"^Row 600 of X has every value missing"):
        GaussianMixtureIC(**grid).fit(X_missing)
    with pytest.raises(ValueError, match=r"missing='marginalize'"):
        GaussianMixtureIC(max_components=2).fit(X_missing[:-1])
