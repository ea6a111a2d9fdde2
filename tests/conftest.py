"""Shared fixtures: small data sets with known structure."""

import gc

import jax
import numpy as np
import pytest
from sklearn.datasets import make_blobs


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
