"""Saving and loading fitted models: exact round trips, an open format, clear errors."""

import json
import os
import zipfile

import numpy as np
import pytest
from sklearn.datasets import make_blobs

import bayesgmm
from bayesgmm import GaussianMixture
from bayesgmm.persistence import FORMAT, FORMAT_VERSION, load, save


@pytest.fixture(scope="module")
def data():
    X, _ = make_blobs(n_samples=150, centers=3, n_features=3, random_state=4)
    return X


@pytest.fixture(scope="module")
def fitted(data):
    return GaussianMixture(3, random_state=0).fit(data)


@pytest.fixture
def saved(fitted, tmp_path):
    path = tmp_path / "model.npz"
    save(fitted, path)
    return path


def _rewrite(path, edit):
    """Re-save the archive at ``path`` after ``edit(metadata, arrays)``."""
    with np.load(path, allow_pickle=False) as archive:
        arrays = {name: archive[name] for name in archive.files}
    metadata = json.loads(str(arrays.pop("metadata")))
    edit(metadata, arrays)
    with open(path, "wb") as handle:
        np.savez(handle, metadata=np.array(json.dumps(metadata)), **arrays)


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_round_trip_predicts_exactly(data, tmp_path, covariance_type, dtype):
    model = GaussianMixture(3, covariance_type=covariance_type, dtype=dtype, random_state=0).fit(data)
    path = tmp_path / f"{covariance_type}.npz"
    save(model, path)
    restored = load(path)

    assert type(restored) is GaussianMixture
    assert restored.get_params() == model.get_params()
    for name in ("weights_", "means_", "covariances_", "precisions_", "precisions_cholesky_",
                 "lower_bounds_"):
        original, loaded = getattr(model, name), getattr(restored, name)
        assert loaded.dtype == original.dtype and loaded.shape == original.shape
        np.testing.assert_array_equal(loaded, original)
    assert (restored.converged_, restored.n_iter_, restored.lower_bound_, restored.n_features_in_) == (
        model.converged_, model.n_iter_, model.lower_bound_, model.n_features_in_)
    np.testing.assert_array_equal(restored.predict_proba(data), model.predict_proba(data))
    np.testing.assert_array_equal(restored.predict(data), model.predict(data))
    np.testing.assert_array_equal(restored.score_samples(data), model.score_samples(data))
    assert restored.bic(data) == model.bic(data)
    np.testing.assert_array_equal(restored.sample(5)[0], model.sample(5)[0])


def test_file_is_open_npz_with_json_metadata(fitted, saved):
    # Readable with plain NumPy and json, never unpickling anything.
    with np.load(saved, allow_pickle=False) as archive:
        names = set(archive.files)
        metadata = json.loads(str(archive["metadata"]))
        means = archive["means_"]
    assert {"metadata", "weights_", "means_", "covariances_", "precisions_cholesky_"} <= names
    assert metadata["format"] == FORMAT and metadata["format_version"] == FORMAT_VERSION
    assert metadata["bayesgmm_version"] == bayesgmm.__version__
    assert metadata["estimator"] == "GaussianMixture"
    assert metadata["covariance_type"] == "full"
    assert (metadata["n_components"], metadata["n_features"]) == (3, 3)
    assert metadata["arrays"]["covariances_"]["shape"] == [3, 3, 3]
    assert metadata["params"]["n_components"] == 3
    np.testing.assert_array_equal(means, fitted.means_)
    with zipfile.ZipFile(saved) as archive:
        assert all(name.endswith(".npy") for name in archive.namelist())


def test_array_params_feature_names_and_random_state(data, tmp_path):
    means_init = np.array([[0.0, 0.0, 0.0], [5.0, 5.0, 5.0], [-5.0, 0.0, 5.0]])
    model = GaussianMixture(3, means_init=means_init,
                            random_state=np.random.RandomState(0)).fit(data)
    model.feature_names_in_ = np.array(["a", "b", "c"], dtype=object)
    path = tmp_path / "model.npz"
    save(model, path)
    restored = load(path)
    np.testing.assert_array_equal(restored.means_init, means_init)
    assert list(restored.feature_names_in_) == ["a", "b", "c"]
    assert restored.random_state is None  # a generator object is not data; it is dropped
    with np.load(path, allow_pickle=False) as archive:
        assert json.loads(str(archive["metadata"]))["params_not_stored"] == ["random_state"]
    np.testing.assert_array_equal(restored.predict_proba(data), model.predict_proba(data))


