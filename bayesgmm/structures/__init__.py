"""The covariance-structure table: everything a covariance type decides, in one entry.

A :class:`CovarianceStructure` bundles the shapes, the free-parameter count
and the pure functions (Cholesky conversions, log densities, quadratic
features, M-step, sampling) of one covariance type, and what it decides in
the Bayesian model: its covariance sites (:class:`Site`), their mapping to
covariances and precision factors and back, how chain starts and data sets
are drawn. The rest of the library looks an entry up with :func:`get` and
calls its fields instead of branching on the type's name, so adding a
structure is adding an entry (and its tests).

Shapes, following scikit-learn (``P`` is the precision Cholesky factor, with
``precision = P @ P.T``; for ``Sigma = L @ L.T`` it is ``P = inv(L).T``):

=============  ===========================  ===========================
name           covariances                  precisions_cholesky
=============  ===========================  ===========================
``full``       (n_components, D, D)         (n_components, D, D)
``tied``       (D, D)                       (D, D)
``diag``       (n_components, D)            (n_components, D), 1/sqrt(var)
``spherical``  (n_components,)              (n_components,), 1/sqrt(var)
=============  ===========================  ===========================

The functions are not jitted, so that they compose under ``jit`` and ``vmap``
at the caller's boundary; an entry is a tuple of strings, booleans and
functions, hence hashable and usable as a static argument. A covariance that
is not positive definite yields NaN entries, never an exception inside
traced code. This module imports only NumPy and JAX, so that
:mod:`bayesgmm.gaussian` and :mod:`bayesgmm.mixture.quadratic` can delegate to it
and the EM half never imports NumPyro: the Bayesian sites are described in
plain terms (a name, a kind from :data:`SITE_KINDS`, named axes), which
:mod:`bayesgmm.bayes.model` turns into NumPyro distributions through one
mapping from kind to prior.

Examples
--------
>>> from bayesgmm import structures
>>> structures.get("diag").parameter_shape(3, 4)
(3, 4)
>>> structures.n_parameters("full", 2, 3)
19
>>> [site.name for site in structures.get("full").covariance_sites(3)]
['scales', 'corr_cholesky']
>>> structures.get("tied").covariance_sites(3)[0].component_axis
False
"""

from __future__ import annotations

import types
from typing import NamedTuple

import jax.numpy as jnp
import numpy as np

from bayesgmm.structures import _constrained as _constrained_math
from bayesgmm.structures._entry import CovarianceStructure
from bayesgmm.structures._math import (
    LOG_2PI,
    _coefficients_of,
    _diag_centred_second,
    _diag_correlate_noise_host,
    _diag_features,
    _diag_full_matrices,
    _diag_linear_and_quadratic,
    _diag_log_det,
    _diag_m_step_covariances,
    _diag_mean_distances,
    _diag_random_covariances,
    _diag_squared_mahalanobis,
    _full_correlate_noise_host,
    _full_full_matrices,
    _full_inactive_parameters,
    _full_linear_and_quadratic,
    _full_mean_distances,
    _full_random_covariances,
    _full_scatter,
    _full_squared_mahalanobis,
    _identity_parameters_of,
    _matrix_centred_second,
    _matrix_correlate_noise,
    _matrix_covariances_from_precisions_cholesky,
    _matrix_covariances_from_sites,
    _matrix_features,
    _matrix_log_det,
    _matrix_m_step_covariances_of,
    _matrix_precisions_cholesky_from_covariances,
    _matrix_precisions_cholesky_from_precisions,
    _matrix_precisions_cholesky_from_sites,
    _matrix_precisions_from_cholesky,
    _matrix_sample,
    _matrix_sites_from_covariances,
    _matrix_sites_of,
    _moments_of,
    _positive_variances,
    _spherical_centred_second,
    _spherical_correlate_noise_host,
    _spherical_features,
    _spherical_full_matrices,
    _spherical_linear_and_quadratic,
    _spherical_log_det,
    _spherical_m_step_covariances,
    _spherical_mean_distances,
    _spherical_random_covariances,
    _spherical_squared_mahalanobis,
    _symmetric_positive_definite,
    _tied_correlate_noise_host,
    _tied_full_matrices,
    _tied_inactive_parameters,
    _tied_linear_and_quadratic,
    _tied_mean_distances,
    _tied_random_covariances,
    _tied_scatter,
    _tied_squared_mahalanobis,
    _variance_precisions_cholesky_from_covariances,
    _variance_sample,
    _variance_sites_from_covariances,
    packed_index,
)
from bayesgmm.structures._prior import PRIOR_FORMS
from bayesgmm.structures._sites import COMPONENT, FEATURE, FEATURE_BIS, SITE_KINDS, Site

