"""Label switching resolved: each draw permuted to agree with a reference (Stephens, 2000).

The likelihood does not change when the components are permuted, so
chains may carry different labellings. Each draw is permuted to agree with
a reference by Stephens' KL criterion on the responsibilities of (a subset
of) the training points, with the Hungarian solver of
:mod:`bayesgmm.alignment`; the reference is refined to the mean relabelled
responsibilities until the permutations stop changing.

:class:`bayesgmm.BayesianGaussianMixture` relabels its runs with
:func:`relabel_run`; :func:`relabel_draws` does the same for draws of
:func:`bayesgmm.bayes.model.gmm_model` that users sampled themselves (e.g.
with ``numpyro.infer.MCMC``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

import numpy as np

from bayesgmm import _validation as v
from bayesgmm import alignment, structures
from bayesgmm.bayes import posterior
from bayesgmm.bayes.model import (
    component_sites,
)
from bayesgmm.bayes.nuts import PosteriorRun
from bayesgmm.mixture import parameters

__all__ = [
    "RELABEL_MAX_POINTS",
    "RELABEL_MAX_ITER",
    "RelabelledDraws",
    "relabel_draws",
    "stephens_permutations",
    "permute_components",
    "permute_params",
    "relabel_points",
    "reference_responsibilities",
    "relabel_run",
]

# Training points on which draws are relabelled (a fixed random subset above this).
RELABEL_MAX_POINTS = 1000

RELABEL_MAX_ITER = 20


# --------------------------------------------------------------------------
# Relabelling
# --------------------------------------------------------------------------


def stephens_permutations(log_resp, reference, point_weight=None, max_iter: int = RELABEL_MAX_ITER):
    """Stephens' relabelling: permute each draw's responsibilities towards a reference.

    The cost of giving component ``j`` of draw ``s`` the reference label ``i``
    is the (weighted) cross-entropy ``-sum_n w_n ref[n, i] log q_s[n, j]``, the
    draw-dependent part of ``KL(ref || q_s permuted)``. After each assignment
    the reference becomes the mean of the relabelled responsibilities; the
    loop stops when no permutation changes.

    Parameters
    ----------
    log_resp : array of shape (n_draws, n_points, K)
        Per-draw log responsibilities.
    reference : array of shape (n_points, K)
        Starting reference probabilities (e.g. the EM fit's responsibilities).
    point_weight : array of shape (n_points,), optional
        Weight of each point in the cost (the sample weights).
    max_iter : int, default=20

    Returns
    -------
    perms : ndarray of int of shape (n_draws, K)
        ``aligned[s, ..., i] = draw[s, ..., perms[s, i]]``.
    reference : ndarray of shape (n_points, K)
        The final reference (mean relabelled responsibilities).
    """
    # A floor keeps 0 * log(0) finite when a responsibility underflows.
    log_resp = np.maximum(np.asarray(log_resp, dtype=np.float64), np.log(np.finfo(float).tiny))
    reference = np.asarray(reference, dtype=np.float64)
    if point_weight is not None:
        reference = reference * np.asarray(point_weight, dtype=np.float64)[:, None]
    perms = None
    for _ in range(max_iter):
        costs = -np.einsum("ni,snj->sij", reference, log_resp)
        new_perms = alignment.permutations_from_costs(costs)
        if perms is not None and np.array_equal(new_perms, perms):
            break
        perms = new_perms
        reference = np.exp(alignment.apply_permutations(log_resp, perms, axis=2)).mean(axis=0)
        if point_weight is not None:
            reference = reference * np.asarray(point_weight, dtype=np.float64)[:, None]
    return perms, reference


def permute_components(samples: dict, perms, covariance_type: str) -> dict:
    """Apply per-draw permutations to every component-indexed site.

    Parameters
    ----------
    samples : dict
        Site values with one leading draw axis (n_draws, ...).
    perms : array of int of shape (n_draws, K)
    covariance_type : str

    Returns
    -------
    dict
        New arrays; the shared 'tied' covariance sites are copied unchanged.
    """
    n_features = np.shape(samples["means"])[-1]
    permuted = component_sites(covariance_type, n_features)
    return {
        name: alignment.apply_permutations(value, perms, axis=1) if name in permuted
        else np.array(value)
        for name, value in samples.items()
    }


def relabel_points(X, sample_weight, max_points: int = RELABEL_MAX_POINTS):
    """The training points (and weights) used to relabel: positive weight, at most ``max_points``.

    A fixed random subset (seed 0) keeps the relabelling cost bounded and
    deterministic for large data.
    """
    X = np.asarray(X)
    weight = np.ones(X.shape[0]) if sample_weight is None else np.asarray(sample_weight)
    index = np.flatnonzero(weight > 0)
    if index.size > max_points:
        index = np.sort(np.random.default_rng(0).choice(index, max_points, replace=False))
    return X[index], weight[index]


def permute_params(params: parameters.GMMParams, perms, covariance_type: str) -> parameters.GMMParams:
    """Apply per-draw permutations to draws of mixture parameters (leading draw axis)."""
    def permute(leaf, component_indexed=True):
        if not component_indexed:
            return np.array(leaf)
        return alignment.apply_permutations(leaf, perms, axis=1)

    component_axis = structures.get(covariance_type).component_axis
    return parameters.GMMParams(
        weights=permute(params.weights),
        means=permute(params.means),
        covariances=permute(params.covariances, component_axis),
        precisions_cholesky=permute(params.precisions_cholesky, component_axis),
    )


def reference_responsibilities(run: PosteriorRun) -> np.ndarray:
    """The relabelling's starting reference: the reference fit's, else the best draw's.

    The best draw is the one of highest log joint density (lowest potential
    energy).

    Returns
    -------
    proba : ndarray of shape (n_points, K)
    """
    if run.reference_log_resp is not None:
        return np.exp(run.reference_log_resp)
    best = int(np.argmin(np.asarray(run.trace.potential_energy).reshape(-1)))
    return np.exp(run.log_resp[best])


def relabel_run(run: PosteriorRun, point_weight, covariance_type: str):
    """Relabel every draw of a run (Stephens) and permute all component-indexed sites.

    Parameters
    ----------
    run : PosteriorRun
    point_weight : array of shape (n_points,)
        Weights of the relabelling points (:func:`relabel_points`).
    covariance_type : str

    Returns
    -------
    samples : dict
        The run's sites with components permuted per draw, leading axes
        (num_chains, num_samples).
    params : GMMParams
        ``run.params`` permuted alike (leading axis num_chains * num_samples).
    perms : ndarray of int of shape (num_chains, num_samples, K)
    """
    by_chain = np.shape(run.trace.diverging)
    perms, _ = stephens_permutations(run.log_resp, reference_responsibilities(run), point_weight)
    samples = _permute_draws(run.trace.samples, perms, covariance_type, by_chain)
    params = permute_params(run.params, perms, covariance_type)
    return samples, params, perms.reshape(by_chain + perms.shape[1:])


def _permute_draws(samples: dict, perms, covariance_type: str, leading: tuple) -> dict:
    """:func:`permute_components` on draws with the leading axes ``leading`` (kept)."""
    flat = {name: np.reshape(value, (-1,) + np.shape(value)[len(leading):])
            for name, value in samples.items()}
    permuted = permute_components(flat, perms, covariance_type)
    return {name: value.reshape(leading + value.shape[1:]) for name, value in permuted.items()}


class RelabelledDraws(NamedTuple):
    """The result of :func:`relabel_draws`: the relabelled sites and each draw's permutation."""

    samples: dict  # site name -> ndarray, the input's shapes, components permuted per draw
    permutations: np.ndarray  # leading + (K,): relabelled[..., i] = raw[..., permutations[..., i]]


def _check_draws(samples, covariance_type: str) -> tuple:
    """The draws as NumPy arrays, and their leading axes; an error if they are not gmm_model's."""
    if not isinstance(samples, Mapping):
        raise TypeError(
            f"samples must be a dict of site name -> array (mcmc.get_samples() or "
            f"mcmc.get_samples(group_by_chain=True)), got {type(samples).__name__}."
        )
    if "weight_sticks" in samples:
        raise ValueError(
            "samples come from gmm_model with n_active (padded components); relabel draws "
            "of gmm_model without n_active, whose sites are the K components' own."
        )
    means = np.asarray(samples.get("means", np.empty(0)))
    if "weights" not in samples or means.ndim not in (3, 4):
        raise ValueError(
            "samples must hold the sites 'weights' and 'means' of gmm_model, with 'means' of "
            "shape (n_draws, K, D) or (num_chains, num_samples, K, D)."
        )
    leading, (n_components, n_features) = means.shape[:-2], means.shape[-2:]
    sites = structures.get(covariance_type).covariance_sites(n_features)
    expected = {"weights": (n_components,), "means": (n_components, n_features)}
    expected.update({site.name: site.shape(n_components, n_features) for site in sites})
    draws = {}
    for name, shape in expected.items():
        if name not in samples:
            raise ValueError(
                f"samples has no site {name!r}: covariance_type={covariance_type!r} with "
                f"{n_features} feature(s) has the sites {sorted(expected)}."
            )
        value = np.asarray(samples[name])
        if value.shape != leading + shape:
            raise ValueError(
                f"samples[{name!r}] has shape {value.shape}, expected {leading + shape} "
                f"(the leading axes of 'means', then the site's shape for "
                f"covariance_type={covariance_type!r})."
            )
        if not np.all(np.isfinite(value)):
            raise ValueError(f"samples[{name!r}] contains NaN or infinity.")
        draws[name] = value
    return draws, leading


def relabel_draws(samples, X, *, covariance_type: str = "full", sample_weight=None,
                  max_iter: int = RELABEL_MAX_ITER) -> RelabelledDraws:
    """Resolve label switching in draws of :func:`bayesgmm.bayes.model.gmm_model` sampled by you.

    The relabelling :class:`bayesgmm.BayesianGaussianMixture` applies to its
    own runs (:func:`stephens_permutations`): each draw's components are
    permuted to agree with a common reference by Stephens' criterion on the
    responsibilities of (at most :data:`RELABEL_MAX_POINTS` of) the points
    ``X``, starting from the draw of highest likelihood. Chains that sampled
    different labellings then agree, so r_hat, ESS and posterior means of
    the component-indexed sites become meaningful.

    Parameters
    ----------
    samples : dict
        Site name -> array: the latent sites of ``gmm_model`` (``weights``,
        ``means`` and the covariance sites of ``covariance_type``, e.g.
        ``scales`` and ``corr_cholesky`` for 'full'), with leading axes
        (num_chains, num_samples) as ``mcmc.get_samples(group_by_chain=True)``
        returns them, or (n_draws,) as ``mcmc.get_samples()`` does; NumPy or
        JAX arrays. Other entries (e.g. deterministic sites) are copied
        unchanged.
    X : array-like of shape (n_samples, n_features)
        The data the draws were sampled on.
    covariance_type : {'full', 'tied', 'diag', 'spherical'}, default='full'
        The ``covariance_type`` given to ``gmm_model``.
    sample_weight : array-like of shape (n_samples,), default=None
        The weights given to ``gmm_model``, if any.
    max_iter : int, default=20
        Iterations of Stephens' algorithm at most.

    Returns
    -------
    RelabelledDraws
        ``samples``: the draws with their component-indexed sites permuted
        (same keys and shapes; the 'tied' covariance sites are shared and
        unchanged); ``permutations``: int array of shape ``leading + (K,)`` with
        ``relabelled[..., i] = raw[..., permutations[..., i]]``.

    Raises
    ------
    TypeError
        If ``samples`` is not a mapping.
    ValueError
        Before any work, if a site is missing, of the wrong shape or not
        finite, if the draws come from the padded model (``n_active``), or if
        ``X`` has other features than the draws.

    Examples
    --------
    >>> from numpyro.infer import MCMC, NUTS
    >>> mcmc = MCMC(NUTS(gmm_model), num_warmup=500, num_samples=500, num_chains=4)  # doctest: +SKIP
    >>> mcmc.run(jax.random.key(0), X, n_components=2)  # doctest: +SKIP
    >>> draws = relabel_draws(mcmc.get_samples(group_by_chain=True), X)  # doctest: +SKIP
    >>> az.rhat(az.from_dict(posterior=draws.samples))  # doctest: +SKIP
    """
    covariance_type = v.check_choice("covariance_type", covariance_type, v.COVARIANCE_TYPES)
    max_iter = v.check_int("max_iter", max_iter, 1)
    draws, leading = _check_draws(samples, covariance_type)
    dtype = draws["means"].dtype if draws["means"].dtype == np.float32 else np.dtype(np.float64)
    X = v.check_array(X, dtype)
    if X.shape[1] != draws["means"].shape[-1]:
        raise ValueError(f"X has {X.shape[1]} features, but the draws' means have "
                         f"{draws['means'].shape[-1]}: pass the data the draws were sampled on.")
    weights = None if sample_weight is None else v.check_sample_weight(
        sample_weight, X.shape[0], dtype)
    X_relabel, point_weight = relabel_points(X, weights)
    flat = {name: value.reshape((-1,) + value.shape[len(leading):]).astype(dtype, copy=False)
            for name, value in draws.items()}
    params = posterior.posterior_params(flat, covariance_type)
    log_resp = posterior.log_responsibilities(X_relabel, params, covariance_type)
    log_likelihood = posterior.pointwise_log_likelihood(X_relabel, params, covariance_type)
    best = int(np.argmax(log_likelihood @ point_weight))
    perms, _ = stephens_permutations(log_resp, np.exp(log_resp[best]), point_weight, max_iter)
    relabelled = dict(samples)
    relabelled.update(_permute_draws(draws, perms, covariance_type, leading))
    return RelabelledDraws(relabelled, perms.reshape(leading + perms.shape[1:]))
