"""Stepwise online EM (Cappé and Moulines, 2009) for streams seen once, one batch at a time.

``GaussianMixture.partial_fit`` calls :func:`partial_fit_batch`: each batch's
statistics (per unit weight) are blended into running statistics with a
decreasing step size, and the M-step runs on the blend. The first batch is
initialised as the fit driver initialises a candidate.

Examples
--------
>>> import numpy as np
>>> from bayesgmm import GaussianMixture
>>> rng = np.random.default_rng(0)
>>> X = np.concatenate([rng.normal(0, 1, (500, 2)), rng.normal(6, 1, (500, 2))])
>>> online = GaussianMixture(2, random_state=0)
>>> for batch in np.array_split(rng.permutation(X), 10):
...     online = online.partial_fit(batch)
>>> online.n_iter_, np.round(np.sort(online.means_[:, 0])) + 0.0
(10, array([0., 6.]))
"""

from __future__ import annotations

import functools
import numbers
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from bayesgmm import _program_cache, structures
from bayesgmm import _validation as v
from bayesgmm.mixture import (
    blocks,
    driver,
    forms,
    incomplete,
    initialisation,
    mstep,
    parameters,
    rounding,
)
from bayesgmm.mixture.settings import (
    Settings,
    check_initial_values,
    check_settings,
    fit_sample_weight,
)
from bayesgmm.mixture.streaming import zero_statistics

# Step sizes of online EM: gamma_t = (t + STEP_SIZE_OFFSET) ** -STEP_SIZE_EXPONENT.
STEP_SIZE_EXPONENT = 0.6

STEP_SIZE_OFFSET = 2.0


# --------------------------------------------------------------------------
# Online (stepwise) EM
# --------------------------------------------------------------------------


class OnlineState(NamedTuple):
    """What stepwise EM carries from one batch to the next (host arrays)."""

    statistics: parameters.SufficientStats  # per unit weight, of data centred at ``centre``
    centre: np.ndarray  # (n_features,) weighted mean of the first batch
    lower_bounds: np.ndarray  # (n_batches,) running mean log-likelihood after each batch
    means: np.ndarray  # (n_components, n_features) the fitted means this state produced


def step_size(
    n_updates: int, exponent: float = STEP_SIZE_EXPONENT, offset: float = STEP_SIZE_OFFSET
) -> float:
    """Step size of the update that follows ``n_updates`` earlier ones.

    ``gamma = 1`` for the first batch (its statistics replace the empty
    ones), then ``gamma_t = (t + offset) ** -exponent``. With ``exponent`` in
    (0.5, 1] the steps sum to infinity and their squares do not, the
    condition under which stepwise EM converges (Cappé & Moulines 2009).

    Parameters
    ----------
    n_updates : int
        Batches already folded into the statistics.
    exponent : float in (0.5, 1]
    offset : float >= 0
        Larger values damp the early steps.

    Returns
    -------
    float
    """
    if not (isinstance(exponent, numbers.Real) and 0.5 < exponent <= 1):
        raise ValueError(f"The step-size exponent must be in (0.5, 1], got {exponent!r}.")
    offset = v.check_nonnegative_float("offset", offset)
    return 1.0 if n_updates == 0 else float((n_updates + offset) ** -exponent)


@_program_cache.bounded
@functools.partial(jax.jit, static_argnames=("covariance_type", "reg_covar", "statistics_of"))
def stepwise_update(
    statistics,
    X_blocks,
    weight_blocks,
    params: parameters.GMMParams,
    step,
    *,
    covariance_type: str,
    reg_covar: float,
    statistics_of=forms.accumulate_statistics,
):
    """``s <- (1 - step) s + step * s_batch / batch_weight``, then the M-step.

    Parameters
    ----------
    statistics : SufficientStats
        Per unit weight (``total_weight`` 1, ``log_likelihood`` the mean).
    X_blocks : Array of shape (n_blocks, block_size, n_features)
    weight_blocks : Array of shape (n_blocks, block_size)
    params : GMMParams
        The parameters of the E-step on the batch.
    step : Array of shape ()
    statistics_of : callable (static)
        The batch's E-step (:func:`bayesgmm.mixture.engine.run_em`'s ``statistics``).

    Returns
    -------
    statistics : SufficientStats
    params : GMMParams
    """
    batch = statistics_of(X_blocks, weight_blocks, params, covariance_type)
    batch = jax.tree_util.tree_map(lambda leaf: leaf / batch.total_weight, batch)
    statistics = jax.tree_util.tree_map(
        lambda old, new: (1 - step) * old + step * new, statistics, batch
    )
    return statistics, mstep.m_step(statistics, reg_covar, covariance_type)


