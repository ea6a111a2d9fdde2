"""The sites of the Bayesian model a covariance structure has: named axes and kinds (a leaf module)."""

from __future__ import annotations

import types
from typing import NamedTuple

COMPONENT, FEATURE, FEATURE_BIS = "component", "feature", "feature_bis"


SITE_KINDS = types.MappingProxyType({
    "feature_scales": (
        "standard deviations, one per feature (event shape (D,)), positive; prior "
        "LogNormal(log scale_prior_median, scale_prior_log_sd) per feature"
    ),
    "common_scale": (
        "one standard deviation shared by all features (event shape ()), positive; "
        "prior LogNormal(log m, scale_prior_log_sd) with m the geometric mean of "
        "scale_prior_median"
    ),
    "lkj_cholesky": (
        "the lower Cholesky factor of a D x D correlation matrix (event shape "
        "(D, D)); prior LKJCholesky(D, lkj_concentration)"
    ),
})
"""What a :class:`Site` may be: kind -> its support and prior, in words (read-only).

:mod:`bayesgmm.bayes.model` maps each kind to its NumPyro distribution.
"""


class Site(NamedTuple):
    """One latent site of a structure's covariances in the NumPyro model, in plain terms.

    Attributes
    ----------
    name : str
        The sample site's name, which is also its variable in ``InferenceData``.
    kind : str
        One of :data:`SITE_KINDS`: its support and prior.
    dims : tuple of str
        The named axes of one draw, which are its ArviZ dimensions:
        ``'component'`` (K, first when present), ``'feature'`` and
        ``'feature_bis'`` (D, the second axis of a matrix).

    Examples
    --------
    >>> site = Site("scales", "feature_scales", ("component", "feature"))
    >>> site.component_axis, site.event_dims, site.shape(3, 2)
    (True, ('feature',), (3, 2))
    """

    name: str
    kind: str
    dims: tuple

    @property
    def component_axis(self) -> bool:
        """Whether the site has one entry per component (its first axis).

        Such a site is sampled in the model's ``"component"`` plate, padded
        with the component axis, permuted by a relabelling and informed by
        one component's points; the others are shared by all components.
        """
        return self.dims[:1] == (COMPONENT,)

    @property
    def event_dims(self) -> tuple:
        """The axes of one component's value (all of them for a shared site)."""
        return self.dims[1:] if self.component_axis else self.dims

    def shape(self, n_components: int, n_features: int) -> tuple:
        """The shape of one draw."""
        sizes = {COMPONENT: n_components, FEATURE: n_features, FEATURE_BIS: n_features}
        return tuple(sizes[dim] for dim in self.dims)
