"""Saving fitted models to open files and loading them back.

Two open, pickle-free formats, chosen by the estimator:

* A :class:`~bayesgmm.GaussianMixture` is saved as a NumPy ``.npz`` archive
  (a zip of ``.npy`` arrays) holding its fitted arrays and the ``metadata``
  and ``metadata_sha256`` entries. Nothing is ever unpickled.
* A :class:`~bayesgmm.BayesianGaussianMixture` is saved as one netCDF-4 file
  that is also the ArviZ file of its run: ``arviz.from_netcdf(path)`` reads
  its ``posterior``, ``sample_stats``, ``log_likelihood`` and
  ``observed_data`` groups. A ``bayesgmm`` group adds what the estimator
  needs to predict (every posterior draw of the mixture parameters in
  scikit-learn's shapes, the relabelling permutations, the EM start), and
  its ``bayesgmm/raw_posterior`` sub-group holds the draws before relabelling.
  The metadata is in the ``metadata`` and ``metadata_sha256`` attributes of
  the ``bayesgmm`` group.

The metadata is a JSON document, kept with the SHA-256 digest of its text. It
records

* the file format and its version, and the bayesgmm version that wrote it,
* the estimator class, every constructor parameter, ``covariance_type``,
  ``n_components``, ``n_features`` and ``dtype``,
* the shape, dtype and SHA-256 digest of every stored array (for netCDF,
  of every variable and coordinate of every group), and the fitted scalars.

Arrays are stored bit for bit, so a loaded model predicts exactly what the
saved one did. Loading trusts nothing it has not checked: the metadata
against its digest, every declared array shape against the metadata (and the
metadata against the shapes a model of its size has) before the array is
read or decompressed, every array against its digest; then every parameter
through the estimator's own validation and every fitted array as a fit
produces it (weights on the simplex, triangular precision factors with a
positive diagonal, covariances and precisions consistent with them). A file
that fails any check raises a ``ValueError`` naming the file and what is
wrong. Files of format version 1 (no metadata digest) are refused with the
advice to refit and save again.
"""

from __future__ import annotations

import os

import numpy as np

from bayesgmm._archive import (
    EM_ARRAYS,
    FORMAT,
    FORMAT_VERSION,
    HDF5_MAGIC,
    MAX_METADATA_BYTES,
    METADATA_DIGEST_KEY,
    METADATA_KEY,
    PARAM_PREFIX,
    ZIP_MAGIC,
    ModelFileError,
    Reader,
    array_digest,
    check_covariances,
    check_described,
    check_digests,
    check_finite,
    check_header,
    check_model_header,
    check_permutations,
    check_precision_factors,
    check_simplex,
    check_sizes,
    described_arrays,
    expected_shapes,
)
from bayesgmm._archive_netcdf import (
    BAYES_GROUP,
    GMM_FIELDS,
    RAW_GROUP,
    check_nc_layout,
    dataset_digests,
    open_group,
    read_nc_metadata,
    write_bayesian,
)
from bayesgmm._archive_npz import NpzArchive, write_em

__all__ = ["save", "load", "FORMAT", "FORMAT_VERSION"]


# --------------------------------------------------------------------------
# What every loaded model shares: its constructor parameters and fitted arrays
# --------------------------------------------------------------------------


# Constructor parameters added after files were first written, with the value
# that reproduces the behaviour of those files (older files lack them).
ADDED_PARAMS = {"missing": "raise"}


