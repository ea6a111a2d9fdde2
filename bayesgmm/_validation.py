"""Checks at the Python boundary, run before any tracing or compilation.

Every function here raises a plain ``ValueError`` (``TypeError`` for sparse
input and non-numeric objects, as scikit-learn does) whose message names the
problem and what to change; where scikit-learn has a message for the same
problem, ours contains it, so ``sklearn.utils.estimator_checks`` recognises
it. Nothing here modifies the caller's arrays: inputs are copied
(``np.array(..., copy=True)``) whenever they are converted.
"""

from __future__ import annotations

import numbers

import numpy as np
from sklearn.utils._param_validation import (
    InvalidParameterError as _SklearnInvalidParameterError,
)

# scikit-learn's names and mclust's names of the same four structures
# (bayesgmm.structures.NAMES; this module does not import JAX).
COVARIANCE_TYPES = ("full", "tied", "diag", "spherical", "VVV", "EEE", "VVI", "VII")
INIT_PARAMS = ("kmeans", "k-means++", "random", "random_from_data", "hierarchical")
DTYPES = ("float64", "float32")


class InvalidParameterError(_SklearnInvalidParameterError):
    """A constructor parameter (or a fit setting) has a value it cannot take.

    A subclass of scikit-learn's ``InvalidParameterError`` (itself a
    ``ValueError`` and a ``TypeError``), so code that catches either keeps
    working; the message names the parameter and what it must be.
    """


NOT_FITTED_MESSAGE = (
    "This {name} instance is not fitted yet. Call 'fit' with appropriate "
    "arguments before using this estimator."
)

ILL_DEFINED_COVARIANCE_MESSAGE = (
    "Fitting the mixture model failed because some components have "
    "ill-defined empirical covariance (for instance caused by singleton "
    "or collapsed samples). Try to decrease the number of components, "
    "increase reg_covar, or scale the input data."
)
PRECISION_LOSS_PREFIX = "The fit lost its accuracy to rounding"
PRECISION_LOSS_MESSAGE = (
    PRECISION_LOSS_PREFIX + ": the mean of component {component} lies "
    "{distance:.3g} standard deviations (Mahalanobis distance) from the mean of the "
    "data, so in {dtype} its covariance is only known to about {error:.2g} %. "
    "{remedy}Online fits (partial_fit) work in that fast form only: fit the data with "
    "fit (which redoes such a fit in the direct form), standardise the features "
    "(for instance with sklearn.preprocessing.StandardScaler) or increase reg_covar "
    "if the component has collapsed."
)
MISSING_HINT = (
    "Remove or impute non-finite values before fitting, or pass missing='marginalize' to "
    "treat NaN as values missing at random."
)
FLOAT32_HINT = (
    " The numerical accuracy can also be improved by passing dtype='float64' "
    "instead of float32."
)


def check_dtype(dtype) -> np.dtype:
    """Return the NumPy float dtype named by ``dtype`` ('float64' or 'float32').

    ``None`` (follow the data) is float64 here, where no data are known; see
    :func:`data_dtype`.
    """
    if dtype is None:
        return np.dtype(np.float64)
    try:
        resolved = np.dtype(dtype)
    except TypeError:
        resolved = None
    if resolved is None or resolved.name not in DTYPES:
        raise InvalidParameterError(
            f"dtype must be 'float64' or 'float32', got {dtype!r}. Use "
            "'float64' for accuracy (the default) or 'float32' for speed."
        )
    return resolved


def data_dtype(dtype, X) -> np.dtype:
    """The dtype of a fit: ``dtype`` when given, else float32 for float32 data, else float64.

    As scikit-learn's mixtures, the attributes and predictions of a model
    fitted on float32 data are float32.
    """
    if dtype is not None:
        return check_dtype(dtype)
    return np.dtype(np.float32 if getattr(X, "dtype", None) == np.float32 else np.float64)


