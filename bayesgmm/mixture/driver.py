"""The one fit driver: settings, candidates and restarts, the direct-form retry, the result.

A fit is a batch of candidates (the ``n_init`` restarts of every requested
``n_components``) run by one data pass (:class:`DataPass`): in memory,
sharded over devices or processes (:func:`in_memory_pass`, used by
:func:`fit_sweep` and :func:`fit_gmm`), or streamed from chunks
(:func:`bayesgmm.mixture.streaming.streamed_pass`). The pass only runs EM
over its data; everything else exists once, here (:func:`fit_candidates`):
the checks of the settings and of user-given initial values, the draws of
the initial responsibilities (scikit-learn's random stream), restart
selection with one tie rule (:func:`bayesgmm.mixture.engine.best_candidate`),
the retry in the direct form, verbose output and the result, with the
singular-covariance error in :func:`single_result`.
"""

from __future__ import annotations

import functools
import time
from typing import NamedTuple

import jax
import numpy as np

from bayesgmm import _progress, structures
from bayesgmm import _validation as v
from bayesgmm.mixture import incomplete
from bayesgmm.mixture.blocks import (
    DataLayout,
    block_layout,
    local_rows,
    n_init_batches,
    process_sum,
    resolve_mesh,
    to_host,
    weighted_column_sum,
)
from bayesgmm.mixture.data_pass import DataPass, in_memory_run
from bayesgmm.mixture.engine import (
    best_candidate,
    lower_bound_history,
    wants_progress_bar,
)
from bayesgmm.mixture.forms import DIRECT, EXPANDED
from bayesgmm.mixture.initialisation import (
    copy_random_state,
    hierarchical_start,
    initial_params,
    initial_responsibilities,
    scikit_learn_seeded_start,
)
from bayesgmm.mixture.parameters import (
    EMResult,
    EMState,
    GMMParams,
    _padded,
    active_components,
    active_params,
    pad_components,
    precision_scope,
)
from bayesgmm.mixture.prior import prior_values, stacked
from bayesgmm.mixture.rounding import covariances_resolved, expanded_form_is_accurate
from bayesgmm.mixture.settings import (
    Settings,
    check_initial_values,
    check_settings,
    fit_sample_weight,
)

# --------------------------------------------------------------------------
# In-memory fits (one device, a mesh, several processes)
# --------------------------------------------------------------------------


def fit_gmm(X, sample_weight=None, *, n_components: int, **settings) -> EMResult:
    """Fit one Gaussian mixture by EM (validation, initialisation, jitted loop).

    :func:`fit_sweep` for one value of ``n_components``; raises when a
    covariance becomes singular. See :func:`fit_sweep` for the parameters.

    Returns
    -------
    EMResult
        NumPy arrays of ``dtype``.

    Raises
    ------
    ValueError
        On invalid input (before any work), or when a covariance becomes
        singular during the fit (increase ``reg_covar``).
    """
    return single_result(fit_sweep(X, sample_weight, n_components=[n_components], **settings))


