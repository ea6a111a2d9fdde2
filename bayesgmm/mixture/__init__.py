"""The maximum-likelihood half: EM for Gaussian mixtures, jitted with JAX.

Never imports NumPyro or ArviZ. The engine is built from values passed in:
a covariance structure (:mod:`bayesgmm.structures`), an E-step form
(:mod:`bayesgmm.mixture.forms`) and a data pass (in memory,
:mod:`bayesgmm.mixture.blocks`; streamed, :mod:`bayesgmm.mixture.streaming`).
:mod:`bayesgmm.mixture.driver` is the fit, :mod:`bayesgmm.mixture.estimator`
the scikit-learn estimator on top.
"""
