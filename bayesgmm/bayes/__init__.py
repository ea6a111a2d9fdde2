"""The Bayesian half: the NumPyro model, NUTS and SVI, relabelling, ArviZ output.

:mod:`bayesgmm.bayes.model` is the model as a plain function (its priors in
:mod:`bayesgmm.bayes.priors`, its padded weights in
:mod:`bayesgmm.bayes.padded_dirichlet`); :mod:`bayesgmm.bayes.nuts` and
:mod:`bayesgmm.bayes.svi` fit it, starting from the EM half
(:mod:`bayesgmm.bayes.chain_start`); :mod:`bayesgmm.bayes.posterior`
evaluates draws and :mod:`bayesgmm.bayes.relabel` resolves label switching
(for draws you sampled yourself too: :func:`relabel_draws`);
:mod:`bayesgmm.bayes.diagnostics` builds the ArviZ output;
:mod:`bayesgmm.bayes.fitting` runs the fits of
:mod:`bayesgmm.bayes.estimator`, the estimator on top (its checks in
:mod:`bayesgmm.bayes.validation`, its replicated data and imputations in
:mod:`bayesgmm.bayes.replicates`);
:mod:`bayesgmm.bayes.comparison` compares fitted posteriors by PSIS-LOO
(:func:`compare`).
"""

from importlib import import_module

__all__ = ["compare", "relabel_draws"]

# Imported on first use, so that importing one module of the package (the
# model alone, say) does not import the samplers.
_LAZY = {"relabel_draws": "bayesgmm.bayes.relabel", "compare": "bayesgmm.bayes.comparison"}


def __getattr__(name):
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'bayesgmm.bayes' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