def fit_sweep(
    X,
    sample_weight=None,
    *,
    n_components,
    covariance_type: str = "full",
    tol: float = 1e-3,
    reg_covar: float = 1e-6,
    max_iter: int = 100,
    n_init: int = 1,
    init_params: str = "kmeans",
    random_state=None,
    weights_init=None,
    means_init=None,
    precisions_init=None,
    dtype="float64",
    warm_start: tuple[GMMParams, float] | None = None,
    verbose: int = 0,
    verbose_interval: int = 10,
    devices=None,
    start_labels: dict | None = None,
    prior=None,
    missing: str = "raise",
    family=None,
) -> list[EMResult]:
    """Fit mixtures of several sizes, each with ``n_init`` restarts, in one compiled run.

    Every candidate (a value of ``n_components`` and one of its restarts)
    carries the same padded number of components (:func:`component_bucket`),
    so all run batched in one program (:func:`run_em`): one matrix product
    per block serves the components of every candidate side by side, and
    each candidate stops at its own convergence. The result for each value
    of ``n_components`` equals ``fit_gmm`` with that value alone, and the
    fit of scikit-learn's ``GaussianMixture(n_components=k, n_init=n_init,
    random_state=random_state)`` (the restarts of each value draw from
    ``check_random_state(random_state)`` in turn, as separate fits would).

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        Or a ``jax.Array`` sharded over its first axis with a ``NamedSharding``
        (the fit then runs over that mesh). In a multi-process run, this
        process's rows.
    sample_weight : array-like of shape (n_samples,), optional
        Non-negative weights; every statistic (initialisation included) is
        weighted. ``None`` means unit weights.
    n_components : sequence of int
        The sizes to fit. ``weights_init``, ``means_init``,
        ``precisions_init`` and ``warm_start`` need a single size.
    covariance_type, tol, reg_covar, max_iter, n_init, \
    init_params, random_state, weights_init, means_init, precisions_init
        As in :class:`sklearn.mixture.GaussianMixture`.
    dtype : {'float64', 'float32'}
        Precision of the computation and of the returned arrays.
    warm_start : (GMMParams, float), optional
        Start from these parameters and lower bound instead of initialising
        (one run, no restarts).
    verbose, verbose_interval : int
        Progress printing as in scikit-learn.
    start_labels : dict of int to list of ndarray, optional
        The initial labels of each size's restarts, drawn as this fit would
        draw them (:func:`initial_start_labels`), so that a grid over
        structures draws them once; they replace the draws.
    prior : None, 'default', ConjugatePrior or dict
        mclust's conjugate prior: MAP-EM (:mod:`bayesgmm.mixture.prior`),
        its defaults computed from ``X`` for each size. Not with several
        processes.
    family : structures.Family, optional
        Structures of ``covariance_type``'s representation, it among them,
        that share one compiled program (a traced index picks the M-step):
        a grid over them compiles one program where it would compile one per
        structure. The fits are those of each structure's own program, to
        rounding.
    devices : None, int, 'all', list of jax.Device or jax.sharding.Mesh
        Shard the samples over these devices (see :func:`resolve_mesh`).
        Results equal the single-device fit up to rounding. With several
        processes (``jax.distributed.initialize``), 'all' spans every
        process; initial parameters not given by the user are then computed
        on process 0 from its rows and broadcast.

    Returns
    -------
    list of EMResult
        One per value of ``n_components``, in order; ``failed`` is True where
        a covariance stayed singular (its parameters are then not usable).

    Raises
    ------
    ValueError
        On invalid input, before any work.
    """
    from sklearn.utils import check_random_state

    sizes, settings = check_settings(
        n_components, covariance_type=covariance_type, tol=tol, reg_covar=reg_covar,
        max_iter=max_iter, n_init=n_init, init_params=init_params, dtype=dtype,
        warm_start=warm_start, weights_init=weights_init, means_init=means_init,
        precisions_init=precisions_init, prior=prior, family=family,
    )
    dtype = settings.dtype
    X, data_mesh = local_rows(X)
    mesh = resolve_mesh(devices) if devices is not None else data_mesh
    multi_process = mesh is not None and jax.process_count() > 1
    if multi_process and settings.prior is not None:
        raise ValueError(
            "A multi-process fit takes no prior (its defaults need every process's rows). "
            "Fit in one process, or set prior=None."
        )
    if multi_process and len(sizes) != 1:
        raise ValueError(
            f"A multi-process fit takes one number of components; got n_components={sizes}. "
            "Fit each size on its own."
        )
    missing = incomplete.check_missing(missing)
    X = v.check_array(X, dtype, min_samples=1 if multi_process else 2, copy=False, missing=missing)
    n_samples, n_features = X.shape
    structures.check_n_features(covariance_type, n_features)
    weights = fit_sample_weight(sample_weight, n_samples, dtype)
    has_missing = missing == "marginalize" and bool(np.isnan(X).any())
    if has_missing:
        if mesh is not None:
            raise ValueError(incomplete.SHARDED_MESSAGE)
        X, weights = incomplete.usable_rows(X, weights)
        n_samples = X.shape[0]
    totals = process_sum(
        np.concatenate(
            [[n_samples, np.count_nonzero(weights)],
             weighted_column_sum(weights, incomplete.mean_imputed(X, incomplete.observed_mean(X, weights))
                                 if has_missing else X),
             [weights.sum()]]
        )
    )
    largest = max(sizes)
    v.check_n_samples(int(totals[0]), largest)
    v.check_positive_weight_count(np.ones(int(totals[1])), largest)
    given = check_initial_values(
        settings, largest, n_features,
        weights_init=weights_init, means_init=means_init, precisions_init=precisions_init,
    )
    # Initialisation sees the data as given (scikit-learn's draws); EM runs on
    # data centred at their weighted mean, and the means are shifted back.
    centre = (totals[2:-1] / totals[-1]).astype(dtype)
    values = None
    if settings.prior is not None:
        values = prior_values(settings.prior, X, weights if sample_weight is not None else None, sizes,
                              settings.covariance_type, centre, dtype)
    problem = Problem(settings, centre, given, verbose, verbose_interval, start_labels, values)
    with precision_scope(dtype):
        data = (incomplete.in_memory_pass if has_missing else in_memory_pass)(
            X, weights if sample_weight is not None else None, weights, problem, sizes, mesh,
            multi_process,
        )
        # An int seeds each size afresh, as separate fits would; a RandomState
        # (or None, NumPy's global one) is drawn from size after size.
        return fit_candidates(
            data, problem, sizes, [check_random_state(random_state) for _ in sizes], warm_start,
            n_samples=int(totals[0]),
        )


