"""M-steps of mclust's constrained covariances ``Sigma_k = lambda_k D_k A_k D_k^T``.

Celeux & Govaert (1995) write each covariance as a volume ``lambda_k`` (a
positive scalar, ``det(Sigma_k)^(1/D)``), a shape ``A_k`` (diagonal, det 1)
and an orientation ``D_k`` (orthogonal), and name a model by which of the
three are Equal across components, Variable, or the Identity. R's mclust fits
fourteen of them; four are scikit-learn's types ('VII' = 'spherical', 'VVI' =
'diag', 'EEE' = 'tied', 'VVV' = 'full') and this module adds the other ten,
one function each, with the signature of
:attr:`bayesgmm.structures.CovarianceStructure.m_step_covariances`::

    m_step_covariances(nk (K,), means (K, D), second, reg_covar, active=None) -> covariances

in one of the existing representations: ``'spherical'`` (covariances (K,),
``second`` (K, D) the mean of each component's diagonal repeated D times),
``'diag'`` ((K, D), ``second`` (K, D)) or ``'full'`` ((K, D, D), ``second``
(K, D, D)); ``second`` holds the raw weighted moments ``sum_i r_ik x_i x_i^T``
(or their diagonals). :data:`M_STEPS` maps each name to its representation and
function, :data:`N_COVARIANCE_PARAMETERS` every one of the fourteen to its
free-parameter count (mclust's ``nVarParams``).

Every function first forms the scatter each component has in the matching
unconstrained structure, ``W_k = nk_k (second_k / nk_k - mu_k mu_k^T +
reg_covar I)`` (its diagonal for 'diag', its trace over D for 'spherical'),
and then maximises ``sum_k -nk_k/2 log det Sigma_k - 1/2 tr(W_k Sigma_k^-1)``
within the model. So the regularisation is the one the four existing types
use (with the same W_k, 'EEE' is ``sum_k W_k / n`` and 'VVV' ``W_k / nk_k``,
exactly what 'tied' and 'full' compute), and the constraints hold exactly,
whatever ``reg_covar``.

The closed forms (EII, EEI, EVI, EEV, EVV) and the iterations (VEI, VEE, EVE,
VVE, VEV) follow mclust's Fortran (``msevi``, ``msvei``, ... in
``src/mclust.f`` and ``src/mclust2.f``, unchanged from version 6.0 to 6.1):
the same starting values and the same order of updates, with mclust's default
inner tolerance (``emControl()$tol[2] = sqrt(.Machine$double.eps)``) taken at
the working precision, ``sqrt(finfo(dtype).eps)``, and a cap of
:data:`MAX_INNER_ITERATIONS` where mclust has ``.Machine$integer.max``. Two
differences are deliberate:

- VEE, EVE and VVE stop, as mclust's VEI and VEV do, when no volume, shape
  entry or orientation entry changes by more than the tolerance relative to
  ``1 + |value|``; mclust stops them on the relative change of a likelihood
  target, which leaves its covariances 1e-5 to 1e-4 (relative) short of the
  maximum, where this rule leaves them within about 1e-8.
- VVE's orientation steps weigh each component by its covariance's
  eigenvalues, not by its shape only (see :func:`vve_m_step_covariances`), so
  that it is the maximum-likelihood VVE.

mclust's refusals (it returns NA for a scatter whose smallest eigenvalue is
below ``sqrt(eps)``, an absolute threshold) are not reproduced: a scatter that
is not positive definite gives NaN covariances or covariances that are not
positive definite, which the caller reports as degenerate, as for the other
types. In one dimension mclust fits only 'E' and 'V'; here every model still
runs and comes out as one of them (EII or VII, by its volume letter).

``active``, a boolean (K,) mask, marks components padded up to a bucket
(``nk`` 0, zero moments): their covariances are identities (ones for 'diag'
and 'spherical'), they enter no pooled quantity (``n``, a common shape,
volume or orientation, a stopping criterion), and the active components get
the covariances they get without the padding. Without it no masking
operation is traced. The functions are pure and unjitted, so that they
compose under ``jit`` and ``vmap`` (the iterations are ``lax.while_loop``\\ s,
which ``vmap`` runs until every member of the batch has stopped); JAX
only.

Examples
--------
>>> import jax.numpy as jnp
>>> from bayesgmm.structures import _constrained
>>> nk = jnp.array([2.0, 2.0])
>>> means = jnp.zeros((2, 2))
>>> second = jnp.array([[1.0, 4.0], [4.0, 1.0]])   # 'diag' moments
>>> _constrained.evi_m_step_covariances(nk, means, second, 0.0).tolist()  # volumes 1
[[0.5, 2.0], [2.0, 0.5]]
>>> _constrained.N_COVARIANCE_PARAMETERS["VEV"](3, 4)
24.0
"""

