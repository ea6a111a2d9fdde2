"""mclust's conjugate prior for MAP-EM: the public value, its validation and its defaults.

Fraley and Raftery (2007, "Bayesian regularization for normal mixture
estimation and model-based clustering") put a normal prior on each mean
given its covariance and an inverse-Wishart-like prior on the covariance;
R's mclust offers it as ``priorControl()`` (``defaultPrior``). Here it is
:class:`ConjugatePrior`, given to ``GaussianMixture(prior=...)``:

- :func:`check_prior` turns the user's value (None, ``'default'``, a
  :class:`ConjugatePrior` or a dict of its fields) into a validated
  :class:`ConjugatePrior` before any data are read;
- :func:`prior_values` fills in mclust's data-dependent defaults for one
  fit and returns a :class:`PriorValues` per number of components, the
  pytree the engine carries per candidate (as it carries each candidate's
  ``active`` mask);
- the MAP M-step of each structure is its entry's ``prior_form``
  (:mod:`bayesgmm.structures._prior`).

EM then maximises the log-likelihood plus the log prior density. As in
mclust, the mixing proportions have no prior, and the criteria (BIC, ICL,
AIC) use the log-likelihood at the MAP estimate, not the penalised one:
mclust's ``me*`` functions return the log-likelihood of the last E-step
(``loglik``), its Fortran computes the log prior separately, and
``mclustBIC`` passes ``out$loglik`` to ``bic``.
"""

from __future__ import annotations

import dataclasses
import numbers
from typing import NamedTuple

import numpy as np

from bayesgmm import structures

__all__ = ["ConjugatePrior", "PriorValues", "check_prior", "check_prior_structure", "prior_values"]

PRIOR_FIELDS = ("shrinkage", "mean", "dof", "scale")

# mclust's defaultPrior: shrinkage 0.01 (priorControl's default).
DEFAULT_SHRINKAGE = 0.01


@dataclasses.dataclass(frozen=True, eq=False)
class ConjugatePrior:
    """mclust's conjugate prior (``priorControl()``), for MAP-EM.

    Every field left at None takes mclust's default (``defaultPrior``),
    computed from the data of each fit and, for ``scale``, from its number
    of components ``G``.

    Parameters
    ----------
    shrinkage : float, optional
        ``kappa_P``, the prior's weight on the mean, in observations
        (default 0.01). 0 leaves the means unshrunk.
    mean : array-like of shape (n_features,), optional
        ``mu_P``, the prior mean (default: the data's column means). It needs
        a positive shrinkage, as in mclust.
    dof : float, optional
        ``nu_P``, the degrees of freedom of the covariance prior (default
        ``n_features + 2``); it must exceed ``n_features - 1``.
    scale : float or array-like of shape (n_features, n_features), optional
        ``Lambda_P``, the scale of the covariance prior. Default, as mclust:
        ``cov(X) / G**(2/d)`` for the models with a full covariance (EEE,
        EEV, VEV, VVV; the diagonal of it when there are no more rows than
        features), and the scalar ``sum(var(X)) / d / G**(2/d)`` for the
        diagonal and spherical ones (and ``var(X) / G**2`` in one
        dimension). A float is used as it is by the diagonal and spherical
        models and as ``scale * I`` by the full ones; a matrix (symmetric
        positive definite) only by the full ones.

    Examples
    --------
    >>> from bayesgmm import ConjugatePrior, GaussianMixture
    >>> GaussianMixture(n_components=2, prior=ConjugatePrior(shrinkage=0.1)).prior.shrinkage
    0.1
    """

    shrinkage: float | None = None
    mean: object = None
    dof: float | None = None
    scale: object = None

    def __eq__(self, other):
        if not isinstance(other, ConjugatePrior):
            return NotImplemented
        return all(_same(getattr(self, name), getattr(other, name)) for name in PRIOR_FIELDS)

    def __hash__(self):
        return hash(tuple(_frozen(getattr(self, name)) for name in PRIOR_FIELDS))

    def to_dict(self) -> dict:
        """The fields as plain Python values (lists for arrays), None where defaulted."""
        return {name: _plain(getattr(self, name)) for name in PRIOR_FIELDS}


