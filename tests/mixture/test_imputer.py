"""Imputation: conditional means, multiple-imputation draws, the scikit-learn transformer."""

import numpy as np
import pytest
from sklearn.experimental import enable_iterative_imputer  # noqa: F401
from sklearn.impute import IterativeImputer, SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from bayesgmm import GaussianMixture, MixtureImputer


def _clustered(seed=0, n_per=400):
    rng = np.random.default_rng(seed)
    means = np.array([[0.0, 0.0, 0.0], [5.0, -4.0, 3.0], [-4.0, 5.0, 4.0]])
    covariance = np.array([[1.0, 0.8, 0.4], [0.8, 1.0, 0.5], [0.4, 0.5, 1.0]])
    X = np.concatenate([rng.multivariate_normal(m, covariance, n_per) for m in means])
    y = np.repeat(np.arange(3), n_per)
    holes = rng.random(X.shape) < 0.2
    holes[holes.all(axis=1), 0] = False
    return X, np.where(holes, np.nan, X), y, rng


def test_conditional_means_beat_mean_and_iterative_imputation():
    X, X_missing, _, _ = _clustered()
    holes = np.isnan(X_missing)
    ours = MixtureImputer(3, random_state=0).fit_transform(X_missing)
    mean = SimpleImputer().fit_transform(X_missing)
    iterative = IterativeImputer(random_state=0).fit_transform(X_missing)

    def mse(filled):
        return np.mean((filled[holes] - X[holes]) ** 2)

    assert mse(ours) < 0.5 * mse(iterative) < mse(mean)
    np.testing.assert_array_equal(ours[~holes], X_missing[~holes])


def test_draws_keep_observed_values_and_spread_around_the_mean():
    _, X_missing, _, _ = _clustered()
    model = GaussianMixture(3, random_state=0, missing="marginalize").fit(X_missing)
    holes = np.isnan(X_missing)
    draws = model.impute(X_missing, n_draws=50, random_state=0)
    assert draws.shape == (50,) + X_missing.shape
    np.testing.assert_array_equal(draws[:, ~holes], np.broadcast_to(X_missing[~holes], (50, (~holes).sum())))
    assert not np.isnan(draws).any()
    assert np.std(draws[:, holes], axis=0).mean() > 0.2
    # The draws' mean approaches the conditional mean (standard error about 1 / sqrt(50) of the spread).
    np.testing.assert_allclose(draws.mean(axis=0)[holes].mean(), model.impute(X_missing)[holes].mean(), atol=0.05)
    np.testing.assert_array_equal(draws, model.impute(X_missing, n_draws=50, random_state=0))


def test_in_a_pipeline():
    X, X_missing, y, _ = _clustered()
    pipeline = make_pipeline(MixtureImputer(3, random_state=0), LogisticRegression()).fit(X_missing, y)
    assert pipeline.score(X_missing, y) > 0.95


def test_feature_names_out_and_pandas_output():
    pd = pytest.importorskip("pandas")
    _, X_missing, _, _ = _clustered()
    frame = pd.DataFrame(X_missing, columns=["a", "b", "c"])
    imputer = MixtureImputer(3, random_state=0).set_output(transform="pandas")
    filled = imputer.fit_transform(frame)
    assert list(imputer.get_feature_names_out()) == ["a", "b", "c"]
    assert isinstance(filled, pd.DataFrame) and list(filled.columns) == ["a", "b", "c"]
    np.testing.assert_array_equal(filled.to_numpy(), MixtureImputer(3, random_state=0).fit_transform(X_missing))


def test_errors():
    _, X_missing, _, _ = _clustered()
    model = GaussianMixture(3, random_state=0, missing="marginalize").fit(X_missing)
    with pytest.raises(ValueError, match=r"^Row 1 of X has every value missing"):
        model.impute([[1.0, 2.0, 3.0], [np.nan, np.nan, np.nan]])
    with pytest.raises(ValueError, match="X has 2 features, but GaussianMixture is expecting 3"):
        model.impute([[1.0, np.nan]])
    complete = [[1.0, 2.0, 3.0]]
    np.testing.assert_array_equal(model.impute(complete), complete)