def partial_fit_batch(
    X,
    sample_weight=None,
    *,
    state: OnlineState | None,
    fitted: parameters.GMMParams | None,
    n_components: int,
    covariance_type: str = "full",
    tol: float = 1e-3,
    reg_covar: float = 1e-6,
    init_params: str = "kmeans",
    random_state=None,
    weights_init=None,
    means_init=None,
    precisions_init=None,
    dtype="float64",
    exponent: float = STEP_SIZE_EXPONENT,
    offset: float = STEP_SIZE_OFFSET,
    missing: str = "raise",
) -> tuple[parameters.EMResult, OnlineState]:
    """One step of stepwise online EM (Cappé & Moulines 2009) on a batch.

    The state is the running sufficient statistics per unit weight ``s``.
    Each batch runs the E-step under the current parameters, and
    ``s <- (1 - gamma_t) s + gamma_t * s_batch / batch_weight`` with
    ``gamma_t`` from :func:`step_size`; the parameters are the M-step of
    ``s``. Each point is seen once; memory does not grow with the stream.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        The batch.
    sample_weight : array-like of shape (n_samples,), optional
    state : OnlineState or None
        From the previous call; used only if ``fitted.means`` is the array
        it produced (otherwise the model was refitted in between).
    fitted : GMMParams or None
        The current parameters (None before any fit). Without a usable
        ``state``: start from them if given, else initialise from this
        batch with ``init_params`` (and any user-given initial values).
    n_components, covariance_type, tol, reg_covar, init_params, random_state, \
    weights_init, means_init, precisions_init, dtype
        As in :func:`bayesgmm.mixture.driver.fit_gmm`; ``tol`` decides ``converged``
        (change of the running mean log-likelihood below ``tol``).
    exponent, offset : float
        The step-size schedule (see :func:`step_size`).
    missing : {'raise', 'marginalize'}, default='raise'
        As in :func:`bayesgmm.mixture.driver.fit_sweep`: NaN entries are
        values missing at random; the first batch is initialised from its
        rows mean-imputed.

    Returns
    -------
    result : EMResult
        ``lower_bound`` is the running mean log-likelihood (the ``s`` of
        the log-likelihood), ``n_iter`` the number of batches since the
        start, ``lower_bounds`` its history.
    state : OnlineState
    """
    from sklearn.utils import check_random_state

    _, settings = check_settings(
        n_components, covariance_type=covariance_type, tol=tol, reg_covar=reg_covar,
        max_iter=1, n_init=1, init_params=init_params, dtype=dtype,
    )
    dtype, tol, reg_covar = settings.dtype, settings.tol, settings.reg_covar
    requested, covariance_type = covariance_type, settings.covariance_type
    resume = state is not None and fitted is not None and state.means is fitted.means
    missing = incomplete.check_missing(missing)
    X = v.check_array(X, dtype, min_samples=1 if fitted is not None else 2, missing=missing)
    structures.check_n_features(requested, X.shape[1])
    # Scaled per batch: a batch's statistics are taken per unit of its weight.
    weights = fit_sample_weight(sample_weight, X.shape[0], dtype)
    has_missing = missing == "marginalize" and bool(np.isnan(X).any())
    if has_missing:
        X, weights = incomplete.usable_rows(X, weights)
    if fitted is not None:
        v.check_n_features(X, np.shape(fitted.means)[1])
    else:
        v.check_n_samples(X.shape[0], n_components)
        v.check_positive_weight_count(weights, n_components)
    step = step_size(len(state.lower_bounds) if resume else 0, exponent, offset)
    if resume:
        centre = state.centre
    elif has_missing:
        centre = incomplete.observed_mean(X, weights)
    else:
        centre = (blocks.weighted_column_sum(weights, X) / weights.sum()).astype(dtype)
    with parameters.precision_scope(dtype):
        if fitted is not None:
            params = parameters.GMMParams(*(jnp.asarray(leaf, dtype) for leaf in fitted))
            params = params._replace(means=params.means - centre)
        else:
            given = check_initial_values(
                settings, n_components, X.shape[1],
                weights_init=weights_init, means_init=means_init, precisions_init=precisions_init,
            )
            rows = incomplete.mean_imputed(X, centre) if has_missing else X
            params = _first_batch_params(
                rows, None if sample_weight is None else weights, weights, centre, settings,
                n_components, check_random_state(random_state), given,
            )
        if resume:
            statistics = jax.tree_util.tree_map(
                lambda leaf: jnp.asarray(leaf, dtype), state.statistics
            )
        else:
            statistics = zero_statistics(n_components, X.shape[1], covariance_type, dtype)
        if has_missing:
            X_blocks, weight_blocks = incomplete.put_incomplete(X, weights, centre, n_components, covariance_type)
        else:
            layout = blocks.DataLayout.create(X.shape[0], n_components, X.shape[1])
            X_blocks, weight_blocks = layout.put(X, offset=centre), layout.put(weights)
        statistics, params = stepwise_update(
            statistics,
            X_blocks,
            weight_blocks,
            params,
            jnp.asarray(step, dtype),
            covariance_type=covariance_type,
            reg_covar=reg_covar,
            statistics_of=incomplete.incomplete_statistics if has_missing else forms.accumulate_statistics,
        )
        if not bool(rounding.all_finite(params)):
            raise ValueError(
                v.ILL_DEFINED_COVARIANCE_MESSAGE + (v.FLOAT32_HINT if dtype == np.float32 else "")
            )
        statistics = parameters.SufficientStats(*(np.asarray(leaf) for leaf in statistics))
        params = parameters.GMMParams(*(np.asarray(leaf, dtype=dtype) for leaf in params))
        rounding.check_precision(params, covariance_type, dtype)
    history = state.lower_bounds if resume else np.empty(0, dtype)
    history = np.append(history, statistics.log_likelihood).astype(dtype)
    result = parameters.EMResult(
        params=params._replace(means=params.means + centre),
        lower_bound=float(history[-1]),
        n_iter=history.shape[0],
        converged=bool(history.shape[0] > 1 and abs(history[-1] - history[-2]) < tol),
        lower_bounds=history,
    )
    return result, OnlineState(statistics, centre, history, result.params.means)


def _first_batch_params(
    X, sample_weight, weights, centre, settings: Settings, n_components: int, random_state,
    given: dict,
) -> parameters.GMMParams:
    """Centred initial parameters from the first batch of a stream (one candidate).

    As the fit driver initialises a candidate: responsibilities drawn from
    the batch as given (scikit-learn's draws; ``sample_weight`` None for
    unit weights), the M-step on the batch centred at ``centre``, the
    user-given values (``given``, validated) taking precedence.
    """
    resp = None
    if driver.needs_responsibilities(given):
        resp = initialisation.initial_responsibilities(
            X, sample_weight, n_components, settings.init_params, random_state
        )[:, None]
    layout = blocks.DataLayout.create(X.shape[0], n_components, X.shape[1])
    params = initialisation.initial_params(
        layout, layout.put(X, offset=centre), layout.put(weights), resp,
        np.ones((1, n_components), bool), covariance_type=settings.covariance_type,
        reg_covar=settings.reg_covar, **driver.centred_initial_values(given, centre),
    )
    return jax.tree_util.tree_map(lambda leaf: leaf[0], params)