def check_bool(name: str, value) -> bool:
    """Raise unless ``value`` is a bool (NumPy's included); ``'no'`` is not False."""
    if not isinstance(value, (bool, np.bool_)):
        raise InvalidParameterError(
            f"Invalid value for '{name}': {value!r}. It must be True or False."
        )
    return bool(value)


def check_choice(name: str, value, choices) -> str:
    """Raise unless ``value`` is one of ``choices``."""
    if not isinstance(value, str) or value not in choices:
        raise InvalidParameterError(
            f"Invalid value for '{name}': {value!r}. It must be one of "
            f"{', '.join(repr(c) for c in choices)}."
        )
    return value


def check_int(name: str, value, minimum: int, maximum: int | None = None) -> int:
    """Raise unless ``value`` is an integer (not bool) >= ``minimum`` (and <= ``maximum``)."""
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Integral)
        or value < minimum
        or (maximum is not None and value > maximum)
    ):
        bound = f">= {minimum}" if maximum is None else f"in [{minimum}, {maximum}]"
        raise InvalidParameterError(f"Invalid value for '{name}': {value!r}. It must be an integer {bound}.")
    return int(value)


def check_nonnegative_float(name: str, value, strict: bool = False) -> float:
    """Raise unless ``value`` is a finite real number >= 0 (> 0 if strict)."""
    ok = (
        isinstance(value, numbers.Real)
        and not isinstance(value, bool)
        and np.isfinite(value)
        and (value > 0 if strict else value >= 0)
    )
    if not ok:
        bound = "> 0" if strict else ">= 0"
        raise InvalidParameterError(
            f"Invalid value for '{name}': {value!r}. It must be a finite "
            f"number {bound}."
        )
    return float(value)


def check_array(
    X, dtype: np.dtype, name: str = "X", min_samples: int = 1, copy: bool = True,
    missing: str = "raise",
) -> np.ndarray:
    """Validate a data matrix and return a 2-D array of ``dtype``.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        The data. Lists, NumPy arrays and JAX arrays are accepted.
    dtype : numpy.dtype
        The float dtype of the returned array.
    name : str
        The name used in error messages.
    min_samples : int
        The minimal number of rows.
    copy : bool, default=True
        Always return a fresh copy. With False the input itself is returned
        when it already has the right dtype and layout: for callers that
        only read it (and so never modify the caller's data), which saves a
        copy of large data sets.

    Returns
    -------
    X : ndarray of shape (n_samples, n_features)
    """
    if X is None:
        raise ValueError(f"{name} is None. Pass an array of shape (n_samples, n_features).")
    if _is_sparse(X):
        raise TypeError(
            f"Sparse data was passed for {name}, but dense data is required. Use "
            "'.toarray()' to convert to a dense numpy array."
        )
    try:
        array = np.array(X, copy=True) if copy else np.asarray(X)
    except (TypeError, ValueError) as err:
        raise ValueError(
            f"{name} could not be converted to a numeric array ({err}). Pass a "
            "2-D array of shape (n_samples, n_features) with rows of equal length."
        ) from None
    if array.dtype == object:
        # Numbers stored as Python objects (for instance from pandas) are
        # converted like scikit-learn does; anything else raises NumPy's own
        # TypeError ("float() argument must be a string or a real number").
        try:
            array = array.astype(np.float64)
        except TypeError as err:
            raise TypeError(
                f"{name} has dtype object and holds a value that is not a number: {err}. "
                "Convert the data to a numeric array of shape (n_samples, n_features)."
            ) from None
        except ValueError as err:
            raise ValueError(
                f"{name} must contain numbers, got dtype object ({err}). Convert the "
                "data to a numeric array of shape (n_samples, n_features)."
            ) from None
    if np.iscomplexobj(array):
        raise ValueError(f"Complex data not supported: {name} must be real-valued.")
    if not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
        raise ValueError(
            f"{name} must contain numbers, got dtype {array.dtype}. Convert the "
            "data to a numeric array of shape (n_samples, n_features)."
        )
    if array.ndim != 2:
        hint = (
            " Reshape your data with X.reshape(-1, 1) if it has a single "
            "feature or X.reshape(1, -1) if it contains a single sample."
            if array.ndim == 1
            else ""
        )
        raise ValueError(
            f"Expected a 2-D array for {name} of shape (n_samples, n_features), "
            f"got an array with {array.ndim} dimension(s) and shape {array.shape}.{hint}"
        )
    for axis, what in ((0, "sample(s)"), (1, "feature(s)")):
        if array.shape[axis] == 0:
            raise ValueError(
                f"{name} is empty: found array with 0 {what} (shape={array.shape}) "
                "while a minimum of 1 is required."
            )
    if array.shape[0] < min_samples:
        raise ValueError(
            f"{name} has {array.shape[0]} sample(s), but at least {min_samples} "
            "are required."
        )
    source = array
    with np.errstate(over="ignore"):
        array = np.ascontiguousarray(array, dtype=dtype)
    finite = np.isfinite(array)
    if missing == "marginalize":
        finite |= np.isnan(array)
    if not finite.all():
        bad = np.argwhere(~finite)[0]
        if np.isfinite(source[tuple(bad)]):
            raise ValueError(
                f"{name} holds {float(source[tuple(bad)]):g} (first at row {bad[0]}, column "
                f"{bad[1]}), outside the range of {np.dtype(dtype).name} (largest "
                f"{np.finfo(dtype).max:g}). Pass dtype='float64' or scale the data."
            )
        if np.isnan(array[tuple(bad)]):
            raise ValueError(
                f"{name} contains NaN (first at row {bad[0]}, column {bad[1]}). "
                + MISSING_HINT
            )
        raise ValueError(
            f"{name} contains infinity (first at row {bad[0]}, column {bad[1]}). "
            "Remove or impute non-finite values before fitting."
        )
    if copy and not array.flags.writeable:
        array = array.copy()
    return array


