"""M-steps of mclust's constrained covariances ``Sigma_k = lambda_k D_k A_k D_k^T``.

Celeux & Govaert (1995) write each covariance as a volume ``lambda_k`` (a
positive scalar, ``det(Sigma_k)^(1/D)``), a shape ``A_k`` (diagonal, det 1)
and an orientation ``D_k`` (orthogonal), and name a model by which of the
three are Equal across components, Variable, or the Identity. R's mclust fits
fourteen of them; four are scikit-learn's types ('VII' = 'spherical', 'VVI' =
'diag', 'EEE' = 'tied', 'VVV' = 'full') and this module adds the other ten,
one function each, with the signature of
:attr:`bayesgmm.structures.CovarianceStructure.m_step_covariances`::

    m_step_covariances(nk (K,), means (K, D), second, reg_covar, active=None) -> covariances

in one of the existing representations: ``'spherical'`` (covariances (K,),
``second`` (K, D) the mean of each component's diagonal repeated D times),
``'diag'`` ((K, D), ``second`` (K, D)) or ``'full'`` ((K, D, D), ``second``
(K, D, D)); ``second`` holds the raw weighted moments ``sum_i r_ik x_i x_i^T``
(or their diagonals). :data:`M_STEPS` maps each name to its representation and
function, :data:`N_COVARIANCE_PARAMETERS` every one of the fourteen to its
free-parameter count (mclust's ``nVarParams``). The functions are defined by
family, the models without an orientation in
:mod:`~bayesgmm.structures._constrained_diagonal`, those with one in
:mod:`~bayesgmm.structures._constrained_full`, on the pieces they share in
:mod:`~bayesgmm.structures._constrained_pooling`; this module gathers them
into the tables.

Every function first forms the scatter each component has in the matching
unconstrained structure, ``W_k = nk_k (second_k / nk_k - mu_k mu_k^T +
reg_covar I)`` (its diagonal for 'diag', its trace over D for 'spherical'),
and then maximises ``sum_k -nk_k/2 log det Sigma_k - 1/2 tr(W_k Sigma_k^-1)``
within the model. So the regularisation is the one the four existing types
use (with the same W_k, 'EEE' is ``sum_k W_k / n`` and 'VVV' ``W_k / nk_k``,
exactly what 'tied' and 'full' compute), and the constraints hold exactly,
whatever ``reg_covar``.

The closed forms (EII, EEI, EVI, EEV, EVV) and the iterations (VEI, VEE, EVE,
VVE, VEV) follow mclust's Fortran (``msevi``, ``msvei``, ... in
``src/mclust.f`` and ``src/mclust2.f``, unchanged from version 6.0 to 6.1):
the same starting values and the same order of updates, with mclust's default
inner tolerance (``emControl()$tol[2] = sqrt(.Machine$double.eps)``) taken at
the working precision, ``sqrt(finfo(dtype).eps)``, and a cap of
:data:`MAX_INNER_ITERATIONS` where mclust has ``.Machine$integer.max``. Two
differences are deliberate:

- VEE, EVE and VVE stop, as mclust's VEI and VEV do, when no volume, shape
  entry or orientation entry changes by more than the tolerance relative to
  ``1 + |value|``; mclust stops them on the relative change of a likelihood
  target, which leaves its covariances 1e-5 to 1e-4 (relative) short of the
  maximum, where this rule leaves them within about 1e-8.
- VVE's orientation steps weigh each component by its covariance's
  eigenvalues, not by its shape only (see :func:`vve_m_step_covariances`), so
  that it is the maximum-likelihood VVE.

mclust's refusals (it returns NA for a scatter whose smallest eigenvalue is
below ``sqrt(eps)``, an absolute threshold) are not reproduced: a scatter that
is not positive definite gives NaN covariances or covariances that are not
positive definite, which the caller reports as degenerate, as for the other
types. In one dimension mclust fits only 'E' and 'V'; here every model still
runs and comes out as one of them (EII or VII, by its volume letter).

``active``, a boolean (K,) mask, marks components padded up to a bucket
(``nk`` 0, zero moments): their covariances are identities (ones for 'diag'
and 'spherical'), they enter no pooled quantity (``n``, a common shape,
volume or orientation, a stopping criterion), and the active components get
the covariances they get without the padding. Without it no masking
operation is traced. The functions are pure and unjitted, so that they
compose under ``jit`` and ``vmap`` (the iterations are ``lax.while_loop``\\ s,
which ``vmap`` runs until every member of the batch has stopped); JAX
only.

Examples
--------
>>> import jax.numpy as jnp
>>> from bayesgmm.structures import _constrained
>>> nk = jnp.array([2.0, 2.0])
>>> means = jnp.zeros((2, 2))
>>> second = jnp.array([[1.0, 4.0], [4.0, 1.0]])   # 'diag' moments
>>> _constrained.evi_m_step_covariances(nk, means, second, 0.0).tolist()  # volumes 1
[[0.5, 2.0], [2.0, 0.5]]
>>> _constrained.N_COVARIANCE_PARAMETERS["VEV"](3, 4)
24.0
"""