def _same(a, b) -> bool:
    if a is None or b is None:
        return a is b
    return np.shape(a) == np.shape(b) and bool(np.all(np.asarray(a) == np.asarray(b)))


def _frozen(value):
    return None if value is None else (np.shape(value), tuple(np.ravel(value).tolist()))


def _plain(value):
    return None if value is None else np.asarray(value, np.float64).tolist()


class PriorValues(NamedTuple):
    """The prior of one candidate, every default filled in (a pytree of arrays).

    Fits carry one per candidate, with a leading candidate axis, as they
    carry ``active``; the mean is in the coordinates of the fit's data
    (centred at their weighted mean).
    """

    shrinkage: object  # () kappa_P
    mean: object  # (n_features,) mu_P, centred
    dof: object  # () nu_P
    scale: object  # () for diagonal and spherical structures, (D, D) for full ones


def _invalid(message: str):
    from bayesgmm import _validation as v

    return v.InvalidParameterError(f"Invalid value for 'prior': {message}")


def _finite_float(name: str, value) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real) or not np.isfinite(value):
        raise _invalid(f"{name} must be a finite number; got {value!r}.")
    return float(value)


def check_prior(prior) -> ConjugatePrior | None:
    """The user's ``prior`` as a validated :class:`ConjugatePrior` (None: no prior).

    Checks what does not depend on the data: the type, the keys of a dict,
    a non-negative shrinkage, a finite ``dof``, a mean without shrinkage.
    :func:`prior_values` checks the rest against the data.

    Parameters
    ----------
    prior : None, 'default', ConjugatePrior or dict
        A dict takes the fields of :class:`ConjugatePrior` as keys.

    Raises
    ------
    ValueError
        Naming what to change.
    """
    if prior is None:
        return None
    if isinstance(prior, str) and prior == "default":
        return ConjugatePrior()
    if isinstance(prior, dict):
        unknown = sorted(set(map(str, prior)) - set(PRIOR_FIELDS))
        if unknown:
            raise _invalid(
                f"unknown key(s) {', '.join(map(repr, unknown))}; the keys are "
                f"{', '.join(map(repr, PRIOR_FIELDS))}."
            )
        prior = ConjugatePrior(**prior)
    if not isinstance(prior, ConjugatePrior):
        raise _invalid(f"{prior!r}. It must be None, 'default', a ConjugatePrior or a dict of its fields.")
    if prior.shrinkage is not None:
        shrinkage = _finite_float("shrinkage", prior.shrinkage)
        if shrinkage < 0:
            raise _invalid(f"shrinkage must be non-negative; got {shrinkage!r}.")
        # mclust (defaultPrior): "prior mean specified but not shrinkage".
        if shrinkage == 0 and prior.mean is not None:
            raise _invalid("a prior mean needs a positive shrinkage; got shrinkage=0.")
    if prior.dof is not None:
        _finite_float("dof", prior.dof)
    return prior


def check_prior_structure(prior: ConjugatePrior | None, covariance_type: str) -> None:
    """Refuse a prior for a structure mclust has none for (VEE, EVE, VVE, EVV)."""
    if prior is None or structures.get(covariance_type).prior_form is not None:
        return
    supported = [name for name in structures.MCLUST_NAMES if structures.get(name).prior_form is not None]
    raise _invalid(
        f"mclust has no conjugate prior for covariance_type={covariance_type!r}; a prior is "
        f"available for {', '.join(map(repr, supported))} (and 'E', 'V' in one dimension). "
        "Choose one of them, or set prior=None."
    )


def _moments(X: np.ndarray, weights: np.ndarray | None):
    """Column means and the covariance (denominator ``n - 1``, as R's ``var``), weighted."""
    if weights is None:
        weights = np.ones(X.shape[0])
    weights = np.asarray(weights, np.float64)
    total = weights.sum()
    mean = weights @ X / total
    centred = X - mean
    covariance = (centred * weights[:, None]).T @ centred / (total - 1.0)
    return mean, covariance, total


