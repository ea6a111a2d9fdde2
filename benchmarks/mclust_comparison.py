"""GaussianMixtureIC against R mclust's reference tables, cell by cell.

Usage::

    python benchmarks/mclust_comparison.py            # prints the comparison
    python benchmarks/mclust_comparison.py --write    # also writes benchmarks/MCLUST_COMPARISON.md
    python benchmarks/mclust_comparison.py --prior --write    # benchmarks/MCLUST_PRIOR_COMPARISON.md

For every data set of ``tests/fixtures/mclust`` with more than one feature
(mclustBIC(X, G = 1:9), mclust 6.0's defaults, all fourteen models), the
grid of ``GaussianMixtureIC(1, 9, covariance_type="all")`` with both starts
(hierarchical and k-means) and a tolerance tight enough that the
comparison is of optima, not of stopping rules. Per cell, in mclust's sign
(BIC larger is better): equal (within 0.01), bayesgmm better, bayesgmm
worse (by more than 0.05), or NA on one side (mclust's singular
covariance, bayesgmm's degenerate flag). Then the chosen model of each.
No R is needed: the tables are the committed fixtures.

With ``--prior`` the same comparison under mclust's conjugate prior:
``GaussianMixtureIC(..., prior="default")`` (MAP-EM, scored by the
log-likelihood at the MAP estimate) against
``mclustBIC(X, G = 1:9, prior = priorControl())`` of every data set of
``tests/fixtures/mclust_prior`` (the ten models mclust has a prior for, E
and V in one dimension).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

REPOSITORY = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPOSITORY))
SETTINGS = dict(tol=1e-8, max_iter=2000, random_state=0, reg_covar=1e-10)
SAME, WORSE = 0.01, 0.05
# mclust's returnCode of an NA cell (the me* functions of mclust 6.0).
RETURN_CODES = {-1: "singular covariance", -2: "z column sum fell below threshold",
                -3: "mixing proportion fell below threshold", -9: "LAPACK SVD failed"}


@dataclass(frozen=True)
class Suite:
    """One comparison: its fixtures, the estimator's extra settings and its report.

    Attributes
    ----------
    fixtures : Path
        Folder of ``<name>.json`` (mclustBIC's table as ``bic``, its
        ``return_codes`` and ``best``) and the data.
    data : str
        The data file of ``<name>``, a format with ``{name}``.
    skiprows : int
        Header lines of the data file.
    min_features : int
        Data sets with fewer features are left out.
    fit : dict
        Settings of ``GaussianMixtureIC`` and ``GaussianMixture`` beyond ``SETTINGS``.
    output : Path
        The markdown file ``--write`` writes.
    title, source : str
        The report's heading and the fixtures' folder as the report names it.
    notes : dict
        ``(name, model, K) -> why`` found by hand, for cells the script cannot explain itself.
    findings : str
        The closing paragraph of the report ('' for none).
    """

    fixtures: Path
    data: str
    skiprows: int
    min_features: int
    fit: dict
    output: Path
    title: str
    source: str
    notes: dict = field(default_factory=dict)
    findings: str = ""


# Found by hand with R mclust 6.0.0 (mclustBIC's final z of the one cell, then me() from it to
# emControl(tol = c(1e-12, sqrt(.Machine$double.eps)))) and bayesgmm's fit from that z; the
# fixtures hold mclust's tables, not its per-cell parameters, so the script cannot redo it.
_STOPPED = ("mclust stops EM at a relative change of 1e-5; its own me() from its final z, run to 1e-12, "
            "gives {tight} (bayesgmm's value): the same optimum, where the log-likelihood at the MAP "
            "estimate falls as the penalised one rises")
_EMPTIED = ("bayesgmm's hierarchical start empties a component here too (n_k = 0, BIC {hierarchical}), "
            "as mclust's returnCode says of its own; the k-means start kept has none empty")
PRIOR_NOTES = {
    ("iris", "VEI", 6): _STOPPED.format(tight="-702.063"),
    ("iris", "VEI", 9): _STOPPED.format(tight="-724.147"),
    ("iris", "VVI", 3): _STOPPED.format(tight="-756.048"),
    ("iris", "EEE", 6): _STOPPED.format(tight="-612.965"),
    ("mixture", "VII", 5): _STOPPED.format(tight="-2331.637"),
    ("mixture", "EEE", 2): _STOPPED.format(tight="-2502.678"),
    ("mixture", "EEV", 4): _STOPPED.format(tight="-2379.250"),
    ("mixture", "VVV", 8): _STOPPED.format(tight="-2527.925"),
    ("mixture", "VVV", 9): _STOPPED.format(tight="-2567.448"),
    ("one_d", "V", 2): _STOPPED.format(tight="-563.624"),
    ("iris", "EEV", 7): _EMPTIED.format(hierarchical="-757.427"),
    ("iris", "VEV", 4): _EMPTIED.format(hierarchical="-642.858"),
    ("iris", "VEV", 5): _EMPTIED.format(hierarchical="-685.852"),
    ("iris", "VEV", 6): _EMPTIED.format(hierarchical="-723.451"),
    ("iris", "VEV", 8): _EMPTIED.format(hierarchical="-808.765"),
    **{("one_d", "V", k): (f"another local optimum: in one dimension mclust starts from quantile classes "
                           f"(qclass), not hc; bayesgmm from those classes, or from mclust's final z, "
                           f"reaches {tight}, above mclust's stopped value; its own two starts miss it")
       for k, tight in ((5, "-602.226"), (8, "-638.218"))},
    **{("iris", "EVI", k): (f"mclust stopped (1e-5) on a path that empties a component: its me() from "
                            f"its final z to 1e-12 ends NA (returnCode -3); bayesgmm's hierarchical start "
                            f"follows that path to an empty component (weight <= 3e-17; BIC {hierarchical}, "
                            f"{below} below mclust); the k-means start kept has every component populated "
                            f"(n_k >= 4.1)")
       for k, hierarchical, below in ((8, "-800.907", "4.03"), (9, "-836.916", "4.74"))},
}
PRIOR_FINDINGS = """
No cell points at a difference in the MAP M-step. Every cell where bayesgmm is below mclust is
mclust's own optimum, run further: mclust stops EM at a relative change of 1e-5, bayesgmm at
tol=1e-8, and under the prior EM raises the penalised log-likelihood while the criterion uses the
plain one at the MAP estimate, which may fall on the way (by 0.01 to 0.19 in BIC here). mclust's
own `me()` from its final responsibilities, run to 1e-12, gives bayesgmm's value to the third
decimal in all ten such cells, one_d V,2 (mclust's choice, hence the 0.19 between the chosen
BICs) included. The two exceptions, one_d V,5 and V,8, are another local optimum, better than
mclust's: in one dimension mclustBIC starts from quantile classes (`qclass`), which neither of
bayesgmm's starts reproduces; from those classes bayesgmm reaches it. The iris EVI K = 8, 9 cells
that a hierarchical-only run puts 4.0 and 4.7 below mclust are not in the grid's choice: mclust's
value there is a point on an EM path that empties a component (run on, mclust ends NA,
returnCode -3), bayesgmm's hierarchical start follows that path to an empty component and the
k-means start, which keeps every component populated, is better by 21 and 37. The same happens
in the five cells mclust reports NA (returnCode -3, a mixing proportion below threshold): the
hierarchical start empties a component there too. Under a prior bayesgmm flags a fit with an
empty component (fewer than 1e-8 effective points) as degenerate, as mclust reports NA. On iris
the k-means start of VEV with 6, 7 and 8 components empties one as well: VEV 6 and 8 are NA in
both, and VEV 7 keeps the hierarchical start, 0.16 below mclust's value: mclust stopping early
again (its own EM from its start, run to a tolerance of 1e-12, gives -808.9365, bayesgmm's
-808.937).
"""


PLAIN = Suite(fixtures=REPOSITORY / "tests" / "fixtures" / "mclust", data="{name}.csv", skiprows=1,
              min_features=2, fit={}, output=REPOSITORY / "benchmarks" / "MCLUST_COMPARISON.md",
              title="GaussianMixtureIC against R mclust 6.0 (mclustBIC, G = 1..9, 14 models)",
              source="tests/fixtures/mclust")
PRIOR = Suite(fixtures=REPOSITORY / "tests" / "fixtures" / "mclust_prior", data="{name}_X.csv", skiprows=0,
              min_features=1, fit=dict(prior="default"),
              output=REPOSITORY / "benchmarks" / "MCLUST_PRIOR_COMPARISON.md",
              title="GaussianMixtureIC(prior=\"default\") against R mclust 6.0 "
                    "(mclustBIC with priorControl(), G = 1..9, 10 models)",
              source="tests/fixtures/mclust_prior", notes=PRIOR_NOTES, findings=PRIOR_FINDINGS)


def load(name, suite=PLAIN):
    reference = json.loads((suite.fixtures / f"{name}.json").read_text())
    X = np.loadtxt(suite.fixtures / suite.data.format(name=name), delimiter=",",
                   skiprows=suite.skiprows, ndmin=2)
    return X, reference


def compare(name, suite=PLAIN):
    """One data set's grid against mclust's table, cell by cell (BIC in mclust's sign)."""
    from bayesgmm import GaussianMixtureIC

    X, reference = load(name, suite)
    codes = reference.get("return_codes", {})
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = GaussianMixtureIC(1, 9, covariance_type="all", **SETTINGS, **suite.fit).fit(X)
    seconds = time.perf_counter() - start
    results = model.results_
    cells = []
    for index, (structure, k) in enumerate(zip(results["param_covariance_type"],
                                               results["param_n_components"])):
        theirs = reference["bic"][structure][int(k) - 1]
        ours = -results["bic"][index]
        degenerate = bool(results["degenerate"][index])
        if theirs is None and degenerate:
            verdict = "both NA"
        elif theirs is None:
            verdict = "mclust NA"
        elif degenerate:
            verdict = "bayesgmm degenerate"
        elif abs(ours - theirs) <= SAME:
            verdict = "equal"
        elif ours > theirs:
            verdict = "bayesgmm better"
        elif ours >= theirs - WORSE:
            verdict = "within 0.05"
        else:
            verdict = "bayesgmm worse"
        reason = results["degenerate_reason"][index]
        if theirs is None and structure in codes:
            # mclust writes NA with no reason in the table; its return code says which failure.
            code = codes[structure][int(k) - 1]
            reason = "; ".join(filter(None, [reason, f"mclust's returnCode {code}: {RETURN_CODES.get(code, '?')}"]))
        if verdict == "bayesgmm worse":
            reason = _why_worse(X, structure, int(k), theirs, suite)
            if reason.startswith("mclust's optimum is degenerate"):
                verdict = "mclust degenerate"
        note = suite.notes.get((name, structure, int(k)))
        if note:
            # A note found by hand replaces the hierarchical-start guess; an NA cell keeps its returnCode.
            reason = "; ".join(filter(None, [reason, note])) if theirs is None else note
        cells.append(dict(structure=structure, k=int(k), ours=ours, theirs=theirs,
                          verdict=verdict, reason=reason, start=results["init_params"][index]))
    best = reference["best"][0]
    return dict(name=name, n=len(X), d=X.shape[1], seconds=seconds, cells=cells,
                ours=(model.covariance_type_, model.n_components_, -model.criterion_),
                theirs=(best["model"], best["G"], best["bic"]))


def _why_worse(X, structure, k, theirs, suite=PLAIN) -> str:
    """Whether the hierarchical start alone reaches mclust's optimum, and if it is degenerate."""
    from bayesgmm import GaussianMixture
    from bayesgmm.mixture.selection import degeneracy

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            model = GaussianMixture(k, covariance_type=structure, init_params="hierarchical",
                                    **SETTINGS, **suite.fit).fit(X)
        except ValueError as error:
            return f"the hierarchical start fails here: {error}"
    bic = -model.bic(X)
    reason = degeneracy(model, len(X), SETTINGS["reg_covar"])
    if abs(bic - theirs) <= WORSE and reason:
        return f"mclust's optimum is degenerate ({reason}); the hierarchical start reaches it"
    if abs(bic - theirs) <= WORSE:
        return "the hierarchical start reaches mclust's optimum but was not kept"
    return f"the hierarchical start stops at {bic:.3f}, not at mclust's optimum"


def report(comparisons, suite=PLAIN) -> str:
    """The markdown of :func:`compare`'s results: counts and choices per data set, then the cells that differ."""
    flag = " --prior" if suite.fit.get("prior") else ""
    lines = [f"# {suite.title}", "",
             f"Written by `python benchmarks/mclust_comparison.py{flag} --write` from the committed",
             f"reference tables (`{suite.source}`); BIC in mclust's sign (larger is",
             f"better); settings {dict(SETTINGS, **suite.fit)}, both starts (hierarchical, k-means).", "",
             "| data | n x d | mclust's choice | bayesgmm's choice | equal | better | within 0.05 "
             "| worse | mclust degenerate | mclust NA | bayesgmm degenerate | both NA | seconds |",
             "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    verdicts = ["equal", "bayesgmm better", "within 0.05", "bayesgmm worse", "mclust degenerate",
                "mclust NA", "bayesgmm degenerate", "both NA"]
    for c in comparisons:
        counts = [sum(cell["verdict"] == verdict for cell in c["cells"]) for verdict in verdicts]
        theirs = f"{c['theirs'][0]}, {c['theirs'][1]} ({c['theirs'][2]:.3f})"
        ours = f"{c['ours'][0]}, {c['ours'][1]} ({c['ours'][2]:.3f})"
        lines.append(f"| {c['name']} | {c['n']} x {c['d']} | {theirs} | {ours} | "
                     + " | ".join(str(count) for count in counts) + f" | {c['seconds']:.0f} |")
    lines += ["", "## Cells that differ", ""]
    for c in comparisons:
        differing = [cell for cell in c["cells"] if cell["verdict"] not in ("equal", "both NA")]
        lines.append(f"### {c['name']}")
        lines.append("")
        if not differing:
            lines += ["Every cell equal (or NA on both sides).", ""]
            continue
        lines += ["| model | K | mclust | bayesgmm | verdict | start kept | why |",
                  "|---|---:|---:|---:|---|---|---|"]
        for cell in differing:
            theirs = "NA" if cell["theirs"] is None else f"{cell['theirs']:.3f}"
            lines.append(f"| {cell['structure']} | {cell['k']} | {theirs} | {cell['ours']:.3f} | "
                         f"{cell['verdict']} | {cell['start']} | {cell['reason'] or ''} |")
        lines.append("")
    if suite.findings:
        lines += ["## Findings", "", suite.findings.strip(), ""]
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prior", action="store_true",
                        help=f"under mclust's conjugate prior (writes {PRIOR.output.name})")
    parser.add_argument("--write", action="store_true", help=f"write {PLAIN.output.name} (or, with --prior, "
                                                             f"{PRIOR.output.name})")
    parser.add_argument("--data", default=None, help="comma-separated data set names")
    args = parser.parse_args(argv)
    suite = PRIOR if args.prior else PLAIN
    names = args.data.split(",") if args.data else sorted(
        path.stem for path in suite.fixtures.glob("*.json")
        if json.loads(path.read_text())["d"] >= suite.min_features)
    comparisons = []
    for name in names:
        comparisons.append(compare(name, suite))
        c = comparisons[-1]
        print(f"{name}: {c['seconds']:.1f} s, mclust {c['theirs']}, bayesgmm {c['ours']}", flush=True)
    text = report(comparisons, suite)
    print(text)
    if args.write:
        suite.output.write_text(text)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    sys.exit(main())
