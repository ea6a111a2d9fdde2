"""Where chains start: an EM fit, moved by about one posterior standard deviation; padding.

Each chain starts at the EM fit moved by about one approximate posterior
standard deviation (:func:`em_chain_start`), so chains start in the main
mode but not at the same point (which r_hat needs). Fits carry their
components padded to a bucket (:func:`component_bucket`, :func:`pad_chain_start`)
and the number of active components as data, so fits of different
``n_components`` share one compiled sampler.
"""

from __future__ import annotations

import types
from typing import NamedTuple

import jax.numpy as jnp
import numpy as np

from bayesgmm import alignment, structures
from bayesgmm.bayes.model import (
    component_sites,
    padded_sticks,
)
from bayesgmm.mixture import driver, parameters

# Shrinkage of the EM correlations towards the identity before starting chains there.
CORRELATION_SHRINKAGE = 1e-6

# Fisher information per point of the unconstrained coordinates of each kind of
# covariance site (bayesgmm.structures.SITE_KINDS): a component holding n_k
# points has a posterior standard deviation of about 1 / sqrt(information * n_k)
# there, 1 / sqrt(2 n_k) for log standard deviations and about 1 / sqrt(n_k) for
# the unconstrained correlations.
INFORMATION_PER_POINT = types.MappingProxyType(
    {"feature_scales": 2.0, "common_scale": 2.0, "lkj_cholesky": 1.0})

# k-means restarts of the EM fit that starts the chains (see fit_em).
EM_START_RESTARTS = 3

# NUTS fits carry their components padded to a multiple of COMPONENT_BUCKET
# (inactive ones with weight exactly zero), so that a sweep over n_components
# = 1..8 compiles one sampler instead of eight; compiling one costs 10-15 s on
# 2 CPU cores. Every gradient then evaluates the padded components, over every
# leapfrog step of every iteration of every chain: padding applies only while
# n_samples * bucket * width (the structure's work_per_component: D**2 for
# 'full', D otherwise) times the chains' iterations stays within
# PADDING_WORK_LIMIT. The limit is from benchmarks/loo_sweep.py (RESULTS.md):
# a LOO comparison over K = 2..5 of the document's 800 points in 2-D 'full'
# with the defaults (4 chains x 1000 iterations, 1.0e8 on this scale) took
# 356 s padded and 265 s unpadded, the padded components costing about four
# times the compilations they saved; at a quarter of that work they break
# even.
COMPONENT_BUCKET = 8

PADDING_WORK_LIMIT = 1 << 25


# --------------------------------------------------------------------------
# Initial values
# --------------------------------------------------------------------------


def fit_em(X, sample_weight, *, n_components, covariance_type, random_state, dtype,
           reg_covar=1e-6, missing="raise") -> parameters.EMResult:
    """The maximum-likelihood fit that starts the chains and seeds the relabelling.

    The best of :data:`EM_START_RESTARTS` k-means starts: chains (and SVI's
    guide) stay in the mode they start in, and a single k-means start was
    seen to land in a poor local optimum (two true clusters merged) at
    N = 100k; restarts are batched, so they cost little. ``missing='marginalize'``
    fits data with NaN entries by EM on the observed coordinates.
    """
    return driver.fit_gmm(
        X, sample_weight, n_components=n_components, covariance_type=covariance_type,
        reg_covar=reg_covar, random_state=random_state, dtype=dtype, n_init=EM_START_RESTARTS,
        missing=missing,
    )


class ChainStart(NamedTuple):
    """Where the chains start: a centre and per-site jitter in the unconstrained space.

    Chain ``c`` starts at ``unconstrain(center[c]) + noise_scale * eps_c`` with
    standard normal ``eps_c``; the jitter is drawn inside the compiled run, from
    the chain's key.
    """

    center: dict  # site -> (num_chains, *site_shape) constrained values
    noise_scale: dict  # site -> array broadcastable to the site's unconstrained shape


