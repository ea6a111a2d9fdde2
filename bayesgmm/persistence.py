"""Saving fitted models to open files and loading them back.

Two open, pickle-free formats, chosen by the estimator:

* A :class:`~bayesgmm.GaussianMixture` is saved as a NumPy ``.npz`` archive
  (a zip of ``.npy`` arrays) holding its fitted arrays and one ``metadata``
  entry. Files are read with ``np.load(..., allow_pickle=False)``; the zip
  format keeps a CRC-32 of every array, which catches corrupted bytes.
* A :class:`~bayesgmm.BayesianGaussianMixture` is saved as one netCDF-4 file
  that is also the ArviZ file of its run: ``arviz.from_netcdf(path)`` reads
  its ``posterior``, ``sample_stats``, ``log_likelihood`` and
  ``observed_data`` groups. A ``bayesgmm`` group adds what the estimator
  needs to predict (every posterior draw of the mixture parameters in
  scikit-learn's shapes, the relabelling permutations, the EM start), and
  its ``bayesgmm/raw_posterior`` sub-group holds the draws before relabelling.
  The metadata is a JSON document in the ``metadata`` attribute of the
  ``bayesgmm`` group and records a SHA-256 digest of every stored variable.

The metadata records

* the file format and its version, and the bayesgmm version that wrote it,
* the estimator class, its constructor parameters, ``covariance_type``,
  ``n_components``, ``n_features`` and ``dtype``,
* the shape and dtype of every stored array, and the fitted scalars.

Arrays are stored bit for bit, so a loaded model predicts exactly what the
saved one did. Loading checks the file against its own metadata; a file that
is truncated, corrupted, written by a newer format, or whose arrays do not
have the shapes the metadata and the covariance type imply raises a
``ValueError`` that says which.
"""

from __future__ import annotations

import hashlib
import json
import numbers
import os
import tempfile
import zipfile

import numpy as np

__all__ = ["save", "load", "FORMAT", "FORMAT_VERSION"]

FORMAT = "bayesgmm.model"
FORMAT_VERSION = 1
METADATA_KEY = "metadata"
_PARAM_PREFIX = "param."

# The fitted arrays of a GaussianMixture, in the order they are described.
_EM_ARRAYS = (
    "weights_",
    "means_",
    "covariances_",
    "precisions_",
    "precisions_cholesky_",
    "lower_bounds_",
)

_ZIP_MAGIC = b"PK\x03\x04"
_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


# --------------------------------------------------------------------------
# Helpers shared by the formats
# --------------------------------------------------------------------------


def _version() -> str:
    from bayesgmm import __version__

    return __version__


def _split_params(model) -> tuple[dict, dict, list]:
    """Constructor parameters as (JSON values, arrays, names that cannot be stored).

    Array-valued parameters (``means_init`` ...) go to the archive; a random
    state given as a generator object cannot be written as data and is
    stored as None (it only affects refitting and :meth:`sample`).
    """
    plain, arrays, dropped = {}, {}, []
    for name, value in model.get_params(deep=False).items():
        if value is None or isinstance(value, (bool, str)):
            plain[name] = value
        elif isinstance(value, numbers.Integral):
            plain[name] = int(value)
        elif isinstance(value, numbers.Real):
            plain[name] = float(value)
        elif isinstance(value, (list, tuple, np.ndarray)) or hasattr(value, "__array__"):
            arrays[name] = np.asarray(value)
            plain[name] = None
        else:
            plain[name] = None
            dropped.append(name)
    return plain, arrays, dropped


def _describe(arrays: dict) -> dict:
    return {
        name: {"shape": list(array.shape), "dtype": array.dtype.str}
        for name, array in arrays.items()
    }


def _atomic_write(path: str, write) -> None:
    """Write with ``write(temporary_path)`` next to ``path``, then move it into place.

    A crash or an error while writing never leaves a half-written file at
    ``path`` (and never destroys the previous file there).
    """
    directory = os.path.dirname(os.path.abspath(path))
    handle = tempfile.NamedTemporaryFile(
        dir=directory, prefix=".bayesgmm-", suffix=".tmp", delete=False
    )
    handle.close()
    try:
        write(handle.name)
        os.replace(handle.name, path)
    except BaseException:
        if os.path.exists(handle.name):
            os.unlink(handle.name)
        raise


