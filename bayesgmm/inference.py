"""NUTS for the mixture model, chain initialisation from EM, relabelling of draws.

Three jobs, each a few small functions:

* **Sampling** (:func:`run_nuts`): every chain's warm-up and sampling is one
  ``lax.scan`` of NumPyro's NUTS kernel, and all chains are one ``jit``
  (chains mapped by ``vmap``, ``lax.map`` or ``pmap``). The data and the prior
  hyperparameters are arguments of that ``jit``, not constants baked into it,
  so a refit on data of the same shape reuses the compiled program.
  :func:`sample_posterior` compiles the sampler together with the evaluation
  of every draw on the data (pointwise log-likelihood, responsibilities), the
  one job an estimator fit needs.
* **Padded components** (:func:`component_bucket`, :func:`pad_chain_start`,
  :func:`active_run`): the estimator samples the model of
  :func:`bayesgmm.model.gmm_model` with its component axis padded to a
  bucket and the number of active components passed as data, so fits of
  different ``n_components`` share one compiled job. The inactive
  coordinates get zero inverse mass (:func:`_freeze_inactive`): NUTS never
  moves them, and the active ones follow the unpadded model's dynamics
  exactly. Runs are cut to the active components before anything else sees
  them.
* **Initialisation** (:func:`em_chain_start`): each chain starts at the EM
  fit moved by about one approximate posterior standard deviation, so chains
  start in the main mode but not at the same point (which r_hat needs).
* **Relabelling** (:func:`relabel_run`): the likelihood does not change when the
  components are permuted, so chains may carry different labellings. Each draw
  is permuted to agree with a reference by Stephens' (2000) KL criterion on
  the responsibilities of (a subset of) the training points, with the
  Hungarian solver of :mod:`bayesgmm.alignment`; the reference is refined to
  the mean relabelled responsibilities until the permutations stop changing.

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

from bayesgmm import _program_cache, _progress, alignment, em, gaussian
from bayesgmm.model import (
    GaussianMixtureLikelihood,
    component_sites,
    covariances_from_sites,
    gmm_model,
    padded_sticks,
    precisions_cholesky_from_sites,
)

__all__ = [
    "NUTSSettings",
    "NUTSTrace",
    "NUTSProgress",
    "resolve_chain_method",
    "progress_bar_enabled",
    "fit_em",
    "ChainStart",
    "em_chain_start",
    "permute_chain_start",
    "component_bucket",
    "pad_chain_start",
    "pad_params",
    "active_run",
    "run_nuts",
    "flatten_chains",
    "posterior_params",
    "log_responsibilities",
    "pointwise_log_likelihood",
    "responsibility_moments",
    "stephens_permutations",
    "permute_components",
    "relabel_points",
    "reference_responsibilities",
    "relabel_run",
    "permute_params",
    "PosteriorRun",
    "sample_posterior",
    "posterior_predictive",
    "sample_posterior_predictive",
]

CHAIN_METHODS = ("auto", "parallel", "vectorized", "sequential")
# Draws processed together when mapping a per-draw computation over the posterior.
DRAW_BATCH_SIZE = 64
# Training points on which draws are relabelled (a fixed random subset above this).
RELABEL_MAX_POINTS = 1000
RELABEL_MAX_ITER = 20
# Shrinkage of the EM correlations towards the identity before starting chains there.
CORRELATION_SHRINKAGE = 1e-6
# k-means restarts of the EM fit that starts the chains (see fit_em).
EM_START_RESTARTS = 3
# NUTS fits carry their components padded to a multiple of COMPONENT_BUCKET
# (inactive ones with weight exactly zero), so that a sweep over n_components
# = 1..8 compiles one sampler instead of eight; compiling one costs 10-15 s on
# 2 CPU cores. Every gradient then evaluates the padded components, which was
# measured at about 30 ns per point and component ('full', D = 2): padding
# applies only while n_samples * bucket * width (width = D**2 for 'full', D
# otherwise) stays below PADDING_WORK_LIMIT, where a default fit (4 chains x
# 1000 iterations) pays at most a few seconds for it.
COMPONENT_BUCKET = 8
PADDING_WORK_LIMIT = 1 << 15


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


# --------------------------------------------------------------------------
# Initial values
# --------------------------------------------------------------------------


def fit_em(X, sample_weight, *, n_components, covariance_type, random_state, dtype,
           reg_covar=1e-6) -> em.EMResult:
    """The maximum-likelihood fit that starts the chains and seeds the relabelling.

    The best of :data:`EM_START_RESTARTS` k-means starts: chains (and SVI's
    guide) stay in the mode they start in, and a single k-means start was
    seen to land in a poor local optimum (two true clusters merged) at
    N = 100k; restarts are batched, so they cost little.
    """
    return em.fit_gmm(
        X, sample_weight, n_components=n_components, covariance_type=covariance_type,
        reg_covar=reg_covar, random_state=random_state, dtype=dtype, n_init=EM_START_RESTARTS,
    )


def _scales_and_correlation(covariances, covariance_type):
    """Inverse of the model's covariance parametrisation: (scales, corr_cholesky)."""
    if covariance_type in ("diag", "spherical"):
        return np.sqrt(covariances), None
    scales = np.sqrt(np.diagonal(covariances, axis1=-2, axis2=-1))
    correlation = covariances / (scales[..., :, None] * scales[..., None, :])
    # A barely positive definite EM covariance (points on a line) has a correlation
    # that rounds to singular; shrink it a little towards the identity.
    identity = np.eye(correlation.shape[-1])
    correlation = (1.0 - CORRELATION_SHRINKAGE) * correlation + CORRELATION_SHRINKAGE * identity
    return scales, np.linalg.cholesky(correlation)