def initial_start_labels(X, sample_weight, sizes, *, n_init: int, init_params: str,
                         random_state) -> dict:
    """The initial labels :func:`fit_sweep` would draw for each size and restart.

    They depend on the data, the sizes and the start, not on the covariance
    structure: a grid over structures (``GaussianMixtureIC``) draws them once
    and passes them to each structure's sweep as ``start_labels``.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    sample_weight : array-like of shape (n_samples,) or None
    sizes : list of int
    n_init : int
        Restarts per size (the hierarchical start has one).
    init_params : str
    random_state : None, int or numpy.random.RandomState
        As :func:`fit_sweep` takes it.

    Returns
    -------
    dict of int to list of ndarray
        Per size, the restarts' labels (``(n_samples,)`` int32, -1 for none)
        or dense responsibilities (``'random'``).
    """
    from sklearn.utils import check_random_state

    weights = None if sample_weight is None else fit_sample_weight(sample_weight, X.shape[0], X.dtype)
    states = [check_random_state(random_state) for _ in sizes]
    if init_params == "hierarchical":
        return {size: [labels] for size, labels in
                hierarchical_start(X, weights, sizes, states[0]).items()}
    return {size: [initial_responsibilities(X, weights, size, init_params, state)
                   for _ in range(n_init)] for size, state in zip(sizes, states)}


def in_memory_pass(X, sample_weight, weights, problem: "Problem", sizes, mesh, multi_process) -> "DataPass":
    """The :class:`DataPass` of data held in memory, on one device or sharded over ``mesh``.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        This process's rows, as given.
    sample_weight : ndarray of shape (n_samples,) or None
        The user's weights (None: unit weights, scikit-learn's draws).
    weights : ndarray of shape (n_samples,)
        The weights of the fit.
    problem : Problem
    sizes : list of int
    mesh : jax.sharding.Mesh or None
    multi_process : bool
        Initial values are then computed by process 0 and broadcast.
    """
    settings = problem.settings
    n_samples, n_features = X.shape
    # One size is padded to its bucket, so that fits of nearby sizes share a
    # program. A grid of sizes carries its largest (the others padded to it):
    # still one program for the grid, and no work on components beyond it.
    layout = DataLayout.create(
        n_samples, max(sizes), n_features, mesh, np.dtype(settings.dtype).itemsize,
        settings.covariance_type, pad_components=len(sizes) == 1,
    )
    X_blocks = layout.put(X, offset=problem.centre)
    weight_blocks = layout.put(weights)
    run = in_memory_run(X_blocks, weight_blocks, settings, mesh=mesh)
    shared_start = None
    if multi_process:
        shared_start = functools.partial(
            _process_zero_initialisation, X, sample_weight, weights, problem
        )
    return DataPass(
        layout.n_components, X, sample_weight, layout, X_blocks, weight_blocks, run,
        n_init_batches(
            len(sizes) * settings.n_init, layout, layout.n_components, n_features
        ),
        shared_start,
    )


