"""bayesgmm: Gaussian mixture models fitted by JAX-jitted EM and by NumPyro NUTS.

The maximum-likelihood half (``GaussianMixture``) never imports NumPyro or
ArviZ; the Bayesian half (``BayesianGaussianMixture``) is imported lazily on
first access.
"""

from importlib import import_module
from typing import TYPE_CHECKING

from bayesgmm._version import __version__

if TYPE_CHECKING:  # what type checkers see; at run time every name is imported on first use
    from bayesgmm import alignment, datasets, metrics
    from bayesgmm._compilation_cache import enable_compilation_cache
    from bayesgmm.mixture.estimator import GaussianMixture
    from bayesgmm.mixture.prior import ConjugatePrior
    from bayesgmm.mixture.imputer import MixtureImputer
    from bayesgmm.mixture.selection import GaussianMixtureIC

# Every public name is imported on first access, so that `import bayesgmm`
# (and the command line's --help, --version and argument errors) imports
# neither JAX nor scikit-learn.
_LAZY = {
    "GaussianMixture": ("bayesgmm.mixture.estimator", "GaussianMixture"),
    "GaussianMixtureIC": ("bayesgmm.mixture.selection", "GaussianMixtureIC"),
    "ConjugatePrior": ("bayesgmm.mixture.prior", "ConjugatePrior"),
    "MixtureImputer": ("bayesgmm.mixture.imputer", "MixtureImputer"),
    "alignment": ("bayesgmm.alignment", None),
    "datasets": ("bayesgmm.datasets", None),
    "metrics": ("bayesgmm.metrics", None),
    "BayesianGaussianMixture": ("bayesgmm.bayes.estimator", "BayesianGaussianMixture"),
    "model": ("bayesgmm.bayes.model", None),
    "plot": ("bayesgmm.plot", None),
    "load": ("bayesgmm.persistence", "load"),
    "save": ("bayesgmm.persistence", "save"),
    "distributed": ("bayesgmm.distributed", None),
    "enable_compilation_cache": ("bayesgmm._compilation_cache", "enable_compilation_cache"),
}

__all__ = [
    "GaussianMixture",
    "GaussianMixtureIC",
    "ConjugatePrior",
    "MixtureImputer",
    "BayesianGaussianMixture",
    "alignment",
    "datasets",
    "metrics",
    "load",
    "enable_compilation_cache",
    "__version__",
]


def __getattr__(name):
    if name in _LAZY:
        module_name, attribute = _LAZY[name]
        module = import_module(module_name)
        return module if attribute is None else getattr(module, attribute)
    raise AttributeError(f"module 'bayesgmm' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
