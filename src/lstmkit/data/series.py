"""Numeric sequences: UEA ``.ts`` classification, sunspot forecasting, the user's files.

* JapaneseVowels (UEA): 12 channels, lengths 7-29, 9 speakers, official 270/370 split,
  read from the ``.ts`` files that ``aeon`` ships (we parse the text ourselves; aeon is
  located with ``importlib.util.find_spec`` and never imported).
* Sunspots (yearly, ``statsmodels``' bundled CSV): train 1700-1920, test one-step
  forecasts 1921-1987 (the classic split of Tong 1990, used for the AR(9) baseline).
* User files: ``.npz`` with ``X`` (N, T, C) floats, optional ``lengths`` (N,), ``y`` (N,)
  labels, for classification; ``.csv`` with one numeric column for forecasting.
"""

from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass

import numpy as np
import torch

from lstmkit.data.errors import DataError, package_dir


@dataclass
class SeriesSet:
    """Variable-length multichannel series ``(T_i, C)`` with integer labels."""

    series: list[torch.Tensor]
    labels: list[int]

    def __len__(self) -> int:
        return len(self.series)


@dataclass
class SeriesData:
    train: SeriesSet
    valid: SeriesSet
    test: SeriesSet
    label_names: list[str]
    channels: int
    source: str


