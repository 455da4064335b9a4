"""Reading and validating the DCASE evaluation inputs (ground truth, durations, detections, score tables).

Every check failure raises `EvaluationInputError` naming the file and the line (1-based, the header is line 1)
so that a bad submission can be fixed without guessing.

`float_precision` is passed to pandas' CSV reader. The default ("high") is the reader of pandas >= 1.3;
"legacy" is the reader older pandas used, which the published DCASE baseline figures were computed with
(it parses e.g. "7.688" one ulp off, which flips collar decisions sitting exactly on the 200 ms collar).

Times are compared with clip durations with a tolerance of `TIME_TOLERANCE` (1 ms): DESED files write times
to the millisecond, so a time that exceeds a duration by less than that is rounding, not an error.

Ground-truth events may end up to `GROUND_TRUTH_END_TOLERANCE` (0.2 s) after their clip: DESED's durations
files give durations to 0.1 s, and 16 events of the real validation ground truth end up to 0.115 s after
them. Such events are clipped to the clip's end (`clip_ground_truth_ends`); a wrong durations file puts
events seconds past the end, which stays an error.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from desed_task.data.classes import DESED_CLASSES

EVENT_COLUMNS = ["filename", "onset", "offset", "event_label"]
OPERATING_POINT_PATTERN = re.compile(r"predictions_th_(\d+(?:\.\d+)?)\.tsv$")
TIME_TOLERANCE = 1e-3
GROUND_TRUTH_END_TOLERANCE = 0.2


class EvaluationInputError(ValueError):
    """Invalid evaluation input; the message names the file and the line."""


def audio_id(filename: str) -> str:
    """Clip id used by sed_scores_eval: the file name without its extension."""
    return filename.rsplit(".", maxsplit=1)[0] if filename.endswith((".wav", ".flac", ".mp3", ".ogg")) else filename


def parse_classes(value: str | None) -> list[str]:
    """`--classes`: None -> the ten DESED classes; a file (one class a line) or a comma-separated list."""
    if value is None:
        return list(DESED_CLASSES)
    path = Path(value)
    if path.is_file():
        classes = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    elif "," not in value and (path.suffix in {".txt", ".tsv", ".csv"} or "/" in value):
        raise EvaluationInputError(f"--classes {value}: file not found")
    else:
        classes = [name.strip() for name in value.split(",") if name.strip()]
    if not classes or len(set(classes)) != len(classes):
        raise EvaluationInputError(f"--classes {value!r}: expected distinct class names (a comma list or a file)")
    return classes


def _read_csv(path: Path, **kwargs) -> pd.DataFrame:
    """pandas' reader with its parse failures turned into `EvaluationInputError` naming the file and line."""
    try:
        return pd.read_csv(path, **kwargs)
    except pd.errors.ParserError as error:
        found = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(error))
        if found:
            expected, line, saw = found.groups()
            raise EvaluationInputError(f"{path}, line {line}: {saw} fields, the header has {expected}") from None
        raise EvaluationInputError(f"{path}: cannot be parsed ({error})") from None
    except UnicodeDecodeError as error:
        raise EvaluationInputError(f"{path}: not a text file ({error.reason} at byte {error.start})") from None


def _read_table(path, float_precision: str | None, allow_empty: bool = False) -> pd.DataFrame:
    """A TSV (or CSV, told by the header) with index columns dropped; a 0-byte file is an error unless allowed."""
    path = Path(path)
    if not path.is_file():
        raise EvaluationInputError(f"{path}: file not found")
    with open(path, errors="replace") as handle:
        header = handle.readline()
    if not header.strip():
        if allow_empty:
            return pd.DataFrame(columns=EVENT_COLUMNS)
        raise EvaluationInputError(f"{path}, line 1: empty file (no header)")
    sep = "\t" if "\t" in header else ","
    table = _read_csv(path, sep=sep, float_precision=float_precision)
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


def _check_labels(table: pd.DataFrame, labels, source) -> None:
    """Every non-empty `event_label` must be one of `labels` (None: no check)."""
    if labels is None:
        return
    unknown = table["event_label"].notna() & ~table["event_label"].isin(list(labels))
    if unknown.any():
        row = int(np.flatnonzero(unknown.to_numpy())[0])
        raise EvaluationInputError(
            f"{source}, line {row + 2}: unknown event label {table['event_label'].iloc[row]!r}; "
            f"known classes: {', '.join(labels)} (set others with --classes)"
        )


