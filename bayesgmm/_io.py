"""Reading numeric tables from CSV files, with errors that point at the cell.

The command line reads its data here. Every problem with a file is raised as
:class:`CSVError` (a ``ValueError``) whose one-line message names the file,
the row and the column, so the user can open the file at that place:

* rows are the file's line numbers, counted from 1 (the header, if any, is
  row 1), which is what an editor shows;
* columns are counted from 1, and their header name is quoted when there is
  one.

A header is optional: the first non-blank row is taken as a header when none
of its fields is a number; its names must be distinct. Blank lines are
skipped. Columns that are not selected with ``columns`` may hold anything (a
label column, say), but every row must have the same number of fields. The
field separator is a comma, a semicolon or a tab, detected from the first
rows unless given. Numbers are what Python's ``float`` reads, without digit
separators (``1_000`` is not a number, as in other CSV readers). Missing
values (an empty cell, ``NA``, ``N/A``, ``NaN``, ``null``, ``None``, ``#N/A``)
are an error unless ``drop_missing`` drops their rows or ``keep_missing``
reads them as NaN; :func:`write_completed` writes a copy of the file with
them filled in.
"""

from __future__ import annotations

import csv
import io
import math
import os
from typing import NamedTuple

import numpy as np

__all__ = ["CSVError", "Table", "detect_delimiter", "read_csv", "read_header", "write_completed",
           "write_csv"]

#: Field separators that are detected, the first one preferred when several fit.
DELIMITERS = (",", "\t", ";")

#: Cells read as missing values (compared without case), as spreadsheet
#: programs and pandas.read_csv's default ``na_values`` write them.
MISSING = frozenset({"", "na", "n/a", "nan", "-nan", "null", "none", "#n/a", "<na>"})

#: What the message about a missing cell suggests besides filling or removing the row.
DROP_REMEDY = "or drop such rows with --drop-missing"

# Rows read to detect the separator: enough to see a header and some data.
_SNIFF_LINES = 50


class CSVError(ValueError):
    """A CSV file that cannot be read as a numeric table; the message says where."""


class Table(NamedTuple):
    """A numeric table read from a CSV file.

    Attributes
    ----------
    X : ndarray of shape (n_rows, n_columns)
        The selected columns, as float64.
    columns : list of str
        The name of each column of ``X``: its header name, or ``"column j"``
        (1-based position in the file) when the file has no header.
    has_header : bool
        Whether the first row of the file was a header.
    lines : ndarray of int of shape (n_rows,)
        The file line (1-based) of each row of ``X``.
    dropped : ndarray of int of shape (n_dropped,)
        The file lines of the rows dropped for a missing value (``drop_missing``).
    delimiter : str
        The field separator, given or detected.
    positions : tuple of int
        The 0-based position in the file's rows of each column of ``X``.
    """

    X: np.ndarray
    columns: list
    has_header: bool
    lines: np.ndarray
    dropped: np.ndarray
    delimiter: str
    positions: tuple = ()


def _number(text: str) -> float | None:
    """The number ``text`` spells, or None; digit separators are refused."""
    if "_" in text:  # float() reads "1_000" as Python source would; CSV readers do not
        return None
    try:
        return float(text)
    except ValueError:
        return None


def _is_number(text: str) -> bool:
    return _number(text) is not None


def _is_missing(text: str) -> bool:
    return text.strip().lower() in MISSING


def detect_delimiter(text: str) -> str:
    """The field separator of CSV ``text``: one of :data:`DELIMITERS`.

    Parameters
    ----------
    text : str
        The file's content (only its first rows are looked at).

    Returns
    -------
    delimiter : str
        The separator that splits the first rows into the same number of
        fields (:class:`csv.Sniffer`), preferring a comma; a comma when none
        does (a file of one column).

    Examples
    --------
    >>> detect_delimiter("x;y\\n1.5;2\\n3;4\\n")
    ';'
    >>> detect_delimiter("x\\ty\\n1\\t2\\n")
    '\\t'
    """
    sample = "\n".join(line for line in text.splitlines()[:_SNIFF_LINES] if line.strip())
    try:
        return csv.Sniffer().sniff(sample, delimiters="".join(DELIMITERS)).delimiter
    except csv.Error:
        return ","