def _digest(array: np.ndarray) -> str:
    """SHA-256 of an array's dtype, shape and bytes."""
    array = np.ascontiguousarray(array)
    digest = hashlib.sha256(f"{array.dtype.str}{array.shape}".encode())
    digest.update(array.tobytes())
    return digest.hexdigest()


def _expected_shapes(covariance_type: str, n_components: int, n_features: int, n_iter: int):
    from bayesgmm._validation import precisions_shape

    matrix_shape = precisions_shape(covariance_type, n_components, n_features)
    return {
        "weights_": (n_components,),
        "means_": (n_components, n_features),
        "covariances_": matrix_shape,
        "precisions_": matrix_shape,
        "precisions_cholesky_": matrix_shape,
        "lower_bounds_": (n_iter,),
    }


class _Reader:
    """Checked access to the metadata of a model file, with messages naming the file."""

    def __init__(self, path: str, metadata: dict):
        self.path = path
        self.metadata = metadata

    def fail(self, problem: str) -> ValueError:
        return ValueError(f"{self.path}: {problem}")

    def get(self, key: str, kind):
        value = self.metadata.get(key)
        if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
            raise self.fail(
                f"metadata field {key!r} is missing or has the wrong type ({value!r}); "
                "the file is corrupted or was not written by bayesgmm."
            )
        return value


# --------------------------------------------------------------------------
# GaussianMixture <-> .npz
# --------------------------------------------------------------------------


def _save_em(model, path: str) -> None:
    from bayesgmm._validation import NOT_FITTED_MESSAGE

    if not hasattr(model, "means_"):
        raise ValueError(NOT_FITTED_MESSAGE.format(name=type(model).__name__))
    fitted = {name: np.asarray(getattr(model, name)) for name in _EM_ARRAYS}
    if hasattr(model, "feature_names_in_"):
        fitted["feature_names_in_"] = np.asarray(model.feature_names_in_, dtype=str)
    params, param_arrays, dropped = _split_params(model)
    stored = dict(fitted)
    stored.update({_PARAM_PREFIX + name: array for name, array in param_arrays.items()})
    metadata = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "bayesgmm_version": _version(),
        "numpy_version": np.__version__,
        "estimator": "GaussianMixture",
        "covariance_type": model.covariance_type,
        "n_components": int(model.means_.shape[0]),
        "n_features": int(model.means_.shape[1]),
        "dtype": model.means_.dtype.name,
        "params": params,
        "params_not_stored": dropped,
        "fitted": {
            "converged_": bool(model.converged_),
            "n_iter_": int(model.n_iter_),
            "lower_bound_": float(model.lower_bound_),
        },
        "arrays": _describe(stored),
    }
    stored[METADATA_KEY] = np.array(json.dumps(metadata, indent=1, sort_keys=True))
    def write(temporary):
        with open(temporary, "wb") as handle:
            np.savez(handle, **stored)

    _atomic_write(path, write)


