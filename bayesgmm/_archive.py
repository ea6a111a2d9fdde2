"""What the saved-file formats share: metadata, checked reading and value checks, below the estimators.

A :class:`~bayesgmm.GaussianMixture` is an ``.npz`` archive
(:mod:`bayesgmm._archive_npz`), a :class:`~bayesgmm.BayesianGaussianMixture`
a netCDF-4 file that is also its ArviZ file (:mod:`bayesgmm._archive_netcdf`;
see :mod:`bayesgmm.persistence`). These modules work on what a fitted estimator
exposes (its parameters and fitted attributes) and import no estimator, so
the estimators' ``save`` methods can call them; turning a file back into an
estimator is :func:`bayesgmm.persistence.load`.

Both formats keep one JSON metadata document and its SHA-256 digest next to
it; the metadata holds the shape, dtype and SHA-256 digest of every stored
array. Reading goes in one direction: the metadata is checked against its
digest before it is parsed, every declared shape is checked against the
metadata (and the metadata against the shapes a model of its size has)
before an array is read or decompressed, and every array against its digest
once read. A damaged or edited file raises :class:`ModelFileError` (a
``ValueError``) naming the file and what is wrong.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import numbers
import os
import tempfile

import numpy as np

from bayesgmm import structures
from bayesgmm._version import __version__

FORMAT = "bayesgmm.model"

# 2: the metadata is covered by its own SHA-256 digest, and .npz metadata
# records a digest of every array. Version 1 files cannot be verified.
FORMAT_VERSION = 2

METADATA_KEY = "metadata"

METADATA_DIGEST_KEY = "metadata_sha256"

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

# Bound on the metadata text and on the stored feature names (bytes).
MAX_METADATA_BYTES = 1 << 24

# Deflate (zip members, HDF5's gzip filter) expands its input at most
# 1032-fold, so a file of N bytes cannot honestly declare more than about
# 1032 * N bytes of arrays.
MAX_DEFLATE_RATIO = 1032

# Errors that are not damage of the file itself.
_NOT_DAMAGE = (FileNotFoundError, IsADirectoryError, PermissionError, MemoryError)


class ModelFileError(ValueError):
    """A saved model file that is damaged, edited or not a bayesgmm file."""


@contextlib.contextmanager
def reading(path: str, what: str, consequence: str = "the file is truncated or corrupted."):
    """Turn any error of a reader of damaged bytes into a :class:`ModelFileError`.

    NumPy, zipfile, h5py, h5netcdf and json raise many kinds of exceptions on
    damaged input (OSError, KeyError, AttributeError, RecursionError,
    tokenize errors ...); inside this block each becomes one message naming
    the file, what was being read and the exception. A missing or unreadable
    file and our own :class:`ModelFileError` pass through.
    """
    try:
        yield
    except (ModelFileError,) + _NOT_DAMAGE:
        raise
    except Exception as err:  # noqa: BLE001 - any failure of a parser on damaged bytes
        detail = " ".join(str(err).split())[:300]
        raise ModelFileError(
            f"{path}: cannot be read: {what} failed ({type(err).__name__}: {detail}); "
            f"{consequence}"
        ) from None


# --------------------------------------------------------------------------
# Helpers shared by the formats
# --------------------------------------------------------------------------


# How a ConjugatePrior parameter is stored in the metadata: {PRIOR_KEY: {field: value}}.
PRIOR_KEY = "ConjugatePrior"


def split_params(model) -> tuple[dict, dict, list]:
    """Constructor parameters as (JSON values, arrays, names that cannot be stored).

    Array-valued parameters (``means_init`` ...) go to the archive; a random
    state given as a generator object, or devices given as objects, cannot
    be written as data and are stored as None (they only affect refitting
    and :meth:`sample`).
    """
    plain, arrays, dropped = {}, {}, []
    for name, value in model.get_params(deep=False).items():
        if name == "prior" and value is not None and not isinstance(value, str):
            # A ConjugatePrior (or a dict of its fields): its fields, lists for arrays.
            from bayesgmm.mixture.prior import check_prior

            plain[name] = {PRIOR_KEY: check_prior(value).to_dict()}
        elif value is None or isinstance(value, (bool, str)):
            plain[name] = value
        elif isinstance(value, numbers.Integral):
            plain[name] = int(value)
        elif isinstance(value, numbers.Real):
            plain[name] = float(value)
        elif (isinstance(value, (list, tuple, np.ndarray)) or hasattr(value, "__array__")) and (
            np.asarray(value).dtype.kind in "biuf"
        ):
            arrays[name] = np.asarray(value)
            plain[name] = None
        else:
            plain[name] = None
            dropped.append(name)
    return plain, arrays, dropped


def describe(arrays: dict) -> dict:
    return {
        name: {"shape": list(array.shape), "dtype": array.dtype.str}
        for name, array in arrays.items()
    }


def atomic_write(path: str, write) -> None:
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


def seal(metadata: dict) -> tuple[str, str]:
    """The metadata as JSON text, and the SHA-256 digest of that text."""
    text = json.dumps(metadata, indent=1, sort_keys=True)
    return text, hashlib.sha256(text.encode("utf-8")).hexdigest()


def unseal(path: str, text, digest) -> dict:
    """The metadata parsed from ``text`` once it matches ``digest``; ModelFileError otherwise."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    if isinstance(digest, bytes):
        digest = digest.decode("ascii", errors="replace")
    if not isinstance(text, str) or not isinstance(digest, str):
        raise ModelFileError(f"{path}: the {METADATA_KEY!r} or {METADATA_DIGEST_KEY!r} entry is "
                             "not text; the file is corrupted.")
    if hashlib.sha256(text.encode("utf-8")).hexdigest() != digest:
        raise ModelFileError(
            f"{path}: the metadata does not match its SHA-256 digest; the file is corrupted "
            "or its metadata was edited."
        )
    try:
        metadata = json.loads(text)
    except (ValueError, RecursionError) as err:
        raise ModelFileError(f"{path}: the metadata is not valid JSON ({type(err).__name__}); "
                             "the file was not written by bayesgmm.") from None
    if not isinstance(metadata, dict):
        raise ModelFileError(f"{path}: the metadata is not a JSON object; the file was not "
                             "written by bayesgmm.")
    return metadata


