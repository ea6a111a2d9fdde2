"""The jitted EM loop over a batch of candidates: one ``lax.while_loop`` per fit.

One EM iteration is one pass over the blocks (``lax.scan``) that
accumulates the sufficient statistics of every candidate (a restart, a
value of ``n_components``), followed by the M-step on those statistics.
The whole fit is one ``lax.while_loop`` inside one ``jit`` (:func:`run_em`),
with the convergence test (change of the mean log-likelihood below ``tol``,
as in scikit-learn) on the device; each candidate stops at its own
convergence while the others go on. :func:`iterate` calls that program in
stretches of about :data:`STRETCH_SECONDS`, each continuing the states of the
last, so that Ctrl-C ends a long fit within about that time (Python sees an
interrupt only between calls).
"""

from __future__ import annotations

import functools
import time

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from bayesgmm import _progress
from bayesgmm.mixture import quadratic
from bayesgmm.mixture.blocks import _axis_name, _over_mesh
from bayesgmm.mixture.compilation import CPU_COMPILER_OPTIONS, CompiledPerVariant
from bayesgmm.mixture.forms import EXPANDED, EStepForm, accumulate_statistics, normalise
from bayesgmm.mixture.mstep import m_step, prior_about
from bayesgmm.mixture.parameters import EMState, GMMParams, SufficientStats
from bayesgmm.mixture.rounding import all_finite

# Relative difference of final lower bounds below which restarts tie.
TIE_TOLERANCE = 1e-12


# --------------------------------------------------------------------------
# The fit: one while-loop inside one jit
# --------------------------------------------------------------------------


def wants_progress_bar(n_samples: int, n_components: int, n_features: int, covariance_type: str) -> bool:
    """Whether a fit is long enough (seconds per few iterations) to show a bar.

    Only where :func:`bayesgmm._progress.bar_allowed`.
    """
    if not _progress.bar_allowed():
        return False
    work = n_samples * n_components * quadratic.feature_count(n_features, covariance_type)
    return work >= 50_000_000


def is_active(state: EMState, max_iter: int):
    """Whether a restart still iterates: not converged, not failed, iterations left."""
    return (state.n_iter < max_iter) & ~state.converged & ~state.failed


# The most per-iteration lower bounds a fit keeps (the last ones): the state
# must not grow with max_iter, which users set to 10**9 to mean "until it converges".
HISTORY_LENGTH = 10_000


def initial_state(params: GMMParams, initial_lower_bound, max_iter: int) -> EMState:
    """The state of one restart before its first iteration.

    ``lower_bounds`` has room for ``min(max_iter, HISTORY_LENGTH)`` values,
    written in turn (:func:`lower_bound_history` reads them back in order).
    """
    dtype = params.means.dtype
    return EMState(
        params=params,
        lower_bound=jnp.asarray(initial_lower_bound, dtype),
        n_iter=jnp.zeros((), jnp.int32),
        converged=jnp.zeros((), bool),
        failed=~all_finite(params),
        lower_bounds=jnp.full((max(min(max_iter, HISTORY_LENGTH), 1),), jnp.nan, dtype),
    )


def em_step(
    state: EMState, stats: SufficientStats, *, covariance_type: str, tol: float, reg_covar: float,
    shift=None, active=None, prior=None, choice=None,
) -> EMState:
    """One EM update of one restart from the statistics of its E-step.

    The lower bound is the mean log-likelihood of that E-step (the parameters
    before this M-step), and convergence is its change below ``tol``, as in
    scikit-learn. Shared by the in-memory loop and the streaming fit.
    ``shift`` (n_components, n_features): the points the statistics' moments
    were taken about (:func:`centred_sums`), added back to the means.
    ``active`` (n_components,): the active components, ``prior`` the
    candidate's PriorValues or None, ``choice`` the member of a
    :class:`~bayesgmm.structures.Family` (:func:`m_step`).
    """
    params = m_step(stats, reg_covar, covariance_type, active, prior_about(prior, shift),
                    previous=state.params.covariances, choice=choice)
    if shift is not None:
        params = params._replace(means=params.means + shift)
    lower_bound = stats.log_likelihood / stats.total_weight
    return EMState(
        params=params,
        lower_bound=lower_bound,
        n_iter=state.n_iter + 1,
        converged=jnp.abs(lower_bound - state.lower_bound) < tol,
        failed=~all_finite(params),
        lower_bounds=state.lower_bounds.at[state.n_iter % state.lower_bounds.shape[0]].set(
            lower_bound
        ),
    )


