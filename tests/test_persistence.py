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


@pytest.mark.parametrize(
    "covariance_type, dtype",
    [("full", "float64"), ("tied", "float64"), ("diag", "float64"), ("spherical", "float64"),
     ("full", "float32")],
)
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


# ------------------------------------------------------------ Bayesian (netCDF)

def _small_data():
    from bayesgmm.datasets import document_data

    return document_data(n_samples=100)[0]  # 80 x 2, the data of conftest's tiny_nuts_fit


def _synthetic_bayesian(X, covariance_type, dtype="float64"):
    """A fitted-looking BayesianGaussianMixture from jittered EM parameters.

    Saving and loading only moves the fitted attributes, so the covariance
    types that the real (slow to compile) NUTS fit, conftest's tiny_nuts_fit,
    does not cover are checked on draws made up around an EM fit.
    """
    from bayesgmm.mixture.parameters import GMMParams

    from bayesgmm import BayesianGaussianMixture
    from bayesgmm.bayes import diagnostics

    em_fit = GaussianMixture(2, covariance_type=covariance_type, dtype=dtype,
                             random_state=0).fit(X)
    rng = np.random.default_rng(0)
    num_chains, num_samples = 2, 3
    n_draws = num_chains * num_samples

    def repeat(array):
        return np.repeat(array[None], n_draws, axis=0)

    draws = GMMParams(
        weights=rng.dirichlet(200 * em_fit.weights_, size=n_draws).astype(dtype),
        means=(repeat(em_fit.means_) + 0.05 * rng.normal(size=(n_draws, 2, 2))).astype(dtype),
        covariances=repeat(em_fit.covariances_),
        precisions_cholesky=repeat(em_fit.precisions_cholesky_),
    )
    model = BayesianGaussianMixture(2, covariance_type=covariance_type, num_chains=num_chains,
                                    num_samples=num_samples, dtype=dtype)
    by_chain = {name: np.asarray(value).reshape((num_chains, num_samples) + value.shape[1:])
                for name, value in zip(("weights", "means", "covariances"), draws[:3])}
    model.inference_data_ = diagnostics.posterior_dataset(by_chain, covariance_type)
    model.raw_inference_data_ = diagnostics.posterior_dataset(by_chain, covariance_type)
    model.relabel_permutations_ = np.tile(np.arange(2), (num_chains, num_samples, 1))
    model.posterior_params_ = draws
    model.weights_, model.means_, model.covariances_ = (
        np.asarray(value).mean(axis=0).astype(dtype) for value in draws[:3])
    model.em_params_ = em_fit._params() if covariance_type != "diag" else None
    model.chain_method_ = "sequential"
    model.n_features_in_ = 2
    return model


def _assert_same_bayesian(restored, model, X):
    assert type(restored) is type(model)
    np.testing.assert_array_equal(restored.predict_proba(X), model.predict_proba(X))
    np.testing.assert_array_equal(restored.score_samples(X), model.score_samples(X))
    for bound, saved_bound in zip(restored.predict_proba_interval(X),
                                  model.predict_proba_interval(X)):
        np.testing.assert_array_equal(bound, saved_bound)
    for saved_draws, loaded_draws in zip(model.posterior_params_, restored.posterior_params_):
        assert loaded_draws.dtype == np.asarray(saved_draws).dtype
        np.testing.assert_array_equal(loaded_draws, saved_draws)
    np.testing.assert_array_equal(restored.relabel_permutations_, model.relabel_permutations_)
    assert restored.chain_method_ == model.chain_method_
    assert (restored.em_params_ is None) == (model.em_params_ is None)
    assert restored.inference_data_.groups() == model.inference_data_.groups()
    for group in model.inference_data_.groups():
        assert getattr(restored.inference_data_, group).equals(
            getattr(model.inference_data_, group))
    assert restored.raw_inference_data_.posterior.equals(model.raw_inference_data_.posterior)


def test_bayesian_round_trip_of_a_real_fit(tiny_nuts_fit, tmp_path):
    import arviz as az

    model, X = tiny_nuts_fit
    path = tmp_path / "model.nc"
    model.save(path)  # the method delegates to persistence.save
    restored = load(path)
    _assert_same_bayesian(restored, model, X)
    assert restored.get_params() == model.get_params()
    assert restored.summary().shape == model.summary().shape
    # The file is the run's ArviZ InferenceData, readable without bayesgmm.
    idata = az.from_netcdf(path)
    assert {"posterior", "sample_stats", "log_likelihood", "observed_data"} <= set(idata.groups())
    np.testing.assert_array_equal(idata.posterior["weights"], model.inference_data_.posterior["weights"])


@pytest.mark.parametrize("covariance_type, dtype",
                         [("tied", "float64"), ("diag", "float64"), ("spherical", "float32")])
def test_bayesian_round_trip_every_covariance_type(tmp_path, covariance_type, dtype):
    X = _small_data()
    model = _synthetic_bayesian(X, covariance_type, dtype)
    path = tmp_path / "model.nc"
    save(model, path)
    restored = load(path)
    _assert_same_bayesian(restored, model, X)
    assert restored.covariance_type == covariance_type and restored.dtype == dtype


def test_bayesian_unfitted(tmp_path):
    from bayesgmm import BayesianGaussianMixture

    with pytest.raises(ValueError, match="not fitted"):
        save(BayesianGaussianMixture(2), tmp_path / "m.nc")


@pytest.fixture
def saved_bayes(tmp_path):
    model = _synthetic_bayesian(_small_data(), "full")
    path = tmp_path / "model.nc"
    save(model, path)
    return path


def test_bayesian_truncated(saved_bayes):
    content = saved_bayes.read_bytes()
    saved_bayes.write_bytes(content[: len(content) // 2])
    with pytest.raises(ValueError, match="truncated, corrupted"):
        load(saved_bayes)


def test_bayesian_altered_values_fail_the_digest(saved_bayes):
    import h5py

    with h5py.File(saved_bayes, "r+") as handle:
        handle["bayesgmm/posterior_means"][0, 0, 0] += 1.0
        handle["posterior/weights"][0, 0, 0] += 0.5
    with pytest.raises(ValueError, match=r"bayesgmm/posterior_means, posterior/weights do not "
                                         r"match their SHA-256 digests"):
        load(saved_bayes)


def test_bayesian_metadata_that_does_not_match(saved_bayes):
    import h5py

    with h5py.File(saved_bayes, "r+") as handle:
        metadata = json.loads(handle["bayesgmm"].attrs["metadata"])
        metadata["covariance_type"] = metadata["params"]["covariance_type"] = "spherical"
        handle["bayesgmm"].attrs["metadata"] = json.dumps(metadata)
    with pytest.raises(ValueError, match=r"posterior_covariances has shape \(6, 2, 2, 2\), but a "
                                         r"'spherical' posterior of 6 draws"):
        load(saved_bayes)


def test_plain_arviz_file_is_not_a_model(tmp_path):
    import arviz as az

    path = tmp_path / "idata.nc"
    az.from_dict(posterior={"w": np.zeros((2, 5))}).to_netcdf(path)
    with pytest.raises(ValueError, match="without a 'bayesgmm' group"):
        load(path)


def test_estimators_save_methods_write_what_load_reads(tmp_path):
    from bayesgmm import GaussianMixture, datasets, load

    XA, XB, _, _ = datasets.document_data()
    model = GaussianMixture(2, random_state=0).fit(XA)
    model.save(tmp_path / "model.npz")
    np.testing.assert_array_equal(load(tmp_path / "model.npz").predict_proba(XB), model.predict_proba(XB))