__all__ = [
    "ALIASES", "COMPONENT", "FEATURE", "FEATURE_BIS", "LOG_2PI", "MCLUST_NAMES", "NAMES", "SITE_KINDS",
    "STRUCTURES", "STRUCTURES_SKLEARN",
    "CovarianceStructure", "Family", "Site", "families", "family", "get", "n_parameters", "packed_index",
    "representation",
]


# -- The table ---------------------------------------------------------------

_FULL = CovarianceStructure(
    name="full",
    component_axis=True,
    narrow_features=False,
    parameter_shape=lambda n_components, n_features: (n_components, n_features, n_features),
    second_shape=lambda n_components, n_features: (n_components, n_features, n_features),
    n_covariance_parameters=lambda n_components, n_features: n_components * n_features * (n_features + 1) / 2.0,
    precisions_cholesky_from_covariances=_matrix_precisions_cholesky_from_covariances,
    precisions_cholesky_from_precisions=_matrix_precisions_cholesky_from_precisions,
    precisions_from_cholesky=_matrix_precisions_from_cholesky,
    covariances_from_precisions_cholesky=_matrix_covariances_from_precisions_cholesky,
    log_det_cholesky=_matrix_log_det,
    squared_mahalanobis=_full_squared_mahalanobis,
    feature_count=lambda n_features: 1 + n_features + n_features * (n_features + 1) // 2,
    features=_matrix_features,
    mean_distances=_full_mean_distances,
    coefficients=_coefficients_of(_matrix_log_det, _full_mean_distances, _full_linear_and_quadratic),
    moments=_moments_of(lambda rest, first, n_features: rest[:, packed_index(n_features)]),
    m_step_covariances=_matrix_m_step_covariances_of(_full_scatter, per_component=True),
    centred_second=_matrix_centred_second,
    inactive_parameters=_full_inactive_parameters,
    sample=_matrix_sample,
    component_covariance=lambda covariances, k: covariances[k],
    full_matrices=_full_full_matrices,
    positive_definite=_symmetric_positive_definite,
    covariance_requirement="symmetric positive definite matrices",
    random_covariances=_full_random_covariances,
    covariance_sites=_matrix_sites_of(per_component=True),
    covariance_dims=(COMPONENT, FEATURE, FEATURE_BIS),
    covariances_from_sites=_matrix_covariances_from_sites,
    precisions_cholesky_from_sites=_matrix_precisions_cholesky_from_sites,
    sites_from_covariances=_matrix_sites_from_covariances,
    feature_variances=lambda covariances, n_features: np.diagonal(np.asarray(covariances), axis1=-2, axis2=-1),
    work_per_component=lambda n_features: n_features**2,
    min_component_points=lambda n_features: n_features + 1,
    correlate_noise=lambda noise, labels, precisions_cholesky: _matrix_correlate_noise(
        noise, precisions_cholesky[labels]
    ),
    correlate_noise_host=_full_correlate_noise_host,
    prior_form=PRIOR_FORMS["full"],
)


