"""Predictions on rows with missing values, from each row's marginal on its observed coordinates."""

import numpy as np
import pytest

from bayesgmm import GaussianMixture
from tests.mixture.test_missing import _mixture, _observed_log_likelihood, _remove


def test_predictions_of_a_model_fitted_on_complete_data():
    X, rng = _mixture()
    model = GaussianMixture(2, random_state=0, missing="marginalize").fit(X)
    incomplete_X = _remove(X, rng, 0.3)
    np.testing.assert_allclose(model.score(incomplete_X), _observed_log_likelihood(model, incomplete_X), rtol=1e-10)
    proba = model.predict_proba(incomplete_X)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    np.testing.assert_array_equal(model.predict(incomplete_X), proba.argmax(axis=1))
    with pytest.raises(ValueError, match="missing='marginalize'"):
        GaussianMixture(2, random_state=0).fit(X).predict(incomplete_X)