def _read_text(path: str, delimiter: str | None) -> str:
    """The whole file as text, with OS and encoding errors as one-line messages."""
    if os.path.isdir(path):
        raise CSVError(f"{path}: is a directory, not a CSV file.")
    try:
        with open(path, "rb") as handle:
            content = handle.read()
    except FileNotFoundError:
        raise CSVError(f"{path}: no such file.") from None
    except PermissionError:
        raise CSVError(f"{path}: permission denied; cannot read the file.") from None
    except OSError as err:
        raise CSVError(f"{path}: cannot be read ({err.strerror or err}).") from None
    try:
        # utf-8-sig drops the byte-order mark that spreadsheet programs write.
        return content.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line_start = content.rfind(b"\n", 0, err.start) + 1
        row = content.count(b"\n", 0, err.start) + 1
        column = content.count((delimiter or ",").encode(), line_start, err.start) + 1
        raise CSVError(
            f"{path}: row {row}, column {column}: not UTF-8 text (byte "
            f"0x{content[err.start]:02x}); is this a CSV file?"
        ) from None


def _check_delimiter(delimiter: str | None) -> None:
    if delimiter is not None and (not isinstance(delimiter, str) or len(delimiter) != 1
                                  or delimiter in "\"\r\n"):
        raise CSVError(
            f"the delimiter must be one character other than a quote or a line break, not "
            f"{delimiter!r}; for a tab, pass a tab character (in a shell: $'\\t')."
        )


def _read_rows(path: str, delimiter: str | None) -> tuple[list[tuple[int, list[str]]], str]:
    """The non-blank rows of the file with their 1-based line numbers, and the delimiter."""
    _check_delimiter(delimiter)
    text = _read_text(path, delimiter)
    if delimiter is None:
        delimiter = detect_delimiter(text)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    rows = []
    try:
        for fields in reader:
            if not fields or all(not field.strip() for field in fields):
                continue
            rows.append((reader.line_num, fields))
    except csv.Error as err:
        raise CSVError(f"{path}: row {reader.line_num}: malformed CSV ({err}).") from None
    return rows, delimiter


def _check_header(path: str, line: int, header: list[str]) -> None:
    """Refuse a header that names two columns alike (which would --columns mean?)."""
    seen = {}
    for position, name in enumerate(field.strip() for field in header):
        if name and name in seen:
            raise CSVError(
                f"{path}: row {line}: the header names two columns {name!r} (columns "
                f"{seen[name] + 1} and {position + 1}); rename one of them."
            )
        seen.setdefault(name, position)


def _column_label(index: int, header: list[str] | None) -> str:
    """'column 3' or "column 3 ('height')" for the 0-based ``index``."""
    if header is not None and header[index].strip():
        return f"column {index + 1} ({header[index].strip()!r})"
    return f"column {index + 1}"


def _select_columns(path: str, columns, header: list[str] | None, n_fields: int) -> list[int]:
    """0-based positions of the requested columns (names, or 1-based numbers)."""
    if columns is None:
        return list(range(n_fields))
    if isinstance(columns, str):
        columns = [part for part in columns.split(",") if part.strip()]
    if len(columns) == 0:
        raise CSVError(f"{path}: no columns selected; name at least one column.")
    names = [name.strip() for name in header] if header is not None else []
    positions = []
    for column in columns:
        text = str(column).strip()
        if text in names:
            positions.append(names.index(text))
        elif text.isdigit() and 1 <= int(text) <= n_fields:
            positions.append(int(text) - 1)
        else:
            available = (
                "the columns are " + ", ".join(repr(name) for name in names)
                if names
                else "the file has no header, so use column numbers"
            )
            raise CSVError(
                f"{path}: no column {text!r} (columns are named by their header or "
                f"numbered 1 to {n_fields}; {available})."
            )
    if len(set(positions)) != len(positions):
        raise CSVError(f"{path}: a column was selected twice in {list(columns)!r}.")
    return positions


def read_header(path, delimiter: str | None = None) -> list[str] | None:
    """The stripped names of the file's header row, or None if it has no header.

    Parameters
    ----------
    path : str or path-like
    delimiter : str, optional
        The field separator; detected by default (:func:`detect_delimiter`).

    Returns
    -------
    names : list of str or None

    Raises
    ------
    CSVError
        If the file cannot be read, or its header names two columns alike.
    """
    path = os.fspath(path)
    rows, _ = _read_rows(path, delimiter)
    for line, fields in rows:
        if any(_is_number(field) for field in fields):
            return None
        _check_header(path, line, fields)
        return [field.strip() for field in fields]
    return None


