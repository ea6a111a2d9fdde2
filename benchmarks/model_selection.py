"""Time the whole model-selection grid (mclust's 14 structures x K) against R mclust and scikit-learn.

Usage::

    python benchmarks/model_selection.py                          # all sizes, 3 rounds
    python benchmarks/model_selection.py --rounds 3 --large-rounds 1 --write
    python benchmarks/model_selection.py --sizes small --rounds 1 --max-components 3   # quick check

Method
------
* Three ways to choose a Gaussian mixture by BIC over K = 1..9 (issue 14):

  - **bayesgmm**: ``GaussianMixtureIC(min_components=1, max_components=9,
    covariance_type="all", random_state=s).fit(X)``: mclust's 14 structures,
    with its defaults (hierarchical and k-means starts in every cell).
  - **R mclust**: ``mclustBIC(X, G = 1:9)`` with mclust's defaults (all 14
    models, its hierarchical start, on a random subset of 2,000 rows above
    that size), run by ``Rscript``. Skipped, with a line saying so, when
    ``Rscript`` or the mclust package is missing.
  - **scikit-learn loop**: ``GaussianMixture(k, covariance_type=t,
    random_state=s).fit(X).bic(X)`` for its four structures (full, tied,
    diag, spherical: mclust's VVV, EEE, VVI, VII) and every K, defaults
    otherwise; the loop a user writes (as in ``sweep.py``).

  The three do not stop EM alike (mclust iterates to a relative change of
  1e-5 with no iteration cap; the other two to an absolute change of 1e-3
  in the mean log-likelihood, at most 100 iterations) and do not start
  alike; the chosen models and BICs are reported so that a speed-up bought
  with a worse answer shows.
* Data (NumPy, seed 0; ``sweep.make_data``): four anisotropic full-covariance
  clusters (weights 0.4, 0.3, 0.2, 0.1) at small (N=1,000, D=4), medium
  (N=20,000, D=8) and large (N=200,000, D=8). R reads the same array from a
  CSV written once per size (17 significant digits) to a temporary folder.
* Every measurement runs in a fresh process (this script in worker mode, or
  ``Rscript``). **fresh**: from the parent's spawn of the process to the end
  of its first call (interpreter, imports, data, JAX's compilations, what a
  user waits for in a new script); for R, spawn to the end of the first
  ``mclustBIC`` (R's start, ``library(mclust)`` and reading the CSV
  included). **first call**: that call alone. **warm**: the same call again
  in the same process, with another seed (``random_state=1``;
  ``set.seed(1)`` in R, which draws mclust's subset; the first call runs
  after ``set.seed(0)``). R's calls are timed inside R with
  ``system.time`` (elapsed). **process wall**: spawn to exit.
* The libraries alternate process by process (bayesgmm, mclust,
  scikit-learn, bayesgmm, ...) for ``--rounds`` rounds; figures are medians
  over the rounds, since the shared machine's speed drifts over minutes
  (``--large-rounds`` gives the large size fewer).
  Ratios are reference / bayesgmm of those medians (above 1: bayesgmm
  faster).
* In bayesgmm's processes, a ``jax.monitoring`` listener counts XLA
  compilations and their seconds per call (``sweep.CompileCounter``), and
  wrappers time the parts of a call: mclust's hierarchical start (NumPy,
  once per structure), the rest of the batched EM sweeps (k-means starts,
  compilation, EM) and the scoring of every candidate (log-likelihood,
  responsibilities, degeneracy checks).
* An R process whose first call takes longer than ``--mclust-second-limit``
  seconds skips the warm call; one running past ``--mclust-timeout``
  seconds is stopped and reported as such.
* OpenBLAS: this workplace sets OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE, which
  slow a current NumPy (and so scikit-learn) down; they are removed from
  every measured process's environment, R's included
  (``--keep-openblas-env`` keeps them), as ``sweep.py`` does.
"""

from __future__ import annotations

import time

_START = time.perf_counter()  # a worker's fresh time counts from here (and from its spawn)

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import warnings  # noqa: E402

REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPOSITORY)

import sweep  # noqa: E402  (benchmarks/ is on sys.path as this script's folder)

RESULTS = os.path.join(REPOSITORY, "benchmarks", "RESULTS.md")
SECTION_BEGIN = "<!-- model_selection.py: begin -->"
SECTION_END = "<!-- model_selection.py: end -->"