def expected_shapes(covariance_type: str, n_components: int, n_features: int, n_iter: int):
    matrix_shape = structures.get(covariance_type).parameter_shape(n_components, n_features)
    return {
        "weights_": (n_components,),
        "means_": (n_components, n_features),
        "covariances_": matrix_shape,
        "precisions_": matrix_shape,
        "precisions_cholesky_": matrix_shape,
        "lower_bounds_": (n_iter,),
    }


_KIND_NAMES = {int: "an integer", float: "a number", bool: "true or false", str: "a string",
               dict: "a JSON object", list: "a list"}


class Reader:
    """Checked access to the metadata of a model file, with messages naming the file."""

    def __init__(self, path: str, metadata: dict):
        self.path = path
        self.metadata = metadata

    def fail(self, problem: str) -> ModelFileError:
        return ModelFileError(f"{self.path}: {problem}")

    def get(self, key: str, kind, within: str | None = None, optional: bool = False):
        """``metadata[key]`` (or ``metadata[within][key]``), refused unless of ``kind``.

        ``kind`` is int, float (an int is accepted), bool, str, dict or list;
        bool is never taken for a number. ``optional`` also accepts a
        missing key or null (returned as None).
        """
        section = self.metadata if within is None else self.get(within, dict)
        field = key if within is None else f"{within}.{key}"
        value = section.get(key)
        if value is None and optional:
            return None
        accepted = (int, float) if kind is float else kind
        if not isinstance(value, accepted) or (isinstance(value, bool) and kind is not bool):
            state = "missing" if key not in section else f"{value!r}"[:80]
            raise self.fail(
                f"metadata field {field!r} must be {_KIND_NAMES[kind]}, got {state}; the file "
                "is corrupted or was not written by bayesgmm."
            )
        return float(value) if kind is float else value


def check_header(reader: Reader) -> None:
    if reader.metadata.get("format") != FORMAT:
        raise reader.fail(
            f"format {reader.metadata.get('format')!r} is not {FORMAT!r}; not a model "
            "saved by bayesgmm.save."
        )
    version = reader.get("format_version", int)
    written_by = reader.metadata.get("bayesgmm_version")
    if version > FORMAT_VERSION:
        raise reader.fail(
            f"written in format version {version} by bayesgmm {written_by}, but this "
            f"bayesgmm ({__version__}) reads up to version {FORMAT_VERSION}. Upgrade bayesgmm."
        )
    if version < FORMAT_VERSION:
        raise reader.fail(
            f"written in format version {version} by bayesgmm {written_by}, whose metadata "
            f"carries no digest, so it cannot be verified; this bayesgmm ({__version__}) "
            f"reads format version {FORMAT_VERSION}. Refit the model and save it again."
        )


