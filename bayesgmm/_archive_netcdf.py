"""A fitted :class:`~bayesgmm.BayesianGaussianMixture` as a netCDF-4 file, written and checked.

The file is the ArviZ file of the run (``arviz.from_netcdf`` reads it) with
a ``bayesgmm`` group holding the estimator's own arrays and the metadata
(its ``metadata`` and ``metadata_sha256`` attributes), and a
``bayesgmm/raw_posterior`` group holding the draws before relabelling. The
metadata, digests and checks it shares with the ``.npz`` format are in
:mod:`bayesgmm._archive`; reading follows the same order: the metadata
against its digest, every HDF5 dataset's declared shape against the
metadata before anything is loaded, every variable against its digest.
"""

from __future__ import annotations

import os

import numpy as np

from bayesgmm._archive import (
    FORMAT,
    FORMAT_VERSION,
    MAX_METADATA_BYTES,
    METADATA_DIGEST_KEY,
    METADATA_KEY,
    PARAM_PREFIX,
    Reader,
    array_digest,
    atomic_write,
    check_sizes,
    describe,
    described_arrays,
    reading,
    seal,
    split_params,
    unseal,
)
from bayesgmm._version import __version__

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


def _variable_digest(values: np.ndarray) -> str | None:
    """SHA-256 of a variable's values: numbers as stored, text as its characters.

    Text reads back from netCDF as objects, so it is digested through one
    canonical form (str items, the minimal Unicode dtype); other kinds
    (dates) are not digested.
    """
    if values.dtype.kind in "biuf":
        return array_digest(values)
    if values.dtype.kind in "OUS":
        items = [item.decode("utf-8") if isinstance(item, bytes) else str(item)
                 for item in values.ravel().tolist()]
        return array_digest(np.array(items, dtype=str).reshape(values.shape))
    return None


def dataset_digests(datasets: dict) -> dict:
    """SHA-256 of every variable (coordinates included) of every dataset, keyed 'group/variable'."""
    digests = {}
    for group, dataset in datasets.items():
        for name, variable in dataset.variables.items():
            digest = _variable_digest(np.asarray(variable.values))
            if digest is not None:
                digests[f"{group}/{name}"] = digest
    return digests


def _describe_datasets(datasets: dict) -> tuple[dict, dict]:
    """Shapes and dtypes of every variable, and the length of every dimension, by HDF5 path."""
    variables, dimensions = {}, {}
    for group, dataset in datasets.items():
        for name, variable in dataset.variables.items():
            kind = variable.dtype.kind
            variables[f"{group}/{name}"] = {
                "shape": list(variable.shape),
                "dtype": "str" if kind in "OUS" else variable.dtype.str,
            }
        for name, length in dataset.sizes.items():
            dimensions[f"{group}/{name}"] = int(length)
    return variables, dimensions


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
    chain_method = getattr(model, "chain_method_", None)
    fitted = {
        "chain_method_": None if chain_method is None else str(chain_method),
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
    params, param_arrays, dropped = split_params(model)
    arrays.update({PARAM_PREFIX + name: array for name, array in param_arrays.items()})
    own = _as_dataset(arrays)
    groups = _inference_groups(model.inference_data_)
    raw_posterior = model.raw_inference_data_.posterior
    datasets = dict(groups, **{RAW_GROUP: raw_posterior, BAYES_GROUP: own})
    variables, dimensions = _describe_datasets(datasets)
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
        "arrays": describe(arrays),
        "inference_data_groups": list(groups),
        "variables": variables,
        "dimensions": dimensions,
        "sha256": dataset_digests(datasets),
    }
    text, digest = seal(metadata)

    def write(temporary):
        model.inference_data_.to_netcdf(temporary, engine=ENGINE)
        own.attrs = {METADATA_KEY: text, METADATA_DIGEST_KEY: digest}
        own.to_netcdf(temporary, group=BAYES_GROUP, mode="a", engine=ENGINE)
        raw_posterior.to_netcdf(temporary, group=RAW_GROUP, mode="a", engine=ENGINE)

    atomic_write(path, write)


def _hdf5_file(path: str):
    import h5py

    with reading(path, "opening the netCDF-4 (HDF5) file",
                 "the file is truncated, corrupted or not a saved model."):
        return h5py.File(path, "r")