def em_chain_start(params: parameters.GMMParams, total_weight: float, *, covariance_type: str,
                   num_chains: int, spread: float = 1.0) -> ChainStart:
    """Start the chains about ``spread`` posterior standard deviations from the EM fit.

    The standard deviations are the large-sample ones of a component holding
    ``n_k = total_weight * weights[k]`` points: ``std_k / sqrt(n_k)`` for the
    means, ``1 / sqrt(2 n_k)`` for the log scales and about ``1 / sqrt(n_k)``
    for the unconstrained correlations and weights.

    Parameters
    ----------
    params : GMMParams
        The EM fit (NumPy arrays).
    total_weight : float
        The number of points (sum of the sample weights).
    covariance_type : {'full', 'tied', 'diag', 'spherical'}
    num_chains : int
    spread : float, default=1.0
        Multiplies every jitter; 0 starts all chains at the EM fit.

    Returns
    -------
    ChainStart
        Every chain centred on the EM fit.
    """
    structure = structures.get(covariance_type)
    means = np.asarray(params.means)
    n_features = means.shape[1]
    counts = np.maximum(total_weight * np.asarray(params.weights), 1.0)
    covariances = np.asarray(params.covariances)
    variances = structure.feature_variances(covariances, n_features)
    site_values = structure.sites_from_covariances(covariances, CORRELATION_SHRINKAGE)
    center = {"weights": np.asarray(params.weights), "means": means}
    noise_scale = {
        "weights": spread / np.sqrt(counts.min()),
        "means": spread * np.sqrt(variances / counts[:, None]),
    }
    for site in structure.covariance_sites(n_features):
        center[site.name] = site_values[site.name]
        noise_scale[site.name] = spread / np.sqrt(
            INFORMATION_PER_POINT[site.kind] * _site_counts(counts, site))
    dtype = means.dtype
    return ChainStart(
        {name: np.broadcast_to(np.asarray(value, dtype), (num_chains,) + np.shape(value))
         for name, value in center.items()},
        {name: np.asarray(value, dtype) for name, value in noise_scale.items()},
    )


def permute_chain_start(start: ChainStart, perms, covariance_type: str) -> ChainStart:
    """Give chain ``c`` the starting labelling permuted by ``perms[c]``.

    The chains then sample equivalent posterior modes under different labels,
    which is how label switching is demonstrated (and its fix tested).

    Parameters
    ----------
    start : ChainStart
    perms : array of int of shape (num_chains, K)
    covariance_type : str

    Returns
    -------
    ChainStart
    """
    n_features = np.shape(start.center["means"])[-1]
    sites = component_sites(covariance_type, n_features)
    return start._replace(center={
        name: alignment.apply_permutations(value, perms, axis=1) if name in sites else value
        for name, value in start.center.items()
    })