def check_feature_names(estimator, X, reset: bool) -> None:
    """scikit-learn's rule for column names, applied before ``X`` is converted.

    With ``reset`` (a fit) ``estimator.feature_names_in_`` is set from a
    DataFrame's string column names, or removed for data without names, and
    ``n_features_in_`` is set. Without it (predictions, later ``partial_fit``
    batches) columns must match the names seen in fit, in order: a mismatch
    raises scikit-learn's ``ValueError`` ("The feature names should match
    those that were passed during fit."), and a frame after a fit on an array
    (or the reverse) warns as scikit-learn does. Input that is not 2-D (and
    chunk callables) is left to :func:`check_array` and the readers, whose
    errors say what is wrong with it.
    """
    from sklearn.utils.validation import validate_data

    try:
        two_dimensional = np.ndim(X) == 2
    except (TypeError, ValueError):
        two_dimensional = False
    if two_dimensional and not _is_sparse(X):
        validate_data(estimator, X, reset=reset, skip_check_array=True)


def _is_sparse(X) -> bool:
    """True for SciPy sparse matrices and arrays, without importing SciPy."""
    module = type(X).__module__ or ""
    return module.startswith("scipy.sparse") and hasattr(X, "toarray")


def check_n_samples(n_samples: int, n_components: int) -> None:
    """Raise when there are fewer samples than components."""
    if n_samples < n_components:
        raise ValueError(
            f"Expected n_samples >= n_components but got n_components = "
            f"{n_components}, n_samples = {n_samples}. Use fewer components "
            "or more data."
        )


def check_n_features(X: np.ndarray, n_features: int, estimator: str = "the model") -> None:
    """Raise when ``X`` does not have the number of features seen in fit.

    The message is scikit-learn's ("X has 3 features, but GaussianMixture is
    expecting 2 features as input"), so code written against scikit-learn
    catches it the same way; ``estimator`` is the class name to put in it.
    """
    if X.shape[1] != n_features:
        raise ValueError(
            f"X has {X.shape[1]} features, but {estimator} is expecting "
            f"{n_features} features as input. Pass data with the same columns as in fit."
        )


