"""MAESTRO Real (DCASE 2024 Task 4): long recordings with soft (annotator-confidence) labels, cut into 10 s chunks.

Official layout (Zenodo 7244360): ``development_audio/<scene>/<recording>.wav`` and
``development_annotation/<...>/<recording>.txt``, each annotation line ``onset<TAB>offset<TAB>label<TAB>confidence``
with no header. Recordings are cut into ``window`` s chunks every ``hop`` s (1 s for training, 5 s for
validation and dev-test): every full window, plus one shorter final chunk from the next hop to the end when
audio remains; a recording shorter than one window gives one chunk that is zero-padded. Chunk names are
``<recording>-<start>-<end>.wav`` with times in hundredths of a second on 6 digits, as the official chunker
writes them.

Events overlapping a chunk are made chunk-relative and clipped; their confidence becomes the frame target
(soft labels; where same-class events overlap the one written last wins, as the official encoder does).
Training chunks also get a renamed copy of each event of a MAESTRO class that maps to a DESED class
(``MAESTRO_TO_DESED``); evaluation ground truth keeps the events with confidence > 0.5.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd
import soundfile as sf
import torch
from torch.utils.data import Dataset

from desed_task.data.audio import resample, to_mono
from desed_task.data.classes import DESED_CLASSES
from desed_task.data.encoder import ManyHotEncoder
from desed_task.utils.errors import BadInput, MissingInput

MAESTRO_CLASSES = (
    "cutlery and dishes", "furniture dragging", "people talking", "children voices", "coffee machine",
    "footsteps", "large_vehicle", "car", "brakes_squeaking", "cash register beeping", "announcement",
    "shopping cart", "metro leaving", "metro approaching", "door opens/closes", "wind_blowing", "birds_singing",
)
DCASE2024_CLASSES = DESED_CLASSES + MAESTRO_CLASSES
MAESTRO_EVAL_CLASSES = (
    "birds_singing", "car", "people talking", "footsteps", "children voices", "wind_blowing", "brakes_squeaking",
    "large_vehicle", "cutlery and dishes", "metro approaching", "metro leaving",
)
MAESTRO_TO_DESED = {"people talking": "Speech", "children voices": "Speech", "announcement": "Speech",
                    "cutlery and dishes": "Dishes"}
MAESTRO_VALID_CLASSES = MAESTRO_CLASSES + ("Speech", "Dog", "Dishes")
SCENES = ("cafe_restaurant", "city_center", "grocery_store", "metro_station", "residential_area")
EVAL_CONFIDENCE = 0.5


def class_mask(valid: Iterable[str], labels: Sequence[str] = DCASE2024_CLASSES) -> torch.Tensor:
    """(len(labels),) bool: True for the classes a dataset annotates (its losses and attention use only those)."""
    valid = set(valid)
    unknown = valid - set(labels)
    if unknown:
        raise BadInput(f"class mask names unknown classes {sorted(unknown)}")
    return torch.tensor([label in valid for label in labels])


@dataclass(frozen=True)
class Event:
    onset: float
    offset: float
    label: str
    confidence: float


def read_annotation_file(path: str | Path, classes: Sequence[str] = MAESTRO_CLASSES) -> list[Event]:
    """Events of one recording's annotation file; a malformed line is an error naming the file and line."""
    path = Path(path)
    events = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.rstrip("\n").split("\t")
        where = f"{path}:{number}"
        if len(fields) != 4:
            raise BadInput(f"{where}: expected 'onset<TAB>offset<TAB>label<TAB>confidence', got {line!r}")
        try:
            onset, offset, confidence = float(fields[0]), float(fields[1]), float(fields[3])
        except ValueError:
            raise BadInput(f"{where}: onset, offset and confidence must be numbers, got {line!r}") from None
        if fields[2] not in classes:
            raise BadInput(f"{where}: unknown class {fields[2]!r}; MAESTRO classes: {list(classes)}")
        if not 0.0 <= confidence <= 1.0:
            raise BadInput(f"{where}: confidence {confidence} is outside [0, 1]")
        if not 0.0 <= onset < offset:
            raise BadInput(f"{where}: onset {onset} must be >= 0 and before offset {offset}")
        events.append(Event(onset, offset, fields[2], confidence))
    return events


