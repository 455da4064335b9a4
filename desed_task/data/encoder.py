"""Label encoder between event annotations (seconds) and frame-level many-hot matrices.

Frame <-> time conversion follows the official DCASE Task 4 baseline encoder exactly, so that
decoded detections and checkpoints are comparable with published numbers.
"""
from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from desed_task.utils.errors import BadInput


class ManyHotEncoder:
    """Encode strong (onset/offset) and weak (clip-level) labels into 0/1 arrays and back.

    `n_frames` is the number of network output frames for `audio_len` seconds:
    int(int(audio_len * fs / frame_hop) / net_pooling) (156 for 10 s, 16 kHz, hop 256, pooling 4).
    """

    def __init__(
        self,
        labels: Sequence[str],
        audio_len: float = 10.0,
        frame_len: int = 2048,
        frame_hop: int = 256,
        net_pooling: int = 4,
        fs: int = 16000,
    ):
        self.labels = list(labels)
        self.audio_len = audio_len
        self.frame_len = frame_len
        self.frame_hop = frame_hop
        self.net_pooling = net_pooling
        self.fs = fs
        self.n_frames = int(int(audio_len * fs / frame_hop) / net_pooling)
        self._index = {label: i for i, label in enumerate(self.labels)}

    @property
    def n_classes(self) -> int:
        return len(self.labels)

    def label_index(self, label: str) -> int:
        if label not in self._index:
            raise BadInput(f"unknown event label {label!r}; known labels: {self.labels}")
        return self._index[label]

    def time_to_frame(self, time):
        """Seconds -> (fractional) output frame, clipped to [0, n_frames]."""
        frame = np.asarray(time, dtype=float) * self.fs / self.frame_hop / self.net_pooling
        return np.clip(frame, 0, self.n_frames)

    def frame_to_time(self, frame):
        """Output frame index -> seconds, clipped to [0, audio_len]."""
        time = np.asarray(frame, dtype=float) * self.net_pooling / (self.fs / self.frame_hop)
        return np.clip(time, 0, self.audio_len)

    def encode_weak(self, labels: str | Iterable[str]) -> np.ndarray:
        """Clip labels (list or comma-separated string) -> (n_classes,) 0/1 vector."""
        if isinstance(labels, str):
            labels = labels.split(",")
        target = np.zeros(self.n_classes)
        for label in labels:
            if isinstance(label, str) and label != "":
                target[self.label_index(label)] = 1
        return target

    def encode_strong_df(self, events) -> np.ndarray:
        """Events (DataFrame with onset, offset, event_label, or (label, onset, offset) tuples) -> (n_frames, n_classes).

        Onset frame = int(time_to_frame(onset)), offset frame = ceil(time_to_frame(offset)) (exclusive),
        as the official encoder does; rows with a missing label (clips without events) are ignored.
        """
        if isinstance(events, pd.DataFrame):
            events = events[["event_label", "onset", "offset"]].itertuples(index=False, name=None)
        target = np.zeros((self.n_frames, self.n_classes))
        for label, onset, offset in events:
            if not isinstance(label, str) or label == "":
                continue
            start = int(self.time_to_frame(onset))
            stop = int(np.ceil(self.time_to_frame(offset)))
            target[start:stop, self.label_index(label)] = 1
        return target

    def decode_weak(self, target: np.ndarray) -> list[str]:
        """(n_classes,) binary vector -> list of present labels."""
        return [label for label, value in zip(self.labels, np.asarray(target)) if value > 0.5]

    def decode_strong(self, target: np.ndarray) -> list[tuple[str, float, float]]:
        """(n_frames, n_classes) binary matrix -> [(label, onset_s, offset_s)], class by class, in time order."""
        target = np.asarray(target) > 0.5
        events = []
        for class_index, column in enumerate(target.T):
            edges = np.flatnonzero(np.diff(np.concatenate(([0], column.astype(np.int8), [0]))))
            for start, stop in zip(edges[::2], edges[1::2]):
                events.append(
                    (self.labels[class_index], float(self.frame_to_time(start)), float(self.frame_to_time(stop)))
                )
        return events

    def state_dict(self) -> dict:
        return {
            "labels": list(self.labels),
            "audio_len": self.audio_len,
            "frame_len": self.frame_len,
            "frame_hop": self.frame_hop,
            "net_pooling": self.net_pooling,
            "fs": self.fs,
        }

    @classmethod
    def from_state_dict(cls, state: dict) -> "ManyHotEncoder":
        return cls(**state)
