"""Run by tests/test_sharding.py in a subprocess with 4 forced CPU devices.

Prints one JSON line with the largest differences between single-device and
sharded fits.
"""

import json
import os
import sys

# Added to the flags it was given (the suite's, see tests/conftest.py).
if "--xla_force_host_platform_device_count=4" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count=4".strip()

import jax  # noqa: E402
import numpy as np  # noqa: E402
from jax.sharding import Mesh, NamedSharding, PartitionSpec  # noqa: E402
from sklearn.datasets import make_blobs  # noqa: E402

from bayesgmm import GaussianMixture  # noqa: E402

assert jax.device_count() == 4, jax.devices()
X, _ = make_blobs(n_samples=1001, centers=3, n_features=3, random_state=0)
weights = np.random.default_rng(0).uniform(0.2, 2.0, size=len(X))
report = {}
# The four representations, and one of mclust's structures with an iterative
# M-step (pooled over the components of every device's rows).
for covariance_type in ("full", "tied", "diag", "spherical", "VEV"):
    params = dict(n_components=3, covariance_type=covariance_type, random_state=0, tol=1e-9, max_iter=50)
    single = GaussianMixture(**params).fit(X, sample_weight=weights)
    sharded = GaussianMixture(**params, devices=4).fit(X, sample_weight=weights)
    difference = max(
        float(np.max(np.abs(getattr(single, name) - getattr(sharded, name))))
        for name in ("weights_", "means_", "covariances_", "precisions_cholesky_")
    )
    report[covariance_type] = {
        "max_parameter_difference": difference,
        "lower_bound_difference": abs(single.lower_bound_ - sharded.lower_bound_),
        "same_n_iter": single.n_iter_ == sharded.n_iter_,
    }
# Restarts over 3 of the 4 devices: the path is the same for every structure.
params = dict(n_components=3, covariance_type="full", random_state=0, tol=1e-9, max_iter=50)
restarts = GaussianMixture(**params, n_init=3, devices=3).fit(X)
restarts_single = GaussianMixture(**params, n_init=3).fit(X)
report["restart_difference"] = float(np.max(np.abs(restarts.means_ - restarts_single.means_)))

# A fit redone in the direct form (a cluster collapsed onto duplicated rows far
# from the rest) runs sharded too.
rng = np.random.RandomState(0)
X_far = np.vstack([rng.randn(100, 2) * 1000, np.full((20, 2), 5000.0)])
far = [GaussianMixture(2, random_state=0, devices=devices).fit(X_far) for devices in (None, 4)]
report["direct_form"] = {
    "lower_bound_difference": abs(far[0].lower_bound_ - far[1].lower_bound_),
    "score_difference": float(np.max(np.abs(far[0].score_samples(X_far) - far[1].score_samples(X_far)))),
    "smallest_variances": [float(np.min(np.diagonal(model.covariances_, axis1=1, axis2=2))) for model in far],
}

# Data already sharded over a mesh: the fit runs on that mesh.
mesh = Mesh(np.array(jax.devices()), ("data",))
X_even = X[:1000]
with jax.enable_x64(True):
    X_sharded = jax.device_put(X_even, NamedSharding(mesh, PartitionSpec("data")))
    presharded = GaussianMixture(3, random_state=0).fit(X_sharded)
plain = GaussianMixture(3, random_state=0).fit(X_even)
report["presharded_difference"] = float(np.max(np.abs(presharded.means_ - plain.means_)))

# Bayesian chains in parallel on devices equal sequential chains with the same keys
# (spherical components: how chains map onto devices does not depend on the
# structure, and that sampler compiles fastest).
from bayesgmm import BayesianGaussianMixture  # noqa: E402

draws = {}
for chain_method in ("parallel", "sequential"):
    model = BayesianGaussianMixture(
        2, covariance_type="spherical", num_warmup=60, num_samples=40, num_chains=4,
        chain_method=chain_method, random_state=0, progress_bar=False,
    )
    import warnings  # noqa: E402

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(X[:200, :2])
    draws[chain_method] = (model.chain_method_, np.asarray(model.inference_data_.posterior["means"]))
report["chain_methods"] = [draws["parallel"][0], draws["sequential"][0]]
report["chain_difference"] = float(np.max(np.abs(draws["parallel"][1] - draws["sequential"][1])))

errors = {}
for name, devices in [
    ("two_axes", Mesh(np.array(jax.devices()).reshape(2, 2), ("x", "y"))),
    ("too_many", 9),
    ("unknown", "some"),
]:
    try:
        GaussianMixture(2, devices=devices).fit(X)
        errors[name] = None
    except ValueError as error:
        errors[name] = str(error)
report["errors"] = errors
print(json.dumps(report))
sys.exit(0)
