"""Bayesian model choice: fitted posteriors over numbers of components and covariance types compared by PSIS-LOO.

:func:`compare` fits one :class:`~bayesgmm.BayesianGaussianMixture` per
candidate (the fits of one covariance type share their compiled sampler
across numbers of components: components are padded to a bucket), ranks
them with :func:`arviz.compare` and keeps the simplest model within the
noise of the best (:func:`simplest_within_noise`, the one-standard-error
rule).
"""

from __future__ import annotations

import re
import warnings
from typing import NamedTuple

# elpd differences under this many standard errors of the difference
# (arviz.compare's dse) are noise, and the simpler model is kept.
NOISE_DSE = 2.0


class Comparison(NamedTuple):
    """What :func:`compare` returns.

    Attributes
    ----------
    table : pandas.DataFrame
        :func:`arviz.compare`'s table (ranked, indexed by model name).
    models : dict of str to BayesianGaussianMixture
        The fitted candidates by name: ``"K=3"`` for one covariance type,
        ``"full, K=3"`` for several.
    n_parameters : dict of str to int
        Free parameters of each candidate (what "simpler" means).
    chosen : str
        The name of the kept model (:func:`simplest_within_noise`).
    best : str
        The name of the model with the highest elpd.
    """

    table: object
    models: dict
    n_parameters: dict
    chosen: str
    best: str


def components_of(name: str) -> int:
    return int(re.search(r"K=(\d+)$", name).group(1))


def simplest_within_noise(comparison, n_parameters=None) -> tuple[str, str]:
    """The model to keep: the simplest within the noise of the best.

    Parameters
    ----------
    comparison : pandas.DataFrame
        The output of :func:`arviz.compare`, with the columns ``elpd_diff``
        (elpd of the best model minus this one's, 0 for the best) and
        ``dse`` (the standard error of that difference).
    n_parameters : dict of str to int, optional
        Free parameters of each model; by default the models are named
        ``"...K=<n>"`` and the fewest components is the simplest.

    Returns
    -------
    chosen, best : str
        The simplest model (fewest parameters; among equals, the higher
        elpd) among the best one (rank 0) and those whose ``elpd_diff`` is
        under ``NOISE_DSE * dse`` (the one-standard-error rule, with arviz's
        "about 2 dse" as the noise), and the best one.

    Examples
    --------
    >>> import pandas as pd
    >>> comparison = pd.DataFrame({"elpd_diff": [0.0, 0.5, 40.0], "dse": [0.0, 1.89, 6.0]},
    ...                           index=["K=3", "K=2", "K=1"])
    >>> simplest_within_noise(comparison)
    ('K=2', 'K=3')
    """
    best = comparison.index[0]
    size = (lambda name: n_parameters[name]) if n_parameters is not None else components_of
    within = [name for name, row in comparison.iterrows()
              if name == best or row["elpd_diff"] < NOISE_DSE * row["dse"]]
    # min keeps the first of equals: the rows are in rank order.
    return min(within, key=size), best


def compare(X, n_components=(1, 2, 3), covariance_type="full", *, sample_weight=None,
            **estimator_params) -> Comparison:
    """Fit a posterior per candidate and compare them by PSIS-LOO (:func:`arviz.compare`).

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
    n_components : sequence of int, default=(1, 2, 3)
    covariance_type : str or sequence of str, default='full'
        One covariance type or several (the grid is every type with every
        number of components).
    sample_weight : array-like of shape (n_samples,), optional
    **estimator_params
        Passed to every :class:`~bayesgmm.BayesianGaussianMixture`
        (``num_samples``, ``num_chains``, ``random_state``, ...).

    Returns
    -------
    Comparison
        Warnings of each fit and of its PSIS-LOO are re-issued with the
        candidate's name in front.

    Raises
    ------
    ValueError
        Before any fit, on an empty or repeated grid or invalid settings.
    """
    import arviz as az

    from bayesgmm import structures
    from bayesgmm.bayes.estimator import BayesianGaussianMixture

    types = [covariance_type] if isinstance(covariance_type, str) else list(covariance_type)
    sizes = list(n_components)
    if not types or not sizes:
        raise ValueError("compare needs at least one number of components and one covariance type.")
    if len(set(types)) != len(types) or len(set(sizes)) != len(sizes):
        raise ValueError(
            f"compare got a repeated candidate: n_components={sizes}, covariance_type={types}."
        )
    candidates = {}
    for name in types:
        for size in sizes:
            label = f"K={size}" if len(types) == 1 else f"{name}, K={size}"
            model = BayesianGaussianMixture(size, covariance_type=name, **estimator_params)
            model._check_params()
            candidates[label] = model
    models, loos, n_parameters = {}, {}, {}
    for label, model in candidates.items():
        models[label] = labelled_warnings(label, lambda: model.fit(X, sample_weight=sample_weight))
        loos[label] = labelled_warnings(label, lambda: az.loo(models[label].inference_data_))
        n_parameters[label] = structures.n_parameters(
            model.covariance_type, model.n_components, models[label].n_features_in_
        )
    table = az.compare(loos, ic="loo")
    chosen, best = simplest_within_noise(table, n_parameters)
    return Comparison(table, models, n_parameters, chosen, best)


def labelled_warnings(label: str, work):
    """Run ``work()``, re-issuing its warnings with ``label`` in front of each message."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = work()
    for warning in caught:
        category = warning.category
        text = f"{label}: {warning.message}"
        try:
            message = category(text)
        except TypeError:  # a warning class that takes other arguments
            message = UserWarning(text)
        warnings.warn(message, stacklevel=3)
    return result


__all__ = ["NOISE_DSE", "Comparison", "compare", "simplest_within_noise"]