def check_model_header(reader: Reader):
    """covariance_type, n_components, n_features and dtype from the metadata, checked."""
    covariance_type = reader.get("covariance_type", str)
    if covariance_type not in structures.NAMES:
        raise reader.fail(f"unknown covariance_type {covariance_type!r} in the metadata.")
    n_components = reader.get("n_components", int)
    n_features = reader.get("n_features", int)
    for name, value in (("n_components", n_components), ("n_features", n_features)):
        if value < 1:
            raise reader.fail(f"metadata field {name!r} is {value}; it must be >= 1.")
    dtype = reader.get("dtype", str)
    if dtype not in ("float64", "float32"):
        raise reader.fail(f"unknown dtype {dtype!r} in the metadata.")
    return covariance_type, n_components, n_features, dtype


def described_arrays(reader: Reader, key: str = "arrays") -> dict:
    """``{name: (shape, dtype)}`` from a metadata description of arrays, checked."""
    described = {}
    for name, info in reader.get(key, dict).items():
        shape = info.get("shape") if isinstance(info, dict) else None
        dtype = info.get("dtype") if isinstance(info, dict) else None
        valid = (isinstance(shape, list) and len(shape) <= 8 and isinstance(dtype, str)
                 and all(isinstance(n, int) and not isinstance(n, bool) and n >= 0
                         for n in shape))
        if valid and dtype != "str":
            try:
                dtype = np.dtype(dtype)
            except TypeError:
                valid = False
            else:
                valid = dtype.kind in "biufUM" and dtype.itemsize > 0
        if not valid:
            raise reader.fail(f"metadata field '{key}.{name}' is not a description "
                              f"(shape and dtype) of an array: {info!r:.80}.")
        described[name] = (tuple(shape), dtype)
    return described


def check_described(reader: Reader, described: dict, expected: dict, dtype: str, what: str) -> None:
    """Every expected array is described with the expected shape and dtype."""
    for name, shape in expected.items():
        if name not in described:
            raise reader.fail(f"the array {name!r} is missing from the metadata; the file is "
                              "truncated or corrupted.")
        found_shape, found_dtype = described[name]
        if found_shape != tuple(shape):
            raise reader.fail(
                f"{name} has shape {found_shape}, but {what} needs {tuple(shape)}; the arrays "
                "do not match the metadata."
            )
        if found_dtype == "str" or found_dtype.name != dtype:
            raise reader.fail(f"{name} has dtype {found_dtype}, but the metadata says {dtype}.")


def check_sizes(reader: Reader, sizes: dict, file_size: int) -> None:
    """Refuse declared array sizes (bytes) that the file could not hold, even deflated."""
    total = sum(sizes.values())
    if total > MAX_DEFLATE_RATIO * file_size + (1 << 20):
        largest = max(sizes, key=sizes.get)
        raise reader.fail(
            f"its arrays declare {total} bytes ({largest!r}: {sizes[largest]}), more than a "
            f"file of {file_size} bytes can hold; the file is corrupted."
        )


def check_digests(reader: Reader, found: dict) -> None:
    """Every digest in ``found`` is the one recorded in the metadata, and none is missing."""
    recorded = reader.get("sha256", dict)
    altered = sorted(name for name in set(found) | set(recorded)
                     if found.get(name) != recorded.get(name))
    if altered:
        raise reader.fail(
            f"the stored values of {', '.join(altered[:5])}"
            f"{' ...' if len(altered) > 5 else ''} do not match their SHA-256 digests; "
            "the file is corrupted or was altered."
        )


# --------------------------------------------------------------------------
# Fitted parameters: what a fit can produce
# --------------------------------------------------------------------------


def _tolerance(dtype) -> float:
    return 16.0 * float(np.finfo(np.dtype(dtype)).eps)


def check_finite(reader: Reader, arrays: dict, names) -> None:
    for name in names:
        if not np.all(np.isfinite(arrays[name])):
            raise reader.fail(f"{name} contains NaN or infinity; the file is corrupted.")


def check_simplex(reader: Reader, name: str, weights: np.ndarray) -> None:
    """Weights (..., n_components) are non-negative and each row sums to 1."""
    if np.any(weights < 0):
        raise reader.fail(f"{name} has a negative entry ({weights.min():.3g}); mixture "
                          "weights are non-negative.")
    tolerance = _tolerance(weights.dtype) * max(weights.shape[-1], 4) / 4
    deviation = np.max(np.abs(weights.sum(axis=-1, dtype=np.float64) - 1.0))
    if deviation > tolerance:
        raise reader.fail(f"{name} does not sum to 1 (off by {deviation:.3g}, tolerance "
                          f"{tolerance:.2g}); mixture weights lie on the simplex.")


