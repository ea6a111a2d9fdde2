"""Whether the expanded form's square keeps enough digits for a fit's components.

The expanded E-step squares ``x`` about the data centre; a component whose
mean lies many of its own standard deviations from that centre loses the
digits of its log density to cancellation. :func:`precision_loss` measures
it, :func:`expanded_form_is_accurate` sends such fits to the direct form.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from bayesgmm.mixture import quadratic
from bayesgmm.mixture.parameters import GMMParams

PRECISION_LOSS_LIMIT = 0.02

# Measured: float32 fits of two clusters 30 to 1000 standard deviations from
# the data's mean had covariances off by 1.3 to 8 times eps * mu^T P mu.
PRECISION_LOSS_FACTOR = 8.0


def precision_loss(params: GMMParams, covariance_type: str, dtype) -> tuple[int, float, float]:
    """How much the expanded square loses to rounding for these parameters.

    EM's fast path works with the expanded square (:mod:`bayesgmm.mixture.quadratic`)
    of data centred at their mean. A component whose mean lies far from that
    centre in units of its own spread loses covariance accuracy in
    proportion to ``eps * mu^T P mu`` (:func:`bayesgmm.mixture.quadratic.mean_distances`),
    about ``PRECISION_LOSS_FACTOR`` times that, and its log densities about
    ``eps * mu^T P mu`` nats.

    Parameters
    ----------
    params : GMMParams
        Host arrays, means relative to the centre of the data.
    covariance_type : str
    dtype : numpy.dtype
        The dtype of the computation.

    Returns
    -------
    component : int
        The component that loses most.
    distance : float
        Its mean's distance from the centre in its standard deviations.
    error : float
        The estimated relative error of its covariance.
    """
    distances = quadratic.mean_distances(
        np.asarray(params.means, np.float64),
        np.asarray(params.precisions_cholesky, np.float64),
        covariance_type,
        xp=np,
    )
    component = int(np.nanargmax(distances)) if np.any(np.isfinite(distances)) else 0
    error = PRECISION_LOSS_FACTOR * np.finfo(dtype).eps * float(distances[component])
    return component, float(np.sqrt(distances[component])), error


def expanded_form_is_accurate(params: GMMParams, covariance_type: str, dtype) -> bool:
    """Whether :func:`precision_loss` stays within ``PRECISION_LOSS_LIMIT`` (2 %).

    In float32 that holds for components up to about 145 standard deviations
    from the centre, in float64 up to about 3 million. Fits and predictions
    beyond it use the direct form (:func:`block_sums_direct`).
    """
    return bool(precision_loss(params, covariance_type, dtype)[2] <= PRECISION_LOSS_LIMIT)


def check_precision(params: GMMParams, covariance_type: str, dtype) -> None:
    """Raise when rounding has left a fit's covariances unreliable.

    For the fits that work with the expanded square only (online fits,
    ``partial_fit``; ``fit``, in memory or streamed, switches to the direct
    form instead):
    above ``PRECISION_LOSS_LIMIT`` of estimated covariance error
    (:func:`precision_loss`) the fit is wrong without being non-finite, so it
    is checked here rather than passed on silently.

    Parameters
    ----------
    params : GMMParams
        Host arrays of the fit, means relative to the centre of the data.
    covariance_type : str
    dtype : numpy.dtype
        The dtype the fit ran in.

    Raises
    ------
    ValueError
        When the estimated relative error exceeds ``PRECISION_LOSS_LIMIT``.
    """
    from bayesgmm import _validation as v

    component, distance, error = precision_loss(params, covariance_type, dtype)
    if error > PRECISION_LOSS_LIMIT:
        remedy = "Pass dtype='float64' (the default). " if np.dtype(dtype) == np.float32 else ""
        raise ValueError(
            v.PRECISION_LOSS_MESSAGE.format(
                component=component,
                distance=distance,
                dtype=np.dtype(dtype).name,
                error=100 * error,
                remedy=remedy,
            )
        )


def all_finite(params: GMMParams):
    """Whether every mean and precision factor is finite (no singular covariance)."""
    return jnp.all(jnp.isfinite(params.precisions_cholesky)) & jnp.all(
        jnp.isfinite(params.means)
    )