def lower_bound_history(lower_bounds: np.ndarray, n_iter: int) -> np.ndarray:
    """The lower bounds of the last ``min(n_iter, HISTORY_LENGTH)`` iterations, in order.

    Parameters
    ----------
    lower_bounds : ndarray of shape (history_length,)
        A state's ``lower_bounds``, written in turn from index 0.
    n_iter : int

    Returns
    -------
    ndarray of shape (min(n_iter, history_length),)
    """
    length = lower_bounds.shape[0]
    if n_iter <= length:
        return lower_bounds[:n_iter]
    return np.roll(lower_bounds, -(n_iter % length))


def initial_states(params: GMMParams, initial_lower_bound, max_iter: int) -> EMState:
    """The states of a batch of candidates before their first iteration, on the host.

    Parameters
    ----------
    params : GMMParams
        Leaves with a leading axis of length n_candidates.
    initial_lower_bound : array-like of shape (n_candidates,)
        ``-inf`` for a fresh start, the previous bound for a warm start.
    max_iter : int

    Returns
    -------
    EMState
        NumPy leaves with the leading axis n_candidates: what
        :func:`initial_state` gives for each, built without a device program.
    """
    params = GMMParams(*(np.asarray(leaf) for leaf in params))
    dtype = params.means.dtype
    n_candidates = params.means.shape[0]
    finite = np.isfinite(params.means).reshape(n_candidates, -1).all(axis=1) & np.isfinite(
        params.precisions_cholesky
    ).reshape(n_candidates, -1).all(axis=1)
    return EMState(
        params=params,
        lower_bound=np.broadcast_to(np.asarray(initial_lower_bound, dtype), (n_candidates,)),
        n_iter=np.zeros(n_candidates, np.int32),
        converged=np.zeros(n_candidates, bool),
        failed=~finite,
        lower_bounds=np.full((n_candidates, max(min(max_iter, HISTORY_LENGTH), 1)), np.nan, dtype),
    )


# Wall-clock length of one call of the compiled loop in iterate(), and the
# iterations of the first call (the later ones are sized from its time).
STRETCH_SECONDS = 0.5
FIRST_STRETCH = 16


def _uncommitted(leaf):
    """A host copy of ``leaf``, where this process holds all of it (else ``leaf`` itself)."""
    return np.asarray(leaf) if getattr(leaf, "is_fully_addressable", True) else leaf


def iterate(X_blocks, weight_blocks, params: GMMParams, initial_lower_bound, active,
            report_token=_progress.NO_REPORTER, prior=None, choice=None, *, max_iter: int,
            **settings) -> EMState:
    """Run EM for a batch of candidates to convergence, in interruptible stretches.

    Takes the arguments of :func:`run_em` with the initial ``params`` and
    ``initial_lower_bound`` (leading axis n_candidates) in place of states,
    and returns the final states: the same as one call running every
    iteration (each stretch continues the states of the last, and the
    iteration limit is data, so all stretches share one program). Stretches
    last about :data:`STRETCH_SECONDS`; a ``KeyboardInterrupt`` raised
    during one is seen when it returns.
    """
    states = initial_states(params, initial_lower_bound, max_iter)
    stop, stretch = 0, FIRST_STRETCH
    while True:
        stop = min(stop + stretch, max_iter)
        start = time.perf_counter()
        states = run_em(X_blocks, weight_blocks, states, active, np.int32(stop), report_token, prior, choice,
                        max_iter=max_iter, **settings)
        running = (
            (np.asarray(states.n_iter) < max_iter)
            & ~np.asarray(states.converged)
            & ~np.asarray(states.failed)
        )
        if stop >= max_iter or not running.any():
            return states
        elapsed = max(time.perf_counter() - start, 1e-6)
        # At most 8x longer than the last stretch: the first one's time includes compiling.
        stretch = int(min(8 * stretch, max(1, stretch * STRETCH_SECONDS / elapsed)))
        # The next stretch starts from host copies (a few small arrays), as the
        # first did: the returned arrays are committed to their devices, and
        # jit would compile a second program of the same shapes for them.
        states = jax.tree_util.tree_map(_uncommitted, states)


