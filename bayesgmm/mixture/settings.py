"""A fit's settings and weights, checked before any data are read or any work is done.

Shared by every way of fitting (in memory, streamed, online) and by loading
a saved model: the settings (:func:`check_settings`), user-given initial
values (:func:`check_initial_values`) and the sample weights EM runs on
(:func:`fit_sample_weight`).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from bayesgmm import _validation as v
from bayesgmm import structures
from bayesgmm.mixture.blocks import process_max
from bayesgmm.mixture.prior import check_prior, check_prior_structure

# The iteration counter of the jitted loop is an int32.
MAX_ITER_LIMIT = int(np.iinfo(np.int32).max)


class Settings(NamedTuple):
    """The validated settings of one fit (:func:`check_settings`)."""

    covariance_type: str
    tol: float
    reg_covar: float
    max_iter: int
    n_init: int
    init_params: str
    dtype: np.dtype
    # The validated conjugate prior (bayesgmm.mixture.prior), None for maximum likelihood.
    prior: object = None
    # The structures.Family whose one program fits this structure, or None: its own programs.
    family: object = None

    @property
    def program_structure(self):
        """The structure the compiled programs are specialised to: the family, else the structure."""
        return self.covariance_type if self.family is None else self.family

    @property
    def structure_choice(self):
        """This structure's index in its family (the programs' traced choice), or None."""
        return None if self.family is None else self.family.index(self.covariance_type)


def check_settings(
    n_components, *, covariance_type, tol, reg_covar, max_iter, n_init, init_params, dtype,
    warm_start=None, weights_init=None, means_init=None, precisions_init=None, prior=None,
    family=None,
) -> tuple[list[int], Settings]:
    """Validate a fit's settings before any data are read.

    ``family``: a :class:`~bayesgmm.structures.Family` holding
    ``covariance_type``, whose program (one for all its members) the fit
    runs, or None.

    Returns
    -------
    sizes : list of int
        The values of ``n_components`` (an int is one size).
    settings : Settings

    Raises
    ------
    ValueError
        On an invalid value, on initial values or a warm start with several
        sizes, on a warm start of another number of components, and on a
        ``prior`` that is not a conjugate prior or is given for a structure
        mclust has none for (:mod:`bayesgmm.mixture.prior`).
    """

    dtype = v.check_dtype(dtype)
    if np.ndim(n_components) == 0:
        n_components = [n_components]
    sizes = [v.check_int("n_components", value, 1) for value in n_components]
    v.check_choice("covariance_type", covariance_type, structures.NAMES)
    # The engine sees the entry's own name: 'VVV' and 'full' share programs.
    covariance_type = structures.get(covariance_type).name
    v.check_choice("init_params", init_params, v.INIT_PARAMS)
    prior = check_prior(prior)
    check_prior_structure(prior, covariance_type)
    if family is not None and (
        not isinstance(family, structures.Family) or covariance_type not in family.names
    ):
        raise ValueError(f"family={family!r} is not a structures.Family holding {covariance_type!r}.")
    settings = Settings(
        covariance_type,
        v.check_nonnegative_float("tol", tol),
        v.check_nonnegative_float("reg_covar", reg_covar),
        v.check_int("max_iter", max_iter, 0, MAX_ITER_LIMIT),
        v.check_int("n_init", n_init, 1),
        init_params,
        dtype,
        prior,
        family,
    )
    given = (weights_init, means_init, precisions_init)
    if len(sizes) != 1 and (warm_start is not None or any(value is not None for value in given)):
        raise ValueError(
            "weights_init, means_init, precisions_init and warm_start fix one number of "
            f"components; got n_components={sizes}. Fit each size on its own."
        )
    if warm_start is not None and np.shape(warm_start[0].weights)[0] != sizes[0]:
        raise ValueError(
            f"warm_start continues a fit of {np.shape(warm_start[0].weights)[0]} components, "
            f"but n_components={sizes[0]}. Keep n_components, or set warm_start=False."
        )
    return sizes, settings


def check_initial_values(
    settings: Settings, n_components: int, n_features: int, *, weights_init, means_init, precisions_init
) -> dict:
    """User-given initial values, validated for ``n_features`` columns (None where not given)."""

    dtype = settings.dtype
    given = dict(weights_init=None, means_init=None, precisions_init=None)
    if weights_init is not None:
        given["weights_init"] = v.check_weights(weights_init, n_components, dtype)
    if means_init is not None:
        given["means_init"] = v.check_means(means_init, n_components, n_features, dtype)
    if precisions_init is not None:
        given["precisions_init"] = v.check_precisions(
            precisions_init, settings.covariance_type, n_components, n_features, dtype
        )
    return given


def fit_sample_weight(sample_weight, n_samples: int, dtype) -> np.ndarray:
    """Validated weights for EM, scaled to a largest weight of 1 over all processes.

    See :func:`bayesgmm._validation.scaled_sample_weight` for why; ``None``
    gives unit weights.

    Returns
    -------
    weights : ndarray of shape (n_samples,) of ``dtype``
    """
    if sample_weight is None:
        return v.check_sample_weight(None, n_samples, dtype)
    weights = v.check_sample_weight(sample_weight, n_samples, np.float64)
    positive = weights[weights > 0]
    # One reduction for both extremes: the smallest positive weight as a maximum of negatives.
    largest, negated_smallest = process_max(
        np.array([weights.max(), -positive.min() if positive.size else -np.inf])
    )
    return v.scaled_sample_weight(weights, largest, -negated_smallest, dtype)
