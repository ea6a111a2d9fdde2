"""The MAP M-step of each structure under mclust's conjugate prior, as prior-augmented statistics.

Under the prior of :class:`bayesgmm.mixture.prior.ConjugatePrior` (Fraley
and Raftery 2007) a structure's MAP M-step is its maximum-likelihood M-step
(:attr:`~bayesgmm.structures.CovarianceStructure.m_step_covariances`)
applied to augmented statistics. With ``nk``, ``xbar_k = first_k / nk``,
``W_k`` the scatter about ``xbar_k``, ``kappa`` the shrinkage, ``mu_P`` the
prior mean, ``c_k = kappa nk / (nk + kappa)`` and ``d_k = xbar_k - mu_P``:

- the means are shrunk, ``m_k = (nk xbar_k + kappa mu_P) / (nk + kappa)``;
- each scatter becomes ``B_k = Lambda_P + W_k + c_k d_k d_k^T`` (its
  diagonal, or its trace, in the diagonal and spherical representations);
- the counts the M-step divides by become mclust's denominators, which add
  the degrees of freedom and small constants.

The formulas are those of the M-step inside mclust's EM (``me*p`` in
``src/mclust.f``, what ``me``, ``mclustBIC`` and ``Mclust`` fit), including
its quirks, each reproduced and marked ``mclust:`` where it is. mclust's
separate ``mstep`` function (``ms*p``) agrees with them for VII, VEI, VVI,
EEE, VEV, VVV, E and V, but not for four models, where ``me`` is followed:
EII (``mseiip`` takes the scatter about the shrunk means and adds ``G D``
to the denominator only for a positive shrinkage), EEI and EVI (``mseeip``
and ``msevip`` divide by ``nu + n + 2 [+ G]`` where ``meeeip`` and
``meevip`` divide by ``nu + n + 1 [+ 1]``), and EEV (``mseevp`` begins with
``if (pshrnk .gt. zero) pshrnk = zero``, a ``.gt.`` where its siblings have
``.lt.``, so that it never shrinks; ``meeevp`` does).

A :class:`PriorForm` returns the means and, for the ML M-step, counts and
raw moments about a zero mean (``second = B_k``), so the ML M-step computes
the MAP covariances without knowing of the prior; ``reg_covar`` is still
added as it is without a prior.

One component: ``mclustBIC`` fits G = 1 with ``mvn`` (``mnxiip`` for EII and
VII, ``mnxxip`` for the diagonal models, ``mnxxxp`` for the full ones),
whose formulas differ from the G-component M-steps for EII, EEI, VEI, EVI
and VEV; the forms switch to them where one component is active, so that
every cell of a grid is mclust's.

mclust has no prior for VEE, EVE, VVE and EVV (``mclustBIC`` drops them when
given a prior): they have no form, and :data:`PRIOR_FORMS` lacks them.

Every ``augment`` has the signature::

    augment(nk (K,), first (K, D), second, values, active=None) -> (means, counts, second)

``nk`` floored as the M-step floors it (0 for inactive components),
``second`` the raw moments of the representation, ``values`` one
candidate's :class:`~bayesgmm.mixture.prior.PriorValues` (its mean of shape
(D,) or, for moments about per-component points, (K, D)). JAX only, pure,
unjitted.
"""

from __future__ import annotations

import types
from typing import Callable, NamedTuple

import jax.numpy as jnp

from bayesgmm.structures._math import _divisor, _pooled_weights

__all__ = ["PRIOR_FORMS", "PriorForm"]


class PriorForm(NamedTuple):
    """How one structure's M-step takes the prior."""

    # Whether the prior's scale is a (D, D) matrix (the full and tied
    # representations) or a scalar added to every variance (mclust's
    # diagonal and spherical models).
    matrix_scale: bool
    augment: Callable


class _Terms(NamedTuple):
    """What every form is built from (``K`` components, ``D`` features)."""

    xbar: object  # (K, D) the components' sample means
    shrunk: object  # (K, D) the MAP means m_k, zero for inactive components
    difference: object  # (K, D) d_k = xbar_k - mu_P
    weight: object  # (K,) c_k = kappa nk / (nk + kappa)
    positive: object  # () 1.0 where kappa > 0: mclust's denominators add terms only then
    n_active: object  # () G
    total: object  # () n, the summed weight of the active components


