"""Readers for the archive's file formats, with errors that name the file and the line.

* ``.tsv`` (UCR 2018 archive): one series per line, label first, tab separated, NaN-padded.
* ``.txt`` (older archive releases): the same, whitespace separated.
* ``.ts`` (the UEA/UCR site's per-dataset zips): ``@`` header lines, then ``v1,v2,...:label``.

All return ``(x, labels)`` with ``x`` float64 (N, L) NaN-padded and ``labels`` as strings
(label encoding happens once, in :mod:`tvq.data`, from the training labels).
"""
from __future__ import annotations

import io
import re
import warnings
from pathlib import Path

import numpy as np

from ..errors import DataFormatError

_WS = re.compile(r"[\t ,]+")


def read_table(text: str, source: str, sep: str | None = "\t") -> tuple[np.ndarray, np.ndarray]:
    """Parse a label-first delimited table (TSV or whitespace TXT)."""
    lines = [(i + 1, ln) for i, ln in enumerate(text.splitlines()) if ln.strip()]
    if not lines:
        raise DataFormatError(f"{source}: file is empty")
    # Fast path: numpy parses well-formed files in one call.
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            arr = np.loadtxt(io.StringIO(text), delimiter=sep, dtype=np.float64, ndmin=2)
        if arr.shape[1] >= 2:
            _check_values(arr[:, 1:], [n for n, _ in lines], source)
            return arr[:, 1:], _label_strings(arr[:, 0])
    except ValueError:
        pass
    # Slow path: find the first bad line and say what is wrong with it.
    return _diagnose(lines, source, sep)


def _diagnose(lines: list[tuple[int, str]], source: str, sep: str | None) -> tuple[np.ndarray, np.ndarray]:
    rows: list[list[float]] = []
    width = None
    for lineno, line in lines:
        cells = line.rstrip("\r\n").split(sep) if sep else line.split()
        if width is None:
            width = len(cells)
            if width < 2:
                raise DataFormatError(f"{source}:{lineno}: expected a label and at least one value, got {width} field(s)")
        elif len(cells) != width:
            raise DataFormatError(f"{source}:{lineno}: ragged row, {len(cells)} fields where line {lines[0][0]} has {width}")
        row = []
        for col, cell in enumerate(cells, start=1):
            try:
                row.append(float(cell))
            except ValueError:
                raise DataFormatError(f"{source}:{lineno}: field {col} is not a number: {cell.strip()[:30]!r}") from None
        rows.append(row)
    arr = np.asarray(rows, dtype=np.float64)
    _check_values(arr[:, 1:], [n for n, _ in lines], source)
    return arr[:, 1:], _label_strings(arr[:, 0])


def _check_values(x: np.ndarray, linenos: list[int], source: str) -> None:
    """NaN marks padding in the archive; an infinity, or a series with no value at all, is an error."""
    bad = np.isinf(x)
    if bad.any():
        row, col = map(int, np.argwhere(bad)[0])
        raise DataFormatError(f"{source}:{linenos[row]}: value {col + 1} is infinite ({x[row, col]})")
    empty = np.isnan(x).all(axis=1)
    if empty.any():
        raise DataFormatError(f"{source}:{linenos[int(np.argmax(empty))]}: the series has no values (all NaN)")


def _label_strings(labels: np.ndarray) -> np.ndarray:
    if np.isnan(labels).any():
        raise DataFormatError("a class label is missing (NaN)")
    # 1.0 and 1 are the same class; keep integral labels integral so they sort numerically.
    out = [str(int(v)) if float(v).is_integer() else repr(float(v)) for v in labels]
    return np.asarray(out)


def read_ts(text: str, source: str) -> tuple[np.ndarray, np.ndarray]:
    """Parse a univariate ``.ts`` file (sktime/aeon format), NaN-padding unequal lengths."""
    series: list[np.ndarray] = []
    labels: list[str] = []
    data_lines: list[int] = []
    in_data = False
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if not in_data:
            if line.lower().startswith("@data"):
                in_data = True
            continue
        if ":" not in line:
            raise DataFormatError(f"{source}:{lineno}: expected 'values:label'")
        values, label = line.rsplit(":", 1)
        if ":" in values:
            raise DataFormatError(f"{source}:{lineno}: multivariate series are not supported")
        try:
            vals = [float(v) if v.strip() not in ("?", "") else np.nan for v in values.split(",")]
        except ValueError:
            raise DataFormatError(f"{source}:{lineno}: a value is not a number") from None
        series.append(np.asarray(vals, dtype=np.float64))
        labels.append(label.strip())
        data_lines.append(lineno)
    if not series:
        raise DataFormatError(f"{source}: no data lines (missing @data section?)")
    for lineno, s in zip(data_lines, series):
        _check_values(s[None, :], [lineno], source)
    width = max(len(s) for s in series)
    x = np.full((len(series), width), np.nan)
    for i, s in enumerate(series):
        x[i, : len(s)] = s
    return x, _normalise_labels(labels)


def _normalise_labels(labels: list[str]) -> np.ndarray:
    out = []
    for lab in labels:
        try:
            v = float(lab)
            out.append(str(int(v)) if v.is_integer() else repr(v))
        except ValueError:
            out.append(lab)
    return np.asarray(out)


def read_file(path: Path, text: str | None = None, source: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Dispatch on the suffix."""
    source = source or str(path)
    if text is None:
        try:
            text = Path(path).read_text()
        except UnicodeDecodeError:
            raise DataFormatError(f"{source}: not a text file") from None
    suffix = Path(path).suffix.lower()
    if suffix == ".ts":
        return read_ts(text, source)
    if suffix == ".txt":
        return read_table(text, source, sep=None)
    return read_table(text, source, sep="\t")
