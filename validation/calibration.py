"""Simulation-based calibration (SBC) style check of BayesianGaussianMixture.

For each replicate: draw parameters from the prior of
:func:`bayesgmm.bayes.model.gmm_model` (fixed hyperparameters, so the prior does not
depend on the data), draw a data set from them, fit
``BayesianGaussianMixture`` with the same prior, and compare the true values
with the posterior draws. If the sampler and the relabelling are right, the
rank of each true value among the posterior draws is uniform, and central
50 % / 90 % credible intervals contain the truth 50 % / 90 % of the time.

Mixture labels are arbitrary, so the checked quantities are label-invariant
functions of the parameters: the components are ordered by the first
coordinate of their mean, in the truth and in every draw alike, and the
quantities are that ordering's weight, means, log standard deviations and
correlation. (Ordering is a deterministic function of the unordered
parameters, so the SBC argument holds exactly for them.)

Run with ``python validation/calibration.py [--replicates 200]``; it prints the
coverage per quantity and overall, and a rank-uniformity test.

``--missing 0.2`` removes that share of the entries from every data set
before the fit (never a whole row), which is fitted with
``missing='marginalize'``: the posterior given the observed entries must be
calibrated in the same way, since values missing at random leave the
likelihood of the observed data the model's. ``--mechanism mcar`` removes
entries completely at random; ``mar`` removes the second coordinate with a
probability that grows with the first (logistic in it, averaging the share
asked for), which is missing at random but not completely at random.
"""

from __future__ import annotations

import argparse
import functools
import time
import warnings

import jax
import numpy as np
from numpyro import handlers
from scipy import stats

from bayesgmm import BayesianGaussianMixture
from bayesgmm.bayes.diagnostics import SamplingWarning, posterior_variables
from bayesgmm.bayes.model import gmm_model
from bayesgmm.mixture.parameters import precision_scope

N_SAMPLES, N_FEATURES, N_COMPONENTS = 150, 2, 2
PRIOR = dict(weight_concentration=2.0, mean_prior_loc=0.0, mean_prior_scale=3.0,
             scale_prior_median=1.0)
FIT = dict(num_warmup=300, num_samples=250, num_chains=4, progress_bar=False)
THIN = 5  # ranks from every 5th draw, so that neighbouring draws are nearly independent
RANK_BINS = 10


def draw_replicate(seed):
    """True parameters and a data set from the model's prior."""
    model = functools.partial(gmm_model, n_components=N_COMPONENTS, covariance_type="full",
                              n_samples=N_SAMPLES, n_features=N_FEATURES, **PRIOR)
    with precision_scope("float64"):
        trace = handlers.trace(handlers.seed(model, jax.random.key(seed))).get_trace()
        sites = {name: np.asarray(trace[name]["value"])[None]
                 for name in ("weights", "means", "scales", "corr_cholesky")}
        # In the variables of the posterior group, where correlations stand for corr_cholesky.
        return posterior_variables(sites, "full"), np.asarray(trace["x"]["value"])


def invariant_quantities(sites):
    """Label-invariant quantities of each draw, shape (n_draws, n_quantities).

    ``sites`` hold arrays with a leading draw axis; components are ordered by
    the first coordinate of their means.
    """
    order = np.argsort(sites["means"][:, :, 0], axis=1)

    def ordered(values):
        index = order.reshape(order.shape + (1,) * (values.ndim - 2))
        return np.take_along_axis(values, index, axis=1)

    means, scales = ordered(sites["means"]), ordered(sites["scales"])
    correlation = ordered(sites["correlations"])[:, :, 0]
    columns = [ordered(sites["weights"])[:, :1]]
    for k in range(N_COMPONENTS):
        columns += [means[:, k], np.log(scales[:, k]), correlation[:, k:k + 1]]
    return np.concatenate(columns, axis=1)


QUANTITY_NAMES = ["weight(1)"] + [
    name for k in (1, 2)
    for name in (f"mean({k}).x", f"mean({k}).y", f"log sd({k}).x", f"log sd({k}).y",
                 f"corr({k})")
]


