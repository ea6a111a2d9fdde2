"""Saving fitted models to open files and loading them back.

A :class:`~bayesgmm.GaussianMixture` is saved as a NumPy ``.npz`` archive
(a zip of ``.npy`` arrays) holding its fitted arrays and one ``metadata``
entry, a JSON document that records

* the file format and its version, and the bayesgmm version that wrote it,
* the estimator class, its constructor parameters, ``covariance_type``,
  ``n_components``, ``n_features`` and ``dtype``,
* the shape and dtype of every stored array, and the fitted scalars
  (``converged_``, ``n_iter_``, ``lower_bound_``).

Nothing is pickled: files are read with ``np.load(..., allow_pickle=False)``,
so loading a file cannot run code, and any tool that reads ``.npz`` and JSON
can read the parameters. The arrays are stored bit for bit, so a loaded model
predicts exactly what the saved one did.

Loading checks the file against its own metadata; a file that is truncated,
corrupted (the zip format keeps a CRC-32 of every array), written by a newer
format, or whose arrays do not have the shapes the metadata and the
covariance type imply raises a ``ValueError`` that says which.
"""

from __future__ import annotations

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
    """Write through ``write(handle)`` to a temporary file, then move it to ``path``.

    A crash or an error while writing never leaves a half-written file at
    ``path`` (and never destroys the previous file there).
    """
    directory = os.path.dirname(os.path.abspath(path))
    handle = tempfile.NamedTemporaryFile(
        dir=directory, prefix=".bayesgmm-", suffix=".tmp", delete=False
    )
    try:
        with handle:
            write(handle)
        os.replace(handle.name, path)
    except BaseException:
        if os.path.exists(handle.name):
            os.unlink(handle.name)
        raise


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
    _atomic_write(path, lambda handle: np.savez(handle, **stored))


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


def _load_em(reader: _Reader, arrays: dict):
    from bayesgmm import _validation as v
    from bayesgmm.estimator import GaussianMixture

    covariance_type = reader.get("covariance_type", str)
    if covariance_type not in v.COVARIANCE_TYPES:
        raise reader.fail(f"unknown covariance_type {covariance_type!r} in the metadata.")
    n_components = reader.get("n_components", int)
    n_features = reader.get("n_features", int)
    dtype = reader.get("dtype", str)
    fitted = reader.get("fitted", dict)
    n_iter = fitted.get("n_iter_")
    if not isinstance(n_iter, int) or isinstance(n_iter, bool):
        raise reader.fail("metadata field 'fitted.n_iter_' is missing; the file is corrupted.")
    described = reader.get("arrays", dict)
    expected = _expected_shapes(covariance_type, n_components, n_features, n_iter)
    for name, shape in expected.items():
        if name not in arrays:
            raise reader.fail(f"the array {name!r} is missing; the file is truncated or corrupted.")
        array = arrays[name]
        if array.shape != shape:
            raise reader.fail(
                f"{name} has shape {array.shape}, but a {covariance_type!r} model with "
                f"{n_components} components and {n_features} features needs {shape}; "
                "the arrays do not match the metadata."
            )
        if array.dtype.name != dtype:
            raise reader.fail(f"{name} has dtype {array.dtype.name}, but the metadata says {dtype}.")
        if name != "lower_bounds_" and not np.all(np.isfinite(array)):
            raise reader.fail(f"{name} contains NaN or infinity; the file is corrupted.")
    for name, array in arrays.items():
        info = described.get(name)
        if info is None or list(array.shape) != info.get("shape") or array.dtype.str != info.get("dtype"):
            raise reader.fail(
                f"the array {name!r} ({array.dtype.str}, shape {array.shape}) does not "
                f"match its description in the metadata ({info}); the file was altered."
            )

    params = dict(reader.get("params", dict))
    for name, array in arrays.items():
        if name.startswith(_PARAM_PREFIX):
            params[name[len(_PARAM_PREFIX):]] = array
    model = GaussianMixture()
    unknown = set(params) - set(model.get_params(deep=False))
    if unknown:
        raise reader.fail(
            f"unknown GaussianMixture parameter(s) {sorted(unknown)}; the file was written "
            "by an incompatible bayesgmm."
        )
    model.set_params(**params)
    if model.covariance_type != covariance_type:
        raise reader.fail(
            f"params.covariance_type is {model.covariance_type!r} but covariance_type is "
            f"{covariance_type!r}; the metadata is inconsistent."
        )
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
# Public API
# --------------------------------------------------------------------------


def save(model, path) -> None:
    """Save a fitted model to ``path`` in an open, pickle-free format.

    A :class:`~bayesgmm.GaussianMixture` is written as an ``.npz`` archive of
    its fitted arrays plus a JSON ``metadata`` entry (format version,
    bayesgmm version, estimator, parameters, covariance type and the shape of
    every array). The file is written to a temporary name first and then
    moved into place, so an interrupted save never leaves a broken file.
    An existing file at ``path`` is replaced.

    Parameters
    ----------
    model : GaussianMixture
        A fitted estimator.
    path : str or path-like
        Destination; used as given (no suffix is added). ``.npz`` is the
        conventional suffix.

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
    raise TypeError(
        f"Cannot save a {type(model).__name__}; bayesgmm.save accepts a fitted "
        "bayesgmm.GaussianMixture."
    )


def load(path):
    """Load a model written by :func:`save`.

    Parameters
    ----------
    path : str or path-like
        A file written by :func:`save`.

    Returns
    -------
    model : GaussianMixture
        A fitted estimator with the saved parameters and fitted attributes;
        it predicts exactly what the saved model did.

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
    if not magic:
        raise ValueError(f"{path}: the file is empty, not a saved model.")
    raise ValueError(
        f"{path}: not a bayesgmm model file (it starts with {magic[:4]!r}, neither an "
        ".npz archive nor a netCDF file)."
    )
