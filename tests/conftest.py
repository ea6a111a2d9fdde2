"""Shared fixtures: small data sets with known structure, and Bayesian fits used by several modules."""

import gc
import os
import shutil
import tempfile
from pathlib import Path

import jax
import numpy as np
import pytest
from sklearn.datasets import make_blobs

# The suite's programs, compiled once per run and worker and read back by
# every later module and subprocess that needs them (compiling is most of
# the suite's time, and each module drops its programs, see below). A run
# starts with empty directories, so no test sees programs of another run;
# each worker has its own, because JAX writes an entry in place and another
# process could read it half-written. Set BAYESGMM_COMPILATION_CACHE (or
# JAX_COMPILATION_CACHE_DIR) to use a directory of your own; set it to an
# empty string to compile everything.
_CACHE_VARIABLE = "BAYESGMM_COMPILATION_CACHE"
_RUN_VARIABLE = "BAYESGMM_TEST_RUN_PROGRAMS"  # the run's directory, set by the first process


def pytest_configure(config):
    run = os.environ.get(_RUN_VARIABLE)
    if run is None:
        if _CACHE_VARIABLE in os.environ or os.environ.get("JAX_COMPILATION_CACHE_DIR"):
            return
        run = tempfile.mkdtemp(prefix="bayesgmm-test-programs-")
        os.environ[_RUN_VARIABLE] = run
        # The process that made it (the controller, or a run without workers) removes it.
        config._bayesgmm_program_cache = Path(run)
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    # The variable reaches this process's bayesgmm import and every subprocess.
    os.environ[_CACHE_VARIABLE] = str(Path(run) / worker)


def pytest_unconfigure(config):
    directory = getattr(config, "_bayesgmm_program_cache", None)
    if directory is not None:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_programs():
    """Drop JAX's compiled programs after each test module.

    The suite compiles a few thousand programs (scikit-learn's estimator
    checks alone try dozens of shapes). Each keeps its machine code mapped,
    and a process that holds them all reaches Linux's default limit of 65530
    memory maps (``vm.max_map_count``), where LLVM crashes while compiling
    the next one. No test relies on another module's compiled programs.
    """
    yield
    jax.clear_caches()
    gc.collect()


@pytest.fixture(scope="session")
def blobs_2d():
    """The document's data: 800 points, two blobs in 2-D."""
    X, y = make_blobs(n_samples=800, centers=2, n_features=2, random_state=12)
    return X, y


@pytest.fixture(scope="session")
def blobs_8d():
    """Four overlapping blobs in 8 dimensions."""
    X, y = make_blobs(n_samples=1200, centers=4, n_features=8, cluster_std=2.5, random_state=0)
    return X, y


@pytest.fixture(scope="session")
def unequal_3d():
    """Three anisotropic clusters of very unequal size (700 / 200 / 40)."""
    rng = np.random.default_rng(1)
    sizes = (700, 200, 40)
    centres = np.array([[0.0, 0.0, 0.0], [8.0, 2.0, -4.0], [-6.0, 10.0, 4.0]])
    parts = []
    for size, centre in zip(sizes, centres):
        mixing = rng.normal(size=(3, 3)) * 0.6 + np.eye(3)
        parts.append(rng.normal(size=(size, 3)) @ mixing + centre)
    X = np.vstack(parts)
    y = np.repeat(np.arange(3), sizes)
    return X, y


# ------------------------------------------------------ Bayesian fits shared by modules
# A NUTS fit costs seconds to tens of seconds (mostly compiling its sampler).
# The fits below are the same model in several modules; each is fitted once
# per session and only read by the tests that use it.


@pytest.fixture(scope="session")
def two_clusters():
    """1000 points of two correlated 2-D Gaussians: ``(X, y, MixtureParams)``.

    Weights 0.35 / 0.65, means (-3, 0) and (3, 1); the data of
    tests/bayes/test_estimator.py and tests/bayes/test_svi.py.
    """
    from bayesgmm.datasets import make_mixture

    return make_mixture(
        1000, [0.35, 0.65], [[-3.0, 0.0], [3.0, 1.0]],
        [[[1.0, 0.3], [0.3, 0.5]], [[0.6, -0.2], [-0.2, 1.2]]], "full", random_state=7,
    )


@pytest.fixture(scope="session")
def two_clusters_nuts(two_clusters):
    """NUTS fit of :func:`two_clusters`: K = 2, 2 chains x (200 warm-up + 200 draws), seed 0."""
    import warnings

    from bayesgmm import BayesianGaussianMixture
    from bayesgmm.bayes import diagnostics

    X, _, _ = two_clusters
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", diagnostics.SamplingWarning)
        return BayesianGaussianMixture(2, num_warmup=200, num_samples=200, num_chains=2,
                                       random_state=0, progress_bar=False).fit(X)


@pytest.fixture(scope="session")
def tiny_nuts_fit():
    """The smallest real NUTS fit: ``(model, X)``, 80 document points, K = 2, 2 x 20 draws.

    Shared by tests/test_persistence.py and tests/test_plot.py; tests/test_cli.py
    fits the same model through the command line.
    """
    import warnings

    from bayesgmm import BayesianGaussianMixture
    from bayesgmm.datasets import document_data

    X = document_data(n_samples=100)[0]  # 80 x 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # 20 draws per chain: r_hat and ESS warnings
        model = BayesianGaussianMixture(2, num_samples=20, num_warmup=20, num_chains=2,
                                        random_state=0, progress_bar=False).fit(X)
    return model, X
