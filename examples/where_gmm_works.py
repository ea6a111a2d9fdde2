"""Where a Gaussian mixture works: the document's two rows of data sets.

The document observes that a GMM "performs poorly when there is no clustering"
(first row) and better on the second row, "as there are gaps between data
clusters". This script fits one GaussianMixture per data set of
``bayesgmm.datasets.two_rows`` with as many components as classes, and prints
the soft accuracy (the document's metric), the hard accuracy and the adjusted
Rand index of the fitted clusters against the true classes.

Run with ``python examples/where_gmm_works.py``.
"""

import numpy as np

from bayesgmm import GaussianMixture
from bayesgmm.datasets import two_rows
from bayesgmm.metrics import adjusted_rand_index, hard_accuracy, soft_accuracy


def evaluate(dataset) -> tuple[float, float, float]:
    """Soft accuracy (%), hard accuracy (%) and ARI of a GMM fitted to ``dataset``."""
    n_classes = np.unique(dataset.y).size
    gmm = GaussianMixture(n_components=n_classes, random_state=0).fit(dataset.X)
    proba = gmm.predict_proba(dataset.X)
    return (
        soft_accuracy(dataset.y, proba),
        hard_accuracy(dataset.y, proba),
        adjusted_rand_index(dataset.y, proba),
    )


def main() -> None:
    header = f"{'data set':<32}{'gaps':>6}{'soft acc %':>12}{'hard acc %':>12}{'ARI':>8}"
    print(header)
    print("-" * len(header))
    scores_by_gaps = {False: [], True: []}
    for dataset in two_rows():
        soft, hard, ari = evaluate(dataset)
        scores_by_gaps[dataset.has_gaps].append((soft, hard, ari))
        gaps = "yes" if dataset.has_gaps else "no"
        print(f"{dataset.name:<32}{gaps:>6}{soft:>12.2f}{hard:>12.2f}{ari:>8.2f}")
    print("-" * len(header))
    for has_gaps, label in ((False, "mean, row 1 (no gaps)"), (True, "mean, row 2 (gaps)")):
        soft, hard, ari = np.mean(scores_by_gaps[has_gaps], axis=0)
        print(f"{label:<38}{soft:>12.2f}{hard:>12.2f}{ari:>8.2f}")


if __name__ == "__main__":
    main()
