"""NUTS for the mixture model: every chain one ``lax.scan`` of NumPyro's kernel, all chains one ``jit``.

Chains are mapped by ``vmap``, ``lax.map`` or ``pmap``. The data and the
prior hyperparameters are arguments of that ``jit``, not constants baked
into it, so a refit on data of the same shape reuses the compiled program.
:func:`sample_posterior` compiles the sampler together with the evaluation
of every draw on the data (pointwise log-likelihood, responsibilities), the
one job an estimator fit needs. With padded components the inactive
coordinates get zero inverse mass (:func:`_freeze_inactive`): NUTS never
moves them, and the active ones follow the unpadded model's dynamics
exactly; runs are cut to the active components (:func:`active_run`) before
anything else sees them. Rows are padded the same way: :func:`sample_posterior`
carries the data on :func:`row_bucket` rows, the padding with sample weight
exactly zero, so that fits of nearby ``n_samples`` share one program too.

Draws are dicts of site name -> array with leading axes (chain, draw).
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.flatten_util import ravel_pytree
from numpyro import handlers
from numpyro.infer.hmc import hmc
from numpyro.infer.util import constrain_fn, potential_energy, unconstrain_fn

from bayesgmm import _program_cache, _progress, structures
from bayesgmm.bayes import incomplete
from bayesgmm.bayes.chain_start import ChainStart
from bayesgmm.bayes.model import (
    component_sites,
    gmm_model,
)
from bayesgmm.bayes.posterior import (
    _as_jax,
    _log_softmax,
    _logsumexp,
    _params_from_samples,
    _per_draw,
    flatten_chains,
)
from bayesgmm.mixture import parameters
from bayesgmm.mixture.blocks import count_bucket

CHAIN_METHODS = ("auto", "parallel", "vectorized", "sequential")


# sample_posterior pads the rows of the data to row_bucket(n_samples), so that
# fits whose n_samples fall in one bucket share one compiled sampler (compiling
# it is most of a small fit's time). The buckets are the EM's
# (bayesgmm.mixture.blocks.count_bucket: multiples of 1/16 of the next power of two,
# so at most 12.5 % of the rows are padding) from ROW_BUCKET_MIN_ROWS up, below
# which a gradient's cost hardly depends on the number of rows. Every leapfrog
# step evaluates the padding rows; past ROW_PADDING_LIMIT rows a run is long
# enough that this would cost more than the compilation it saves, and the rows
# are kept exactly (a limit of 0 turns the padding off).
ROW_BUCKET_MIN_ROWS = 64

ROW_PADDING_LIMIT = 4096


class NUTSSettings(NamedTuple):
    """Static settings of a NUTS run (hashable: they key the compiled program)."""

    num_warmup: int
    num_samples: int
    num_chains: int
    chain_method: str  # 'parallel', 'vectorized' or 'sequential' (resolved)
    target_accept_prob: float = 0.8
    max_tree_depth: int = 10
    dense_mass: bool = False
    progress_bar: bool = False


class NUTSTrace(NamedTuple):
    """What a run returns; every field has leading axes (num_chains, num_samples)."""

    samples: dict  # site -> (C, S, *site_shape), constrained
    potential_energy: jax.Array  # (C, S) minus the log joint density (unnormalised)
    energy: jax.Array  # (C, S) Hamiltonian
    diverging: jax.Array  # (C, S) bool
    num_steps: jax.Array  # (C, S) leapfrog steps
    accept_prob: jax.Array  # (C, S) mean acceptance probability of the tree
    step_size: jax.Array  # (C, S) adapted step size


# --------------------------------------------------------------------------
# Settings
# --------------------------------------------------------------------------


def resolve_chain_method(chain_method: str, num_chains: int) -> str:
    """Resolve 'auto' and check that 'parallel' is possible.

    'auto' is 'parallel' with one device per chain; otherwise 'vectorized' on
    an accelerator (chains in lockstep fill it better) and 'sequential' on the
    CPU, where vectorised NUTS was measured slower to trace, compile and run
    (every chain waits for the longest trajectory of the batch). 'parallel'
    asked for without enough devices raises ``ValueError``.
    """
    devices = jax.local_device_count()
    if chain_method == "auto":
        if num_chains > 1 and devices >= num_chains:
            return "parallel"
        return "sequential" if jax.default_backend() == "cpu" else "vectorized"
    if chain_method == "parallel" and devices < num_chains:
        raise ValueError(
            f"chain_method='parallel' needs one device per chain, but only {devices} "
            f"device(s) are available for num_chains={num_chains}. Use "
            "chain_method='vectorized' or 'sequential', or fewer chains."
        )
    return chain_method


def progress_bar_enabled(progress_bar: bool) -> bool:
    """Show a progress bar only when asked and :func:`bayesgmm._progress.bar_allowed`."""
    return bool(progress_bar) and _progress.bar_allowed()


def _prior_draw(key, model, model_kwargs):
    """One draw of the latent sites from the prior (constrained values)."""
    trace = handlers.trace(handlers.seed(model, key)).get_trace(**model_kwargs)
    return {name: site["value"] for name, site in trace.items()
            if site["type"] == "sample" and not site["is_observed"]}


def _initial_z(key, center, noise_scale, model, model_kwargs):
    """A chain's unconstrained start: ``center`` (one chain's) jittered, or a prior draw."""
    if center is None:
        return unconstrain_fn(model, (), model_kwargs, _prior_draw(key, model, model_kwargs))
    center = unconstrain_fn(model, (), model_kwargs, center)
    keys = dict(zip(sorted(center), jax.random.split(key, len(center))))
    return {
        name: value + noise_scale[name]
        * jax.random.normal(keys[name], value.shape, value.dtype)
        for name, value in center.items()
    }


def _active_coordinates(z, padded_sites, n_active):
    """Masks (shaped like ``z``) of the unconstrained coordinates of active components.

    The ``padded_sites`` (those of the ``"component"`` plate) are active on
    their first ``n_active`` entries, ``weight_sticks`` on its first
    ``n_active - 1``; shared sites ('tied' covariances) always.
    """
    def mask(name, value):
        if name == "weight_sticks":
            active = jnp.arange(value.shape[0]) < n_active - 1
        elif name in padded_sites:
            active = jnp.arange(value.shape[0]) < n_active
        else:
            return jnp.ones(jnp.shape(value), bool)
        return jnp.broadcast_to(active.reshape(active.shape + (1,) * (value.ndim - 1)),
                                value.shape)

    return {name: mask(name, value) for name, value in z.items()}


def _freeze_inactive(state, active):
    """Give the inactive coordinates a zero inverse mass, so that NUTS never moves them.

    With zero inverse mass a coordinate has zero velocity, kinetic energy and
    share in the U-turn criterion, so the active coordinates follow exactly
    the dynamics (step size and mass matrix adaptation included) of the
    unpadded model, and the inactive components keep the values they started
    at (placeholders: they have weight zero). Their momentum is still drawn
    (unit scale, unused).

    Parameters
    ----------
    state : numpyro.infer.hmc.HMCState
    active : Array of bool of shape (n_coordinates,)
        The flattened mask of :func:`_active_coordinates`.
    """
    adapt = state.adapt_state
    inverse_mass = adapt.inverse_mass_matrix
    if jnp.ndim(inverse_mass) == 1:
        both, identity = active, jnp.ones_like(inverse_mass)
    else:
        both = active[:, None] & active[None, :]
        identity = jnp.eye(inverse_mass.shape[-1], dtype=inverse_mass.dtype)
    return state._replace(adapt_state=adapt._replace(
        inverse_mass_matrix=jnp.where(both, inverse_mass, 0.0),
        mass_matrix_sqrt=jnp.where(both, adapt.mass_matrix_sqrt, identity),
        mass_matrix_sqrt_inv=jnp.where(both, adapt.mass_matrix_sqrt_inv, identity),
    ))


# --------------------------------------------------------------------------
# Sampling
# --------------------------------------------------------------------------


class NUTSProgress:
    """The progress bar of one NUTS run, advanced by its compiled program's callbacks.

    Registered with :func:`bayesgmm._progress.registered` for the run's
    duration; the program reaches it through the run's token, so runs in
    other threads (and later runs of the same cached program) have their own.
    """

    def __init__(self, settings: NUTSSettings):
        iterations = settings.num_warmup + settings.num_samples
        # Vectorised chains tick once per iteration for all chains; the others per chain.
        chains_ticking = 1 if settings.chain_method == "vectorized" else settings.num_chains
        self.bar = _progress.open_bar(iterations * chains_ticking, "NUTS compiling")
        self.rate = _progress_rate(settings)
        self.num_warmup = settings.num_warmup

    def __call__(self, iteration) -> None:
        self.bar.update(self.rate)
        phase = "warmup" if int(iteration) < self.num_warmup else "sample"
        self.bar.set_description(f"NUTS {phase}", refresh=False)

    def close(self) -> None:
        self.bar.close()


def _progress_rate(settings: NUTSSettings) -> int:
    """Iterations between ticks: about 1 % of the run."""
    return max((settings.num_warmup + settings.num_samples) // 100, 1)


def _report_progress(iteration, settings: NUTSSettings, report_token):
    if settings.progress_bar:
        lax.cond(iteration % _progress_rate(settings) == 0,
                 lambda: _progress.report(report_token, iteration), lambda: None)


def _one_chain(key, center, noise_scale, model_kwargs, report_token, *, model, settings,
               padded_sites=()):
    """Warm-up and sampling of one chain as one scan; returns its NUTSTrace.

    With padded components (``n_active`` in ``model_kwargs``; ``padded_sites``
    the sites with a component axis) the inactive coordinates are frozen
    (:func:`_freeze_inactive`), so their prior density is left out of the
    potential (``padding_density=False``): the potential energy is then
    exactly the unpadded model's.
    """
    n_active = model_kwargs.get("n_active")
    if n_active is not None:
        model_kwargs = dict(model_kwargs, padding_density=False)

    def potential_fn_gen(**kwargs):
        return functools.partial(potential_energy, model, (), kwargs)

    init_kernel, sample_kernel = hmc(potential_fn_gen=potential_fn_gen, algo="NUTS")
    init_key, key = jax.random.split(key)
    z = _initial_z(init_key, center, noise_scale, model, model_kwargs)
    state = init_kernel(
        z, settings.num_warmup, target_accept_prob=settings.target_accept_prob,
        max_tree_depth=settings.max_tree_depth, dense_mass=settings.dense_mass,
        model_kwargs=model_kwargs, rng_key=key,
    )
    if n_active is None:
        def freeze(state):
            return state
    else:
        active = _active_coordinates(z, padded_sites, n_active)
        freeze = functools.partial(_freeze_inactive, active=ravel_pytree(active)[0])
    state = freeze(state)
    num_warmup = settings.num_warmup

    def collect(state):
        return (state.z, state.potential_energy, state.energy, state.diverging,
                state.num_steps, state.accept_prob, state.adapt_state.step_size)

    def step(carry, iteration):
        state, buffer = carry
        # The adaptation at the end of a warm-up window re-estimates every
        # inverse mass; the inactive ones are zeroed again before the next step.
        state = freeze(sample_kernel(state, model_kwargs=model_kwargs))
        # Warm-up iterations all write to slot 0, which the first draw overwrites:
        # one traced kernel for both phases, memory for num_samples draws only.
        slot = jnp.maximum(iteration - num_warmup, 0)
        buffer = jax.tree.map(
            lambda stored, new: lax.dynamic_update_index_in_dim(stored, new, slot, 0),
            buffer, collect(state),
        )
        _report_progress(iteration, settings, report_token)
        return (state, buffer), None

    buffer = jax.tree.map(
        lambda leaf: jnp.zeros((settings.num_samples,) + jnp.shape(leaf), jnp.result_type(leaf)),
        collect(state),
    )
    iterations = jnp.arange(settings.num_warmup + settings.num_samples)
    (_, buffer), _ = lax.scan(step, (state, buffer), iterations)
    z, *stats = buffer
    samples = jax.vmap(lambda draw: constrain_fn(model, (), model_kwargs, draw,
                                                 return_deterministic=True))(z)
    return NUTSTrace(samples, *stats)


def _chains(keys, center, noise_scale, model_kwargs, report_token, *, n_components,
            covariance_type, settings: NUTSSettings) -> NUTSTrace:
    """All chains of a run, mapped as ``settings.chain_method`` says (traceable)."""
    model = functools.partial(gmm_model, n_components=n_components,
                              covariance_type=covariance_type)
    n_features = jnp.shape(model_kwargs["X"])[-1]
    padded_sites = set(component_sites(covariance_type, n_features)) - {"weights"}
    chain = functools.partial(_one_chain, noise_scale=noise_scale, model_kwargs=model_kwargs,
                              report_token=report_token, model=model, settings=settings,
                              padded_sites=padded_sites)
    if settings.chain_method == "sequential":
        return lax.map(lambda args: chain(*args), (keys, center))
    if settings.chain_method == "parallel":
        return jax.pmap(chain)(keys, center)
    return jax.vmap(chain)(keys, center)


_STATIC = ("n_components", "covariance_type", "settings")

_run_chains = _program_cache.bounded(jax.jit(_chains, static_argnames=_STATIC))


def run_nuts(key, start: ChainStart | None, model_kwargs: dict, *, n_components: int,
             covariance_type: str, settings: NUTSSettings) -> NUTSTrace:
    """Run NUTS chains on :func:`bayesgmm.bayes.model.gmm_model`.

    Parameters
    ----------
    key : jax.random key
        Split into one key per chain.
    start : ChainStart or None
        Where the chains start (:func:`em_chain_start`); ``None`` starts each
        chain at its own draw from the prior.
    model_kwargs : dict of arrays
        The dynamic keyword arguments of :func:`gmm_model` (``X``,
        ``sample_weight``, the prior hyperparameters, and ``n_active`` for a
        padded model). Only their shapes and dtypes key the compiled program.
    n_components : int
        The size of the component axis (the bucket when ``n_active`` is
        given; then ``start`` comes from :func:`pad_chain_start`).
    covariance_type : str
    settings : NUTSSettings
        With ``chain_method`` already resolved (:func:`resolve_chain_method`).

    Returns
    -------
    NUTSTrace
        Arrays with leading axes (num_chains, num_samples).
    """
    keys = jax.random.split(key, settings.num_chains)
    center, noise_scale = (None, None) if start is None else start
    reporter = NUTSProgress(settings) if settings.progress_bar else None
    return _progress.run_reported(reporter, lambda token: _run_chains(
        keys, center, noise_scale, model_kwargs, token, n_components=n_components,
        covariance_type=covariance_type, settings=settings,
    ))


# --------------------------------------------------------------------------
# Posterior draws as mixture parameters
# --------------------------------------------------------------------------


class PosteriorRun(NamedTuple):
    """A NUTS run with every draw evaluated on the data (see :func:`sample_posterior`)."""

    trace: NUTSTrace  # leading axes (C, S)
    params: parameters.GMMParams  # every draw, chains merged: leading axis (C * S,)
    log_likelihood: np.ndarray  # (C * S, n_samples) log p(x_n | theta_s), unweighted
    log_resp: np.ndarray  # (C * S, n_points, K) on the relabelling points
    reference_log_resp: np.ndarray | None  # (n_points, K) under the reference parameters


def active_run(run: PosteriorRun, n_components: int, covariance_type: str) -> PosteriorRun:
    """The run of a padded model with only its ``n_components`` active components.

    Everything downstream (relabelling, ``inference_data_``, LOO) then sees
    the run the unpadded model would have given: the stick coordinates of the
    weights are dropped, every component-indexed site, parameter and
    responsibility is cut to the first ``n_components``. The active weights
    already sum to one (the inactive ones are exactly zero) and the
    responsibilities of inactive components are exactly zero, so nothing is
    renormalised.

    Parameters
    ----------
    run : PosteriorRun
        From :func:`sample_posterior` on the padded model (NumPy arrays).
    n_components : int
    covariance_type : str

    Returns
    -------
    PosteriorRun
    """
    n_features = np.shape(run.params.means)[-1]
    sites = component_sites(covariance_type, n_features)
    samples = {name: value[:, :, :n_components] if name in sites else value
               for name, value in run.trace.samples.items() if name != "weight_sticks"}
    shared = not structures.get(covariance_type).component_axis
    params = parameters.GMMParams(
        weights=run.params.weights[:, :n_components],
        means=run.params.means[:, :n_components],
        covariances=run.params.covariances if shared
        else run.params.covariances[:, :n_components],
        precisions_cholesky=run.params.precisions_cholesky if shared
        else run.params.precisions_cholesky[:, :n_components],
    )
    reference = run.reference_log_resp
    return PosteriorRun(
        trace=run.trace._replace(samples=samples),
        params=params,
        log_likelihood=run.log_likelihood,
        log_resp=run.log_resp[..., :n_components],
        reference_log_resp=None if reference is None else reference[..., :n_components],
    )


@_program_cache.bounded
@functools.partial(jax.jit, static_argnames=_STATIC)
def _posterior_job(keys, center, noise_scale, model_kwargs, X_relabel, reference, report_token,
                   *, n_components, covariance_type, settings):
    trace = _chains(keys, center, noise_scale, model_kwargs, report_token,
                    n_components=n_components, covariance_type=covariance_type,
                    settings=settings)
    params = _params_from_samples(flatten_chains(trace.samples), covariance_type)
    reference_log_resp = None
    if reference is not None:
        reference_log_resp = _log_softmax(incomplete.log_weighted_prob(
            X_relabel.X, reference.weights, reference.means, reference.precisions_cholesky,
            covariance_type, X_relabel.observed,
        ))
    data = incomplete.Rows(model_kwargs["X"], model_kwargs.get("observed"))
    return PosteriorRun(
        trace=trace,
        params=params,
        log_likelihood=_per_draw(_logsumexp, data, params, covariance_type),
        log_resp=_per_draw(_log_softmax, X_relabel, params, covariance_type),
        reference_log_resp=reference_log_resp,
    )


def row_bucket(n_rows: int) -> int:
    """The number of rows :func:`sample_posterior` carries ``n_rows`` rows of data on.

    At least :data:`ROW_BUCKET_MIN_ROWS`, then :func:`bayesgmm.mixture.blocks.count_bucket`'s
    steps (64, 72, ..., 128, 144, ..., 256, 288, ...), at most 12.5 % above ``n_rows``;
    ``n_rows`` itself above :data:`ROW_PADDING_LIMIT`.

    Examples
    --------
    >>> [row_bucket(n) for n in (2, 30, 64, 65, 200, 1000, 5000)]
    [64, 64, 64, 72, 208, 1024, 5000]
    """
    if n_rows > ROW_PADDING_LIMIT:
        return n_rows
    return count_bucket(max(n_rows, ROW_BUCKET_MIN_ROWS))


def _pad_rows(array, n_rows: int, fill=None) -> np.ndarray:
    """``array`` (on the host) with rows appended up to ``n_rows``.

    The new rows repeat the first one (``fill`` is None) or hold ``fill``:
    finite values whose log density is finite, so that a zero weight makes
    their share of the log-likelihood and of its gradient exactly zero.
    Built with NumPy, as JAX would compile a program for every new shape.
    """
    array = np.asarray(array)
    padding = np.broadcast_to(array[:1] if fill is None else np.asarray(fill, array.dtype),
                              (n_rows - array.shape[0],) + array.shape[1:])
    return np.concatenate([array, padding])


def _padded_data(model_kwargs: dict, X_relabel):
    """``model_kwargs`` and ``X_relabel`` on :func:`row_bucket` rows (see :func:`sample_posterior`).

    ``sample_weight`` is always an array there (ones for an unweighted fit,
    zeros on the padding), so that weighted and unweighted fits share the
    program: unit weights leave every term of the log density as it is.
    """
    X = np.asarray(model_kwargs["X"])
    weights = model_kwargs.get("sample_weight")
    weights = np.ones(X.shape[0], X.dtype) if weights is None else np.asarray(weights)
    n_rows = row_bucket(X.shape[0])
    model_kwargs = dict(model_kwargs, X=jnp.asarray(_pad_rows(X, n_rows)),
                        sample_weight=jnp.asarray(_pad_rows(weights, n_rows, fill=0)))
    observed = model_kwargs.get("observed")
    if observed is not None:
        model_kwargs["observed"] = incomplete.ObservedPatterns(
            jnp.asarray(observed.patterns), jnp.asarray(_pad_rows(observed.row_pattern, n_rows)))
    X_relabel = np.asarray(X_relabel)
    return model_kwargs, incomplete.rows(X_relabel, row_bucket(X_relabel.shape[0]))


def sample_posterior(key, start: ChainStart | None, model_kwargs: dict, X_relabel,
                     reference: parameters.GMMParams | None = None, *, n_components: int,
                     covariance_type: str, settings: NUTSSettings) -> PosteriorRun:
    """:func:`run_nuts`, and every draw evaluated on the data, in one compiled job.

    Compiling the sampler and the per-draw evaluations together costs much
    less than compiling them one by one, which is most of a first fit's time.
    The job sees ``X`` (and ``X_relabel``) padded to :func:`row_bucket` rows
    with sample weight exactly zero on the padding, so that every
    ``n_samples`` of a bucket reuses it; the run returned has the real rows
    only, and the posterior is the one of the unpadded data.

    Parameters
    ----------
    key, start, n_components, covariance_type, settings
        As in :func:`run_nuts`.
    model_kwargs : dict
        As in :func:`run_nuts`; ``X`` and ``sample_weight`` may be NumPy
        arrays (best: they are padded on the host, and converting them to
        JAX arrays first would compile a small program per shape).
    X_relabel : array of shape (n_points, n_features)
        The points whose responsibilities relabel the draws
        (:func:`relabel_points`).
    reference : GMMParams, optional
        Parameters (e.g. the EM fit) whose responsibilities on ``X_relabel``
        start the relabelling.

    Returns
    -------
    PosteriorRun
        NumPy arrays; ``log_likelihood`` of shape (C * S, n_samples) and
        ``log_resp`` of shape (C * S, n_points, K).
    """
    n_samples, n_points = np.shape(model_kwargs["X"])[0], np.shape(X_relabel)[0]
    padded_kwargs, padded_relabel = _padded_data(model_kwargs, X_relabel)
    keys = jax.random.split(key, settings.num_chains)
    center, noise_scale = (None, None) if start is None else start
    reference = None if reference is None else _as_jax(reference)
    reporter = NUTSProgress(settings) if settings.progress_bar else None
    run = _progress.run_reported(reporter, lambda token: _posterior_job(
        keys, center, noise_scale, padded_kwargs, padded_relabel, reference, token,
        n_components=n_components, covariance_type=covariance_type, settings=settings,
    ))
    run = jax.tree.map(np.asarray, run)
    reference_log_resp = run.reference_log_resp
    return run._replace(
        log_likelihood=run.log_likelihood[:, :n_samples],
        log_resp=run.log_resp[:, :n_points],
        reference_log_resp=None if reference_log_resp is None
        else reference_log_resp[:n_points],
    )
