"""Compiler options chosen per call (bayesgmm.mixture.compilation)."""

import jax
import numpy as np
import pytest

from bayesgmm import GaussianMixture
from bayesgmm.mixture import compilation, engine, mstep


def test_pass_work_counts_rows_features_and_components():
    data = np.zeros((3, 100, 8))  # blocks of rows
    assert compilation.pass_work(data, 5, "full") == 300 * 45 * 5
    assert compilation.pass_work(data, 5, "diag") == 300 * 17 * 5
    assert compilation.pass_work(data, 0, "spherical") == 300 * 10


def test_cpu_variant_names():
    assert compilation.cpu_variant(np.float32, "full") == "float32"
    assert compilation.cpu_variant(np.float64, "diag") == "float64-narrow"
    assert compilation.cpu_variant(np.float64, "full") is None
    assert compilation.cpu_variant(np.float64, "VVV") is None


def _programs():
    return {
        "initial quick": mstep.initial_params_from_responsibilities.variant(None, quick=True)._cache_size(),
        "initial": mstep.initial_params_from_responsibilities.variant(None)._cache_size(),
        "predict quick": engine.predict_blocks.variant(None, quick=True)._cache_size(),
        "predict": engine.predict_blocks.variant(None)._cache_size(),
        "em quick": engine.run_em.variant(None, quick=True)._cache_size(),
        "em": engine.run_em.variant(None)._cache_size(),
    }


def _new(before, after):
    return {name for name in after if after[name] > before[name]}


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="the options are the CPU's")
def test_one_pass_programs_of_small_fits_compile_quickly_and_agree(blobs_8d, monkeypatch):
    X = blobs_8d[0][:-7, :5]  # a shape no other test compiles
    before = _programs()
    quick = GaussianMixture(3, random_state=0, tol=1e-8).fit(X)
    quick_scores = quick.score_samples(X)
    # The initial M-step is one pass, run once per fit: quick; the EM loop and
    # predictions (which a user may call many times) are not.
    assert _new(before, _programs()) == {"initial quick", "predict", "em"}

    monkeypatch.setattr(compilation, "QUICK_COMPILE_WORK", -1)
    before = _programs()
    optimised = GaussianMixture(3, random_state=0, tol=1e-8).fit(X)
    optimised_scores = optimised.score_samples(X)
    assert _new(before, _programs()) == {"initial"}  # the EM and prediction programs are shared
    assert quick.n_iter_ == optimised.n_iter_
    np.testing.assert_allclose(quick.lower_bounds_, optimised.lower_bounds_, rtol=1e-12)
    np.testing.assert_allclose(quick.covariances_, optimised.covariances_, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(quick_scores, optimised_scores, rtol=1e-12)
