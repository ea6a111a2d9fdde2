"""Predictions of a fitted :class:`bayesgmm.GaussianMixture`, chunk by chunk on the device.

The estimator's ``predict``, ``predict_proba``, ``score_samples`` and
``impute`` check their data here, then run the jitted E-step of the fits
(:func:`bayesgmm.mixture.engine.predict_blocks`) on chunks of rows in the
fits' padded layout, or, where values are missing, each row's marginal on
its observed coordinates (:mod:`bayesgmm.mixture.incomplete_predict`).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from bayesgmm import _validation as v
from bayesgmm import structures
from bayesgmm.mixture import blocks, engine, forms, incomplete, incomplete_predict, parameters

# Rows per device call of predict / predict_proba / score_samples.
PREDICT_CHUNK_ROWS = 1 << 20


def predict(model, X, output: str, n_padded: int | None = None) -> np.ndarray:
    """Validate ``X`` and run one prediction of a fitted ``model`` on the device, chunk by chunk.

    Rows go to the device in chunks of at most :data:`PREDICT_CHUNK_ROWS`
    (every chunk padded to the same layout, so one compiled program serves
    them all): the extra memory of a prediction stays bounded however
    large ``X`` is, a memory-mapped array included. ``output`` is one of
    :func:`engine.predict_blocks`'s; ``n_padded`` (at least the number of
    components) sets the components the program carries, where a caller
    scores many sizes with one program (default: the fits' rule,
    :func:`parameters.component_bucket`).
    """
    model._check_fitted()
    covariance_type = model._structure_name()
    n_components = model.weights_.shape[0]
    v.check_feature_names(model, X, reset=False)
    dtype = model.means_.dtype
    missing = incomplete.check_missing(model.missing)
    X = v.check_array(X, dtype, copy=False, missing=missing)
    v.check_n_features(X, model.n_features_in_, type(model).__name__)
    if missing == "marginalize" and np.isnan(X).any():
        if output == "criteria":
            resp = incomplete_predict.predict(model._params(), X, covariance_type, "proba")
            log_prob = incomplete_predict.predict(model._params(), X, covariance_type, "log_prob_norm")
            return np.stack([log_prob, np.log(resp.max(axis=1))], axis=1)
        result = incomplete_predict.predict(model._params(), X, covariance_type, output)
        return result[:, :n_components] if output == "proba" else result
    n_samples = X.shape[0]
    chunk_rows = min(n_samples, PREDICT_CHUNK_ROWS)
    # Padded like the fits (inactive components have weight zero), so that
    # models of every size in a bucket share one compiled program.
    if n_padded is None:
        n_padded = parameters.component_bucket(n_components, chunk_rows, X.shape[1], covariance_type)
    block_size, n_blocks = blocks.block_layout(
        chunk_rows, n_padded, X.shape[1], X.dtype.itemsize, covariance_type
    )
    # The E-step expects centred data: shift data and means alike.
    centre = (model.weights_ @ model.means_).astype(dtype)
    params = model._params()._replace(means=model.means_ - centre)
    form = forms.form_for(params, covariance_type, dtype)
    params = parameters.pad_components(params, n_padded, covariance_type)
    parts = []
    with parameters.precision_scope(dtype):
        params = parameters.GMMParams(*(jnp.asarray(leaf) for leaf in params))
        for start in range(0, n_samples, chunk_rows):
            chunk = np.asarray(X[start : start + chunk_rows])
            result = engine.predict_blocks(
                blocks.to_device(blocks.to_blocks(chunk, block_size, n_blocks, offset=centre)),
                params,
                # mclust's models predict as their representation: one program serves them all.
                covariance_type=structures.representation(covariance_type),
                output=output,
                form=form,
            )
            part = blocks.from_blocks(result, chunk.shape[0])
            parts.append(part[:, :n_components] if output == "proba" else part)
    # A writable array of the rows the caller gave (device buffers are read-only).
    return np.array(parts[0]) if len(parts) == 1 else np.concatenate(parts)


def impute(model, X, n_draws=None, random_state=None) -> np.ndarray:
    """Validate ``X`` and fill in its missing entries from a fitted ``model`` (:meth:`GaussianMixture.impute`)."""
    model._check_fitted()
    v.check_feature_names(model, X, reset=False)
    X = v.check_array(X, model.means_.dtype, missing="marginalize")
    v.check_n_features(X, model.n_features_in_, type(model).__name__)
    if n_draws is not None:
        n_draws = v.check_int("n_draws", n_draws, 1)
    if np.isnan(X).all(axis=1).any():
        row = int(np.flatnonzero(np.isnan(X).all(axis=1))[0])
        raise ValueError(f"Row {row} of X has every value missing: there is nothing to condition on.")
    return incomplete_predict.impute(model._params(), X, model._structure_name(), n_draws, random_state)