def test_load_is_exposed_on_the_package(saved):
    assert isinstance(bayesgmm.load(saved), GaussianMixture)


def test_save_replaces_atomically_and_keeps_the_given_name(fitted, data, tmp_path):
    path = tmp_path / "my_model"  # no suffix is added
    path.write_text("old")
    save(fitted, path)
    assert os.listdir(tmp_path) == ["my_model"]  # no temporary file left behind
    np.testing.assert_array_equal(load(path).means_, fitted.means_)


def test_save_rejects_unfitted_and_foreign_objects(tmp_path):
    with pytest.raises(ValueError, match="not fitted"):
        save(GaussianMixture(2), tmp_path / "m.npz")
    with pytest.raises(TypeError, match="Cannot save a dict"):
        save({}, tmp_path / "m.npz")
    assert not any(tmp_path.iterdir())


def test_truncated_file(saved):
    content = saved.read_bytes()
    saved.write_bytes(content[: len(content) // 2])
    with pytest.raises(ValueError, match="truncated, corrupted"):
        load(saved)


def test_corrupted_bytes_fail_the_checksum(saved):
    content = bytearray(saved.read_bytes())
    start = content.index(b"means_.npy") + 200  # inside the stored means
    content[start:start + 8] = b"\x00\x01\x02\x03\x04\x05\x06\x07"
    saved.write_bytes(bytes(content))
    with pytest.raises(ValueError, match=r"model\.npz: cannot be read"):
        load(saved)


def test_empty_and_foreign_files(tmp_path):
    empty = tmp_path / "empty.npz"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match="empty"):
        load(empty)
    text = tmp_path / "data.csv"
    text.write_text("1,2\n3,4\n")
    with pytest.raises(ValueError, match="not a bayesgmm model file"):
        load(text)
    plain = tmp_path / "plain.npz"
    np.savez(plain, a=np.zeros(3))
    with pytest.raises(ValueError, match="without a 'metadata' entry"):
        load(plain)
    with pytest.raises(FileNotFoundError):
        load(tmp_path / "missing.npz")


def test_arrays_that_do_not_match_the_metadata(saved):
    def claim_diag(metadata, arrays):
        metadata["covariance_type"] = "diag"
        metadata["params"]["covariance_type"] = "diag"

    _rewrite(saved, claim_diag)
    with pytest.raises(ValueError, match=r"covariances_ has shape \(3, 3, 3\), but a 'diag' model"):
        load(saved)


def test_missing_array(saved):
    _rewrite(saved, lambda metadata, arrays: arrays.pop("precisions_cholesky_"))
    with pytest.raises(ValueError, match="'precisions_cholesky_' is missing"):
        load(saved)


def test_altered_array_dtype(saved):
    def to_float32(metadata, arrays):
        arrays["lower_bounds_"] = arrays["lower_bounds_"].astype(np.float32)

    _rewrite(saved, to_float32)
    with pytest.raises(ValueError, match="lower_bounds_ has dtype float32"):
        load(saved)


def test_non_finite_parameters(saved):
    def poison(metadata, arrays):
        arrays["means_"][0, 0] = np.nan

    _rewrite(saved, poison)
    with pytest.raises(ValueError, match="means_ contains NaN"):
        load(saved)


def test_newer_format_version(saved):
    def bump(metadata, arrays):
        metadata["format_version"] = FORMAT_VERSION + 1

    _rewrite(saved, bump)
    with pytest.raises(ValueError, match="Upgrade bayesgmm"):
        load(saved)


def test_metadata_that_is_not_json(saved):
    with np.load(saved, allow_pickle=False) as archive:
        arrays = {name: archive[name] for name in archive.files if name != "metadata"}
    with open(saved, "wb") as handle:
        np.savez(handle, metadata=np.array("{not json"), **arrays)
    with pytest.raises(ValueError, match="not a JSON object"):
        load(saved)
