"""Saving and loading fitted models: exact round trips, an open format, clear errors."""

import copy
import hashlib
import json
import os
import zipfile

import numpy as np
import pytest
from sklearn.datasets import make_blobs

import bayesgmm
from bayesgmm import GaussianMixture, _archive
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


def _rewrite(path, edit, reseal=True):
    """Re-save the archive at ``path`` after ``edit(metadata, arrays)``.

    With ``reseal`` the digests and descriptions are recomputed, as a careful
    editor (or a buggy writer) would: then only the loader's validation of
    the values stands between the edit and a loaded model.
    """
    with np.load(path, allow_pickle=False) as archive:
        arrays = {name: archive[name] for name in archive.files}
    text, digest = str(arrays.pop("metadata")), str(arrays.pop("metadata_sha256"))
    metadata = json.loads(text)
    edit(metadata, arrays)
    if reseal:
        metadata["arrays"] = {name: {"shape": list(array.shape), "dtype": array.dtype.str}
                              for name, array in arrays.items()}
        metadata["sha256"] = {name: _archive.array_digest(array) for name, array in arrays.items()}
        text, digest = _archive.seal(metadata)
    else:
        text = json.dumps(metadata, indent=1, sort_keys=True)
    with open(path, "wb") as handle:
        np.savez(handle, metadata=np.array(text), metadata_sha256=np.array(digest), **arrays)


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
        text = str(archive["metadata"])
        assert str(archive["metadata_sha256"]) == hashlib.sha256(text.encode()).hexdigest()
        metadata = json.loads(text)
        means = archive["means_"]
    assert {"metadata", "weights_", "means_", "covariances_", "precisions_cholesky_"} <= names
    assert metadata["format"] == FORMAT and metadata["format_version"] == FORMAT_VERSION
    assert metadata["bayesgmm_version"] == bayesgmm.__version__
    assert metadata["estimator"] == "GaussianMixture"
    assert metadata["covariance_type"] == "full"
    assert (metadata["n_components"], metadata["n_features"]) == (3, 3)
    assert metadata["arrays"]["covariances_"]["shape"] == [3, 3, 3]
    assert metadata["sha256"]["means_"] == _archive.array_digest(fitted.means_)
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
        arrays = {name: archive[name] for name in archive.files
                  if name not in ("metadata", "metadata_sha256")}
    text, digest = "{not json", hashlib.sha256(b"{not json").hexdigest()
    with open(saved, "wb") as handle:
        np.savez(handle, metadata=np.array(text), metadata_sha256=np.array(digest), **arrays)
    with pytest.raises(ValueError, match=r"model\.npz: the metadata is not valid JSON"):
        load(saved)


# ------------------------------------- edited metadata and values are refused (issue 16, item 4)


def test_edited_metadata_fails_its_digest(saved):
    _rewrite(saved, lambda metadata, arrays: metadata["params"].update(reg_covar=0.5),
             reseal=False)
    with pytest.raises(ValueError, match=r"model\.npz: the metadata does not match its SHA-256 "
                                         r"digest; the file is corrupted or its metadata was edited"):
        load(saved)


def test_edited_array_with_a_valid_crc_fails_its_digest(saved):
    def shift(metadata, arrays):
        arrays["means_"] = arrays["means_"] + 1.0

    _rewrite(saved, shift, reseal=False)  # np.savez writes a valid CRC-32 for the new means
    with pytest.raises(ValueError, match=r"model\.npz: the stored values of means_ do not match "
                                         r"their SHA-256 digests"):
        load(saved)


def test_format_version_1_is_refused_with_the_fix(saved):
    _rewrite(saved, lambda metadata, arrays: metadata.update(format_version=1))
    with pytest.raises(ValueError, match=r"model\.npz: written in format version 1 by bayesgmm "
                                         r".*Refit the model and save it again\."):
        load(saved)


REFUSED = r"model\.npz: metadata field 'params' holds a value that GaussianMixture refuses: "


@pytest.mark.parametrize("edit, message", [
    (lambda params: params.pop("n_components"),
     r"model\.npz: metadata field 'params\.n_components' is missing"),
    (lambda params: params.update(reg_covar=-1.0), REFUSED + r"Invalid value for 'reg_covar': -1\.0"),
    (lambda params: params.update(reg_covar=float("inf")), REFUSED + r"Invalid value for 'reg_covar': inf"),
    (lambda params: params.update(tol="x"), REFUSED + r"Invalid value for 'tol': 'x'"),
    (lambda params: params.update(tol=float("nan")), REFUSED + r"Invalid value for 'tol': nan"),
    (lambda params: params.update(max_iter=1.5), REFUSED + r"Invalid value for 'max_iter': 1\.5"),
    (lambda params: params.update(n_init=0), REFUSED + r"Invalid value for 'n_init': 0"),
    (lambda params: params.update(init_params="best"), REFUSED + r"Invalid value for 'init_params'"),
    (lambda params: params.update(verbose_interval=0),
     REFUSED + r"Invalid value for 'verbose_interval': 0"),
    (lambda params: params.update(n_components=9),
     r"model\.npz: metadata field 'params\.n_components' is 9, but the arrays hold 3 components"),
    (lambda params: params.update(dtype="float32"),
     r"model\.npz: metadata field 'params\.dtype' is 'float32', but the arrays are float64"),
    (lambda params: params.update(tol=[0.1]),
     r"model\.npz: metadata field 'params\.tol' must be a number, a string, true, false or null"),
], ids=["missing-n_components", "reg_covar-negative", "reg_covar-inf", "tol-text", "tol-nan",
        "max_iter-float", "n_init-0", "init_params", "verbose_interval", "n_components-other",
        "dtype-other", "tol-list"])
