"""Torch datasets over DESED folders. Every item is the tuple

    (waveform float32[audio_max_len * fs], labels float32[n_classes, n_frames], valid_frames bool[n_frames], file_id str)

Waveforms are mono at `fs` (resampled on the fly when a file has another rate), zero-padded at the end
or cropped (random start when `random_crop`, i.e. in training; start 0 otherwise). `valid_frames` is
False for output frames that only cover padding. Weak labels are repeated over all frames, so
`labels.amax(-1)` is the clip-level target of any item.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from desed_task.data.audio import crop_or_pad, read_audio
from desed_task.data.encoder import ManyHotEncoder
from desed_task.data.manifest import read_strong_annotations, read_weak_annotations, scan_unlabeled


class _AudioClipSet(Dataset):
    """Shared reading, cropping and frame-mask logic; subclasses provide the frame labels."""

    def __init__(self, folder, filenames: Sequence[str], encoder: ManyHotEncoder, audio_max_len: float,
                 fs: int, random_crop: bool):
        self.folder = Path(folder)
        self.filenames = list(filenames)
        self.encoder = encoder
        self.fs = fs
        self.audio_max_len = audio_max_len
        self.target_len = int(round(audio_max_len * fs))
        self.random_crop = random_crop

    def __len__(self) -> int:
        return len(self.filenames)

    def _load(self, index: int) -> tuple[np.ndarray, float, int]:
        """(fixed-length waveform, crop start in seconds, valid sample count)."""
        audio = read_audio(self.folder / self.filenames[index], self.fs)
        excess = len(audio) - self.target_len
        start = int(torch.randint(0, excess + 1, ()).item()) if self.random_crop and excess > 0 else 0
        waveform, valid = crop_or_pad(audio, self.target_len, start)
        return waveform, start / self.fs, valid

    def _valid_frames(self, valid_samples: int) -> torch.Tensor:
        n_valid = int(np.ceil(self.encoder.time_to_frame(valid_samples / self.fs)))
        mask = torch.zeros(self.encoder.n_frames, dtype=torch.bool)
        mask[:n_valid] = True
        return mask

    def _labels(self, index: int, crop_start: float) -> np.ndarray:
        raise NotImplementedError

    def __getitem__(self, index: int):
        waveform, crop_start, valid = self._load(index)
        labels = torch.from_numpy(self._labels(index, crop_start).T.astype(np.float32))
        return torch.from_numpy(waveform), labels, self._valid_frames(valid), self.filenames[index]


class StronglyAnnotatedSet(_AudioClipSet):
    """Clips with onset/offset annotations (synthetic or real strong sets, validation and test sets).

    `tsv_or_df`: DESED strong TSV path or DataFrame (filename, onset, offset, event_label);
    `durations`: optional durations TSV the audio must agree with (validation and test sets).
    """

    def __init__(self, folder, tsv_or_df, encoder: ManyHotEncoder, audio_max_len: float = 10.0, fs: int = 16000,
                 random_crop: bool = False, split: str = "strong", config_key: str | None = None,
                 report_dir=None, durations=None):
        events, self.audio_info = read_strong_annotations(
            tsv_or_df, folder, encoder.labels, split, config_key=config_key, report_dir=report_dir,
            durations=durations)
        super().__init__(folder, list(events), encoder, audio_max_len, fs, random_crop)
        self.events = events

    def _labels(self, index: int, crop_start: float) -> np.ndarray:
        shifted = [
            (label, max(onset - crop_start, 0.0), min(offset - crop_start, self.audio_max_len))
            for label, onset, offset in self.events[self.filenames[index]]
        ]
        return self.encoder.encode_strong_df([e for e in shifted if e[1] < e[2]])


class WeaklyAnnotatedSet(_AudioClipSet):
    """Clips with clip-level labels (`filename`, comma-separated `event_labels`)."""

    def __init__(self, folder, tsv_or_df, encoder: ManyHotEncoder, audio_max_len: float = 10.0, fs: int = 16000,
                 random_crop: bool = False, split: str = "weak", config_key: str | None = None, report_dir=None):
        labels, self.audio_info = read_weak_annotations(
            tsv_or_df, folder, encoder.labels, split, config_key=config_key, report_dir=report_dir)
        super().__init__(folder, list(labels), encoder, audio_max_len, fs, random_crop)
        self.clip_labels = labels

    def _labels(self, index: int, crop_start: float) -> np.ndarray:
        weak = self.encoder.encode_weak(self.clip_labels[self.filenames[index]])
        return np.repeat(weak[None, :], self.encoder.n_frames, axis=0)


class UnlabeledSet(_AudioClipSet):
    """Every audio file of a folder, with all-zero labels (unlabeled training data, evaluation set)."""

    def __init__(self, folder, encoder: ManyHotEncoder, audio_max_len: float = 10.0, fs: int = 16000,
                 random_crop: bool = False, split: str = "unlabeled", config_key: str | None = None,
                 report_dir=None):
        self.audio_info = scan_unlabeled(folder, split, config_key=config_key, report_dir=report_dir)
        super().__init__(folder, list(self.audio_info), encoder, audio_max_len, fs, random_crop)

    def _labels(self, index: int, crop_start: float) -> np.ndarray:
        return np.zeros((self.encoder.n_frames, self.encoder.n_classes))


def split_weak(weak: str | Path | pd.DataFrame, train_fraction: float = 0.9, seed: int = 42
               ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Random train/validation split of a weak TSV, as the official baseline does
    (`DataFrame.sample(frac=weak_split, random_state=seed)`; the rest is the validation part).

    Both parts keep the original row index and `attrs["source"]`, so validation errors name the TSV line."""
    if isinstance(weak, pd.DataFrame):
        frame = weak
    else:
        frame = pd.read_csv(weak, sep="\t", dtype={"filename": str, "event_labels": str})
        frame.attrs["source"] = str(weak)
    train = frame.sample(frac=train_fraction, random_state=seed)
    valid = frame.drop(train.index)
    for part in (train, valid):
        part.attrs["source"] = frame.attrs.get("source", "<DataFrame>")
    return train, valid
