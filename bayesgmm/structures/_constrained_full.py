"""mclust's constrained models with orientations, in the 'full' representation.

VEE, EVE and VVE (one orientation for all components; VEE's shape too),
EEV, VEV and EVV (an orientation per component). See
:mod:`bayesgmm.structures._constrained` for the conventions every M-step
here follows.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.scipy.linalg import cho_solve

from bayesgmm.structures._constrained_pooling import (
    MAX_INNER_ITERATIONS,
    _counts,
    _geometric_mean,
    _identity_where_inactive,
    _inner_tolerance,
    _iterate,
    _matrix_scatters,
    _pool,
    _pooled_max,
    _relative_change,
    _rotated,
    _symmetric,
    _total,
)


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


def _round_robin(n_features: int) -> np.ndarray:
    """Pairs of axes, (n_rounds, n_pairs, 2): every pair once, the pairs of a round disjoint.

    The circle method of round-robin tournaments (an odd count gets a dummy
    axis ``n_features``, whose pairs are dropped by :func:`_jacobi_sweep`).
    """
    n = n_features + n_features % 2
    players = list(range(n))
    rounds = []
    for _ in range(max(n - 1, 1)):
        rounds.append([(players[i], players[n - 1 - i]) for i in range(n // 2)])
        players = [players[0], players[-1]] + players[1:-1]
    return np.sort(np.asarray(rounds, dtype=np.int32), axis=-1)


def _jacobi_sweep(orientation, scatters, inverse, rounds):
    """One sweep of plane rotations lowering ``sum_k tr(D^T W_k D G_k^-1)`` over orthogonal ``D``.

    The target is a sum over the columns ``d_j`` of ``sum_k g_kj^-1 d_j^T W_k
    d_j``, so a rotation by ``theta`` in the plane of ``d_j, d_l`` changes
    only their terms, by ``a cos 2 theta + b sin 2 theta`` up to a constant:
    the best rotation is closed-form, and the disjoint pairs of a round are
    rotated at once. Every pair's step is exact, so no sweep raises the
    target; unlike Browne and McNicholas's minorise-maximise steps, whose
    bounds are loose where the ``W_k`` are far from spherical, it is not
    slowed by the spread of their eigenvalues.

    Parameters
    ----------
    orientation : Array of shape (D, D)
        Columns the current axes.
    scatters : Array of shape (K, D, D)
    inverse : Array of shape (K, D)
        ``G_k^-1``; zero for components that must not count.
    rounds : Array of shape (n_rounds, n_pairs, 2), int
        :func:`_round_robin`.

    Returns
    -------
    orientation : Array of shape (D, D)
    """
    n_features = orientation.shape[0]
    # An odd D gets a dummy axis (a zero row and column) whose pairs never rotate.
    padded = rounds.shape[1] * 2 > n_features
    if padded:
        orientation = jnp.pad(orientation, ((0, 1), (0, 1)))
        scatters = jnp.pad(scatters, ((0, 0), (0, 1), (0, 1)))
        inverse = jnp.pad(inverse, ((0, 0), (0, 1)))

    def rotate(orientation, pairs):
        first, second = orientation[:, pairs[:, 0]], orientation[:, pairs[:, 1]]  # (D, P)
        mapped_first = jnp.einsum("kij,jp->kip", scatters, first)
        mapped_second = jnp.einsum("kij,jp->kip", scatters, second)
        t11 = jnp.einsum("ip,kip->kp", first, mapped_first)
        t22 = jnp.einsum("ip,kip->kp", second, mapped_second)
        t12 = jnp.einsum("ip,kip->kp", first, mapped_second)
        difference = inverse[:, pairs[:, 0]] - inverse[:, pairs[:, 1]]  # (K, P)
        a = 0.5 * jnp.sum(difference * (t11 - t22), axis=0)
        b = jnp.sum(difference * t12, axis=0)
        radius = jnp.hypot(a, b)
        moving = (radius > 0) & (pairs[:, 1] < n_features)
        safe = jnp.where(moving, radius, 1.0)
        cos_double = jnp.where(moving, -a / safe, 1.0)
        sin_double = jnp.where(moving, -b / safe, 0.0)
        cos = jnp.sqrt(jnp.maximum(0.5 * (1.0 + cos_double), 0.0))
        sin = jnp.where(sin_double < 0, -1.0, 1.0) * jnp.sqrt(jnp.maximum(0.5 * (1.0 - cos_double), 0.0))
        orientation = orientation.at[:, pairs[:, 0]].set(cos * first + sin * second)
        orientation = orientation.at[:, pairs[:, 1]].set(cos * second - sin * first)
        return orientation, None

    orientation, _ = lax.scan(rotate, orientation, rounds)
    if padded:
        orientation = orientation[:n_features, :n_features]
    return orientation


def _common_orientation(
    scatters, counts, active, tol: float, max_iter: int, volumes: str, stop: str = "parameters",
    previous=None,
):
    """EVE's and VVE's iteration (mclust's ``mseve``, ``msvve``): one orientation ``D``.

    From ``D = I`` and unit diagonals ``G_k``, each iteration lowers ``sum_k
    tr(W_k D G_k^-1 D^T)`` over ``D`` by one sweep of exact plane rotations
    (:func:`_jacobi_sweep`; mclust takes Browne and McNicholas's (2014)
    minorise-maximise steps for the same target, slowly where the ``W_k``
    are far from spherical), then takes the diagonals given ``D`` from
    ``diag(D^T W_k D)``, split into shapes ``A_k`` (det 1) and volumes
    ``lambda_k``. The target has local optima: on mclust's reference data
    both iterations reach mclust's, but from ``D = I`` on random scatters
    either one sometimes stops at another optimum,
    better or worse than the other's (of 40 random cases per dimension:
    none in 3, 1-2 in 4, 2-3 in 5, 5-6 in 6).

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

    ``previous`` (K, D, D), covariances of this form (the EM iteration
    before), starts the iteration from their orientation, shapes and
    volumes instead (:func:`_continued_start`), as mclust's ``meeve`` and
    ``mevve`` carry ``D`` and the shapes from one EM iteration to the next:
    a few steps then reach the tolerance where many more do from ``D = I``.

    Returns
    -------
    orientation : (D, D), columns the common axes
    diagonals : (K, D), ``lambda_k A_k``, the eigenvalues of each covariance along them
    """
    n_features = scatters.shape[-1]
    dtype = scatters.dtype
    identity = jnp.eye(n_features, dtype=dtype)
    total = _pool(counts, active)

    rounds = jnp.asarray(_round_robin(n_features))

    def step(target, orientation, shapes, component_volumes):
        weights = shapes * component_volumes[:, None] if volumes == "variable" else shapes
        inverse = jnp.where(active[:, None], 1.0 / weights, 0.0) if active is not None else 1.0 / weights
        new_orientation = _jacobi_sweep(orientation, scatters, inverse, rounds)
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
    if previous is None:
        begin = (identity, jnp.ones(scatters.shape[:2], dtype), jnp.ones_like(counts))
    else:
        begin = _continued_start(previous)
    start = (jnp.int32(0), inf, inf) + begin
    _, _, _, orientation, shapes, component_volumes = _iterate(step, start, tol, max_iter)
    return orientation, shapes * component_volumes[:, None]


def _continued_start(previous):
    """The orientation, shapes and volumes of covariances ``D G_k D^T`` (K, D, D), to start from.

    ``D`` are the eigenvectors of ``sum_k c_k Sigma_k / tr(Sigma_k)`` with
    distinct weights ``c_k``: every such combination is ``D (sum_k c_k G_k /
    tr G_k) D^T``, and for distinct ``c_k`` its eigenvalues are distinct
    unless two axes have equal entries in every ``G_k`` (and then any
    rotation between them is as good). One component's eigenvectors would
    not do: where that component is nearly spherical they are arbitrary,
    and every M-step would start far from the last one's orientation.
    ``G_k = diag(D^T Sigma_k D)``, split into shapes of determinant 1 and
    volumes.
    """
    n_components = previous.shape[0]
    scales = jnp.trace(previous, axis1=-2, axis2=-1)
    # Distinct and irrational-ish weights, so no two components' terms cancel by accident.
    weights = 1.0 + jnp.sqrt(2.0 + jnp.arange(n_components, dtype=previous.dtype))
    _, orientation = jnp.linalg.eigh(jnp.einsum("k,kij->ij", weights / scales, previous))
    diagonals = jnp.einsum("ij,kil,lj->kj", orientation, previous, orientation)
    spreads = _geometric_mean(diagonals)
    return orientation, diagonals / spreads[:, None], spreads


def _common_orientation_m_step(volumes: str, stop: str = "parameters"):
    """``m_step_covariances`` of EVE (``volumes='equal'``) or VVE (see :func:`_common_orientation`)."""

    def m_step_covariances(nk, means, second, reg_covar, active=None, previous=None):
        scatters = _matrix_scatters(nk, means, second, reg_covar, active)
        # The previous covariances carry reg_covar, the scatters' scale does not matter:
        # only their orientation and relative diagonals start the iteration.
        orientation, diagonals = _common_orientation(
            scatters, _counts(nk, active), active, _inner_tolerance(scatters.dtype),
            MAX_INNER_ITERATIONS, volumes, stop, previous,
        )
        orientations = jnp.broadcast_to(orientation, scatters.shape)
        return _identity_where_inactive(_rotated(orientations, diagonals), active)

    return m_step_covariances


_eve = _common_orientation_m_step("equal")
_vve = _common_orientation_m_step("variable")


def eve_m_step_covariances(nk, means, second, reg_covar, active=None, previous=None):
    """EVE, ``lambda D A_k D^T``: equal volumes, one orientation, shapes of their own (iterative).

    As mclust's ``mseve``, from ``D = I`` and ``A_k = I``: steps for ``D``
    given the shapes (plane rotations where mclust takes Browne and
    McNicholas's MM steps), then ``A_k`` from ``diag(D^T W_k D)``
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
    previous : Array of shape (n_components, n_features, n_features), optional
        The covariances of the EM iteration before: the iteration starts
        from their orientation and shapes (mclust's EM does the same).

    Returns
    -------
    covariances : Array of shape (n_components, n_features, n_features)
    """
    return _eve(nk, means, second, reg_covar, active, previous)


def vve_m_step_covariances(nk, means, second, reg_covar, active=None, previous=None):
    """VVE, ``lambda_k D A_k D^T``: one orientation, volumes and shapes of their own (iterative).

    The covariances ``D G_k D^T`` with any diagonal ``G_k`` (Flury's common
    principal components). As mclust's ``msvve``, from ``D = I`` and ``G_k =
    I``, steps for ``D`` given the ``G_k`` (plane rotations, see
    :func:`_common_orientation`), then
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
    previous : Array of shape (n_components, n_features, n_features), optional
        As in :func:`eve_m_step_covariances`.

    Returns
    -------
    covariances : Array of shape (n_components, n_features, n_features)
    """
    return _vve(nk, means, second, reg_covar, active, previous)


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

