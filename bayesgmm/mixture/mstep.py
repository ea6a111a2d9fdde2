"""The M-step: parameters from sufficient statistics, and from responsibilities at the start."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax

from bayesgmm import gaussian, structures
from bayesgmm.mixture.blocks import _axis_name, _over_mesh
from bayesgmm.mixture.compilation import CompiledPerVariant, pass_work
from bayesgmm.mixture.forms import (
    EXPANDED,
    EStepForm,
    FeatureSums,
    _scan_sum,
    centred_sums,
    responsibility_sums,
    to_statistics,
)
from bayesgmm.mixture.parameters import GMMParams, SufficientStats


def m_step(
    stats: SufficientStats, reg_covar: float, covariance_type: str, active=None, prior=None,
    previous=None, choice=None,
) -> GMMParams:
    """Maximum-likelihood (or, with ``prior``, MAP) parameters from sufficient statistics.

    Parameters
    ----------
    stats : SufficientStats
    reg_covar : float
        Added to the diagonal of every covariance.
    covariance_type : str
    active : Array of shape (n_components,) of bool, optional
        The active components (default: all). Inactive ones keep weight
        exactly zero, mean zero and identity covariance, whatever their
        statistics (see :func:`pad_components`).
    prior : PriorValues, optional
        One candidate's conjugate prior (:mod:`bayesgmm.mixture.prior`), its
        mean in the coordinates of ``stats``: the MAP M-step, the entry's
        ML M-step on prior-augmented statistics (its ``prior_form``). The
        weights have no prior, as in mclust. Without it, nothing of the
        prior is traced.
    previous : covariances, optional
        Those of the EM iteration before, for a structure whose M-step
        iterates from them (:attr:`CovarianceStructure.m_step_continues`);
        ignored by the others.
    choice : int Array of shape (), optional
        With a :class:`~bayesgmm.structures.Family` as ``covariance_type``:
        the member whose M-step runs (``lax.switch``; not batched, so only
        that member's M-step runs).

    Returns
    -------
    GMMParams; ``precisions_cholesky`` holds NaN where a covariance is not
    positive definite.
    """
    if isinstance(covariance_type, structures.Family):
        branches = [
            functools.partial(_member_m_step, reg_covar=reg_covar, covariance_type=name)
            for name in covariance_type.names
        ]
        return lax.switch(choice, branches, stats, active, prior, previous)
    dtype = stats.first.dtype
    nk = stats.weight_sum + 10 * jnp.finfo(dtype).eps
    divisor = nk
    if active is not None:
        nk = jnp.where(active, nk, 0.0)
        divisor = jnp.where(active, nk, 1.0)
    structure = structures.get(covariance_type)
    continued = {"previous": previous} if previous is not None and structure.m_step_continues else {}
    if prior is None:
        means = stats.first / divisor[:, None]
        covariances = structure.m_step_covariances(nk, means, stats.second, reg_covar, active, **continued)
    else:
        means, counts, second = structure.prior_form.augment(nk, stats.first, stats.second, prior, active)
        # The augmented moments are about zero: the ML M-step divides them by mclust's denominators.
        covariances = structure.m_step_covariances(counts, jnp.zeros_like(means), second, reg_covar, active,
                                                   **continued)
    precisions_cholesky = gaussian.precisions_cholesky_from_covariances(
        covariances, covariance_type
    )
    return GMMParams(nk / nk.sum(), means, covariances, precisions_cholesky)


def _member_m_step(stats, active, prior, previous, *, reg_covar, covariance_type):
    return m_step(stats, reg_covar, covariance_type, active, prior, previous)


def params_from_responsibilities(
    X_blocks,
    weight_blocks,
    resp_blocks,
    reg_covar: float,
    covariance_type: str,
    n_components: int,
    axis_name=None,
    form: EStepForm = EXPANDED,
    active=None,
    prior=None,
    choice=None,
) -> GMMParams:
    """M-step from given responsibilities (the initialisation).

    ``resp_blocks`` is (n_blocks, block_size, n_components) responsibilities,
    or (n_blocks, block_size) integer labels (-1: no component), expanded to
    one-hot rows one block at a time. With a ``centred`` form, a second pass takes
    the second moments about the means of the first (:func:`centred_sums`),
    as the direct-form EM loop does. ``active``, ``prior``, ``choice``: see :func:`m_step`.
    """
    def dense(resp):
        if jnp.issubdtype(resp.dtype, jnp.integer):
            return jax.nn.one_hot(resp, n_components, dtype=X_blocks.dtype)
        return resp

    sums = _scan_sum(
        lambda X, w, r: responsibility_sums(X, w, dense(r), covariance_type),
        X_blocks,
        weight_blocks,
        resp_blocks,
        axis_name=axis_name,
    )
    params = m_step(
        to_statistics(sums, X_blocks.shape[-1], covariance_type), reg_covar, covariance_type, active, prior,
        choice=choice,
    )
    if not form.centred:
        return params
    shift = params.means
    sums = _scan_sum(
        lambda X, w, r: FeatureSums(
            centred_sums(X, w, dense(r), shift, covariance_type), jnp.zeros_like(w), w
        ),
        X_blocks,
        weight_blocks,
        resp_blocks,
        axis_name=axis_name,
    )
    params = m_step(
        to_statistics(sums, X_blocks.shape[-1], covariance_type), reg_covar, covariance_type, active,
        prior_about(prior, shift), choice=choice,
    )
    return params._replace(means=params.means + shift)


def prior_about(prior, shift):
    """``prior`` for moments taken about ``shift`` (n_components, n_features): its mean moved by it.

    None (no prior, or moments about the origin) leaves it as it is.
    """
    return prior if prior is None or shift is None else prior._replace(mean=prior.mean - shift)


@functools.partial(
    CompiledPerVariant,
    static_argnames=("reg_covar", "covariance_type", "n_components", "mesh", "form"),
    # Every candidate's components: ``active`` is (n_candidates, n_components).
    one_pass_work=lambda X_blocks, weight_blocks, resp_blocks, active, *_, covariance_type, **__: (
        pass_work(X_blocks, active.size, covariance_type)
    ),
)
def initial_params_from_responsibilities(
    X_blocks,
    weight_blocks,
    resp_blocks,
    active,
    prior=None,
    choice=None,
    *,
    reg_covar: float,
    covariance_type: str,
    n_components: int,
    mesh=None,
    form: EStepForm = EXPANDED,
) -> GMMParams:
    """:func:`params_from_responsibilities` for a batch of responsibilities.

    ``resp_blocks`` has shape (n_blocks, block_size, n_init, n_components), or
    (n_blocks, block_size, n_init) integer labels, so that it shards along the
    block axis like the data; ``active`` (n_init, n_components) marks each
    restart's active components and ``prior`` (PriorValues with a leading
    axis n_init, or None) its prior; ``choice`` (shared by the batch) the
    member of a :class:`~bayesgmm.structures.Family` (:func:`m_step`).
    """

    def batched(X_blocks, weight_blocks, resp_blocks, active, prior, choice):
        return jax.vmap(
            lambda resp, mask, own_prior: params_from_responsibilities(
                X_blocks, weight_blocks, resp, reg_covar, covariance_type, n_components,
                _axis_name(mesh), form, mask, own_prior, choice,
            ),
            in_axes=(2, 0, 0),
        )(resp_blocks, active, prior)

    return _over_mesh(batched, mesh, 3, 3)(X_blocks, weight_blocks, resp_blocks, active, prior, choice)
