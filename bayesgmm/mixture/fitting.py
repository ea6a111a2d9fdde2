"""The fits of :class:`bayesgmm.GaussianMixture`: from its settings to one :class:`EMResult`.

:func:`fit` checks the parameters only the estimator reads and runs the
in-memory fit (:func:`bayesgmm.mixture.driver.fit_gmm`) or, for chunked
data, the streamed one (:func:`bayesgmm.mixture.streaming.fit_streaming`);
:func:`partial_fit` runs one batch of stepwise online EM
(:mod:`bayesgmm.mixture.online`). Both read the estimator's settings and
its fitted parameters and return the result; only scikit-learn's feature
names are set on the estimator here, which keeps the result
(``GaussianMixture._set_result``).
"""

from __future__ import annotations

import numpy as np

from bayesgmm import _validation as v
from bayesgmm.mixture import driver, incomplete, online, sources, streaming
from bayesgmm.mixture.parameters import EMResult
from bayesgmm.mixture.prior import check_prior


def check_parameters(model) -> None:
    """The parameters that only the estimator reads (the driver checks the others)."""
    v.check_int("verbose", model.verbose, 0)
    v.check_int("verbose_interval", model.verbose_interval, 1)
    v.check_bool("warm_start", model.warm_start)
    check_prior(model.prior)
    incomplete.check_missing(model.missing)
    if isinstance(model.devices, (bool, np.bool_)):
        raise v.InvalidParameterError(
            f"Invalid value for 'devices': {model.devices!r}. It must be None, 'all', an "
            "int, a non-empty list of jax devices or a Mesh."
        )


def check_n_features(model, X) -> None:
    """Raise scikit-learn's error when a 2-D ``X`` has other columns than in fit.

    Chunked input is checked by :mod:`bayesgmm.mixture.sources` as it reads it.
    """
    if not sources.is_chunked(X) and np.ndim(X) == 2:
        v.check_n_features(
            np.empty((0, np.shape(X)[1])), model.n_features_in_, type(model).__name__
        )


def model_options(model, X) -> dict:
    """The settings shared by every way of fitting (batch, streaming, online).

    ``dtype`` is resolved against ``X`` (:func:`bayesgmm._validation.data_dtype`).
    """
    names = (
        "n_components", "covariance_type", "tol", "reg_covar", "init_params",
        "random_state", "weights_init", "means_init", "precisions_init", "missing",
    )
    options = {name: getattr(model, name) for name in names}
    return dict(options, dtype=v.data_dtype(model.dtype, X))


def fit(model, X, sample_weight) -> EMResult:
    """:meth:`GaussianMixture.fit`'s EM, in memory or streamed, continuing a fit under ``warm_start``."""
    check_parameters(model)
    warm = model.warm_start and hasattr(model, "converged_")
    if warm:
        check_n_features(model, X)
    v.check_feature_names(model, X, reset=True)
    chunked = sources.is_chunked(X)
    if chunked and model.prior is not None:
        raise ValueError(
            "A prior is not supported for chunked (streamed) data. Fit an in-memory array "
            "(numpy.asarray(X)), or set prior=None."
        )
    fit_function, options = (streaming.fit_streaming, {}) if chunked else (driver.fit_gmm, {"prior": model.prior})
    return fit_function(
        X,
        sample_weight,
        **model_options(model, X),
        **options,
        max_iter=model.max_iter,
        n_init=model.n_init,
        warm_start=(model._params(), model.lower_bound_) if warm else None,
        verbose=model.verbose,
        verbose_interval=model.verbose_interval,
        devices=model.devices,
    )


def partial_fit(model, X, sample_weight):
    """:meth:`GaussianMixture.partial_fit`'s step: the result and the new online state."""
    check_parameters(model)
    if model.prior is not None:
        raise ValueError(
            "partial_fit does not support a prior (online EM has no MAP form here). Use fit, "
            "or set prior=None."
        )
    if hasattr(model, "means_"):
        check_n_features(model, X)
    v.check_feature_names(model, X, reset=not hasattr(model, "means_"))
    options = model_options(model, X)
    if hasattr(model, "means_"):  # later batches keep the precision of the first
        options["dtype"] = model.means_.dtype
    return online.partial_fit_batch(
        X,
        sample_weight,
        state=getattr(model, "_online_state_", None),
        fitted=model._params() if hasattr(model, "means_") else None,
        **options,
    )
