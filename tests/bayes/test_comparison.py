"""bayes.comparison: posteriors over K and covariance types compared by PSIS-LOO."""

import warnings

import numpy as np
import pandas as pd
import pytest

from bayesgmm import structures
from bayesgmm.bayes.comparison import NOISE_DSE, compare, simplest_within_noise
from bayesgmm.datasets import document_data


SETTINGS = dict(num_warmup=150, num_samples=100, num_chains=1, random_state=0, progress_bar=False)


@pytest.fixture(scope="module")
def result():
    X = document_data(n_samples=100)[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return compare(X, (1, 2), "spherical", **SETTINGS)


def test_mclust_name_gives_the_same_posterior(result):
    X = document_data(n_samples=100)[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        alias = compare(X, (2,), "VII", **SETTINGS)
    assert alias.models["K=2"].covariance_type == "VII"
    np.testing.assert_array_equal(
        alias.models["K=2"].inference_data_.posterior["means"],
        result.models["K=2"].inference_data_.posterior["means"],
    )
    assert alias.n_parameters["K=2"] == result.n_parameters["K=2"]


def test_two_blobs_keep_two_components_and_the_models_are_fitted(result):
    assert sorted(result.table.index) == ["K=1", "K=2"]
    assert result.best == result.chosen == "K=2"
    assert result.table.loc["K=1", "elpd_diff"] > 2 * NOISE_DSE * result.table.loc["K=1", "dse"]
    assert {name: model.n_components for name, model in result.models.items()} == {"K=1": 1, "K=2": 2}
    assert result.n_parameters == {f"K={k}": structures.n_parameters("spherical", k, 2) for k in (1, 2)}
    np.testing.assert_allclose(
        result.table.loc["K=2", "elpd_loo"],
        float(__import__("arviz").loo(result.models["K=2"].inference_data_).elpd_loo),
    )


def test_the_simplest_model_within_the_noise_is_kept_by_parameter_count():
    table = pd.DataFrame({"elpd_diff": [0.0, 0.8, 1.5, 30.0], "dse": [0.0, 1.0, 1.0, 3.0]},
                         index=["full, K=2", "tied, K=2", "spherical, K=3", "spherical, K=1"])
    counts = {name: structures.n_parameters(name.split(",")[0], int(name[-1]), 4)
              for name in table.index}
    # spherical K=3 (17 parameters) is simpler than tied K=2 (24) and full K=2 (39).
    assert simplest_within_noise(table, counts) == ("spherical, K=3", "full, K=2")
    # spherical K=1 is simplest of all but 10 dse below: not noise.
    assert counts["spherical, K=1"] < counts["spherical, K=3"]


def test_bad_grids_raise_before_any_fit():
    X = np.zeros((5, 2))
    with pytest.raises(ValueError, match="repeated candidate"):
        compare(X, (2, 2))
    with pytest.raises(ValueError, match="at least one number of components"):
        compare(X, ())
    with pytest.raises(ValueError, match="Invalid value for 'covariance_type': 'VVX'"):
        compare(X, (1,), "VVX")