SIZES = {"small": (1_000, 4), "medium": (20_000, 8), "large": (200_000, 8)}
LIBRARIES = ("bayesgmm", "mclust", "sklearn")
LABELS = {"bayesgmm": "bayesgmm GaussianMixtureIC (14 structures)", "mclust": "R mclust mclustBIC (14 models)",
          "sklearn": "scikit-learn loop (4 structures)"}
SHORT = {"bayesgmm": "bayesgmm", "mclust": "mclust", "sklearn": "scikit-learn"}
SKLEARN_TYPES = ("full", "tied", "diag", "spherical")
MCLUST_OF_SKLEARN = {"full": "VVV", "tied": "EEE", "diag": "VVI", "spherical": "VII"}
PHASES = ("first", "warm")

# mclustBIC's defaults, timed inside R. Arguments: CSV, number of columns, largest K, the
# second-call limit (s), the output file. The output is one "key value..." line per figure,
# so no R package beyond mclust is needed.
R_SCRIPT = r"""
arguments <- commandArgs(trailingOnly = TRUE)
csv <- arguments[1]; n_features <- as.integer(arguments[2]); max_g <- as.integer(arguments[3])
second_limit <- as.numeric(arguments[4]); output <- arguments[5]
started <- proc.time()[["elapsed"]]
suppressPackageStartupMessages(library(mclust))
loaded <- proc.time()[["elapsed"]]
X <- matrix(scan(csv, sep = ",", quiet = TRUE), ncol = n_features, byrow = TRUE)
read <- proc.time()[["elapsed"]]
lines <- c(sprintf("import_s %.6f", loaded - started), sprintf("read_s %.6f", read - loaded),
           sprintf("n_rows %d", nrow(X)), sprintf("version %s", as.character(packageVersion("mclust"))))
report <- function(phase, timing, bic) {
  best <- strsplit(names(pickBIC(bic, 1)), ",")[[1]]
  out <- c(sprintf("%s_s %.6f", phase, timing[["elapsed"]]),
           sprintf("%s_best %s %s %.10f", phase, best[1], best[2], max(bic, na.rm = TRUE)))
  for (model in colnames(bic)) {
    out <- c(out, paste(c(sprintf("%s_bic", phase), model,
                          ifelse(is.na(bic[, model]), "NA", sprintf("%.10f", bic[, model]))), collapse = " "))
  }
  out
}
set.seed(0)
timing <- system.time(bic <- mclustBIC(X, G = 1:max_g))
lines <- c(lines, sprintf("first_end %.6f", as.numeric(Sys.time())), report("first", timing, bic))
if (timing[["elapsed"]] <= second_limit) {
  set.seed(1)
  timing <- system.time(bic <- mclustBIC(X, G = 1:max_g))
  lines <- c(lines, report("warm", timing, bic))
}
writeLines(lines, output)
"""


# ---------------------------------------------------------------------------------------------
# Worker side (one fresh Python process per measurement)


class PartTimer:
    """Seconds and XLA compilations in a few functions of bayesgmm, per phase (wrapping module attributes)."""

    def __init__(self, counter):
        self.counter = counter
        self.phase = "import"
        self.seconds: dict = {}

    def _compiles(self) -> int:
        return sum(entry["compiles"] - entry["cache_hits"] for entry in self.counter.counts.values())

    def wrap(self, owner, name: str, part: str) -> None:
        function = getattr(owner, name)

        def timed(*args, **kwargs):
            start, compiles = time.perf_counter(), self._compiles()
            try:
                return function(*args, **kwargs)
            finally:
                parts = self.seconds.setdefault(self.phase, {})
                parts[part] = parts.get(part, 0.0) + time.perf_counter() - start
                parts[f"{part}_compiles"] = parts.get(f"{part}_compiles", 0) + self._compiles() - compiles

        setattr(owner, name, timed)

    def get(self, phase: str) -> dict:
        parts = dict(self.seconds.get(phase, {}))
        # The hierarchical start runs inside the sweeps; report the rest of them apart.
        for suffix in ("", "_compiles"):
            parts[f"sweeps_other{suffix}"] = parts.get(f"sweeps{suffix}", 0) - parts.get(f"hierarchical{suffix}", 0)
        return parts