def _text_attribute(reader: Reader, attrs, name: str):
    if name not in attrs:
        raise reader.fail(f"the {BAYES_GROUP!r} group has no {name!r} attribute; the file is "
                          "corrupted or not a saved model.")
    if attrs.get_id(name).get_storage_size() > MAX_METADATA_BYTES:
        raise reader.fail(f"the {name!r} attribute declares more than {MAX_METADATA_BYTES} "
                          "bytes; the file is corrupted.")
    return attrs[name]


def read_nc_metadata(path: str) -> dict:
    """The verified, parsed metadata of a netCDF model file (nothing else is read)."""
    reader = Reader(path, {})
    handle = _hdf5_file(path)
    with handle, reading(path, f"reading the {BAYES_GROUP!r} group's attributes"):
        if BAYES_GROUP not in handle:
            raise reader.fail(
                f"a netCDF file without a {BAYES_GROUP!r} group, so not a model saved by "
                "bayesgmm.save (an ArviZ file? read it with arviz.from_netcdf)."
            )
        attrs = handle[BAYES_GROUP].attrs
        text = _text_attribute(reader, attrs, METADATA_KEY)
        digest = _text_attribute(reader, attrs, METADATA_DIGEST_KEY)
    return unseal(path, text, digest)


def check_nc_layout(reader: Reader, groups: list) -> None:
    """Every HDF5 dataset's declared shape is the one the metadata describes; nothing is read.

    Datasets are the variables the metadata describes (under ``variables``)
    and the dimension scales of its ``dimensions``; the top-level groups are
    ``groups`` and the ``bayesgmm`` group.
    """
    import h5py

    described = described_arrays(reader, "variables")
    dimensions = reader.get("dimensions", dict)
    found, foreign, sizes = {}, [], {}
    handle = _hdf5_file(reader.path)

    def visit(name, link):
        # Soft, external and virtual data would be read from elsewhere (another
        # file). No exception here: h5py turns it into a SystemError.
        item = handle[name] if isinstance(link, h5py.HardLink) else None
        if isinstance(item, h5py.Dataset) and not item.is_virtual:
            found[name] = (item.shape, item.dtype)
        elif not isinstance(item, h5py.Group):
            foreign.append(name)

    with handle, reading(reader.path, "listing the HDF5 groups and datasets"):
        top = sorted(set(handle) - {BAYES_GROUP})
        handle.visititems_links(visit)
    if foreign:
        raise reader.fail(f"the HDF5 object {foreign[0]!r} is not a group or a dataset stored in "
                          "the file; the file was altered.")
    if top != sorted(groups):
        raise reader.fail(f"the file has the ArviZ groups {top}, but the metadata lists "
                          f"{sorted(groups)}.")
    for name, (shape, dtype) in found.items():
        if name in described:
            expected_shape, expected_dtype = described[name]
            itemsize_ok = expected_dtype == "str" or dtype.itemsize == expected_dtype.itemsize
            if tuple(shape or ()) != expected_shape or not itemsize_ok:
                raise reader.fail(
                    f"the variable {name!r} is stored with shape {shape} and dtype {dtype}, but "
                    f"the metadata describes {expected_shape} and {expected_dtype}; the file "
                    "is corrupted."
                )
        elif name in dimensions:
            if tuple(shape or ()) != (dimensions[name],):
                raise reader.fail(f"the dimension {name!r} is stored with shape {shape}, but "
                                  f"the metadata says length {dimensions[name]}; the file is "
                                  "corrupted.")
        else:
            raise reader.fail(f"the dataset {name!r} is not described in the metadata; the "
                              "file was altered.")
        sizes[name] = int(np.prod(shape or (), dtype=np.int64)) * dtype.itemsize
    missing = sorted(set(described) - set(found))
    if missing:
        raise reader.fail(f"the variables {missing[:5]} are missing; the file is truncated or "
                          "corrupted.")
    check_sizes(reader, sizes, os.path.getsize(reader.path))


def open_group(path: str, group: str):
    """One group of a netCDF file, loaded into memory; ModelFileError if unreadable.

    Call after :func:`check_nc_layout`, which bounds what loading allocates.
    """
    import xarray as xr

    with reading(path, f"reading the {group!r} group",
                 "the file is truncated, corrupted or not a saved model."), \
            xr.open_dataset(path, group=group, engine=ENGINE) as dataset:
        return dataset.load()
