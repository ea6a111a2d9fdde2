"""bayesgmm: Gaussian mixture models fitted by JAX-jitted EM and by NumPyro NUTS.

The maximum-likelihood half (``GaussianMixture``) never imports NumPyro or
ArviZ; the Bayesian half (``BayesianGaussianMixture``) is imported lazily on
first access.
"""

from importlib import import_module

from bayesgmm import alignment, datasets, metrics
from bayesgmm._version import __version__
from bayesgmm.mixture.estimator import GaussianMixture


_LAZY = {
    "BayesianGaussianMixture": ("bayesgmm.bayes.estimator", "BayesianGaussianMixture"),
    "model": ("bayesgmm.bayes.model", None),
    "plot": ("bayesgmm.plot", None),
    "load": ("bayesgmm.persistence", "load"),
    "save": ("bayesgmm.persistence", "save"),
    "distributed": ("bayesgmm.distributed", None),
}

__all__ = [
    "GaussianMixture",
    "BayesianGaussianMixture",
    "alignment",
    "datasets",
    "metrics",
    "load",
    "__version__",
]


def __getattr__(name):
    if name in _LAZY:
        module_name, attribute = _LAZY[name]
        module = import_module(module_name)
        return module if attribute is None else getattr(module, attribute)
    raise AttributeError(f"module 'bayesgmm' has no attribute {name!r}")