_TIED = CovarianceStructure(
    name="tied",
    component_axis=False,
    narrow_features=False,
    parameter_shape=lambda n_components, n_features: (n_features, n_features),
    second_shape=lambda n_components, n_features: (n_features, n_features),
    n_covariance_parameters=lambda n_components, n_features: n_features * (n_features + 1) / 2.0,
    precisions_cholesky_from_covariances=_matrix_precisions_cholesky_from_covariances,
    precisions_cholesky_from_precisions=_matrix_precisions_cholesky_from_precisions,
    precisions_from_cholesky=_matrix_precisions_from_cholesky,
    covariances_from_precisions_cholesky=_matrix_covariances_from_precisions_cholesky,
    log_det_cholesky=_matrix_log_det,
    squared_mahalanobis=_tied_squared_mahalanobis,
    feature_count=lambda n_features: 1 + n_features + n_features * (n_features + 1) // 2,
    features=_matrix_features,
    mean_distances=_tied_mean_distances,
    coefficients=_coefficients_of(_matrix_log_det, _tied_mean_distances, _tied_linear_and_quadratic),
    moments=_moments_of(lambda rest, first, n_features: rest[:, packed_index(n_features)].sum(axis=0)),
    m_step_covariances=_matrix_m_step_covariances_of(_tied_scatter, per_component=False),
    centred_second=_matrix_centred_second,
    inactive_parameters=_tied_inactive_parameters,
    sample=_matrix_sample,
    component_covariance=lambda covariances, k: covariances,
    full_matrices=_tied_full_matrices,
    positive_definite=_symmetric_positive_definite,
    covariance_requirement="symmetric positive definite matrices",
    random_covariances=_tied_random_covariances,
    covariance_sites=_matrix_sites_of(per_component=False),
    covariance_dims=(FEATURE, FEATURE_BIS),
    covariances_from_sites=_matrix_covariances_from_sites,
    precisions_cholesky_from_sites=_matrix_precisions_cholesky_from_sites,
    sites_from_covariances=_matrix_sites_from_covariances,
    feature_variances=lambda covariances, n_features: np.diagonal(np.asarray(covariances))[None, :],
    work_per_component=lambda n_features: n_features,
    min_component_points=lambda n_features: 1,
    correlate_noise=lambda noise, labels, precisions_cholesky: _matrix_correlate_noise(
        noise, precisions_cholesky
    ),
    correlate_noise_host=_tied_correlate_noise_host,
    prior_form=PRIOR_FORMS["tied"],
    scatter_of_unassigned_rows=True,
)


_DIAG = CovarianceStructure(
    name="diag",
    component_axis=True,
    narrow_features=True,
    parameter_shape=lambda n_components, n_features: (n_components, n_features),
    second_shape=lambda n_components, n_features: (n_components, n_features),
    n_covariance_parameters=lambda n_components, n_features: float(n_components * n_features),
    precisions_cholesky_from_covariances=_variance_precisions_cholesky_from_covariances,
    precisions_cholesky_from_precisions=jnp.sqrt,
    precisions_from_cholesky=lambda precisions_cholesky: precisions_cholesky**2,
    covariances_from_precisions_cholesky=lambda precisions_cholesky: 1.0 / precisions_cholesky**2,
    log_det_cholesky=_diag_log_det,
    squared_mahalanobis=_diag_squared_mahalanobis,
    feature_count=lambda n_features: 1 + 2 * n_features,
    features=_diag_features,
    mean_distances=_diag_mean_distances,
    coefficients=_coefficients_of(_diag_log_det, _diag_mean_distances, _diag_linear_and_quadratic),
    moments=_moments_of(lambda rest, first, n_features: rest),
    m_step_covariances=_diag_m_step_covariances,
    centred_second=_diag_centred_second,
    inactive_parameters=_identity_parameters_of(lambda n_components, n_features: (n_components, n_features)),
    sample=_variance_sample,
    component_covariance=lambda covariances, k: covariances[k],
    full_matrices=_diag_full_matrices,
    positive_definite=_positive_variances,
    covariance_requirement="strictly positive variances",
    random_covariances=_diag_random_covariances,
    covariance_sites=lambda n_features: (Site("scales", "feature_scales", (COMPONENT, FEATURE)),),
    covariance_dims=(COMPONENT, FEATURE),
    covariances_from_sites=lambda sites: sites["scales"] ** 2,
    precisions_cholesky_from_sites=lambda sites: 1.0 / sites["scales"],
    sites_from_covariances=_variance_sites_from_covariances,
    feature_variances=lambda covariances, n_features: np.asarray(covariances),
    work_per_component=lambda n_features: n_features,
    min_component_points=lambda n_features: 2,
    correlate_noise=lambda noise, labels, precisions_cholesky: noise / precisions_cholesky[labels],
    correlate_noise_host=_diag_correlate_noise_host,
    prior_form=PRIOR_FORMS["diag"],
)


