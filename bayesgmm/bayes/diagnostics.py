"""The bridge to ArviZ: the one module that builds ``InferenceData``, and the
warnings that keep sampling problems in view.

Groups of the ``InferenceData`` built by :func:`to_inference_data`:

``posterior``
    The free quantities of each draw: the model's sites ``weights``, ``means``
    and ``scales``; the ``correlations`` in place of the site ``corr_cholesky``
    ('full' and 'tied' with D > 1): the D (D - 1) / 2 entries above the
    diagonal of each correlation matrix, along ``feature_pair`` (coordinates
    ``"a,b"`` for the features a and b), as a Cholesky factor's constant zeros
    and ones would give undefined r_hat; and the derived ``covariances`` in
    scikit-learn's shapes. Dimensions ``component``, ``feature`` and
    ``feature_bis`` (the second axis of a matrix).
``sample_stats``
    ``lp`` (log joint density up to a constant), ``energy``, ``diverging``,
    ``n_steps``, ``tree_depth``, ``acceptance_rate``, ``step_size``. Absent
    for draws from an SVI guide (``inference='svi'``), which has no sampler
    statistics; the ``posterior`` attributes then say so and hold the loss
    history.
``log_likelihood``
    ``x`` of dimension ``observation``: ``w_n log p(x_n | theta)``, the term
    of point ``n`` in the weighted log-likelihood (``log p(x_n | theta)`` for
    unit weights), so ``az.loo`` leaves out one row with its weight.
``observed_data``
    ``x`` (``observation``, ``feature``); ``constant_data`` holds
    ``sample_weight`` when the fit was weighted.
``posterior_predictive``
    ``x`` (``observation``, ``feature``): one replicated data set per draw,
    only when asked for (:meth:`bayesgmm.BayesianGaussianMixture.sample_posterior_predictive`
    adds it to a fitted model, :func:`add_posterior_predictive` to any of these).
"""

from __future__ import annotations

import warnings

import arviz as az
import numpy as np
from sklearn.exceptions import ConvergenceWarning

from bayesgmm import structures

__all__ = [
    "SamplingWarning",
    "DivergenceWarning",
    "RhatWarning",
    "LowESSWarning",
    "MAX_RHAT",
    "MIN_ESS_PER_CHAIN",
    "site_dims",
    "posterior_variables",
    "to_inference_data",
    "posterior_dataset",
    "add_posterior_predictive",
    "NO_POSTERIOR_PREDICTIVE_MESSAGE",
    "check_sampling",
    "warn_sampling_problems",
]

MAX_RHAT = 1.01  # Vehtari et al. (2021)
NO_POSTERIOR_PREDICTIVE_MESSAGE = (
    "The InferenceData has no posterior_predictive group, which posterior predictive checks "
    "(arviz.plot_ppc) need. Call sample_posterior_predictive() on the fitted "
    "BayesianGaussianMixture to add one (or fit it with posterior_predictive=True)."
)
MIN_ESS_PER_CHAIN = 100  # bulk and tail ESS, as recommended with r_hat


class SamplingWarning(ConvergenceWarning):
    """The posterior draws may not represent the posterior (base class)."""


class DivergenceWarning(SamplingWarning):
    """Some NUTS transitions diverged: the sampler missed part of the posterior."""


class RhatWarning(SamplingWarning):
    """Chains disagree (r_hat above 1.01)."""


class LowESSWarning(SamplingWarning):
    """Too few effective draws for reliable estimates."""


FEATURE_PAIR = "feature_pair"


def _correlations(corr_cholesky):
    """The entries above the diagonal of ``L @ L.T``, row by row: (..., D, D) -> (..., D (D - 1) / 2)."""
    corr_cholesky = np.asarray(corr_cholesky)
    rows, columns = np.triu_indices(corr_cholesky.shape[-1], 1)
    correlation = np.einsum("...ik,...jk->...ij", corr_cholesky, corr_cholesky)
    return correlation[..., rows, columns]


# Site kinds whose value has constant entries, and what the posterior reports
# instead: (variable name, free entries of one draw).
_FREE_FORM = {"lkj_cholesky": ("correlations", _correlations)}


