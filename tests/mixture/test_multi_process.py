"""Two processes on loopback, each with half of the data, fit one model.

Both must end with the parameters of the single-process fit on all the data.
The processes run examples/multi_process_fit.py (the documented recipe) and
have timeouts, so a broken run fails instead of hanging.
"""

import json
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import make_blobs
from sklearn.exceptions import ConvergenceWarning

from bayesgmm import GaussianMixture

EXAMPLE = Path(__file__).parents[2] / "examples" / "multi_process_fit.py"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _run_processes(tmp_path, extra_args, n_processes=2, timeout=180):
    port = _free_port()
    processes = []
    for process_id in range(n_processes):
        command = [
            sys.executable, str(EXAMPLE), "--coordinator", f"127.0.0.1:{port}",
            "--num-processes", str(n_processes), "--process-id", str(process_id),
            "--output", str(tmp_path / f"result{process_id}.json"), "--timeout", "60",
        ] + extra_args(process_id)
        processes.append(subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    try:
        outputs = [process.communicate(timeout=timeout) for process in processes]
    finally:
        for process in processes:
            process.kill()
    for process, (_, stderr) in zip(processes, outputs):
        assert process.returncode == 0, stderr[-3000:]
    return [json.loads((tmp_path / f"result{i}.json").read_text()) for i in range(n_processes)]


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_two_processes_equal_single_process_fit(tmp_path, covariance_type):
    X, _ = make_blobs(n_samples=3001, centers=3, n_features=3, random_state=0)
    halves = np.array_split(X, 2)
    for index, half in enumerate(halves):
        np.save(tmp_path / f"part{index}.npy", half)
    start = GaussianMixture(3, covariance_type=covariance_type, max_iter=1, random_state=1)
    with pytest.warns(ConvergenceWarning):
        start.fit(X[::5])
    init = dict(weights_init=start.weights_, means_init=start.means_, precisions_init=start.precisions_)
    np.savez(tmp_path / "init.npz", **init)
    single = GaussianMixture(3, covariance_type=covariance_type, random_state=0, **init).fit(X)

    results = _run_processes(
        tmp_path,
        lambda i: ["--data", str(tmp_path / f"part{i}.npy"), "--init", str(tmp_path / "init.npz"),
                   "--covariance-type", covariance_type],
    )
    for result in results:
        assert result["n_iter"] == single.n_iter_
        np.testing.assert_allclose(result["weights"], single.weights_, atol=1e-8)
        np.testing.assert_allclose(result["means"], single.means_, atol=1e-8)
        np.testing.assert_allclose(result["covariances"], single.covariances_, atol=1e-8)
        np.testing.assert_allclose(result["lower_bound"], single.lower_bound_, atol=1e-8)


def test_default_initialisation_is_shared_by_all_processes(tmp_path):
    results = _run_processes(tmp_path, lambda i: [])
    assert results[0]["n_local_samples"] + results[1]["n_local_samples"] == 3001
    np.testing.assert_array_equal(results[0]["means"], results[1]["means"])
    np.testing.assert_array_equal(results[0]["covariances"], results[1]["covariances"])


def test_missing_coordinator_fails_fast_with_a_clear_error():
    command = [
        sys.executable, str(EXAMPLE), "--coordinator", f"127.0.0.1:{_free_port()}",
        "--num-processes", "2", "--process-id", "1", "--timeout", "3",
    ]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert completed.returncode == 2
    assert "could not join the distributed run" in completed.stderr
    assert "did not answer within 3 s" in completed.stderr
