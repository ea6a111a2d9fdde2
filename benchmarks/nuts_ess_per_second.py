"""Minimum bulk ESS per second: bayesgmm's default fit against a plain NumPyro model.

For each case and each implementation a fresh Python process fits twice:

* **cold**: the first fit in the process, tracing and compilation included
  (what a user waits for);
* **warm**: a second fit on the same data with another seed.

"plain NumPyro" is the model a user would write from the NumPyro
documentation: ``MixtureSameFamily`` of ``MultivariateNormal`` components,
Dirichlet / Normal / HalfCauchy / LKJ-Cholesky priors, NumPyro's default
initialisation, 1000 warm-up + 1000 draws, 2 chains (NumPyro's default
chain method), no relabelling. It is run with ``jit_model_args=True`` so that
its second run reuses the compiled sampler (without it, NumPyro compiles
again and "warm" is as slow as "cold"); the first run is unaffected. bayesgmm runs ``BayesianGaussianMixture``
with its defaults (EM start, 500 + 500 draws, 4 chains) and is scored on its
relabelled posterior (relabelling time included in the fit).

The ESS is ArviZ's bulk ESS of every sampled scalar (constant entries of the
Cholesky factors skipped), minimised; r_hat is the largest rank-normalised
split r_hat. Cases: the document's training data (640 x 2, K=2) and a
synthetic N=10000, D=5, K=4 mixture.

A process that exceeds ``--budget`` seconds (default 30 min) is stopped and
reported as unfinished, with an upper bound on its ESS/s. On the large case
the plain model's warm-up from NumPyro's default initialisation reaches the
maximum tree depth (1023 leapfrog steps per iteration), so it may not finish.

Usage::

    python benchmarks/nuts_ess_per_second.py            # both cases
    python benchmarks/nuts_ess_per_second.py --cases document
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import subprocess
import sys
import time

CASES = ("document", "large")
IMPLEMENTATIONS = ("numpyro", "bayesgmm")
# The correlations stand for the correlation Cholesky factors, whose constant
# entries have no ESS (bayesgmm.bayes.diagnostics.posterior_variables).
SAMPLED_SITES = {
    "numpyro": ("weights", "means", "scales", "correlations"),
    "bayesgmm": ("weights", "means", "scales", "correlations"),
}


def load_case(case: str):
    """The data of ``case`` and its number of components."""
    from bayesgmm import datasets

    if case == "document":
        XA, _, _, _ = datasets.document_data()
        return XA, 2
    X, _, _ = datasets.random_mixture(10_000, 4, 5, random_state=0)
    return X, 4


def plain_numpyro_model(X, n_components):
    """The straightforward model from the NumPyro documentation."""
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist

    n_features = X.shape[1]
    weights = numpyro.sample("weights", dist.Dirichlet(jnp.ones(n_components)))
    with numpyro.plate("component", n_components):
        means = numpyro.sample("means", dist.Normal(0.0, 10.0).expand([n_features]).to_event(1))
        scales = numpyro.sample("scales", dist.HalfCauchy(5.0).expand([n_features]).to_event(1))
        corr_cholesky = numpyro.sample("corr_cholesky", dist.LKJCholesky(n_features, 1.0))
    mixture = dist.MixtureSameFamily(
        dist.Categorical(probs=weights),
        dist.MultivariateNormal(means, scale_tril=scales[..., None] * corr_cholesky),
    )
    with numpyro.plate("obs", X.shape[0]):
        numpyro.sample("x", mixture, obs=X)


def _min_ess_max_rhat(posterior: dict, sites) -> tuple[float, float]:
    import warnings

    import arviz as az
    import numpy as np

    idata = az.from_dict(posterior={name: np.asarray(posterior[name]) for name in sites})
    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        ess = az.ess(idata, method="bulk")
        rhat = az.rhat(idata)

    def finite(dataset):
        values = np.concatenate([np.ravel(dataset[name]) for name in dataset.data_vars])
        return values[np.isfinite(values)]

    return float(finite(ess).min()), float(finite(rhat).max())


def fit_numpyro(X, n_components, seed):
    import jax
    import jax.numpy as jnp
    from numpyro.infer import MCMC, NUTS

    mcmc = fit_numpyro.mcmc
    if mcmc is None:
        # n_components fixes shapes, so it is bound, not passed as a (traced) model argument.
        model = functools.partial(plain_numpyro_model, n_components=n_components)
        mcmc = fit_numpyro.mcmc = MCMC(NUTS(model), num_warmup=1000, num_samples=1000,
                                       num_chains=2, progress_bar=False, jit_model_args=True)
    mcmc.run(jax.random.key(seed), jnp.asarray(X))
    samples = jax.block_until_ready(mcmc.get_samples(group_by_chain=True))
    from bayesgmm.bayes.diagnostics import posterior_variables

    return posterior_variables(samples, "full")


fit_numpyro.mcmc = None


def fit_bayesgmm(X, n_components, seed):
    from bayesgmm import BayesianGaussianMixture

    model = BayesianGaussianMixture(n_components, random_state=seed, progress_bar=False)
    model.fit(X)
    return {name: model.inference_data_.posterior[name].values
            for name in model.inference_data_.posterior.data_vars}


def run_one(implementation: str, case: str) -> dict:
    """Fit twice in this process; return timings, min ESS and max r_hat."""
    import warnings

    X, n_components = load_case(case)
    fit = fit_numpyro if implementation == "numpyro" else fit_bayesgmm
    result = {"implementation": implementation, "case": case}
    for phase, seed in (("cold", 0), ("warm", 1)):
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            posterior = fit(X, n_components, seed)
        seconds = time.perf_counter() - start
        min_ess, max_rhat = _min_ess_max_rhat(posterior, SAMPLED_SITES[implementation])
        result[phase] = {"seconds": seconds, "min_ess": min_ess, "max_rhat": max_rhat,
                         "ess_per_second": min_ess / seconds}
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", choices=CASES, default=list(CASES))
    parser.add_argument("--implementations", nargs="+", choices=IMPLEMENTATIONS,
                        default=list(IMPLEMENTATIONS))
    parser.add_argument("--budget", type=float, default=1800.0,
                        help="seconds allowed for one implementation's two fits on one case")
    parser.add_argument("--child", nargs=2, metavar=("IMPLEMENTATION", "CASE"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(run_one(*args.child)))
        return
    results = []
    for case in args.cases:
        for implementation in args.implementations:
            results.append(run_child(implementation, case, args.budget))
            print(f"done: {case} / {implementation}", file=sys.stderr, flush=True)
    print_table(results)


def run_child(implementation: str, case: str, budget: float) -> dict:
    """Both fits in a fresh interpreter (so "cold" really is cold), within ``budget`` s."""
    try:
        output = subprocess.run(
            [sys.executable, __file__, "--child", implementation, case],
            check=True, capture_output=True, text=True, timeout=budget,
        ).stdout
    except subprocess.TimeoutExpired:
        return {"implementation": implementation, "case": case, "timed_out": budget}
    return json.loads(output.strip().splitlines()[-1])


# ArviZ truncates the autocorrelation sum so that the ESS of one chain of n
# draws is at most n * log10(n): a run that did not finish is bounded by it.
def max_ess(num_chains: int, num_draws: int) -> float:
    return num_chains * num_draws * math.log10(num_draws)


def print_table(results):
    header = (f"{'case':<9} {'implementation':<15} {'phase':<5} {'seconds':>8} "
              f"{'min ESS':>8} {'ESS/s':>8} {'max r_hat':>9}")
    print(header)
    print("-" * len(header))
    for result in results:
        if "timed_out" in result:
            print(f"{result['case']:<9} {result['implementation']:<15} {'cold':<5} "
                  f"> {result['timed_out']:.0f} s: did not finish")
            continue
        for phase in ("cold", "warm"):
            row = result[phase]
            print(f"{result['case']:<9} {result['implementation']:<15} {phase:<5} "
                  f"{row['seconds']:>8.2f} {row['min_ess']:>8.0f} "
                  f"{row['ess_per_second']:>8.1f} {row['max_rhat']:>9.3f}")
    print()
    by_key = {(r["case"], r["implementation"]): r for r in results}
    for case in dict.fromkeys(r["case"] for r in results):
        ours, theirs = by_key.get((case, "bayesgmm")), by_key.get((case, "numpyro"))
        if not ours or not theirs or "timed_out" in ours:
            continue
        if "timed_out" in theirs:
            bound = max_ess(2, 1000) / theirs["timed_out"]
            ratio = ours["cold"]["ess_per_second"] / bound
            print(f"{case}: plain NumPyro did not finish in {theirs['timed_out']:.0f} s, so its "
                  f"cold min-ESS/s is below {bound:.1f}; bayesgmm / plain NumPyro, cold: "
                  f"> {ratio:.1f}x")
            continue
        for phase in ("cold", "warm"):
            ratio = ours[phase]["ess_per_second"] / theirs[phase]["ess_per_second"]
            print(f"{case}: bayesgmm / plain NumPyro min-ESS/s, {phase}: {ratio:.1f}x")


if __name__ == "__main__":
    main()