def _process_zero_initialisation(X, sample_weight, weights, problem, n_components: int, random_state):
    """Initial parameters computed by process 0 from its rows, sent to every process."""
    from jax.experimental import multihost_utils

    settings = problem.settings
    covariance_type = settings.covariance_type
    n_features = X.shape[1]
    layout = DataLayout(
        X.shape[0], X.shape[0],
        *block_layout(X.shape[0], n_components, n_features, X.dtype.itemsize, covariance_type),
        None, n_components,
    )
    if jax.process_index() == 0:
        # Process 0's rows stand in for the data at initialisation.
        resp = None
        if needs_responsibilities(problem.given):
            resp = initial_responsibilities(
                X, sample_weight, n_components, settings.init_params, random_state
            )[:, None]
        params = initial_params(
            layout, layout.put(X, offset=problem.centre), layout.put(weights), resp,
            active_components(n_components, n_components)[None],
            covariance_type=covariance_type, reg_covar=settings.reg_covar,
            **centred_initial_values(problem.given, problem.centre),
        )
        params = scikit_learn_seeded_start(params, resp, X, sample_weight, covariance_type,
                                           init_params=settings.init_params, given=problem.given)
        params = GMMParams(*(np.asarray(leaf[0]) for leaf in params))
    else:
        shape = structures.get(covariance_type).parameter_shape(n_components, n_features)
        zeros = lambda *s: np.zeros(s, X.dtype)  # noqa: E731
        params = GMMParams(zeros(n_components), zeros(n_components, n_features), zeros(*shape), zeros(*shape))
    return GMMParams(*multihost_utils.broadcast_one_to_all(tuple(params)))


# --------------------------------------------------------------------------
# What every fit shares
# --------------------------------------------------------------------------


class Problem(NamedTuple):
    """What every candidate of one fit shares (host side)."""

    settings: Settings
    centre: np.ndarray  # (n_features,) weighted mean of all the data (every process's rows)
    given: dict  # weights_init, means_init (not centred), precisions_init: validated or None
    verbose: int
    verbose_interval: int
    # size -> initial labels of each restart (a list of (n_rows,) int arrays,
    # -1 for none, or dense (n_rows, size) responsibilities), drawn once for a
    # whole grid (GaussianMixtureIC: they do not depend on the structure);
    # None: drawn per fit.
    start_labels: dict | None = None
    # size -> PriorValues (bayesgmm.mixture.prior.prior_values), or None: maximum likelihood.
    prior_values: dict | None = None

    def candidate_priors(self, sizes):
        """The stacked PriorValues of candidates of these sizes (one per candidate), or None."""
        return None if self.prior_values is None else stacked(self.prior_values, sizes)


def single_result(results: list[EMResult]) -> EMResult:
    """The result of a fit of one size; a singular covariance raises the error that says what to change."""

    (result,) = results
    if result.failed:
        message = v.ILL_DEFINED_COVARIANCE_MESSAGE
        raise ValueError(message + (v.FLOAT32_HINT if result.params.means.dtype == np.float32 else ""))
    return result


