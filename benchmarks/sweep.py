"""Time a model-selection sweep (K x covariance type, by BIC) in fresh processes.

Usage::

    python benchmarks/sweep.py                          # both sizes, 3 rounds, GridSearchCV
    python benchmarks/sweep.py --persistent-cache /tmp/bayesgmm-jax-cache
    python benchmarks/sweep.py --persistent-cache /tmp/bayesgmm-jax-cache --write
    python benchmarks/sweep.py --rounds 1 --sizes small --max-components 3 --grid-search-jobs 1

Method
------
* The sweep a user writes to choose a model: one
  ``GaussianMixture(k, covariance_type=t, random_state=s).fit(X).bic(X)``
  per cell of the grid K = 1..9 x covariance_type in (full, tied, diag,
  spherical), 36 fits with the defaults (k-means start, one restart,
  ``tol=1e-3``, ``max_iter=100``), for ``bayesgmm.GaussianMixture`` and
  ``sklearn.mixture.GaussianMixture``.
* Data (NumPy only, seed 0, no network): four anisotropic full-covariance
  Gaussian clusters (weights 0.4, 0.3, 0.2, 0.1), at two sizes, small
  (N=1,000, D=4) and large (N=20,000, D=8).
* Every measurement runs in a fresh Python process (this script in worker
  mode), so imports and JAX's tracing and compilation are included.
  **fresh**: from the parent's spawn of the process to the end of its first
  sweep (``random_state=0``): interpreter start, imports, data, the sweep,
  what a user waits for in a new script or notebook. **again**: the same
  sweep once more in the same process with ``random_state=1``. **process
  wall**: the whole process, as the parent sees it (spawn to exit).
* The libraries alternate process by process (bayesgmm, scikit-learn,
  bayesgmm, ...) for ``--rounds`` rounds and every figure is the median over
  the rounds: the (shared, virtual) machine's speed drifts over minutes, and
  alternating exposes both libraries to the same drift. The ratios are
  scikit-learn / bayesgmm of those medians (above 1: bayesgmm faster).
* Compilations: in bayesgmm's processes a ``jax.monitoring`` listener counts
  the events ``/jax/core/compile/backend_compile_duration`` (one per XLA
  compilation request that missed JAX's in-memory caches; the event also
  fires when the program is read from the persistent cache, so the hits,
  event ``/jax/compilation_cache/cache_hits``, are subtracted and given
  separately) and sums their seconds, for the first and the second sweep.
* ``--persistent-cache DIR`` adds a row per size: bayesgmm's fresh process
  with JAX's persistent compilation cache on
  (``jax_compilation_cache_dir=DIR``,
  ``jax_persistent_cache_min_compile_time_secs=0.1``). One process per size
  fills the cache before the rounds (its times are printed but not in the
  medians); the rounds then read it. Programs that compile in under 0.1 s
  are not stored and are still compiled. ``JAX_COMPILATION_CACHE_*`` and
  ``JAX_PERSISTENT_CACHE_*`` variables are removed from the measured
  processes' environment, so no other row uses a cache.
* GridSearchCV: ``GridSearchCV(GaussianMixture(), {"n_components": [1, 2, 3,
  4], "covariance_type": [full, tied, diag, spherical]}, scoring=-BIC)``
  (default 5-fold CV: 80 fits and the refit) on ``load_iris().data``, run
  twice in one fresh process; the second run is the one timed ("second
  run"), the first is shown too. With ``n_jobs=1`` and ``n_jobs=2``
  (joblib's loky processes: each worker process imports the library and,
  for bayesgmm, compiles on its own; compilations are counted in the main
  process only). ``--max-components`` below 4 and ``--covariance-types``
  shrink this grid too (for quick checks).
* The bayesgmm measured is the one in this checkout (its directory is put
  first on ``sys.path``).
* OpenBLAS: this workplace sets OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE, which
  slow a current NumPy (and so scikit-learn) down; they are removed from the
  measured processes' environment (``--keep-openblas-env`` keeps them).
"""