def parse_ts(path: str) -> tuple[list[np.ndarray], list[str]]:
    """Parse a UEA/sktime ``.ts`` file: returns ``(T, C)`` arrays and their class labels."""
    series, labels, in_data = [], [], False
    with open(path, encoding="utf-8") as f:
        for line_no, raw in enumerate(f, 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            if not in_data:
                in_data = line.lower().startswith("@data")
                continue
            *dims, label = line.split(":")
            try:
                chans = [
                    [float("nan") if v == "?" else float(v) for v in d.split(",")] for d in dims
                ]
            except ValueError as e:
                raise DataError(f"malformed number ({e})", f"{path}, line {line_no}") from e
            if len({len(c) for c in chans}) != 1:
                raise DataError(
                    "channels of one series differ in length", f"{path}, line {line_no}"
                )
            arr = np.asarray(chans, dtype=np.float32).T
            _check_finite(arr, f"{path}, line {line_no}")
            series.append(arr)
            labels.append(label.strip())
    if not series:
        raise DataError("no @data section or no series in it", path)
    return series, labels


def _check_finite(arr: np.ndarray, where: str) -> None:
    bad = np.argwhere(~np.isfinite(arr))
    if len(bad):
        step = int(bad[0][0])
        raise DataError(
            f"NaN or infinite value at time step {step}",
            where,
            "fill or drop missing values before training (e.g. interpolate)",
        )


def _split_valid(s: SeriesSet, frac: float, seed: int) -> tuple[SeriesSet, SeriesSet]:
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(len(s), generator=g).tolist()
    n_valid = max(1, int(round(len(s) * frac)))
    pick = lambda idx: SeriesSet([s.series[i] for i in idx], [s.labels[i] for i in idx])  # noqa: E731
    return pick(perm[n_valid:]), pick(perm[:n_valid])


def load_japanese_vowels(split_seed: int = 0, valid_frac: float = 0.1) -> SeriesData:
    """Official train (270) / test (370); ``valid_frac`` of train is held out for early stopping."""
    root = package_dir("aeon", "aeon", extra="sktime", why="it ships the JapaneseVowels .ts files")
    folder = os.path.join(root, "datasets", "data", "JapaneseVowels")
    parts = {}
    for split in ("TRAIN", "TEST"):
        path = os.path.join(folder, f"JapaneseVowels_{split}.ts")
        if not os.path.isfile(path):
            raise DataError(f"{path} is missing", fix="reinstall aeon: pip install -U aeon")
        parts[split] = parse_ts(path)
    names = sorted(set(parts["TRAIN"][1]), key=lambda x: (len(x), x))
    index = {n: i for i, n in enumerate(names)}
    sets = {
        k: SeriesSet([torch.from_numpy(a) for a in arrs], [index[lab] for lab in labs])
        for k, (arrs, labs) in parts.items()
    }
    train, valid = _split_valid(sets["TRAIN"], valid_frac, split_seed)
    return SeriesData(train, valid, sets["TEST"], names, 12, "aeon JapaneseVowels")


def load_series_npz(path: str, split_seed: int = 0) -> SeriesData:
    """User series for classification: ``X`` (N, T, C), optional ``lengths``, ``y`` labels."""
    if not os.path.isfile(path):
        raise DataError(f"data file not found: {path}", fix="check the path (.npz file)")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (ValueError, OSError) as e:
        raise DataError(
            f"cannot read .npz ({e})", path, "save with numpy.savez(X=..., y=...)"
        ) from e
    for key in ("X", "y"):
        if key not in arrays:
            raise DataError(
                f"array '{key}' missing (found {sorted(arrays)})",
                path,
                "save X (N, T, C) floats and y (N,) labels; lengths (N,) optional",
            )
    X, y = arrays["X"], arrays["y"]
    if X.ndim == 2:
        X = X[:, :, None]
    if X.ndim != 3 or len(y) != len(X):
        raise DataError(
            f"X has shape {X.shape} and y {y.shape}", path, "X must be (N, T, C), y (N,)"
        )
    lengths = arrays.get("lengths", np.full(len(X), X.shape[1]))
    series = []
    for i in range(len(X)):
        n = int(lengths[i])
        if not 1 <= n <= X.shape[1]:
            raise DataError(f"lengths[{i}] = {n} is outside 1..{X.shape[1]}", path)
        arr = X[i, :n].astype(np.float32)
        _check_finite(arr, f"{path}, example {i}")
        series.append(torch.from_numpy(arr))
    names = sorted({str(v) for v in y.tolist()})
    index = {n: i for i, n in enumerate(names)}
    full = SeriesSet(series, [index[str(v)] for v in y.tolist()])
    rest, test = _split_valid(full, 0.1, split_seed)
    train, valid = _split_valid(rest, 0.1, split_seed + 1)
    from lstmkit.data.text import check_labels_in_train

    check_labels_in_train({names[i] for i in train.labels}, [names[i] for i in full.labels], path)
    return SeriesData(train, valid, test, names, X.shape[2], path)


@dataclass
class Forecasting:
    """A univariate series with the index where the test segment starts."""

    values: np.ndarray
    times: np.ndarray
    test_start: int
    test_end: int
    source: str


def load_sunspots() -> Forecasting:
    """Yearly sunspot numbers: train 1700-1920, test one-step forecasts 1921-1987."""
    root = package_dir("statsmodels", "statsmodels", extra="timeseries", why="it ships sunspots")
    path = os.path.join(root, "datasets", "sunspots", "sunspots.csv")
    years, values = [], []
    with open(path, encoding="utf-8") as f:
        for row in csv.DictReader(f):
            years.append(int(float(row["YEAR"])))
            values.append(float(row["SUNACTIVITY"]))
    years_a = np.asarray(years)
    start = int(np.searchsorted(years_a, 1921))
    end = int(np.searchsorted(years_a, 1987)) + 1
    return Forecasting(
        np.asarray(values, dtype=np.float64), years_a, start, end, "statsmodels sunspots"
    )


def _is_number(s: str) -> bool:
    try:
        float(s)
    except ValueError:
        return False
    return True


def load_series_csv(path: str, column: str | None = None, test_frac: float = 0.2) -> Forecasting:
    """User series for forecasting: one numeric column (header optional); last 20% is test."""
    if not os.path.isfile(path):
        raise DataError(f"data file not found: {path}", fix="check the path (.csv file)")
    with open(path, encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f))
    col, first = 0, 0
    if rows and rows[0] and not _is_number(rows[0][0]):
        header = [h.strip() for h in rows[0]]
        first = 1
        if column is not None:
            if column not in header:
                raise DataError(f"no column '{column}' in {header}", f"{path}, line 1")
            col = header.index(column)
        elif len(header) > 1:
            col = len(header) - 1
    body = rows[first:]
    while body and not "".join(body[-1]).strip():  # blank lines at the end of the file
        body.pop()
    values = []
    for line_no, row in enumerate(body, first + 1):
        if not row or not "".join(row).strip():
            raise DataError(
                "empty line: a missing value",
                f"{path}, line {line_no}",
                "fill or drop missing values before training (e.g. interpolate); "
                "a forecast needs every time step",
            )
        if col < len(row) and not row[col].strip():
            raise DataError(
                "empty cell: a missing value",
                f"{path}, line {line_no}",
                "fill or drop missing values before training (e.g. interpolate)",
            )
        try:
            v = float(row[col])
        except (ValueError, IndexError) as e:
            raise DataError(
                f"not a number: {row[col] if col < len(row) else '(missing)'!r}",
                f"{path}, line {line_no}",
                "every row needs a numeric value",
            ) from e
        if not math.isfinite(v):
            raise DataError(
                "NaN or infinite value",
                f"{path}, line {line_no}",
                "fill or drop missing values before training (e.g. interpolate)",
            )
        values.append(v)
    if len(values) < 30:
        raise DataError(f"only {len(values)} values; forecasting needs at least 30", path)
    n = len(values)
    return Forecasting(np.asarray(values), np.arange(n), n - int(n * test_frac), n, path)
