"""Progress of Bayesian fits: one bar per run, so fits in threads neither mix bars nor results."""

import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from bayesgmm import BayesianGaussianMixture, _progress
from bayesgmm.bayes import diagnostics
from bayesgmm.datasets import make_mixture


class RecordingBar:
    """Stands in for tqdm: counts the ticks it receives."""

    def __init__(self, total, description, unit="it"):
        self.total, self.n, self.descriptions, self.postfix = total, 0, [description], None
        self.closed = False

    def update(self, count):
        self.n += count

    def set_description(self, description, refresh=True):
        self.descriptions.append(description)

    def set_postfix(self, refresh=True, **values):
        self.postfix = values

    def close(self):
        self.closed = True


@pytest.fixture
def bars(monkeypatch):
    opened = []

    def open_bar(total, description, unit="it"):
        opened.append(RecordingBar(total, description, unit))
        return opened[-1]

    monkeypatch.setattr(_progress, "bar_allowed", lambda: True)
    monkeypatch.setattr(_progress, "open_bar", open_bar)
    return opened


def _data(seed):
    X, _, _ = make_mixture(150, [0.5, 0.5], [[0.0, 0.0], [4.0, 1.0]], [0.7, 1.0], "spherical",
                           random_state=seed)
    return X


def _fit(X, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", diagnostics.SamplingWarning)
        return BayesianGaussianMixture(num_chains=2, random_state=0, **kwargs).fit(X)


FITS = (
    # Different iteration counts, so each bar's total says whose it is (and two
    # compiled programs run at once); 'diag' and 'spherical' compile fastest.
    dict(n_components=2, covariance_type="diag", num_warmup=50, num_samples=60),
    dict(n_components=1, covariance_type="spherical", num_warmup=40, num_samples=50),
)


def test_two_nuts_fits_in_two_threads_equal_sequential_fits(bars):
    data = [_data(0), _data(1)]
    sequential = [_fit(X, **settings) for X, settings in zip(data, FITS)]
    del bars[:]
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = [pool.submit(_fit, X, **settings) for X, settings in zip(data, FITS)]
        threaded = [future.result() for future in futures]
    for one, other in zip(sequential, threaded):
        for leaf_one, leaf_other in zip(one.posterior_params_, other.posterior_params_):
            np.testing.assert_array_equal(leaf_one, leaf_other)
        np.testing.assert_array_equal(one.inference_data_.sample_stats["lp"],
                                      other.inference_data_.sample_stats["lp"])
    # Each run ticked its own bar to the end (2 chains x iterations), nothing more.
    totals = sorted(2 * (settings["num_warmup"] + settings["num_samples"]) for settings in FITS)
    assert sorted(bar.total for bar in bars) == totals
    for bar in bars:
        assert bar.n == bar.total and bar.closed
        assert bar.descriptions[-1] == "NUTS sample" and "NUTS warmup" in bar.descriptions


def test_svi_bar_follows_its_own_run(bars):
    X = _data(2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # 'spherical': the bar is the same for every model, and this one compiles fastest.
        model = BayesianGaussianMixture(2, covariance_type="spherical", inference="svi",
                                        svi_steps=150, svi_num_draws=50, random_state=0).fit(X)
    (bar,) = bars
    assert bar.total == 150 and bar.n == 150 and bar.closed
    # The last tick carries the last step's loss (float64, not rounded to float32).
    assert float(bar.postfix["loss"]) == pytest.approx(model.losses_[-1], rel=1e-6)
