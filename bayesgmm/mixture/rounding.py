"""Whether rounding leaves a fit's components accurate: the expanded square, and the dtype itself.

The expanded E-step squares ``x`` about the data centre; its terms are about
as large as ``(|mu_k| + sigma_k)^2`` in units of the component's precision,
and their sum about ``D``. Two kinds of component lose the digits of their
log density to that cancellation: one whose mean lies many of its own
standard deviations from the centre, and one whose covariance is nearly
singular along a direction oblique to the features (collinear features),
where ``x^T P x`` is a small difference of products of order
``|x|^2 / lambda_min``. :func:`precision_loss` measures both,
:func:`expanded_form_is_accurate` sends such fits to the direct form.

Some covariances no form can hold: a covariance whose smallest variance,
along such an oblique direction, is below ``eps`` of its largest entries
cannot be stored in the dtype to more than a few digits (every entry is
rounded to ``eps`` of itself), and neither can its log-likelihood
(:func:`resolution_loss`; exactly collinear features in float32 with the
default ``reg_covar`` lose 10 to 40 %). A fit is refused there
(:func:`covariances_resolved`).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from bayesgmm import structures
from bayesgmm.mixture import quadratic
from bayesgmm.mixture.parameters import GMMParams

PRECISION_LOSS_LIMIT = 0.02

# Measured: float32 fits of two clusters 30 to 1000 standard deviations from
# the data's mean had covariances off by 1.3 to 8 times eps * mu^T P mu.
PRECISION_LOSS_FACTOR = 8.0

# Measured: float32 fits of three features, the third a combination of the
# others plus noise of 5e-2 to 1e-2 of their scale ('tied'), had covariances
# off by 0.2 to 1.6 times eps * _spread_distances in the expanded square.
SPREAD_LOSS_FACTOR = 2.0

# Measured on the same data with noise of 1e-2 to 1e-3 ('full', 'tied', direct
# form): smallest variances off by 0.2 to 2 times resolution_loss's estimate
# without this factor.
RESOLUTION_FACTOR = 2.0

# Above this estimated error of the smallest variances a fit is refused.
# Measured (float32, same data): up to 10 %, log-likelihoods within 0.016 per
# sample of the float64 fit's (scikit-learn's float32: 0.11); from 15 %,
# 0.02 to 0.1 off (scikit-learn's: 0.01 to 0.8 off, or it fails).
RESOLUTION_LIMIT = 0.1

# For online fits; PRECISION_LOSS_MESSAGE of bayesgmm._validation covers far means.
NEAR_SINGULAR_MESSAGE = (
    "{prefix}: the covariance of component {component} is nearly singular along a "
    "direction oblique to the features (collinear features), so in {dtype} the fast form "
    "of online fits (partial_fit) knows it only to about {error:.2g} %. {remedy}Fit the "
    "data with fit (which redoes such a fit in the direct form), drop or combine the "
    "collinear features, or increase reg_covar."
)


def _host_matrices(params: GMMParams, covariance_type: str):
    """Means, precisions' diagonals and variances as float64 host arrays.

    Returns
    -------
    means : ndarray of shape (K, D)
    precision_diagonal : ndarray of shape (K, D)
        ``P_ii``.
    variances : ndarray of shape (K, D)
        ``Sigma_ii``, from ``params.covariances`` (or from ``P`` where that is None).
    """
    structure = structures.get(covariance_type)
    means = np.asarray(params.means, np.float64)
    n_components, n_features = means.shape
    # Dense factors L (P = L L^T); for 'tied' the shared one, repeated.
    factors = structure.full_matrices(
        np.asarray(params.precisions_cholesky, np.float64), n_components, n_features
    )
    precision_diagonal = np.sum(np.square(factors), axis=2)
    if params.covariances is None:
        precisions = factors @ np.swapaxes(factors, 1, 2)
        variances = np.diagonal(np.linalg.inv(precisions), axis1=1, axis2=2)
    else:
        variances = np.broadcast_to(
            structure.feature_variances(np.asarray(params.covariances, np.float64), n_features),
            means.shape,
        )
    return means, precision_diagonal, variances


def _spread_distances(means, precision_diagonal, variances):
    """``sum_i (|mu_ki| + sigma_ki)^2 P_k,ii``, shape (K,): the size of the expanded square's terms.

    The products ``x_i x_j`` of a component's points are about
    ``(|mu_i| + sigma_i)(|mu_j| + sigma_j)``, and ``|P_ij|`` is at most
    ``sqrt(P_ii P_jj)``; for uncorrelated features this is ``mu^T P mu``
    plus about ``D``, and it grows like ``|x|^2 / lambda_min`` where the
    covariance is nearly singular along an oblique direction, however close
    the mean lies to the centre.
    """
    magnitudes = np.abs(means) + np.sqrt(np.maximum(variances, 0.0))
    return np.sum(np.square(magnitudes) * precision_diagonal, axis=1)


def precision_loss(params: GMMParams, covariance_type: str, dtype) -> tuple[int, float, float, bool]:
    """How much the expanded square loses to rounding for these parameters.

    EM's fast path works with the expanded square (:mod:`bayesgmm.mixture.quadratic`)
    of data centred at their mean. A component whose mean lies far from that
    centre in units of its own spread loses covariance accuracy in
    proportion to ``eps * mu^T P mu`` (:func:`bayesgmm.mixture.quadratic.mean_distances`),
    about ``PRECISION_LOSS_FACTOR`` times that, and its log densities about
    ``eps * mu^T P mu`` nats; one nearly singular along an oblique
    direction, in proportion to ``eps`` times :func:`_spread_distances`.

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
        Its mean's distance from the centre in its standard deviations, or,
        where the spread term is the larger, the square root of
        :func:`_spread_distances`.
    error : float
        The estimated relative error of its covariance.
    far_mean : bool
        Whether the mean's distance is the larger term.
    """
    means, precision_diagonal, variances = _host_matrices(params, covariance_type)
    mean_terms = quadratic.mean_distances(
        means, np.asarray(params.precisions_cholesky, np.float64), covariance_type, xp=np
    )
    mean_errors = PRECISION_LOSS_FACTOR * mean_terms
    spread_terms = _spread_distances(means, precision_diagonal, variances)
    errors = np.finfo(dtype).eps * np.maximum(mean_errors, SPREAD_LOSS_FACTOR * spread_terms)
    component = int(np.nanargmax(errors)) if np.any(np.isfinite(errors)) else 0
    far_mean = bool(np.finfo(dtype).eps * mean_errors[component] >= errors[component])
    distance = mean_terms[component] if far_mean else spread_terms[component]
    return component, float(np.sqrt(distance)), float(errors[component]), far_mean


def expanded_form_is_accurate(params: GMMParams, covariance_type: str, dtype) -> bool:
    """Whether :func:`precision_loss` stays within ``PRECISION_LOSS_LIMIT`` (2 %).

    In float32 that holds for components up to about 145 standard deviations
    from the centre, in float64 up to about 3 million, and for covariances
    whose smallest variance along an oblique direction is above about
    ``100 eps |x|^2`` (float32: 1e-5 of the squared distance of the
    component's points from the centre). Fits and predictions beyond it use
    the direct form (:func:`block_sums_direct`).
    """
    return bool(precision_loss(params, covariance_type, dtype)[2] <= PRECISION_LOSS_LIMIT)


def resolution_loss(params: GMMParams, covariance_type: str, dtype) -> tuple[int, float]:
    """The relative error of a fit's smallest variances when its covariances are held in ``dtype``.

    Every entry of a covariance is rounded to about ``eps`` of itself (when
    it is stored, and when it is summed in the M-step); along an eigenvector
    ``v`` that moves the eigenvalue ``lambda`` by about
    ``eps * ||Sigma o v v^T||_F`` (entrywise product), whatever form
    computed it: the relative error is small for variances along the
    features (a constant feature) and large for a nearly singular oblique
    direction (collinear features), where the log-likelihood itself is then
    known to no better than half that error per sample. The eigenvectors are
    computed only where the bound ``eps * sum_i Sigma_ii P_ii`` of this
    estimate exceeds the limit (never for 'diag' and 'spherical', where it
    is ``eps * D``).

    Parameters
    ----------
    params : GMMParams
        Host arrays with covariances.
    covariance_type : str
    dtype : numpy.dtype

    Returns
    -------
    component : int
        The component with the least accurate variance.
    error : float
        ``RESOLUTION_FACTOR`` times the estimated relative error of that variance.
    """
    eps = float(np.finfo(dtype).eps)
    _, precision_diagonal, variances = _host_matrices(params, covariance_type)
    bounds = RESOLUTION_FACTOR * eps * np.sum(variances * precision_diagonal, axis=1)
    if not np.all(np.isfinite(bounds)) or np.max(bounds) <= RESOLUTION_LIMIT:
        component = int(np.nanargmax(bounds)) if np.any(np.isfinite(bounds)) else 0
        return component, float(bounds[component])
    n_components, n_features = variances.shape
    covariances = structures.get(covariance_type).full_matrices(
        np.asarray(params.covariances, np.float64), n_components, n_features
    )
    eigenvalues, eigenvectors = np.linalg.eigh(covariances)
    squares = np.square(eigenvectors)  # (K, D, D): squares[k, i, e] = v_e[i]^2
    spread = np.sqrt(np.einsum("kij,kie,kje->ke", np.square(covariances), squares, squares))
    # A variance rounded to zero or below has no accuracy at all.
    ratios = np.where(eigenvalues > 0, spread / np.where(eigenvalues > 0, eigenvalues, 1.0), np.inf)
    errors = RESOLUTION_FACTOR * eps * np.max(ratios, axis=1)
    component = int(np.argmax(errors))
    return component, float(errors[component])


def covariances_resolved(params: GMMParams, covariance_type: str, dtype) -> bool:
    """Whether :func:`resolution_loss` stays within ``RESOLUTION_LIMIT`` (10 %).

    It does not for collinear features in float32 with the default
    ``reg_covar`` (an error of 10 to 40 %; scikit-learn's float32 fit fails
    there, or returns a log-likelihood up to 1 nat per sample off its
    float64 fit); such fits are refused with the ill-defined-covariance
    error, which names ``dtype='float64'`` and ``reg_covar``. Always true
    where :func:`expanded_form_is_accurate` is (its measure bounds this one).
    """
    return bool(resolution_loss(params, covariance_type, dtype)[1] <= RESOLUTION_LIMIT)


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

    component, distance, error, far_mean = precision_loss(params, covariance_type, dtype)
    if error > PRECISION_LOSS_LIMIT:
        remedy = "Pass dtype='float64'. " if np.dtype(dtype) == np.float32 else ""
        message = v.PRECISION_LOSS_MESSAGE if far_mean else NEAR_SINGULAR_MESSAGE
        raise ValueError(
            message.format(
                prefix=v.PRECISION_LOSS_PREFIX,
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
