"""The two saved-file formats, written and checked, below the estimators.

A :class:`~bayesgmm.GaussianMixture` is an ``.npz`` archive, a
:class:`~bayesgmm.BayesianGaussianMixture` a netCDF-4 file that is also its
ArviZ file (see :mod:`bayesgmm.persistence`). This module works on what a
fitted estimator exposes (its parameters and fitted attributes) and
imports no estimator, so the estimators' ``save`` methods can call it;
turning a file back into an estimator is :func:`bayesgmm.persistence.load`.
"""

from __future__ import annotations

import hashlib
import json
import numbers
import os
import tempfile
import zipfile

import numpy as np

from bayesgmm._version import __version__

FORMAT = "bayesgmm.model"

FORMAT_VERSION = 1

METADATA_KEY = "metadata"

PARAM_PREFIX = "param."

# The fitted arrays of a GaussianMixture, in the order they are described.
EM_ARRAYS = (
    "weights_",
    "means_",
    "covariances_",
    "precisions_",
    "precisions_cholesky_",
    "lower_bounds_",
)

ZIP_MAGIC = b"PK\x03\x04"

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


# --------------------------------------------------------------------------
# Helpers shared by the formats
# --------------------------------------------------------------------------


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
        # The temporary file is private (0600); the saved file gets the mode a plain
        # open() would give. Reading the umask sets it for an instant, to 077 so that
        # a file another thread creates meanwhile is never less private.
        umask = os.umask(0o077)
        os.umask(umask)
        os.chmod(handle.name, 0o666 & ~umask)
        os.replace(handle.name, path)
    except BaseException:
        if os.path.exists(handle.name):
            os.unlink(handle.name)
        raise


def array_digest(array: np.ndarray) -> str:
    """SHA-256 of an array's dtype, shape and bytes."""
    array = np.ascontiguousarray(array)
    digest = hashlib.sha256(f"{array.dtype.str}{array.shape}".encode())
    digest.update(array.tobytes())
    return digest.hexdigest()


def expected_shapes(covariance_type: str, n_components: int, n_features: int, n_iter: int):
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


class Reader:
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


def write_em(model, path: str) -> None:
    from bayesgmm._validation import NOT_FITTED_MESSAGE

    if not hasattr(model, "means_"):
        raise ValueError(NOT_FITTED_MESSAGE.format(name=type(model).__name__))
    fitted = {name: np.asarray(getattr(model, name)) for name in EM_ARRAYS}
    if hasattr(model, "feature_names_in_"):
        fitted["feature_names_in_"] = np.asarray(model.feature_names_in_, dtype=str)
    params, param_arrays, dropped = _split_params(model)
    stored = dict(fitted)
    stored.update({PARAM_PREFIX + name: array for name, array in param_arrays.items()})
    metadata = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "bayesgmm_version": __version__,
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


def read_npz(path: str) -> tuple[dict, dict]:
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


def check_header(reader: Reader) -> None:
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
            f"({__version__}) reads up to version {FORMAT_VERSION}. Upgrade bayesgmm."
        )


def check_model_header(reader: Reader, n_iter_required: bool = False):
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


def check_arrays(reader: Reader, arrays: dict, expected: dict, dtype: str, what: str) -> None:
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


# --------------------------------------------------------------------------
# BayesianGaussianMixture <-> netCDF (an ArviZ file with a "bayesgmm" group)
# --------------------------------------------------------------------------

BAYES_GROUP = "bayesgmm"

RAW_GROUP = "bayesgmm/raw_posterior"

GMM_FIELDS = ("weights", "means", "covariances", "precisions_cholesky")

ENGINE = "h5netcdf"


def _as_dataset(arrays: dict, attrs=None):
    """An xarray Dataset of plain arrays, each with its own dimension names."""
    import xarray as xr

    return xr.Dataset(
        {name: ([f"{name}_dim{i}" for i in range(array.ndim)], array)
         for name, array in arrays.items()},
        attrs=attrs or {},
    )