_SPHERICAL = CovarianceStructure(
    name="spherical",
    component_axis=True,
    narrow_features=True,
    parameter_shape=lambda n_components, n_features: (n_components,),
    second_shape=lambda n_components, n_features: (n_components, n_features),
    n_covariance_parameters=lambda n_components, n_features: float(n_components),
    precisions_cholesky_from_covariances=_variance_precisions_cholesky_from_covariances,
    precisions_cholesky_from_precisions=jnp.sqrt,
    precisions_from_cholesky=lambda precisions_cholesky: precisions_cholesky**2,
    covariances_from_precisions_cholesky=lambda precisions_cholesky: 1.0 / precisions_cholesky**2,
    log_det_cholesky=_spherical_log_det,
    squared_mahalanobis=_spherical_squared_mahalanobis,
    feature_count=lambda n_features: 2 + n_features,
    features=_spherical_features,
    mean_distances=_spherical_mean_distances,
    coefficients=_coefficients_of(_spherical_log_det, _spherical_mean_distances, _spherical_linear_and_quadratic),
    # The mean of the diagonal repeated D times, so that the M-step treats
    # 'diag' and 'spherical' alike.
    moments=_moments_of(lambda rest, first, n_features: jnp.broadcast_to(rest / n_features, first.shape)),
    m_step_covariances=_spherical_m_step_covariances,
    centred_second=_spherical_centred_second,
    inactive_parameters=_identity_parameters_of(lambda n_components, n_features: (n_components,)),
    sample=_variance_sample,
    component_covariance=lambda covariances, k: covariances[k],
    full_matrices=_spherical_full_matrices,
    positive_definite=_positive_variances,
    covariance_requirement="strictly positive variances",
    random_covariances=_spherical_random_covariances,
    covariance_sites=lambda n_features: (Site("scales", "common_scale", (COMPONENT,)),),
    covariance_dims=(COMPONENT,),
    covariances_from_sites=lambda sites: sites["scales"] ** 2,
    precisions_cholesky_from_sites=lambda sites: 1.0 / sites["scales"],
    sites_from_covariances=_variance_sites_from_covariances,
    feature_variances=lambda covariances, n_features: np.repeat(np.asarray(covariances)[:, None], n_features, axis=1),
    work_per_component=lambda n_features: n_features,
    min_component_points=lambda n_features: 2,
    correlate_noise=lambda noise, labels, precisions_cholesky: noise / precisions_cholesky[labels][..., None],
    correlate_noise_host=_spherical_correlate_noise_host,
    prior_form=PRIOR_FORMS["spherical"],
)


def _mclust_entry(name: str, min_component_points) -> CovarianceStructure:
    """One of mclust's other models: the entry of its representation with its own M-step and count.

    Only the M-step and the count differ: the covariances are stored, used
    and checked in the representation's shapes. The Bayesian sites are the
    representation's, so the Bayesian half refuses these names (its priors
    do not express the constraints).
    """
    representation, m_step_covariances = _constrained_math.M_STEPS[name]
    return STRUCTURES_SKLEARN[representation]._replace(
        name=name,
        n_covariance_parameters=_constrained_math.N_COVARIANCE_PARAMETERS[name],
        m_step_covariances=m_step_covariances,
        min_component_points=min_component_points,
        prior_form=PRIOR_FORMS.get(name),
        m_step_continues=name in _constrained_math.CONTINUED_M_STEPS,
        scatter_of_unassigned_rows=False,
    )