def component_bucket(n_components: int, n_samples: int, n_features: int,
                     covariance_type: str, n_iterations: int) -> int:
    """The size of the component axis a NUTS fit of ``n_components`` carries.

    ``n_components`` rounded up to a multiple of :data:`COMPONENT_BUCKET`
    while the padded likelihood work of the run, ``n_samples * bucket *
    width * n_iterations`` (``width``: the structure's
    ``work_per_component``, D**2 for 'full', D otherwise), stays within
    :data:`PADDING_WORK_LIMIT`; beyond it the padded components would cost
    more sampling time than the compilation they save, and ``n_components``
    is kept. Every ``n_components`` of one bucket shares one compiled sampler.

    Parameters
    ----------
    n_components : int
    n_samples, n_features : int
        The training data's shape.
    covariance_type : str
    n_iterations : int
        Iterations of all chains together, ``num_chains * (num_warmup +
        num_samples)``.

    Returns
    -------
    n_padded : int
    """
    padded = -(-int(n_components) // COMPONENT_BUCKET) * COMPONENT_BUCKET
    width = structures.get(covariance_type).work_per_component(n_features)
    if n_samples * padded * width * max(int(n_iterations), 1) > PADDING_WORK_LIMIT:
        return int(n_components)
    return padded


def _pad_leading(value, n_padded, axis=0):
    """Pad ``axis`` to ``n_padded`` with copies of entry 0 (valid placeholder values)."""
    value = np.asarray(value)
    missing = n_padded - value.shape[axis]
    if missing <= 0:
        return value
    filler = np.repeat(np.take(value, [0], axis=axis), missing, axis=axis)
    return np.concatenate([value, filler], axis=axis)


def pad_chain_start(start: ChainStart, n_padded: int, covariance_type: str) -> ChainStart:
    """A start of the unpadded model of K components, for the model padded to ``n_padded``.

    The start of :func:`em_chain_start` (or :func:`permute_chain_start`)
    in the sites of :func:`bayesgmm.bayes.model.gmm_model` with ``n_active = K``:
    the weights become the stick coordinates ``weight_sticks`` (the jitter
    scale is unchanged: it was already applied in those coordinates), and the
    component-indexed sites get ``n_padded - K`` placeholder components, which
    :func:`run_nuts` replaces by a prior draw.

    Parameters
    ----------
    start : ChainStart
        Centre arrays of shape (num_chains, K, ...).
    n_padded : int
        The bucket (>= K).
    covariance_type : str

    Returns
    -------
    ChainStart
    """
    weights = np.asarray(start.center["weights"])
    n_components = weights.shape[-1]
    n_features = np.shape(start.center["means"])[-1]
    padded_sites = set(component_sites(covariance_type, n_features)) - {"weights"}
    log_weights = np.log(np.maximum(_pad_leading(weights, n_padded, axis=1),
                                    np.finfo(weights.dtype).tiny))
    center = {"weight_sticks": np.asarray(padded_sticks(jnp.asarray(log_weights),
                                                        n_components), weights.dtype)}
    noise_scale = {"weight_sticks": start.noise_scale["weights"]}
    for name, value in start.center.items():
        if name == "weights":
            continue
        padded = name in padded_sites
        center[name] = _pad_leading(value, n_padded, axis=1) if padded else np.asarray(value)
        noise = np.asarray(start.noise_scale[name])
        noise_scale[name] = _pad_leading(noise, n_padded) if padded and noise.ndim else noise
    return ChainStart(center, noise_scale)


def pad_params(params: parameters.GMMParams, n_padded: int, covariance_type: str) -> parameters.GMMParams:
    """``params`` of K components with ``n_padded - K`` components of weight zero appended.

    The appended components copy component 0's other parameters (any valid
    values do: a zero weight makes their log density ``-inf``).
    """
    shared = not structures.get(covariance_type).component_axis
    weights = np.asarray(params.weights)
    return parameters.GMMParams(
        weights=np.concatenate([weights, np.zeros(n_padded - weights.shape[-1], weights.dtype)]),
        means=_pad_leading(params.means, n_padded),
        covariances=np.asarray(params.covariances) if shared
        else _pad_leading(params.covariances, n_padded),
        precisions_cholesky=np.asarray(params.precisions_cholesky) if shared
        else _pad_leading(params.precisions_cholesky, n_padded),
    )


def _site_counts(counts, site):
    """The points informing each of a site's entries, broadcastable to its unconstrained shape.

    A shared site is informed by all points. A component-indexed site by its
    component's ``counts`` (K,), shaped (K, 1) when it has event axes: the
    unconstrained coordinates of one component's vector or correlation
    factor are one vector.
    """
    if not site.component_axis:
        return counts.sum()
    return counts.reshape(counts.shape + (1,) * min(len(site.event_dims), 1))


def gaussian_variances(covariances, covariance_type: str, n_features: int):
    """Per-component, per-dimension variances, shape (K, D) ((1, D) for 'tied')."""
    return structures.get(covariance_type).feature_variances(covariances, n_features)
