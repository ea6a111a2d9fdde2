"""Predictions of a fitted GaussianMixture, chunk by chunk on the device."""

import numpy as np
from scipy.stats import multivariate_normal

from bayesgmm import GaussianMixture
from bayesgmm.mixture import engine, prediction


def test_predictions_in_chunks_equal_one_call(blobs_8d, monkeypatch, tmp_path):
    # Large inputs (memory-mapped ones included) are predicted chunk by chunk
    # through one compiled program; the results must not depend on the chunking.
    X, _ = blobs_8d
    model = GaussianMixture(3, random_state=0).fit(X)
    whole = (model.predict_proba(X), model.predict(X), model.score_samples(X))
    path = tmp_path / "X.npy"
    np.save(path, X)
    mapped = np.load(path, mmap_mode="r")
    monkeypatch.setattr(prediction, "PREDICT_CHUNK_ROWS", 97)  # uneven last chunk
    before = engine.predict_blocks._cache_size()
    chunked = (model.predict_proba(mapped), model.predict(mapped), model.score_samples(mapped))
    assert engine.predict_blocks._cache_size() == before + 3  # one program per output, not per chunk
    for expected, actual in zip(whole, chunked):
        assert actual.shape == expected.shape and actual.flags.writeable
        np.testing.assert_allclose(actual, expected, rtol=1e-12, atol=1e-300)


def test_models_of_one_representation_share_their_prediction_programs(blobs_8d):
    X = blobs_8d[0][:-11, :6]  # a shape no other test compiles
    models = [GaussianMixture(3, covariance_type=name, random_state=0).fit(X) for name in ("VEV", "EVV", "VVV")]
    before = engine.predict_blocks._cache_size()
    scores = [model.score_samples(X) for model in models]
    assert engine.predict_blocks._cache_size() == before + 1
    # Each with its own parameters: the results differ, and each is its model's density.
    assert not np.allclose(scores[0], scores[1])
    for model, score in zip(models, scores):
        expected = np.log(sum(
            weight * multivariate_normal(mean, covariance).pdf(X)
            for weight, mean, covariance in zip(model.weights_, model.means_, model.covariances_)
        ))
        np.testing.assert_allclose(score, expected, rtol=1e-10)
