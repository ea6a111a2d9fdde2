"""How many components? PSIS-LOO for the Bayesian half, BIC for the EM half.

Data are drawn from a mixture with a known number of components (3). For
K = 1 .. 5 the script fits

* ``BayesianGaussianMixture(K)`` and compares the fits by their estimated
  out-of-sample predictive density (PSIS-LOO, ``arviz.compare``), choosing
  the smallest K whose ``elpd_loo`` is not credibly below the best: a
  difference under 4 (small, in the LOO FAQ's terms) or under two standard
  errors of the difference. Extra components of a nested mixture cost almost
  no predictive density, so the top-ranked K alone tends to be too large;
* ``GaussianMixture(K)`` and compares them by BIC;

and prints which K each criterion picks. Over-fitted mixtures (K > 3) often
sample poorly (empty or split components), so their sampling warnings are
counted rather than printed.

Run with ``python examples/choose_k.py``.
"""

from __future__ import annotations

import argparse
import warnings

import arviz as az

from bayesgmm import BayesianGaussianMixture, GaussianMixture
from bayesgmm.bayes.diagnostics import SamplingWarning
from bayesgmm.datasets import make_mixture

TRUE_K = 3
CANDIDATES = range(1, 6)
SMALL_ELPD_DIFFERENCE = 4.0  # Vehtari's LOO FAQ: below 4 the difference is small


def make_data(random_state=0):
    """400 points from three overlapping-but-distinct elliptical clusters."""
    X, _, _ = make_mixture(
        400, [0.3, 0.3, 0.4], [[0.0, 0.0], [5.0, 1.0], [1.0, 5.0]],
        [[[1.0, 0.4], [0.4, 0.8]], [[0.7, -0.2], [-0.2, 1.0]], [[1.2, 0.0], [0.0, 0.6]]],
        "full", random_state=random_state,
    )
    return X


def bayesian_fits(X, candidates, **settings):
    """K -> (InferenceData, number of sampling warnings)."""
    fits = {}
    for k in candidates:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", SamplingWarning)
            model = BayesianGaussianMixture(k, random_state=0, progress_bar=False,
                                            **settings).fit(X)
        n_warnings = sum(issubclass(w.category, SamplingWarning) for w in caught)
        fits[f"K={k}"] = (model.inference_data_, n_warnings)
    return fits


def loo_choice(comparison) -> int:
    """The smallest K whose elpd_loo is within noise of the best one."""
    equivalent = comparison[(comparison["elpd_diff"] < SMALL_ELPD_DIFFERENCE)
                            | (comparison["elpd_diff"] < 2 * comparison["dse"])]
    return min(int(name.split("=")[1]) for name in equivalent.index)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-samples", type=int, default=500)
    args = parser.parse_args(argv)
    X = make_data()

    fits = bayesian_fits(X, CANDIDATES, num_samples=args.num_samples)
    with warnings.catch_warnings():
        # Pareto-k warnings for poorly fitted K are part of the answer, not noise.
        warnings.simplefilter("ignore", UserWarning)
        comparison = az.compare({name: idata for name, (idata, _) in fits.items()}, ic="loo")
    bic = {k: GaussianMixture(k, n_init=3, random_state=0).fit(X).bic(X) for k in CANDIDATES}

    print(f"Data: {len(X)} points from a mixture of {TRUE_K} components.\n")
    print(f"{'K':>2} {'elpd_loo':>10} {'elpd_diff':>9} {'dse':>6} {'LOO rank':>8} {'BIC':>10} "
          f"{'sampling warnings':>17}")
    for k in CANDIDATES:
        row = comparison.loc[f"K={k}"]
        print(f"{k:>2} {row['elpd_loo']:>10.1f} {row['elpd_diff']:>9.1f} {row['dse']:>6.1f} "
              f"{int(row['rank']):>8d} {bic[k]:>10.1f} {fits[f'K={k}'][1]:>17d}")
    chosen_by_loo = loo_choice(comparison)
    chosen_by_bic = min(bic, key=bic.get)
    print(f"\nBayesian half (PSIS-LOO, az.compare) picks K = {chosen_by_loo}")
    print(f"EM half (BIC) picks K = {chosen_by_bic}")
    both = chosen_by_loo == chosen_by_bic == TRUE_K
    print(f"True K = {TRUE_K}: " + ("both criteria recover it." if both
                                    else "a criterion missed it."))


if __name__ == "__main__":
    main()
