"""One reporter per run: fits in two threads report and compute as if run one after the other."""

import re
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from sklearn.datasets import make_blobs

from bayesgmm import GaussianMixture, _progress


def _fit(X, n_components):
    model = GaussianMixture(
        n_components, random_state=0, verbose=2, verbose_interval=1, tol=1e-8, init_params="random"
    )
    return model.fit(X)


def _bounds_printed(text):
    return re.findall(r"Iteration (\d+)\t.*lower bound (-?\d+\.\d+)", text)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_two_fits_in_two_threads_equal_sequential_fits(capsys):
    X_a, _ = make_blobs(n_samples=400, centers=3, n_features=2, random_state=0)
    X_b, _ = make_blobs(n_samples=300, centers=5, n_features=3, random_state=1)
    sequential = [_fit(X_a, 3), _fit(X_b, 5)]
    sequential_lines = _bounds_printed(capsys.readouterr().out)
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = [pool.submit(_fit, X_a, 3), pool.submit(_fit, X_b, 5)]
        threaded = [future.result() for future in futures]
    threaded_lines = _bounds_printed(capsys.readouterr().out)
    for one, other in zip(sequential, threaded):
        assert one.n_iter_ == other.n_iter_
        np.testing.assert_array_equal(one.means_, other.means_)
        np.testing.assert_array_equal(one.covariances_, other.covariances_)
        np.testing.assert_array_equal(one.lower_bounds_, other.lower_bounds_)
    # Every iteration of each fit printed once, by its own reporter: the same
    # lines as one after the other (only their interleaving may differ).
    assert len(sequential_lines) == sum(model.n_iter_ for model in sequential)
    assert sorted(threaded_lines) == sorted(sequential_lines)
    for model in sequential:
        expected = {(str(i + 1), f"{bound:.5f}") for i, bound in enumerate(model.lower_bounds_)}
        assert expected <= set(threaded_lines)


def test_dispatch_reaches_only_the_registered_reporter():
    received_a, received_b = [], []
    with _progress.registered(received_a.append) as token_a:
        with _progress.registered(received_b.append) as token_b:
            assert token_a != token_b
            _progress.dispatch(token_a, 1)
            _progress.dispatch(token_b, 2)
        _progress.dispatch(token_b, 3)  # unregistered: dropped
    _progress.dispatch(token_a, 4)
    assert received_a == [1] and received_b == [2]
    with _progress.registered(None) as token:
        assert token == _progress.NO_REPORTER


def test_no_bar_under_ci(monkeypatch):
    monkeypatch.setenv("CI", "true")
    assert not _progress.bar_allowed()


def test_run_reported_registers_the_reporter_for_the_run_alone_and_closes_it():
    class Reporter:
        def __init__(self):
            self.closed = False

        def close(self):
            self.closed = True

    reporter = Reporter()
    seen = []

    def run(token):
        seen.append(_progress._REPORTERS.get(int(token)))
        return np.ones(2)

    np.testing.assert_array_equal(_progress.run_reported(reporter, run), np.ones(2))
    assert seen == [reporter] and reporter.closed
    assert reporter not in _progress._REPORTERS.values()
    failing = Reporter()

    def broken(token):
        raise RuntimeError("the run failed")

    with pytest.raises(RuntimeError, match="the run failed"):
        _progress.run_reported(failing, broken)
    assert failing.closed and failing not in _progress._REPORTERS.values()
    assert _progress.run_reported(None, lambda token: int(token)) == _progress.NO_REPORTER