from __future__ import annotations

import time

_START = time.perf_counter()  # a worker's fresh time counts from here (and from its spawn)

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import warnings  # noqa: E402

REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPOSITORY)

RESULTS = os.path.join(REPOSITORY, "benchmarks", "RESULTS.md")
SECTION_BEGIN = "<!-- sweep.py: begin -->"
SECTION_END = "<!-- sweep.py: end -->"

SIZES = {"small": (1_000, 4), "large": (20_000, 8)}
COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")
LIBRARIES = ("bayesgmm", "sklearn")
LABELS = {"bayesgmm": "bayesgmm", "sklearn": "scikit-learn", "cached": "bayesgmm, persistent cache (filled)",
          "filling": "bayesgmm, persistent cache (filling run; one run, not a median)"}
GRID_MAX_COMPONENTS = 4  # GridSearchCV's n_components = 1..4 (fewer if --max-components is smaller)
COMPILE_EVENT = "backend_compile"  # '/jax/core/compile/backend_compile_duration' in jax 0.10
CACHE_HIT_EVENT = "/jax/compilation_cache/cache_hits"


# ---------------------------------------------------------------------------------------------
# Worker side (one fresh process per measurement)


def make_data(n_samples: int, n_features: int, seed: int = 0):
    """Four anisotropic Gaussian clusters, shuffled (NumPy only)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    weights = np.array([0.4, 0.3, 0.2, 0.1])
    counts = rng.multinomial(n_samples, weights)
    parts = []
    for count in counts:
        mean = rng.normal(0.0, 6.0, n_features)
        mixing = rng.normal(size=(n_features, n_features)) * rng.uniform(0.3, 2.0, n_features)
        covariance = mixing @ mixing.T / n_features + 0.05 * np.eye(n_features)
        parts.append(mean + rng.standard_normal((count, n_features)) @ np.linalg.cholesky(covariance).T)
    X = np.concatenate(parts)
    return X[rng.permutation(n_samples)]


class CompileCounter:
    """Counts JAX's backend compilations (and persistent-cache hits) per phase."""

    def __init__(self):
        import jax.monitoring

        self.phase = "import"
        self.counts: dict = {}
        jax.monitoring.register_event_duration_secs_listener(self._on_duration)
        jax.monitoring.register_event_listener(self._on_event)

    def _entry(self):
        return self.counts.setdefault(self.phase, {"compiles": 0, "compile_s": 0.0, "cache_hits": 0})

    def _on_duration(self, event, duration, **kwargs):
        if COMPILE_EVENT in event:
            entry = self._entry()
            entry["compiles"] += 1
            entry["compile_s"] += duration

    def _on_event(self, event, **kwargs):
        if event == CACHE_HIT_EVENT:
            self._entry()["cache_hits"] += 1

    def get(self, phase: str) -> dict:
        entry = dict(self.counts.get(phase, {"compiles": 0, "compile_s": 0.0, "cache_hits": 0}))
        # A read from the persistent cache is reported as a backend compilation too.
        entry["compiled"] = entry["compiles"] - entry["cache_hits"]
        return entry


def _setup(library: str, cache: str | None):
    """Import the library (after the compilation counter); return (GaussianMixture, counter)."""
    counter = None
    if library == "bayesgmm":
        if cache:
            import jax

            jax.config.update("jax_compilation_cache_dir", cache)
            jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.1)
        counter = CompileCounter()
        from bayesgmm import GaussianMixture
    else:
        from sklearn.mixture import GaussianMixture
    return GaussianMixture, counter


def sweep(GaussianMixture, X, max_components: int, covariance_types, seed: int) -> dict:
    """The user's loop; returns {"seconds", "best", "bic"}."""
    start = time.perf_counter()
    bic = {
        covariance_type: [
            float(GaussianMixture(k, covariance_type=covariance_type, random_state=seed).fit(X).bic(X))
            for k in range(1, max_components + 1)
        ]
        for covariance_type in covariance_types
    }
    seconds = time.perf_counter() - start
    best = min(((value, k + 1, t) for t, values in bic.items() for k, value in enumerate(values)))
    return {"seconds": seconds, "best": f"K={best[1]} {best[2]}", "bic": bic}