def check_sample_weight(sample_weight, n_samples: int, dtype: np.dtype) -> np.ndarray:
    """Validate ``sample_weight`` and return a fresh array of shape (n_samples,).

    ``None`` gives unit weights. Weights must be finite, non-negative and not
    all zero.
    """
    if sample_weight is None:
        return np.ones(n_samples, dtype=dtype)
    try:
        complex_weights = np.iscomplexobj(np.asarray(sample_weight))
    except (TypeError, ValueError):
        complex_weights = False  # left to the conversion below, which says what is wrong
    if complex_weights:
        raise ValueError("Complex data not supported: sample_weight must be real-valued.")
    try:
        with np.errstate(over="ignore"):
            weights = np.array(sample_weight, dtype=dtype, copy=True)
    except (TypeError, ValueError):
        raise ValueError(
            "sample_weight could not be converted to a float array. Pass a 1-D "
            "array of non-negative numbers, one per sample."
        ) from None
    if weights.ndim == 0:
        weights = np.full(n_samples, weights, dtype=dtype)
    if weights.ndim != 1 or weights.shape[0] != n_samples:
        raise ValueError(
            f"sample_weight has shape {weights.shape}, expected ({n_samples},): "
            "one weight per sample of X."
        )
    if not np.all(np.isfinite(weights)):
        source = np.asarray(sample_weight, dtype=np.float64)
        if np.all(np.isfinite(source)):
            raise ValueError(
                f"sample_weight holds {source.max():g}, outside the range of "
                f"{np.dtype(dtype).name} (largest {np.finfo(dtype).max:g}). Scale the weights "
                "(fits do not depend on their scale)."
            )
        raise ValueError("sample_weight contains NaN or infinity. Pass finite weights.")
    if np.any(weights < 0):
        raise ValueError(
            f"sample_weight contains negative values (min {weights.min():g}). "
            "Weights must be non-negative."
        )
    if not np.any(weights > 0):
        raise ValueError(
            "sample_weight is zero for every sample. At least one weight must be positive."
        )
    return weights


def scaled_sample_weight(weights: np.ndarray, largest: float, smallest_positive: float,
                         dtype: np.dtype) -> np.ndarray:
    """Weights divided by the largest one, in the fit's dtype, for EM.

    The maximum-likelihood fit does not depend on the scale of the weights,
    but the M-step adds ``10 * eps`` to each component's weight (as
    scikit-learn does), which does: weights of 1e-30 would pull every mean to
    the origin. Fits therefore run on ``weights / largest``, which is exactly
    the unweighted fit for uniform weights of any positive value.

    Parameters
    ----------
    weights : ndarray of shape (n_samples,)
        Validated weights (:func:`check_sample_weight` in float64).
    largest, smallest_positive : float
        The largest weight and the smallest positive one, over all the data
        (all processes, all chunks), not only ``weights``.
    dtype : numpy.dtype

    Returns
    -------
    weights : ndarray of shape (n_samples,) of ``dtype``

    Raises
    ------
    ValueError
        When the smallest positive weight, relative to the largest, is below
        the smallest normal number of ``dtype``: those samples would count as
        zero (or as a subnormal number, whose arithmetic loses its digits).
    """
    tiny = np.finfo(dtype).tiny
    if smallest_positive / largest < tiny:
        raise ValueError(
            f"sample_weight spans too many orders of magnitude for {np.dtype(dtype).name}: the "
            f"smallest positive weight ({smallest_positive:g}) is less than {tiny:g} times the "
            f"largest ({largest:g}). Give the samples that should not count a weight of 0"
            + (", or pass dtype='float64'." if np.dtype(dtype) != np.float64 else ".")
        )
    return (np.asarray(weights, dtype=np.float64) / largest).astype(dtype)