def _restore_estimator(reader: Reader, cls, arrays: dict, check) -> object:
    """A new ``cls`` with the stored constructor parameters, validated by ``check(model)``.

    Every constructor parameter must be stored (a missing one is not taken
    as its default, except those of :data:`ADDED_PARAMS` in older files) and
    ``check`` is the estimator's own validation of its parameters, so a
    loaded model holds only settings its constructor and ``fit`` accept.
    """
    params = dict(reader.get("params", dict))
    if isinstance(params.get("prior"), dict):
        params["prior"] = _stored_prior(reader, params["prior"])
    for name, value in params.items():
        if name == "prior" and not isinstance(value, (dict, list)):
            continue
        if value is not None and not isinstance(value, (bool, int, float, str)):
            raise reader.fail(f"metadata field 'params.{name}' must be a number, a string, "
                              f"true, false or null, got {value!r:.80}.")
    for name, array in arrays.items():
        if name.startswith(PARAM_PREFIX):
            name = name[len(PARAM_PREFIX):]
            if params.get(name) is not None:
                raise reader.fail(f"the parameter {name!r} is stored both in the metadata and "
                                  "as an array; the file was altered.")
            params[name] = array
    model = cls()
    expected = set(model.get_params(deep=False))
    for name, value in ADDED_PARAMS.items():
        if name in expected:
            params.setdefault(name, value)
    unknown, missing = sorted(set(params) - expected), sorted(expected - set(params))
    if unknown:
        raise reader.fail(
            f"unknown {cls.__name__} parameter(s) {unknown}; the file was written by an "
            "incompatible bayesgmm."
        )
    if missing:
        raise reader.fail(f"metadata field 'params.{missing[0]}' is missing; the file is "
                          "corrupted or was edited.")
    model.set_params(**params)
    try:
        check(model)
    except ValueError as err:
        raise reader.fail(f"metadata field 'params' holds a value that {cls.__name__} refuses: "
                          f"{err}") from None
    return model


def _stored_prior(reader: Reader, stored: dict):
    """The ConjugatePrior of the metadata field 'params.prior' ({'ConjugatePrior': {field: value}})."""
    from bayesgmm._archive import PRIOR_KEY
    from bayesgmm.mixture.prior import PRIOR_FIELDS, ConjugatePrior

    fields = stored.get(PRIOR_KEY)
    if set(stored) != {PRIOR_KEY} or not isinstance(fields, dict) or set(fields) != set(PRIOR_FIELDS):
        raise reader.fail(f"metadata field 'params.prior' must be {{{PRIOR_KEY!r}: {{field: value}}}} with "
                          f"the fields {list(PRIOR_FIELDS)}, got {stored!r:.80}.")
    try:
        return ConjugatePrior(**{name: None if value is None else np.asarray(value, np.float64)[()]
                                 for name, value in fields.items()})
    except (TypeError, ValueError):
        raise reader.fail(f"metadata field 'params.prior' holds values that are not numbers: "
                          f"{fields!r:.80}.") from None


def _check_header_consistency(reader: Reader, model, covariance_type: str, n_components: int,
                              dtype: str) -> None:
    """The stored parameters describe the model the arrays hold."""
    if model.covariance_type != covariance_type:
        raise reader.fail(
            f"metadata field 'params.covariance_type' is {model.covariance_type!r} but "
            f"covariance_type is {covariance_type!r}; the metadata is inconsistent."
        )
    if model.n_components != n_components:
        raise reader.fail(
            f"metadata field 'params.n_components' is {model.n_components!r}, but the arrays "
            f"hold {n_components} components; the metadata is inconsistent."
        )
    if model.dtype is not None and np.dtype(model.dtype).name != dtype:
        raise reader.fail(f"metadata field 'params.dtype' is {model.dtype!r}, but the arrays "
                          f"are {dtype}; the metadata is inconsistent.")


def _check_extra_arrays(reader: Reader, described: dict, expected: dict, n_features: int) -> None:
    """Arrays besides the fitted ones: feature names and array-valued parameters, bounded."""
    largest = max(int(np.prod(shape)) for shape in expected.values())
    for name, (shape, dtype) in described.items():
        if name in expected:
            continue
        if name == "feature_names_in_":
            ok = (shape == (n_features,) and dtype != "str" and dtype.kind == "U"
                  and dtype.itemsize * n_features <= MAX_METADATA_BYTES)
        elif name.startswith(PARAM_PREFIX):
            ok = dtype != "str" and dtype.kind in "biuf" and int(np.prod(shape)) <= largest
        else:
            raise reader.fail(f"the array {name!r} is not part of a saved model; the file was "
                              "altered.")
        if not ok:
            raise reader.fail(f"the array {name!r} has shape {shape} and dtype {dtype}, which "
                              "no saved model has; the file is corrupted.")