def run_sweep_worker(library: str, size: str, max_components: int, covariance_types, cache) -> dict:
    X = make_data(*SIZES[size])
    data_end = time.perf_counter()
    GaussianMixture, counter = _setup(library, cache)
    import_end = time.perf_counter()
    warnings.simplefilter("ignore")
    result = {"library": library, "size": size, "data_s": data_end - _START, "import_s": import_end - data_end}
    for phase, seed in (("first", 0), ("again", 1)):
        if counter is not None:
            counter.phase = phase
        outcome = sweep(GaussianMixture, X, max_components, covariance_types, seed)
        result[phase] = outcome
        if phase == "first":
            result["first_end"] = time.perf_counter()  # absolute: the parent subtracts its spawn time
        if counter is not None:
            result[phase]["jax"] = counter.get(phase)
    if counter is not None:
        result["import_jax"] = counter.get("import")
    result["in_process_fresh_s"] = result["first_end"] - _START
    return result


def negative_bic(estimator, X, y=None):
    """GridSearchCV scorer: higher is better, so -BIC."""
    return -estimator.bic(X)


def run_grid_worker(library: str, n_jobs: int, max_components: int, covariance_types) -> dict:
    from sklearn.datasets import load_iris
    from sklearn.model_selection import GridSearchCV

    X = load_iris().data
    grid = {"n_components": list(range(1, max_components + 1)), "covariance_type": list(covariance_types)}
    GaussianMixture, counter = _setup(library, None)
    warnings.simplefilter("ignore")
    result = {"library": library, "n_jobs": n_jobs}
    for phase in ("first", "second"):
        if counter is not None:
            counter.phase = phase
        search = GridSearchCV(GaussianMixture(), grid, scoring=negative_bic, n_jobs=n_jobs)
        start = time.perf_counter()
        search.fit(X)
        result[phase] = {"seconds": time.perf_counter() - start,
                         "best": f"K={search.best_params_['n_components']} {search.best_params_['covariance_type']}"}
        if counter is not None:
            result[phase]["jax"] = counter.get(phase)
    return result


def machine_description() -> str:
    from _timing import machine_description as describe

    return describe()


# ---------------------------------------------------------------------------------------------
# Parent side


def child_environment(keep_openblas: bool) -> dict:
    from _timing import OPENBLAS_VARIABLES

    # The persistent-cache rows set the cache in the worker; no other row may pick one up from here.
    environment = {k: v for k, v in os.environ.items()
                   if not k.startswith(("JAX_COMPILATION_CACHE", "JAX_PERSISTENT_CACHE"))}
    if keep_openblas:
        return environment
    return {k: v for k, v in environment.items() if k not in OPENBLAS_VARIABLES}


def spawn(worker: dict, environment: dict) -> dict:
    """Run this script as a worker; return its JSON result with the parent's timings added."""
    command = [sys.executable, os.path.abspath(__file__), "--worker", json.dumps(worker)]
    start = time.perf_counter()
    completed = subprocess.run(command, capture_output=True, text=True, env=environment)
    wall = time.perf_counter() - start
    if completed.returncode != 0:
        raise RuntimeError(f"worker {worker} failed ({completed.returncode}):\n{completed.stderr[-4000:]}")
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    result["process_wall_s"] = wall
    if "first_end" in result:
        # perf_counter is the system-wide monotonic clock on Linux, so the two processes' values compare.
        result["fresh_s"] = result.pop("first_end") - start
    return result


def _median(values):
    import numpy as np

    return float(np.median(values))


