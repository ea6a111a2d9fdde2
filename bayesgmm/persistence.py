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

import json
import os

import numpy as np

from bayesgmm._archive import (
    BAYES_GROUP,
    EM_ARRAYS,
    ENGINE,
    FORMAT,
    FORMAT_VERSION,
    GMM_FIELDS,
    HDF5_MAGIC,
    PARAM_PREFIX,
    RAW_GROUP,
    ZIP_MAGIC,
    Reader,
    array_digest,
    check_arrays,
    check_header,
    check_model_header,
    dataset_digests,
    expected_shapes,
    open_group,
    read_npz,
    write_bayesian,
    write_em,
)

__all__ = ["save", "load", "FORMAT", "FORMAT_VERSION"]


def _restore_estimator(reader: Reader, cls, arrays: dict, covariance_type: str):
    """A new ``cls`` with the stored constructor parameters."""
    params = dict(reader.get("params", dict))
    for name, array in arrays.items():
        if name.startswith(PARAM_PREFIX):
            params[name[len(PARAM_PREFIX):]] = array
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


def _load_em(reader: Reader, arrays: dict):
    from bayesgmm.mixture.estimator import GaussianMixture

    covariance_type, n_components, n_features, dtype = check_model_header(reader)
    fitted = reader.get("fitted", dict)
    n_iter = fitted.get("n_iter_")
    if not isinstance(n_iter, int) or isinstance(n_iter, bool):
        raise reader.fail("metadata field 'fitted.n_iter_' is missing; the file is corrupted.")
    described = reader.get("arrays", dict)
    expected = expected_shapes(covariance_type, n_components, n_features, n_iter)
    check_arrays(reader, arrays, expected, dtype,
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
    for name in EM_ARRAYS:
        setattr(model, name, arrays[name])
    if "feature_names_in_" in arrays:
        model.feature_names_in_ = arrays["feature_names_in_"].astype(object)
    model.converged_ = bool(fitted.get("converged_"))
    model.n_iter_ = n_iter
    model.lower_bound_ = float(fitted.get("lower_bound_", np.nan))
    model.n_features_in_ = n_features
    return model


def _load_bayesian(path: str):
    import arviz as az

    from bayesgmm.bayes.estimator import BayesianGaussianMixture
    from bayesgmm.mixture.parameters import GMMParams

    own = open_group(path, BAYES_GROUP)
    try:
        metadata = json.loads(own.attrs["metadata"])
    except (KeyError, TypeError, ValueError):
        metadata = None
    if not isinstance(metadata, dict):
        raise ValueError(f"{path}: the metadata attribute of the {BAYES_GROUP!r} group is "
                         "missing or not a JSON object; the file is corrupted.")
    reader = Reader(path, metadata)
    check_header(reader)
    estimator = reader.get("estimator", str)
    if estimator != "BayesianGaussianMixture":
        raise reader.fail(f"a netCDF file holding an unexpected estimator {estimator!r}.")
    covariance_type, n_components, n_features, dtype = check_model_header(reader)
    fitted = reader.get("fitted", dict)
    n_draws = fitted.get("n_draws")
    if not isinstance(n_draws, int) or n_draws < 1:
        raise reader.fail("metadata field 'fitted.n_draws' is missing; the file is corrupted.")

    arrays = {name: np.asarray(variable.values) for name, variable in own.data_vars.items()}
    single = expected_shapes(covariance_type, n_components, n_features, 0)
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
        expected.update({f"em_{field}": single[f"{field}_"] for field in GMM_FIELDS})
    check_arrays(reader, arrays, expected, dtype,
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
        idata = az.from_netcdf(path, engine=ENGINE)
    except (OSError, ValueError, KeyError, RuntimeError) as err:
        raise reader.fail(f"cannot read the ArviZ groups ({type(err).__name__}: {err}); the "
                          "file is truncated or corrupted.") from None
    groups = {group: getattr(idata, group) for group in idata.groups() if group != BAYES_GROUP}
    expected_groups = reader.get("inference_data_groups", list)
    if sorted(groups) != sorted(expected_groups):
        raise reader.fail(f"the file has the ArviZ groups {sorted(groups)}, but the metadata "
                          f"lists {sorted(expected_groups)}.")
    raw_posterior = open_group(path, RAW_GROUP)
    found = dataset_digests(groups)
    found.update({f"{RAW_GROUP}/{name}": digest
                  for name, digest in dataset_digests({"": raw_posterior}).items()})
    found.update({f"{BAYES_GROUP}/{name}": array_digest(array) for name, array in arrays.items()})
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
    model.posterior_params_ = GMMParams(*(arrays[f"posterior_{field}"] for field in GMM_FIELDS))
    model.weights_ = arrays["weights_"]
    model.means_ = arrays["means_"]
    model.covariances_ = arrays["covariances_"]
    model.em_params_ = (GMMParams(*(arrays[f"em_{field}"] for field in GMM_FIELDS))
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
    from bayesgmm.mixture.estimator import GaussianMixture

    path = os.fspath(path)
    if isinstance(model, GaussianMixture):
        write_em(model, path)
        return
    # Checked by name so that saving an EM model never imports NumPyro.
    if any(cls.__name__ == "BayesianGaussianMixture" and cls.__module__ == "bayesgmm.bayes.estimator"
           for cls in type(model).__mro__):
        write_bayesian(model, path)
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
    if magic.startswith(ZIP_MAGIC):
        metadata, arrays = read_npz(path)
        reader = Reader(path, metadata)
        check_header(reader)
        estimator = reader.get("estimator", str)
        if estimator == "GaussianMixture":
            return _load_em(reader, arrays)
        raise reader.fail(f"unknown estimator {estimator!r} in the metadata.")
    if magic.startswith(HDF5_MAGIC):
        return _load_bayesian(path)
    if not magic:
        raise ValueError(f"{path}: the file is empty, not a saved model.")
    raise ValueError(
        f"{path}: not a bayesgmm model file (it starts with {magic[:4]!r}, neither an "
        ".npz archive nor a netCDF file)."
    )
