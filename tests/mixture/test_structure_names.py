"""mclust's names of scikit-learn's four structures: the same fits, attributes and programs."""

import numpy as np
import pytest
from sklearn.datasets import make_blobs

from bayesgmm import GaussianMixture, structures
from bayesgmm.persistence import load, save
from tests.compilations import CompileCounter

PAIRS = [("VVV", "full"), ("EEE", "tied"), ("VVI", "diag"), ("VII", "spherical")]
ATTRIBUTES = ("weights_", "means_", "covariances_", "precisions_cholesky_", "precisions_")


@pytest.fixture(scope="module")
def X():
    return make_blobs(n_samples=240, centers=3, n_features=3, random_state=2)[0]


@pytest.mark.parametrize("mclust, sklearn", PAIRS)
def test_mclust_name_is_the_same_fit(X, mclust, sklearn, tmp_path):
    reference = GaussianMixture(3, covariance_type=sklearn, random_state=0).fit(X)
    reference_labels = reference.predict(X)
    with CompileCounter() as compilations:
        model = GaussianMixture(3, covariance_type=mclust, random_state=0).fit(X)
        labels = model.predict(X)
    # The entry's own name reaches the engine: no program of its own.
    assert compilations.count == 0
    assert model.covariance_type == mclust
    assert model.n_iter_ == reference.n_iter_
    for name in ATTRIBUTES:
        np.testing.assert_array_equal(getattr(model, name), getattr(reference, name), err_msg=name)
    np.testing.assert_array_equal(labels, reference_labels)
    assert model.bic(X) == reference.bic(X)
    save(model, tmp_path / "model.npz")
    loaded = load(tmp_path / "model.npz")
    assert loaded.covariance_type == mclust
    np.testing.assert_array_equal(loaded.score_samples(X), reference.score_samples(X))


def test_aliases_name_table_entries():
    for mclust, sklearn in PAIRS:
        assert structures.get(mclust) is structures.get(sklearn)
        assert structures.n_parameters(mclust, 3, 4) == structures.n_parameters(sklearn, 3, 4)
    assert set(structures.NAMES) == set(structures.STRUCTURES) | set(structures.ALIASES)


def test_unknown_name_lists_every_name(X):
    with pytest.raises(ValueError, match="Invalid value for 'covariance_type': 'VVX'. It must be one of "
                                         "'full', 'tied', 'diag', 'spherical', 'EII', 'EEI'"):
        GaussianMixture(2, covariance_type="VVX").fit(X)


def test_the_command_line_knows_the_table_names():
    from bayesgmm import cli

    assert cli.MCLUST_TYPES == structures.MCLUST_NAMES
    assert set(cli.COVARIANCE_TYPES) | set(cli.MCLUST_TYPES) | set(cli.ONE_FEATURE_TYPES) == set(
        structures.NAMES)


@pytest.mark.parametrize("name, instead", [("E", "EII"), ("V", "VII")])
def test_one_feature_names_are_refused_on_several_features(X, name, instead):
    from bayesgmm import GaussianMixtureIC

    message = (f"covariance_type='{name}' is mclust's name for data of one feature, but X has 3 "
               f"features. Use '{instead}'")
    with pytest.raises(ValueError, match=message):
        GaussianMixture(2, covariance_type=name).fit(X)
    with pytest.raises(ValueError, match=message):
        GaussianMixture(2, covariance_type=name).partial_fit(X)
    with pytest.raises(ValueError, match=message):
        GaussianMixtureIC(1, 2, covariance_type=["VVV", name]).fit(X)
    # One feature: the model mclust fits under that name.
    line = X[:, :1]
    one = GaussianMixture(2, covariance_type=name, random_state=0).fit(line)
    same = GaussianMixture(2, covariance_type=instead, random_state=0).fit(line)
    np.testing.assert_array_equal(one.covariances_, same.covariances_)