def _not_a_number(path, line, label, text, column_is_text, suggestion) -> CSVError:
    message = f"{path}: row {line}, {label}: {text!r} is not a number"
    if _is_number(text.replace("_", "")):
        message += " (write it without '_')"
    if column_is_text and suggestion is not None:
        # A text column (labels, names) read because no --columns was given.
        message += f"; leave text columns out with --columns ({suggestion})"
    return CSVError(message + ".")


def _numeric_columns_hint(fields: list[str], header: list[str] | None) -> str | None:
    """'--columns x,y': the columns whose first data cell is a number, or None."""
    picked = [
        header[position].strip() if header is not None and header[position].strip()
        else str(position + 1)
        for position, field in enumerate(fields) if _is_number(field.strip())
    ]
    return f"for example --columns {','.join(picked)}" if picked else None


def read_csv(path, columns=None, delimiter: str | None = None,
             drop_missing: bool = False, keep_missing: bool = False,
             missing_remedy: str = DROP_REMEDY) -> Table:
    """Read a numeric table from a CSV file.

    Parameters
    ----------
    path : str or path-like
        The CSV file.
    columns : sequence of str or int, or str, optional
        The columns to read, by header name or by 1-based position; a string
        is split on commas (``"x,y"`` or ``"1,3"``). All columns by default.
    delimiter : str, optional
        The field separator: one character. By default a comma, a semicolon
        or a tab, detected from the first rows (:func:`detect_delimiter`).
    drop_missing : bool, default=False
        Drop the rows with a missing value (see :data:`MISSING`) in a selected
        column, and list their lines in ``Table.dropped``, instead of raising.
    keep_missing : bool, default=False
        Read missing values in the selected columns as NaN instead of
        raising; a row whose selected cells are all missing is still refused
        (there is nothing to fit, predict or impute from).
    missing_remedy : str, default=DROP_REMEDY
        The end of the message about a missing cell, after "fill or remove the
        row, ": what else the user can do (the command's options).

    Returns
    -------
    Table
        ``X`` of shape (n_rows, n_selected_columns) and the column names.

    Raises
    ------
    CSVError
        If the file is missing, not text, empty, has rows of different
        lengths, a header naming two columns alike, or a selected cell that is
        missing (without ``drop_missing`` or ``keep_missing``) or not a finite
        number, or, with ``keep_missing``, a row with every selected cell
        missing; the message
        names the file, the row and the column.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "points.csv"
    >>> _ = path.write_text("x,y\\n1,2\\n3,4\\n")
    >>> table = read_csv(path)
    >>> table.X.shape, table.columns
    ((2, 2), ['x', 'y'])
    >>> _ = path.write_text("x,y\\n1,2\\n3,oops\\n")
    >>> read_csv(path)
    Traceback (most recent call last):
    ...
    bayesgmm._io.CSVError: .../points.csv: row 3, column 2 ('y'): 'oops' is not a number.
    """
    path = os.fspath(path)
    rows, delimiter = _read_rows(path, delimiter)
    if not rows:
        raise CSVError(f"{path}: the file is empty; expected rows of numbers separated by "
                       "commas, semicolons or tabs.")
    first_line, first_fields = rows[0]
    header = None
    if not any(_is_number(field) for field in first_fields):
        header = first_fields
        _check_header(path, first_line, header)
        rows = rows[1:]
        if not rows:
            raise CSVError(f"{path}: only a header (row {first_line}), no data rows.")
    n_fields = len(first_fields)
    positions = _select_columns(path, columns, header, n_fields)
    first_data = rows[0][1]
    hint = _numeric_columns_hint(first_data, header) if columns is None else None

    X = np.empty((len(rows), len(positions)), dtype=np.float64)
    lines = np.empty(len(rows), dtype=np.int64)
    keep = np.ones(len(rows), dtype=bool)
    for row_index, (line, fields) in enumerate(rows):
        if len(fields) != n_fields:
            where = (
                f"column {n_fields + 1} is one field too many"
                if len(fields) > n_fields
                else f"{_column_label(len(fields), header)} is missing"
            )
            raise CSVError(
                f"{path}: row {line}: {len(fields)} fields where row {first_line} has "
                f"{n_fields} ({where})."
            )
        lines[row_index] = line
        for out_index, position in enumerate(positions):
            text = fields[position].strip()
            if _is_missing(text):
                if drop_missing:
                    keep[row_index] = False
                    break
                if keep_missing:
                    X[row_index, out_index] = np.nan
                    continue
                label = _column_label(position, header)
                what = "empty cell" if not text else f"missing value ({text!r})"
                raise CSVError(f"{path}: row {line}, {label}: {what}; fill or remove the row, "
                               f"{missing_remedy}.")
            value = _number(text)
            if value is None:
                raise _not_a_number(path, line, _column_label(position, header), text,
                                    not _is_number(first_data[position].strip()), hint)
            if not math.isfinite(value):
                raise CSVError(f"{path}: row {line}, {_column_label(position, header)}: "
                               f"infinite value ({text!r}); remove or impute it.")
            X[row_index, out_index] = value
        if keep_missing and np.isnan(X[row_index]).all():
            used = ", ".join(_column_label(position, header) for position in positions)
            raise CSVError(f"{path}: row {line}: every used column is missing ({used}); there is "
                           "nothing to go on: fill or remove the row.")
    if not keep.any():
        raise CSVError(f"{path}: every one of the {len(rows)} data rows has a missing value; "
                       "no rows are left.")

    names = [
        header[position].strip() if header is not None and header[position].strip()
        else f"column {position + 1}"
        for position in positions
    ]
    return Table(X[keep], names, header is not None, lines[keep], lines[~keep], delimiter,
                 tuple(positions))