def run_bayesgmm(X, max_components: int, data_end: float) -> dict:
    counter = sweep.CompileCounter()
    from bayesgmm import GaussianMixtureIC
    from bayesgmm.mixture import driver, selection

    parts = PartTimer(counter)
    parts.wrap(driver, "hierarchical_start", "hierarchical")
    parts.wrap(driver, "fit_sweep", "sweeps")
    parts.wrap(selection.GaussianMixtureIC, "_evaluate", "scoring")
    imported = time.perf_counter()
    result = {"import_s": imported - data_end}
    for phase, seed in zip(PHASES, (0, 1)):
        counter.phase = parts.phase = phase
        start = time.perf_counter()
        model = GaussianMixtureIC(min_components=1, max_components=max_components, covariance_type="all",
                                  random_state=seed).fit(X)
        end = time.perf_counter()
        table = model.results_
        bic, degenerate = {}, {}
        for name, k, value, flag in zip(table["param_covariance_type"], table["param_n_components"],
                                        table["bic"], table["degenerate"]):
            bic.setdefault(str(name), [None] * max_components)[int(k) - 1] = (
                None if math.isnan(value) else float(value))  # NaN: the fit failed
            degenerate.setdefault(str(name), [False] * max_components)[int(k) - 1] = bool(flag)
        result[phase] = {
            "seconds": end - start,
            "best": [model.covariance_type_, model.n_components_],
            "best_bic": model.criterion_,
            "bic": bic,
            "degenerate": degenerate,
            "jax": counter.get(phase),
            "parts": parts.get(phase),
        }
        if phase == "first":
            result["first_end"] = end  # absolute: the parent subtracts its spawn time
    return result


def run_sklearn(X, max_components: int, data_end: float) -> dict:
    from sklearn.mixture import GaussianMixture

    result = {"import_s": time.perf_counter() - data_end}
    for phase, seed in zip(PHASES, (0, 1)):
        outcome = sweep.sweep(GaussianMixture, X, max_components, SKLEARN_TYPES, seed)
        best = min((value, k + 1, name) for name, values in outcome["bic"].items() for k, value in enumerate(values))
        result[phase] = {"seconds": outcome["seconds"], "best": [best[2], best[1]], "best_bic": best[0],
                         "bic": outcome["bic"]}
        if phase == "first":
            result["first_end"] = time.perf_counter()
    return result


def run_worker(library: str, size: str, max_components: int) -> dict:
    X = sweep.make_data(*SIZES[size])
    data_end = time.perf_counter()
    warnings.simplefilter("ignore")
    run = run_bayesgmm if library == "bayesgmm" else run_sklearn
    return {"library": library, "size": size, "data_s": data_end - _START, **run(X, max_components, data_end)}


# ---------------------------------------------------------------------------------------------
# Parent side


def mclust_status() -> tuple[bool, str]:
    """(available, a line saying which R and mclust, or why not)."""
    rscript = shutil.which("Rscript")
    if rscript is None:
        return False, "Rscript is not installed (not on PATH): the R mclust rows are skipped."
    completed = subprocess.run(
        [rscript, "-e", ('if (!requireNamespace("mclust", quietly = TRUE)) quit(status = 3); '
         'cat(R.version.string, "; mclust", as.character(packageVersion("mclust")), '
         '"; BLAS", sessionInfo()$BLAS)')],
        capture_output=True, text=True, check=False,
    )
    if completed.returncode != 0:
        return False, "the R package mclust is not installed: the R mclust rows are skipped."
    return True, completed.stdout.strip()


def spawn_python(worker: dict, environment: dict) -> dict:
    command = [sys.executable, os.path.abspath(__file__), "--worker", json.dumps(worker)]
    start = time.perf_counter()
    completed = subprocess.run(command, capture_output=True, text=True, env=environment, check=False)
    wall = time.perf_counter() - start
    if completed.returncode != 0:
        raise RuntimeError(f"worker {worker} failed ({completed.returncode}):\n{completed.stderr[-4000:]}")
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    result["process_wall_s"] = wall
    if "first_end" in result:
        # perf_counter is the system-wide monotonic clock on Linux, so the two processes' values compare.
        result["fresh_s"] = result.pop("first_end") - start
    return result