def chunk_bounds(duration: float, window: float = 10.0, hop: float = 1.0) -> list[tuple[float, float]]:
    """(start, end) seconds of the chunks of a recording (see the module docstring)."""
    if duration <= window:
        return [(0.0, duration)]
    count = int(np.floor((duration - window) / hop + 1e-9)) + 1
    bounds = [(i * hop, i * hop + window) for i in range(count)]
    if bounds[-1][1] < duration - 1e-9:
        bounds.append((count * hop, duration))
    return bounds


def chunk_name(recording: str, start: float, end: float) -> str:
    return f"{recording}-{int(round(start * 100)):06d}-{int(round(end * 100)):06d}.wav"


def chunk_events(events: Sequence[Event], start: float, end: float) -> list[Event]:
    """Events overlapping [start, end), chunk-relative and clipped to it, in onset order."""
    kept = [Event(max(0.0, e.onset - start), min(end - start, e.offset - start), e.label, e.confidence)
            for e in events if e.onset < end and e.offset > start]
    return sorted(kept, key=lambda e: e.onset)


def map_to_desed(events: Sequence[Event]) -> list[Event]:
    """Each event, followed by a DESED-named copy when its class maps to one (training chunks only)."""
    mapped = []
    for event in events:
        mapped.append(event)
        if event.label in MAESTRO_TO_DESED:
            mapped.append(Event(event.onset, event.offset, MAESTRO_TO_DESED[event.label], event.confidence))
    return mapped


def encode_soft(encoder: ManyHotEncoder, events: Sequence[Event]) -> np.ndarray:
    """(n_frames, n_classes) targets holding each event's confidence on its frames (last written wins)."""
    target = np.zeros((encoder.n_frames, encoder.n_classes))
    for event in events:
        start = int(encoder.time_to_frame(event.onset))
        stop = int(np.ceil(encoder.time_to_frame(event.offset)))
        target[start:stop, encoder.label_index(event.label)] = event.confidence
    return target


def find_recordings(root: str | Path, names: Sequence[str] | None = None) -> dict[str, tuple[Path, Path]]:
    """{recording: (audio, annotation)} under ``root/development_audio`` and ``root/development_annotation``.

    ``names``: the recordings to keep (a split list); a named recording without audio or annotation is an error.
    """
    root = Path(root)
    audio = {p.stem: p for p in sorted((root / "development_audio").rglob("*.wav"))}
    annotations = {p.stem: p for p in sorted((root / "development_annotation").rglob("*.txt"))}
    wanted = sorted(audio) if names is None else [Path(n).stem for n in names]
    if not wanted:
        raise MissingInput(f"no MAESTRO recordings under {root / 'development_audio'}")
    missing = [n for n in wanted if n not in audio or n not in annotations]
    if missing:
        raise MissingInput(f"MAESTRO recordings without audio or annotation under {root}: {missing}")
    return {name: (audio[name], annotations[name]) for name in wanted}


def read_split_list(path: str | Path, column: str) -> list[str]:
    """Recording names from an official split CSV (``train_split.csv`` column ``train``, ``validation_split.csv`` ``val``)."""
    frame = pd.read_csv(path)
    if column not in frame:
        raise BadInput(f"{path}: no column {column!r} (columns: {list(frame.columns)})")
    return [Path(str(name)).stem for name in frame[column].dropna()]


@dataclass(frozen=True)
class Chunk:
    name: str
    recording: str
    start: float
    end: float
    events: tuple[Event, ...]