def dataset_digests(idata_groups: dict) -> dict:
    """SHA-256 of every numeric variable of every group, keyed 'group/variable'."""
    digests = {}
    for group, dataset in idata_groups.items():
        for name, variable in dataset.data_vars.items():
            values = np.asarray(variable.values)
            if values.dtype.kind in "biuf":
                digests[f"{group}/{name}"] = array_digest(values)
    return digests


def _inference_groups(idata) -> dict:
    return {group: getattr(idata, group) for group in idata.groups()}


def _bayesian_arrays(model) -> tuple[dict, dict]:
    """The estimator's own arrays, and its JSON-able fitted values."""
    arrays = {}
    for field, draws in zip(GMM_FIELDS, model.posterior_params_):
        arrays[f"posterior_{field}"] = np.asarray(draws)
    for name in ("weights_", "means_", "covariances_", "relabel_permutations_"):
        arrays[name] = np.asarray(getattr(model, name))
    if model.em_params_ is not None:
        for field, value in zip(GMM_FIELDS, model.em_params_):
            arrays[f"em_{field}"] = np.asarray(value)
    fitted = {
        "chain_method_": str(getattr(model, "chain_method_", "")),
        "has_em_params": model.em_params_ is not None,
        "n_draws": int(np.shape(model.posterior_params_.weights)[0]),
    }
    if hasattr(model, "feature_names_in_"):
        fitted["feature_names_in_"] = [str(name) for name in model.feature_names_in_]
    return arrays, fitted


def write_bayesian(model, path: str) -> None:
    from bayesgmm._validation import NOT_FITTED_MESSAGE

    if not hasattr(model, "posterior_params_"):
        raise ValueError(NOT_FITTED_MESSAGE.format(name=type(model).__name__))
    arrays, fitted = _bayesian_arrays(model)
    params, param_arrays, dropped = _split_params(model)
    arrays.update({PARAM_PREFIX + name: array for name, array in param_arrays.items()})
    groups = _inference_groups(model.inference_data_)
    raw_posterior = model.raw_inference_data_.posterior
    digests = dataset_digests(groups)
    digests.update({f"{RAW_GROUP}/{name}": digest
                    for name, digest in dataset_digests({"": raw_posterior}).items()})
    digests.update({f"{BAYES_GROUP}/{name}": array_digest(array) for name, array in arrays.items()})
    metadata = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "bayesgmm_version": __version__,
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
        model.inference_data_.to_netcdf(temporary, engine=ENGINE)
        attrs = {"metadata": json.dumps(metadata, indent=1, sort_keys=True)}
        _as_dataset(arrays, attrs).to_netcdf(temporary, group=BAYES_GROUP, mode="a",
                                             engine=ENGINE)
        raw_posterior.to_netcdf(temporary, group=RAW_GROUP, mode="a", engine=ENGINE)

    _atomic_write(path, write)


def open_group(path: str, group: str):
    """One group of a netCDF file, loaded into memory; ValueError if unreadable."""
    import xarray as xr

    try:
        with xr.open_dataset(path, group=group, engine=ENGINE) as dataset:
            return dataset.load()
    except (OSError, ValueError, KeyError, RuntimeError) as err:
        if isinstance(err, (FileNotFoundError, PermissionError)):
            raise
        if group == BAYES_GROUP and "not found" in str(err).lower():
            raise ValueError(
                f"{path}: a netCDF file without a {BAYES_GROUP!r} group, so not a model "
                "saved by bayesgmm.save (an ArviZ file? read it with arviz.from_netcdf)."
            ) from None
        raise ValueError(
            f"{path}: cannot read the {group!r} group ({type(err).__name__}: "
            f"{' '.join(str(err).split())}); the file is truncated, corrupted or not a "
            "saved model."
        ) from None
