"""Stochastic variational inference for the mixture model, with data subsampling.

NUTS costs a gradient pass over all the data per leapfrog step, which is too
slow from about 10^5 points on. SVI fits a Gaussian approximation ``q`` of
the posterior on the unconstrained parameters by maximising the evidence
lower bound (ELBO) with Adam, each step on a random subsample of the points:

* **Model**: :func:`bayesgmm.bayes.model.gmm_model` with its ``"obs"`` plate given
  ``subsample_size``, so each step's log-likelihood is the subsample's,
  scaled by ``n_samples / subsample_size`` (an unbiased estimate). The
  subsample indices are drawn uniformly *with* replacement
  (:func:`subsample_indices`): NumPyro's own CPU draw (without replacement) is
  a sequential scan of ``subsample_size`` steps, measured at 5 ms per SVI step
  for N = 10^6 against 0.3 ms for the whole step with this draw.
* **Guide**: ``AutoNormal`` (independent normals, ``guide='normal'``) or
  ``AutoLowRankMultivariateNormal`` (``guide='lowrank'``, correlations of
  rank ``round(sqrt(n_parameters))``) on the unconstrained parameters. With an
  EM fit the guide starts *at* it (``init_to_value``) with per-parameter
  scales of the large-sample posterior standard deviations of
  :func:`bayesgmm.bayes.chain_start.em_chain_start`, so it starts in the main mode and
  close to its final width.
* **Optimisation**: Adam with a step size decayed exponentially from
  ``learning_rate`` to ``learning_rate * FINAL_LEARNING_RATE_FRACTION`` over
  the run (the late, small steps average out the subsampling noise).
* **One compiled job** (:func:`run_svi`): all steps are one ``lax.scan``
  inside one ``jit``, together with the draws from the optimised guide and
  their evaluation on the data by the per-draw helpers of
  :mod:`bayesgmm.bayes.posterior` (log-likelihood for LOO, responsibilities for
  the relabelling), as NUTS runs are: one compilation instead of four
  (posterior parameters, responsibilities of the draws and of the
  reference, log-likelihood), which shortens a first fit by seconds. The
  data, the prior hyperparameters and the learning rate are arguments of
  that ``jit``, so a refit on data of the same shape does not recompile.
  Progress (a tqdm bar with the current loss) is reported from inside the
  scan by a host callback every 1 % of the steps when asked for.

The draws are then relabelled with the same functions as NUTS draws
(:func:`bayesgmm.bayes.relabel.stephens_permutations` against the EM reference,
:func:`bayesgmm.bayes.relabel.permute_components`); see :func:`fit_posterior`.
Draws from a variational approximation have no between-chain statistics:
r_hat and ESS do not apply, and the approximation tends to understate the
posterior spread (it minimises KL(q || p)).
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
from jax import lax
from jax.flatten_util import ravel_pytree
from numpyro import handlers
from numpyro.infer import SVI, Trace_ELBO
from numpyro.infer.autoguide import AutoLowRankMultivariateNormal, AutoNormal
from numpyro.infer.initialization import init_to_sample, init_to_value
from numpyro.infer.util import unconstrain_fn
from sklearn.exceptions import ConvergenceWarning

from bayesgmm import _program_cache, _progress
from bayesgmm import _validation as v
from bayesgmm.bayes import chain_start, incomplete, posterior, relabel
from bayesgmm.bayes.model import gmm_model
from bayesgmm.mixture import parameters

__all__ = [
    "GUIDES",
    "NO_RHAT_NOTE",
    "SVISettings",
    "SVIRun",
    "SVIPosterior",
    "SVIConvergenceWarning",
    "SVIProgress",
    "check_options",
    "resolve_subsample_size",
    "em_start_points",
    "subsample_indices",
    "subsampled_model",
    "run_svi",
    "fit_posterior",
    "wants_log_likelihood",
    "convergence_problem",
]

GUIDES = ("normal", "lowrank")
# Points per step when svi_subsample_size is None (all of them for smaller data).
DEFAULT_SUBSAMPLE_SIZE = 2048
# The step size falls exponentially to this fraction of the initial one.
FINAL_LEARNING_RATE_FRACTION = 0.01
# The EM fit that starts the guide sees at most this many points (a random subset).
EM_START_MAX_POINTS = 100_000
# The pointwise log-likelihood (n_draws x n_samples, for LOO) is kept up to this size.
LOG_LIKELIHOOD_MAX_ELEMENTS = 1 << 24
# Scale of the guide's initial standard deviations when it starts from a prior draw.
PRIOR_START_SCALE = 0.1
NO_RHAT_NOTE = (
    "Draws from a variational approximation (SVI), not from a Markov chain: r_hat and "
    "ESS do not apply, and the approximation tends to understate posterior spread."
)
# Losses whose decrease over the last steps exceeds this many standard errors
# mean that the optimisation had not settled.
CONVERGENCE_Z = 4.0


class SVIConvergenceWarning(ConvergenceWarning):
    """The ELBO was still improving at the end of the run (increase svi_steps)."""


class SVISettings(NamedTuple):
    """Static settings of an SVI run (hashable: they key the compiled program)."""

    num_steps: int
    subsample_size: int | None  # None: every point at every step
    guide: str  # 'normal' or 'lowrank'
    num_draws: int  # draws from the optimised guide
    pointwise_log_likelihood: bool = True  # evaluate log p(x_n | theta_s) of every point
    progress_bar: bool = False


class SVIRun(NamedTuple):
    """What the compiled run returns (NumPy arrays on the host)."""

    samples: dict  # site -> (num_draws, *site_shape), constrained draws from the guide
    params: parameters.GMMParams  # the draws as mixture parameters, leading axis (num_draws,)
    losses: np.ndarray  # (num_steps,) the negative ELBO estimate of every step
    guide_params: dict  # the optimised guide parameters (constrained)
    log_likelihood: np.ndarray | None  # (num_draws, n_samples) log p(x_n | theta_s), unweighted
    log_resp: np.ndarray  # (num_draws, n_points, K) on the relabelling points
    reference_log_resp: np.ndarray  # (n_points, K) under the reference (else the guide's median)


class SVIPosterior(NamedTuple):
    """An SVI fit's draws, relabelled, ready for the estimator (see :func:`fit_posterior`)."""

    samples: dict  # site -> (1, num_draws, *site_shape), relabelled, with 'covariances'
    raw_samples: dict  # the same before relabelling
    params: parameters.GMMParams  # relabelled draws, leading axis (num_draws,)
    permutations: np.ndarray  # (1, num_draws, K): relabelled[..., i] = raw[..., perm[i]]
    log_likelihood: np.ndarray | None  # (1, num_draws, n_samples) w_n log p(x_n | theta)
    losses: np.ndarray  # (num_steps,)
    guide_params: dict