def load_ground_truth(path, float_precision: str | None = None, labels=None) -> pd.DataFrame:
    """Ground-truth TSV -> DataFrame(filename, onset, offset, event_label).

    Clips without events keep one row with empty onset/offset/label (as in DESED), so that they still count
    as evaluated files. With `labels`, a label outside them is an error. A DataFrame is validated and
    returned as a copy.
    """
    source = path if not isinstance(path, pd.DataFrame) else "ground truth"
    table = path.copy() if isinstance(path, pd.DataFrame) else _read_table(path, float_precision)
    _require_columns(table, EVENT_COLUMNS, source)
    table = table[EVENT_COLUMNS].reset_index(drop=True)
    _check_event_times(table, source, allow_empty_rows=True)
    _check_labels(table, labels, source)
    return table


def check_within_durations(
    table: pd.DataFrame, durations: dict[str, float], source, durations_source, allow_past_duration: bool = False,
    require_every_clip: bool = True,
) -> tuple[int, float]:
    """Clips of `table` must be in `durations`; events must end by their clip's duration (+ `TIME_TOLERANCE`).

    An unknown clip is always an error naming both files. An event past its clip's end is an error too,
    unless `allow_past_duration`: then such events are kept as they are (as sed_eval and psds_eval do) and
    (number of such rows, largest overshoot in seconds) is returned for the caller to report.
    """
    if table.empty:
        return 0, 0.0
    known = {audio_id(name): value for name, value in durations.items()}
    clip_duration = table["filename"].astype(str).map(audio_id).map(known)
    outside = clip_duration.isna()
    if outside.any() and require_every_clip:
        row = int(np.flatnonzero(outside.to_numpy())[0])
        raise EvaluationInputError(
            f"{source}, line {row + 2}: clip {table['filename'].iloc[row]!r} is not in the durations file {durations_source}"
        )
    overshoot = (table["offset"] - clip_duration).fillna(-np.inf).to_numpy()
    past = overshoot > TIME_TOLERANCE
    if past.any() and not allow_past_duration:
        row = int(np.flatnonzero(past)[0])
        raise EvaluationInputError(
            f"{source}, line {row + 2}: event ends at {table['offset'].iloc[row]:g} s, after the end of clip "
            f"{table['filename'].iloc[row]!r} ({clip_duration.iloc[row]:g} s in {durations_source}); "
            "fix the files or pass --allow_events_past_duration to score such events as given"
        )
    return int(past.sum()), float(overshoot[past].max()) if past.any() else 0.0


def clip_ground_truth_ends(
    ground_truth: pd.DataFrame, durations: dict[str, float], tolerance: float = GROUND_TRUTH_END_TOLERANCE,
) -> tuple[pd.DataFrame, int, float]:
    """Clip ground-truth events ending less than `tolerance` after their clip's duration to that duration.

    Returns (table, number of events clipped, largest overshoot). Events further past the end and clips
    absent from `durations` are left as they are, for `check_within_durations` to report.
    """
    if ground_truth.empty:
        return ground_truth, 0, 0.0
    known = {audio_id(name): value for name, value in durations.items()}
    clip_duration = ground_truth["filename"].astype(str).map(audio_id).map(known)
    overshoot = (ground_truth["offset"] - clip_duration).fillna(-np.inf).to_numpy()
    near = (overshoot > TIME_TOLERANCE) & (overshoot <= tolerance)
    if not near.any():
        return ground_truth, 0, 0.0
    clipped = ground_truth.copy()
    clipped.loc[near, "offset"] = clip_duration[near]
    return clipped, int(near.sum()), float(overshoot[near].max())


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
    table: pd.DataFrame, labels, durations: dict[str, float] | None, source="detections",
    durations_source="the durations", allow_past_duration: bool = False,
) -> pd.DataFrame:
    """Check a detection table: columns, times, known labels, clips listed in the durations and, unless
    `allow_past_duration`, events ending by their clip's duration."""
    _require_columns(table, EVENT_COLUMNS, source)
    table = table[EVENT_COLUMNS].reset_index(drop=True)
    _check_event_times(table, source, allow_empty_rows=False)
    _check_labels(table, labels, source)
    if durations is not None:
        check_within_durations(table, durations, source, durations_source, allow_past_duration)
    return table