def fit_candidates(
    data: DataPass, problem: Problem, sizes, random_states, warm_start, *, n_samples: int
) -> list[EMResult]:
    """Run every candidate of every size through ``data``; each size's best fit.

    Parameters
    ----------
    data : DataPass
    problem : Problem
    sizes : list of int
    random_states : list of numpy.random.RandomState
        One per size (they may be one object, drawn from size after size).
    warm_start : (GMMParams, float) or None
        Start one candidate from these parameters and lower bound.
    n_samples : int
        Rows of the whole data (every process), for the progress-bar rule.

    Returns
    -------
    list of EMResult, one per size; ``failed`` where a covariance stayed singular.
    """
    settings = problem.settings
    n_features = data.rows.shape[1]
    bar = None
    if settings.max_iter > 0 and jax.process_index() == 0 and wants_progress_bar(
        n_samples, max(sizes), n_features, settings.covariance_type
    ):
        bar = _progress.open_bar(settings.max_iter, "EM")
    reporter = _progress.IterationReporter(
        problem.verbose_interval if problem.verbose >= 2 else 0, bar
    )
    try:
        start = time.perf_counter()

        def attempt(indices, form, states):
            """Best (state, failed) per size, and each size's random state before its draws."""
            if warm_start is not None or data.shared_start is not None:
                before = [copy_random_state(states[0])]
                starts = _given_start(data, problem, sizes[0], warm_start, states[0])
                prior = problem.candidate_priors(sizes[:1])
                return [_best(data.run(*starts, form, reporter, prior))], before
            return _fresh_candidates(
                data, problem, [sizes[i] for i in indices], [states[i] for i in indices], form,
                reporter,
            )

        # A second attempt in the direct form must start where the first did:
        # each size from a copy of its random state taken before its first draw
        # (sizes may share one RandomState, drawn from size after size).
        best, retry_states = attempt(range(len(sizes)), EXPANDED, random_states)
        # Components too far from the centre, in units of their spread, for
        # the expanded square (a cluster collapsed onto distant or duplicated
        # points; float32 data with a constant feature per cluster), or a
        # failure that rounding may have caused: the same fit again in the
        # direct form, as accurate as scikit-learn's.
        dtype, covariance_type = settings.dtype, settings.covariance_type
        redo = [
            index for index, (state, failed) in enumerate(best)
            if failed or not expanded_form_is_accurate(
                _host_params(state, dtype, sizes[index], covariance_type), covariance_type, dtype
            )
        ]
        if redo:
            redone, _ = attempt(redo, DIRECT, retry_states)
            for index, again in zip(redo, redone):
                best[index] = again
        results = []
        for size, (state, failed) in zip(sizes, best):
            # Covariances the dtype cannot hold (collinear features in float32)
            # fail as a singular one does: the error names float64 and reg_covar.
            failed = failed or not covariances_resolved(
                _host_params(state, dtype, size, covariance_type), covariance_type, dtype
            )
            if problem.verbose:
                status = "converged" if bool(state.converged) else "did not converge"
                print(
                    f"Initialization {status}. time lapse {time.perf_counter() - start:.5f}s\t "
                    f"lower bound {float(state.lower_bound):.5f}",
                    flush=True,
                )
            results.append(_result(state, failed, size, problem.centre, dtype, covariance_type))
        return results
    finally:
        reporter.close()


def _best(states: EMState):
    """The best candidate's host state (:func:`best_candidate`) and whether any failed."""
    best = best_candidate(states.lower_bound)
    return jax.tree_util.tree_map(lambda leaf: leaf[best], states), bool(np.any(states.failed))


def _result(state: EMState, failed: bool, n_components: int, centre, dtype, covariance_type) -> EMResult:
    """A candidate's host state as an :class:`EMResult`, means shifted back by ``centre``."""
    n_iter = int(state.n_iter)
    params = _host_params(state, dtype, n_components, covariance_type)
    return EMResult(
        params=params._replace(means=params.means + centre),
        lower_bound=float(state.lower_bound),
        n_iter=n_iter,
        converged=bool(state.converged),
        lower_bounds=lower_bound_history(np.asarray(state.lower_bounds).astype(dtype), n_iter),
        failed=bool(failed),
    )


def _host_params(state: EMState, dtype, n_components=None, covariance_type="full") -> GMMParams:
    """The active parameters of a fitted (host or device) state as host arrays of ``dtype``."""
    params = GMMParams(*(to_host(leaf).astype(dtype) for leaf in state.params))
    if n_components is None:
        return params
    return active_params(params, n_components, covariance_type)