def site_dims(covariance_type: str, n_features: int) -> dict:
    """ArviZ dimension names of every posterior variable for ``covariance_type``.

    The covariance sites and ``covariances`` are named as the structure's
    table entry says (:attr:`bayesgmm.structures.Site.dims`); the
    ``correlations`` reported for a correlation site keep its ``component``
    axis, then ``feature_pair``.
    """
    structure = structures.get(covariance_type)
    dims = {}
    for site in structure.covariance_sites(n_features):
        dims[site.name] = list(site.dims)
        if site.kind in _FREE_FORM:
            dims[_FREE_FORM[site.kind][0]] = list(site.dims[:site.component_axis]) + [FEATURE_PAIR]
    dims["covariances"] = list(structure.covariance_dims)
    dims.update(weights=["component"], means=["component", "feature"])
    return dims


def posterior_variables(samples: dict, covariance_type: str) -> dict:
    """The free quantities of draws: ``samples`` with each correlation factor replaced.

    A site whose value has constant entries (the Cholesky factor
    ``corr_cholesky`` of a correlation matrix: zeros above the diagonal, a
    one first) becomes its free entries (``correlations``, the entries above
    the diagonal of the correlation matrix), so that every scalar of the
    posterior group has a meaningful r_hat and ESS. The order of the
    variables is kept.

    Parameters
    ----------
    samples : dict
        Site values (and ``covariances``) with any leading draw axes.
    covariance_type : str

    Returns
    -------
    dict
        Variable name -> ndarray, the same leading axes.
    """
    n_features = np.shape(samples["means"])[-1]
    kinds = {site.name: site.kind
             for site in structures.get(covariance_type).covariance_sites(n_features)}
    variables = {}
    for name, value in samples.items():
        if kinds.get(name) in _FREE_FORM:
            free_name, free_entries = _FREE_FORM[kinds[name]]
            variables[free_name] = free_entries(value)
        else:
            variables[name] = np.asarray(value)
    return variables


def _coords(n_components: int, n_features: int, n_samples: int, feature_names=None) -> dict:
    # The data's column names where the fit had them (a DataFrame), else positions.
    features = np.arange(n_features) if feature_names is None else np.asarray(feature_names)
    rows, columns = np.triu_indices(n_features, 1)
    return {
        "component": np.arange(n_components),
        "feature": features,
        "feature_bis": features,
        FEATURE_PAIR: np.array([f"{features[row]},{features[column]}"
                                for row, column in zip(rows, columns)], dtype=str),
        "observation": np.arange(n_samples),
    }


def posterior_dataset(samples: dict, covariance_type: str, feature_names=None):
    """An ``InferenceData`` with only a posterior group, dims named as in the full one.

    Parameters
    ----------
    samples : dict
        Site values (and ``covariances``) with leading axes (chain, draw).
    covariance_type : str
    feature_names : ndarray of shape (n_features,) of str, optional
        The ``feature`` coordinate (positions when not given).

    Returns
    -------
    arviz.InferenceData
    """
    n_components, n_features = np.shape(samples["means"])[-2:]
    dims = site_dims(covariance_type, n_features)
    variables = posterior_variables(samples, covariance_type)
    return az.from_dict(
        posterior=variables,
        coords=_coords(n_components, n_features, 0, feature_names),
        dims={name: dims[name] for name in variables},
    )


def _sample_stats(trace) -> dict:
    num_steps = np.asarray(trace.num_steps)
    return {
        "lp": -np.asarray(trace.potential_energy),
        "energy": np.asarray(trace.energy),
        "diverging": np.asarray(trace.diverging, dtype=bool),
        "n_steps": num_steps,
        # NUTS doubles its trajectory: 2**depth - 1 leapfrog steps for a full tree.
        "tree_depth": np.floor(np.log2(np.maximum(num_steps, 1))).astype(int) + 1,
        "acceptance_rate": np.asarray(trace.accept_prob),
        "step_size": np.asarray(trace.step_size),
    }