class ChainStart(NamedTuple):
    """Where the chains start: a centre and per-site jitter in the unconstrained space.

    Chain ``c`` starts at ``unconstrain(center[c]) + noise_scale * eps_c`` with
    standard normal ``eps_c``; the jitter is drawn inside the compiled run, from
    the chain's key.
    """

    center: dict  # site -> (num_chains, *site_shape) constrained values
    noise_scale: dict  # site -> array broadcastable to the site's unconstrained shape


def em_chain_start(params: em.GMMParams, total_weight: float, *, covariance_type: str,
                   num_chains: int, spread: float = 1.0) -> ChainStart:
    """Start the chains about ``spread`` posterior standard deviations from the EM fit.

    The standard deviations are the large-sample ones of a component holding
    ``n_k = total_weight * weights[k]`` points: ``std_k / sqrt(n_k)`` for the
    means, ``1 / sqrt(2 n_k)`` for the log scales and about ``1 / sqrt(n_k)``
    for the unconstrained correlations and weights.

    Parameters
    ----------
    params : GMMParams
        The EM fit (NumPy arrays).
    total_weight : float
        The number of points (sum of the sample weights).
    covariance_type : {'full', 'tied', 'diag', 'spherical'}
    num_chains : int
    spread : float, default=1.0
        Multiplies every jitter; 0 starts all chains at the EM fit.

    Returns
    -------
    ChainStart
        Every chain centred on the EM fit.
    """
    means = np.asarray(params.means)
    n_features = means.shape[1]
    counts = np.maximum(total_weight * np.asarray(params.weights), 1.0)
    scales, corr_cholesky = _scales_and_correlation(np.asarray(params.covariances),
                                                    covariance_type)
    variances = gaussian_variances(params.covariances, covariance_type, n_features)
    scale_counts = counts.sum() if covariance_type == "tied" else _per_component(counts, scales.ndim)
    center = {"weights": np.asarray(params.weights), "means": means, "scales": scales}
    noise_scale = {
        "weights": spread / np.sqrt(counts.min()),
        "means": spread * np.sqrt(variances / counts[:, None]),
        "scales": spread / np.sqrt(2.0 * scale_counts),
    }
    if corr_cholesky is not None and n_features > 1:
        center["corr_cholesky"] = corr_cholesky
        noise_scale["corr_cholesky"] = spread / np.sqrt(
            counts.sum() if covariance_type == "tied" else counts[:, None]
        )
    dtype = means.dtype
    return ChainStart(
        {name: np.broadcast_to(np.asarray(value, dtype), (num_chains,) + np.shape(value))
         for name, value in center.items()},
        {name: np.asarray(value, dtype) for name, value in noise_scale.items()},
    )


