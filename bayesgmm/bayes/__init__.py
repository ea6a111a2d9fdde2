"""The Bayesian half: the NumPyro model, NUTS and SVI, relabelling, ArviZ output.

:mod:`bayesgmm.bayes.model` is the model as a plain function;
:mod:`bayesgmm.bayes.nuts` and :mod:`bayesgmm.bayes.svi` fit it, starting
from the EM half (:mod:`bayesgmm.bayes.chain_start`);
:mod:`bayesgmm.bayes.posterior` evaluates draws and
:mod:`bayesgmm.bayes.relabel` resolves label switching;
:mod:`bayesgmm.bayes.estimator` is the estimator on top.
"""