def to_inference_data(samples: dict, trace, *, covariance_type: str, X, log_likelihood,
                      sample_weight=None, posterior_predictive=None, attrs=None,
                      feature_names=None):
    """Assemble the ``InferenceData`` of a fit.

    Parameters
    ----------
    samples : dict
        Relabelled site values (and ``covariances``), leading axes
        (num_chains, num_samples); the ``posterior`` group holds their free
        quantities (:func:`posterior_variables`).
    trace : bayesgmm.bayes.nuts.NUTSTrace or None
        Its sampler statistics fill ``sample_stats``; ``None`` (draws that
        are not from a sampler, e.g. from an SVI guide) leaves that group out.
    covariance_type : str
    X : ndarray of shape (n_samples, n_features)
        The training data.
    log_likelihood : ndarray of shape (num_chains, num_samples, n_samples) or None
        Pointwise (weighted) log-likelihood; ``None`` leaves the group out.
    sample_weight : ndarray of shape (n_samples,), optional
        Stored as ``constant_data`` when given.
    posterior_predictive : ndarray of shape (num_chains, num_samples, n_samples, n_features), optional
    attrs : dict, optional
        Added to the attributes of the ``posterior`` group (e.g. how the
        draws were obtained).
    feature_names : ndarray of shape (n_features,) of str, optional
        The ``feature`` coordinate (positions when not given).

    Returns
    -------
    arviz.InferenceData
    """
    n_samples, n_features = np.shape(X)
    n_components = np.shape(samples["means"])[-2]
    variables = posterior_variables(samples, covariance_type)
    dims = {name: value for name, value in site_dims(covariance_type, n_features).items()
            if name in variables}
    dims.update(x=["observation", "feature"], sample_weight=["observation"])
    data_dims = {"x": ["observation"]}
    groups = {
        "posterior": variables,
        "observed_data": {"x": np.asarray(X)},
    }
    if trace is not None:
        groups["sample_stats"] = _sample_stats(trace)
    if sample_weight is not None:
        groups["constant_data"] = {"sample_weight": np.asarray(sample_weight)}
    idata = az.from_dict(**groups, coords=_coords(n_components, n_features, n_samples,
                                                            feature_names), dims=dims)
    idata.posterior.attrs.update(attrs or {})
    if posterior_predictive is not None:
        add_posterior_predictive(idata, posterior_predictive)
    if log_likelihood is not None:
        # The log-likelihood's "x" has one dimension fewer than the observed "x",
        # so it gets its own dims mapping.
        idata.add_groups(log_likelihood=az.from_dict(
            log_likelihood={"x": np.asarray(log_likelihood)},
            coords={"observation": np.arange(n_samples)}, dims=data_dims,
        ).log_likelihood)
    return idata


def add_posterior_predictive(idata, replicates) -> None:
    """Put replicated data sets into ``idata`` as its ``posterior_predictive`` group.

    A group already there is replaced. The coordinates of ``observation``
    and ``feature`` are those of ``observed_data``, so ``az.plot_ppc`` pairs
    each replicate with the data.

    Parameters
    ----------
    idata : arviz.InferenceData
        With ``posterior`` and ``observed_data`` groups (modified in place).
    replicates : ndarray of shape (num_chains, num_samples, n_samples, n_features)
        One replicated data set per draw.
    """
    observed = idata.observed_data["x"]
    predictive = az.from_dict(
        posterior_predictive={"x": np.asarray(replicates)},
        coords={dim: observed.coords[dim].values for dim in observed.dims},
        dims={"x": list(observed.dims)},
    )
    idata.extend(predictive, join="right")


def summary(idata, var_names, **kwargs):
    """ArviZ summary of ``idata``, as :meth:`bayesgmm.BayesianGaussianMixture.summary` gives it.

    Parameters
    ----------
    idata : arviz.InferenceData
        A fit's relabelled run; an SVI fit's (``posterior.attrs['inference']
        == 'svi'``) defaults to ``kind='stats'``.
    var_names : sequence of str or None
        Posterior variables to summarise (None for all).
    **kwargs
        Passed to :func:`arviz.summary`.

    Returns
    -------
    pandas.DataFrame
    """
    if idata.posterior.attrs.get("inference") == "svi":
        kwargs.setdefault("kind", "stats")
    with warnings.catch_warnings():
        # The one weight of a single component is constant: its r_hat is undefined.
        warnings.simplefilter("ignore", RuntimeWarning)
        return az.summary(idata, var_names=None if var_names is None else list(var_names), **kwargs)


