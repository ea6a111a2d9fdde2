"""The source document's example with the posterior: how sure is each probability?

The document fits a two-component mixture to the training half of two blobs
and scores the membership probabilities of the test half. EM gives one
probability per point; ``BayesianGaussianMixture`` gives its posterior, so
the points whose cluster is genuinely uncertain show up as wide credible
intervals. The script prints

* the document's accuracy, computed from the posterior mean probabilities
  (and EM's, for comparison);
* the test points with the widest 90 % intervals on their probability;

and writes an ArviZ trace plot and the posterior summary to ``--out``
(default ``out/``).

Run with ``python examples/bayesian_document_example.py``.
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import numpy as np

from bayesgmm import BayesianGaussianMixture, GaussianMixture
from bayesgmm.alignment import align_proba
from bayesgmm.datasets import document_data
from bayesgmm.metrics import soft_accuracy

N_SHOWN = 8


def uncertain_points(XB, yB, proba, lower, upper, n_shown=N_SHOWN):
    """Rows of the test points with the widest interval on P(class 1)."""
    _, source_columns = align_proba(proba, yB, return_permutation=True)
    column = source_columns[1]  # the cluster matched to class 1
    width = upper[:, column] - lower[:, column]
    order = np.argsort(width)[::-1][:n_shown]
    return [(XB[i], yB[i], proba[i, column], lower[i, column], upper[i, column]) for i in order]


def write_arviz_outputs(model, out: Path):
    import arviz as az
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    az.plot_trace(model.inference_data_, var_names=["weights", "means"], compact=True)
    plt.tight_layout()
    plt.savefig(out / "bayesian_trace.png", dpi=100)
    plt.close("all")
    summary = model.summary()
    summary.to_csv(out / "bayesian_summary.csv")
    return summary


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("out"))
    args = parser.parse_args(argv)

    XA, XB, yA, yB = document_data()
    bgm = BayesianGaussianMixture(n_components=2, random_state=0).fit(XA)
    proba = bgm.predict_proba(XB)  # posterior mean probabilities
    lower, upper = bgm.predict_proba_interval(XB, prob=0.9)
    print(f"Accuracy = {np.round(soft_accuracy(yB, proba), 2)}%  (posterior mean)")
    em_proba = GaussianMixture(n_components=2, random_state=0).fit(XA).predict_proba(XB)
    print(f"Accuracy = {np.round(soft_accuracy(yB, em_proba), 2)}%  (EM, for comparison)")

    print(f"\nThe {N_SHOWN} test points whose cluster is least certain "
          "(widest 90% interval on P(class 1)):")
    print(f"{'x1':>8} {'x2':>8} {'class':>5} {'P(class 1)':>10} {'90% interval':>18}")
    for x, label, mean, low, high in uncertain_points(XB, yB, proba, lower, upper):
        print(f"{x[0]:8.2f} {x[1]:8.2f} {label:5d} {mean:10.3f}   [{low:.3f}, {high:.3f}]")
    widths = (upper - lower).max(axis=1)
    print(f"\n{np.sum(widths > 0.1)} of {len(XB)} test points have an interval wider than "
          f"0.1; the median width is {np.median(widths):.1e}.")

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        summary = write_arviz_outputs(bgm, args.out)
    print(f"\nPosterior summary (also in {args.out / 'bayesian_summary.csv'}; trace plot in "
          f"{args.out / 'bayesian_trace.png'}):")
    print(summary[["mean", "sd", "hdi_3%", "hdi_97%", "ess_bulk", "r_hat"]].to_string())


if __name__ == "__main__":
    main()