def parse_r_output(path: str) -> dict:
    result: dict = {}
    with open(path) as handle:
        text = handle.read()
    for line in text.splitlines():
        key, *values = line.split()
        if key.endswith("_bic"):
            phase = key[: -len("_bic")]
            result.setdefault(phase, {}).setdefault("bic", {})[values[0]] = [
                None if value == "NA" else -float(value) for value in values[1:]]  # bayesgmm's sign
        elif key.endswith("_best"):
            phase = key[: -len("_best")]
            result.setdefault(phase, {}).update(best=[values[0], int(values[1])], best_bic=-float(values[2]))
        elif key in ("first_s", "warm_s"):
            result.setdefault(key[:-2], {})["seconds"] = float(values[0])
        elif key == "version":
            result[key] = values[0]
        else:
            result[key] = float(values[0])
    return result


def spawn_mclust(csv: str, n_features: int, args, environment: dict, folder: str) -> dict:
    script = os.path.join(folder, "mclust_bic.R")
    if not os.path.exists(script):
        with open(script, "w") as handle:
            handle.write(R_SCRIPT)
    output = os.path.join(folder, "mclust_result.txt")
    if os.path.exists(output):
        os.remove(output)
    command = ["Rscript", script, csv, str(n_features), str(args.max_components),
               str(args.mclust_second_limit), output]
    start_epoch, start = time.time(), time.perf_counter()
    try:
        completed = subprocess.run(command, capture_output=True, text=True, env=environment,
                                   timeout=args.mclust_timeout, check=False)
    except subprocess.TimeoutExpired:
        return {"timed_out": True, "process_wall_s": time.perf_counter() - start}
    wall = time.perf_counter() - start
    if completed.returncode != 0:
        raise RuntimeError(f"Rscript failed ({completed.returncode}):\n{completed.stderr[-4000:]}")
    result = parse_r_output(output)
    result["process_wall_s"] = wall
    # R's clock is the wall clock, so the spawn time is taken from the same clock.
    result["fresh_s"] = result.pop("first_end") - start_epoch
    return result


def _median(values):
    values = [value for value in values if value is not None]
    return sweep._median(values) if values else None


def combine(runs: list[dict]) -> dict:
    """One library's rounds at one size: medians, per-round values and the first round's answers kept."""
    done = [run for run in runs if not run.get("timed_out")]
    if not done:
        return {"timed_out": True, "runs": len(runs), "process_wall_s": _median([r["process_wall_s"] for r in runs])}
    combined = {"runs": len(done), "round_fresh_s": [run["fresh_s"] for run in done]}
    for key in ("fresh_s", "import_s", "process_wall_s", "read_s"):
        if key in done[0]:
            combined[key] = _median([run.get(key) for run in done])
    for phase in PHASES:
        with_phase = [run for run in done if phase in run]
        if not with_phase:
            continue
        entry = {"seconds": _median([run[phase]["seconds"] for run in with_phase]),
                 "round_seconds": [run[phase]["seconds"] for run in with_phase],
                 "best": sorted({f"{run[phase]['best'][0]} K={run[phase]['best'][1]}" for run in with_phase}),
                 "answer": with_phase[0][phase]}
        if "jax" in with_phase[0][phase]:
            entry["jax"] = {key: _median([run[phase]["jax"][key] for run in with_phase])
                            for key in ("compiled", "compile_s")}
            entry["parts"] = {key: _median([run[phase]["parts"].get(key, 0.0) for run in with_phase])
                              for part in ("hierarchical", "sweeps_other", "scoring")
                              for key in (part, f"{part}_compiles")}
        combined[phase] = entry
    return combined


def _seconds(row: dict | None, phase: str | None, key: str = "fresh_s"):
    if row is None or row.get("timed_out"):
        return None
    if phase is None:
        return row.get(key)
    return row[phase]["seconds"] if phase in row else None


def _cell(value, fmt=".2f") -> str:
    return "–" if value is None else format(value, fmt)


def _ratio(theirs, ours) -> str:
    return "–" if theirs is None or ours is None or ours <= 0 else f"{theirs / ours:.3g}x"


def _cell_bic(answer: dict, name: str, k: int):
    values = answer.get("bic", {}).get(name)
    return None if values is None or k > len(values) else values[k - 1]


def _bic(value) -> str:
    return "NA" if value is None else f"{value:.2f}"