def _read_npz(path: str) -> tuple[dict, dict]:
    """All arrays of the archive and its parsed metadata; ValueError if unreadable."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            # Reading every member now makes the zip check each CRC-32.
            arrays = {name: archive[name] for name in archive.files}
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError) as err:
        if isinstance(err, (FileNotFoundError, IsADirectoryError, PermissionError)):
            raise
        raise ValueError(
            f"{path}: cannot be read as a bayesgmm model file ({type(err).__name__}: "
            f"{err}); it is truncated, corrupted or not an .npz archive."
        ) from None
    if METADATA_KEY not in arrays:
        raise ValueError(
            f"{path}: an .npz archive without a {METADATA_KEY!r} entry, so not a model "
            "saved by bayesgmm.save."
        )
    raw = arrays.pop(METADATA_KEY)
    try:
        metadata = json.loads(str(raw[()]))
    except (ValueError, TypeError, IndexError):
        metadata = None
    if not isinstance(metadata, dict):
        raise ValueError(f"{path}: the {METADATA_KEY!r} entry is not a JSON object; the file is corrupted.")
    return metadata, arrays


def _check_header(reader: _Reader) -> None:
    if reader.metadata.get("format") != FORMAT:
        raise reader.fail(
            f"format {reader.metadata.get('format')!r} is not {FORMAT!r}; not a model "
            "saved by bayesgmm.save."
        )
    version = reader.get("format_version", int)
    if version > FORMAT_VERSION:
        raise reader.fail(
            f"written in format version {version} by bayesgmm "
            f"{reader.metadata.get('bayesgmm_version')}, but this bayesgmm "
            f"({_version()}) reads up to version {FORMAT_VERSION}. Upgrade bayesgmm."
        )


def _restore_estimator(reader: _Reader, cls, arrays: dict, covariance_type: str):
    """A new ``cls`` with the stored constructor parameters."""
    params = dict(reader.get("params", dict))
    for name, array in arrays.items():
        if name.startswith(_PARAM_PREFIX):
            params[name[len(_PARAM_PREFIX):]] = array
    model = cls()
    unknown = set(params) - set(model.get_params(deep=False))
    if unknown:
        raise reader.fail(
            f"unknown {cls.__name__} parameter(s) {sorted(unknown)}; the file was written "
            "by an incompatible bayesgmm."
        )
    model.set_params(**params)
    if model.covariance_type != covariance_type:
        raise reader.fail(
            f"params.covariance_type is {model.covariance_type!r} but covariance_type is "
            f"{covariance_type!r}; the metadata is inconsistent."
        )
    return model


def _check_model_header(reader: _Reader, n_iter_required: bool = False):
    """covariance_type, n_components, n_features and dtype from the metadata, checked."""
    from bayesgmm import _validation as v

    covariance_type = reader.get("covariance_type", str)
    if covariance_type not in v.COVARIANCE_TYPES:
        raise reader.fail(f"unknown covariance_type {covariance_type!r} in the metadata.")
    n_components = reader.get("n_components", int)
    n_features = reader.get("n_features", int)
    dtype = reader.get("dtype", str)
    if dtype not in v.DTYPES:
        raise reader.fail(f"unknown dtype {dtype!r} in the metadata.")
    return covariance_type, n_components, n_features, dtype


def _check_arrays(reader: _Reader, arrays: dict, expected: dict, dtype: str, what: str) -> None:
    """Every expected array is present, of the expected shape and dtype, and finite."""
    for name, shape in expected.items():
        if name not in arrays:
            raise reader.fail(f"the array {name!r} is missing; the file is truncated or corrupted.")
        array = arrays[name]
        if array.shape != shape:
            raise reader.fail(
                f"{name} has shape {array.shape}, but {what} needs {shape}; the arrays do "
                "not match the metadata."
            )
        if array.dtype.name != dtype:
            raise reader.fail(f"{name} has dtype {array.dtype.name}, but the metadata says {dtype}.")
        if name != "lower_bounds_" and not np.all(np.isfinite(array)):
            raise reader.fail(f"{name} contains NaN or infinity; the file is corrupted.")


def _load_em(reader: _Reader, arrays: dict):
    from bayesgmm.estimator import GaussianMixture

    covariance_type, n_components, n_features, dtype = _check_model_header(reader)
    fitted = reader.get("fitted", dict)
    n_iter = fitted.get("n_iter_")
    if not isinstance(n_iter, int) or isinstance(n_iter, bool):
        raise reader.fail("metadata field 'fitted.n_iter_' is missing; the file is corrupted.")
    described = reader.get("arrays", dict)
    expected = _expected_shapes(covariance_type, n_components, n_features, n_iter)
    _check_arrays(reader, arrays, expected, dtype,
                  f"a {covariance_type!r} model with {n_components} components and "
                  f"{n_features} features")
    for name, array in arrays.items():
        info = described.get(name)
        if info is None or list(array.shape) != info.get("shape") or array.dtype.str != info.get("dtype"):
            raise reader.fail(
                f"the array {name!r} ({array.dtype.str}, shape {array.shape}) does not "
                f"match its description in the metadata ({info}); the file was altered."
            )

    model = _restore_estimator(reader, GaussianMixture, arrays, covariance_type)
    for name in _EM_ARRAYS:
        setattr(model, name, arrays[name])
    if "feature_names_in_" in arrays:
        model.feature_names_in_ = arrays["feature_names_in_"].astype(object)
    model.converged_ = bool(fitted.get("converged_"))
    model.n_iter_ = n_iter
    model.lower_bound_ = float(fitted.get("lower_bound_", np.nan))
    model.n_features_in_ = n_features
    return model


# --------------------------------------------------------------------------
# BayesianGaussianMixture <-> netCDF (an ArviZ file with a "bayesgmm" group)
# --------------------------------------------------------------------------

_BAYES_GROUP = "bayesgmm"
_RAW_GROUP = "bayesgmm/raw_posterior"
_GMM_FIELDS = ("weights", "means", "covariances", "precisions_cholesky")
_ENGINE = "h5netcdf"


def _as_dataset(arrays: dict, attrs=None):
    """An xarray Dataset of plain arrays, each with its own dimension names."""
    import xarray as xr

    return xr.Dataset(
        {name: ([f"{name}_dim{i}" for i in range(array.ndim)], array)
         for name, array in arrays.items()},
        attrs=attrs or {},
    )


def _dataset_digests(idata_groups: dict) -> dict:
    """SHA-256 of every numeric variable of every group, keyed 'group/variable'."""
    digests = {}
    for group, dataset in idata_groups.items():
        for name, variable in dataset.data_vars.items():
            values = np.asarray(variable.values)
            if values.dtype.kind in "biuf":
                digests[f"{group}/{name}"] = _digest(values)
    return digests


def _inference_groups(idata) -> dict:
    return {group: getattr(idata, group) for group in idata.groups()}


def _bayesian_arrays(model) -> tuple[dict, dict]:
    """The estimator's own arrays, and its JSON-able fitted values."""
    arrays = {}
    for field, draws in zip(_GMM_FIELDS, model.posterior_params_):
        arrays[f"posterior_{field}"] = np.asarray(draws)
    for name in ("weights_", "means_", "covariances_", "relabel_permutations_"):
        arrays[name] = np.asarray(getattr(model, name))
    if model.em_params_ is not None:
        for field, value in zip(_GMM_FIELDS, model.em_params_):
            arrays[f"em_{field}"] = np.asarray(value)
    fitted = {
        "chain_method_": str(getattr(model, "chain_method_", "")),
        "has_em_params": model.em_params_ is not None,
        "n_draws": int(np.shape(model.posterior_params_.weights)[0]),
    }
    if hasattr(model, "feature_names_in_"):
        fitted["feature_names_in_"] = [str(name) for name in model.feature_names_in_]
    return arrays, fitted