def write_completed(path, table: Table, completed, destination, draws=None) -> int:
    """Copy the CSV file ``path`` with the missing cells of ``table``'s columns filled in.

    The header, the other columns (labels, say), every observed cell (as
    written) and the delimiter are kept; blank lines are left out. A missing
    cell of a column of ``table`` becomes its value in ``completed``.

    Parameters
    ----------
    path : str or path-like
        The file ``table`` was read from (with ``keep_missing``).
    table : Table
    completed : ndarray of shape (n_rows, n_columns), or (n_draws, n_rows, n_columns)
        ``table.X`` with the missing entries filled in; with ``draws``, one
        completed copy per draw.
    destination : str, path-like or file object
        Where to write; a file object (e.g. ``sys.stdout``) is left open.
    draws : sequence of int, optional
        With a 3-D ``completed``: the copies are written one after the other
        (long format) under one header, each row led by a column ``draw``
        holding the number of its copy (``draws[i]`` for ``completed[i]``).

    Returns
    -------
    n_filled : int
        The number of cells filled in (in one copy).
    """
    path = os.fspath(path)
    rows, _ = _read_rows(path, table.delimiter)
    header = rows[0][1] if table.has_header else None
    body = rows[1:] if table.has_header else rows
    index_of_line = {int(line): index for index, line in enumerate(table.lines)}
    copies = completed[None] if draws is None else completed
    holes = np.isnan(table.X)

    def copy(values):
        for line, fields in body:
            index = index_of_line.get(line)
            if index is None:  # dropped (drop_missing): not in the table
                continue
            fields = list(fields)
            for column in np.flatnonzero(holes[index]):
                fields[table.positions[column]] = repr(float(values[index, column]))
            yield fields

    def write(handle):
        writer = csv.writer(handle, delimiter=table.delimiter, lineterminator="\n")
        if header is not None:
            writer.writerow((["draw"] if draws is not None else []) + header)
        for number, values in zip(draws if draws is not None else [None], copies):
            for fields in copy(values):
                writer.writerow(fields if number is None else [str(number)] + fields)

    if hasattr(destination, "write"):
        write(destination)
    else:
        with open(destination, "w", newline="", encoding="utf-8") as handle:
            write(handle)
    return int(holes.sum())


def write_csv(path, header, rows) -> None:
    """Write ``rows`` under ``header`` to ``path`` (a file path or an open text file).

    Parameters
    ----------
    path : str, path-like or file object
        Destination; a file object (e.g. ``sys.stdout``) is written to and left open.
    header : sequence of str
        Column names.
    rows : iterable of sequences
        One sequence per row; floats are written with ``repr`` precision so
        that they read back exactly.
    """
    def fmt(value):
        if isinstance(value, (float, np.floating)):
            return repr(float(value))
        return str(value)

    def write(handle):
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        for row in rows:
            writer.writerow([fmt(value) for value in row])

    if hasattr(path, "write"):
        write(path)
    else:
        with open(path, "w", newline="", encoding="utf-8") as handle:
            write(handle)