def permute_chain_start(start: ChainStart, perms, covariance_type: str) -> ChainStart:
    """Give chain ``c`` the starting labelling permuted by ``perms[c]``.

    The chains then sample equivalent posterior modes under different labels,
    which is how label switching is demonstrated (and its fix tested).

    Parameters
    ----------
    start : ChainStart
    perms : array of int of shape (num_chains, K)
    covariance_type : str

    Returns
    -------
    ChainStart
    """
    n_features = np.shape(start.center["means"])[-1]
    sites = component_sites(covariance_type, n_features)
    return start._replace(center={
        name: alignment.apply_permutations(value, perms, axis=1) if name in sites else value
        for name, value in start.center.items()
    })


def component_bucket(n_components: int, n_samples: int, n_features: int,
                     covariance_type: str) -> int:
    """The size of the component axis a NUTS fit of ``n_components`` carries.

    ``n_components`` rounded up to a multiple of :data:`COMPONENT_BUCKET`
    while the padded likelihood work per gradient, ``n_samples * bucket *
    width`` (``width`` = D**2 for 'full', D otherwise), stays within
    :data:`PADDING_WORK_LIMIT`; beyond it the padded components would cost
    more sampling time than the compilation they save, and ``n_components``
    is kept. Every ``n_components`` of one bucket shares one compiled sampler.

    Parameters
    ----------
    n_components : int
    n_samples, n_features : int
        The training data's shape.
    covariance_type : str

    Returns
    -------
    n_padded : int
    """
    padded = -(-int(n_components) // COMPONENT_BUCKET) * COMPONENT_BUCKET
    width = n_features**2 if covariance_type == "full" else n_features
    if n_samples * padded * width > PADDING_WORK_LIMIT:
        return int(n_components)
    return padded


def _pad_leading(value, n_padded, axis=0):
    """Pad ``axis`` to ``n_padded`` with copies of entry 0 (valid placeholder values)."""
    value = np.asarray(value)
    missing = n_padded - value.shape[axis]
    if missing <= 0:
        return value
    filler = np.repeat(np.take(value, [0], axis=axis), missing, axis=axis)
    return np.concatenate([value, filler], axis=axis)


def pad_chain_start(start: ChainStart, n_padded: int, covariance_type: str) -> ChainStart:
    """A start of the unpadded model of K components, for the model padded to ``n_padded``.

    The start of :func:`em_chain_start` (or :func:`permute_chain_start`)
    in the sites of :func:`bayesgmm.model.gmm_model` with ``n_active = K``:
    the weights become the stick coordinates ``weight_sticks`` (the jitter
    scale is unchanged: it was already applied in those coordinates), and the
    component-indexed sites get ``n_padded - K`` placeholder components, which
    :func:`run_nuts` replaces by a prior draw.

    Parameters
    ----------
    start : ChainStart
        Centre arrays of shape (num_chains, K, ...).
    n_padded : int
        The bucket (>= K).
    covariance_type : str

    Returns
    -------
    ChainStart
    """
    weights = np.asarray(start.center["weights"])
    n_components = weights.shape[-1]
    n_features = np.shape(start.center["means"])[-1]
    padded_sites = set(component_sites(covariance_type, n_features)) - {"weights"}
    log_weights = np.log(np.maximum(_pad_leading(weights, n_padded, axis=1),
                                    np.finfo(weights.dtype).tiny))
    center = {"weight_sticks": np.asarray(padded_sticks(jnp.asarray(log_weights),
                                                        n_components), weights.dtype)}
    noise_scale = {"weight_sticks": start.noise_scale["weights"]}
    for name, value in start.center.items():
        if name == "weights":
            continue
        padded = name in padded_sites
        center[name] = _pad_leading(value, n_padded, axis=1) if padded else np.asarray(value)
        noise = np.asarray(start.noise_scale[name])
        noise_scale[name] = _pad_leading(noise, n_padded) if padded and noise.ndim else noise
    return ChainStart(center, noise_scale)


def pad_params(params: em.GMMParams, n_padded: int, covariance_type: str) -> em.GMMParams:
    """``params`` of K components with ``n_padded - K`` components of weight zero appended.

    The appended components copy component 0's other parameters (any valid
    values do: a zero weight makes their log density ``-inf``).
    """
    shared = covariance_type == "tied"
    weights = np.asarray(params.weights)
    return em.GMMParams(
        weights=np.concatenate([weights, np.zeros(n_padded - weights.shape[-1], weights.dtype)]),
        means=_pad_leading(params.means, n_padded),
        covariances=np.asarray(params.covariances) if shared
        else _pad_leading(params.covariances, n_padded),
        precisions_cholesky=np.asarray(params.precisions_cholesky) if shared
        else _pad_leading(params.precisions_cholesky, n_padded),
    )


def _per_component(counts, ndim):
    """``counts`` (K,) shaped to broadcast against a (K, ...) array of ``ndim`` axes."""
    return counts.reshape(counts.shape + (1,) * (ndim - 1))


def gaussian_variances(covariances, covariance_type: str, n_features: int):
    """Per-component, per-dimension variances, shape (K, D) ((1, D) for 'tied')."""
    covariances = np.asarray(covariances)
    if covariance_type == "full":
        return np.diagonal(covariances, axis1=-2, axis2=-1)
    if covariance_type == "tied":
        return np.diagonal(covariances)[None, :]
    if covariance_type == "diag":
        return covariances
    return np.repeat(covariances[:, None], n_features, axis=1)


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


def _with_progress_bar(settings: NUTSSettings, compiled_run):
    """Run ``compiled_run(report_token)`` with this run's own progress bar, if any."""
    reporter = NUTSProgress(settings) if settings.progress_bar else None
    try:
        with _progress.registered(reporter) as token:
            return jax.block_until_ready(compiled_run(jnp.asarray(token, jnp.int32)))
    finally:
        if reporter is not None:
            reporter.close()


def run_nuts(key, start: ChainStart | None, model_kwargs: dict, *, n_components: int,
             covariance_type: str, settings: NUTSSettings) -> NUTSTrace:
    """Run NUTS chains on :func:`bayesgmm.model.gmm_model`.

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
    return _with_progress_bar(settings, lambda token: _run_chains(
        keys, center, noise_scale, model_kwargs, token, n_components=n_components,
        covariance_type=covariance_type, settings=settings,
    ))


# --------------------------------------------------------------------------
# Posterior draws as mixture parameters
# --------------------------------------------------------------------------


class PosteriorRun(NamedTuple):
    """A NUTS run with every draw evaluated on the data (see :func:`sample_posterior`)."""

    trace: NUTSTrace  # leading axes (C, S)
    params: em.GMMParams  # every draw, chains merged: leading axis (C * S,)
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
    shared = covariance_type == "tied"
    params = em.GMMParams(
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


def flatten_chains(samples: dict) -> dict:
    """Merge the (chain, draw) axes of every site into one draw axis."""
    return {name: value.reshape((-1,) + value.shape[2:]) for name, value in samples.items()}


def _params_from_samples(samples: dict, covariance_type: str) -> em.GMMParams:
    scales = samples["scales"]
    corr_cholesky = samples.get("corr_cholesky")
    return em.GMMParams(
        weights=samples["weights"],
        means=samples["means"],
        covariances=covariances_from_sites(scales, corr_cholesky, covariance_type),
        precisions_cholesky=precisions_cholesky_from_sites(scales, corr_cholesky,
                                                           covariance_type),
    )


def posterior_params(samples: dict, covariance_type: str) -> em.GMMParams:
    """Mixture parameters of every draw, in scikit-learn's shapes.

    Parameters
    ----------
    samples : dict
        Site values with any leading draw axes, e.g. (n_draws,) or
        (num_chains, num_samples).
    covariance_type : {'full', 'tied', 'diag', 'spherical'}

    Returns
    -------
    GMMParams
        ``weights`` (..., K), ``means`` (..., K, D), ``covariances`` and
        ``precisions_cholesky`` in the shapes of :mod:`bayesgmm.gaussian`
        with the same leading axes; NumPy arrays.
    """
    with em.precision_scope(np.asarray(samples["means"]).dtype):
        samples = {name: jnp.asarray(value) for name, value in samples.items()}
        return _to_numpy(_params_from_samples(samples, covariance_type))


def _per_draw(fn, X, params: em.GMMParams, covariance_type):
    """``fn(log weights + log N)`` of every draw (leading axis), mapped in batches."""
    def one_draw(draw):
        return fn(gaussian.log_weighted_prob(X, *draw, covariance_type))

    draws = (params.weights, params.means, params.precisions_cholesky)
    return lax.map(one_draw, draws, batch_size=DRAW_BATCH_SIZE)


def _log_softmax(log_prob):
    return jax.nn.log_softmax(log_prob, axis=-1)


def _logsumexp(log_prob):
    return jax.nn.logsumexp(log_prob, axis=-1)


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
        reference_log_resp = _log_softmax(gaussian.log_weighted_prob(
            X_relabel, reference.weights, reference.means, reference.precisions_cholesky,
            covariance_type,
        ))
    return PosteriorRun(
        trace=trace,
        params=params,
        log_likelihood=_per_draw(_logsumexp, model_kwargs["X"], params, covariance_type),
        log_resp=_per_draw(_log_softmax, X_relabel, params, covariance_type),
        reference_log_resp=reference_log_resp,
    )


def sample_posterior(key, start: ChainStart | None, model_kwargs: dict, X_relabel,
                     reference: em.GMMParams | None = None, *, n_components: int,
                     covariance_type: str, settings: NUTSSettings) -> PosteriorRun:
    """:func:`run_nuts`, and every draw evaluated on the data, in one compiled job.

    Compiling the sampler and the per-draw evaluations together costs much
    less than compiling them one by one, which is most of a first fit's time.

    Parameters
    ----------
    key, start, model_kwargs, n_components, covariance_type, settings
        As in :func:`run_nuts`.
    X_relabel : array of shape (n_points, n_features)
        The points whose responsibilities relabel the draws
        (:func:`relabel_points`).
    reference : GMMParams, optional
        Parameters (e.g. the EM fit) whose responsibilities on ``X_relabel``
        start the relabelling.

    Returns
    -------
    PosteriorRun
        NumPy arrays.
    """
    keys = jax.random.split(key, settings.num_chains)
    center, noise_scale = (None, None) if start is None else start
    reference = None if reference is None else _as_jax(reference)
    run = _with_progress_bar(settings, lambda token: _posterior_job(
        keys, center, noise_scale, model_kwargs, jnp.asarray(X_relabel), reference, token,
        n_components=n_components, covariance_type=covariance_type, settings=settings,
    ))
    return jax.tree.map(np.asarray, run)


def _params_precision(params: em.GMMParams):
    """Compute in the precision of the draws (float64 needs JAX's scoped x64 mode)."""
    return em.precision_scope(np.asarray(params.means).dtype)


def _as_jax(params: em.GMMParams) -> em.GMMParams:
    return em.GMMParams(*(jnp.asarray(leaf) for leaf in params))


def _to_numpy(params: em.GMMParams) -> em.GMMParams:
    return em.GMMParams(*(np.asarray(leaf) for leaf in params))


@_program_cache.bounded
@functools.partial(jax.jit, static_argnames=("covariance_type",))
def _log_responsibilities(X, params, covariance_type):
    return _per_draw(_log_softmax, X, params, covariance_type)


@_program_cache.bounded
@functools.partial(jax.jit, static_argnames=("covariance_type",))
def _log_likelihoods(X, params, covariance_type):
    return _per_draw(_logsumexp, X, params, covariance_type)


@_program_cache.bounded
@functools.partial(jax.jit, static_argnames=("covariance_type",))
def _responsibility_moments(X, params, covariance_type):
    # Welford's update: no cancellation when the spread is tiny against the mean.
    def add_draw(carry, draw):
        count, mean, sum_squares = carry
        resp = jax.nn.softmax(gaussian.log_weighted_prob(X, *draw, covariance_type), axis=-1)
        count = count + 1
        delta = resp - mean
        mean = mean + delta / count
        return (count, mean, sum_squares + delta * (resp - mean)), None

    zeros = jnp.zeros((X.shape[0], params.weights.shape[-1]), X.dtype)
    draws = (params.weights, params.means, params.precisions_cholesky)
    (count, mean, sum_squares), _ = lax.scan(add_draw, (jnp.zeros((), X.dtype), zeros, zeros),
                                             draws)
    return mean, jnp.sqrt(sum_squares / count)


def log_responsibilities(X, params: em.GMMParams, covariance_type: str) -> np.ndarray:
    """Per-draw log responsibilities ``log p(z_n = k | x_n, theta_s)``.

    Parameters
    ----------
    X : array of shape (n_samples, n_features)
    params : GMMParams
        Draws with one leading axis (n_draws,).
    covariance_type : {'full', 'tied', 'diag', 'spherical'}

    Returns
    -------
    log_resp : ndarray of shape (n_draws, n_samples, n_components)
    """
    with _params_precision(params):
        return np.asarray(_log_responsibilities(jnp.asarray(X), _as_jax(params),
                                                covariance_type))


def pointwise_log_likelihood(X, params: em.GMMParams, covariance_type: str) -> np.ndarray:
    """``log p(x_n | theta_s)`` for every draw and point, shape (n_draws, n_samples)."""
    with _params_precision(params):
        return np.asarray(_log_likelihoods(jnp.asarray(X), _as_jax(params), covariance_type))


def responsibility_moments(X, params: em.GMMParams, covariance_type: str):
    """Posterior mean and standard deviation of the responsibilities.

    Accumulated draw by draw, so memory stays (n_samples, n_components).

    Returns
    -------
    mean, std : ndarray of shape (n_samples, n_components)
    """
    with _params_precision(params):
        mean, std = _responsibility_moments(jnp.asarray(X), _as_jax(params), covariance_type)
        return np.asarray(mean), np.asarray(std)


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


def permute_params(params: em.GMMParams, perms, covariance_type: str) -> em.GMMParams:
    """Apply per-draw permutations to draws of mixture parameters (leading draw axis)."""
    def permute(leaf, component_indexed=True):
        if not component_indexed:
            return np.array(leaf)
        return alignment.apply_permutations(leaf, perms, axis=1)

    shared = covariance_type == "tied"
    return em.GMMParams(
        weights=permute(params.weights),
        means=permute(params.means),
        covariances=permute(params.covariances, not shared),
        precisions_cholesky=permute(params.precisions_cholesky, not shared),
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


# --------------------------------------------------------------------------
# Posterior predictive draws
# --------------------------------------------------------------------------


@_program_cache.bounded
@functools.partial(jax.jit, static_argnames=("n_samples", "covariance_type"))
def _replicate(keys, params, n_samples, covariance_type):
    def one_draw(args):
        key, weights, means, precisions_cholesky = args
        likelihood = GaussianMixtureLikelihood(weights, means, precisions_cholesky,
                                               covariance_type)
        return likelihood.sample(key, (n_samples,))

    draws = (keys, params.weights, params.means, params.precisions_cholesky)
    return lax.map(one_draw, draws, batch_size=DRAW_BATCH_SIZE)


def posterior_predictive(key, params: em.GMMParams, n_samples: int,
                         covariance_type: str) -> np.ndarray:
    """One replicated data set of ``n_samples`` points per posterior draw.

    Returns
    -------
    replicates : ndarray of shape (n_draws, n_samples, n_features)
    """
    with _params_precision(params):
        keys = jax.random.split(key, params.weights.shape[0])
        return np.asarray(_replicate(keys, _as_jax(params), n_samples, covariance_type))


def sample_posterior_predictive(rng: np.random.RandomState, params: em.GMMParams,
                                n_samples: int, covariance_type: str):
    """Points from the posterior predictive: a random draw, a component, a Gaussian.

    Parameters
    ----------
    rng : numpy.random.RandomState
    params : GMMParams
        Draws with a leading (n_draws,) axis.
    n_samples : int
    covariance_type : str

    Returns
    -------
    X : ndarray of shape (n_samples, n_features)
    labels : ndarray of shape (n_samples,)
    """
    n_draws, n_components = params.weights.shape
    draws = rng.randint(n_draws, size=n_samples)
    cumulative = np.cumsum(params.weights[draws], axis=1)
    labels = np.minimum((rng.random_sample(n_samples)[:, None] > cumulative).sum(axis=1),
                        n_components - 1)
    noise = rng.standard_normal(size=(n_samples, params.means.shape[-1]))
    covariances = params.covariances[draws]
    if covariance_type != "tied":
        covariances = covariances[np.arange(n_samples), labels]
    if covariance_type in ("full", "tied"):
        correlated = np.einsum("nij,nj->ni", np.linalg.cholesky(covariances), noise)
    elif covariance_type == "diag":
        correlated = noise * np.sqrt(covariances)
    else:
        correlated = noise * np.sqrt(covariances)[:, None]
    X = params.means[draws, labels] + correlated
    return X.astype(params.means.dtype), labels