def _save_bayesian(model, path: str) -> None:
    from bayesgmm._validation import NOT_FITTED_MESSAGE

    if not hasattr(model, "posterior_params_"):
        raise ValueError(NOT_FITTED_MESSAGE.format(name=type(model).__name__))
    arrays, fitted = _bayesian_arrays(model)
    params, param_arrays, dropped = _split_params(model)
    arrays.update({_PARAM_PREFIX + name: array for name, array in param_arrays.items()})
    groups = _inference_groups(model.inference_data_)
    raw_posterior = model.raw_inference_data_.posterior
    digests = _dataset_digests(groups)
    digests.update({f"{_RAW_GROUP}/{name}": digest
                    for name, digest in _dataset_digests({"": raw_posterior}).items()})
    digests.update({f"{_BAYES_GROUP}/{name}": _digest(array) for name, array in arrays.items()})
    metadata = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "bayesgmm_version": _version(),
        "numpy_version": np.__version__,
        "estimator": "BayesianGaussianMixture",
        "covariance_type": model.covariance_type,
        "n_components": int(np.shape(model.means_)[0]),
        "n_features": int(np.shape(model.means_)[1]),
        "dtype": np.asarray(model.means_).dtype.name,
        "params": params,
        "params_not_stored": dropped,
        "fitted": fitted,
        "arrays": _describe(arrays),
        "inference_data_groups": list(groups),
        "sha256": digests,
    }

    def write(temporary):
        model.inference_data_.to_netcdf(temporary, engine=_ENGINE)
        attrs = {"metadata": json.dumps(metadata, indent=1, sort_keys=True)}
        _as_dataset(arrays, attrs).to_netcdf(temporary, group=_BAYES_GROUP, mode="a",
                                             engine=_ENGINE)
        raw_posterior.to_netcdf(temporary, group=_RAW_GROUP, mode="a", engine=_ENGINE)

    _atomic_write(path, write)


def _open_group(path: str, group: str):
    """One group of a netCDF file, loaded into memory; ValueError if unreadable."""
    import xarray as xr

    try:
        with xr.open_dataset(path, group=group, engine=_ENGINE) as dataset:
            return dataset.load()
    except (OSError, ValueError, KeyError, RuntimeError) as err:
        if isinstance(err, (FileNotFoundError, PermissionError)):
            raise
        if group == _BAYES_GROUP and "not found" in str(err).lower():
            raise ValueError(
                f"{path}: a netCDF file without a {_BAYES_GROUP!r} group, so not a model "
                "saved by bayesgmm.save (an ArviZ file? read it with arviz.from_netcdf)."
            ) from None
        raise ValueError(
            f"{path}: cannot read the {group!r} group ({type(err).__name__}: "
            f"{' '.join(str(err).split())}); the file is truncated, corrupted or not a "
            "saved model."
        ) from None