def combine(runs: list[dict]) -> dict:
    """One configuration's rounds: medians of the times and compile counts, per-round values kept."""
    combined = {"runs": len(runs)}
    for key in ("fresh_s", "import_s", "process_wall_s"):
        if key in runs[0]:
            combined[key] = _median([run[key] for run in runs])
    for phase in ("first", "again", "second"):
        if phase not in runs[0]:
            continue
        combined[phase] = {"seconds": _median([run[phase]["seconds"] for run in runs]),
                           "best": sorted({run[phase]["best"] for run in runs}),
                           "round_seconds": [run[phase]["seconds"] for run in runs]}
        if "jax" in runs[0][phase]:
            combined[phase]["jax"] = {key: _median([run[phase]["jax"][key] for run in runs])
                                      for key in ("compiled", "compile_s", "cache_hits")}
    if "fresh_s" in runs[0]:
        combined["round_fresh_s"] = [run["fresh_s"] for run in runs]
    return combined


def _jax_cell(phase: dict, key: str, fmt: str) -> str:
    return format(phase["jax"][key], fmt) if "jax" in phase else "–"


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b > 0 else "–"


def markdown(args, sweeps: dict, fills: dict, grids: dict, machine: str, load: tuple, elapsed: float,
             cache_entries: tuple | None) -> str:
    command = "python benchmarks/sweep.py" + "".join(f" {a}" for a in sys.argv[1:])
    grid_components = min(GRID_MAX_COMPONENTS, args.max_components)
    grid_text = f"K = 1..{args.max_components} x {', '.join(args.covariance_types)}"
    cells = args.max_components * len(args.covariance_types)
    lines = [
        SECTION_BEGIN,
        f"## Model-selection sweep in fresh processes ({grid_text}, by BIC)",
        "",
        f"`{command}`, {time.strftime('%Y-%m-%d')}, {elapsed / 60:.1f} min in all; load average "
        f"{load[0]:.1f} at the start, {load[1]:.1f} at the end.",
        "",
        f"Machine: {machine}",
        "",
        f"Each sweep: `GaussianMixture(k, covariance_type=t, random_state=s).fit(X).bic(X)` for the "
        f"{cells} cells (defaults otherwise), on four anisotropic clusters (seed 0). Each process is "
        f"fresh; figures are medians over {args.rounds} round{'s' if args.rounds != 1 else ''} in which the libraries' processes "
        "alternate. fresh = spawn of the process to the end of its first sweep (interpreter, imports, "
        "data, compilation included); imports = library import; again = the same sweep again in the "
        "same process (random_state=1); process wall = spawn to exit. XLA compiles = JAX backend "
        "compilations during that sweep (persistent-cache reads excluded; hits shown apart), compile s "
        "= their summed time. OpenBLAS environment overrides "
        f"{'kept' if args.keep_openblas_env else 'removed'} in the measured processes.",
        "",
        "| data | library | fresh s | imports s | first sweep s | again s | process wall s "
        "| XLA compiles first / again | compile s first / again | cache hits first | chosen (first / again) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for size in args.sizes:
        n, d = SIZES[size]
        rows = [(key, sweeps[size][key]) for key in ("bayesgmm", "sklearn", "cached") if key in sweeps[size]]
        if size in fills:
            rows.append(("filling", fills[size]))
        for key, row in rows:
            first, again = row["first"], row["again"]
            lines.append(
                f"| N={n:,}, D={d} | {LABELS[key]} | {row['fresh_s']:.2f} | {row['import_s']:.2f} "
                f"| {first['seconds']:.2f} | {again['seconds']:.2f} | {row['process_wall_s']:.2f} "
                f"| {_jax_cell(first, 'compiled', '.0f')} / {_jax_cell(again, 'compiled', '.0f')} "
                f"| {_jax_cell(first, 'compile_s', '.2f')} / {_jax_cell(again, 'compile_s', '.2f')} "
                f"| {_jax_cell(first, 'cache_hits', '.0f')} "
                f"| {', '.join(first['best'])} / {', '.join(again['best'])} |"
            )
    lines += [
        "",
        "Ratios scikit-learn / bayesgmm (above 1: bayesgmm faster):",
        "",
        "| data | fresh | first sweep | again | process wall | fresh, bayesgmm with filled persistent cache |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for size in args.sizes:
        n, d = SIZES[size]
        ours, theirs = sweeps[size]["bayesgmm"], sweeps[size]["sklearn"]
        cached = sweeps[size].get("cached")
        lines.append(
            f"| N={n:,}, D={d} | {_ratio(theirs['fresh_s'], ours['fresh_s'])} "
            f"| {_ratio(theirs['first']['seconds'], ours['first']['seconds'])} "
            f"| {_ratio(theirs['again']['seconds'], ours['again']['seconds'])} "
            f"| {_ratio(theirs['process_wall_s'], ours['process_wall_s'])} "
            f"| {_ratio(theirs['fresh_s'], cached['fresh_s']) if cached else '–'} |"
        )
    lines += ["", "Per-round fresh s: " + "; ".join(
        f"{size} {LABELS[key]} " + "/".join(f"{t:.2f}" for t in row["round_fresh_s"])
        for size in args.sizes for key, row in sweeps[size].items()
    ) + "."]
    if cache_entries is not None:
        lines += ["", f"Persistent cache `{args.persistent_cache}`: {cache_entries[0]} entries before "
                  f"the filling runs, {cache_entries[1]} after them, {cache_entries[2]} at the end."]
    if grids:
        lines += [
            "",
            f"GridSearchCV(GaussianMixture(), {{n_components: 1..{grid_components}, covariance_type: "
            f"{', '.join(args.covariance_types)}}}, scoring=-BIC) on load_iris().data (150 x 4; 5-fold CV: "
            f"{5 * grid_components * len(args.covariance_types)} fits + refit), run twice in a fresh "
            "process; second run = the timed one. Compiles are counted in the main process only "
            "(with n_jobs=2 the fits run in loky worker processes).",
            "",
            "| n_jobs | library | first run s | second run s | process wall s | XLA compiles first / second "
            "| chosen |",
            "|---:|---|---:|---:|---:|---:|---|",
        ]
        for n_jobs in args.grid_search_jobs:
            for library in LIBRARIES:
                row = grids[n_jobs][library]
                first, second = row["first"], row["second"]
                lines.append(
                    f"| {n_jobs} | {LABELS[library]} | {first['seconds']:.2f} | {second['seconds']:.2f} "
                    f"| {row['process_wall_s']:.2f} "
                    f"| {_jax_cell(first, 'compiled', '.0f')} / {_jax_cell(second, 'compiled', '.0f')} "
                    f"| {', '.join(second['best'])} |"
                )
        lines += ["", "Ratios scikit-learn / bayesgmm, GridSearchCV: " + "; ".join(
            f"n_jobs={n_jobs}: second run "
            f"{_ratio(grids[n_jobs]['sklearn']['second']['seconds'], grids[n_jobs]['bayesgmm']['second']['seconds'])}, "
            f"first run {_ratio(grids[n_jobs]['sklearn']['first']['seconds'], grids[n_jobs]['bayesgmm']['first']['seconds'])}, "
            f"process wall {_ratio(grids[n_jobs]['sklearn']['process_wall_s'], grids[n_jobs]['bayesgmm']['process_wall_s'])}"
            for n_jobs in args.grid_search_jobs
        ) + "."]
    lines.append(SECTION_END)
    return "\n".join(lines)


def _entries(directory: str) -> int:
    return len(os.listdir(directory)) if os.path.isdir(directory) else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default=",".join(SIZES), help=f"comma-separated, of {', '.join(SIZES)}")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (median)")
    parser.add_argument("--max-components", type=int, default=9, help="the grid's K = 1..this")
    parser.add_argument("--covariance-types", default=",".join(COVARIANCE_TYPES), help="comma-separated")
    parser.add_argument("--persistent-cache", metavar="DIR",
                        help="add a bayesgmm row with JAX's persistent compilation cache in DIR (filled first)")
    parser.add_argument("--grid-search-jobs", default="1,2",
                        help="comma-separated n_jobs of the GridSearchCV case; empty to skip it")
    parser.add_argument("--write", nargs="?", const=RESULTS, metavar="PATH",
                        help=f"replace (or append) this script's section of PATH (default {RESULTS})")
    parser.add_argument("--keep-openblas-env", action="store_true")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker = json.loads(args.worker)
        kind = worker.pop("kind")
        if kind == "sweep":
            result = run_sweep_worker(**worker)
        elif kind == "grid":
            result = run_grid_worker(**worker)
        else:
            result = {"machine": machine_description()}
        print(json.dumps(result))
        return

    args.sizes = [size for size in args.sizes.split(",") if size]
    args.covariance_types = [t for t in args.covariance_types.split(",") if t]
    args.grid_search_jobs = [int(n) for n in args.grid_search_jobs.split(",") if n]
    unknown = [size for size in args.sizes if size not in SIZES]
    if unknown:
        parser.error(f"unknown sizes {unknown}; choose from {list(SIZES)}")
    environment = child_environment(args.keep_openblas_env)
    grid_components = min(GRID_MAX_COMPONENTS, args.max_components)
    start, load_start = time.perf_counter(), os.getloadavg()[0]

    def sweep_worker(library, size, cache=None):
        return {"kind": "sweep", "library": library, "size": size, "max_components": args.max_components,
                "covariance_types": args.covariance_types, "cache": cache}

    def report(label, result):
        shown = {k: v for k, v in result.items() if k not in ("first", "again", "second")}
        for phase in ("first", "again", "second"):
            if phase in result:
                shown[phase] = {k: v for k, v in result[phase].items() if k != "bic"}
        print(f"# {label}: {json.dumps(shown)}", file=sys.stderr, flush=True)

    fills, cache_entries = {}, None
    if args.persistent_cache:
        cache = os.path.abspath(args.persistent_cache)
        os.makedirs(cache, exist_ok=True)
        before = _entries(cache)
        for size in args.sizes:
            fills[size] = combine([spawn(sweep_worker("bayesgmm", size, cache), environment)])
            report(f"{size} cache filling", fills[size])
        cache_entries = (before, _entries(cache))

    runs = {size: {"bayesgmm": [], "sklearn": [], **({"cached": []} if args.persistent_cache else {})}
            for size in args.sizes}
    grid_runs = {n_jobs: {library: [] for library in LIBRARIES} for n_jobs in args.grid_search_jobs}
    for round_index in range(args.rounds):
        for size in args.sizes:
            for key in runs[size]:
                library = "bayesgmm" if key == "cached" else key
                cache = os.path.abspath(args.persistent_cache) if key == "cached" else None
                result = spawn(sweep_worker(library, size, cache), environment)
                runs[size][key].append(result)
                report(f"round {round_index + 1} {size} {key}", result)
        for n_jobs in args.grid_search_jobs:
            for library in LIBRARIES:
                result = spawn({"kind": "grid", "library": library, "n_jobs": n_jobs,
                                "max_components": grid_components, "covariance_types": args.covariance_types},
                               environment)
                grid_runs[n_jobs][library].append(result)
                report(f"round {round_index + 1} GridSearchCV n_jobs={n_jobs} {library}", result)
    sweeps = {size: {key: combine(results) for key, results in by_key.items()} for size, by_key in runs.items()}
    grids = {n_jobs: {library: combine(results) for library, results in by_library.items()}
             for n_jobs, by_library in grid_runs.items()}
    if cache_entries is not None:
        cache_entries = cache_entries + (_entries(os.path.abspath(args.persistent_cache)),)
    machine = spawn({"kind": "machine"}, environment)["machine"]
    section = markdown(args, sweeps, fills, grids, machine, (load_start, os.getloadavg()[0]),
                       time.perf_counter() - start, cache_entries)
    print(section)
    if args.write:
        import _markdown

        _markdown.write_section(args.write, section, SECTION_BEGIN, SECTION_END)
        print(f"\nwrote the section to {args.write}", file=sys.stderr)


if __name__ == "__main__":
    main()
