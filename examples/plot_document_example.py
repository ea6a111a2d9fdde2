"""The picture of the README: the document's example, fitted and drawn.

Fits a two-component ``GaussianMixture`` to the training part of the source
document's two blobs (``bayesgmm.datasets.document_data``) and draws, for all
800 points,

* left: the components as 1- and 2-sigma ellipses over the points, coloured
  by predicted class;
* right: the probability map, ``1 - largest class probability``, with the
  points near the boundary (largest probability below 0.9) ringed in red:
  the document's "data points that exist at the boundary of clusters".

Run from the repository root with ``python examples/plot_document_example.py``;
it writes ``docs/document_example.png`` (or the path given as the first
argument) and prints the document's accuracy on the test points.
"""

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402

from bayesgmm import GaussianMixture, plot  # noqa: E402
from bayesgmm.datasets import document_data  # noqa: E402
from bayesgmm.metrics import soft_accuracy  # noqa: E402

DEFAULT_OUTPUT = Path(__file__).resolve().parent.parent / "docs" / "document_example.png"


def main(output=DEFAULT_OUTPUT) -> Path:
    XA, XB, yA, yB = document_data()
    gmm = GaussianMixture(n_components=2, random_state=0).fit(XA)
    accuracy = soft_accuracy(yB, gmm.predict_proba(XB))
    fig = plot.overview(
        gmm,
        np.vstack([XA, XB]),
        feature_names=["x0", "x1"],
        suptitle=f"The document's example: two blobs, two components "
                 f"(test accuracy {accuracy:.2f}%)",
    )
    fig.set_size_inches(10, 4)
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(output, dpi=80)
    print(f"Accuracy = {np.round(accuracy, 2)}%")
    print(f"Wrote {output}")
    return output


if __name__ == "__main__":
    main(*sys.argv[1:2])