def load_detections(
    path, labels=None, durations: dict[str, float] | None = None, float_precision: str | None = None,
    durations_source="the durations", allow_past_duration: bool = False,
) -> pd.DataFrame:
    """One detection file (TSV or CSV, optional index column) -> validated DataFrame(filename, onset, offset, event_label).

    A header-only or 0-byte file is a system that detected nothing: zero rows.
    """
    table = _read_table(path, float_precision, allow_empty=True)
    return validate_detections(table, labels, durations, path, durations_source, allow_past_duration)


def load_operating_points(
    directory, labels=None, durations: dict[str, float] | None = None, float_precision: str | None = None,
    durations_source="the durations", allow_past_duration: bool = False,
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
        threshold: load_detections(
            files[threshold], labels, durations, float_precision, durations_source, allow_past_duration)
        for threshold in sorted(files)
    }


def load_score_tables(
    directory, labels=None, durations: dict[str, float] | None = None, durations_source="the durations",
    allow_past_duration: bool = False,
) -> dict[str, pd.DataFrame]:
    """Folder of per-clip score TSVs (onset, offset, <class columns>) -> {audio id: DataFrame}.

    With `durations`, every clip must be listed there and, unless `allow_past_duration`, its last frame
    must end by the clip's duration (+ `TIME_TOLERANCE`).
    """
    directory = Path(directory)
    paths = sorted(directory.glob("*.tsv")) if directory.is_dir() else []
    if not paths:
        raise EvaluationInputError(f"{directory}: no score .tsv files found")
    known = None if durations is None else {audio_id(name): value for name, value in durations.items()}
    tables = {}
    for path in paths:
        table = _read_table(path, None)
        columns = list(table.columns)
        if columns[:2] != ["onset", "offset"] or len(columns) < 3:
            raise EvaluationInputError(f"{path}, line 1: expected columns onset, offset, <classes>; found {columns}")
        if labels is not None and sorted(columns[2:]) != sorted(labels):
            raise EvaluationInputError(f"{path}, line 1: class columns {columns[2:]} differ from the classes {list(labels)}")
        values = table.to_numpy(dtype=float)
        if not len(values):
            raise EvaluationInputError(f"{path}, line 2: no frames")
        if np.isnan(values).any():
            row = int(np.flatnonzero(np.isnan(values).any(axis=1))[0])
            raise EvaluationInputError(f"{path}, line {row + 2}: missing or non-numeric value")
        step = values[:, 1] - values[:, 0]
        if (values[:, 0] < 0).any() or (step <= 0).any():
            row = int(np.flatnonzero((values[:, 0] < 0) | (step <= 0))[0])
            raise EvaluationInputError(f"{path}, line {row + 2}: negative or reversed frame times")
        clip = path.name[: -len(".tsv")]
        if known is not None and clip not in known:
            raise EvaluationInputError(f"{path}: clip {clip!r} is not in the durations file {durations_source}")
        if known is not None and not allow_past_duration and values[-1, 1] > known[clip] + TIME_TOLERANCE:
            raise EvaluationInputError(
                f"{path}, line {len(values) + 1}: last frame ends at {values[-1, 1]:g} s, after the end of the clip "
                f"({known[clip]:g} s in {durations_source}); pass --allow_events_past_duration to score it as given"
            )
        tables[clip] = table
    return tables


def check_scores_cover_ground_truth(scores: dict, ground_truth: pd.DataFrame, directory, ground_truth_source) -> None:
    """Every ground-truth clip needs a score table: a missing one would silently leave the clip out."""
    clips = ground_truth["filename"].astype(str).map(audio_id)
    missing = ~clips.isin(list(scores))
    if missing.any():
        rows = np.flatnonzero(missing.to_numpy())
        n_missing = clips[missing].nunique()
        raise EvaluationInputError(
            f"{directory}: no score table {clips.iloc[rows[0]]}.tsv for clip {ground_truth['filename'].iloc[rows[0]]!r} "
            f"({ground_truth_source}, line {rows[0] + 2})" + (f" and {n_missing - 1} other clips" if n_missing > 1 else "")
        )
