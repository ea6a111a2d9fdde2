"""Several devices in one process: sharded EM equals the single-device fit.

Runs in a subprocess with ``--xla_force_host_platform_device_count=4`` so that
the rest of the suite keeps its single CPU device.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).parent / "scripts" / "multi_device_fit.py"


@pytest.fixture(scope="module")
def report():
    # Added to the suite's own flags (tests/conftest.py), as the script does.
    flags = f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count=4".strip()
    environment = dict(os.environ, XLA_FLAGS=flags)
    completed = subprocess.run(
        [sys.executable, str(SCRIPT)], capture_output=True, text=True, timeout=300, env=environment
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    return json.loads(completed.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical", "VEV"])
def test_sharded_fit_equals_single_device(report, covariance_type):
    # 1001 weighted samples over 4 devices: uneven split, padding with zero weight.
    result = report[covariance_type]
    assert result["same_n_iter"]
    assert result["max_parameter_difference"] <= 1e-10
    assert result["lower_bound_difference"] <= 1e-10


def test_restarts_over_devices_equal_single_device_restarts(report):
    assert report["restart_difference"] <= 1e-10


def test_direct_form_fit_is_sharded_like_the_fast_one(report):
    result = report["direct_form"]
    assert result["lower_bound_difference"] <= 1e-10
    assert result["score_difference"] <= 1e-8
    # The collapsed component keeps exactly reg_covar on every device layout.
    np.testing.assert_allclose(result["smallest_variances"], [1e-6, 1e-6], rtol=1e-9)


def test_presharded_jax_array_is_fitted_on_its_mesh(report):
    assert report["presharded_difference"] <= 1e-10


def test_bad_meshes_raise_clear_errors(report):
    errors = report["errors"]
    assert "none is named 'data'" in errors["two_axes"]
    assert "devices=9 but 4 device(s) are available" in errors["too_many"]
    assert "devices='some' is not understood" in errors["unknown"]


def test_parallel_chains_equal_sequential_chains(report):
    # Same keys, same chains; pmap and the sequential program round differently
    # and NUTS amplifies the last bits over 100 iterations (measured: ~4e-6).
    assert report["chain_methods"] == ["parallel", "sequential"]
    assert report["chain_difference"] <= 1e-4
