"""Reading and validating the DCASE evaluation inputs (ground truth, durations, detections, score tables).

Every check failure raises `EvaluationInputError` naming the file and the line (1-based, the header is line 1)
so that a bad submission can be fixed without guessing.

`float_precision` is passed to pandas' CSV reader. The default ("high") is the reader of pandas >= 1.3;
"legacy" is the reader older pandas used, which the published DCASE baseline figures were computed with
(it parses e.g. "7.688" one ulp off, which flips collar decisions sitting exactly on the 200 ms collar).
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

EVENT_COLUMNS = ["filename", "onset", "offset", "event_label"]
OPERATING_POINT_PATTERN = re.compile(r"predictions_th_(\d+(?:\.\d+)?)\.tsv$")


class EvaluationInputError(ValueError):
    """Invalid evaluation input; the message names the file and the line."""


def audio_id(filename: str) -> str:
    """Clip id used by sed_scores_eval: the file name without its extension."""
    return filename.rsplit(".", maxsplit=1)[0] if filename.endswith((".wav", ".flac", ".mp3", ".ogg")) else filename


def _read_table(path, float_precision: str | None) -> pd.DataFrame:
    path = Path(path)
    if not path.is_file():
        raise EvaluationInputError(f"{path}: file not found")
    with open(path) as handle:
        header = handle.readline()
    sep = "\t" if "\t" in header else ","
    table = pd.read_csv(path, sep=sep, float_precision=float_precision)
    unnamed = [column for column in table.columns if str(column).startswith("Unnamed:") or column == "index"]
    return table.drop(columns=unnamed)


def _require_columns(table: pd.DataFrame, columns: list[str], source) -> None:
    missing = [column for column in columns if column not in table.columns]
    if missing:
        raise EvaluationInputError(
            f"{source}, line 1: missing column(s) {missing}; found {list(table.columns)}"
        )


def _check_event_times(table: pd.DataFrame, source, allow_empty_rows: bool) -> None:
    """Times must be numbers, onsets >= 0 and onset <= offset; empty rows only where allowed."""
    for column in ("onset", "offset"):
        converted = pd.to_numeric(table[column], errors="coerce")
        bad = converted.isna() & table[column].notna()
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise EvaluationInputError(f"{source}, line {row + 2}: {column} {table[column].iloc[row]!r} is not a number")
        table[column] = converted.astype(float)
    empty = table["event_label"].isna()
    partial = empty != (table["onset"].isna() | table["offset"].isna())
    if partial.any() or (empty.any() and not allow_empty_rows):
        row = int(np.flatnonzero((partial | empty).to_numpy())[0])
        raise EvaluationInputError(f"{source}, line {row + 2}: incomplete event (empty label, onset or offset)")
    negative = (table["onset"] < 0) | (table["offset"] < 0)
    if negative.any():
        row = int(np.flatnonzero(negative.to_numpy())[0])
        raise EvaluationInputError(f"{source}, line {row + 2}: negative time")
    reversed_ = table["offset"] < table["onset"]
    if reversed_.any():
        row = int(np.flatnonzero(reversed_.to_numpy())[0])
        raise EvaluationInputError(
            f"{source}, line {row + 2}: offset {table['offset'].iloc[row]} is before onset {table['onset'].iloc[row]}"
        )


def load_ground_truth(path, float_precision: str | None = None) -> pd.DataFrame:
    """Ground-truth TSV -> DataFrame(filename, onset, offset, event_label).

    Clips without events keep one row with empty onset/offset/label (as in DESED), so that they still count
    as evaluated files. A DataFrame is validated and returned as a copy.
    """
    source = path if not isinstance(path, pd.DataFrame) else "ground truth"
    table = path.copy() if isinstance(path, pd.DataFrame) else _read_table(path, float_precision)
    _require_columns(table, EVENT_COLUMNS, source)
    table = table[EVENT_COLUMNS].reset_index(drop=True)
    _check_event_times(table, source, allow_empty_rows=True)
    return table


def load_durations(path, float_precision: str | None = None) -> dict[str, float]:
    """Durations TSV (filename, duration) -> {filename: seconds}. A dict is returned as a copy."""
    if isinstance(path, dict):
        return {str(key): float(value) for key, value in path.items()}
    table = _read_table(path, float_precision)
    _require_columns(table, ["filename", "duration"], path)
    durations = pd.to_numeric(table["duration"], errors="coerce")
    bad = durations.isna() | (durations <= 0)
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise EvaluationInputError(f"{path}, line {row + 2}: invalid duration {table['duration'].iloc[row]!r}")
    return dict(zip(table["filename"].astype(str), durations.astype(float)))


def validate_detections(
    table: pd.DataFrame, labels, durations: dict[str, float] | None, source="detections"
) -> pd.DataFrame:
    """Check a detection table: columns, times, known labels, clips listed in the durations."""
    _require_columns(table, EVENT_COLUMNS, source)
    table = table[EVENT_COLUMNS].reset_index(drop=True)
    _check_event_times(table, source, allow_empty_rows=False)
    if labels is not None:
        unknown = ~table["event_label"].isin(list(labels))
        if unknown.any():
            row = int(np.flatnonzero(unknown.to_numpy())[0])
            raise EvaluationInputError(
                f"{source}, line {row + 2}: unknown event label {table['event_label'].iloc[row]!r}"
            )
    if durations is not None:
        known = {audio_id(name) for name in durations}
        outside = ~table["filename"].astype(str).map(audio_id).isin(known)
        if outside.any():
            row = int(np.flatnonzero(outside.to_numpy())[0])
            raise EvaluationInputError(
                f"{source}, line {row + 2}: clip {table['filename'].iloc[row]!r} is not in the durations file"
            )
    return table


def load_detections(
    path, labels=None, durations: dict[str, float] | None = None, float_precision: str | None = None
) -> pd.DataFrame:
    """One detection file (TSV or CSV, optional index column) -> validated DataFrame(filename, onset, offset, event_label)."""
    return validate_detections(_read_table(path, float_precision), labels, durations, source=path)


def load_operating_points(
    directory, labels=None, durations: dict[str, float] | None = None, float_precision: str | None = None
) -> dict[float, pd.DataFrame]:
    """Folder of `predictions_th_<threshold>.tsv` files -> {threshold: validated detections}, sorted by threshold."""
    directory = Path(directory)
    files = {}
    for path in sorted(directory.iterdir()) if directory.is_dir() else []:
        match = OPERATING_POINT_PATTERN.search(path.name)
        if match:
            files[float(match.group(1))] = path
    if not files:
        raise EvaluationInputError(f"{directory}: no predictions_th_<threshold>.tsv files found")
    return {
        threshold: load_detections(files[threshold], labels, durations, float_precision) for threshold in sorted(files)
    }


def load_score_tables(directory, labels=None, durations: dict[str, float] | None = None) -> dict[str, pd.DataFrame]:
    """Folder of per-clip score TSVs (onset, offset, <class columns>) -> {audio id: DataFrame}."""
    directory = Path(directory)
    paths = sorted(directory.glob("*.tsv")) if directory.is_dir() else []
    if not paths:
        raise EvaluationInputError(f"{directory}: no score .tsv files found")
    known = None if durations is None else {audio_id(name) for name in durations}
    tables = {}
    for path in paths:
        table = pd.read_csv(path, sep="\t")
        columns = list(table.columns)
        if columns[:2] != ["onset", "offset"] or len(columns) < 3:
            raise EvaluationInputError(f"{path}, line 1: expected columns onset, offset, <classes>; found {columns}")
        if labels is not None and sorted(columns[2:]) != sorted(labels):
            raise EvaluationInputError(f"{path}, line 1: class columns {columns[2:]} differ from the labels {list(labels)}")
        values = table.to_numpy(dtype=float)
        if np.isnan(values).any():
            row = int(np.flatnonzero(np.isnan(values).any(axis=1))[0])
            raise EvaluationInputError(f"{path}, line {row + 2}: missing or non-numeric value")
        step = values[:, 1] - values[:, 0]
        if (values[:, 0] < 0).any() or (step <= 0).any():
            row = int(np.flatnonzero((values[:, 0] < 0) | (step <= 0))[0])
            raise EvaluationInputError(f"{path}, line {row + 2}: negative or reversed frame times")
        clip = path.name[: -len(".tsv")]
        if known is not None and clip not in known:
            raise EvaluationInputError(f"{path}: clip {clip!r} is not in the durations file")
        tables[clip] = table
    return tables
