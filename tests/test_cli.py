"""The ``bayesgmm`` command and its CSV reader.

A few tests run the real command in a subprocess (entry point, exit status,
no traceback); the many error cases call ``main`` in-process, which is the
same code without the cost of starting Python and JAX each time.
"""

import csv
import json
import os
import re
import shutil
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import make_blobs

import bayesgmm
from bayesgmm import cli
from bayesgmm._io import CSVError, read_csv, read_header


def _write_points(path, n_samples=120, header=True, label=True, random_state=3):
    X, y = make_blobs(n_samples=n_samples, centers=2, random_state=random_state)
    with open(path, "w") as handle:
        if header:
            handle.write("x,y,label\n" if label else "x,y\n")
        for (a, b), c in zip(X, y):
            handle.write(f"{a},{b},class{c}\n" if label else f"{a},{b}\n")
    return X


@pytest.fixture
def points(tmp_path):
    path = tmp_path / "points.csv"
    X = _write_points(path)
    return path, X


# The package under test, not whichever copy is installed, in the subprocesses.
_ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(
    [str(Path(cli.__file__).resolve().parents[1])]
    + [part for part in os.environ.get("PYTHONPATH", "").split(os.pathsep) if part])}


def _run(*args, cwd):
    return subprocess.run(
        [sys.executable, "-m", "bayesgmm.cli", *map(str, args)],
        cwd=cwd, capture_output=True, text=True, timeout=120, env=_ENV,
    )


def _read_labels(path):
    with open(path) as handle:
        rows = list(csv.DictReader(handle))
    return rows


# ---------------------------------------------------------------- subprocess


def test_console_script_is_declared():
    (script,) = [e for e in entry_points(group="console_scripts") if e.name == "bayesgmm"]
    assert script.value == "bayesgmm.cli:run"
    assert script.load() is cli.run


def test_the_command_keeps_argparse_exit_statuses(tmp_path):
    # run() leaves by os._exit: the status of a usage error and of --help
    # must still be argparse's, and its message must reach standard error.
    usage = _run("fit", "x.csv", "-k", "zero", cwd=tmp_path)
    assert usage.returncode == 2 and "'zero' is not a whole number" in usage.stderr
    assert _run("--version", cwd=tmp_path).returncode == 0


