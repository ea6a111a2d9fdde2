"""What the constrained M-steps of :mod:`bayesgmm.structures._constrained` share.

Each model first forms the scatters ``W_k`` of the matching unconstrained
structure, then pools quantities over the active components (the Equal
letters of a model's name), keeps padded components out of every pooled
quantity and gives them identities, and runs its inner alternation as a
``lax.while_loop``. These pieces live here, apart from the models, so that
the diagonal models (:mod:`~bayesgmm.structures._constrained_diagonal`) and
the oriented ones (:mod:`~bayesgmm.structures._constrained_full`) share one
definition of each. Pure and unjitted; JAX only.
"""

from __future__ import annotations

import math

import jax.numpy as jnp
from jax import lax

from bayesgmm.structures._math import (
    _diag_m_step_covariances,
    _divisor,
    _full_scatter,
    _matrix_m_step_covariances_of,
    _pooled_weights,
)

MAX_INNER_ITERATIONS = 1000
"""Cap on the inner iterations of VEI, VEE, EVE, VVE and VEV.

mclust has none (``.Machine$integer.max``). The default tolerance stops VEI,
VEE and VEV after 5 to 30 iterations on ordinary data, EVE and VVE after 20
to a few hundred from ``D = I`` and a few to tens when continued from the
last EM iteration's orientation. The cap bounds the work of a pathological fit (a loop that
meets a NaN stops at once); under ``vmap`` every member of a batch runs as
long as the slowest.
"""

_full_covariances = _matrix_m_step_covariances_of(_full_scatter, per_component=True)


def _inner_tolerance(dtype) -> float:
    """mclust's inner tolerance, ``sqrt(.Machine$double.eps)``, at the working precision."""
    return math.sqrt(float(jnp.finfo(dtype).eps))


# -- Scatters, pooling and masking --------------------------------------------


def _counts(nk, active):
    """``nk`` with 1 for inactive components, so that per-component divisions stay finite."""
    return _divisor(nk, active)


def _pool(values, active):
    """Sum over the active components (axis 0) of per-component ``values``."""
    if active is None:
        return values.sum(axis=0)
    return jnp.where(active.reshape(active.shape + (1,) * (values.ndim - 1)), values, 0.0).sum(axis=0)


def _pooled_max(values, active):
    """Maximum over the active components of non-negative ``values`` (K,)."""
    if active is None:
        return values.max()
    return jnp.where(active, values, 0.0).max()


def _total(nk, active):
    """``n``: the summed weight of the active components."""
    return _pooled_weights(nk, active).sum()


def _geometric_mean(values):
    """``prod(values)^(1/D)`` over the last axis, through logarithms (no overflow)."""
    return jnp.exp(jnp.mean(jnp.log(values), axis=-1))


def _matrix_scatters(nk, means, second, reg_covar, active):
    """``W_k = nk_k S_k`` (K, D, D), ``S_k`` the regularised covariance 'full' computes.

    Inactive components get ``W_k = I`` (with count 1), finite in every
    per-component step and kept out of every pooled one.
    """
    return _counts(nk, active)[:, None, None] * _full_covariances(nk, means, second, reg_covar, active)


def _diagonal_scatters(nk, means, second, reg_covar, active):
    """The diagonals of ``W_k`` (K, D), from 'diag' moments; ones for inactive components."""
    return _counts(nk, active)[:, None] * _diag_m_step_covariances(nk, means, second, reg_covar, active)


def _identity_where_inactive(covariances, active):
    if active is None:
        return covariances
    identity = jnp.eye(covariances.shape[-1], dtype=covariances.dtype)
    return jnp.where(active[:, None, None], covariances, identity)


def _ones_where_inactive(covariances, active):
    if active is None:
        return covariances
    return jnp.where(active.reshape(active.shape + (1,) * (covariances.ndim - 1)), covariances, 1.0)


def _symmetric(matrices):
    return 0.5 * (matrices + jnp.swapaxes(matrices, -1, -2))


def _rotated(orientations, diagonals):
    """``D_k diag(a_k) D_k^T`` for (K, D, D) orientations and (K, D) diagonals, symmetrised."""
    return _symmetric(jnp.einsum("kij,kj,klj->kil", orientations, diagonals, orientations))


def _relative_change(old, new):
    """mclust's ``|old - new| / (1 + |new|)``, elementwise."""
    return jnp.abs(old - new) / (1.0 + jnp.abs(new))


def _iterate(step, state, tol: float, max_iter: int, strict: bool = True):
    """Run ``step`` on ``state = (iteration, error, ...)`` while ``error`` exceeds ``tol``.

    ``step(*state[2:])`` returns the next ``(error, ...)``. ``strict``
    continues while ``error > tol`` (mclust's VEI, VEE, EVE, VVE), otherwise
    while ``error >= tol`` (VEV). A NaN error stops the loop (a degenerate
    scatter), and so does ``max_iter``.
    """

    def cond(state):
        iteration, error = state[0], state[1]
        unconverged = error > tol if strict else error >= tol
        return unconverged & (iteration < max_iter)

    def body(state):
        return (state[0] + 1,) + step(*state[2:])

    return lax.while_loop(cond, body, state)