def prior_values(prior: ConjugatePrior, X, weights, sizes, covariance_type: str, centre, dtype) -> dict:
    """mclust's ``defaultPrior`` for each number of components, user-given fields kept.

    Parameters
    ----------
    prior : ConjugatePrior
        From :func:`check_prior`.
    X : ndarray of shape (n_samples, n_features)
    weights : ndarray of shape (n_samples,) or None
        The fit's weights (None: unit weights, mclust's defaults exactly).
    sizes : sequence of int
    covariance_type : str
    centre : ndarray of shape (n_features,)
        The point the fit's data are centred at; the prior mean is moved by it.
    dtype : numpy.dtype

    Returns
    -------
    dict of int to PriorValues (NumPy leaves of ``dtype``)

    Raises
    ------
    ValueError
        On a mean or scale of the wrong shape, a scale that is not positive
        (definite), ``dof <= n_features - 1``, or a structure without a prior.
    """
    check_prior_structure(prior, covariance_type)
    n_samples, n_features = X.shape
    matrix_scale = structures.get(covariance_type).prior_form.matrix_scale
    mean, covariance, total = _moments(np.asarray(X, np.float64), weights)
    shrinkage = DEFAULT_SHRINKAGE if prior.shrinkage is None else float(prior.shrinkage)
    if prior.mean is not None:
        mean = np.asarray(prior.mean, np.float64)
        if mean.shape != (n_features,) or not np.all(np.isfinite(mean)):
            raise _invalid(f"mean must be {n_features} finite numbers (one per feature); got shape {mean.shape}.")
    dof = float(n_features + 2) if prior.dof is None else float(prior.dof)
    if dof <= n_features - 1:
        raise _invalid(f"dof must be larger than n_features - 1 = {n_features - 1}; got {dof!r}.")
    given_scale = None if prior.scale is None else _checked_scale(prior.scale, n_features, matrix_scale,
                                                                  covariance_type)
    values = {}
    for size in sizes:
        if given_scale is not None:
            scale = given_scale
        else:
            factor = (1.0 / size) ** (2.0 / n_features)
            if not matrix_scale:
                scale = np.asarray(factor * np.trace(covariance) / n_features)
            elif total > n_features:
                scale = factor * covariance
            else:
                # mclust: diag(var) when there are no more rows than features (cov is singular).
                scale = factor * np.diag(np.diag(covariance))
        values[size] = PriorValues(
            np.asarray(shrinkage, dtype), (mean - centre).astype(dtype), np.asarray(dof, dtype),
            np.asarray(scale, dtype),
        )
    return values


def _checked_scale(scale, n_features: int, matrix_scale: bool, covariance_type: str) -> np.ndarray:
    scale = np.asarray(scale, np.float64)
    if scale.ndim == 0:
        if not np.isfinite(scale) or scale <= 0:
            raise _invalid(f"scale must be positive; got {float(scale)!r}.")
        return scale * np.eye(n_features) if matrix_scale else scale
    if scale.shape != (n_features, n_features) or not np.all(np.isfinite(scale)):
        raise _invalid(
            f"scale must be a positive number or a ({n_features}, {n_features}) matrix; got shape {scale.shape}."
        )
    if not matrix_scale:
        raise _invalid(
            f"covariance_type={covariance_type!r} takes a scalar scale (mclust's prior for the "
            "diagonal and spherical models); give a positive number."
        )
    if not np.allclose(scale, scale.T) or np.any(np.linalg.eigvalsh(0.5 * (scale + scale.T)) <= 0):
        raise _invalid("scale must be a symmetric positive definite matrix.")
    return scale


def stacked(values: dict, sizes) -> PriorValues:
    """The :class:`PriorValues` of ``sizes`` (one per candidate, repeats allowed) stacked on axis 0."""
    return PriorValues(*(np.stack([values[size][field] for size in sizes]) for field in range(4)))
