"""Where the time of one EM iteration goes, at one problem size.

Usage::

    python benchmarks/profile_em.py --n 1000000 --d 16 --k 16 [--covariance full] [--dtype float64]

Times (medians of ``--repeats``) of the pieces of an iteration, each jitted on
its own over the same blocked data: the log densities (the block's quadratic
features, then one (B, F) @ (F, K) product), the responsibilities
(logsumexp), the statistics (one (K, B) @ (B, F) product per block), the
M-step on the statistics (Cholesky of K covariances), and a whole iteration
inside the fitted while-loop; plus the host-to-device transfer of the data and
the device-to-host copy of the result. ``--block-bytes`` overrides the size of
a block's feature matrix (bytes) to compare layouts. ``--operations`` traces
one E-step pass with JAX's profiler and lists the time of every compiled
operation (which product, which elementwise pass), see ``_thunks.py``.
"""

from __future__ import annotations

import argparse
import time

import _timing
import numpy as np


def median_time(fn, repeats: int) -> float:
    import jax

    return _timing.median_time(lambda: jax.block_until_ready(fn()), repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--d", type=int, default=16)
    parser.add_argument("--k", type=int, default=16)
    parser.add_argument("--covariance", default="full")
    parser.add_argument("--dtype", default="float64")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--block-bytes", type=int)
    parser.add_argument(
        "--operations", action="store_true",
        help="also trace one E-step pass and list the thread time of each compiled operation",
    )
    args = parser.parse_args()

    import jax
    import jax.numpy as jnp
    from jax import lax

    from bayesgmm.mixture import (
        blocks,
        engine,
        forms,
        initialisation,
        mstep,
        parameters,
    )

    if args.block_bytes:
        blocks.BLOCK_BYTES = args.block_bytes
    n, d, k, covariance_type = args.n, args.d, args.k, args.covariance
    rng = np.random.default_rng(0)
    X = (rng.normal(size=(n, d)) + rng.integers(0, k, n)[:, None] * 0.5).astype(args.dtype)
    X -= X.mean(axis=0)
    layout = blocks.DataLayout.create(
        n, k, d, itemsize=np.dtype(args.dtype).itemsize, covariance_type=args.covariance
    )
    labels = rng.integers(0, k, n).astype(np.int32)[:, None]
    rows = []
    with parameters.precision_scope(args.dtype):
        start = time.perf_counter()
        X_blocks = jax.block_until_ready(layout.put(X))
        weight_blocks = jax.block_until_ready(layout.put(np.ones(n, args.dtype)))
        rows.append(("host -> device (data, weights)", time.perf_counter() - start))
        params = initialisation.initial_params(
            layout, X_blocks, weight_blocks, labels, n_components=k,
            covariance_type=covariance_type, reg_covar=1e-6,
        )
        params = jax.tree_util.tree_map(lambda leaf: leaf[0], params)

        def over_blocks(block_fn):
            def run(X_blocks, weight_blocks, params):
                def body(total, blocks):
                    return total + block_fn(params, *blocks), None

                return lax.scan(body, jnp.zeros((), X_blocks.dtype), (X_blocks, weight_blocks))[0]

            return jax.jit(run)

        def log_densities(params, X, w):
            return jnp.sum(forms.estimate_weighted_log_prob(X, params, covariance_type))

        def responsibilities(params, X, w):
            return jnp.sum(forms.e_step(X, params, covariance_type)[1])

        def statistics(params, X, w):
            stats = forms.block_statistics(X, w, params, covariance_type)
            return sum(jnp.sum(leaf) for leaf in stats)

        cumulative = {}
        for name, fn in [
            ("E-step: log densities", log_densities),
            ("  + responsibilities (logsumexp)", responsibilities),
            ("  + statistics (one pass = whole E-step)", statistics),
        ]:
            compiled = over_blocks(fn)
            cumulative[name] = median_time(lambda: compiled(X_blocks, weight_blocks, params), args.repeats)
            rows.append((name, cumulative[name]))
        stats = jax.jit(lambda p: forms.accumulate_statistics(X_blocks, weight_blocks, p, covariance_type))(params)
        m_step = jax.jit(lambda s: mstep.m_step(s, 1e-6, covariance_type))
        rows.append(("M-step on the statistics", median_time(lambda: m_step(stats), args.repeats)))
        batch = jax.tree_util.tree_map(lambda leaf: leaf[None], params)
        active = np.ones((1, batch.means.shape[1]), bool)
        per_count = {}
        for count in (2, 10):
            states = engine.initial_states(batch, [-np.inf], count)
            run = lambda: engine.run_em(  # noqa: E731
                X_blocks, weight_blocks, states, active, count,
                covariance_type=covariance_type, tol=0.0, reg_covar=1e-6, max_iter=count,
            )
            per_count[count] = median_time(run, args.repeats)
        iteration = (per_count[10] - per_count[2]) / 8
        rows.append(("whole iteration in the while-loop", iteration))
        state = jax.block_until_ready(engine.run_em(
            X_blocks, weight_blocks, engine.initial_states(batch, [-np.inf], 2), active, 2,
            covariance_type=covariance_type, tol=0.0, reg_covar=1e-6, max_iter=2,
        ))
        start = time.perf_counter()
        jax.tree_util.tree_map(np.asarray, state)
        rows.append(("device -> host (fitted state)", time.perf_counter() - start))
        if args.operations:
            from _thunks import operation_times

            pass_wall, operations = operation_times(
                jax.jit(lambda p: forms.accumulate_statistics(X_blocks, weight_blocks, p, covariance_type)),
                (params,), args.repeats,
            )
    flops = 3 * n * k * d * d
    print(
        f"N={n:,} D={d} K={k} {covariance_type} {args.dtype}: blocks of {layout.block_size} rows "
        f"x {layout.n_blocks_per_device}; {flops / iteration / 1e9:.1f} GFLOP/s (3 N K D^2 per iteration)\n"
    )
    print("| piece | ms |\n|---|---:|")
    for name, seconds in rows:
        print(f"| {name} | {1e3 * seconds:.1f} |")
    if args.operations:
        threads = sum(seconds for _, _, seconds in operations)
        print(
            f"\nOne E-step pass, by compiled operation (XLA worker-thread time): wall "
            f"{1e3 * pass_wall:.1f} ms, threads {1e3 * threads:.1f} ms\n"
        )
        print("| operation | from | ms per pass | share of thread time |\n|---|---|---:|---:|")
        for name, source, seconds in operations:
            if seconds >= 0.005 * threads:
                print(f"| {name} | {source} | {1e3 * seconds:.1f} | {100 * seconds / threads:.0f} % |")


if __name__ == "__main__":
    main()