def test_edited_parameters_are_validated_as_the_constructor_does(saved, edit, message):
    _rewrite(saved, lambda metadata, arrays: edit(metadata["params"]))
    with pytest.raises(ValueError, match=message):
        load(saved)


def test_edited_initial_values_are_validated_as_fit_does(saved):
    def bad_weights_init(metadata, arrays):
        arrays["param.weights_init"] = np.array([0.5, 0.5, 0.5])

    _rewrite(saved, bad_weights_init)
    with pytest.raises(ValueError, match=REFUSED + r"The parameter 'weights' should be normalized"):
        load(saved)


@pytest.mark.parametrize("edit, message", [
    (lambda m: m["fitted"].update(converged_="yes"),
     r"metadata field 'fitted\.converged_' must be true or false, got 'yes'"),
    (lambda m: m["fitted"].pop("lower_bound_"),
     r"metadata field 'fitted\.lower_bound_' must be a number, got missing"),
    (lambda m: m.update(n_components=9) or m["params"].update(n_components=9),
     r"weights_ has shape \(3,\), but a 'full' model with 9 components and 3 features needs "
     r"\(9,\)"),
], ids=["converged-text", "lower_bound-missing", "n_components-everywhere"])
def test_edited_fitted_values(saved, edit, message):
    _rewrite(saved, lambda metadata, arrays: edit(metadata))
    with pytest.raises(ValueError, match=r"model\.npz: " + message):
        load(saved)


def _set(name, change):
    def edit(metadata, arrays):
        arrays[name] = change(arrays[name].copy())

    return edit


def _assign(index, value):
    def change(array):
        array[index] = value
        return array

    return change


@pytest.mark.parametrize("edit, message", [
    (_set("weights_", lambda w: w + np.array([-0.5, 0.25, 0.25])),
     r"weights_ has a negative entry \(-0\.\d+\); mixture weights are non-negative"),
    (_set("weights_", lambda w: 1.01 * w), r"weights_ does not sum to 1 \(off by 0\.01"),
    (_set("precisions_cholesky_", _assign(0, 0.0)),
     r"precisions_cholesky_ has a diagonal entry <= 0 \(0\)"),
    (_set("precisions_cholesky_", _assign((0, 1, 0), 0.5)),
     r"precisions_cholesky_ holds a matrix that is not triangular"),
    (_set("covariances_", lambda c: 2.0 * c),
     r"covariances_ does not match precisions_cholesky_ \(P\.T @ Sigma @ P differs from the "
     r"identity by 1, tolerance"),
    (_set("covariances_", _assign(0, -np.eye(3))),
     r"covariances_ are not symmetric positive definite matrices"),
    (_set("precisions_", lambda p: 1.001 * p),
     r"precisions_ is not precisions_cholesky_ @ precisions_cholesky_\.T"),
    (_set("lower_bounds_", _assign(0, np.nan)), r"lower_bounds_ contains NaN"),
], ids=["negative-weight", "weights-sum", "zero-factor", "non-triangular-factor",
        "covariances-inconsistent", "covariances-not-pd", "precisions-inconsistent",
        "lower_bounds-nan"])
def test_edited_fitted_arrays_are_validated(saved, edit, message):
    _rewrite(saved, edit)
    with pytest.raises(ValueError, match=r"model\.npz: " + message):
        load(saved)


@pytest.mark.parametrize("covariance_type", ["tied", "diag", "spherical"])
def test_inconsistent_covariances_of_every_structure(data, tmp_path, covariance_type):
    model = GaussianMixture(2, covariance_type=covariance_type, random_state=0).fit(data)
    path = tmp_path / "model.npz"
    save(model, path)
    _rewrite(path, _set("covariances_", lambda c: 1.5 * c))
    with pytest.raises(ValueError, match=r"covariances_ does not match precisions_cholesky_"):
        load(path)


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


def _edit_nc_metadata(path, edit, reseal=True):
    """Rewrite the metadata attribute after ``edit(metadata)`` (with a new digest if ``reseal``)."""
    import h5py

    with h5py.File(path, "r+") as handle:
        attrs = handle["bayesgmm"].attrs
        metadata = json.loads(attrs["metadata"])
        edit(metadata)
        text, digest = _archive.seal(metadata)
        attrs["metadata"] = text
        if reseal:
            attrs["metadata_sha256"] = digest


