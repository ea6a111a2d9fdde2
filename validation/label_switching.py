"""Label switching at full size: r_hat and ESS before and after relabelling.

Three well-separated clusters (300 points, K = 3, 'full' covariances). Four
chains start from the EM fit, each with its component labels permuted
differently, so each chain samples another (equivalent) labelling: the raw
draws are a textbook case of label switching. Relabelling (Stephens' KL
criterion, Hungarian assignment, :func:`bayesgmm.bayes.relabel.relabel_run`) must
bring every parameter to r_hat <= 1.01 and bulk ESS >= 400.

A second run uses ``BayesianGaussianMixture``'s defaults (chains started at
the EM labelling), where the raw draws should already agree.

Run with ``python validation/label_switching.py``.
"""

from __future__ import annotations

import time
import warnings

import arviz as az
import jax
import jax.numpy as jnp
import numpy as np
from bayesgmm.mixture.parameters import precision_scope

from bayesgmm import BayesianGaussianMixture
from bayesgmm.bayes import chain_start, nuts, relabel
from bayesgmm.bayes.diagnostics import SamplingWarning
from bayesgmm.bayes.model import default_prior
from bayesgmm.datasets import make_mixture

PERMUTATIONS = np.array([[0, 1, 2], [1, 2, 0], [2, 0, 1], [0, 2, 1]])
NUM_WARMUP, NUM_SAMPLES = 500, 1000
MAX_RHAT, MIN_ESS = 1.01, 400


def make_data():
    X, _, _ = make_mixture(
        300, [0.3, 0.3, 0.4], [[0.0, 0.0], [7.0, 0.0], [0.0, 7.0]], [1.0, 0.7, 1.3],
        "spherical", random_state=0,
    )
    return X


def diagnostics_table(samples: dict) -> dict:
    """Per site: largest r_hat, smallest bulk and tail ESS (constant entries skipped)."""
    idata = az.from_dict(posterior={name: np.asarray(value) for name, value in samples.items()})
    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        rhat = az.rhat(idata)
        bulk, tail = az.ess(idata, method="bulk"), az.ess(idata, method="tail")

    def finite(dataset, name, reduce):
        values = np.ravel(dataset[name])
        return float(reduce(values[np.isfinite(values)]))

    return {name: (finite(rhat, name, np.max), finite(bulk, name, np.min),
                   finite(tail, name, np.min)) for name in rhat.data_vars}


def print_table(title, table):
    print(title)
    print(f"  {'site':<14} {'max r_hat':>9} {'min bulk ESS':>12} {'min tail ESS':>12}")
    for name, (rhat, bulk, tail) in table.items():
        print(f"  {name:<14} {rhat:>9.3f} {bulk:>12.0f} {tail:>12.0f}")
    worst = (max(r for r, _, _ in table.values()), min(b for _, b, _ in table.values()))
    print(f"  overall: max r_hat {worst[0]:.3f}, min bulk ESS {worst[1]:.0f}")
    return worst


def chains_started_apart(X):
    """Four chains, four labellings: raw and relabelled draws."""
    covariance_type = "full"
    with precision_scope("float64"):
        em_fit = chain_start.fit_em(X, None, n_components=3, covariance_type=covariance_type,
                                  random_state=0, dtype="float64")
        start = chain_start.permute_chain_start(
            chain_start.em_chain_start(em_fit.params, len(X), covariance_type=covariance_type,
                                     num_chains=len(PERMUTATIONS)),
            PERMUTATIONS, covariance_type,
        )
        prior = default_prior(X)
        model_kwargs = dict(X=jnp.asarray(X), mean_prior_loc=prior.mean_loc,
                            mean_prior_scale=prior.mean_scale,
                            scale_prior_median=prior.scale_median)
        settings = nuts.NUTSSettings(NUM_WARMUP, NUM_SAMPLES, len(PERMUTATIONS),
                                          nuts.resolve_chain_method("auto", 4))
        X_relabel, weight = relabel.relabel_points(X, None)
        run = nuts.sample_posterior(
            jax.random.key(0), start, model_kwargs, X_relabel, em_fit.params, n_components=3,
            covariance_type=covariance_type, settings=settings,
        )
        relabelled, _, _ = relabel.relabel_run(run, weight, covariance_type)
    return run.trace.samples, relabelled


def main() -> None:
    X = make_data()
    start = time.perf_counter()
    raw, relabelled = chains_started_apart(X)
    print(f"Three clusters, 300 points; 4 chains x {NUM_SAMPLES} draws "
          f"({NUM_WARMUP} warm-up) started with permuted labels "
          f"({time.perf_counter() - start:.1f} s).\n")
    print_table("Raw draws (label switching between chains):", diagnostics_table(raw))
    print()
    rhat, ess = print_table("Relabelled draws:", diagnostics_table(relabelled))
    verdict = "PASS" if rhat <= MAX_RHAT and ess >= MIN_ESS else "FAIL"
    print(f"  -> {verdict}: r_hat <= {MAX_RHAT} and bulk ESS >= {MIN_ESS} for every parameter.\n")

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", SamplingWarning)
        model = BayesianGaussianMixture(3, num_samples=NUM_SAMPLES, random_state=0,
                                        progress_bar=False).fit(X)
    sites = ("weights", "means", "scales", "correlations")
    posterior = model.inference_data_.posterior
    raw_posterior = model.raw_inference_data_.posterior
    print_table("BayesianGaussianMixture defaults (EM start), raw draws:",
                diagnostics_table({name: raw_posterior[name].values for name in sites}))
    print()
    print_table("BayesianGaussianMixture defaults (EM start), relabelled:",
                diagnostics_table({name: posterior[name].values for name in sites}))
    print(f"  sampling warnings: {len(caught)}")


if __name__ == "__main__":
    main()