def _given_start(data: DataPass, problem: Problem, n_components: int, warm_start, random_state):
    """The one start (padded) of a warm or shared (multi-process) fit, which has one size."""
    dtype = problem.settings.dtype
    if warm_start is not None:
        params, lower_bound = warm_start
        params = GMMParams(*(np.asarray(leaf, dtype) for leaf in params))
        params = params._replace(means=params.means - problem.centre)
    else:
        params = data.shared_start(n_components, random_state)
        lower_bound = -np.inf
    params = pad_components(params, data.n_components, problem.settings.covariance_type)
    batch = GMMParams(*(np.asarray(leaf)[None] for leaf in params))
    active = active_components(n_components, data.n_components)[None]
    return batch, np.full((1,), lower_bound, dtype), active


def centred_initial_values(given: dict, centre: np.ndarray) -> dict:
    """User-given initial values with ``means_init`` moved to data centred at ``centre``."""
    means = given["means_init"]
    return dict(given, means_init=None if means is None else means - centre)


def needs_responsibilities(given: dict) -> bool:
    return any(given[name] is None for name in ("weights_init", "means_init", "precisions_init"))


def _fresh_candidates(data: DataPass, problem: Problem, sizes, random_states, form, reporter):
    """Initialise and run every (size, restart) candidate, ``data.batch_size`` at a time.

    Candidates of all sizes share each batch; the best restart of each size
    is kept (:func:`best_candidate`). A ``centred`` ``form`` also makes the initial
    M-step take its moments about the initial means.

    Returns
    -------
    best : list of (EMState on the host, bool failed), one per size
    before : list of numpy.random.RandomState
        Copies of each size's random state before its first draw.
    """
    settings = problem.settings
    n_padded = data.n_components
    given = centred_initial_values(problem.given, problem.centre)
    n_init = settings.n_init if needs_responsibilities(given) else 1
    candidates = [(group, restart) for group in range(len(sizes)) for restart in range(n_init)]
    finals, failures = [[] for _ in sizes], [False] * len(sizes)
    # One tree serves every size (and every restart: the start is deterministic).
    drawn_once = problem.start_labels
    if drawn_once is None and settings.init_params == "hierarchical" and needs_responsibilities(given):
        drawn_once = {size: [labels] for size, labels in hierarchical_start(
            data.rows, data.row_weights, sizes, random_states[0]).items()}
    before = [None] * len(sizes)
    for batch_start in range(0, len(candidates), data.batch_size):
        batch = candidates[batch_start : batch_start + data.batch_size]
        resp = []
        for group, restart in batch:
            if restart == 0:
                before[group] = copy_random_state(random_states[group])
            if problem.verbose:
                print(f"Initialization {restart}", flush=True)
            if needs_responsibilities(given):
                if drawn_once is not None:
                    own = drawn_once[sizes[group]]
                    drawn = own[restart % len(own)]
                else:
                    drawn = initial_responsibilities(
                        data.rows, data.row_weights, sizes[group], settings.init_params,
                        random_states[group],
                    )
                # Dense ('random') responsibilities are zero for inactive components.
                resp.append(_padded(drawn, n_padded, 0.0, axis=1) if drawn.ndim == 2 else drawn)
        active = np.stack([active_components(sizes[group], n_padded) for group, _ in batch])
        prior = problem.candidate_priors([sizes[group] for group, _ in batch])
        params = initial_params(
            data.init_layout, data.init_blocks, data.init_weight_blocks,
            np.stack(resp, axis=1) if resp else None, active,
            covariance_type=settings.program_structure, reg_covar=settings.reg_covar,
            form=form, prior=prior, choice=settings.structure_choice, **given,
        )
        params = scikit_learn_seeded_start(
            params, np.stack(resp, axis=1) if resp else None, data.rows, data.row_weights,
            settings.covariance_type, init_params=settings.init_params, given=given, prior=prior,
        )
        states = data.run(params, np.full((len(batch),), -np.inf), active, form, reporter, prior)
        for index, (group, _) in enumerate(batch):
            finals[group].append(jax.tree_util.tree_map(lambda leaf: leaf[index], states))
            failures[group] = failures[group] or bool(states.failed[index])
    best = []
    for group_states, failed in zip(finals, failures):
        chosen = best_candidate([state.lower_bound for state in group_states])
        best.append((group_states[chosen], failed))
    return best, before
