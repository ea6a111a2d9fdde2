"""Time a Bayesian model comparison over K by PSIS-LOO, cold, with and without padded components.

Usage::

    python benchmarks/loo_sweep.py                 # 3 alternating rounds of both variants
    python benchmarks/loo_sweep.py --rounds 1
    python benchmarks/loo_sweep.py --worker padded # one run, in this process

Method
------
* The job: ``bayesgmm.bayes.comparison.compare(X, n_components=(2, 3, 4, 5),
  covariance_type="full", random_state=0, progress_bar=False)`` on the
  document's data (the 800 points of ``datasets.document_data()``, train and
  test rows together), with the estimator's defaults (500 warm-up steps and
  500 draws per chain, 4 chains): four NUTS fits and their ``az.loo``, then
  ``az.compare``.
* ``padded``: as the library runs it. Fits of K = 2..5 carry 8 components
  (``chain_start.COMPONENT_BUCKET``; the padding applies below
  ``chain_start.PADDING_WORK_LIMIT``), so the four fits share one compiled
  sampler. ``unpadded``: ``PADDING_WORK_LIMIT = 0``, each K compiles its
  own sampler, as before the padding.
* Every run is a fresh process (imports and compilation included), with
  bayesgmm's persistent compilation cache off; the variants alternate and
  each figure is the median over the rounds. The time is the whole process
  as the parent sees it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

VARIANTS = ("padded", "unpadded")


def worker(variant: str) -> None:
    start = time.perf_counter()
    import warnings

    warnings.simplefilter("ignore")
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import numpy as np

    from bayesgmm import datasets
    from bayesgmm.bayes import chain_start, comparison

    if variant == "unpadded":
        chain_start.PADDING_WORK_LIMIT = 0
    X = np.vstack(datasets.document_data()[:2])
    result = comparison.compare(X, n_components=(2, 3, 4, 5), covariance_type="full", random_state=0,
                                progress_bar=False)
    print(f"{variant}: chosen {result.chosen}, in-process {time.perf_counter() - start:.1f} s", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--worker", choices=VARIANTS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker)
        return
    environment = {name: value for name, value in os.environ.items()
                   if not name.startswith(("JAX_COMPILATION_CACHE", "JAX_PERSISTENT_CACHE"))}
    environment["BAYESGMM_COMPILATION_CACHE"] = ""
    times = {variant: [] for variant in VARIANTS}
    for round_ in range(args.rounds):
        for variant in VARIANTS:
            start = time.perf_counter()
            done = subprocess.run([sys.executable, __file__, "--worker", variant], env=environment,
                                  capture_output=True, text=True, check=True)
            times[variant].append(time.perf_counter() - start)
            print(f"round {round_ + 1}: {done.stdout.strip()}; process {times[variant][-1]:.1f} s", flush=True)
    padded, unpadded = (statistics.median(times[variant]) for variant in VARIANTS)
    print(f"median process time: padded {padded:.1f} s, unpadded {unpadded:.1f} s, "
          f"ratio unpadded / padded {unpadded / padded:.2f}")


if __name__ == "__main__":
    main()