class MaestroChunkSet(Dataset):
    """10 s chunks of MAESTRO recordings; items ``(waveform, soft labels (C, T), valid frames, chunk name)``.

    ``training``: adds the MAESTRO-to-DESED copies of the events. ``class_mask``: the classes MAESTRO annotates.
    """

    def __init__(self, recordings: dict[str, tuple[Path, Path]], encoder: ManyHotEncoder, hop: float = 1.0,
                 training: bool = False, window: float = 10.0, fs: int = 16000):
        self.encoder, self.fs, self.window, self.hop, self.training = encoder, fs, window, hop, training
        self.target_len = int(round(window * fs))
        self.audio_paths, self.events, self.chunks, self.durations = {}, {}, [], {}
        for recording, (audio, annotation) in recordings.items():
            info = sf.info(str(audio))
            self.durations[recording] = info.frames / info.samplerate
            events = read_annotation_file(annotation)
            self.audio_paths[recording], self.events[recording] = audio, events
            for start, end in chunk_bounds(self.durations[recording], window, hop):
                chunk_ev = chunk_events(events, start, end)
                self.chunks.append(Chunk(chunk_name(recording, start, end), recording, start, end,
                                         tuple(map_to_desed(chunk_ev) if training else chunk_ev)))
        self.filenames = [chunk.name for chunk in self.chunks]
        self.class_mask = class_mask(MAESTRO_VALID_CLASSES, encoder.labels)

    def __len__(self) -> int:
        return len(self.chunks)

    def __getitem__(self, index: int):
        chunk = self.chunks[index]
        info = sf.info(str(self.audio_paths[chunk.recording]))
        first, last = int(round(chunk.start * info.samplerate)), int(round(chunk.end * info.samplerate))
        audio, fs = sf.read(str(self.audio_paths[chunk.recording]), start=first, stop=last, dtype="float32",
                            always_2d=True)
        audio = resample(to_mono(audio), fs, self.fs)[:self.target_len]
        valid = len(audio)
        waveform = np.pad(audio, (0, self.target_len - valid)).astype(np.float32)
        labels = torch.from_numpy(encode_soft(self.encoder, chunk.events).T.astype(np.float32))
        n_valid = int(np.ceil(self.encoder.time_to_frame(valid / self.fs)))
        frames = torch.zeros(self.encoder.n_frames, dtype=torch.bool)
        frames[:n_valid] = True
        return torch.from_numpy(waveform), labels, frames, chunk.name

    def chunk_ground_truth(self, threshold: float = EVAL_CONFIDENCE) -> pd.DataFrame:
        """Chunk-level events with confidence > threshold (filename, onset, offset, event_label)."""
        rows = [(c.name, e.onset, e.offset, e.label) for c in self.chunks for e in c.events if e.confidence > threshold]
        return pd.DataFrame(rows, columns=["filename", "onset", "offset", "event_label"])

    def recording_ground_truth(self, threshold: float = EVAL_CONFIDENCE) -> pd.DataFrame:
        """File-time events with confidence > threshold, same-class overlaps merged (dev-test ground truth)."""
        rows = []
        for recording, events in self.events.items():
            rows += merge_events(recording, [e for e in events if e.confidence > threshold])
        return pd.DataFrame(rows, columns=["filename", "onset", "offset", "event_label"])


def merge_events(recording: str, events: Sequence[Event]) -> list[tuple[str, float, float, str]]:
    """(recording, onset, offset, label) rows with overlapping or touching same-class events merged."""
    rows = []
    for label in sorted({e.label for e in events}):
        spans = sorted((e.onset, e.offset) for e in events if e.label == label)
        onset, offset = spans[0]
        for start, end in spans[1:]:
            if start <= offset:
                offset = max(offset, end)
            else:
                rows.append((recording, onset, offset, label))
                onset, offset = start, end
        rows.append((recording, onset, offset, label))
    return rows
