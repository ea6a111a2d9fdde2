"""Label switching resolved: each draw permuted to agree with a reference (Stephens, 2000).

The likelihood does not change when the components are permuted, so
chains may carry different labellings. Each draw is permuted to agree with
a reference by Stephens' KL criterion on the responsibilities of (a subset
of) the training points, with the Hungarian solver of
:mod:`bayesgmm.alignment`; the reference is refined to the mean relabelled
responsibilities until the permutations stop changing.
"""

from __future__ import annotations

import numpy as np

from bayesgmm import alignment, structures
from bayesgmm.bayes.model import (
    component_sites,
)
from bayesgmm.bayes.nuts import PosteriorRun
from bayesgmm.bayes.posterior import flatten_chains
from bayesgmm.mixture import parameters

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
    flat = permute_components(flatten_chains(run.trace.samples), perms, covariance_type)
    samples = {name: value.reshape(by_chain + value.shape[1:]) for name, value in flat.items()}
    params = permute_params(run.params, perms, covariance_type)
    return samples, params, perms.reshape(by_chain + perms.shape[1:])
