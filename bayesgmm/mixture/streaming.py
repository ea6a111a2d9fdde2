"""Exact EM over data larger than memory: one pass over the chunks per iteration.

EM's sufficient statistics are sums over the samples, so summing them chunk
by chunk gives the same iteration as the in-memory fit. The data come from
a ``numpy.memmap``, a zarr or dask array (duck-typed: any object with
``shape``, ``dtype``, row slicing and a ``chunks`` attribute), or a callable
returning an iterable of chunks (:mod:`bayesgmm.mixture.sources`);
``GaussianMixture.fit`` dispatches here for such inputs. This module is the
streamed data pass (:func:`streamed_pass`) of the one fit driver
(:mod:`bayesgmm.mixture.driver`), which owns the settings, the restarts, the
retry in the direct form and the result; streams seen once are fitted by
online EM instead (:mod:`bayesgmm.mixture.online`).

One pass
--------
The rows are regrouped into chunks of a fixed number of rows (the last one
padded with zero-weight rows, so every chunk has the same shape and runs the
same compiled program), centred at a fixed shift and cut into the blocks of
:func:`bayesgmm.mixture.blocks.block_layout` (:mod:`bayesgmm.mixture.chunks`).
Per chunk one jitted call adds the chunk's statistics of every candidate to
a running total on the device; while it runs (JAX dispatch is asynchronous)
the next chunk is read and ``jax.device_put`` to the device. At most one chunk waits behind the running
one, so the memory in use is a few chunks, whatever the number of rows.
After the pass the jitted M-step and convergence test
(:func:`bayesgmm.mixture.engine.em_step`, as in memory) run on the totals.

Missing values
--------------
With ``missing='marginalize'`` and NaN in the data, a chunk's incomplete
rows are grouped by pattern into tiles on the host
(:func:`bayesgmm.mixture.incomplete.tile_rows`,
:func:`bayesgmm.mixture.chunks.chunk_tiles`) and their statistics are those
of the in-memory fit
(:func:`bayesgmm.mixture.incomplete.incomplete_statistics`,
:func:`add_incomplete_chunk_statistics`); the complete rows keep the
chunk's blocks, and a chunk without NaN takes the usual program.

Examples
--------
A callable that yields the chunks again on every call (here from memory; in
practice from files or a database):

>>> import numpy as np
>>> from bayesgmm import GaussianMixture
>>> rng = np.random.default_rng(0)
>>> X = np.concatenate([rng.normal(0, 1, (500, 2)), rng.normal(6, 1, (500, 2))])
>>> def chunks():
...     return (X[start : start + 100] for start in range(0, 1000, 100))
>>> exact = GaussianMixture(2, random_state=0).fit(chunks)
>>> in_memory = GaussianMixture(2, random_state=0).fit(X)
>>> bool(np.allclose(exact.means_, in_memory.means_, rtol=1e-10))
True
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from bayesgmm import _program_cache, _progress, structures
from bayesgmm import _validation as v
from bayesgmm.mixture import blocks, driver, engine, forms, incomplete, parameters, sources
from bayesgmm.mixture.chunks import ChunkLayout, staged_chunks
from bayesgmm.mixture.settings import check_initial_values, check_settings
from bayesgmm.mixture.sources import StreamSummary, default_rows

# Bytes of data per chunk (rows = DEFAULT_CHUNK_BYTES / (n_features * itemsize)).
# Small on purpose: XLA's temporaries and the allocator's retained memory
# grow with the chunk (measured: +70 MB resident per doubling around 1-8 MiB),
# while a pass is no faster with larger chunks once a chunk is a few blocks.
DEFAULT_CHUNK_BYTES = 1 << 20

# --------------------------------------------------------------------------
# One pass of statistics over the staged chunks
# --------------------------------------------------------------------------


def zero_statistics(
    n_components: int, n_features: int, covariance_type: str, dtype, batch_shape=()
):
    """All-zero :class:`bayesgmm.mixture.parameters.SufficientStats` with a leading ``batch_shape``."""
    shapes = parameters.SufficientStats(
        (n_components,),
        (n_components, n_features),
        structures.get(covariance_type).second_shape(n_components, n_features),
        (),
        (),
    )
    return parameters.SufficientStats(*(jnp.zeros(tuple(batch_shape) + shape, dtype) for shape in shapes))


@_program_cache.bounded
@functools.partial(jax.jit, static_argnames=("covariance_type", "form"))
def add_chunk_statistics(
    total, X_blocks, weight_blocks, params: parameters.GMMParams, *, covariance_type: str,
    form: forms.EStepForm = forms.EXPANDED,
):
    """``total`` plus the statistics of one chunk, for every restart.

    Parameters
    ----------
    total : SufficientStats
        Leaves with a leading axis of length n_init.
    X_blocks : Array of shape (n_blocks, block_size, n_features)
    weight_blocks : Array of shape (n_blocks, block_size)
    params : GMMParams
        Leaves with a leading axis of length n_init.
    form : bayesgmm.mixture.forms.EStepForm, default=EXPANDED
        :data:`bayesgmm.mixture.forms.DIRECT`: moments about each restart's current means.

    Returns
    -------
    SufficientStats like ``total``.
    """
    chunk = jax.vmap(
        lambda restart: forms.accumulate_statistics(
            X_blocks, weight_blocks, restart, covariance_type, form=form
        )
    )(params)
    return jax.tree_util.tree_map(jnp.add, total, chunk)


@_program_cache.bounded
@functools.partial(jax.jit, static_argnames=("covariance_type", "form"))
def add_incomplete_chunk_statistics(
    total, X_blocks, weight_blocks, tiles, params: parameters.GMMParams, *, covariance_type: str,
    form: forms.EStepForm = forms.EXPANDED,
):
    """:func:`add_chunk_statistics` of a chunk with missing values: its blocks and its tiles.

    The complete rows take the fast path in ``X_blocks``; the incomplete ones
    (weight 0 there) are in ``tiles``, a
    :class:`bayesgmm.mixture.incomplete.PatternTiles`: the statistics are
    :func:`bayesgmm.mixture.incomplete.incomplete_statistics`, as in memory.
    """
    data = incomplete.IncompleteData(X_blocks, tiles)
    chunk = jax.vmap(
        lambda restart: incomplete.incomplete_statistics(
            data, weight_blocks, restart, covariance_type, form=form
        )
    )(params)
    return jax.tree_util.tree_map(jnp.add, total, chunk)


def statistics_pass(chunks, params: parameters.GMMParams, covariance_type: str, form: forms.EStepForm = forms.EXPANDED):
    """One pass over the chunks: the summed statistics of every restart.

    The statistics of chunk i are dispatched (asynchronously), then chunk
    i+1 is read and moved to the device while they compute, then the pass
    waits for chunk i-1. So chunk i+1 is read while chunk i-1 may still run:
    three chunks in flight at most (:data:`bayesgmm.mixture.chunks.N_HOST_BUFFERS`).

    Parameters
    ----------
    chunks : iterable of (X_blocks, weight_blocks[, tiles]) host arrays
        As yielded by :func:`bayesgmm.mixture.chunks.staged_chunks`; at least one. Chunks with tiles
        go through :func:`add_incomplete_chunk_statistics`.
    params : GMMParams
        On the device, leaves with a leading axis of length n_init.
    covariance_type : str
    form : bayesgmm.mixture.forms.EStepForm, default=EXPANDED
        See :func:`add_chunk_statistics`.

    Returns
    -------
    SufficientStats
        On the device, leaves with a leading axis of length n_init.
    """
    n_init, n_components, n_features = params.means.shape
    total = zero_statistics(
        n_components, n_features, covariance_type, params.means.dtype, (n_init,)
    )
    iterator = iter(chunks)
    pending = jax.device_put(next(iterator))
    previous = None
    while pending is not None:
        add = add_chunk_statistics if len(pending) == 2 else add_incomplete_chunk_statistics
        total = add(total, *pending, params, covariance_type=covariance_type, form=form)
        host = next(iterator, None)
        pending = None if host is None else jax.device_put(host)
        if previous is not None:
            jax.block_until_ready(previous)
        previous = total
    return total


# --------------------------------------------------------------------------
# EM driven from the host, one pass per iteration
# --------------------------------------------------------------------------


def _em_update_one(
    state: parameters.EMState, stats: parameters.SufficientStats, active, *, covariance_type,
    reg_covar, tol, max_iter, form,
):
    """:func:`bayesgmm.mixture.engine.em_step` for one candidate; a stopped one is kept as it is."""
    updated = engine.em_step(
        state, stats, covariance_type=covariance_type, tol=tol, reg_covar=reg_covar,
        shift=state.params.means if form.centred else None, active=active,
    )
    running = engine.is_active(state, max_iter)
    return jax.tree_util.tree_map(lambda new, old: jnp.where(running, new, old), updated, state)


@_program_cache.bounded
@functools.partial(
    jax.jit, static_argnames=("covariance_type", "reg_covar", "tol", "max_iter", "form")
)
def em_update(
    state: parameters.EMState,
    stats: parameters.SufficientStats,
    active,
    *,
    covariance_type: str,
    reg_covar: float,
    tol: float,
    max_iter: int,
    form: forms.EStepForm = forms.EXPANDED,
):
    """M-step and convergence test for every candidate (leading axis of the leaves).

    ``active`` (n_candidates, n_components): each candidate's active
    components. With a ``centred`` form, ``stats`` hold moments about each
    candidate's current means.
    """
    update = functools.partial(
        _em_update_one,
        covariance_type=covariance_type,
        reg_covar=reg_covar,
        tol=tol,
        max_iter=max_iter,
        form=form,
    )
    return jax.vmap(update)(state, stats, active)


def initial_state(params: parameters.GMMParams, initial_lower_bound, max_iter: int) -> parameters.EMState:
    """The EM state of every candidate (leading axis of the leaves) before the first iteration."""
    return jax.vmap(lambda p, bound: engine.initial_state(p, bound, max_iter))(
        params, jnp.broadcast_to(jnp.asarray(initial_lower_bound, params.means.dtype), params.weights.shape[:1])
    )


def _report_progress(reporter, state: parameters.EMState, previous: parameters.EMState, max_iter: int) -> None:
    """Send each candidate that just ran to ``reporter`` (verbose lines, progress bar)."""
    ran = np.asarray(engine.is_active(previous, max_iter))
    changes = np.asarray(state.lower_bound - previous.lower_bound)
    for index in np.flatnonzero(ran):
        reporter(state.n_iter[index], changes[index], state.lower_bound[index])


def run_passes(
    source, summary: StreamSummary, layout: ChunkLayout, params, initial_lower_bound, active, *,
    covariance_type: str, tol: float, reg_covar: float, max_iter: int, dtype,
    form: forms.EStepForm = forms.EXPANDED, reporter=_progress.IterationReporter(),
) -> parameters.EMState:
    """EM from ``params``, one pass over the chunks per iteration, until every candidate stops.

    Parameters
    ----------
    source, summary, layout
        The data (:func:`bayesgmm.mixture.sources.open_source`), what the
        validation pass learnt of them, and the chunks' shape.
    params : GMMParams
        Centred, leaves with a leading axis of length n_candidates.
    initial_lower_bound : array of shape (n_candidates,)
    active : ndarray of shape (n_candidates, n_components) of bool
    form : EStepForm
        How every pass computes its E-step (:func:`add_chunk_statistics`).
    reporter : bayesgmm._progress.IterationReporter

    Returns
    -------
    EMState of every candidate, on the host. The passes stop early once
    every size (candidates with the same number of active components) has
    a failed candidate: the driver redoes such sizes, so further passes
    would be wasted.
    """
    update = functools.partial(
        em_update, covariance_type=covariance_type, reg_covar=reg_covar, tol=tol,
        max_iter=max_iter, form=form,
    )
    state = initial_state(params, initial_lower_bound, max_iter)
    sizes = np.asarray(active).sum(axis=1)
    active = jnp.asarray(active)
    while True:
        failed = np.asarray(state.failed)
        if all(failed[sizes == size].any() for size in np.unique(sizes)):
            break
        if not np.asarray(engine.is_active(state, max_iter)).any():
            break
        chunks = staged_chunks(source, layout, summary.centre, summary.n_samples, dtype,
                               summary.weight_scale, summary.missing)
        previous = state
        state = update(state, statistics_pass(chunks, state.params, covariance_type, form), active)
        if reporter.active:
            _report_progress(reporter, state, previous, max_iter)
    return jax.tree_util.tree_map(blocks.to_host, state)


def streamed_pass(source, summary: StreamSummary, problem: driver.Problem, sizes, chunk_rows: int):
    """The :class:`bayesgmm.mixture.driver.DataPass` of data read chunk by chunk.

    EM runs one pass over ``source`` per iteration (:func:`run_passes`);
    initial responsibilities are drawn from, and the initial M-step taken
    on, the validation pass's uniform sample (``summary.sample``), in memory;
    with missing values, its missing entries filled with the observed means
    (``summary.centre``), as the in-memory fit fills them
    (:func:`bayesgmm.mixture.incomplete.in_memory_pass`). All candidates run
    in one batch: one pass serves them all.
    """
    settings = problem.settings
    n_features = summary.n_features
    n_padded = parameters.component_bucket(
        max(sizes), summary.n_samples, n_features, settings.covariance_type
    )
    layout = ChunkLayout.create(chunk_rows, summary.n_samples, n_padded, n_features)
    sample = incomplete.mean_imputed(summary.sample, summary.centre) if summary.missing else summary.sample
    sample_layout = blocks.DataLayout.create(sample.shape[0], n_padded, n_features)
    weights = np.ones(sample.shape[0], sample.dtype) if summary.sample_weights is None else summary.sample_weights

    def run(params, bounds, active, form, reporter, prior=None):
        # A streamed fit's Problem holds no prior (GaussianMixture refuses one for chunked data).
        assert prior is None
        return run_passes(
            source, summary, layout, params, bounds, active,
            covariance_type=settings.covariance_type, tol=settings.tol,
            reg_covar=settings.reg_covar, max_iter=settings.max_iter, dtype=settings.dtype,
            form=form, reporter=reporter,
        )

    return driver.DataPass(
        n_padded, sample, summary.sample_weights, sample_layout,
        sample_layout.put(sample, offset=summary.centre), sample_layout.put(weights), run,
        batch_size=len(sizes) * settings.n_init,
    )


def _check_rows(name: str, value) -> int | None:
    return None if value is None else v.check_int(name, value, 1)


def fit_streaming(
    X,
    sample_weight=None,
    *,
    n_components: int,
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
    warm_start: tuple[parameters.GMMParams, float] | None = None,
    verbose: int = 0,
    verbose_interval: int = 10,
    devices=None,
    chunk_size: int | None = None,
    init_size: int | None = None,
    missing: str = "raise",
) -> parameters.EMResult:
    """Exact EM over data read chunk by chunk: the out-of-core :func:`bayesgmm.mixture.driver.fit_gmm`.

    Each iteration is one pass over the data; the result equals the
    in-memory fit of the same data from the same initial parameters (up to
    the rounding of sums taken in another order).

    Parameters
    ----------
    X : numpy.memmap, zarr array, dask array, or callable
        The data, of shape (n_samples, n_features): a ``numpy.memmap`` or
        another 2-D array read by row slices (an object with ``shape``,
        ``dtype``, ``__getitem__`` and a ``chunks`` attribute, as zarr and
        dask arrays have) with a float dtype; or a callable that returns, on
        every call, a new iterable over the same chunks, each an array-like
        of shape (n_rows_i, n_features) or a tuple ``(X_chunk,
        weight_chunk)``.
    sample_weight : array-like of shape (n_samples,), optional
        Aligned with the rows (a ``numpy.memmap`` is read by slices too).
        Not with ``(X_chunk, weight_chunk)`` tuples.
    n_components, covariance_type, tol, reg_covar, max_iter, n_init, \
    init_params, random_state, weights_init, means_init, precisions_init, \
    dtype, warm_start, verbose, verbose_interval
        As in :func:`bayesgmm.mixture.driver.fit_gmm`. The ``n_init`` restarts run
        batched: one pass serves them all.
    devices : None
        Out-of-core fits run on the default device; anything else raises.
    missing : {'raise', 'marginalize'}, default='raise'
        'raise' refuses NaN (naming the chunk, row and column).
        'marginalize' fits them as values missing at random, as in memory
        (:mod:`bayesgmm.mixture.incomplete`): the validation pass checks the
        rows (a row with every value missing and a positive weight is
        refused, naming its row of the data; one of weight 0 is left out; a
        column with no observed value is refused) and centres at the observed
        means; the initialisation sample is mean-imputed; each chunk with
        incomplete rows adds their pattern tiles' statistics, complete chunks
        take the usual path. The result equals the in-memory fit.
    chunk_size : int, optional
        Rows per chunk sent to the device (rounded up to whole blocks).
        Default: ``DEFAULT_CHUNK_BYTES`` (1 MiB) of data. Peak memory grows
        with it, not with n_samples.
    init_size : int, optional
        Rows of the initialisation sample, a uniform sample of the data
        taken during the validation pass (every row when the data have no
        more). Default: ``DEFAULT_INIT_SIZE`` (100,000) rows, at most
        ``INIT_SAMPLE_BYTES`` (64 MiB). k-means and the other
        ``init_params`` run on this sample, in memory; user-given
        ``weights_init``/``means_init``/``precisions_init`` take precedence.

    Returns
    -------
    EMResult

    Raises
    ------
    ValueError
        On invalid settings or data (before the first iteration: a chunk of
        another width, a non-float array, NaN unless ``missing='marginalize'``,
        naming the chunk and row), or when a covariance becomes singular.
    """
    from sklearn.utils import check_random_state

    sizes, settings = check_settings(
        n_components, covariance_type=covariance_type, tol=tol, reg_covar=reg_covar,
        max_iter=max_iter, n_init=n_init, init_params=init_params, dtype=dtype,
        warm_start=warm_start, weights_init=weights_init, means_init=means_init,
        precisions_init=precisions_init,
    )
    dtype = settings.dtype
    missing = incomplete.check_missing(missing)
    chunk_size = _check_rows("chunk_size", chunk_size)
    init_size = _check_rows("init_size", init_size)
    if devices is not None:
        raise ValueError(
            "Out-of-core fits (memmap, zarr, dask or callable input) run on one device; "
            "leave devices=None, or load the data and shard it."
        )
    source = sources.open_source(X, sample_weight)
    initial_values_for = functools.partial(
        check_initial_values, settings, max(sizes),
        weights_init=weights_init, means_init=means_init, precisions_init=precisions_init,
    )
    # Array sources know their width: check the initial values before reading anything.
    given = initial_values_for(source.n_features) if source.n_features is not None else None
    random_state = check_random_state(random_state)
    summary = sources.scan(
        source,
        dtype=dtype,
        n_components=max(sizes),
        init_size=init_size,
        random_state=random_state,
        n_rows=_chunk_rows(chunk_size, source.n_features or 1, dtype),
        missing=missing == "marginalize",
    )
    given = given or initial_values_for(summary.n_features)
    structures.check_n_features(covariance_type, summary.n_features)
    if warm_start is not None:
        v.check_n_features(np.empty((0, summary.n_features)), np.shape(warm_start[0].means)[1])
    problem = driver.Problem(settings, summary.centre, given, verbose, verbose_interval)
    with parameters.precision_scope(dtype):
        data = streamed_pass(
            source, summary, problem, sizes, _chunk_rows(chunk_size, summary.n_features, dtype)
        )
        return driver.single_result(
            driver.fit_candidates(
                data, problem, sizes, [random_state] * len(sizes), warm_start,
                n_samples=summary.n_samples,
            )
        )


def _chunk_rows(chunk_size: int | None, n_features: int, dtype) -> int:
    """Rows per chunk: ``chunk_size`` if given, else ``DEFAULT_CHUNK_BYTES`` of data."""
    return chunk_size or default_rows(n_features, dtype, DEFAULT_CHUNK_BYTES)