def _check_em_params(model, n_features: int) -> None:
    """The validation GaussianMixture.fit runs on its parameters."""
    from sklearn.utils import check_random_state

    from bayesgmm import _validation as v
    from bayesgmm.mixture.incomplete import check_missing
    from bayesgmm.mixture.settings import check_initial_values, check_settings

    initial = {"weights_init": model.weights_init, "means_init": model.means_init,
               "precisions_init": model.precisions_init}
    _, settings = check_settings(
        model.n_components, covariance_type=model.covariance_type, tol=model.tol,
        reg_covar=model.reg_covar, max_iter=model.max_iter, n_init=model.n_init,
        init_params=model.init_params, dtype=model.dtype, prior=model.prior, **initial,
    )
    check_initial_values(settings, model.n_components, n_features, **initial)
    v.check_int("verbose_interval", model.verbose_interval, 1)
    check_missing(model.missing)
    check_random_state(model.random_state)


def _check_bayesian_params(model, n_features: int) -> None:
    """The validation BayesianGaussianMixture.fit runs on its parameters."""
    from sklearn.utils import check_random_state

    from bayesgmm.bayes.priors import check_prior_vector

    dtype = model._check_params()
    for name, positive in (("mean_prior", False), ("mean_prior_scale", True),
                           ("scale_prior", True)):
        check_prior_vector(name, getattr(model, name), n_features, dtype, positive)
    check_random_state(model.random_state)


def _check_mixture(reader: Reader, arrays: dict, covariance_type: str, prefix: str,
                   suffix: str = "", precisions: bool = False) -> None:
    """One set of mixture parameters (``{prefix}weights{suffix}`` ...) as a fit produces them."""
    weights, covariances, factors = (f"{prefix}{field}{suffix}" for field in
                                     ("weights", "covariances", "precisions_cholesky"))
    precision = f"{prefix}precisions{suffix}"
    check_simplex(reader, weights, arrays[weights])
    check_covariances(reader, covariance_type, covariances, arrays[covariances])
    check_precision_factors(reader, covariance_type, (covariances, factors, precision),
                            arrays[covariances], arrays[factors],
                            arrays[precision] if precisions else None)


# --------------------------------------------------------------------------
# GaussianMixture
# --------------------------------------------------------------------------


def _load_em(path: str):
    from bayesgmm.mixture.estimator import GaussianMixture

    with NpzArchive(path) as archive:
        reader = Reader(path, archive.read_metadata())
        check_header(reader)
        estimator = reader.get("estimator", str)
        if estimator != "GaussianMixture":
            raise reader.fail(f"unknown estimator {estimator!r} in the metadata.")
        covariance_type, n_components, n_features, dtype = check_model_header(reader)
        converged = reader.get("converged_", bool, within="fitted")
        n_iter = reader.get("n_iter_", int, within="fitted")
        lower_bound = reader.get("lower_bound_", float, within="fitted")
        if n_iter < 0 or np.isnan(lower_bound):
            raise reader.fail(f"metadata field 'fitted' holds n_iter_={n_iter} and "
                              f"lower_bound_={lower_bound}, which no fit produces.")
        described = described_arrays(reader)
        expected = expected_shapes(covariance_type, n_components, n_features, n_iter)
        check_described(reader, described, expected, dtype,
                        f"a {covariance_type!r} model with {n_components} components and "
                        f"{n_features} features")
        _check_extra_arrays(reader, described, expected, n_features)
        undescribed = set(archive.members) - set(described) - {METADATA_KEY, METADATA_DIGEST_KEY}
        if undescribed:
            raise reader.fail(f"the archive holds arrays the metadata does not describe "
                              f"({sorted(undescribed)[:5]}); the file was altered.")
        check_sizes(reader, {name: info.file_size for name, info in archive.members.items()},
                    archive.file_size)
        arrays = {name: archive.read(name, shape, array_dtype)
                  for name, (shape, array_dtype) in described.items()}
    check_digests(reader, {name: array_digest(array) for name, array in arrays.items()})
    check_finite(reader, arrays, EM_ARRAYS[:-1])
    if np.any(np.isnan(arrays["lower_bounds_"])):
        raise reader.fail("lower_bounds_ contains NaN; the file is corrupted.")
    _check_mixture(reader, arrays, covariance_type, "", "_", precisions=True)

    model = _restore_estimator(reader, GaussianMixture, arrays,
                               lambda model: _check_em_params(model, n_features))
    _check_header_consistency(reader, model, covariance_type, n_components, dtype)
    for name in EM_ARRAYS:
        setattr(model, name, arrays[name])
    if "feature_names_in_" in arrays:
        model.feature_names_in_ = arrays["feature_names_in_"].astype(object)
    model.converged_ = converged
    model.n_iter_ = n_iter
    model.lower_bound_ = lower_bound
    model.n_features_in_ = n_features
    return model