# --------------------------------------------------------------------------
# Settings (Python side, before any tracing)
# --------------------------------------------------------------------------


def check_options(*, svi_steps, svi_subsample_size, svi_learning_rate, guide, svi_num_draws):
    """Validate the SVI options of the estimator; ``ValueError`` naming the fix.

    Returns
    -------
    steps : int
    subsample_size : int or None
    learning_rate : float
    guide : str
    num_draws : int
    """
    steps = v.check_int("svi_steps", svi_steps, 1)
    subsample_size = None
    if svi_subsample_size is not None:
        subsample_size = v.check_int("svi_subsample_size", svi_subsample_size, 1)
    learning_rate = v.check_nonnegative_float("svi_learning_rate", svi_learning_rate, strict=True)
    if learning_rate >= 1:
        raise v.InvalidParameterError(
            f"Invalid value for 'svi_learning_rate': {svi_learning_rate!r}. Adam's step "
            "size moves the unconstrained parameters by about this much per step; use a "
            "value in (0, 1), e.g. 0.01 (the default) or smaller if the loss diverges."
        )
    v.check_choice("guide", guide, GUIDES)
    num_draws = v.check_int("svi_num_draws", svi_num_draws, 1)
    return steps, subsample_size, learning_rate, guide, num_draws


def resolve_subsample_size(subsample_size: int | None, n_samples: int) -> int | None:
    """Points per step: ``None`` (all points) when the subsample would be the whole data.

    ``None`` asks for ``min(n_samples, DEFAULT_SUBSAMPLE_SIZE)``; a size above
    ``n_samples`` raises ``ValueError``.
    """
    if subsample_size is None:
        subsample_size = min(n_samples, DEFAULT_SUBSAMPLE_SIZE)
    elif subsample_size > n_samples:
        raise ValueError(
            f"svi_subsample_size={subsample_size} is larger than the number of samples "
            f"({n_samples}). Use at most n_samples, or None for "
            f"min(n_samples, {DEFAULT_SUBSAMPLE_SIZE})."
        )
    return None if subsample_size == n_samples else subsample_size