def _load_bayesian(path: str):
    import arviz as az

    from bayesgmm.bayesian import BayesianGaussianMixture
    from bayesgmm.em import GMMParams

    own = _open_group(path, _BAYES_GROUP)
    try:
        metadata = json.loads(own.attrs["metadata"])
    except (KeyError, TypeError, ValueError):
        metadata = None
    if not isinstance(metadata, dict):
        raise ValueError(f"{path}: the metadata attribute of the {_BAYES_GROUP!r} group is "
                         "missing or not a JSON object; the file is corrupted.")
    reader = _Reader(path, metadata)
    _check_header(reader)
    estimator = reader.get("estimator", str)
    if estimator != "BayesianGaussianMixture":
        raise reader.fail(f"a netCDF file holding an unexpected estimator {estimator!r}.")
    covariance_type, n_components, n_features, dtype = _check_model_header(reader)
    fitted = reader.get("fitted", dict)
    n_draws = fitted.get("n_draws")
    if not isinstance(n_draws, int) or n_draws < 1:
        raise reader.fail("metadata field 'fitted.n_draws' is missing; the file is corrupted.")

    arrays = {name: np.asarray(variable.values) for name, variable in own.data_vars.items()}
    single = _expected_shapes(covariance_type, n_components, n_features, 0)
    expected = {
        "posterior_weights": (n_draws,) + single["weights_"],
        "posterior_means": (n_draws,) + single["means_"],
        "posterior_covariances": (n_draws,) + single["covariances_"],
        "posterior_precisions_cholesky": (n_draws,) + single["precisions_cholesky_"],
        "weights_": single["weights_"],
        "means_": single["means_"],
        "covariances_": single["covariances_"],
    }
    if fitted.get("has_em_params"):
        expected.update({f"em_{field}": single[f"{field}_"] for field in _GMM_FIELDS})
    _check_arrays(reader, arrays, expected, dtype,
                  f"a {covariance_type!r} posterior of {n_draws} draws with {n_components} "
                  f"components and {n_features} features")
    permutations = arrays.get("relabel_permutations_")
    if permutations is None or permutations.ndim != 3 or (
        permutations.shape[0] * permutations.shape[1], permutations.shape[2]
    ) != (n_draws, n_components):
        raise reader.fail(
            "relabel_permutations_ is missing or does not have the shape (num_chains, "
            f"num_samples, {n_components}) with {n_draws} draws in all."
        )

    try:
        idata = az.from_netcdf(path, engine=_ENGINE)
    except (OSError, ValueError, KeyError, RuntimeError) as err:
        raise reader.fail(f"cannot read the ArviZ groups ({type(err).__name__}: {err}); the "
                          "file is truncated or corrupted.") from None
    groups = {group: getattr(idata, group) for group in idata.groups() if group != _BAYES_GROUP}
    expected_groups = reader.get("inference_data_groups", list)
    if sorted(groups) != sorted(expected_groups):
        raise reader.fail(f"the file has the ArviZ groups {sorted(groups)}, but the metadata "
                          f"lists {sorted(expected_groups)}.")
    raw_posterior = _open_group(path, _RAW_GROUP)
    found = _dataset_digests(groups)
    found.update({f"{_RAW_GROUP}/{name}": digest
                  for name, digest in _dataset_digests({"": raw_posterior}).items()})
    found.update({f"{_BAYES_GROUP}/{name}": _digest(array) for name, array in arrays.items()})
    recorded = reader.get("sha256", dict)
    altered = sorted(name for name in set(found) | set(recorded)
                     if found.get(name) != recorded.get(name))
    if altered:
        raise reader.fail(
            f"the stored values of {', '.join(altered[:5])}"
            f"{' ...' if len(altered) > 5 else ''} do not match their SHA-256 digests; "
            "the file is corrupted or was altered."
        )

    model = _restore_estimator(reader, BayesianGaussianMixture, arrays, covariance_type)
    model.inference_data_ = az.InferenceData(**groups)
    model.raw_inference_data_ = az.InferenceData(posterior=raw_posterior)
    model.relabel_permutations_ = permutations
    model.posterior_params_ = GMMParams(*(arrays[f"posterior_{field}"] for field in _GMM_FIELDS))
    model.weights_ = arrays["weights_"]
    model.means_ = arrays["means_"]
    model.covariances_ = arrays["covariances_"]
    model.em_params_ = (GMMParams(*(arrays[f"em_{field}"] for field in _GMM_FIELDS))
                        if fitted.get("has_em_params") else None)
    model.chain_method_ = fitted.get("chain_method_")
    model.n_features_in_ = n_features
    if "feature_names_in_" in fitted:
        model.feature_names_in_ = np.asarray(fitted["feature_names_in_"], dtype=object)
    return model


