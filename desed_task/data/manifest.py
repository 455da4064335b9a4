"""Reading and validating DESED metadata (strong, weak, unlabeled, durations) against the audio on disk.

Everything that can go wrong with a dataset is detected here, when the datasets are built, so a
training run never crashes mid-epoch:
- a listed file that is absent, unreadable (soundfile.info fails), truncated (it holds fewer frames than
  its header declares: `audio.check_complete`, which reads the WAV header or decodes the last frames of
  other formats, never the whole file) or whose duration disagrees with the split's durations file by
  more than DURATION_TOLERANCE, is skipped, logged and written with the reason to
  `missing_files_<split>.tsv` in the report directory; a file missing from a resample cache because its
  source was refused (see `resample`) is reported with the source's path and reason;
- malformed annotations (unknown label, onset > offset, negative or missing times) raise a ValueError
  naming the TSV path and line number;
- an event past the end of its clip is clipped to the clip duration (as DCASE does), with a warning;
- a split left without any file raises a ValueError naming the config key that points to it.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import soundfile as sf

from desed_task.data.audio import IncompleteAudioError, check_complete, list_audio_files
from desed_task.data.resample import rejected_sources
from desed_task.utils.errors import BadInput, MissingInput
from desed_task.utils.files import write_tsv

log = logging.getLogger(__name__)

STRONG_COLUMNS = ("filename", "onset", "offset", "event_label")
WEAK_COLUMNS = ("filename", "event_labels")
Event = tuple[str, float, float]
DURATION_TOLERANCE = 0.1  # seconds; DESED's real validation durations are rounded to 0.1 s


@dataclass(frozen=True)
class AudioInfo:
    duration: float
    samplerate: int


def _describe(source) -> str:
    """Path of a TSV for messages; a DataFrame names its file through `frame.attrs["source"]`."""
    if isinstance(source, pd.DataFrame):
        return str(source.attrs.get("source", "<DataFrame>"))
    return str(source)


def _read_tsv(source, columns: Sequence[str], split: str) -> pd.DataFrame:
    """Read a TSV (or take a DataFrame) and check its header; `filename` stays a string."""
    if isinstance(source, pd.DataFrame):
        frame = source
    else:
        if not Path(source).is_file():
            raise MissingInput(f"metadata file of split '{split}' not found: {source}")
        frame = pd.read_csv(source, sep="\t", dtype={"filename": str, "event_label": str, "event_labels": str})
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise BadInput(f"{_describe(source)}: missing column(s) {missing}; expected header {list(columns)}")
    return frame


def _line(index) -> int:
    """1-based TSV line number of the row with DataFrame index `index` (line 1 is the header).

    Subsets of a TSV (e.g. the weak train/validation split) keep their original index, so the
    number still points at the right line of the file."""
    return int(index) + 2


def check_audio_files(
    folder: str | Path, filenames: Sequence[str], split: str, report_dir: str | Path | None = None,
    durations: str | Path | None = None,
) -> dict[str, AudioInfo]:
    """Check each file without decoding it; return the usable ones and report the others (missing,
    unreadable, truncated, or of another duration than the `durations` TSV lists when one is given)."""
    listed = read_durations(durations) if durations is not None else {}
    refused = rejected_sources(folder)
    readable, skipped = {}, []
    for name in filenames:
        path = Path(folder) / name
        if not path.is_file():
            skipped.append((name, str(path), refused.get(name, "missing")))
            continue
        info, problem = _inspect(path)
        if problem is not None:
            skipped.append((name, str(path), problem))
            continue
        duration = info.frames / info.samplerate
        if name in listed and abs(duration - listed[name]) > DURATION_TOLERANCE:
            skipped.append((name, str(path), f"duration {duration:.3f} s disagrees with {durations} "
                                             f"({listed[name]:.3f} s)"))
            continue
        readable[name] = AudioInfo(duration=duration, samplerate=info.samplerate)
    _report_skipped(skipped, split, report_dir)
    return readable


def _inspect(path: Path):
    """(soundfile info, None) for a readable, complete file; (None, reason) otherwise."""
    try:
        info = sf.info(str(path))
    except Exception as error:  # soundfile raises several types for corrupt headers
        return None, f"unreadable: {error}".replace("\t", " ").replace("\n", " ")
    if info.frames <= 0:
        return None, "unreadable: no audio frames"
    try:
        check_complete(path, info)
    except IncompleteAudioError as error:
        return None, str(error)
    return info, None


def _report_skipped(skipped: list[tuple[str, str, str]], split: str, report_dir: str | Path | None) -> None:
    report = Path(report_dir) / f"missing_files_{split}.tsv" if report_dir is not None else None
    if skipped:
        log.warning(
            "split '%s': skipping %d missing, unreadable or truncated audio file(s), e.g. %s (%s)%s",
            split, len(skipped), skipped[0][1], skipped[0][2], f"; full list in {report}" if report else "",
        )
        if report is not None:
            report.parent.mkdir(parents=True, exist_ok=True)
            pd.DataFrame(skipped, columns=["filename", "path", "reason"]).to_csv(report, sep="\t", index=False)
    elif report is not None and report.exists():
        report.unlink()


def _require_non_empty(items, split: str, config_key: str | None, location) -> None:
    if not items:
        key = f"config key data.{config_key} = {location}" if config_key else f"{location}"
        raise BadInput(f"split '{split}' is empty (no usable audio file): check {key}")


def _as_time(value, name: str, where: str) -> float:
    try:
        time = float(value)
    except (TypeError, ValueError):
        raise BadInput(f"{where}: {name} {value!r} is not a number") from None
    if np.isnan(time):
        raise BadInput(f"{where}: {name} is missing for a row that has an event label")
    if time < 0:
        raise BadInput(f"{where}: negative {name} {time}")
    return time


def read_strong_annotations(
    source,
    folder: str | Path,
    labels: Sequence[str],
    split: str,
    config_key: str | None = None,
    report_dir: str | Path | None = None,
    durations: str | Path | None = None,
) -> tuple[dict[str, list[Event]], dict[str, AudioInfo]]:
    """Validated strong annotations: ({filename: [(label, onset, offset), ...]}, {filename: AudioInfo}).

    Clips listed with empty onset/offset/label are kept with no event. With a `durations` TSV, a clip
    whose audio is longer or shorter than listed is skipped and reported.
    """
    frame = _read_tsv(source, STRONG_COLUMNS, split)
    known = set(labels)
    events: dict[str, list[Event]] = {}
    for index, name, onset, offset, label in frame[list(STRONG_COLUMNS)].itertuples(name=None):
        where = f"{_describe(source)} line {_line(index)}"
        if not isinstance(name, str) or not name:
            raise BadInput(f"{where}: empty filename")
        clip_events = events.setdefault(name, [])
        has_label = isinstance(label, str) and label != ""
        if not has_label:
            if not (pd.isna(onset) and pd.isna(offset)):
                raise BadInput(f"{where}: onset/offset given without an event label")
            continue
        if label not in known:
            raise BadInput(f"{where}: unknown event label {label!r} (known: {sorted(known)})")
        onset = _as_time(onset, "onset", where)
        offset = _as_time(offset, "offset", where)
        if onset > offset:
            raise BadInput(f"{where}: onset {onset} is after offset {offset}")
        clip_events.append((label, onset, offset, _line(index)))
    infos = check_audio_files(folder, list(events), split, report_dir, durations)
    _require_non_empty(infos, split, config_key, f"{_describe(source)} with audio in {folder}")
    return {name: _clip_to_duration(events[name], infos[name].duration, source, split) for name in infos}, infos


def _clip_to_duration(events, duration: float, source, split: str) -> list[Event]:
    """Clip offsets past the clip end to the clip duration; drop events starting after it."""
    kept = []
    for label, onset, offset, line in events:
        if offset > duration:
            log.warning(
                "split '%s': %s line %d: event %s ends at %.3f s after the clip end (%.3f s); clipped",
                split, _describe(source), line, label, offset, duration,
            )
            if onset >= duration:
                continue
            offset = duration
        kept.append((label, onset, offset))
    return kept


def read_weak_annotations(
    source,
    folder: str | Path,
    labels: Sequence[str],
    split: str,
    config_key: str | None = None,
    report_dir: str | Path | None = None,
) -> tuple[dict[str, list[str]], dict[str, AudioInfo]]:
    """Validated weak annotations: ({filename: [label, ...]}, {filename: AudioInfo})."""
    frame = _read_tsv(source, WEAK_COLUMNS, split)
    known = set(labels)
    clip_labels: dict[str, list[str]] = {}
    for index, name, joined in frame[list(WEAK_COLUMNS)].itertuples(name=None):
        where = f"{_describe(source)} line {_line(index)}"
        if not isinstance(name, str) or not name:
            raise BadInput(f"{where}: empty filename")
        names = [label for label in joined.split(",") if label] if isinstance(joined, str) else []
        for label in names:
            if label not in known:
                raise BadInput(f"{where}: unknown event label {label!r} (known: {sorted(known)})")
        clip_labels.setdefault(name, [])
        clip_labels[name] += [label for label in names if label not in clip_labels[name]]
    infos = check_audio_files(folder, list(clip_labels), split, report_dir)
    _require_non_empty(infos, split, config_key, f"{_describe(source)} with audio in {folder}")
    return {name: clip_labels[name] for name in infos}, infos


def scan_unlabeled(
    folder: str | Path, split: str, config_key: str | None = None, report_dir: str | Path | None = None
) -> dict[str, AudioInfo]:
    """Readable audio files of an unlabeled folder: {filename: AudioInfo}."""
    if not Path(folder).is_dir():
        _require_non_empty([], split, config_key, f"{folder} (folder not found)")
    infos = check_audio_files(folder, list_audio_files(folder), split, report_dir)
    _require_non_empty(infos, split, config_key, folder)
    return infos


def read_durations(path: str | Path) -> dict[str, float]:
    """Durations TSV (filename, duration) -> {filename: seconds}."""
    frame = pd.read_csv(path, sep="\t", dtype={"filename": str})
    return dict(zip(frame["filename"], frame["duration"].astype(float)))


def write_durations(folder: str | Path, path: str | Path, filenames: Sequence[str] | None = None) -> None:
    """Write the durations TSV of the audio files in `folder` (all of them by default), atomically."""
    names = list_audio_files(folder) if filenames is None else list(filenames)
    rows = [(name, sf.info(str(Path(folder) / name)).duration) for name in names]
    write_tsv(pd.DataFrame(rows, columns=["filename", "duration"]), path, "%.3f")