def markdown(args, results: dict, machine: str, mclust_line: str, load: tuple, elapsed: float,
             skipped: dict) -> str:
    command = "python benchmarks/model_selection.py" + "".join(f" {a}" for a in sys.argv[1:])
    lines = [
        SECTION_BEGIN,
        (f"## Model selection: the 14 x {args.max_components} grid against R mclust and a scikit-learn loop "
        "(issue 14)"),
        "",
        (f"`{command}`, {time.strftime('%Y-%m-%d')}, {elapsed / 60:.1f} min in all; load average "
         f"{load[0]:.1f} at the start, {load[1]:.1f} at the end, median {load[2]:.1f} and at most "
         f"{load[3]:.1f} in {load[4]} samples every 30 s (2 shared cores: above 2, other work "
         "shared the cores with the measured processes)."),
        "",
        f"Machine: {machine}. R: {mclust_line}",
        "",
        (f"bayesgmm: `GaussianMixtureIC(min_components=1, max_components={args.max_components}, "
        "covariance_type='all').fit(X)` (mclust's 14 structures; hierarchical and k-means starts per "
        f"cell). mclust: `mclustBIC(X, G = 1:{args.max_components})`, its defaults (14 models, "
        "hierarchical start on 2,000 rows above that size), timed in R by `system.time`. scikit-learn: "
        "`GaussianMixture(k, covariance_type=t).fit(X).bic(X)` for full, tied, diag, spherical and every "
        "K. Same data (four anisotropic clusters, seed 0; R reads it from a CSV). Every process fresh; "
        f"medians over the rounds shown, libraries alternating. fresh = spawn of the process to the end "
        "of its first call (start, imports, data, compilation); first call = that call alone; warm = "
        "the same call again in the process (random_state=1, set.seed(1)); process wall = spawn to "
        "exit. XLA compiles = JAX backend compilations in that call, compile s their time. "
        f"OpenBLAS environment overrides {'kept' if args.keep_openblas_env else 'removed'}. The stopping "
        "rules differ (mclust: relative change 1e-5, no iteration cap; the others: 1e-3 absolute on the "
        "mean log-likelihood, 100 iterations at most)."),
        "",
        ("| data | library | rounds | fresh s | imports s | first call s | warm s | process wall s "
        "| XLA compiles first / warm | compile s first / warm | chosen (first / warm) |"),
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for size in args.sizes:
        n, d = SIZES[size]
        for library in LIBRARIES:
            if library in skipped.get(size, {}):
                lines.append(f"| N={n:,}, D={d} | {LABELS[library]} | – | – | – | – | – | – | – | – "
                             f"| skipped: {skipped[size][library]} |")
                continue
            row = results[size].get(library)
            if row is None:
                continue
            if row.get("timed_out"):
                lines.append(f"| N={n:,}, D={d} | {LABELS[library]} | {row['runs']} | – | – | – | – "
                             f"| > {row['process_wall_s']:.0f} (stopped) | – | – | stopped at "
                             f"--mclust-timeout {args.mclust_timeout:.0f} s |")
                continue
            first, warm = row["first"], row.get("warm")
            jax_first, jax_warm = first.get("jax"), (warm or {}).get("jax")
            imports = row.get("import_s")
            if library == "mclust":
                imports_text = f"{imports:.2f} (+ CSV {row['read_s']:.2f})"
            else:
                imports_text = _cell(imports)
            lines.append(
                f"| N={n:,}, D={d} | {LABELS[library]} | {row['runs']} | {row['fresh_s']:.2f} | {imports_text} "
                f"| {first['seconds']:.2f} | {_cell(_seconds(row, 'warm'))} | {row['process_wall_s']:.2f} "
                f"| {_cell(jax_first and jax_first['compiled'], '.0f')} / {_cell(jax_warm and jax_warm['compiled'], '.0f')} "
                f"| {_cell(jax_first and jax_first['compile_s'])} / {_cell(jax_warm and jax_warm['compile_s'])} "
                f"| {', '.join(first['best'])} / {', '.join(warm['best']) if warm else 'not run'} |"
            )
    lines += [
        "",
        ("Ratios reference / bayesgmm of the medians (above 1: bayesgmm faster). The targets of issue 14: "
        "warm >= 10x mclust at N=20,000 and 200,000; fresh >= 1x mclust's fresh at N=20,000; >= 10x the "
        "scikit-learn loop at every size."),
        "",
        ("| data | mclust fresh | mclust first call | mclust warm | mclust process wall "
        "| scikit-learn fresh | scikit-learn first call | scikit-learn warm | scikit-learn process wall |"),
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for size in args.sizes:
        n, d = SIZES[size]
        ours = results[size].get("bayesgmm")
        cells = []
        for library in ("mclust", "sklearn"):
            theirs = results[size].get(library)
            for phase, key in ((None, "fresh_s"), ("first", None), ("warm", None), (None, "process_wall_s")):
                cells.append(_ratio(_seconds(theirs, phase, key), _seconds(ours, phase, key)))
        lines.append(f"| N={n:,}, D={d} | " + " | ".join(cells) + " |")

    lines += ["", ("Where bayesgmm's call goes (medians, s): hierarchical = mclust's hierarchical start "
              "(NumPy; once per structure), EM sweeps = the rest of the 14 batched sweeps (k-means "
              "starts, compilation, EM), scoring = every candidate's log-likelihood, responsibilities "
              "and degeneracy checks; each part's seconds include the XLA compilations it triggers "
              "(their count in parentheses; the last column: all of the call's, and their seconds)."), "",
              ("| data | call | total s | hierarchical s (compiles) | EM sweeps s (compiles) "
               "| scoring s (compiles) | XLA compiles (s) |"),
              "|---|---|---:|---:|---:|---:|---:|"]
    for size in args.sizes:
        n, d = SIZES[size]
        ours = results[size].get("bayesgmm")
        for phase in PHASES:
            if ours is None or phase not in ours:
                continue
            entry = ours[phase]
            parts = entry["parts"]
            shares = " | ".join(f"{parts[part]:.2f} ({parts[f'{part}_compiles']:.0f})"
                                for part in ("hierarchical", "sweeps_other", "scoring"))
            lines.append(f"| N={n:,}, D={d} | {phase} | {entry['seconds']:.2f} | {shares} "
                         f"| {entry['jax']['compiled']:.0f} ({entry['jax']['compile_s']:.2f}) |")

    lines += ["", ("Chosen models (first call of the first round; BIC in scikit-learn's sign, lower is better, "
              "mclust's values negated). 'bayesgmm at mclust's cell' and 'mclust at bayesgmm's cell' compare "
              "the two fits of the same model."), "",
              ("| data | bayesgmm chosen (BIC) | mclust chosen (BIC) | scikit-learn loop chosen (BIC) "
              "| bayesgmm at mclust's cell | mclust at bayesgmm's cell |"),
              "|---|---|---|---|---:|---:|"]
    for size in args.sizes:
        n, d = SIZES[size]
        answers = {library: row["first"]["answer"] for library, row in results[size].items()
                   if not row.get("timed_out")}

        def chosen(library, answers=answers):
            answer = answers.get(library)
            if answer is None:
                return "–"
            name, k = answer["best"]
            label = f"{name} ({MCLUST_OF_SKLEARN[name]})" if library == "sklearn" else name
            return f"{label}, K={k} ({answer['best_bic']:.2f})"

        ours, theirs = answers.get("bayesgmm"), answers.get("mclust")
        at_mclust = at_ours = "–"
        if ours is not None and theirs is not None:
            at_mclust = _bic(_cell_bic(ours, *theirs["best"]))
            at_ours = _bic(_cell_bic(theirs, *ours["best"]))
        lines.append(f"| N={n:,}, D={d} | {chosen('bayesgmm')} | {chosen('mclust')} | {chosen('sklearn')} "
                     f"| {at_mclust} | {at_ours} |")
    lines += ["", "Per-round fresh s: " + "; ".join(
        f"{size} {SHORT[library]} " + "/".join(f"{t:.2f}" for t in row["round_fresh_s"])
        for size in args.sizes for library, row in results[size].items() if not row.get("timed_out")
    ) + "."]
    lines.append(SECTION_END)
    return "\n".join(lines)


class LoadSampler:
    """The 1-minute load average every ``interval`` seconds while the measurements run.

    The machine is shared: the load at the start and end alone misses other
    sessions' work in between, which slows every library.
    """

    def __init__(self, interval: float = 30.0):
        self.samples = [os.getloadavg()[0]]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(interval,), daemon=True)
        self._thread.start()

    def _run(self, interval: float) -> None:
        while not self._stop.wait(interval):
            self.samples.append(os.getloadavg()[0])

    def stop(self) -> tuple:
        """(at the start, at the end, median, largest) of the samples."""
        self._stop.set()
        self.samples.append(os.getloadavg()[0])
        return self.samples[0], self.samples[-1], sweep._median(self.samples), max(self.samples)


def write_csv(path: str, X) -> None:
    import numpy as np

    np.savetxt(path, X, delimiter=",", fmt="%.17g")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default=",".join(SIZES), help=f"comma-separated, of {', '.join(SIZES)}")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (median)")
    parser.add_argument("--large-rounds", type=int, default=None,
                        help="rounds of the large size (default --rounds): its processes run in the first ones")
    parser.add_argument("--max-components", type=int, default=9, help="the grid's K = 1..this")
    parser.add_argument("--libraries", default=",".join(LIBRARIES), help="comma-separated, of bayesgmm, mclust, sklearn")
    parser.add_argument("--mclust-second-limit", type=float, default=360.0,
                        help="skip mclust's warm call when its first call took longer (s)")
    parser.add_argument("--mclust-timeout", type=float, default=1500.0,
                        help="stop an Rscript process running longer than this (s)")
    parser.add_argument("--write", nargs="?", const=RESULTS, metavar="PATH",
                        help=f"replace (or append) this script's section of PATH (default {RESULTS})")
    parser.add_argument("--keep-openblas-env", action="store_true")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker = json.loads(args.worker)
        if worker.pop("kind") == "machine":
            result = {"machine": sweep.machine_description()}
        else:
            result = run_worker(**worker)
        print(json.dumps(result))
        return

    args.sizes = [size for size in args.sizes.split(",") if size]
    libraries = [library for library in args.libraries.split(",") if library]
    unknown = [size for size in args.sizes if size not in SIZES] + [
        library for library in libraries if library not in LIBRARIES]
    if unknown:
        parser.error(f"unknown sizes or libraries {unknown}; choose from {list(SIZES)}, {list(LIBRARIES)}")
    if "bayesgmm" not in libraries:
        parser.error("bayesgmm is the reference of every ratio; keep it in --libraries")
    environment = sweep.child_environment(args.keep_openblas_env)
    skipped: dict = {}
    mclust_line = "not asked for (--libraries)."
    if "mclust" in libraries:
        available, mclust_line = mclust_status()
        print(f"# R mclust: {mclust_line}", file=sys.stderr, flush=True)
        if not available:
            libraries.remove("mclust")
            skipped = {size: {"mclust": mclust_line} for size in args.sizes}
    start, load = time.perf_counter(), LoadSampler()
    folder = tempfile.mkdtemp(prefix="bayesgmm-model-selection-")
    runs = {size: {library: [] for library in libraries} for size in args.sizes}
    try:
        csvs = {}
        if "mclust" in libraries:
            for size in args.sizes:
                csvs[size] = os.path.join(folder, f"{size}.csv")
                write_csv(csvs[size], sweep.make_data(*SIZES[size]))
        rounds = {size: args.rounds if size != "large" or args.large_rounds is None else args.large_rounds
                  for size in args.sizes}
        for round_index in range(max(rounds.values())):
            for size in [size for size in args.sizes if round_index < rounds[size]]:
                for library in libraries:
                    if library == "mclust":
                        result = spawn_mclust(csvs[size], SIZES[size][1], args, environment, folder)
                    else:
                        result = spawn_python({"kind": "run", "library": library, "size": size,
                                               "max_components": args.max_components}, environment)
                    runs[size][library].append(result)
                    shown = {key: value for key, value in result.items() if key not in PHASES}
                    for phase in PHASES:
                        if phase in result:
                            shown[phase] = {key: value for key, value in result[phase].items()
                                            if key not in ("bic", "degenerate")}
                    print(f"# round {round_index + 1} {size} {library}: {json.dumps(shown)}",
                          file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    results = {size: {library: combine(rows) for library, rows in by_library.items()}
               for size, by_library in runs.items()}
    machine = spawn_python({"kind": "machine"}, environment)["machine"]
    section = markdown(args, results, machine, mclust_line, load.stop() + (len(load.samples),),
                       time.perf_counter() - start, skipped)
    print(section)
    if args.write:
        import _markdown

        _markdown.write_section(args.write, section, SECTION_BEGIN, SECTION_END)
        print(f"\nwrote the section to {args.write}", file=sys.stderr)


if __name__ == "__main__":
    main()