STRUCTURES_SKLEARN = types.MappingProxyType({entry.name: entry for entry in (_FULL, _TIED, _DIAG, _SPHERICAL)})
"""scikit-learn's four structures by name ('full', 'tied', 'diag', 'spherical'); read-only."""

# A component's own volume or shape needs two points; its own orientation
# (EEV, VEV, EVV, VVV) D + 1: a scatter of D points or fewer has a null
# direction, which the orientation turns onto the smallest axis of the
# shape, however small the other components make it; a covariance shared by
# all components, one.
_OWN_VARIANCES = lambda n_features: 2  # noqa: E731
_CONSTRAINED = {
    "EII": lambda n_features: 1,
    "EEI": lambda n_features: 1,
    "VEI": _OWN_VARIANCES,
    "EVI": _OWN_VARIANCES,
    "VEE": _OWN_VARIANCES,
    "EVE": _OWN_VARIANCES,
    "VVE": _OWN_VARIANCES,
    "EEV": lambda n_features: n_features + 1,
    "VEV": lambda n_features: n_features + 1,
    "EVV": lambda n_features: n_features + 1,
}

STRUCTURES = types.MappingProxyType({
    **STRUCTURES_SKLEARN,
    **{name: _mclust_entry(name, points) for name, points in _CONSTRAINED.items()},
})
"""Every structure by name: scikit-learn's four, then mclust's ten others; read-only."""

MCLUST_NAMES = (
    "EII", "VII", "EEI", "VEI", "EVI", "VVI", "EEE", "VEE", "EVE", "VVE", "EEV", "VEV", "EVV", "VVV",
)
"""mclust's fourteen models of ``Sigma_k = lambda_k D_k A_k D_k^T`` in its order
(volume, shape, orientation: Equal, Variable, or I the identity)."""

ALIASES = types.MappingProxyType({
    "VVV": "full", "EEE": "tied", "VVI": "diag", "VII": "spherical", "E": "EII", "V": "spherical",
})
"""mclust's names of scikit-learn's four structures (Celeux and Govaert's
lambda D A D^T: V varying, E equal, I identity, for volume, shape and
orientation), and its names for one feature, 'E' (one variance) and 'V'
(a variance per component): the same entries, the same fits."""

NAMES = tuple(STRUCTURES) + tuple(ALIASES)
"""Every name :func:`get` accepts."""

ONE_FEATURE_NAMES = types.MappingProxyType({"E": "EII", "V": "VII"})
"""mclust's names for one feature, and the name of the same model in several."""


def check_n_features(name, n_features: int) -> None:
    """Refuse mclust's one-feature names on data of several features, as mclust does.

    Raises
    ------
    ValueError
        For 'E' or 'V' with ``n_features > 1``, naming the structure to use.
    """
    if isinstance(name, str) and name in ONE_FEATURE_NAMES and n_features > 1:
        raise ValueError(
            f"covariance_type={name!r} is mclust's name for data of one feature, but X has "
            f"{n_features} features. Use {ONE_FEATURE_NAMES[name]!r}, the same model in "
            "several dimensions, or another structure."
        )