def _terms(nk, first, values, active) -> _Terms:
    kappa = values.shrinkage
    xbar = first / _divisor(nk, active)[:, None]
    # Safe divisions: an inactive component (nk = 0) with kappa = 0 gives 0 / 0.
    together = nk + kappa
    together = jnp.where(together > 0, together, 1.0)
    shrunk = (nk[:, None] * xbar + kappa * values.mean) / together[:, None]
    if active is not None:
        shrunk = jnp.where(active[:, None], shrunk, 0.0)
    n_active = nk.shape[0] if active is None else jnp.sum(active)
    return _Terms(
        xbar, shrunk, xbar - values.mean, kappa * nk / together, (kappa > 0).astype(nk.dtype),
        jnp.asarray(n_active, nk.dtype), _pooled_weights(nk, active).sum(),
    )


def _spread(extra, nk, terms: _Terms):
    """Counts ``nk_k + extra / G``: a pooled denominator of ``n + extra`` shared by the active components."""
    return nk + extra / terms.n_active


# -- Spherical representation (EII, VII; 'E' and 'V' in one dimension) --------


def _traces(nk, first, second, terms: _Terms):
    """``tr W_k + c_k |d_k|^2`` (K,): ``second`` holds each component's mean squared norm per feature."""
    scatter = jnp.sum(second, axis=1) - nk * jnp.sum(jnp.square(terms.xbar), axis=1)
    return scatter + terms.weight * jnp.sum(jnp.square(terms.difference), axis=1)


def _per_feature(traces, n_features: int):
    return jnp.broadcast_to((traces / n_features)[:, None], (traces.shape[0], n_features))


def _vii(nk, first, second, values, active=None):
    # msviip and meviip: (Lambda + tr W_k + c_k |d_k|^2) / (nu + D nk + 2 [+ D]); in one
    # dimension ms1vp's (nu + nk + 2 [+ 1]), and at G = 1 mnxiip's, the same formula.
    n_features = first.shape[1]
    terms = _terms(nk, first, values, active)
    traces = values.scale + _traces(nk, first, second, terms)
    counts = (values.dof + n_features * nk + 2.0 + n_features * terms.positive) / n_features
    return terms.shrunk, counts, _per_feature(traces, n_features)


def _eii(nk, first, second, values, active=None):
    n_features = first.shape[1]
    terms = _terms(nk, first, values, active)
    traces = _traces(nk, first, second, terms)
    if n_features == 1:
        # 'E' (me1ep): (Lambda + sum_k (W_k + c_k d_k^2)) / (nu + n + 2 [+ G]);
        # mvn1p at G = 1 is the same formula.
        traces = traces + values.scale / terms.n_active
        counts = _spread(values.dof + 2.0 + terms.n_active * terms.positive, nk, terms)
        return terms.shrunk, counts, traces[:, None]
    single = terms.n_active == 1
    # mclust (meeiip): the scale is never added, and the denominator
    # nu + (n + G) D + 2 adds G D whatever the shrinkage. At G = 1 mclustBIC
    # uses mnxiip, VII's formula: with the scale, nu + D n + 2 [+ D].
    traces = traces + jnp.where(single, values.scale, 0.0)
    # The pooled denominator, as D times the counts summed over the active components.
    extra = (values.dof + 2.0) / n_features + jnp.where(single, terms.positive, terms.n_active)
    return terms.shrunk, _spread(extra, nk, terms), _per_feature(traces, n_features)


# -- Diagonal representation (EEI, VEI, EVI, VVI) ---------------------------------


def _diagonals(nk, first, second, terms: _Terms):
    """``diag(W_k) + c_k d_k^2`` (K, D) from 'diag' moments."""
    scatter = second - nk[:, None] * jnp.square(terms.xbar)
    return scatter + terms.weight[:, None] * jnp.square(terms.difference)


def _vvi(nk, first, second, values, active=None):
    # mevvip (and mnxxip at G = 1): (Lambda + diag(W_k) + c_k d_k^2) / (nu + nk + 2 [+ 1]).
    terms = _terms(nk, first, values, active)
    counts = values.dof + nk + 2.0 + terms.positive
    return terms.shrunk, counts, values.scale + _diagonals(nk, first, second, terms)


def _equal_volume_counts(nk, values, terms: _Terms):
    """EEI's and EVI's pooled denominator: meeeip's and meevip's nu + n + 1 [+ 1], mnxxip's nu + n + 2 [+ 1]."""
    single = (terms.n_active == 1).astype(nk.dtype)
    return _spread(values.dof + 1.0 + single + terms.positive, nk, terms)


def _eei(nk, first, second, values, active=None):
    # meeeip: (Lambda + sum_k (diag(W_k) + c_k d_k^2)) / (nu + n + 1 [+ 1]).
    terms = _terms(nk, first, values, active)
    diagonals = _diagonals(nk, first, second, terms) + values.scale / terms.n_active
    # mclust: meeeip never shrinks the means (it keeps xbar_k, though the
    # scatter gets the c_k d_k^2 term); mnxxip, used at G = 1, does.
    means = jnp.where(terms.n_active == 1, terms.shrunk, terms.xbar)
    return means, _equal_volume_counts(nk, values, terms), diagonals


