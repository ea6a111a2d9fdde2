"""The estimator's fits: its parameter checks, and the feature names of partial_fit's batches."""

import numpy as np
import pytest

from bayesgmm import GaussianMixture
from tests.mixture.test_estimator import NAMES_DIFFER


@pytest.mark.parametrize(
    "params, message",
    [
        (dict(verbose="yes"), "Invalid value for 'verbose': 'yes'. It must be an integer >= 0."),
        (dict(warm_start="no"), "Invalid value for 'warm_start': 'no'. It must be True or False."),
        (dict(devices=True), "Invalid value for 'devices': True. It must be None, 'all', an int"),
        (dict(tol="x"), "Invalid value for 'tol': 'x'. It must be a finite number >= 0."),
        (dict(covariance_type="ful"), "Invalid value for 'covariance_type': 'ful'."),
        (dict(dtype="float16"), "dtype must be 'float64' or 'float32', got 'float16'."),
    ],
)
def test_parameter_errors_are_scikit_learns_invalid_parameter_error(blobs_2d, params, message):
    from sklearn.utils._param_validation import InvalidParameterError

    for fit in ("fit", "partial_fit"):
        with pytest.raises(InvalidParameterError, match=message) as raised:
            getattr(GaussianMixture(2, **params), fit)(blobs_2d[0])
        assert isinstance(raised.value, ValueError)


def test_partial_fit_checks_feature_names_from_its_first_batch(blobs_2d):
    pandas = pytest.importorskip("pandas")
    frame = pandas.DataFrame(blobs_2d[0], columns=["a", "b"])
    model = GaussianMixture(2, random_state=0).partial_fit(frame[:100])
    np.testing.assert_array_equal(model.feature_names_in_, ["a", "b"])
    model.partial_fit(frame[100:200])
    with pytest.raises(ValueError, match=NAMES_DIFFER):
        model.partial_fit(frame[200:][["b", "a"]])
    assert model.n_iter_ == 2  # the refused batch left the model as it was