from __future__ import annotations

import math
import types

import jax.numpy as jnp
from jax import lax
from jax.scipy.linalg import cho_solve

from bayesgmm.structures._math import (
    _diag_m_step_covariances,
    _divisor,
    _full_scatter,
    _matrix_m_step_covariances_of,
    _pooled_weights,
    _spherical_m_step_covariances,
)

__all__ = [
    "MAX_INNER_ITERATIONS",
    "M_STEPS",
    "N_COVARIANCE_PARAMETERS",
    "eei_m_step_covariances",
    "eev_m_step_covariances",
    "eii_m_step_covariances",
    "eve_m_step_covariances",
    "evi_m_step_covariances",
    "evv_m_step_covariances",
    "vee_m_step_covariances",
    "vei_m_step_covariances",
    "vev_m_step_covariances",
    "vve_m_step_covariances",
]

MAX_INNER_ITERATIONS = 1000
"""Cap on the inner iterations of VEI, VEE, EVE, VVE and VEV.

mclust has none (``.Machine$integer.max``). The default tolerance stops VEI,
VEE and VEV after 5 to 30 iterations on ordinary data, EVE and VVE (whose
orientation steps are minorise-maximise steps, linearly convergent) after 20
to a few hundred. The cap bounds the work of a pathological fit (a loop that
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


# -- Spherical and diagonal representations --------------------------------------


def eii_m_step_covariances(nk, means, second, reg_covar, active=None):
    """EII, ``lambda I``: one variance for all components, ``sum_k tr(W_k) / (D n)``.

    Parameters
    ----------
    nk : Array of shape (n_components,)
        Summed responsibilities (0 for inactive components).
    means : Array of shape (n_components, n_features)
    second : Array of shape (n_components, n_features)
        'spherical' moments: each component's mean over features of
        ``sum_i r_ik x_i^2``, repeated over the features.
    reg_covar : float
        Added to every variance before the pooling.
    active : Array of shape (n_components,) of bool, optional

    Returns
    -------
    covariances : Array of shape (n_components,)
        The same variance everywhere (1 for inactive components).
    """
    traces = _counts(nk, active) * _spherical_m_step_covariances(nk, means, second, reg_covar, active)
    variance = _pool(traces, active) / _total(nk, active)
    return _ones_where_inactive(jnp.broadcast_to(variance, nk.shape), active)


def eei_m_step_covariances(nk, means, second, reg_covar, active=None):
    """EEI, ``lambda B``: one diagonal covariance for all components, ``diag(sum_k W_k) / n``.

    Parameters
    ----------
    nk : Array of shape (n_components,)
    means : Array of shape (n_components, n_features)
    second : Array of shape (n_components, n_features)
        'diag' moments ``sum_i r_ik x_i^2``.
    reg_covar : float
    active : Array of shape (n_components,) of bool, optional

    Returns
    -------
    covariances : Array of shape (n_components, n_features)
    """
    scatters = _diagonal_scatters(nk, means, second, reg_covar, active)
    variances = _pool(scatters, active) / _total(nk, active)
    return _ones_where_inactive(jnp.broadcast_to(variances, scatters.shape), active)


def evi_m_step_covariances(nk, means, second, reg_covar, active=None):
    """EVI, ``lambda B_k``: equal volumes, diagonal shapes of their own (closed form).

    ``B_k = diag(W_k) / det(diag(W_k))^(1/D)`` and ``lambda = sum_k
    det(diag(W_k))^(1/D) / n`` (mclust's ``msevi``).

    Parameters
    ----------
    nk : Array of shape (n_components,)
    means : Array of shape (n_components, n_features)
    second : Array of shape (n_components, n_features)
        'diag' moments.
    reg_covar : float
    active : Array of shape (n_components,) of bool, optional

    Returns
    -------
    covariances : Array of shape (n_components, n_features)
    """
    scatters = _diagonal_scatters(nk, means, second, reg_covar, active)
    volumes = _geometric_mean(scatters)
    volume = _pool(volumes, active) / _total(nk, active)
    return _ones_where_inactive(volume * scatters / volumes[:, None], active)


def _vei(scatters, counts, active, tol: float, max_iter: int):
    """VEI's alternation (mclust's ``msvei``): (K,) volumes and the (D,) common shape.

    From ``B = I``: ``lambda_k = sum_j w_kj / b_j / (D nk_k)``, then ``b_j =
    sum_k w_kj / lambda_k`` scaled to det 1, until the largest relative change
    of a volume or a shape entry is at most ``tol``. As in mclust the volumes
    returned are those of the last step, computed from the shape before it.
    """
    n_features = scatters.shape[-1]

    def step(volumes, shape):
        new_volumes = jnp.sum(scatters / shape, axis=1) / (n_features * counts)
        new_shape = _pool(scatters / new_volumes[:, None], active)
        new_shape = new_shape / _geometric_mean(new_shape)
        change = jnp.maximum(
            _pooled_max(_relative_change(volumes, new_volumes), active),
            _relative_change(shape, new_shape).max(),
        )
        return change, new_volumes, new_shape

    dtype = scatters.dtype
    start = (jnp.int32(0), jnp.array(jnp.inf, dtype), jnp.ones_like(counts), jnp.ones(n_features, dtype))
    _, _, volumes, shape = _iterate(step, start, tol, max_iter)
    return volumes[:, None] * shape


def vei_m_step_covariances(nk, means, second, reg_covar, active=None):
    """VEI, ``lambda_k B``: volumes of their own, one diagonal shape (iterative).

    Alternates the volumes given the shape and the shape given the volumes
    from ``B = I`` (mclust's ``msvei``); stops when no volume or shape entry
    changes by more than ``sqrt(eps)`` relative to ``1 + |value|``, or after
    :data:`MAX_INNER_ITERATIONS`.

    Parameters
    ----------
    nk : Array of shape (n_components,)
    means : Array of shape (n_components, n_features)
    second : Array of shape (n_components, n_features)
        'diag' moments.
    reg_covar : float
    active : Array of shape (n_components,) of bool, optional

    Returns
    -------
    covariances : Array of shape (n_components, n_features)
    """
    scatters = _diagonal_scatters(nk, means, second, reg_covar, active)
    covariances = _vei(
        scatters, _counts(nk, active), active, _inner_tolerance(scatters.dtype), MAX_INNER_ITERATIONS
    )
    return _ones_where_inactive(covariances, active)


# -- Full representation ---------------------------------------------------------


def _log_det_and_cholesky(matrices):
    cholesky = jnp.linalg.cholesky(matrices)
    diagonal = jnp.diagonal(cholesky, axis1=-2, axis2=-1)
    return 2.0 * jnp.sum(jnp.log(diagonal), axis=-1), cholesky


def _vee(scatters, counts, active, tol: float, max_iter: int, stop: str = "parameters"):
    """VEE's alternation (mclust's ``msvee``): (K,) volumes and the (D, D) common ``C``, det 1.

    From ``lambda_k = 1``: ``C = sum_k W_k / lambda_k`` scaled to det 1, then
    ``lambda_k = tr(W_k C^-1) / (D nk_k)``. ``stop='parameters'`` stops when
    no volume or entry of ``C`` changes by more than ``tol`` relative to ``1
    + |value|``; ``stop='target'`` is mclust's rule, a relative change of
    ``n D + D sum_k nk_k log lambda_k`` (-2 log-likelihood up to constants)
    of at most ``tol``.
    """
    n_features = scatters.shape[-1]
    identity = jnp.eye(n_features, dtype=scatters.dtype)
    total = _pool(counts, active)

    def step(target, volumes, common):
        new_common = _pool(scatters / volumes[:, None, None], active)
        log_det, cholesky = _log_det_and_cholesky(new_common)
        factor = jnp.exp(-log_det / n_features)
        new_common = factor * new_common
        inverse = cho_solve((cholesky, True), identity) / factor
        new_volumes = jnp.einsum("kij,ij->k", scatters, inverse) / (n_features * counts)
        new_target = n_features * total + n_features * _pool(counts * jnp.log(new_volumes), active)
        if stop == "target":
            change = _relative_change(target, new_target)
        else:
            change = jnp.maximum(
                _pooled_max(_relative_change(volumes, new_volumes), active),
                _relative_change(common, new_common).max(),
            )
        return change, new_target, new_volumes, new_common

    inf = jnp.array(jnp.inf, scatters.dtype)
    start = (jnp.int32(0), inf, inf, jnp.ones_like(counts), identity)
    _, _, _, volumes, common = _iterate(step, start, tol, max_iter)
    return _symmetric(volumes[:, None, None] * common)


def vee_m_step_covariances(nk, means, second, reg_covar, active=None):
    """VEE, ``lambda_k C``: volumes of their own, one shape and orientation ``C`` (det 1; iterative).

    Alternates ``C`` given the volumes and the volumes given ``C`` from
    ``lambda_k = 1`` (mclust's ``msvee``); stops when no volume or entry of
    ``C`` changes by more than ``sqrt(eps)`` relative to ``1 + |value|``, or
    after :data:`MAX_INNER_ITERATIONS`. (mclust stops on the change of the
    likelihood instead, which leaves the covariances about ``sqrt(sqrt(eps))``
    from the maximum: 1e-5 to 1e-4 relative in float64.)

    Parameters
    ----------
    nk : Array of shape (n_components,)
    means : Array of shape (n_components, n_features)
    second : Array of shape (n_components, n_features, n_features)
        'full' moments ``sum_i r_ik x_i x_i^T``.
    reg_covar : float
    active : Array of shape (n_components,) of bool, optional

    Returns
    -------
    covariances : Array of shape (n_components, n_features, n_features)
    """
    scatters = _matrix_scatters(nk, means, second, reg_covar, active)
    covariances = _vee(
        scatters, _counts(nk, active), active, _inner_tolerance(scatters.dtype), MAX_INNER_ITERATIONS
    )
    return _identity_where_inactive(covariances, active)


def _common_orientation(
    scatters, counts, active, tol: float, max_iter: int, volumes: str, stop: str = "parameters"
):
    """EVE's and VVE's iteration (mclust's ``mseve``, ``msvve``): one orientation ``D``.

    From ``D = I`` and unit diagonals ``G_k``, each iteration takes Browne &
    McNicholas's (2014) two minorise-maximise steps for the ``D`` that
    minimises ``sum_k tr(W_k D G_k^-1 D^T)`` (MM1 bounds each ``W_k`` by its
    largest eigenvalue, MM2 each ``G_k^-1`` by its largest entry; each step is
    one SVD), then the diagonals given ``D`` from ``diag(D^T W_k D)``, split
    into shapes ``A_k`` (det 1) and volumes ``lambda_k``.

    ``volumes``:

    - ``'equal'`` (EVE): ``G_k = A_k``; ``lambda = sum_k tr(D^T W_k D A_k^-1)
      / (n D)``, mclust's target ``sum_k tr(D^T W_k D A_k^-1)`` over ``n D``.
    - ``'variable'`` (VVE): ``G_k = lambda_k A_k = diag(D^T W_k D) / nk_k``,
      the covariances' own eigenvalues, which the likelihood asks for; the
      target is ``n D + D sum_k nk_k log lambda_k``, as VEE's.
    - ``'mclust'``: VVE as mclust's ``msvve`` computes it: ``G_k = A_k`` in
      the orientation steps and EVE's target, so that its ``D`` is EVE's.

    ``stop='parameters'`` stops when no volume, shape entry or entry of ``D``
    changes by more than ``tol`` relative to ``1 + |value|``;
    ``stop='target'`` is mclust's rule, a change of the target of at most
    ``tol`` relative to ``1 + |target|``.

    Returns
    -------
    orientation : (D, D), columns the common axes
    diagonals : (K, D), ``lambda_k A_k``, the eigenvalues of each covariance along them
    """
    n_features = scatters.shape[-1]
    dtype = scatters.dtype
    identity = jnp.eye(n_features, dtype=dtype)
    total = _pool(counts, active)
    largest = jnp.linalg.eigvalsh(scatters)[:, -1]

    def step(target, orientation, shapes, component_volumes):
        weights = shapes * component_volumes[:, None] if volumes == "variable" else shapes
        inverse = 1.0 / weights
        # MM1: F = sum_k G_k^-1 D^T (W_k - omega_k I) = P B R^T gives D = R P^T.
        projected = jnp.einsum("ij,kil->kjl", orientation, scatters)
        bound = projected - largest[:, None, None] * orientation.T
        left, _, right = jnp.linalg.svd(_pool(inverse[:, :, None] * bound, active))
        new_orientation = (left @ right).T
        # MM2: F = sum_k W_k D (G_k^-1 - max(G_k^-1) I) = P B R^T gives D = P R^T.
        # (Both are the majorisers' minimisers up to the sign of D, which no
        # covariance sees.)
        mapped = jnp.einsum("kij,jl->kil", scatters, new_orientation)
        excess = inverse - inverse.max(axis=1, keepdims=True)
        left, _, right = jnp.linalg.svd(_pool(mapped * excess[:, None, :], active))
        new_orientation = left @ right
        diagonals = jnp.einsum("ij,kil,lj->kj", new_orientation, scatters, new_orientation)
        spreads = _geometric_mean(diagonals)
        new_shapes = diagonals / spreads[:, None]
        if volumes == "equal":
            new_target = n_features * _pool(spreads, active)
            new_volumes = jnp.broadcast_to(new_target / (n_features * total), counts.shape)
        else:
            new_volumes = spreads / counts
            if volumes == "variable":
                new_target = n_features * total + n_features * _pool(counts * jnp.log(new_volumes), active)
            else:
                new_target = n_features * _pool(spreads, active)
        if stop == "target":
            change = _relative_change(target, new_target)
        else:
            change = jnp.maximum(
                jnp.maximum(
                    _pooled_max(_relative_change(shapes, new_shapes).max(axis=1), active),
                    _pooled_max(_relative_change(component_volumes, new_volumes), active),
                ),
                _relative_change(orientation, new_orientation).max(),
            )
        return change, new_target, new_orientation, new_shapes, new_volumes

    inf = jnp.array(jnp.inf, dtype)
    start = (jnp.int32(0), inf, inf, identity, jnp.ones(scatters.shape[:2], dtype), jnp.ones_like(counts))
    _, _, _, orientation, shapes, component_volumes = _iterate(step, start, tol, max_iter)
    return orientation, shapes * component_volumes[:, None]


def _common_orientation_m_step(volumes: str, stop: str = "parameters"):
    """``m_step_covariances`` of EVE (``volumes='equal'``) or VVE (see :func:`_common_orientation`)."""

    def m_step_covariances(nk, means, second, reg_covar, active=None):
        scatters = _matrix_scatters(nk, means, second, reg_covar, active)
        orientation, diagonals = _common_orientation(
            scatters, _counts(nk, active), active, _inner_tolerance(scatters.dtype),
            MAX_INNER_ITERATIONS, volumes, stop,
        )
        orientations = jnp.broadcast_to(orientation, scatters.shape)
        return _identity_where_inactive(_rotated(orientations, diagonals), active)

    return m_step_covariances


_eve = _common_orientation_m_step("equal")
_vve = _common_orientation_m_step("variable")


def eve_m_step_covariances(nk, means, second, reg_covar, active=None):
    """EVE, ``lambda D A_k D^T``: equal volumes, one orientation, shapes of their own (iterative).

    mclust's ``mseve``: from ``D = I`` and ``A_k = I``, Browne & McNicholas's
    MM steps for ``D`` given the shapes, then ``A_k`` from ``diag(D^T W_k D)``
    scaled to det 1, and ``lambda = sum_k tr(D^T W_k D A_k^-1) / (n D)``;
    stops when no shape entry, entry of ``D`` or the volume changes by more
    than ``sqrt(eps)`` relative to ``1 + |value|``, or after
    :data:`MAX_INNER_ITERATIONS`. (mclust stops on the change of
    ``sum_k tr(D^T W_k D A_k^-1)`` instead, 1e-5 to 1e-4 relative from the
    maximum in float64.)

    Parameters
    ----------
    nk : Array of shape (n_components,)
    means : Array of shape (n_components, n_features)
    second : Array of shape (n_components, n_features, n_features)
        'full' moments.
    reg_covar : float
    active : Array of shape (n_components,) of bool, optional

    Returns
    -------
    covariances : Array of shape (n_components, n_features, n_features)
    """
    return _eve(nk, means, second, reg_covar, active)


def vve_m_step_covariances(nk, means, second, reg_covar, active=None):
    """VVE, ``lambda_k D A_k D^T``: one orientation, volumes and shapes of their own (iterative).

    The covariances ``D G_k D^T`` with any diagonal ``G_k`` (Flury's common
    principal components). As mclust's ``msvve``, from ``D = I`` and ``G_k =
    I``, Browne & McNicholas's MM steps for ``D`` given the ``G_k``, then
    ``G_k = diag(D^T W_k D) / nk_k``; stops when no volume, shape entry or
    entry of ``D`` changes by more than ``sqrt(eps)`` relative to ``1 +
    |value|``, or after :data:`MAX_INNER_ITERATIONS`.

    mclust's orientation steps use the shapes ``A_k = G_k / lambda_k`` in
    place of ``G_k``, i.e. they minimise ``sum_k lambda_k tr(W_k D G_k^-1
    D^T)`` rather than the likelihood's ``sum_k tr(W_k D G_k^-1 D^T)``: its
    ``D`` is EVE's, the maximum-likelihood one only when the volumes come out
    equal. Here the steps use ``G_k``, so that the M-step maximises the
    likelihood (never less than mclust's).

    Parameters
    ----------
    nk : Array of shape (n_components,)
    means : Array of shape (n_components, n_features)
    second : Array of shape (n_components, n_features, n_features)
        'full' moments.
    reg_covar : float
    active : Array of shape (n_components,) of bool, optional

    Returns
    -------
    covariances : Array of shape (n_components, n_features, n_features)
    """
    return _vve(nk, means, second, reg_covar, active)


def eev_m_step_covariances(nk, means, second, reg_covar, active=None):
    """EEV, ``lambda D_k A D_k^T``: one volume and shape, orientations of their own (closed form).

    ``D_k`` are the eigenvectors of ``W_k`` and ``lambda A = sum_k omega_k /
    n``, ``omega_k`` the eigenvalues of ``W_k`` in the same (ascending) order
    for every component (mclust's ``mseev``).

    Parameters
    ----------
    nk : Array of shape (n_components,)
    means : Array of shape (n_components, n_features)
    second : Array of shape (n_components, n_features, n_features)
        'full' moments.
    reg_covar : float
    active : Array of shape (n_components,) of bool, optional

    Returns
    -------
    covariances : Array of shape (n_components, n_features, n_features)
    """
    scatters = _matrix_scatters(nk, means, second, reg_covar, active)
    eigenvalues, eigenvectors = jnp.linalg.eigh(scatters)
    common = _pool(eigenvalues, active) / _total(nk, active)
    covariances = _rotated(eigenvectors, jnp.broadcast_to(common, eigenvalues.shape))
    return _identity_where_inactive(covariances, active)


def _vev(eigenvalues, counts, active, tol: float, max_iter: int):
    """VEV's alternation (mclust's ``msvev``) on the (K, D) eigenvalues of the scatters.

    Starts from EEV's shape (``sum_k omega_k`` scaled to det 1) and mclust's
    volumes ``det(sum_k omega_k)^(1/D) / (nk_k n)`` (they only enter the first
    change), then ``lambda_k = sum_j omega_kj / a_j / (D nk_k)`` and ``a =
    sum_k omega_k / lambda_k`` scaled to det 1, until the largest relative
    change is below ``tol``. Returns the volumes of the last step (from the
    shape before it, as mclust) and the shape.
    """
    n_features = eigenvalues.shape[-1]
    shape = _pool(eigenvalues, active)
    volume = _geometric_mean(shape)
    shape = shape / volume
    total = _pool(counts, active)

    def step(volumes, shape):
        new_volumes = jnp.sum(eigenvalues / shape, axis=1) / (n_features * counts)
        new_shape = _pool(eigenvalues / new_volumes[:, None], active)
        new_shape = new_shape / _geometric_mean(new_shape)
        change = jnp.maximum(
            _relative_change(shape, new_shape).max(),
            _pooled_max(_relative_change(volumes, new_volumes), active),
        )
        return change, new_volumes, new_shape

    start = (jnp.int32(0), jnp.array(jnp.inf, eigenvalues.dtype), volume / (counts * total), shape)
    _, _, volumes, shape = _iterate(step, start, tol, max_iter, strict=False)
    return volumes, shape


def vev_m_step_covariances(nk, means, second, reg_covar, active=None):
    """VEV, ``lambda_k D_k A D_k^T``: one shape, volumes and orientations of their own (iterative).

    ``D_k`` are the eigenvectors of ``W_k`` (whatever the volumes and the
    shape, pairing each component's eigenvalues in the same order); the
    volumes and the shape alternate on the eigenvalues from EEV's shape
    (mclust's ``msvev``) until no volume or shape entry changes by
    ``sqrt(eps)`` or more relative to ``1 + |value|``, or for
    :data:`MAX_INNER_ITERATIONS`.

    Parameters
    ----------
    nk : Array of shape (n_components,)
    means : Array of shape (n_components, n_features)
    second : Array of shape (n_components, n_features, n_features)
        'full' moments.
    reg_covar : float
    active : Array of shape (n_components,) of bool, optional

    Returns
    -------
    covariances : Array of shape (n_components, n_features, n_features)
    """
    scatters = _matrix_scatters(nk, means, second, reg_covar, active)
    eigenvalues, eigenvectors = jnp.linalg.eigh(scatters)
    volumes, shape = _vev(
        eigenvalues, _counts(nk, active), active, _inner_tolerance(scatters.dtype), MAX_INNER_ITERATIONS
    )
    covariances = _rotated(eigenvectors, volumes[:, None] * shape)
    return _identity_where_inactive(covariances, active)


def evv_m_step_covariances(nk, means, second, reg_covar, active=None):
    """EVV, ``lambda D_k A_k D_k^T``: equal volumes, shapes and orientations of their own (closed form).

    ``C_k = W_k / det(W_k)^(1/D)`` and ``lambda = sum_k det(W_k)^(1/D) / n``
    (mclust's ``msevv``).

    Parameters
    ----------
    nk : Array of shape (n_components,)
    means : Array of shape (n_components, n_features)
    second : Array of shape (n_components, n_features, n_features)
        'full' moments.
    reg_covar : float
    active : Array of shape (n_components,) of bool, optional

    Returns
    -------
    covariances : Array of shape (n_components, n_features, n_features)
    """
    scatters = _matrix_scatters(nk, means, second, reg_covar, active)
    log_det, _ = _log_det_and_cholesky(scatters)
    volumes = jnp.exp(log_det / scatters.shape[-1])
    volume = _pool(volumes, active) / _total(nk, active)
    covariances = _symmetric((volume / volumes)[:, None, None] * scatters)
    return _identity_where_inactive(covariances, active)


# -- The tables ------------------------------------------------------------------


N_COVARIANCE_PARAMETERS = types.MappingProxyType({
    "EII": lambda n_components, n_features: 1.0,
    "VII": lambda n_components, n_features: float(n_components),
    "EEI": lambda n_components, n_features: float(n_features),
    "VEI": lambda n_components, n_features: float(n_components + n_features - 1),
    "EVI": lambda n_components, n_features: float(1 + n_components * (n_features - 1)),
    "VVI": lambda n_components, n_features: float(n_components * n_features),
    "EEE": lambda n_components, n_features: n_features * (n_features + 1) / 2.0,
    "VEE": lambda n_components, n_features: n_components + n_features * (n_features + 1) / 2.0 - 1,
    "EVE": lambda n_components, n_features: (
        1 + n_components * (n_features - 1) + n_features * (n_features - 1) / 2.0
    ),
    "VVE": lambda n_components, n_features: (
        n_components * n_features + n_features * (n_features - 1) / 2.0
    ),
    "EEV": lambda n_components, n_features: (
        float(n_features) + n_components * n_features * (n_features - 1) / 2.0
    ),
    "VEV": lambda n_components, n_features: (
        n_components + n_features - 1 + n_components * n_features * (n_features - 1) / 2.0
    ),
    "EVV": lambda n_components, n_features: (
        1 + n_components * (n_features * (n_features + 1) / 2.0 - 1)
    ),
    "VVV": lambda n_components, n_features: n_components * n_features * (n_features + 1) / 2.0,
})
"""Free covariance parameters of each of mclust's fourteen models (its ``nVarParams``).

``(n_components, n_features) -> float``; a volume, shape or orientation that is
Equal counts once, a Variable one once per component, with ``D - 1`` free
entries per shape (det 1) and ``D (D - 1) / 2`` per orientation.
"""

M_STEPS = types.MappingProxyType({
    "EII": ("spherical", eii_m_step_covariances),
    "EEI": ("diag", eei_m_step_covariances),
    "VEI": ("diag", vei_m_step_covariances),
    "EVI": ("diag", evi_m_step_covariances),
    "VEE": ("full", vee_m_step_covariances),
    "EVE": ("full", eve_m_step_covariances),
    "VVE": ("full", vve_m_step_covariances),
    "EEV": ("full", eev_m_step_covariances),
    "VEV": ("full", vev_m_step_covariances),
    "EVV": ("full", evv_m_step_covariances),
})
"""The ten models that are none of 'spherical' (VII), 'diag' (VVI), 'tied' (EEE), 'full' (VVV).

name -> (representation, ``m_step_covariances``): the representation is the
existing structure whose shapes, moments and densities the model shares.
"""