# --------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------


def save(model, path) -> None:
    """Save a fitted model to ``path`` in an open, pickle-free format.

    A :class:`~bayesgmm.GaussianMixture` is written as an ``.npz`` archive of
    its fitted arrays plus a JSON ``metadata`` entry (format version,
    bayesgmm version, estimator, parameters, covariance type and the shape of
    every array). A :class:`~bayesgmm.BayesianGaussianMixture` is written as
    a netCDF-4 file that ``arviz.from_netcdf`` reads as the run's
    ``InferenceData``, plus a ``bayesgmm`` group with the posterior draws in
    scikit-learn's shapes and the same metadata. The file is written to a
    temporary name first and then moved into place, so an interrupted save
    never leaves a broken file. An existing file at ``path`` is replaced.

    Parameters
    ----------
    model : GaussianMixture or BayesianGaussianMixture
        A fitted estimator.
    path : str or path-like
        Destination; used as given (no suffix is added). The conventional
        suffixes are ``.npz`` (GaussianMixture) and ``.nc``
        (BayesianGaussianMixture).

    Raises
    ------
    ValueError
        If the model is not fitted.
    TypeError
        If ``model`` is not an estimator that bayesgmm can save.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> from bayesgmm import GaussianMixture, load
    >>> X = np.array([[0.0, 0.1], [0.2, 0.0], [5.0, 5.1], [5.2, 4.9]])
    >>> model = GaussianMixture(n_components=2, random_state=0).fit(X)
    >>> path = os.path.join(tempfile.mkdtemp(), "model.npz")
    >>> save(model, path)
    >>> restored = load(path)
    >>> bool(np.array_equal(restored.predict_proba(X), model.predict_proba(X)))
    True
    """
    from bayesgmm.estimator import GaussianMixture

    path = os.fspath(path)
    if isinstance(model, GaussianMixture):
        _save_em(model, path)
        return
    # Checked by name so that saving an EM model never imports NumPyro.
    if any(cls.__name__ == "BayesianGaussianMixture" and cls.__module__ == "bayesgmm.bayesian"
           for cls in type(model).__mro__):
        _save_bayesian(model, path)
        return
    raise TypeError(
        f"Cannot save a {type(model).__name__}; bayesgmm.save accepts a fitted "
        "bayesgmm.GaussianMixture or bayesgmm.BayesianGaussianMixture."
    )


def load(path):
    """Load a model written by :func:`save`.

    Parameters
    ----------
    path : str or path-like
        A file written by :func:`save`.

    Returns
    -------
    model : GaussianMixture or BayesianGaussianMixture
        A fitted estimator with the saved parameters and fitted attributes
        (for the Bayesian one, ``inference_data_`` too); it predicts exactly
        what the saved model did. The format is recognised from the file's
        first bytes, not its name.

    Raises
    ------
    FileNotFoundError
        If there is no file at ``path``.
    ValueError
        If the file is truncated or corrupted, is not a bayesgmm model, was
        written by a newer file format, or its arrays do not match its
        metadata. The message names the file and the problem.
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        raise IsADirectoryError(f"{path}: is a directory, not a saved model.")
    with open(path, "rb") as handle:
        magic = handle.read(8)
    if magic.startswith(_ZIP_MAGIC):
        metadata, arrays = _read_npz(path)
        reader = _Reader(path, metadata)
        _check_header(reader)
        estimator = reader.get("estimator", str)
        if estimator == "GaussianMixture":
            return _load_em(reader, arrays)
        raise reader.fail(f"unknown estimator {estimator!r} in the metadata.")
    if magic.startswith(_HDF5_MAGIC):
        return _load_bayesian(path)
    if not magic:
        raise ValueError(f"{path}: the file is empty, not a saved model.")
    raise ValueError(
        f"{path}: not a bayesgmm model file (it starts with {magic[:4]!r}, neither an "
        ".npz archive nor a netCDF file)."
    )