def _is_matrix(covariance_type: str) -> bool:
    """Whether one component's parameters are a (D, D) matrix (else variances)."""
    structure = structures.get(covariance_type)
    return len(structure.parameter_shape(1, 1)) - int(structure.component_axis) == 2


def check_covariances(reader: Reader, covariance_type: str, name: str, covariances) -> None:
    """Covariances (any leading axes) are what the structure requires (positive definite)."""
    structure = structures.get(covariance_type)
    if not structure.positive_definite(covariances):
        raise reader.fail(f"{name} are not {structure.covariance_requirement}.")


def check_precision_factors(reader: Reader, covariance_type: str, names: tuple,
                            covariances, precisions_cholesky, precisions=None) -> None:
    """Precision Cholesky factors are valid and agree with the covariances (and precisions).

    Factors (any leading axes before the parameter shape) are triangular with
    a positive diagonal, so ``P @ P.T`` is positive definite; ``P.T @ Sigma @
    P`` is the identity to ``16 eps D kappa`` (``kappa`` the condition number
    of Sigma, ``eps`` that of the dtype: the error of the Cholesky factor of a
    fit), ``precisions`` is ``P @ P.T`` to rounding. ``names`` are the fields'
    names (covariances, factors, precisions) for the messages.
    """
    covariance_name, factor_name, precision_name = names
    tolerance = _tolerance(precisions_cholesky.dtype)
    factors = np.asarray(precisions_cholesky, dtype=np.float64)
    covariances = np.asarray(covariances, dtype=np.float64)
    if _is_matrix(covariance_type):
        n_features = factors.shape[-1]
        upper = np.all(np.tril(factors, -1) == 0, axis=(-2, -1))
        lower = np.all(np.triu(factors, 1) == 0, axis=(-2, -1))
        if not np.all(upper | lower):
            raise reader.fail(f"{factor_name} holds a matrix that is not triangular; "
                              "precision Cholesky factors are triangular.")
        diagonal = np.diagonal(factors, axis1=-2, axis2=-1)
        singular_values = np.linalg.svd(factors, compute_uv=False)
        condition = (singular_values[..., 0] / np.maximum(singular_values[..., -1], 1e-300)) ** 2
        residual = np.abs(np.swapaxes(factors, -1, -2) @ covariances @ factors
                          - np.eye(n_features)).max(axis=(-2, -1))
        allowed = tolerance * n_features * condition
        product, bound = factors @ np.swapaxes(factors, -1, -2), np.abs(factors) @ np.abs(
            np.swapaxes(factors, -1, -2)) * tolerance * n_features
    else:
        diagonal = factors
        residual = np.abs(covariances * factors**2 - 1.0)
        allowed = np.full(residual.shape, tolerance)
        product, bound = factors**2, factors**2 * tolerance
    if np.any(diagonal <= 0):
        raise reader.fail(f"{factor_name} has a diagonal entry <= 0 ({diagonal.min():.3g}); "
                          "the precisions would not be positive definite.")
    worst = np.unravel_index(np.argmax(residual / allowed), residual.shape)
    if residual[worst] > allowed[worst]:
        raise reader.fail(
            f"{covariance_name} does not match {factor_name} (P.T @ Sigma @ P differs from "
            f"the identity by {residual[worst]:.3g}, tolerance {allowed[worst]:.3g}); the file "
            "was altered."
        )
    if precisions is not None:
        deviation = np.abs(np.asarray(precisions, dtype=np.float64) - product)
        if np.any(deviation > bound + np.finfo(np.float64).tiny):
            raise reader.fail(f"{precision_name} is not {factor_name} @ {factor_name}.T; the "
                              "file was altered.")


def check_permutations(reader: Reader, name: str, permutations: np.ndarray) -> None:
    """Every row of (..., n_components) integers is a permutation of the components."""
    n_components = permutations.shape[-1]
    if permutations.dtype.kind not in "iu" or not np.array_equal(
        np.sort(permutations, axis=-1),
        np.broadcast_to(np.arange(n_components), permutations.shape),
    ):
        raise reader.fail(f"{name} holds a row that is not a permutation of the "
                          f"{n_components} components.")