def _evi(nk, first, second, values, active=None):
    # meevip: B_k = Lambda + diag(W_k) + c_k d_k^2 (the scale in every
    # component), volume sum_k det(B_k)^(1/D) / (nu + n + 1 [+ 1]).
    terms = _terms(nk, first, values, active)
    return terms.shrunk, _equal_volume_counts(nk, values, terms), values.scale + _diagonals(nk, first, second, terms)


def _vei(nk, first, second, values, active=None):
    # meveip: volumes sum_j B_kj / a_j / (nu + D nk + 2 [+ 1]) (mclust adds 1,
    # not D, for the shrinkage); at G = 1 mnxxip's B / (nu + n + 2 [+ 1]).
    n_features = first.shape[1]
    terms = _terms(nk, first, values, active)
    counts = jnp.where(
        terms.n_active == 1,
        values.dof + nk + 2.0 + terms.positive,
        (values.dof + n_features * nk + 2.0 + terms.positive) / n_features,
    )
    return terms.shrunk, counts, values.scale + _diagonals(nk, first, second, terms)


# -- Full and tied representations (EEE, EEV, VEV, VVV) ---------------------------


def _outer(vectors):
    return vectors[:, :, None] * vectors[:, None, :]


def _matrices(nk, second, terms: _Terms):
    """``W_k + c_k d_k d_k^T`` (K, D, D) from 'full' moments."""
    scatter = second - nk[:, None, None] * _outer(terms.xbar)
    return scatter + terms.weight[:, None, None] * _outer(terms.difference)


def _vvv(nk, first, second, values, active=None):
    # mevvvp (and mnxxxp at G = 1): (Lambda + W_k + c_k d_k d_k^T) / (nu + nk + D + 1 [+ 1]).
    n_features = first.shape[1]
    terms = _terms(nk, first, values, active)
    counts = values.dof + nk + n_features + 1.0 + terms.positive
    return terms.shrunk, counts, values.scale + _matrices(nk, second, terms)


def _eee(nk, first, second, values, active=None):
    # meeeep: (Lambda + sum_k (W_k + c_k d_k d_k^T)) / (nu + n + D + 1 [+ G]);
    # 'tied' moments are already summed over the components.
    n_features = first.shape[1]
    terms = _terms(nk, first, values, active)
    counts = _spread(values.dof + n_features + 1.0 + terms.n_active * terms.positive, nk, terms)
    pooled = jnp.einsum("k,kd,ke->de", _pooled_weights(nk, active), terms.xbar, terms.xbar)
    shrinkage = jnp.einsum("k,kd,ke->de", terms.weight, terms.difference, terms.difference)
    return terms.shrunk, counts, values.scale + second - pooled + shrinkage


def _eev(nk, first, second, values, active=None):
    # meeevp (and mnxxxp at G = 1): eigenvalues of B_k = Lambda + W_k + c_k d_k d_k^T
    # pooled over nu + n + D + 1 [+ 1]. (mclust's mstep never shrinks here, see the module docstring.)
    n_features = first.shape[1]
    terms = _terms(nk, first, values, active)
    counts = _spread(values.dof + n_features + 1.0 + terms.positive, nk, terms)
    return terms.shrunk, counts, values.scale + _matrices(nk, second, terms)


def _vev(nk, first, second, values, active=None):
    # mclust: mevevp never uses the degrees of freedom (its volumes divide by
    # D nk, as without a prior); mnxxxp at G = 1 divides by nu + n + D + 1 [+ 1].
    n_features = first.shape[1]
    terms = _terms(nk, first, values, active)
    counts = jnp.where(terms.n_active == 1, values.dof + nk + n_features + 1.0 + terms.positive, nk)
    return terms.shrunk, counts, values.scale + _matrices(nk, second, terms)


PRIOR_FORMS = types.MappingProxyType({
    "spherical": PriorForm(False, _vii),
    "EII": PriorForm(False, _eii),
    "diag": PriorForm(False, _vvi),
    "EEI": PriorForm(False, _eei),
    "VEI": PriorForm(False, _vei),
    "EVI": PriorForm(False, _evi),
    "tied": PriorForm(True, _eee),
    "full": PriorForm(True, _vvv),
    "EEV": PriorForm(True, _eev),
    "VEV": PriorForm(True, _vev),
})
"""Entry name -> :class:`PriorForm`, for the ten models mclust has a prior for (and so 'E', 'V')."""
