"""A fitted :class:`~bayesgmm.GaussianMixture` as an ``.npz`` archive, written and read with checks.

The archive holds the fitted arrays, the array-valued constructor
parameters (``param.<name>``) and the ``metadata`` and ``metadata_sha256``
entries; nothing is ever unpickled. The metadata, digests and checks it
shares with the netCDF format are in :mod:`bayesgmm._archive`. Reading
checks every zip member's name, compression and sizes when the archive is
opened, and each ``.npy`` header against the expected shape and dtype before
the member's data is decompressed; turning the arrays back into an estimator
is :func:`bayesgmm.persistence.load`.
"""

from __future__ import annotations

import os
import zipfile

import numpy as np

from bayesgmm._archive import (
    EM_ARRAYS,
    FORMAT,
    FORMAT_VERSION,
    MAX_DEFLATE_RATIO,
    MAX_METADATA_BYTES,
    METADATA_DIGEST_KEY,
    METADATA_KEY,
    PARAM_PREFIX,
    ModelFileError,
    Reader,
    array_digest,
    atomic_write,
    describe,
    reading,
    seal,
    split_params,
    unseal,
)
from bayesgmm._version import __version__


def write_em(model, path: str) -> None:
    from bayesgmm._validation import NOT_FITTED_MESSAGE

    if not hasattr(model, "means_"):
        raise ValueError(NOT_FITTED_MESSAGE.format(name=type(model).__name__))
    fitted = {name: np.asarray(getattr(model, name)) for name in EM_ARRAYS}
    if hasattr(model, "feature_names_in_"):
        fitted["feature_names_in_"] = np.asarray(model.feature_names_in_, dtype=str)
    params, param_arrays, dropped = split_params(model)
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
        "arrays": describe(stored),
        "sha256": {name: array_digest(array) for name, array in stored.items()},
    }
    text, digest = seal(metadata)
    stored[METADATA_KEY] = np.array(text)
    stored[METADATA_DIGEST_KEY] = np.array(digest)

    def write(temporary):
        with open(temporary, "wb") as handle:
            np.savez(handle, **stored)

    atomic_write(path, write)


def _read_npy_header(handle):
    """(shape, fortran_order, dtype) of the .npy stream ``handle``, left after the header."""
    version = np.lib.format.read_magic(handle)
    if version == (1, 0):
        return np.lib.format.read_array_header_1_0(handle)
    if version == (2, 0):
        return np.lib.format.read_array_header_2_0(handle)
    raise ValueError(f".npy format version {version} is not one NumPy writes for plain arrays")


class NpzArchive:
    """An ``.npz`` model file opened for checked reading.

    Opening checks every member's name, compression and sizes; members are
    then read one at a time by :meth:`read`, which checks the ``.npy`` header
    against the expected shape and dtype before any data is decompressed.
    """

    def __init__(self, path: str):
        self.path = path
        self.file_size = os.path.getsize(path)
        reader = Reader(path, {})
        with reading(path, "opening the zip archive",
                     "it is truncated, corrupted or not an .npz archive."):
            self._zip = zipfile.ZipFile(path)
            infos = self._zip.infolist()
        self.members = {}
        try:
            for info in infos:
                name = info.filename[:-4] if info.filename.endswith(".npy") else None
                if name is None or name in self.members:
                    raise reader.fail(f"the archive member {info.filename!r:.80} is not one "
                                      "array of a model (an unexpected or repeated name).")
                if info.flag_bits & 0x1:
                    raise reader.fail(f"the archive member {info.filename!r} is encrypted; "
                                      "bayesgmm never encrypts, so the file was altered.")
                if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                    raise reader.fail(f"the archive member {info.filename!r} uses compression "
                                      f"method {info.compress_type}, not one NumPy writes.")
                stored = info.compress_type == zipfile.ZIP_STORED
                if info.compress_size > self.file_size or (
                    info.file_size > (1 if stored else MAX_DEFLATE_RATIO) * info.compress_size
                    + 1024
                ):
                    raise reader.fail(
                        f"the archive member {info.filename!r} declares {info.file_size} bytes "
                        f"from {info.compress_size} stored bytes in a file of {self.file_size};"
                        " the file is corrupted."
                    )
                self.members[name] = info
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        self._zip.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def read(self, name: str, shape: tuple, dtype, max_itemsize: int | None = None) -> np.ndarray:
        """The member ``name``, once its header declares ``shape`` and ``dtype``.

        ``dtype`` is a NumPy dtype, or a kind ('U') whose item size is at most
        ``max_itemsize`` (text of unknown length). The member's declared size
        must be exactly its header plus the declared array, so nothing past
        the expected shape is ever decompressed or allocated.
        """
        info = self.members.get(name)
        if info is None:
            raise ModelFileError(f"{self.path}: the array {name!r} is missing; the file is "
                                 "truncated or corrupted.")
        with reading(self.path, f"reading the header of the array {name!r}"), \
                self._zip.open(info) as handle:
            found_shape, fortran_order, found_dtype = _read_npy_header(handle)
            header_size = handle.tell()
        if isinstance(dtype, str):
            dtype_ok = found_dtype.kind == dtype and found_dtype.itemsize <= max_itemsize
        else:
            dtype_ok = found_dtype == np.dtype(dtype)
        if tuple(found_shape) != tuple(shape) or not dtype_ok or fortran_order:
            raise ModelFileError(
                f"{self.path}: the array {name!r} is stored with shape {tuple(found_shape)} and "
                f"dtype {found_dtype}, but the metadata describes {tuple(shape)} and {dtype}; "
                "the file is corrupted."
            )
        expected_size = header_size + int(np.prod(shape, dtype=np.int64)) * found_dtype.itemsize
        if info.file_size != expected_size:
            raise ModelFileError(
                f"{self.path}: the array {name!r} declares {info.file_size} bytes, but its "
                f"header and shape make {expected_size}; the file is corrupted."
            )
        with reading(self.path, f"reading the array {name!r}"), self._zip.open(info) as handle:
            # Reading to the end makes zipfile check the member's CRC-32.
            array = np.lib.format.read_array(handle, allow_pickle=False)
            handle.read()
        return array

    def read_metadata(self) -> dict:
        """The verified, parsed metadata document."""
        for key in (METADATA_KEY, METADATA_DIGEST_KEY):
            if key not in self.members:
                raise ModelFileError(f"{self.path}: an .npz archive without a {key!r} entry, so "
                                     "not a model saved by bayesgmm.save.")
        text = self.read(METADATA_KEY, (), "U", MAX_METADATA_BYTES)
        digest = self.read(METADATA_DIGEST_KEY, (), "U", 4 * 64)
        return unseal(self.path, str(text[()]), str(digest[()]))