def em_start_points(X, sample_weight, seed: int, max_points: int = EM_START_MAX_POINTS):
    """The points of the EM fit that starts the guide: a random subset above ``max_points``.

    SVI exists for data where a full EM fit is itself slow; the guide only
    needs a start in the main mode, which a subset of 10^5 points gives.

    Returns
    -------
    X : ndarray of shape (min(n_samples, max_points), n_features)
    sample_weight : ndarray of the same length, or None
    """
    if X.shape[0] <= max_points:
        return X, sample_weight
    index = np.sort(np.random.default_rng(seed).choice(X.shape[0], max_points, replace=False))
    return X[index], None if sample_weight is None else sample_weight[index]


# --------------------------------------------------------------------------
# The model with fast subsampling, and the guide
# --------------------------------------------------------------------------


def subsample_indices(msg):
    """``substitute_fn`` drawing the ``"obs"`` plate's subsample uniformly with replacement.

    The scaled subsample log-likelihood stays an unbiased estimate of the
    full one. Returns ``None`` (no substitution) for every other site and when
    the plate is not subsampled.
    """
    if msg["type"] == "plate" and msg["name"] == "obs" and msg["value"] is None:
        size, subsample_size = msg["args"]
        return jax.random.randint(numpyro.prng_key(), (subsample_size,), 0, size)
    return None


def subsampled_model(n_components: int, covariance_type: str, subsample_size: int | None):
    """:func:`gmm_model` with ``subsample_size`` points per evaluation.

    Call it with the keyword arguments of :func:`gmm_model` (``X``,
    ``sample_weight``, prior hyperparameters); under ``handlers.seed`` each
    call draws a fresh subsample.
    """
    model = functools.partial(gmm_model, n_components=n_components,
                              covariance_type=covariance_type, subsample_size=subsample_size)
    return handlers.substitute(model, substitute_fn=subsample_indices)


def _initial_guide_params(guide_name, model, model_kwargs, center, scale):
    """The guide's initial standard deviations, per unconstrained parameter.

    ``scale`` (site -> broadcastable array) becomes ``<site>_auto_scale`` of
    the normal guide, or the flattened ``auto_scale`` of the low-rank guide
    (whose correlation factor starts at zero).
    """
    unconstrained = unconstrain_fn(handlers.seed(model, 0), (), model_kwargs, center)
    scales = {name: jnp.broadcast_to(jnp.asarray(scale[name], value.dtype), value.shape)
              for name, value in unconstrained.items()}
    if guide_name == "normal":
        return {f"{name}_auto_scale": value for name, value in scales.items()}
    # The low-rank guide's vector is its initial values flattened as a JAX
    # pytree (sites in sorted order); ravel_pytree flattens the same way
    # (tests/bayes/test_svi.py checks the layout).
    return {"auto_scale": ravel_pytree(scales)[0]}


def _make_guide(guide_name, model, center):
    init_loc_fn = init_to_sample if center is None else init_to_value(values=center)
    guide_class = AutoNormal if guide_name == "normal" else AutoLowRankMultivariateNormal
    return guide_class(model, init_loc_fn=init_loc_fn, init_scale=PRIOR_START_SCALE)


# --------------------------------------------------------------------------
# Progress
# --------------------------------------------------------------------------


class SVIProgress:
    """The progress bar (with the current loss) of one SVI run.

    Reached from the compiled program through the run's token (see
    :mod:`bayesgmm._progress`), so every run has its own.
    """

    def __init__(self, settings: SVISettings):
        self.bar = _progress.open_bar(settings.num_steps, "SVI compiling", unit="step")

    def __call__(self, iteration, loss) -> None:
        self.bar.update(int(iteration) + 1 - self.bar.n)
        self.bar.set_description("SVI", refresh=False)
        self.bar.set_postfix(loss=f"{float(loss):.6g}", refresh=False)

    def close(self) -> None:
        self.bar.close()