def remove_entries(X, share, mechanism, seed):
    """``X`` with about ``share`` of its entries set to NaN, never a whole row."""
    if share == 0:
        return X
    rng = np.random.default_rng([seed, 1])
    X = X.copy()
    if mechanism == "mcar":
        mask = rng.random(X.shape) < share
    else:
        # Only the second coordinate goes missing, more often where the first is large.
        centred = (X[:, 0] - X[:, 0].mean()) / X[:, 0].std()
        logit = np.log(2 * share / (1 - 2 * share)) + 1.5 * centred
        mask = np.zeros(X.shape, bool)
        mask[:, 1] = rng.random(len(X)) < 1 / (1 + np.exp(-logit))
    mask[mask.all(axis=1), 0] = False
    X[mask] = np.nan
    return X


def one_replicate(seed, share=0.0, mechanism="mcar"):
    truth, X = draw_replicate(seed)
    X = remove_entries(X, share, mechanism, seed)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", SamplingWarning)
        warnings.simplefilter("ignore", UserWarning)
        model = BayesianGaussianMixture(
            N_COMPONENTS, weight_concentration=PRIOR["weight_concentration"],
            mean_prior=PRIOR["mean_prior_loc"], mean_prior_scale=PRIOR["mean_prior_scale"],
            scale_prior=PRIOR["scale_prior_median"], random_state=seed,
            missing="marginalize" if share else "raise", **FIT,
        ).fit(X)
    posterior = model.inference_data_.posterior
    draws = {name: posterior[name].values.reshape((-1,) + posterior[name].shape[2:])
             for name in truth}
    true_values = invariant_quantities(truth)[0]
    draw_values = invariant_quantities(draws)
    lower50, upper50, lower90, upper90 = np.quantile(draw_values, [0.25, 0.75, 0.05, 0.95],
                                                     axis=0)
    thinned = draw_values[::THIN]
    return {
        "rank": (thinned < true_values).sum(axis=0),
        "n_ranks": len(thinned),
        "in50": (lower50 <= true_values) & (true_values <= upper50),
        "in90": (lower90 <= true_values) & (true_values <= upper90),
        "warned": any(issubclass(w.category, SamplingWarning) for w in caught),
    }


def report(results, share=0.0, mechanism="mcar"):
    n = len(results)
    in50 = np.array([r["in50"] for r in results])
    in90 = np.array([r["in90"] for r in results])
    ranks = np.array([r["rank"] for r in results])
    n_ranks = results[0]["n_ranks"]
    se50, se90 = np.sqrt(0.25 / n), np.sqrt(0.09 / n)
    print(f"{n} replicates; N = {N_SAMPLES}, D = {N_FEATURES}, K = {N_COMPONENTS}, 'full'; "
          f"{FIT['num_chains']} chains x {FIT['num_samples']} draws; "
          f"{sum(r['warned'] for r in results)} fits raised a sampling warning.")
    if share:
        print(f"{share:.0%} of the entries missing ({mechanism}), fitted with missing='marginalize'.")
    print()
    print(f"{'quantity':<14} {'50% coverage':>12} {'90% coverage':>12} {'rank chi2 p':>11}")
    for j, name in enumerate(QUANTITY_NAMES):
        histogram = np.histogram(ranks[:, j], bins=RANK_BINS, range=(0, n_ranks + 1))[0]
        p_value = stats.chisquare(histogram).pvalue
        print(f"{name:<14} {in50[:, j].mean():>12.3f} {in90[:, j].mean():>12.3f} "
              f"{p_value:>11.3f}")
    print(f"{'all':<14} {in50.mean():>12.3f} {in90.mean():>12.3f}")
    print(f"\nExpected 0.500 and 0.900; one quantity's binomial standard error over {n} "
          f"replicates is {se50:.3f} and {se90:.3f}.")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicates", type=int, default=200)
    parser.add_argument("--missing", type=float, default=0.0,
                        help="share of entries removed before each fit (0 to 0.5)")
    parser.add_argument("--mechanism", choices=("mcar", "mar"), default="mcar")
    args = parser.parse_args(argv)
    if not 0 <= args.missing < 0.5:
        parser.error("--missing must be in [0, 0.5)")
    start = time.perf_counter()
    results = [one_replicate(seed, args.missing, args.mechanism) for seed in range(args.replicates)]
    report(results, args.missing, args.mechanism)
    print(f"({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