# --------------------------------------------------------------------------
# BayesianGaussianMixture
# --------------------------------------------------------------------------


def _bayesian_fitted(reader: Reader, n_features: int) -> tuple:
    """n_draws, has_em_params, chain_method_ and feature names from the metadata, checked."""
    from bayesgmm.bayes.nuts import CHAIN_METHODS

    n_draws = reader.get("n_draws", int, within="fitted")
    has_em_params = reader.get("has_em_params", bool, within="fitted")
    chain_method = reader.get("chain_method_", str, within="fitted", optional=True)
    names = reader.get("feature_names_in_", list, within="fitted", optional=True)
    if n_draws < 1:
        raise reader.fail(f"metadata field 'fitted.n_draws' is {n_draws}; it must be >= 1.")
    if chain_method is not None and chain_method not in CHAIN_METHODS:
        raise reader.fail(f"metadata field 'fitted.chain_method_' is {chain_method!r:.80}, not "
                          "a chain method.")
    if names is not None and (len(names) != n_features
                              or not all(isinstance(name, str) for name in names)):
        raise reader.fail(f"metadata field 'fitted.feature_names_in_' is not a list of "
                          f"{n_features} strings.")
    return n_draws, has_em_params, chain_method, names


def _bayesian_expected(reader, covariance_type, n_components, n_features, n_draws, has_em_params,
                       described) -> dict:
    """The shapes of the bayesgmm group's arrays for a model of this size."""
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
    if has_em_params:
        expected.update({f"em_{field}": single[f"{field}_"] for field in GMM_FIELDS})
    shape, dtype = described.get("relabel_permutations_", ((), "str"))
    if len(shape) != 3 or shape[0] * shape[1] != n_draws or shape[2] != n_components or (
        dtype == "str" or dtype.kind not in "iu"
    ):
        raise reader.fail(
            "relabel_permutations_ is missing or is not integers of shape (num_chains, "
            f"num_samples, {n_components}) with {n_draws} draws in all."
        )
    return expected


