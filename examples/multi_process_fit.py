"""Fit one Gaussian mixture across several processes (or machines) with JAX's distributed runtime.

Each process holds its own part of the data; the E-step runs where the data
lie and JAX sums the K*D^2 sufficient statistics across processes. Every
process ends with the same parameters, equal to a single-process fit on all
the data.

Start one copy per process, e.g. on two machines (or twice on one machine)::

    python examples/multi_process_fit.py --coordinator 10.0.0.1:12345 --num-processes 2 --process-id 0
    python examples/multi_process_fit.py --coordinator 10.0.0.1:12345 --num-processes 2 --process-id 1

The bayesgmm part is the same call as on one machine, plus ``devices="all"``::

    bayesgmm.distributed.initialize(coordinator_address, num_processes, process_id)
    gmm = GaussianMixture(n_components=3, devices="all").fit(X_local)

(``bayesgmm.distributed.initialize`` checks the coordinator answers and then
calls ``jax.distributed.initialize``; calling JAX's directly works as well.)

On CPUs the cross-process collectives use gloo (JAX's default,
``jax_cpu_collectives_implementation``); on GPUs, NCCL.

Initial parameters that the user does not give are computed by process 0
from its own rows and broadcast. Pass ``--data FILE.npy`` (this process's
rows) and ``--init FILE.npz`` (weights_init, means_init, precisions_init) to
use your own; without ``--data`` each process draws its half of a demo data
set.
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np


def demo_rows(process_id: int, num_processes: int) -> np.ndarray:
    """This process's contiguous share of a fixed demo data set (3 blobs, 3-D)."""
    from sklearn.datasets import make_blobs

    X, _ = make_blobs(n_samples=3001, centers=3, n_features=3, random_state=0)
    return np.array_split(X, num_processes)[process_id]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--coordinator", required=True, help="host:port of process 0")
    parser.add_argument("--num-processes", type=int, required=True)
    parser.add_argument("--process-id", type=int, required=True)
    parser.add_argument("--components", type=int, default=3)
    parser.add_argument("--covariance-type", default="full")
    parser.add_argument("--data", help=".npy file with this process's rows")
    parser.add_argument("--init", help=".npz file with weights_init, means_init, precisions_init")
    parser.add_argument("--timeout", type=int, default=30, help="seconds to wait for the other processes")
    parser.add_argument("--output", help="write the fitted parameters as JSON here")
    args = parser.parse_args(argv)

    import jax

    from bayesgmm import GaussianMixture, distributed

    try:
        distributed.initialize(args.coordinator, args.num_processes, args.process_id, args.timeout)
    except (RuntimeError, ValueError) as error:
        print(f"error: could not join the distributed run: {error}", file=sys.stderr)
        return 2

    X_local = np.load(args.data) if args.data else demo_rows(args.process_id, args.num_processes)
    init = {}
    if args.init:
        with np.load(args.init) as saved:
            init = {name: saved[name] for name in ("weights_init", "means_init", "precisions_init")}
    gmm = GaussianMixture(
        args.components, covariance_type=args.covariance_type, devices="all", random_state=0, **init
    ).fit(X_local)
    result = {
        "process_id": args.process_id,
        "n_local_samples": int(X_local.shape[0]),
        "weights": gmm.weights_.tolist(),
        "means": gmm.means_.tolist(),
        "covariances": gmm.covariances_.tolist(),
        "lower_bound": gmm.lower_bound_,
        "n_iter": gmm.n_iter_,
    }
    if args.output:
        with open(args.output, "w") as handle:
            json.dump(result, handle)
    print(
        f"process {args.process_id}: {X_local.shape[0]} local rows, {gmm.n_iter_} iterations, "
        f"lower bound {gmm.lower_bound_:.6f}"
    )
    jax.distributed.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