def get(name) -> CovarianceStructure:
    """The table entry of a covariance type.

    Parameters
    ----------
    name : str, CovarianceStructure or Family
        One of :data:`NAMES` (an mclust name of :data:`ALIASES` gives the
        entry it names); an entry is returned as it is, so that callers may
        accept either; a :class:`Family` gives its representation's entry.

    Returns
    -------
    CovarianceStructure

    Raises
    ------
    ValueError
        For any other value, naming the valid choices.
    """
    if isinstance(name, CovarianceStructure):
        return name
    if isinstance(name, Family):
        return STRUCTURES[name.representation]
    if isinstance(name, str) and ALIASES.get(name, name) in STRUCTURES:
        return STRUCTURES[ALIASES.get(name, name)]
    raise ValueError(
        f"Invalid value for 'covariance_type': {name!r}. It must be one of "
        f"{', '.join(repr(choice) for choice in NAMES)}."
    )


class Family(NamedTuple):
    """Structures of one representation compiled into one program (:func:`family`).

    A static argument in place of a structure's name: everything but the
    M-step is the representation's (:func:`get` gives its entry), and the
    M-step is the member a traced index picks
    (:func:`bayesgmm.mixture.mstep.m_step`), so that a grid over the
    members compiles one program instead of one per member.
    """

    names: tuple
    representation: str

    def index(self, name) -> int:
        """The position of ``name`` (a name or an alias of a member) among the members."""
        return self.names.index(get(name).name)


def family(names) -> Family:
    """The :class:`Family` of ``names``, which must share one representation.

    Parameters
    ----------
    names : sequence of str
        Structure names or aliases; repeats are dropped, the order kept.

    Returns
    -------
    Family

    Raises
    ------
    ValueError
        For an unknown name, or names of different representations.

    Examples
    --------
    >>> family(["VEV", "VVV", "full"])
    Family(names=('VEV', 'full'), representation='full')
    """
    members = tuple(dict.fromkeys(get(name).name for name in names))
    kinds = {representation(name) for name in members}
    if len(kinds) != 1:
        raise ValueError(f"A family's structures share one representation; got {sorted(kinds)}.")
    return Family(members, kinds.pop())


def families(names) -> dict:
    """Each of ``names``' :class:`Family`: the structures of ``names`` that share its representation.

    One program then fits all of them (the M-step a traced choice), where
    each would compile its own: the E-step, the statistics and the loop,
    most of a program's compilation, are the representation's.

    Returns
    -------
    dict of str to Family or None
        None for a structure alone in its representation among ``names``.

    Examples
    --------
    >>> families(["VVV", "VEV", "EII"])["VEV"]
    Family(names=('full', 'VEV'), representation='full')
    """
    groups = {}
    for name in names:
        groups.setdefault(representation(name), []).append(name)
    return {
        name: family(groups[representation(name)]) if len(groups[representation(name)]) > 1 else None
        for name in names
    }


def representation(structure_or_name) -> str:
    """The scikit-learn structure whose shapes and density a structure uses.

    mclust's models store their covariances as one of scikit-learn's four
    structures and differ from it only in the M-step and the parameter
    count, so every computation but those two (the E-step, predictions)
    is the representation's, and programs compiled for it serve them all.

    Parameters
    ----------
    structure_or_name : str or CovarianceStructure

    Returns
    -------
    {'full', 'tied', 'diag', 'spherical'}

    Examples
    --------
    >>> representation("VEV"), representation("EEE"), representation("VII")
    ('full', 'tied', 'spherical')
    """
    if isinstance(structure_or_name, Family):
        return structure_or_name.representation
    name = get(structure_or_name).name
    return name if name in STRUCTURES_SKLEARN else _constrained_math.M_STEPS[name][0]


def n_parameters(structure_or_name, n_components: int, n_features: int) -> int:
    """Number of free parameters of a mixture, as used by BIC and AIC.

    Covariance parameters, ``n_features`` per mean and ``n_components - 1``
    weights (they sum to one).

    Parameters
    ----------
    structure_or_name : str or CovarianceStructure
    n_components : int
    n_features : int

    Returns
    -------
    int
    """
    covariance_parameters = get(structure_or_name).n_covariance_parameters(n_components, n_features)
    return int(covariance_parameters + n_features * n_components + n_components - 1)