def _em_loop(
    X_blocks,
    weight_blocks,
    state: EMState,
    active,
    stop_at,
    report_token,
    prior,
    choice,
    *,
    covariance_type: str,
    tol: float,
    reg_covar: float,
    max_iter: int,
    report: bool,
    axis_name=None,
    form: EStepForm = EXPANDED,
    statistics=accumulate_statistics,
):
    def body(state: EMState):
        stats = statistics(
            X_blocks, weight_blocks, state.params, covariance_type, axis_name, form
        )
        new_state = em_step(
            state, stats, covariance_type=covariance_type, tol=tol, reg_covar=reg_covar,
            shift=state.params.means if form.centred else None, active=active, prior=prior,
            choice=choice,
        )
        if report:
            change = new_state.lower_bound - state.lower_bound
            # Under vmap the body runs for candidates that have stopped too
            # (their state is kept); only the running ones report.
            _progress.report(
                report_token, new_state.n_iter, change, new_state.lower_bound,
                is_active(state, max_iter),
            )
        return new_state

    return lax.while_loop(
        lambda state: is_active(state, max_iter) & (state.n_iter < stop_at),
        body,
        state,
    )


def _run_em(
    X_blocks,
    weight_blocks,
    states: EMState,
    active,
    stop_at,
    report_token=_progress.NO_REPORTER,
    prior=None,
    choice=None,
    *,
    covariance_type: str,
    tol: float,
    reg_covar: float,
    max_iter: int,
    report: bool = False,
    mesh=None,
    form: EStepForm = EXPANDED,
    statistics=accumulate_statistics,
):
    """Run EM for a batch of candidates, each to its own convergence (or ``stop_at``).

    Parameters
    ----------
    X_blocks : Array of shape (n_blocks, block_size, n_features)
    weight_blocks : Array of shape (n_blocks, block_size)
    states : EMState
        Every leaf has a leading axis of length ``n_init``
        (:func:`initial_states`, or the states a previous call returned);
        the candidates run batched (``vmap``), so their number changes the
        program but their values never recompile it.
        Candidates may be restarts, seeds or models with different numbers
        of components: padded to one ``n_components`` (:func:`pad_components`),
        they share the program.
    active : Array of shape (n_init, n_components) of bool
        Each candidate's active components (:func:`active_components`).
    stop_at : int32 Array of shape ()
        The loop stops once ``n_iter`` reaches it (data, not static: see
        :func:`iterate`).
    report_token : int or Array of shape ()
        The run's reporter (:func:`bayesgmm._progress.registered`), data
        rather than a static argument so that runs share the program.
    prior : PriorValues, optional
        Each candidate's conjugate prior (leaves with a leading axis
        n_init, batched like ``active``): MAP-EM (:func:`m_step`). None, an
        empty pytree, traces the maximum-likelihood program unchanged.
    choice : int32 Array of shape (), optional
        With a :class:`~bayesgmm.structures.Family` as ``covariance_type``,
        the member every candidate of the call fits (:func:`m_step`): the
        members share the program.
    covariance_type, tol, reg_covar, max_iter, report : static
        ``report`` sends every iteration's bound to the reporter of
        ``report_token`` on the host (verbose printing, progress bar).
    mesh : jax.sharding.Mesh, optional (static)
        A one-axis mesh over which ``X_blocks`` and ``weight_blocks`` are
        sharded along their block axis. Each device runs the E-step on its
        own blocks; only the sufficient statistics are summed across devices
        (and processes).
    form : EStepForm, default=EXPANDED (static)
        How every E-step is computed; :data:`DIRECT` (moments about the
        current means) for fits whose components lie too far from the data's
        centre, in units of their spread, for the expanded square
        (:func:`precision_loss`).
    statistics : callable, default=accumulate_statistics (static)
        The E-step over the data: ``(X_blocks, weight_blocks, params,
        covariance_type, axis_name, form) -> SufficientStats``;
        :func:`bayesgmm.mixture.incomplete.incomplete_statistics` for data
        with missing values (``X_blocks`` is then its ``IncompleteData``).

    Returns
    -------
    states : EMState
        Every candidate's final state (leading axis n_init). Under ``vmap`` a
        candidate that has stopped keeps its state while others iterate, so
        each equals the candidate's fit on its own. ``failed`` says whether
        a covariance stopped being positive definite.
    """
    loop = functools.partial(
        _em_loop,
        covariance_type=covariance_type,
        tol=tol,
        reg_covar=reg_covar,
        max_iter=max_iter,
        report=report,
        axis_name=_axis_name(mesh),
        form=form,
        statistics=statistics,
    )
    batched = jax.vmap(loop, in_axes=(None, None, 0, 0, None, None, 0, None))
    return _over_mesh(batched, mesh, 2, 6)(
        X_blocks, weight_blocks, states, active, jnp.asarray(stop_at, jnp.int32),
        jnp.asarray(report_token, jnp.int32), prior, choice,
    )