def test_fit_predict_and_no_overwrite_end_to_end(points, tmp_path):
    path, X = points
    result = _run("fit", path, "--components", "2", "--columns", "x,y", "--out", "fit2",
                  cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # no warning: the estimators get the columns by name
    assert "Fitted 2 component(s) (full covariances) by EM to 120 rows x 2 column(s)" in result.stdout
    assert "BIC" in result.stdout and "converged" in result.stdout
    out = tmp_path / "fit2"
    assert sorted(p.name for p in out.iterdir()) == ["labels.csv", "model.npz", "params.json",
                                                      "plot.png"]
    rows = _read_labels(out / "labels.csv")
    assert len(rows) == 120 and list(rows[0]) == ["line", "label", "p_0", "p_1"]
    assert rows[0]["line"] == "2"  # the header is line 1 of the file
    proba = np.array([[float(r["p_0"]), float(r["p_1"])] for r in rows])
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    np.testing.assert_array_equal(proba.argmax(axis=1), [int(r["label"]) for r in rows])
    params = json.loads((out / "params.json").read_text())
    assert params["columns"] == ["x", "y"] and params["covariance_type"] == "full"
    assert np.shape(params["means"]) == (2, 2) and np.shape(params["covariances"]) == (2, 2, 2)
    assert (out / "plot.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # A second run would replace the user's files: refused, nothing touched.
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    again = _run("fit", path, "-k", "2", "--columns", "x,y", "--out", "fit2", cwd=tmp_path)
    assert again.returncode == 1
    assert "--force" in again.stderr and "Traceback" not in again.stderr
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before

    # The saved model picks its columns by name and reproduces the labels.
    predicted = _run("predict", out / "model.npz", path, cwd=tmp_path)
    assert predicted.returncode == 0, predicted.stderr
    assert list(csv.DictReader(predicted.stdout.splitlines())) == rows


def test_bad_file_gives_one_line_and_status_1(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n3,x\n")
    result = _run("fit", bad, "-k", "1", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"bayesgmm: error: {bad}: row 3, column 2 ('b'): 'x' is not a number."
    )
    assert result.stdout == "" and not any(p.is_dir() for p in tmp_path.iterdir())


def test_help_reads_well(tmp_path):
    result = _run("--help", cwd=tmp_path)
    assert result.returncode == 0
    for command in ("fit", "choose-k", "predict", "impute", "demo"):
        assert command in result.stdout
    assert "fill in the missing values of a CSV file with a saved model" in result.stdout
    assert "examples:" in result.stdout


# ---------------------------------------------------------------- in-process


@pytest.mark.parametrize(
    "content, message",
    [
        ("", r"bad\.csv: the file is empty"),
        ("\n\n  \n", r"bad\.csv: the file is empty"),
        ("x,y\n", r"bad\.csv: only a header \(row 1\), no data rows"),
        ("x,y\n1,2\n3,4,5\n", r"bad\.csv: row 3: 3 fields where row 1 has 2 \(column 3 is one field too many\)"),
        ("x,y\n1,2\n3\n", r"bad\.csv: row 3: 1 fields where row 1 has 2 \(column 2 \('y'\) is missing\)"),
        ("1,2\n3,abc\n", r"bad\.csv: row 2, column 2: 'abc' is not a number"),
        ("x,y\n1,2\n\n3,nan\n", r"bad\.csv: row 4, column 2 \('y'\): missing value \('nan'\); fill or "
         r"remove the row, pass --missing marginalize to treat it as missing at random, or drop "
         r"such rows with --drop-missing\.$"),
        ("x,y\n1,2\n3,NA\n", r"row 3, column 2 \('y'\): missing value \('NA'\)"),
        ("x,y\n1,2\n1_000,2\n", r"bad\.csv: row 3, column 1 \('x'\): '1_000' is not a number "
         r"\(write it without '_'\)\.$"),
        ("x,y,x\n1,2,3\n", r"bad\.csv: row 1: the header names two columns 'x' \(columns 1 and 3\); "
         r"rename one of them\.$"),
        ("x,y\n1,inf\n", r"bad\.csv: row 2, column 2 \('y'\): infinite value"),
        ("x,y\n1,2\n,4\n", r"bad\.csv: row 3, column 1 \('x'\): empty cell"),
        (b"x,y\n1,\xff\xfe\n", r"bad\.csv: row 2, column 2: not UTF-8 text \(byte 0xff\)"),
    ],
    ids=["empty", "blank", "header-only", "ragged-long", "ragged-short", "not-numeric", "nan",
         "NA", "digit-separator", "duplicate-name", "inf", "empty-cell", "binary"],
)
def test_bad_files_name_file_row_and_column(tmp_path, capsys, content, message):
    bad = tmp_path / "bad.csv"
    if isinstance(content, bytes):
        bad.write_bytes(content)
    else:
        bad.write_text(content)
    assert cli.main(["fit", str(bad), "-k", "1", "--out", str(tmp_path / "out")]) == 1
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1 and captured.err.startswith("bayesgmm: error: ")
    assert re.search(message, captured.err), captured.err
    assert not (tmp_path / "out").exists()  # nothing is written for a bad input


@pytest.mark.parametrize(
    "args, message",
    [
        (["fit", "{missing}", "-k", "2"], r"missing\.csv: no such file"),
        (["fit", "{dir}", "-k", "2"], r"is a directory, not a CSV file"),
        (["fit", "{points}", "-k", "2", "--columns", "x,z"],
         r"no column 'z' .*the columns are 'x', 'y', 'label'"),
        (["fit", "{points}", "-k", "2", "--columns", "x,x"], r"selected twice"),
        (["fit", "{points}", "-k", "2"], r"points\.csv: row 2, column 3 \('label'\): 'class1' is not "
         r"a number; leave text columns out with --columns \(for example --columns x,y\)\.$"),
        (["fit", "{points}", "-k", "200", "--columns", "1,2"], r"120 data row\(s\) cannot support 200"),
        (["predict", "{missing}", "{points}"], r"missing\.csv: no such model file"),
        (["predict", "{points}", "{points}"], r"points\.csv: not a bayesgmm model file"),
        (["choose-k", "{points}", "--columns", "x,y", "--min-components", "4",
          "--max-components", "3"], r"--min-components 4 is larger than --max-components 3"),
    ],
    ids=["missing", "directory", "unknown-column", "twice", "text-column", "too-many-k",
         "missing-model",
         "not-a-model", "min-max"],
)
def test_usage_errors_are_one_line(points, tmp_path, capsys, args, message):
    path, _ = points
    names = {"missing": tmp_path / "missing.csv", "dir": tmp_path, "points": path}
    args = [arg.format(**names) for arg in args]
    assert cli.main(args) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and re.search(message, err), err


def test_mistyped_command_line_exits_2(capsys):
    with pytest.raises(SystemExit) as raised:
        cli.main(["fit", "data.csv", "--components", "zero"])
    assert raised.value.code == 2
    assert "'zero' is not a whole number" in capsys.readouterr().err


# Run in a fresh interpreter: what --help, --version and a usage error import.
_NO_JAX_SCRIPT = """
import sys, contextlib, io
import bayesgmm
from bayesgmm import cli
codes = []
for argv in (["--help"], ["fit", "--help"], ["--version"], ["fit", "x.csv", "-k", "zero"],
             ["fit", "x.csv", "-k", "2", "--delimiter", "ab"]):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            cli.main(argv)
        except SystemExit as exit:
            codes.append(exit.code)
    if argv == ["--version"]:
        print(out.getvalue().strip())
    if argv[-1] == "ab":
        print(err.getvalue().strip().splitlines()[-1])
print(codes)
print(sorted(name for name in ("jax", "jaxlib", "numpyro", "arviz", "sklearn", "matplotlib")
             if name in sys.modules))
"""


def test_help_version_and_usage_errors_import_no_jax(tmp_path):
    from bayesgmm import __version__

    result = subprocess.run([sys.executable, "-c", _NO_JAX_SCRIPT], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120, env=_ENV)
    assert result.returncode == 0, result.stderr
    version, delimiter_error, codes, imported = result.stdout.splitlines()
    assert version == f"bayesgmm {__version__}"
    assert delimiter_error == (
        "bayesgmm fit: error: argument --delimiter: 'ab' is not one character (a quote and "
        "line breaks excluded); 'tab' names a tab")
    assert codes == "[0, 0, 0, 2, 2]"
    assert imported == "[]"


def test_drop_missing_reports_the_dropped_rows(points, tmp_path, capsys):
    path, X = points
    lines = path.read_text().splitlines()
    lines[3] = "NA,1.0,class0"      # file line 4
    lines[7] = ",,class1"           # file line 8: nothing to fit there
    lines[9] = "1.0,2.0,"           # file line 10: the missing label is not a used column
    holes = tmp_path / "holes.csv"
    holes.write_text("\n".join(lines) + "\n")
    out = tmp_path / "o"
    args = ["fit", str(holes), "-k", "2", "--columns", "x,y", "--out", str(out), "--no-plot"]
    assert cli.main(args) == 1
    assert capsys.readouterr().err == (
        f"bayesgmm: error: {holes}: row 4, column 1 ('x'): missing value ('NA'); fill or remove "
        "the row, pass --missing marginalize to treat it as missing at random, or drop such rows "
        "with --drop-missing.\n")
    assert cli.main(args + ["--drop-missing"]) == 0
    captured = capsys.readouterr()
    assert captured.err == ("bayesgmm: dropped 2 of 120 data row(s) with a missing value "
                            "(line(s) 4, 8).\n")
    assert "to 118 rows x 2 column(s)" in captured.out
    labelled = [int(row["line"]) for row in _read_labels(out / "labels.csv")]
    assert labelled == [line for line in range(2, 122) if line not in (4, 8)]


def _write_holes(path, X):
    """``X`` as 'x;y;label' rows with an empty x in every 10th row and y = NA in every 10th + 5."""
    with open(path, "w") as handle:
        handle.write("x;y;label\n")
        for index, (a, b) in enumerate(X):
            x = "" if index % 10 == 0 else repr(float(a))
            y = "NA" if index % 10 == 5 else repr(float(b))
            handle.write(f"{x};{y};c{index % 2}\n")
    holes = np.zeros(X.shape, dtype=bool)
    holes[::10, 0] = holes[5::10, 1] = True
    return np.where(holes, np.nan, X)


def test_missing_marginalize_fit_predict_impute_round_trip(points, tmp_path, capsys):
    import pandas as pd

    from bayesgmm import GaussianMixture, load

    _, X = points
    path = tmp_path / "holes.csv"
    incomplete = _write_holes(path, X)
    out = tmp_path / "fit"
    args = ["fit", str(path), "-k", "2", "--columns", "x,y", "--out", str(out)]
    assert cli.main(args + ["--missing", "marginalize", "--drop-missing"]) == 1
    assert capsys.readouterr().err == (
        "bayesgmm: error: --missing marginalize and --drop-missing cannot be combined: --missing "
        "marginalize keeps the rows with missing values, --drop-missing leaves them out; choose "
        "one.\n")
    assert cli.main(args + ["--missing", "marginalize"]) == 0
    captured = capsys.readouterr()
    assert "to 120 rows x 2 column(s)" in captured.out
    assert "  24 missing value(s) in 24 row(s), marginalized (missing at random)" in captured.out
    assert (out / "plot.png").stat().st_size > 0  # the complete rows
    model = load(out / "model.npz")
    assert isinstance(model, GaussianMixture) and model.missing == "marginalize"
    params = json.loads((out / "params.json").read_text())
    assert params["missing"] == "marginalize" and params["n_missing_values"] == 24
    fitted = _read_labels(out / "labels.csv")
    assert [row["line"] for row in fitted] == [str(line) for line in range(2, 122)]
    named = pd.DataFrame(incomplete, columns=["x", "y"])
    np.testing.assert_allclose([[float(row["p_0"]), float(row["p_1"])] for row in fitted],
                               model.predict_proba(named), rtol=1e-12)

    # predict follows the model's missing='marginalize'; --missing raise overrides it.
    target = tmp_path / "pred.csv"
    assert cli.main(["predict", str(out / "model.npz"), str(path), "--out", str(target)]) == 0
    assert _read_labels(target) == fitted
    assert cli.main(["predict", str(out / "model.npz"), str(path), "--missing", "raise"]) == 1
    assert capsys.readouterr().err == (
        f"bayesgmm: error: {path}: row 2, column 1 ('x'): empty cell; fill or remove the row, pass "
        "--missing marginalize to treat it as missing at random, or drop such rows with "
        "--drop-missing.\n")

    # impute: the same file, observed cells as written, holes = GaussianMixture.impute.
    completed = tmp_path / "completed.csv"
    assert cli.main(["impute", str(out / "model.npz"), str(path), "--out", str(completed)]) == 0
    assert capsys.readouterr().out == (
        f"Wrote {completed}: 24 missing value(s) filled in 24 of 120 rows.\n")
    original = path.read_text().splitlines()
    written = completed.read_text().splitlines()
    assert written[0] == "x;y;label" and len(written) == len(original)
    expected = model.impute(named)
    for index, (before, after) in enumerate(zip(original[1:], written[1:])):
        cells, filled = before.split(";"), after.split(";")
        for column in range(2):
            if np.isnan(incomplete[index, column]):
                assert float(filled[column]) == expected[index, column]
            else:
                assert filled[column] == cells[column]
        assert filled[2] == cells[2]
    assert cli.main(["impute", str(out / "model.npz"), str(path), "--out", str(completed)]) == 1
    assert capsys.readouterr().err == (
        f"bayesgmm: error: would replace {completed}; pass --force to replace, or choose another "
        "--out.\n")
    assert cli.main(["impute", str(out / "model.npz"), str(path), "--out", str(tmp_path)]) == 1
    assert capsys.readouterr().err == (
        f"bayesgmm: error: {tmp_path}: is a directory; --out takes a file name such as "
        "completed.csv.\n")

    # --draws M: M completed copies in long format, the draws of impute(n_draws=M).
    assert cli.main(["impute", str(out / "model.npz"), str(path), "--draws", "2",
                     "--random-state", "5"]) == 0
    rows = list(csv.reader(capsys.readouterr().out.splitlines(), delimiter=";"))
    assert rows[0] == ["draw", "x", "y", "label"] and len(rows) == 1 + 2 * 120
    draws = model.impute(named, n_draws=2, random_state=5)
    values = np.array([[float(row[1]), float(row[2])] for row in rows[1:]]).reshape(2, 120, 2)
    assert [row[0] for row in rows[1:]] == ["1"] * 120 + ["2"] * 120
    np.testing.assert_array_equal(values, draws)
    np.testing.assert_array_equal(values[:, ~np.isnan(incomplete)], np.broadcast_to(
        X[~np.isnan(incomplete)], (2, int((~np.isnan(incomplete)).sum()))))
    labelled = tmp_path / "labelled.csv"
    labelled.write_text(path.read_text().replace("label", "draw", 1))
    assert cli.main(["impute", str(out / "model.npz"), str(labelled), "--draws", "2"]) == 1
    assert capsys.readouterr().err == (
        f"bayesgmm: error: {labelled}: has a column 'draw', the column --draws adds; rename it.\n")


def test_missing_values_with_a_model_fitted_on_complete_rows(points, tmp_path, capsys):
    import pandas as pd

    _, X = points
    path = tmp_path / "holes.csv"
    incomplete = _write_holes(path, X)
    out = tmp_path / "fit"
    assert cli.main(["fit", str(path), "-k", "2", "--columns", "x,y", "--out", str(out),
                     "--no-plot", "--drop-missing"]) == 0
    model = bayesgmm.load(out / "model.npz")
    assert model.missing == "raise"
    capsys.readouterr()
    # Without --missing such a model's predict stops at the first hole.
    assert cli.main(["predict", str(out / "model.npz"), str(path)]) == 1
    assert f"{path}: row 2, column 1 ('x'): empty cell" in capsys.readouterr().err
    assert cli.main(["predict", str(out / "model.npz"), str(path), "--missing", "marginalize"]) == 0
    rows = list(csv.DictReader(capsys.readouterr().out.splitlines()))
    model.missing = "marginalize"
    np.testing.assert_allclose([[float(row["p_0"]), float(row["p_1"])] for row in rows],
                               model.predict_proba(pd.DataFrame(incomplete, columns=["x", "y"])),
                               rtol=1e-12)
    # A row with nothing observed is refused, naming it.
    lines = path.read_text().splitlines()
    lines[3] = ";NA;c0"
    path.write_text("\n".join(lines) + "\n")
    assert cli.main(["impute", str(out / "model.npz"), str(path)]) == 1
    assert capsys.readouterr().err == (
        f"bayesgmm: error: {path}: row 4: every used column is missing (column 1 ('x'), column 2 "
        "('y')); there is nothing to go on: fill or remove the row.\n")


@pytest.mark.parametrize("delimiter, option", [(";", None), ("\t", None), ("\t", "tab"),
                                               ("|", "|")])
def test_delimiters_are_detected_or_given(tmp_path, delimiter, option):
    path = tmp_path / "t.csv"
    path.write_text(delimiter.join(["a", "b"]) + "\n" + delimiter.join(["1.5", "2"]) + "\n")
    args = cli.build_parser().parse_args(
        ["fit", str(path), "-k", "1"] + (["--delimiter", option] if option else []))
    table = read_csv(path, delimiter=args.delimiter)
    assert table.delimiter == delimiter and table.columns == ["a", "b"]
    np.testing.assert_array_equal(table.X, [[1.5, 2.0]])
    assert read_header(path, delimiter=args.delimiter) == ["a", "b"]


def _unwritable_directory(path):
    """A directory nobody can write into (root included), or skip."""
    path.mkdir()
    path.chmod(0o555)
    try:
        (path / "probe").touch()
    except OSError:
        return path
    (path / "probe").unlink()
    # root writes through permissions: an immutable directory stops it.
    done = subprocess.run(["chattr", "+i", str(path)], capture_output=True) if shutil.which(
        "chattr") else None
    if done is None or done.returncode != 0:
        pytest.skip("cannot make a directory unwritable here")
    return path


def test_read_only_out_is_refused_before_the_fit(points, tmp_path, capsys, monkeypatch):
    path, _ = points
    locked = _unwritable_directory(tmp_path / "locked")
    fits = []
    monkeypatch.setattr("bayesgmm._commands._estimator", lambda *a: fits.append(a))
    try:
        for out in (locked, locked / "sub"):
            assert cli.main(["fit", str(path), "-k", "2", "--columns", "x,y",
                             "--out", str(out)]) == 1
            err = capsys.readouterr().err
            assert err.startswith(f"bayesgmm: error: {locked}: cannot write there (")
            assert err.endswith("); choose another --out.\n")
        model = tmp_path / "model.npz"
        model.write_bytes(b"")
        assert cli.main(["predict", str(model), str(path), "--out", str(locked / "p.csv")]) == 1
        assert f"{locked}: cannot write there" in capsys.readouterr().err
    finally:
        subprocess.run(["chattr", "-i", str(locked)], capture_output=True) if shutil.which(
            "chattr") else None
        locked.chmod(0o755)
    assert fits == [] and list(locked.iterdir()) == []


def test_force_replaces_and_header_free_files(tmp_path, capsys):
    path = tmp_path / "plain.csv"
    _write_points(path, header=False, label=False)
    out = tmp_path / "out"
    args = ["fit", str(path), "-k", "2", "--out", str(out), "--no-plot"]
    assert cli.main(args) == 0
    assert sorted(p.name for p in out.iterdir()) == ["labels.csv", "model.npz", "params.json"]
    params = json.loads((out / "params.json").read_text())
    assert params["columns"] == ["column 1", "column 2"]
    assert _read_labels(out / "labels.csv")[0]["line"] == "1"
    assert cli.main(args) == 1
    assert cli.main(args + ["--force"]) == 0
    assert "Wrote" in capsys.readouterr().out


def test_predict_picks_columns_by_name_and_checks_their_number(points, tmp_path, capsys):
    path, X = points
    out = tmp_path / "fit"
    assert cli.main(["fit", str(path), "-k", "2", "--columns", "x,y", "--out", str(out),
                     "--no-plot"]) == 0
    reordered = tmp_path / "reordered.csv"
    with open(reordered, "w") as handle:
        handle.write("label,y,x\n" + "".join(f"c,{b},{a}\n" for a, b in X))
    target = tmp_path / "pred.csv"
    assert cli.main(["predict", str(out / "model.npz"), str(reordered), "--out", str(target)]) == 0
    assert _read_labels(target) == _read_labels(out / "labels.csv")
    assert cli.main(["predict", str(out / "model.npz"), str(reordered), "--out", str(target)]) == 1
    assert "pass --force" in capsys.readouterr().err

    three = tmp_path / "three.csv"
    three.write_text("1,2,3\n4,5,6\n")
    assert cli.main(["predict", str(out / "model.npz"), str(three), "--columns", "1,2,3"]) == 1
    assert "3 column(s) (column 1, column 2, column 3) but the model was fitted on 2 (x, y)" in (
        capsys.readouterr().err)


def test_predict_matches_columns_by_name_never_by_position(points, tmp_path, capsys):
    path, X = points
    out = tmp_path / "fit"
    assert cli.main(["fit", str(path), "-k", "2", "--columns", "x,y", "--out", str(out),
                     "--no-plot"]) == 0
    model = str(out / "model.npz")
    renamed = tmp_path / "renamed.csv"
    renamed.write_text("height,weight\n" + "".join(f"{float(a)!r},{float(b)!r}\n" for a, b in X))
    capsys.readouterr()
    assert cli.main(["predict", model, str(renamed)]) == 1
    assert capsys.readouterr().err == (
        f"bayesgmm: error: {renamed}: no column 'x', 'y' (the model was fitted on x, y; the "
        "file has 'height', 'weight'); map them with --columns, in the model's order.\n")
    headerless = tmp_path / "headerless.csv"
    headerless.write_text("".join(f"{float(a)!r},{float(b)!r}\n" for a, b in X))
    assert cli.main(["predict", model, str(headerless)]) == 1
    assert capsys.readouterr().err == (
        f"bayesgmm: error: {headerless}: no header row, but the model was fitted on the columns "
        "x, y; name the file's columns for them with --columns (1-based numbers, in that order).\n")
    # --columns maps the file's columns onto the model's, in the model's order.
    for data, columns, first_line in ((renamed, "height,weight", 2), (headerless, "1,2", 1)):
        target = tmp_path / f"{data.stem}-labels.csv"
        assert cli.main(["predict", model, str(data), "--columns", columns,
                         "--out", str(target)]) == 0
        predicted, fitted = _read_labels(target), _read_labels(out / "labels.csv")
        assert [row.pop("line") for row in predicted] == [
            str(first_line + n) for n in range(len(X))]
        assert predicted == [{k: v for k, v in row.items() if k != "line"} for row in fitted]


def test_choose_k_prints_table_and_writes_files(points, tmp_path, capsys):
    path, _ = points
    out = tmp_path / "k"
    assert cli.main(["choose-k", str(path), "--columns", "x,y", "--max-components", "3",
                     "--out", str(out)]) == 0
    stdout = capsys.readouterr().out
    assert "Chosen: K = 2 (lowest BIC, marked *)" in stdout
    assert len([line for line in stdout.splitlines() if line.strip().endswith("*")]) == 1
    with open(out / "choose_k.csv") as handle:
        table = list(csv.DictReader(handle))
    assert [row["n_components"] for row in table] == ["1", "2", "3"]
    assert (out / "choose_k.png").stat().st_size > 0


def test_choose_k_with_missing_values(points, tmp_path, capsys):
    path, _ = points
    with open(path) as handle:
        lines = handle.read().splitlines()
    header = lines[0].split(",")
    column = header.index("y")
    holes = tmp_path / "holes.csv"
    rows = [line.split(",") for line in lines[1:]]
    for row in rows[::5]:
        row[column] = ""
    holes.write_text("\n".join([lines[0]] + [",".join(row) for row in rows]) + "\n")
    arguments = ["choose-k", str(holes), "--columns", "x,y", "--max-components", "3"]
    assert cli.main(arguments) == 1
    assert capsys.readouterr().err == (
        f"bayesgmm: error: {holes}: row 2, column 2 ('y'): empty cell; fill or remove the row, pass "
        "--missing marginalize to treat it as missing at random, or drop such rows with --drop-missing.\n")
    assert cli.main(arguments + ["--missing", "marginalize"]) == 0
    assert "Chosen: K = 2 (lowest BIC, marked *)" in capsys.readouterr().out


def _flat_data(tmp_path):
    """A CSV of two clusters, one of them on a single value of y (240 x 2)."""
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(0.0, 1.0, (200, 2)),
                   np.column_stack([rng.normal(6.0, 1.0, 40), np.full(40, 3.0)])])
    path = tmp_path / "flat.csv"
    np.savetxt(path, X, delimiter=",", header="x,y", comments="")
    return path


def test_choose_k_over_covariance_types_prints_the_grid_and_marks_degenerate_fits(tmp_path, capsys):
    # One cluster on a single value of y: its 'diag' component collapses.
    path = _flat_data(tmp_path)
    out = tmp_path / "grid"
    assert cli.main(["choose-k", str(path), "--max-components", "4", "--covariance-type",
                     "diag,full", "--out", str(out)]) == 0
    captured = capsys.readouterr()
    stdout = captured.out
    assert "which is degenerate" in captured.err and "it was not chosen" in captured.err
    lines = stdout.splitlines()
    assert lines[0] == "BIC (lower is better); ! degenerate, never chosen; * chosen"
    assert lines[1].split() == ["K", "diag", "full"]
    assert [line.split()[0] for line in lines[2:6]] == ["1", "2", "3", "4"]
    assert sum(line.count("*") for line in lines[2:6]) == 1
    assert any("!" in line for line in lines[2:6])
    assert re.search(r"^Chosen: K = \d, (diag|full) \(lowest BIC, marked \*\)$", stdout, re.M)
    assert re.search(r"^Degenerate: diag K = \d: component \d's covariance collapsed", stdout, re.M)
    with open(out / "choose_k.csv") as handle:
        table = list(csv.DictReader(handle))
    assert [(row["covariance_type"], row["n_components"]) for row in table] == [
        (name, str(k)) for name in ("diag", "full") for k in range(1, 5)]
    flagged = [row for row in table if row["degenerate"] == "True"]
    assert flagged and all("reg_covar floor" in row["degenerate_reason"] for row in flagged)
    assert (out / "choose_k.png").stat().st_size > 0


def test_choose_k_mcmc_takes_one_covariance_type(points, capsys):
    path, _ = points
    assert cli.main(["choose-k", str(path), "--columns", "x,y", "--method", "mcmc",
                     "--covariance-type", "all"]) == 1
    assert "--method mcmc compares numbers of components of one covariance type" in (
        capsys.readouterr().err)


def test_warnings_are_one_line(points, tmp_path, capsys):
    path, _ = points
    assert cli.main(["fit", str(path), "-k", "2", "--columns", "x,y", "--max-iter", "1",
                     "--out", str(tmp_path / "o"), "--no-plot"]) == 0
    captured = capsys.readouterr()
    assert "bayesgmm: warning: ConvergenceWarning: Best performing initialization did not" in (
        captured.err)
    assert "did NOT converge in 1 iterations" in captured.out


def test_demo_reproduces_the_document(tmp_path, capsys):
    assert cli.main(["demo"]) == 0
    assert "Accuracy = 97.66%" in capsys.readouterr().out
    out = tmp_path / "demo"
    umask = os.umask(0o027)
    try:
        assert cli.main(["demo", "--out", str(out)]) == 0
    finally:
        os.umask(umask)
    assert sorted(p.name for p in out.iterdir()) == [
        "document_test.csv", "document_train.csv", "labels.csv", "model.npz", "plot.png"]
    # Every file, the saved model included, has the mode the user's umask gives.
    assert {p.name: oct(p.stat().st_mode & 0o777) for p in out.iterdir()} == {
        p.name: "0o640" for p in out.iterdir()}
    # The written files work with the other commands.
    assert cli.main(["predict", str(out / "model.npz"), str(out / "document_test.csv"),
                     "--out", str(tmp_path / "p.csv")]) == 0
    assert _read_labels(tmp_path / "p.csv") == _read_labels(out / "labels.csv")


# ---------------------------------------------------------------- CSV reader


def test_read_csv_header_columns_and_lines(tmp_path):
    path = tmp_path / "t.csv"
    path.write_bytes("\ufeffa, b ,c\n1,2,x\n\n3,4,y\n".encode())  # BOM, spaces, blank line
    table = read_csv(path, columns="b,1")
    np.testing.assert_array_equal(table.X, [[2.0, 1.0], [4.0, 3.0]])
    assert table.columns == ["b", "a"] and table.has_header
    np.testing.assert_array_equal(table.lines, [2, 4])
    assert read_header(path) == ["a", "b", "c"]


def test_write_completed_keeps_the_file_but_its_holes(tmp_path):
    from bayesgmm._io import write_completed

    path = tmp_path / "t.tsv"
    path.write_text("1.50\t\t\"a, b\"\n\nNaN\t2\t\n3\t4\tc\n")  # no header, a blank line
    table = read_csv(path, columns="1,2", keep_missing=True)
    assert table.delimiter == "\t" and table.positions == (0, 1)
    np.testing.assert_array_equal(np.isnan(table.X), [[False, True], [True, False], [False, False]])
    completed = np.where(np.isnan(table.X), [[10.0, 20.0]], table.X)
    target = tmp_path / "out.tsv"
    assert write_completed(path, table, completed, target) == 2
    # Observed cells as written (1.50, not 1.5); the unused third column, empty or quoted, kept.
    assert target.read_text() == "1.50\t20.0\ta, b\n10.0\t2\t\n3\t4\tc\n"
    assert write_completed(path, table, np.stack([completed, completed + 1]), target,
                           draws=[1, 2]) == 2
    assert target.read_text().splitlines() == [
        "1\t1.50\t20.0\ta, b", "1\t10.0\t2\t", "1\t3\t4\tc",
        "2\t1.50\t21.0\ta, b", "2\t11.0\t2\t", "2\t3\t4\tc"]


def test_read_csv_without_header(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("1,2e3\n-3.5,4\n")
    table = read_csv(path)
    np.testing.assert_array_equal(table.X, [[1.0, 2000.0], [-3.5, 4.0]])
    assert table.columns == ["column 1", "column 2"] and not table.has_header
    assert read_header(path) is None
    with pytest.raises(CSVError, match="no column 'x'.*the file has no header"):
        read_csv(path, columns=["x"])
    with pytest.raises(CSVError, match="no column '3'"):
        read_csv(path, columns="3")


# ---------------------------------------------------------------- MCMC

# The smallest real NUTS fit, the model of conftest's tiny_nuts_fit (same data
# shape, K, chains, draws and seed); choose-k's K = 1 and 2 share its sampler.
MCMC_ARGS = ["--method", "mcmc", "--num-samples", "20", "--num-warmup", "20",
             "--num-chains", "2", "--seed", "0", "--no-progress"]


@pytest.fixture
def small_points(tmp_path):
    from bayesgmm.datasets import document_data

    X = document_data(n_samples=100)[0]
    path = tmp_path / "small.csv"
    with open(path, "w") as handle:
        handle.write("x0,x1\n" + "".join(f"{float(a)!r},{float(b)!r}\n" for a, b in X))
    return path, X


def test_fit_mcmc_writes_intervals_and_an_arviz_model(small_points, tmp_path, capsys):
    import arviz as az

    from bayesgmm import BayesianGaussianMixture, load

    path, X = small_points
    out = tmp_path / "mcmc"
    assert cli.main(["fit", str(path), "-k", "2", "--out", str(out), *MCMC_ARGS]) == 0
    captured = capsys.readouterr()
    assert "by MCMC to 80 rows x 2 column(s)" in captured.out
    assert "NUTS: 2 chain(s) x 20 draws after 20 warm-up steps" in captured.out
    assert "PSIS-LOO elpd" in captured.out
    # Sampling warnings (20 draws per chain) are one line each.
    assert all(line.startswith("bayesgmm: warning: ") for line in captured.err.splitlines())
    assert sorted(p.name for p in out.iterdir()) == ["labels.csv", "model.nc", "params.json",
                                                      "plot.png", "trace.png"]
    rows = _read_labels(out / "labels.csv")
    assert list(rows[0]) == ["line", "label", "p_0", "p_1", "p_0_low", "p_1_low", "p_0_high",
                             "p_1_high"]
    for row in rows:
        for k in (0, 1):
            # The posterior mean p_k may lie outside the equal-tailed interval.
            low, p, high = (float(row[f"p_{k}{suffix}"]) for suffix in ("_low", "", "_high"))
            assert 0.0 <= low <= high <= 1.0 and 0.0 <= p <= 1.0
    params = json.loads((out / "params.json").read_text())
    assert params["method"] == "mcmc" and params["interval_prob"] == 0.9
    assert {"elpd_loo", "p_loo", "divergences", "max_r_hat", "min_ess_bulk"} <= set(params)
    model = load(out / "model.nc")
    assert isinstance(model, BayesianGaussianMixture)
    assert list(model.feature_names_in_) == ["x0", "x1"]
    assert "posterior" in az.from_netcdf(out / "model.nc").groups()

    target = tmp_path / "pred.csv"
    assert cli.main(["predict", str(out / "model.nc"), str(path), "--out", str(target)]) == 0
    assert _read_labels(target) == rows

    # Rows with a hole: probabilities and intervals from the observed column, and the
    # posterior mean imputation (the average of impute_draws over the posterior draws).
    import pandas as pd

    holes = tmp_path / "holes.csv"
    lines = path.read_text().splitlines()
    lines[1] = "," + lines[1].split(",")[1]   # x0 missing
    lines[2] = lines[2].split(",")[0] + ",NA"  # x1 missing
    holes.write_text("\n".join(lines) + "\n")
    assert cli.main(["predict", str(out / "model.nc"), str(holes), "--out", str(target),
                     "--force"]) == 1
    assert "row 2, column 1 ('x0'): empty cell" in capsys.readouterr().err
    assert cli.main(["predict", str(out / "model.nc"), str(holes), "--out", str(target), "--force",
                     "--missing", "marginalize"]) == 0
    predicted = _read_labels(target)
    assert list(predicted[0]) == list(rows[0]) and len(predicted) == len(rows)
    # The complete rows: the same figures (the marginal path evaluates them apart).
    np.testing.assert_allclose([[float(value) for value in row.values()] for row in predicted[2:]],
                               [[float(value) for value in row.values()] for row in rows[2:]],
                               rtol=1e-9, atol=1e-12)
    completed = tmp_path / "completed.csv"
    assert cli.main(["impute", str(out / "model.nc"), str(holes), "--out", str(completed)]) == 0
    filled = np.loadtxt(completed, delimiter=",", skiprows=1)
    incomplete = X.copy()
    incomplete[0, 0] = incomplete[1, 1] = np.nan
    model.missing = "marginalize"
    # impute_draws of the rows with a hole (one chunk here), seeded by --random-state's 0.
    mean = model.impute_draws(pd.DataFrame(incomplete[:2], columns=["x0", "x1"]),
                              random_state=np.random.RandomState(0)).mean(("chain", "draw")).values
    np.testing.assert_array_equal(filled[[0, 1], [0, 1]], mean[[0, 1], [0, 1]])
    np.testing.assert_array_equal(filled[[0, 1], [1, 0]], X[[0, 1], [1, 0]])
    np.testing.assert_array_equal(filled[2:], X[2:])


def test_choose_k_mcmc_compares_by_loo(small_points, tmp_path, capsys):
    path, _ = small_points
    out = tmp_path / "k"
    assert cli.main(["choose-k", str(path), "--min-components", "1", "--max-components", "2",
                     "--out", str(out), *MCMC_ARGS]) == 0
    captured = capsys.readouterr()
    stdout = captured.out
    lines = stdout.splitlines()
    assert lines[0].split()[:3] == ["model", "rank", "elpd_loo"]
    assert [line.split()[0] for line in lines[1:3]] == ["K=1", "K=2"]
    with open(out / "choose_k.csv") as handle:
        table = list(csv.DictReader(handle))
    assert [row["n_components"] for row in table] == ["1", "2"]
    assert sorted(row["rank"] for row in table) == ["0", "1"]
    assert (out / "choose_k.png").stat().st_size > 0
    # The one-standard-error rule on the table written: the fewest components among
    # the best model and those less than 2 dse below it.
    within = [int(row["n_components"]) for row in table if row["rank"] == "0"
              or float(row["elpd_diff"]) < 2 * float(row["dse"])]
    best = next(row["n_components"] for row in table if row["rank"] == "0")
    chosen = [line.split()[0] for line in lines[1:3] if line.endswith(" *")]
    assert chosen == [f"K={min(within)}"]
    assert f"Chosen: K={min(within)} " in stdout
    if min(within) == int(best):
        assert "(highest PSIS-LOO elpd, marked *)" in stdout
    else:
        assert f"within the noise of the highest PSIS-LOO elpd (K={best})" in stdout
    # 20 draws per chain: sampling warnings, each naming the fit it comes from.
    warned = captured.err.splitlines()
    assert warned and [line for line in warned
                       if not re.match(r"bayesgmm: warning: \w+: K=[12]: ", line)] == []


@pytest.mark.parametrize("elpd_diff, dse, chosen", [
    # The run: K=3 ahead of K=2 by 0.50 with dse 1.89 is noise, K=2 is kept.
    ((0.0, 0.50, 30.0), (0.0, 1.89, 5.0), "K=2"),
    ((0.0, 4.00, 30.0), (0.0, 1.89, 5.0), "K=3"),   # 4.00 > 2 dse: a real gain
    ((0.0, 0.50, 9.0), (0.0, 1.89, 5.0), "K=1"),    # all three within the noise
])
def test_choose_k_mcmc_keeps_the_simplest_model_within_the_noise(elpd_diff, dse, chosen):
    import pandas as pd

    from bayesgmm._choose_k import _choice_line, simplest_within_noise

    comparison = pd.DataFrame({"elpd_diff": elpd_diff, "dse": dse}, index=["K=3", "K=2", "K=1"])
    assert simplest_within_noise(comparison) == (chosen, "K=3")
    line = _choice_line(comparison, chosen, "K=3")
    if chosen == "K=2":
        assert line == ("Chosen: K=2 (marked *), the fewest components within the noise of the "
                        "highest PSIS-LOO elpd (K=3): 0.50 below it, under 2 dse (3.78), so the "
                        "simpler model is kept (one-standard-error rule)")
    elif chosen == "K=3":
        assert line == ("Chosen: K=3 (highest PSIS-LOO elpd, marked *); every model with fewer "
                        "components is more than 2 dse below it")


def test_prior_default_gives_map_fits_that_do_not_collapse(tmp_path, capsys):
    # The data of the test above: under mclust's prior the 'diag' component on y = 3 keeps a variance.
    path = _flat_data(tmp_path)
    assert cli.main(["choose-k", str(path), "--max-components", "3", "--covariance-type", "diag,full",
                     "--prior", "default"]) == 0
    stdout = capsys.readouterr().out
    assert "!" not in "\n".join(stdout.splitlines()[2:5]) and "Degenerate" not in stdout
    out = tmp_path / "fit"
    assert cli.main(["fit", str(path), "-k", "2", "--covariance-type", "diag", "--prior", "default",
                     "--out", str(out), "--no-plot"]) == 0
    assert bayesgmm.load(out / "model.npz").prior == "default"
    assert cli.main(["fit", str(path), "-k", "2", "--method", "mcmc", "--prior", "default"]) == 1
    assert "--prior applies to --method em only." in capsys.readouterr().err
