"""The work of ``bayesgmm predict`` and ``bayesgmm impute``: a saved model applied to a CSV file.

predict writes each row's label and component probabilities (with credible
intervals for a Bayesian model), impute the file with its missing cells
filled in. Both find the model's columns in the file by name. Like every
``command_*``, each takes the parsed arguments and returns the exit status;
bad input raises :class:`~bayesgmm._commands.CLIError`.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

from bayesgmm._commands import (
    INTERVAL_ELEMENTS,
    CLIError,
    _check_missing_options,
    _check_writable,
    _echo,
    _intervals,
    _make_directory,
    _named,
    _probability_rows,
    _read_table,
)


def _load_model(path: str):
    from bayesgmm.persistence import load

    if not os.path.exists(path):
        raise CLIError(f"{path}: no such model file.")
    try:
        return load(path)
    except IsADirectoryError:
        raise CLIError(f"{path}: is a directory, not a model file.") from None


def _predict_columns(model, data_path: str, columns, delimiter):
    """The columns to read: --columns, else the model's feature names, matched by name.

    A model fitted on named columns is applied only to columns of those names
    (in any order): a file whose header lacks one of them, or that has no
    header, is refused rather than read by position, which would silently
    apply the model to the wrong quantities.
    """
    if columns is not None:
        return columns
    names = getattr(model, "feature_names_in_", None)
    if names is None:
        return None  # fitted on unnamed columns: they are taken by position
    from bayesgmm._io import read_header

    names = [str(name) for name in names]
    header = read_header(data_path, delimiter)
    fitted = ", ".join(names)
    if header is None:
        raise CLIError(
            f"{data_path}: no header row, but the model was fitted on the columns {fitted}; "
            "name the file's columns for them with --columns (1-based numbers, in that order)."
        )
    missing = [name for name in names if name not in header]
    if missing:
        raise CLIError(
            f"{data_path}: no column {', '.join(map(repr, missing))} (the model was fitted on "
            f"{fitted}; the file has {', '.join(map(repr, header))}); map them with --columns, "
            "in the model's order."
        )
    return names


def _output_file(args, example: str) -> Path | None:
    """--out of predict and impute (None: standard output), checked before any work."""
    out = Path(args.out) if args.out else None
    if out is not None:
        if out.is_dir():
            raise CLIError(f"{out}: is a directory; --out takes a file name such as {example}.")
        if out.exists() and not args.force:
            raise CLIError(f"would replace {out}; pass --force to replace, or choose another --out.")
        _check_writable(out.parent)
    return out


def _check_model_columns(model, table, data_path: str) -> None:
    n_features = int(model.n_features_in_)
    if table.X.shape[1] != n_features:
        fitted = getattr(model, "feature_names_in_", None)
        names = f" ({', '.join(map(str, fitted))})" if fitted is not None else ""
        raise CLIError(
            f"{data_path}: {table.X.shape[1]} column(s) ({', '.join(table.columns)}) but the "
            f"model was fitted on {n_features}{names}; choose them with --columns."
        )


def command_predict(args) -> int:
    """``bayesgmm predict``: apply a saved model to a CSV file. Returns the exit status.

    Missing cells are read as missing values (each row's probabilities use the
    marginal on its observed columns) with --missing marginalize, or without
    --missing when the model was fitted with missing='marginalize'; --missing
    raise refuses them whatever the model says.
    """
    _check_missing_options(args)
    out = _output_file(args, "labels.csv")
    model = _load_model(args.model)
    if args.missing is not None:
        model.missing = args.missing  # any fitted model predicts from the observed columns
    columns = _predict_columns(model, args.data, args.columns, args.delimiter)
    table = _read_table(args, columns, keep_missing=model.missing == "marginalize")
    _check_model_columns(model, table, args.data)
    data = _named(table.X, getattr(model, "feature_names_in_", None))
    proba = np.asarray(model.predict_proba(data))
    intervals = _intervals(model, data) if hasattr(model, "posterior_params_") else None
    header, rows = _probability_rows(table.lines, proba, intervals)

    from bayesgmm._io import write_csv

    if out is None:
        write_csv(sys.stdout, header, rows)
    else:
        _make_directory(out.parent)
        write_csv(out, header, rows)
        _echo(f"Wrote {out}: labels and probabilities of {table.X.shape[0]} rows.")
    return 0


def _posterior_imputations(model, data, n_draws: int | None, seed: int) -> np.ndarray:
    """A Bayesian model's imputations: the posterior mean, or ``n_draws`` of its draws.

    One draw of the missing values per posterior draw
    (``BayesianGaussianMixture.impute_draws``); their average over all
    draws is the posterior mean, and ``n_draws`` of them, evenly spaced over
    the chains, are proper multiple imputations. Only the rows with a hole
    are imputed, in chunks that bound the (draw, row, column) array held at
    once; one random stream serves every chunk, so that no two rows share
    their draws.

    Returns
    -------
    completed : ndarray of shape (n_rows, n_columns), or (n_draws, n_rows, n_columns)
    """
    X = np.asarray(data, dtype=float)
    n_posterior = int(np.shape(model.posterior_params_.weights)[0])
    if n_draws is not None and n_draws > n_posterior:
        raise CLIError(f"--draws {n_draws}: the model has {n_posterior} posterior draws; "
                       f"ask for at most {n_posterior}.")
    kept = (slice(None) if n_draws is None
            else np.linspace(0, n_posterior - 1, n_draws).round().astype(int))
    rows = np.flatnonzero(np.isnan(X).any(axis=1))
    completed = np.array(X) if n_draws is None else np.repeat(X[None], n_draws, axis=0)
    rng = np.random.RandomState(seed)
    chunk = max(1, INTERVAL_ELEMENTS // (n_posterior * X.shape[1]))
    for start in range(0, len(rows), chunk):
        part = rows[start:start + chunk]
        part_data = data.iloc[part] if hasattr(data, "iloc") else X[part]
        draws = np.asarray(model.impute_draws(part_data, random_state=rng).values)
        draws = draws.reshape((n_posterior,) + draws.shape[2:])[kept]
        if n_draws is None:
            completed[part] = draws.mean(axis=0)
        else:
            completed[:, part] = draws
    return completed


def command_impute(args) -> int:
    """``bayesgmm impute``: the CSV file with its missing cells filled in by a saved model.

    Each missing cell of the model's columns becomes its conditional mean
    given the row's observed columns (EM: ``GaussianMixture.impute``; MCMC:
    the posterior mean of ``impute_draws``), or with --draws M, M completed
    copies one after the other, led by a column ``draw``. Returns the exit
    status.
    """
    out = _output_file(args, "completed.csv")
    model = _load_model(args.model)
    columns = _predict_columns(model, args.data, args.columns, args.delimiter)
    from bayesgmm._io import read_csv, read_header, write_completed

    if args.draws is not None and "draw" in (read_header(args.data, args.delimiter) or []):
        raise CLIError(f"{args.data}: has a column 'draw', the column --draws adds; rename it.")
    table = read_csv(args.data, columns=columns, delimiter=args.delimiter, keep_missing=True)
    _check_model_columns(model, table, args.data)
    data = _named(table.X, getattr(model, "feature_names_in_", None))
    holes = np.isnan(table.X)
    if not holes.any():
        completed = table.X if args.draws is None else np.repeat(table.X[None], args.draws, axis=0)
    elif hasattr(model, "posterior_params_"):
        model.missing = "marginalize"  # whatever it was fitted with: impute reads holes
        completed = _posterior_imputations(model, data, args.draws, args.seed)
    else:
        completed = model.impute(data, n_draws=args.draws, random_state=args.seed)
    draws = None if args.draws is None else range(1, args.draws + 1)
    if out is None:
        write_completed(args.data, table, completed, sys.stdout, draws=draws)
        return 0
    _make_directory(out.parent)
    write_completed(args.data, table, completed, out, draws=draws)
    copies = "" if draws is None else f", {args.draws} completed copies (column 'draw')"
    _echo(f"Wrote {out}: {int(holes.sum())} missing value(s) filled in "
          f"{int(holes.any(axis=1).sum())} of {table.X.shape[0]} rows{copies}.")
    return 0