from __future__ import annotations

import types

from bayesgmm.structures._constrained_diagonal import (
    eei_m_step_covariances,
    eii_m_step_covariances,
    evi_m_step_covariances,
    vei_m_step_covariances,
)
from bayesgmm.structures._constrained_full import (
    eev_m_step_covariances,
    eve_m_step_covariances,
    evv_m_step_covariances,
    vee_m_step_covariances,
    vev_m_step_covariances,
    vve_m_step_covariances,
)
from bayesgmm.structures._constrained_pooling import MAX_INNER_ITERATIONS

__all__ = [
    "MAX_INNER_ITERATIONS",
    "M_STEPS",
    "N_COVARIANCE_PARAMETERS",
    "eei_m_step_covariances",
    "eev_m_step_covariances",
    "eii_m_step_covariances",
    "eve_m_step_covariances",
    "evi_m_step_covariances",
    "evv_m_step_covariances",
    "vee_m_step_covariances",
    "vei_m_step_covariances",
    "vev_m_step_covariances",
    "vve_m_step_covariances",
    "CONTINUED_M_STEPS",
]

# -- The tables ------------------------------------------------------------------


N_COVARIANCE_PARAMETERS = types.MappingProxyType({
    "EII": lambda n_components, n_features: 1.0,
    "VII": lambda n_components, n_features: float(n_components),
    "EEI": lambda n_components, n_features: float(n_features),
    "VEI": lambda n_components, n_features: float(n_components + n_features - 1),
    "EVI": lambda n_components, n_features: float(1 + n_components * (n_features - 1)),
    "VVI": lambda n_components, n_features: float(n_components * n_features),
    "EEE": lambda n_components, n_features: n_features * (n_features + 1) / 2.0,
    "VEE": lambda n_components, n_features: n_components + n_features * (n_features + 1) / 2.0 - 1,
    "EVE": lambda n_components, n_features: (
        1 + n_components * (n_features - 1) + n_features * (n_features - 1) / 2.0
    ),
    "VVE": lambda n_components, n_features: (
        n_components * n_features + n_features * (n_features - 1) / 2.0
    ),
    "EEV": lambda n_components, n_features: (
        float(n_features) + n_components * n_features * (n_features - 1) / 2.0
    ),
    "VEV": lambda n_components, n_features: (
        n_components + n_features - 1 + n_components * n_features * (n_features - 1) / 2.0
    ),
    "EVV": lambda n_components, n_features: (
        1 + n_components * (n_features * (n_features + 1) / 2.0 - 1)
    ),
    "VVV": lambda n_components, n_features: n_components * n_features * (n_features + 1) / 2.0,
})
"""Free covariance parameters of each of mclust's fourteen models (its ``nVarParams``).

``(n_components, n_features) -> float``; a volume, shape or orientation that is
Equal counts once, a Variable one once per component, with ``D - 1`` free
entries per shape (det 1) and ``D (D - 1) / 2`` per orientation.
"""

M_STEPS = types.MappingProxyType({
    "EII": ("spherical", eii_m_step_covariances),
    "EEI": ("diag", eei_m_step_covariances),
    "VEI": ("diag", vei_m_step_covariances),
    "EVI": ("diag", evi_m_step_covariances),
    "VEE": ("full", vee_m_step_covariances),
    "EVE": ("full", eve_m_step_covariances),
    "VVE": ("full", vve_m_step_covariances),
    "EEV": ("full", eev_m_step_covariances),
    "VEV": ("full", vev_m_step_covariances),
    "EVV": ("full", evv_m_step_covariances),
})
"""The ten models that are none of 'spherical' (VII), 'diag' (VVI), 'tied' (EEE), 'full' (VVV).

name -> (representation, ``m_step_covariances``): the representation is the
existing structure whose shapes, moments and densities the model shares.
"""

CONTINUED_M_STEPS = frozenset({"EVE", "VVE"})
"""The models whose M-step takes ``previous=`` covariances to start its iteration from."""