def best_candidate(lower_bounds) -> int:
    """Index of the candidate to keep: the first whose final bound ties the largest.

    scikit-learn keeps the first restart with the largest bound. Restarts
    that reach the same optimum (often with permuted labels) differ only by
    rounding, which depends on the device layout and on the order of sums;
    bounds within ``TIE_TOLERANCE`` (relative) count as equal so the choice
    does not. NaN counts as ``-inf``; where no bound is finite (``max_iter=0``)
    the last candidate is kept, as scikit-learn does. The one rule for every fit.

    Parameters
    ----------
    lower_bounds : array-like of shape (n_candidates,)

    Returns
    -------
    int
    """
    bounds = np.asarray(lower_bounds, np.float64)
    bounds = np.where(np.isnan(bounds), -np.inf, bounds)
    largest = np.max(bounds)
    if not np.isfinite(largest):
        return len(bounds) - 1
    ties = bounds >= largest - TIE_TOLERANCE * max(1.0, abs(largest))
    return int(np.argmax(ties))


_RUN_EM_STATIC = ("covariance_type", "tol", "reg_covar", "max_iter", "report", "mesh", "form", "statistics")

run_em = CompiledPerVariant(_run_em, _RUN_EM_STATIC, CPU_COMPILER_OPTIONS)


# Predictions keep the optimised code: compiled quickly they saved little
# compile time and ran up to 1.4x longer, and a user may call them many times.
@functools.partial(CompiledPerVariant, static_argnames=("covariance_type", "output", "form"))
def predict_blocks(
    X_blocks, params: GMMParams, *, covariance_type: str, output: str, form: EStepForm = EXPANDED
):
    """One prediction over blocks, computed and reduced on the device.

    Parameters
    ----------
    X_blocks : Array of shape (n_blocks, block_size, n_features)
        Centred like the fit's data.
    params : GMMParams
    covariance_type : str
    output : {'proba', 'labels', 'log_prob_norm', 'criteria'}
        The responsibilities (n_blocks, block_size, K); the most probable
        component (n_blocks, block_size), int32; ``log p(x)``
        (n_blocks, block_size); or ``log p(x)`` and the log of the largest
        responsibility side by side (n_blocks, block_size, 2), what BIC and
        ICL need. Only that result leaves the device.
    form : EStepForm, default=EXPANDED
        :data:`DIRECT` for parameters that the expanded square does not
        represent accurately (:func:`form_for`).
    """
    prepared = form.prepare(params, covariance_type)

    def block(X):
        weighted = form.weighted_log_prob(X, prepared, covariance_type)
        if output == "labels":
            return jnp.argmax(weighted, axis=1).astype(jnp.int32)
        log_prob_norm, resp = normalise(weighted)
        if output == "criteria":
            return jnp.stack([log_prob_norm, jnp.max(weighted, axis=1) - log_prob_norm], axis=-1)
        return resp if output == "proba" else log_prob_norm

    return lax.map(block, X_blocks)