def _finite_extreme(dataset, reduce) -> dict:
    """Per variable, ``reduce`` over its finite entries (variables with none are left out)."""
    extremes = {}
    for name in dataset.data_vars:
        values = np.asarray(dataset[name])
        values = values[np.isfinite(values)]
        if values.size:
            extremes[name] = float(reduce(values))
    return extremes


def check_sampling(idata, *, max_rhat: float = MAX_RHAT,
                   min_ess_per_chain: float = MIN_ESS_PER_CHAIN) -> list:
    """The sampling problems of a fit, as (warning class, message) pairs.

    Checks divergences, rank-normalised split r_hat and bulk and tail ESS of
    every posterior variable (entries that are constant, such as the one
    weight of a single component, are skipped).

    Parameters
    ----------
    idata : arviz.InferenceData
        With ``posterior`` and ``sample_stats`` groups; the posterior should
        be relabelled (raw draws of a mixture have meaningless r_hat).
    max_rhat : float, default=1.01
    min_ess_per_chain : float, default=100

    Returns
    -------
    problems : list of (type, str)
    """
    posterior = idata.posterior
    num_chains, num_draws = posterior.sizes["chain"], posterior.sizes["draw"]
    problems = []
    diverging = int(np.asarray(idata.sample_stats["diverging"]).sum())
    if diverging:
        problems.append((DivergenceWarning, (
            f"{diverging} of {num_chains * num_draws} post-warm-up transitions diverged, "
            "so the draws may miss regions of high curvature and estimates may be "
            "biased. Increase target_accept_prob (e.g. 0.95) and num_warmup; if they "
            "persist, the model has more components than the data support: use fewer "
            "components, or a weight_concentration nearer 1 so that spare components "
            "are not pushed to empty, funnel-shaped regions."
        )))
    if num_draws >= 4:
        problems.extend(_rhat_and_ess_problems(posterior, num_chains, max_rhat,
                                               min_ess_per_chain))
    return problems


def _rhat_and_ess_problems(posterior, num_chains, max_rhat, min_ess_per_chain):
    problems = []
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        # Constant entries (the weight of K = 1) give 0/0 inside ArviZ: skipped below.
        warnings.simplefilter("ignore", RuntimeWarning)
        rhat = az.rhat(posterior)
        ess = {method: az.ess(posterior, method=method) for method in ("bulk", "tail")}
    largest_rhat = _finite_extreme(rhat, np.max)
    bad = [name for name, value in largest_rhat.items() if value > max_rhat]
    if bad:
        problems.append((RhatWarning, (
            f"r_hat is up to {max(largest_rhat.values()):.3f} (> {max_rhat}) for "
            f"{', '.join(bad)}: the "
            "chains disagree, so they have not converged to one distribution. Increase "
            "num_warmup and num_samples; if it persists, components may be empty or "
            "splitting one cluster between them: use fewer components or change "
            "weight_concentration."
        )))
    min_ess = min_ess_per_chain * num_chains
    for method, values in ess.items():
        lowest = min(_finite_extreme(values, np.min).values(), default=np.inf)
        if lowest < min_ess:
            problems.append((LowESSWarning, (
                f"The {method} effective sample size is as low as {lowest:.0f} (< "
                f"{min_ess:.0f}, {min_ess_per_chain} per chain): posterior means and "
                "intervals are imprecise. Increase num_samples (or num_chains); a low "
                "ESS together with divergences or high r_hat calls for more warm-up or "
                "fewer components."
            )))
    return problems


def warn_sampling_problems(idata, stacklevel: int = 3, **limits) -> list:
    """Issue one warning per problem found by :func:`check_sampling`; return them."""
    problems = check_sampling(idata, **limits)
    for category, message in problems:
        warnings.warn(message, category, stacklevel=stacklevel)
    return problems
