"""The two matrix products of one EM pass, alone: how fast can this machine do them?

Usage::

    python benchmarks/skinny_gemm.py [--n 1000000] [--d 16] [--k 16] [--block 4096]

One EM iteration of bayesgmm ('full' covariances) is, per block of ``B`` rows,
two products against the block's feature matrix ``Phi`` of width
``F = 1 + D + D(D+1)/2`` (``bayesgmm.mixture.quadratic``)::

    log densities   (B, F) @ (F, K)
    statistics      (K, B) @ (B, F)

This script times exactly those shapes over ``N`` rows, with NumPy (OpenBLAS,
the BLAS scikit-learn uses) and with JAX (XLA:CPU, what bayesgmm runs), and
prints GFLOP/s next to NumPy's rate on square 4096 x 4096 matrices. The
products are skinny (one side is K = 16 wide), so no BLAS reaches its square
rate on them; the figures bound what any formulation built on these products
can achieve here. The times exclude building the feature matrix (the EM
pass builds it per block). NumPy multiplies one block over and over (it
stays in cache: OpenBLAS's best case); JAX scans over distinct blocks read
from memory, as the EM loop does.
"""

from __future__ import annotations

import argparse

import numpy as np
from _timing import median_time, without_openblas_overrides


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--d", type=int, default=16)
    parser.add_argument("--k", type=int, default=16)
    parser.add_argument("--block", type=int, default=4096)
    parser.add_argument("--dtype", default="float64")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    without_openblas_overrides()  # as benchmarks/em_vs_sklearn.py does

    import jax
    import jax.numpy as jnp
    from jax import lax

    if args.dtype == "float64":
        jax.config.update("jax_enable_x64", True)
    width = 1 + args.d + args.d * (args.d + 1) // 2
    n_blocks = args.n // args.block
    rng = np.random.default_rng(0)
    features = rng.normal(size=(args.block, width)).astype(args.dtype)
    theta = rng.normal(size=(width, args.k)).astype(args.dtype)
    resp_t = rng.random((args.k, args.block)).astype(args.dtype)
    flops = 2 * n_blocks * args.block * width * args.k
    square = rng.random((4096, 4096)).astype(args.dtype)
    square_rate = 2 * 4096**3 / median_time(lambda: square @ square, 3) / 1e9

    def numpy_pass(product):
        def run():
            for _ in range(n_blocks):
                product()
        return run

    rows = [
        ("numpy: log densities (B,F)@(F,K)", median_time(numpy_pass(lambda: features @ theta), args.repeats)),
        ("numpy: statistics (K,B)@(B,F)", median_time(numpy_pass(lambda: resp_t @ features), args.repeats)),
    ]
    all_features = jnp.asarray(np.broadcast_to(features, (n_blocks,) + features.shape))
    all_resp = jnp.asarray(np.broadcast_to(resp_t, (n_blocks,) + resp_t.shape))
    theta_device = jnp.asarray(theta)

    @jax.jit
    def jax_densities(all_features, theta):
        def body(total, block):
            return total + jnp.sum(block @ theta, axis=0), None
        return lax.scan(body, jnp.zeros(args.k, theta.dtype), all_features)[0]

    @jax.jit
    def jax_statistics(all_features, all_resp):
        def body(total, blocks):
            block, resp = blocks
            return total + resp @ block, None
        return lax.scan(body, jnp.zeros((args.k, width), all_features.dtype), (all_features, all_resp))[0]

    rows.append(("jax: log densities (B,F)@(F,K)", median_time(
        lambda: jax.block_until_ready(jax_densities(all_features, theta_device)), args.repeats)))
    rows.append(("jax: statistics (K,B)@(B,F)", median_time(
        lambda: jax.block_until_ready(jax_statistics(all_features, all_resp)), args.repeats)))
    print(
        f"N={args.n:,} in blocks of {args.block}, D={args.d} (F={width}), K={args.k}, {args.dtype}; "
        f"{flops / 1e9:.2f} GFLOP per product per pass; NumPy square 4096^2 rate {square_rate:.0f} GFLOP/s\n"
    )
    print("| product | ms per pass | GFLOP/s | share of the square rate |\n|---|---:|---:|---:|")
    for name, seconds in rows:
        rate = flops / seconds / 1e9
        print(f"| {name} | {1e3 * seconds:.1f} | {rate:.0f} | {100 * rate / square_rate:.0f} % |")


if __name__ == "__main__":
    main()
