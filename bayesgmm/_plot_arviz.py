"""The Bayesian fit's diagnostics and posterior predictive check, drawn by ArviZ.

:func:`trace`, :func:`rank`, :func:`pair` and :func:`ppc` of
:mod:`bayesgmm.plot`, which imports them from here: they take a fitted
``BayesianGaussianMixture`` or an ``arviz.InferenceData`` and label the
component dimension. They live apart from that module's matplotlib figures
as they share none of its helpers, and import ArviZ lazily, on first use.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def _inference_data(model_or_idata):
    import arviz as az

    if isinstance(model_or_idata, az.InferenceData):
        return model_or_idata
    idata = getattr(model_or_idata, "inference_data_", None)
    if idata is None:
        raise ValueError(
            f"{type(model_or_idata).__name__} has no posterior draws; pass a fitted "
            "BayesianGaussianMixture or an arviz.InferenceData."
        )
    return idata


def _labeller():
    from arviz.labels import DimCoordLabeller

    return DimCoordLabeller()  # titles read "means\ncomponent: 0, feature: 1"


def trace(model: Any, var_names: Sequence[str] | None = None, **kwargs: Any) -> np.ndarray:
    """ArviZ trace plot of the posterior, one colour per component.

    Parameters
    ----------
    model : BayesianGaussianMixture or arviz.InferenceData
    var_names : list of str, optional
        The variables to show; all by default.
    **kwargs
        Passed to :func:`arviz.plot_trace`.

    Returns
    -------
    axes : ndarray of matplotlib Axes of shape (n_variables, 2)
        The legend of each density panel names the component dimension.
    """
    import arviz as az

    kwargs.setdefault("legend", True)
    kwargs.setdefault("labeller", _labeller())
    if "ax" not in kwargs:
        # Keeps the titles of one row clear of the tick labels of the row above.
        kwargs.setdefault("backend_kwargs", {"layout": "constrained"})
    return az.plot_trace(_inference_data(model), var_names=var_names, **kwargs)


def rank(model: Any, var_names: Sequence[str] | None = None, **kwargs: Any) -> np.ndarray:
    """ArviZ rank plots (one per scalar of the posterior), titled with the component.

    Parameters
    ----------
    model : BayesianGaussianMixture or arviz.InferenceData
    var_names : list of str, optional
    **kwargs
        Passed to :func:`arviz.plot_rank`.

    Returns
    -------
    axes : ndarray of matplotlib Axes
    """
    import arviz as az

    kwargs.setdefault("labeller", _labeller())
    return az.plot_rank(_inference_data(model), var_names=var_names, **kwargs)


def pair(model: Any, var_names: Sequence[str] | None = None, **kwargs: Any) -> np.ndarray:
    """ArviZ pair plot of posterior draws, axes labelled with the component.

    Parameters
    ----------
    model : BayesianGaussianMixture or arviz.InferenceData
    var_names : list of str, optional
        Keep this short: the grid has one row and column per scalar.
    **kwargs
        Passed to :func:`arviz.plot_pair`.

    Returns
    -------
    axes : ndarray of matplotlib Axes of shape (n_scalars - 1, n_scalars - 1)
    """
    import arviz as az

    idata = _inference_data(model)
    kwargs.setdefault("labeller", _labeller())
    has_divergences = "sample_stats" in idata.groups() and "diverging" in idata.sample_stats
    kwargs.setdefault("divergences", has_divergences)
    return az.plot_pair(idata, var_names=var_names, **kwargs)


def ppc(model: Any, **kwargs: Any) -> np.ndarray:
    """ArviZ posterior predictive check: the data against data replicated by the posterior.

    Parameters
    ----------
    model : BayesianGaussianMixture or arviz.InferenceData
        With a ``posterior_predictive`` group: call
        ``model.sample_posterior_predictive()`` first (or fit with
        ``posterior_predictive=True``).
    **kwargs
        Passed to :func:`arviz.plot_ppc` (e.g. ``num_pp_samples``);
        ``flatten=["observation"]`` unless given, so each feature gets its
        panel (ArviZ's default pools all features in one density).

    Returns
    -------
    axes : ndarray of matplotlib Axes
        One panel per feature.

    Raises
    ------
    ValueError
        Without a ``posterior_predictive`` group, naming the method that adds it.
    """
    import arviz as az

    from bayesgmm.bayes.diagnostics import NO_POSTERIOR_PREDICTIVE_MESSAGE

    idata = _inference_data(model)
    if "posterior_predictive" not in idata.groups():
        raise ValueError(NO_POSTERIOR_PREDICTIVE_MESSAGE)
    kwargs.setdefault("flatten", ["observation"])
    return az.plot_ppc(idata, **kwargs)
