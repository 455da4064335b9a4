"""TAU Urban Acoustic Scenes 2022 Mobile (development set): metadata, folds, 1 s clips at 32 kHz.

Layout (as released, read by the CP-JKU code):
- ``meta.csv``: tab-separated, header ``filename scene_label identifier source_label``, filenames like
  ``audio/airport-barcelona-0-0-0-a.wav`` (``<scene>-<city>-<location>-<segment>-<index>-<device>``);
- ``evaluation_setup/fold1_train.csv`` and ``fold1_evaluate.csv``: header ``filename scene_label``;
- ``audio/*.wav``.
Classes are the 10 scenes in alphabetical order; the device is the last ``-`` token of the file name.
The audio is resampled once into a 32 kHz cache (``desed_task.data.resample``: atomic, locked,
resumable). Items are ``{"input": (32000,) float32, "label", "group": device id, "index": meta row}``
plus ``"teacher_logits"`` when a teacher-logits tensor is given.

Teacher logits (knowledge distillation) are a float tensor saved with ``torch.save``: one row per
``meta.csv`` row (in file order), one column per class (alphabetical), raw logits (not probabilities).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import soundfile as sf
import torch
from torch.utils.data import Dataset

from desed_task.data.audio import AUDIO_EXTENSIONS, read_audio
from desed_task.data.manifest import check_audio_files
from desed_task.data.resample import resample_folder
from desed_task.utils.files import load_torch_file

log = logging.getLogger(__name__)

TAU22_CLASSES = ("airport", "bus", "metro", "metro_station", "park", "public_square", "shopping_mall",
                 "street_pedestrian", "street_traffic", "tram")
TAU22_DEVICES = ("a", "b", "c", "s1", "s2", "s3", "s4", "s5", "s6")
DEVICE_GROUPS = {"real": ["a", "b", "c"], "seen": ["s1", "s2", "s3"], "unseen": ["s4", "s5", "s6"]}
META_COLUMNS = ("filename", "scene_label", "identifier", "source_label")
FOLD_COLUMNS = ("filename", "scene_label")
SAMPLE_RATE = 32000
CLIP_SAMPLES = 32000
NO_TEACHER_HINT = "to train without distillation, pass --kd_lambda=1 (label loss only)"


def device_of(filename: str) -> str:
    """The recording device: the last ``-`` token of the file name, without extension."""
    return Path(filename).stem.rsplit("-", 1)[-1]


def _read_table(path: Path, columns: Sequence[str]) -> pd.DataFrame:
    if not path.is_file():
        raise FileNotFoundError(f"TAU22 metadata file not found: {path}")
    frame = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    missing = [column for column in columns if column not in frame.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}; expected a tab-separated header {list(columns)}")
    return frame


def read_meta(root: str | Path) -> pd.DataFrame:
    """``meta.csv`` with ``label`` (class index) and ``device`` columns; unknown scenes/devices are errors."""
    path = Path(root) / "meta.csv"
    frame = _read_table(path, META_COLUMNS)
    frame["device"] = frame["filename"].map(device_of)
    for row, (scene, device) in enumerate(zip(frame["scene_label"], frame["device"])):
        if scene not in TAU22_CLASSES:
            raise ValueError(f"{path}, line {row + 2}: unknown scene {scene!r} (known: {list(TAU22_CLASSES)})")
        if device not in TAU22_DEVICES:
            raise ValueError(f"{path}, line {row + 2}: unknown device {device!r} in {frame['filename'][row]!r}")
    frame["label"] = frame["scene_label"].map(TAU22_CLASSES.index)
    return frame


def read_fold(root: str | Path, meta: pd.DataFrame, split: str) -> np.ndarray:
    """Meta row indices of ``evaluation_setup/<split>.csv``; a file absent from meta.csv is an error."""
    path = Path(root) / "evaluation_setup" / f"{split}.csv"
    frame = _read_table(path, FOLD_COLUMNS[:1])
    rows = pd.Series(np.arange(len(meta)), index=meta["filename"])
    unknown = ~frame["filename"].isin(rows.index)
    if unknown.any():
        first = int(np.flatnonzero(unknown.to_numpy())[0])
        raise ValueError(f"{path}, line {first + 2}: {frame['filename'][first]!r} is not in meta.csv "
                         f"({int(unknown.sum())} such file(s))")
    return rows[frame["filename"]].to_numpy()


def load_teacher_logits(path: str | Path | None, n_rows: int) -> torch.Tensor:
    """The (n_rows, 10) float teacher-logits tensor; a missing file or a wrong shape is an error."""
    if path is None or not Path(path).is_file():
        raise FileNotFoundError(f"teacher logits not found: {path}; {NO_TEACHER_HINT}")
    logits = load_torch_file(path, weights_only=True, what="teacher-logits file", expected=torch.Tensor)
    if logits.ndim != 2 or logits.shape[1] != len(TAU22_CLASSES):
        raise ValueError(f"{path}: expected a (meta rows, {len(TAU22_CLASSES)}) tensor, got "
                         f"{getattr(logits, 'shape', type(logits))}")
    if logits.shape[0] != n_rows:
        raise ValueError(f"{path}: {logits.shape[0]} rows of teacher logits but meta.csv has {n_rows} rows")
    return logits.float()


def fix_length(audio: np.ndarray, length: int, name: str) -> np.ndarray:
    """Zero-pad or cut ``audio`` to ``length`` samples, warning when it had another length."""
    if len(audio) == length:
        return audio
    log.warning("%s has %d samples instead of %d at %d Hz: %s", name, len(audio), length, SAMPLE_RATE,
                "zero-padded" if len(audio) < length else "cut")
    return np.pad(audio, (0, length - len(audio))) if len(audio) < length else audio[:length]


class TAU22Dataset(Dataset):
    """The clips of meta rows ``rows``, read from the 32 kHz cache ``audio_dir``."""

    def __init__(self, meta: pd.DataFrame, rows: Sequence[int], audio_dir: str | Path,
                 teacher_logits: torch.Tensor | None = None):
        self.meta = meta
        self.rows = np.asarray(rows)
        self.audio_dir = Path(audio_dir)
        self.teacher_logits = teacher_logits

    def __len__(self) -> int:
        return len(self.rows)

    def devices(self) -> list[str]:
        return list(self.meta["device"].to_numpy()[self.rows])

    def __getitem__(self, position: int) -> dict:
        row = int(self.rows[position])
        record = self.meta.iloc[row]
        name = Path(record["filename"]).name
        audio, rate = sf.read(str(self.audio_dir / name), dtype="float32", always_2d=True)
        if rate != SAMPLE_RATE:
            raise ValueError(f"{self.audio_dir / name}: {rate} Hz in the {SAMPLE_RATE} Hz cache")
        item = {"input": torch.from_numpy(fix_length(audio.mean(axis=1), CLIP_SAMPLES, name).copy()),
                "label": int(record["label"]), "group": TAU22_DEVICES.index(record["device"]), "index": row}
        if self.teacher_logits is not None:
            item["teacher_logits"] = self.teacher_logits[row]
        return item


def build_tau22_datasets(root: str | Path, cache_dir: str | Path | None = None,
                         teacher_logits: str | Path | None = None, report_dir: str | Path | None = None,
                         train_split: str = "fold1_train", eval_split: str = "fold1_evaluate"):
    """(train, evaluate) datasets of a TAU22 development folder.

    Resamples ``root/audio`` into ``cache_dir`` (default ``root/audio_32k``) once; meta rows whose audio
    is missing or unreadable are skipped and listed in ``<report_dir>/missing_files_<split>.tsv``.
    With ``teacher_logits`` (a path) the training items carry their teacher's logits.
    """
    root = Path(root)
    meta = read_meta(root)
    cache = Path(cache_dir) if cache_dir is not None else root / "audio_32k"
    resample_folder(root / "audio", cache, SAMPLE_RATE)
    logits = load_teacher_logits(teacher_logits, len(meta)) if teacher_logits is not None else None
    datasets = []
    for split, with_teacher in ((train_split, True), (eval_split, False)):
        rows = read_fold(root, meta, split)
        names = [Path(meta["filename"][row]).name for row in rows]
        readable = check_audio_files(root / "audio", names, split, report_dir)
        rows = [row for row, name in zip(rows, names) if name in readable]
        if not rows:
            raise ValueError(f"split {split} of {root} has no readable audio (see the missing-files report)")
        datasets.append(TAU22Dataset(meta, rows, cache, logits if with_teacher else None))
    return tuple(datasets)


def load_impulse_responses(folder: str | Path, sample_rate: int = 32000) -> tuple[list[np.ndarray], list[str]]:
    """Every audio file of ``folder`` (sorted by name) as mono float32 at ``sample_rate``, and the names.

    An unreadable or empty file is skipped with a warning; a folder without any usable file is an error.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"impulse response folder not found: {folder}")
    paths = sorted((p for p in folder.iterdir() if p.suffix.lower() in AUDIO_EXTENSIONS and p.is_file()), key=str)
    responses, names = [], []
    for path in paths:
        try:
            response = read_audio(path, sample_rate)
        except Exception as error:  # one bad file must not stop training
            log.warning("skipping unreadable impulse response %s: %s", path, error)
            continue
        if response.size == 0 or not np.isfinite(response).all():
            log.warning("skipping empty or non-finite impulse response %s", path)
            continue
        responses.append(response)
        names.append(path.name)
    if not responses:
        raise ValueError(f"no usable impulse response (.wav/.flac) in {folder}")
    log.info("loaded %d device impulse responses from %s", len(responses), folder)
    return responses, names