def check_positive_weight_count(sample_weight: np.ndarray, n_components: int) -> None:
    """Raise when fewer samples carry weight than there are components."""
    n_positive = int(np.count_nonzero(sample_weight > 0))
    if n_positive < n_components:
        raise ValueError(
            f"Only {n_positive} sample(s) have a positive sample_weight, fewer "
            f"than n_components = {n_components}. Use fewer components or give "
            "weight to more samples."
        )


def _check_shape(array: np.ndarray, shape: tuple, name: str) -> None:
    if array.shape != tuple(shape):
        raise ValueError(
            f"The parameter '{name}' should have the shape of {tuple(shape)}, "
            f"but got {array.shape}"
        )


def _as_float_array(value, name: str, dtype: np.dtype) -> np.ndarray:
    try:
        array = np.array(value, dtype=dtype, copy=True)
    except (TypeError, ValueError):
        raise ValueError(f"The parameter '{name}' could not be converted to a float array.") from None
    if not np.all(np.isfinite(array)):
        raise ValueError(f"The parameter '{name}' contains NaN or infinity.")
    return array


def check_weights(weights, n_components: int, dtype: np.dtype) -> np.ndarray:
    """Validate user-provided mixture weights: shape (n_components,), a simplex.

    The messages are scikit-learn's (which calls the parameter 'weights').
    Weights that arrive as float32 are checked at float32's tolerance (1e-6),
    as scikit-learn does, also when the fit itself runs in float64.
    """
    given = np.asarray(weights).dtype if hasattr(weights, "dtype") else None
    weights = _as_float_array(weights, "weights", dtype)
    _check_shape(weights, (n_components,), "weights")
    if np.any(weights < 0) or np.any(weights > 1):
        raise ValueError(
            "The parameter 'weights' should be in the range [0, 1], but got "
            f"max value {weights.max():.5f}, min value {weights.min():.5f}"
        )
    atol = 1e-6 if np.float32 in (given, np.dtype(dtype)) else 1e-8
    if abs(1.0 - float(weights.sum())) > atol:
        raise ValueError(
            "The parameter 'weights' should be normalized, but got "
            f"sum(weights) = {weights.sum():.5f}. Divide weights_init by its sum."
        )
    return weights


def check_means(means, n_components: int, n_features: int, dtype: np.dtype) -> np.ndarray:
    """Validate user-provided means: shape (n_components, n_features), finite."""
    means = _as_float_array(means, "means", dtype)
    _check_shape(means, (n_components, n_features), "means")
    return means


# scikit-learn's words for what precisions need, by the structure's requirement on covariances.
_PRECISION_REQUIREMENT = {
    "symmetric positive definite matrices": "symmetric, positive-definite",
    "strictly positive variances": "positive",
}


def check_precisions(
    precisions, covariance_type: str, n_components: int, n_features: int, dtype: np.dtype
) -> np.ndarray:
    """Validate user-provided precisions for ``covariance_type``.

    The shape is the structure's parameter shape (that of its
    ``covariances_``): (n_components, n_features, n_features) for 'full' and
    mclust's structures stored as full matrices, (n_features, n_features)
    for 'tied' and those stored as one shared matrix, (n_components,
    n_features) for 'diag' and its kin, (n_components,) for 'spherical' and
    its kin. Matrices must be symmetric positive definite, and diagonal or
    spherical precisions strictly positive. Like scikit-learn's, they are
    the starting values of the first E-step: mclust's constraints (equal
    volumes, shapes or orientations) need not hold in them; the first
    M-step imposes them.
    """
    # Imported here: the table brings in JAX, which the command line's
    # argument checks do without.
    from bayesgmm import structures

    structure = structures.get(covariance_type)
    name = f"{covariance_type} precision"
    precisions = _as_float_array(precisions, name, dtype)
    _check_shape(precisions, structure.parameter_shape(n_components, n_features), name)
    # A precision needs what a covariance needs: positive variances, or
    # symmetric positive definite matrices.
    if not structure.positive_definite(np.asarray(precisions, dtype=np.float64)):
        raise ValueError(f"'{name}' should be {_PRECISION_REQUIREMENT[structure.covariance_requirement]}.")
    return precisions