def _load_bayesian(path: str):
    import arviz as az

    from bayesgmm.bayes.estimator import BayesianGaussianMixture
    from bayesgmm.mixture.parameters import GMMParams

    reader = Reader(path, read_nc_metadata(path))
    check_header(reader)
    estimator = reader.get("estimator", str)
    if estimator != "BayesianGaussianMixture":
        raise reader.fail(f"a netCDF file holding an unexpected estimator {estimator!r}.")
    covariance_type, n_components, n_features, dtype = check_model_header(reader)
    n_draws, has_em_params, chain_method, feature_names = _bayesian_fitted(reader, n_features)
    groups = reader.get("inference_data_groups", list)
    if not all(isinstance(group, str) and "/" not in group and group != BAYES_GROUP
               for group in groups):
        raise reader.fail(f"metadata field 'inference_data_groups' is not a list of ArviZ "
                          f"group names: {groups!r:.80}.")

    described = described_arrays(reader)
    expected = _bayesian_expected(reader, covariance_type, n_components, n_features, n_draws,
                                  has_em_params, described)
    check_described(reader, described, expected, dtype,
                    f"a {covariance_type!r} posterior of {n_draws} draws with {n_components} "
                    f"components and {n_features} features")
    _check_extra_arrays(reader, described,
                        dict(expected, relabel_permutations_=described["relabel_permutations_"][0]),
                        n_features)
    variables = described_arrays(reader, "variables")
    own = {name[len(BAYES_GROUP) + 1:]: description for name, description in variables.items()
           if name.startswith(BAYES_GROUP + "/") and not name.startswith(RAW_GROUP + "/")}
    if own != described:
        raise reader.fail(f"the metadata fields 'arrays' and 'variables' describe different "
                          f"{BAYES_GROUP!r} arrays; the metadata is inconsistent.")
    check_nc_layout(reader, groups)

    datasets = {group: open_group(path, group) for group in groups}
    datasets[RAW_GROUP] = open_group(path, RAW_GROUP)
    datasets[BAYES_GROUP] = open_group(path, BAYES_GROUP)
    check_digests(reader, dataset_digests(datasets))
    own_group = datasets[BAYES_GROUP]
    arrays = {name: np.asarray(own_group[name].values) for name in described}
    for name, (shape, array_dtype) in described.items():
        if arrays[name].shape != shape or arrays[name].dtype != array_dtype:
            raise reader.fail(f"{name} reads back as {arrays[name].dtype} of shape "
                              f"{arrays[name].shape}, not as described; the file is corrupted.")
    check_finite(reader, arrays, expected)
    _check_mixture(reader, arrays, covariance_type, "posterior_")
    check_simplex(reader, "weights_", arrays["weights_"])
    check_covariances(reader, covariance_type, "covariances_", arrays["covariances_"])
    if has_em_params:
        _check_mixture(reader, arrays, covariance_type, "em_")
    permutations = arrays["relabel_permutations_"]
    check_permutations(reader, "relabel_permutations_", permutations)

    model = _restore_estimator(reader, BayesianGaussianMixture, arrays,
                               lambda model: _check_bayesian_params(model, n_features))
    _check_header_consistency(reader, model, covariance_type, n_components, dtype)
    model.inference_data_ = az.InferenceData(**{group: datasets[group] for group in groups})
    model.raw_inference_data_ = az.InferenceData(posterior=datasets[RAW_GROUP])
    model.relabel_permutations_ = permutations
    model.posterior_params_ = GMMParams(*(arrays[f"posterior_{field}"] for field in GMM_FIELDS))
    model.weights_ = arrays["weights_"]
    model.means_ = arrays["means_"]
    model.covariances_ = arrays["covariances_"]
    model.em_params_ = (GMMParams(*(arrays[f"em_{field}"] for field in GMM_FIELDS))
                        if has_em_params else None)
    model.chain_method_ = chain_method
    model.n_features_in_ = n_features
    if feature_names is not None:
        model.feature_names_in_ = np.asarray(feature_names, dtype=object)
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
        If the file is truncated, corrupted or edited (its metadata or an
        array does not match its digest, a declared shape does not match
        the metadata), is not a bayesgmm model, was written in another
        format version, or holds a parameter or fitted value that no
        constructor or fit produces. The message names the file and the
        problem (the field, for a parameter or fitted value).
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        raise IsADirectoryError(f"{path}: is a directory, not a saved model.")
    with open(path, "rb") as handle:
        magic = handle.read(8)
    if magic.startswith(ZIP_MAGIC):
        return _load_em(path)
    if magic.startswith(HDF5_MAGIC):
        return _load_bayesian(path)
    if not magic:
        raise ModelFileError(f"{path}: the file is empty, not a saved model.")
    raise ModelFileError(
        f"{path}: not a bayesgmm model file (it starts with {magic[:4]!r}, neither an "
        ".npz archive nor a netCDF file)."
    )