def test_bayesian_metadata_that_does_not_match(saved_bayes):
    def claim_spherical(metadata):
        metadata["covariance_type"] = metadata["params"]["covariance_type"] = "spherical"

    _edit_nc_metadata(saved_bayes, claim_spherical)
    with pytest.raises(ValueError, match=r"posterior_covariances has shape \(6, 2, 2, 2\), but a "
                                         r"'spherical' posterior of 6 draws"):
        load(saved_bayes)


def test_bayesian_one_changed_byte_in_the_metadata(saved_bayes):
    content = bytearray(saved_bayes.read_bytes())
    start = content.index(b'  "n_components": 2')  # the params' entry (indented twice)
    content[start + len(b'  "n_components": ')] = ord("9")
    saved_bayes.write_bytes(bytes(content))
    with pytest.raises(ValueError, match=r"model\.nc: the metadata does not match its SHA-256 "
                                         r"digest"):
        load(saved_bayes)


def test_bayesian_edited_metadata_fails_its_digest(saved_bayes):
    _edit_nc_metadata(saved_bayes, lambda metadata: metadata["params"].update(reg_covar=0.5),
                      reseal=False)
    with pytest.raises(ValueError, match=r"model\.nc: the metadata does not match its SHA-256"):
        load(saved_bayes)


BAYES_REFUSED = (r"model\.nc: metadata field 'params' holds a value that "
                 r"BayesianGaussianMixture refuses: ")


@pytest.mark.parametrize("edit, message", [
    (lambda params: params.pop("n_components"),
     r"model\.nc: metadata field 'params\.n_components' is missing"),
    (lambda params: params.update(target_accept_prob=1.5),
     BAYES_REFUSED + r"Invalid value for 'target_accept_prob': 1\.5"),
    (lambda params: params.update(reg_covar=-1.0), BAYES_REFUSED + r"Invalid value for 'reg_covar'"),
    (lambda params: params.update(num_samples=2.5), BAYES_REFUSED + r"Invalid value for 'num_samples'"),
    (lambda params: params.update(mean_prior_scale=-1.0),
     BAYES_REFUSED + r"Invalid value for 'mean_prior_scale': every entry must be finite and > 0"),
    (lambda params: params.update(n_components=3),
     r"model\.nc: metadata field 'params\.n_components' is 3, but the arrays hold 2 components"),
], ids=["missing-n_components", "target_accept_prob", "reg_covar", "num_samples",
        "mean_prior_scale", "n_components-other"])
def test_bayesian_edited_parameters_are_validated(saved_bayes, edit, message):
    _edit_nc_metadata(saved_bayes, lambda metadata: edit(metadata["params"]))
    with pytest.raises(ValueError, match=message):
        load(saved_bayes)


@pytest.fixture(scope="module")
def synthetic_full():
    return _synthetic_bayesian(_small_data(), "full")


def _with_draws(model, **changes):
    """A copy of ``model`` whose posterior draws (GMMParams fields) are changed."""
    model = copy.deepcopy(model)
    model.posterior_params_ = model.posterior_params_._replace(
        **{name: change(np.array(getattr(model.posterior_params_, name)))
           for name, change in changes.items()})
    return model


@pytest.mark.parametrize("alter, message", [
    (lambda m: _with_draws(m, weights=lambda w: w * np.array([-1.0, 3.0]) / (2 * w.max())),
     r"posterior_weights has a negative entry"),
    (lambda m: _with_draws(m, covariances=lambda c: 2.0 * c),
     r"posterior_covariances does not match posterior_precisions_cholesky"),
    (lambda m: _with_draws(m, precisions_cholesky=lambda p: -p),
     r"posterior_precisions_cholesky has a diagonal entry <= 0"),
    (lambda m: setattr(m := copy.deepcopy(m), "relabel_permutations_",
                       np.zeros_like(m.relabel_permutations_)) or m,
     r"relabel_permutations_ holds a row that is not a permutation of the 2 components"),
    (lambda m: setattr(m := copy.deepcopy(m), "weights_", m.weights_ * 0.9) or m,
     r"weights_ does not sum to 1"),
    (lambda m: setattr(m := copy.deepcopy(m), "em_params_",
                       m.em_params_._replace(covariances=2 * m.em_params_.covariances)) or m,
     r"em_covariances does not match em_precisions_cholesky"),
], ids=["negative-weight", "covariances-inconsistent", "negative-factor", "permutations",
        "mean-weights", "em-start"])
def test_bayesian_invalid_fitted_arrays_are_refused(synthetic_full, tmp_path, alter, message):
    path = tmp_path / "model.nc"
    save(alter(synthetic_full), path)  # the writer digests whatever the model holds
    with pytest.raises(ValueError, match=r"model\.nc: " + message):
        load(path)


def test_bayesian_format_version_1_is_refused_with_the_fix(saved_bayes):
    _edit_nc_metadata(saved_bayes, lambda metadata: metadata.update(format_version=1))
    with pytest.raises(ValueError, match=r"model\.nc: written in format version 1 .*Refit the "
                                         r"model and save it again\."):
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