def _progress_rate(settings: SVISettings) -> int:
    """Steps between ticks: about 1 % of the run."""
    return max(settings.num_steps // 100, 1)


def _report_progress(iteration, loss, settings: SVISettings, report_token):
    if settings.progress_bar:
        rate = _progress_rate(settings)
        last = iteration == settings.num_steps - 1
        lax.cond((iteration % rate == rate - 1) | last,
                 lambda: _progress.report(report_token, iteration, loss), lambda: None)


# --------------------------------------------------------------------------
# The compiled run
# --------------------------------------------------------------------------


@_program_cache.bounded
@functools.partial(jax.jit, static_argnames=("n_components", "covariance_type", "settings"))
def _svi_job(key, center, scale, learning_rate, model_kwargs, X_relabel, reference,
             report_token, *, n_components, covariance_type, settings: SVISettings):
    model = subsampled_model(n_components, covariance_type, settings.subsample_size)
    guide = _make_guide(settings.guide, model, center)
    decay = FINAL_LEARNING_RATE_FRACTION ** (1.0 / max(settings.num_steps - 1, 1))
    optimizer = numpyro.optim.Adam(lambda step: learning_rate * decay**step)
    svi = SVI(model, guide, optimizer, Trace_ELBO())
    init_key, draw_key = jax.random.split(key)
    init_params = None
    if center is not None:
        init_params = _initial_guide_params(settings.guide, model, model_kwargs, center, scale)
    state = svi.init(init_key, init_params=init_params, **model_kwargs)

    def step(state, iteration):
        state, loss = svi.update(state, **model_kwargs)
        _report_progress(iteration, loss, settings, report_token)
        return state, loss

    state, losses = lax.scan(step, state, jnp.arange(settings.num_steps))
    guide_params = svi.get_params(state)
    samples = guide.sample_posterior(draw_key, guide_params, sample_shape=(settings.num_draws,))
    # The draws evaluated on the data in the same program: one compilation
    # instead of one per evaluation (as nuts.sample_posterior does for NUTS).
    params = posterior._params_from_samples(samples, covariance_type)
    if reference is None:
        reference = posterior._params_from_samples(
            jax.tree.map(lambda site: site[None], guide.median(guide_params)), covariance_type)
    else:
        reference = jax.tree.map(lambda leaf: leaf[None], reference)
    log_likelihood = None
    if settings.pointwise_log_likelihood:
        data = incomplete.Rows(model_kwargs["X"], model_kwargs.get("observed"))
        log_likelihood = posterior._per_draw(posterior._logsumexp, data, params, covariance_type)
    return SVIRun(
        samples=samples, params=params, losses=losses, guide_params=guide_params,
        log_likelihood=log_likelihood,
        log_resp=posterior._per_draw(posterior._log_softmax, X_relabel, params, covariance_type),
        reference_log_resp=posterior._per_draw(posterior._log_softmax, X_relabel, reference,
                                               covariance_type)[0],
    )


def run_svi(key, start: chain_start.ChainStart | None, model_kwargs: dict, X_relabel,
            reference: parameters.GMMParams | None = None, *, n_components: int, covariance_type: str,
            learning_rate: float, settings: SVISettings) -> SVIRun:
    """Optimise the guide on :func:`bayesgmm.bayes.model.gmm_model`, draw from it, evaluate the draws.

    The optimisation, the draws and their evaluation on the data are one
    compiled program.

    Parameters
    ----------
    key : jax.random key
    start : ChainStart or None
        From :func:`bayesgmm.bayes.chain_start.em_chain_start` with one chain: the
        guide's location starts at ``start.center`` and its standard
        deviations at ``start.noise_scale`` (unconstrained space). ``None``
        starts it at a draw from the prior with standard deviations 0.1.
    model_kwargs : dict of arrays
        The dynamic keyword arguments of :func:`gmm_model` (``X`` of shape
        (n_samples, n_features), ``sample_weight``, the prior
        hyperparameters). Only their shapes and dtypes key the compiled
        program.
    X_relabel : array of shape (n_points, n_features)
        The points whose responsibilities relabel the draws
        (:func:`bayesgmm.bayes.relabel.relabel_points`); NaN marks a missing value.
    reference : GMMParams, optional
        Parameters (the EM fit) whose responsibilities on ``X_relabel`` start
        the relabelling; ``None`` takes the fitted guide's median.
    n_components : int
    covariance_type : {'full', 'tied', 'diag', 'spherical'}
    learning_rate : float
        Adam's initial step size (a traced argument: changing it does not
        recompile).
    settings : SVISettings

    Returns
    -------
    SVIRun
        NumPy arrays.

    Raises
    ------
    ValueError
        When the loss became infinite or NaN (the step size is too large).
    """
    center, scale = (None, None) if start is None else (
        {name: value[0] for name, value in start.center.items()}, start.noise_scale)
    dtype = model_kwargs["X"].dtype
    reference = None if reference is None else parameters.GMMParams(*map(jnp.asarray, reference))
    reporter = SVIProgress(settings) if settings.progress_bar else None
    run = _progress.run_reported(reporter, lambda token: _svi_job(
        key, center, scale, jnp.asarray(learning_rate, dtype), model_kwargs,
        incomplete.rows(X_relabel), reference, token, n_components=n_components,
        covariance_type=covariance_type, settings=settings,
    ))
    run = jax.tree.map(np.asarray, run)
    if not np.all(np.isfinite(run.losses)):
        first = int(np.argmin(np.isfinite(run.losses)))
        raise ValueError(
            f"SVI diverged: the loss became {run.losses[first]} at step {first + 1}. "
            f"Decrease svi_learning_rate (it was {learning_rate}), or use init='em' so "
            "that the guide starts near the posterior."
        )
    return run


# --------------------------------------------------------------------------
# From the run to relabelled posterior draws
# --------------------------------------------------------------------------


def fit_posterior(key, X, sample_weight, model_kwargs: dict, em_params: parameters.GMMParams | None,
                  *, n_components: int, covariance_type: str, learning_rate: float,
                  settings: SVISettings) -> SVIPosterior:
    """Run SVI, evaluate the guide's draws and relabel them as NUTS draws are.

    The relabelling reference is the EM fit (else the guide's median): each
    draw's components are permuted by Stephens' criterion on the
    responsibilities of at most
    :data:`bayesgmm.bayes.relabel.RELABEL_MAX_POINTS` training points
    (:func:`bayesgmm.bayes.relabel.relabel_points`).

    Parameters
    ----------
    key : jax.random key
    X : ndarray of shape (n_samples, n_features)
    sample_weight : ndarray of shape (n_samples,) or None
    model_kwargs : dict
        As in :func:`run_svi`.
    em_params : GMMParams or None
        The EM fit that starts the guide and is the relabelling reference.
    n_components, covariance_type, learning_rate, settings
        As in :func:`run_svi`.

    Returns
    -------
    SVIPosterior
        ``log_likelihood`` is None unless ``settings.pointwise_log_likelihood``
        (see :func:`wants_log_likelihood`).
    """
    total_weight = X.shape[0] if sample_weight is None else float(sample_weight.sum())
    start = None
    if em_params is not None:
        start = chain_start.em_chain_start(em_params, total_weight,
                                         covariance_type=covariance_type, num_chains=1)
    X_relabel, weight_relabel = relabel.relabel_points(X, sample_weight)
    run = run_svi(key, start, model_kwargs, X_relabel, em_params, n_components=n_components,
                  covariance_type=covariance_type, learning_rate=learning_rate,
                  settings=settings)
    perms, _ = relabel.stephens_permutations(run.log_resp, np.exp(run.reference_log_resp),
                                               weight_relabel)
    raw_samples = dict(run.samples, covariances=run.params.covariances)
    relabelled = dict(relabel.permute_components(run.samples, perms, covariance_type))
    params = relabel.permute_params(run.params, perms, covariance_type)
    relabelled["covariances"] = params.covariances
    log_likelihood = run.log_likelihood  # invariant to relabelling
    if log_likelihood is not None:
        if sample_weight is not None:
            log_likelihood = log_likelihood * sample_weight
        log_likelihood = log_likelihood[None]

    def one_chain(samples):
        return {name: np.asarray(value)[None] for name, value in samples.items()}

    return SVIPosterior(
        samples=one_chain(relabelled), raw_samples=one_chain(raw_samples), params=params,
        permutations=perms[None], log_likelihood=log_likelihood, losses=run.losses,
        guide_params=run.guide_params,
    )


def wants_log_likelihood(num_draws: int, n_samples: int) -> bool:
    """Whether the pointwise log-likelihood (for LOO) is small enough to keep.

    It is ``num_draws * n_samples`` numbers, each costing a Gaussian density
    of every component: kept up to :data:`LOG_LIKELIHOOD_MAX_ELEMENTS`.
    """
    return num_draws * n_samples <= LOG_LIKELIHOOD_MAX_ELEMENTS


def convergence_problem(losses, z: float = CONVERGENCE_Z) -> str | None:
    """A message when the loss was still falling over the last 20 % of the steps.

    The two halves of the last 20 % of the losses are compared: a decrease of
    more than ``z`` standard errors (the subsampling noise) means the guide
    had not settled. Returns ``None`` when it had, or when the run is too short
    (< 50 steps) to tell.
    """
    losses = np.asarray(losses, dtype=np.float64)
    tail = losses[-max(len(losses) // 5, 2):]
    if len(losses) < 50:
        return None
    first, second = np.array_split(tail, 2)
    standard_error = np.sqrt(first.var(ddof=1) / first.size + second.var(ddof=1) / second.size)
    decrease = first.mean() - second.mean()
    if decrease <= z * max(standard_error, 1e-12 * abs(first.mean())):
        return None
    return (
        f"The SVI loss (negative ELBO) was still decreasing at the end of the run (by "
        f"{decrease:.4g} between the two halves of the last {tail.size} steps, "
        f"{decrease / max(standard_error, 1e-300):.1f} standard errors): the guide has not "
        "converged. Increase svi_steps, or svi_learning_rate if the loss falls slowly."
    )
