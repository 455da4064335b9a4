"""Training-length windows over audio of any length, and the overlap-average of their frame scores.

Geometry (the model's own): windows of `audio_max_len` seconds (L samples) produce W output frames of
F = feats.hop_length x data.net_subsample samples (the label encoder's frames: 156 of 64 ms for 10 s).
Window k starts at sample k * h * F: the requested hop is rounded to a whole number h of output frames,
so every window frame falls exactly on the file's frame grid (frame j covers samples [j F, (j + 1) F)) and
nothing drifts, whatever the length. The file's frames are those starting inside the audio, as the
evaluation decodes them (`decode_strong_scores` with durations); a file no longer than one window is one
zero-padded window, exactly as in training and testing, so a 10 s clip gives the test step's W frames.
The last window is zero-padded like a short training clip; post-processing runs over all window frames
and then the frames past the audio are dropped, as the test step does for a short clip.
Overlapping frames are averaged, optionally weighted by a taper that trusts a window's centre more than its
edges (where the model sees one-sided context).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

TAPERS = ("none", "hann")


@dataclass(frozen=True)
class WindowGeometry:
    """Window length `window_samples`, output frame `frame_samples`, `window_frames` per window, hop in frames."""

    sample_rate: int
    window_samples: int
    frame_samples: int
    window_frames: int
    hop_frames: int

    @classmethod
    def from_config(cls, config: dict, window_frames: int, hop_seconds: float) -> "WindowGeometry":
        data, feats = config["data"], config["feats"]
        sample_rate = int(data["fs"])
        if int(feats["sample_rate"]) != sample_rate:
            raise ValueError(f"feats.sample_rate {feats['sample_rate']} differs from data.fs {sample_rate}")
        window_samples = int(round(float(data["audio_max_len"]) * sample_rate))
        frame_samples = int(feats["hop_length"]) * int(data["net_subsample"])
        hop_frames = int(round(float(hop_seconds) * sample_rate / frame_samples))
        if not 1 <= hop_frames <= window_frames:
            raise ValueError(f"hop {hop_seconds} s must be between one output frame ({frame_samples / sample_rate} s) "
                             f"and the window ({window_frames * frame_samples / sample_rate} s)")
        return cls(sample_rate, window_samples, frame_samples, int(window_frames), hop_frames)

    @property
    def hop_samples(self) -> int:
        return self.hop_frames * self.frame_samples

    @property
    def frame_seconds(self) -> float:
        return self.frame_samples / self.sample_rate

    def n_frames(self, n_samples: int) -> int:
        """Output frames of `n_samples` of audio: those starting inside it (one window's W at most for a file
        no longer than a window, as in training)."""
        frames = math.ceil(n_samples / self.frame_samples)
        return min(frames, self.window_frames) if n_samples <= self.window_samples else frames

    def n_windows(self, n_samples: int) -> int:
        """Windows needed so that every output frame of `n_samples` is covered."""
        return 1 + max(0, math.ceil((self.n_frames(n_samples) - self.window_frames) / self.hop_frames))

    def window_start(self, index: int) -> int:
        """First sample of window `index`."""
        return index * self.hop_samples

    def start_frame(self, index: int) -> int:
        return index * self.hop_frames

    def covered_frames(self, n_windows: int) -> int:
        """Output frames spanned by `n_windows` windows (the last one's padding included)."""
        return self.start_frame(n_windows - 1) + self.window_frames


def taper_weights(window_frames: int, taper: str) -> np.ndarray:
    """Per-frame weights of a window: all ones, or a Hann taper sampled at frame centres (never zero)."""
    if taper == "none":
        return np.ones(window_frames)
    if taper == "hann":
        return np.sin(np.pi * (np.arange(window_frames) + 0.5) / window_frames) ** 2
    raise ValueError(f"taper must be one of {TAPERS}, got {taper!r}")


class OverlapAverage:
    """Weighted sums of window frame values (n_rows per frame) on the file's frame grid, grown as windows arrive."""

    def __init__(self, n_rows: int, weights: np.ndarray, columns_per_frame: int = 1):
        self.weights = np.repeat(np.asarray(weights, dtype=np.float64), columns_per_frame)
        self.columns_per_frame = columns_per_frame
        self.sums = np.zeros((n_rows, 0))
        self.weight_sums = np.zeros(0)

    def reserve(self, n_frames: int) -> None:
        """Room for `n_frames` output frames: one allocation for a file whose length is known in advance instead
        of a doubling series of them, which fragments the heap between the forward passes' large buffers."""
        self._grow(n_frames * self.columns_per_frame)

    def _grow(self, capacity: int) -> None:
        if capacity > self.sums.shape[1]:
            self.sums = np.pad(self.sums, ((0, 0), (0, capacity - self.sums.shape[1])))
            self.weight_sums = np.pad(self.weight_sums, (0, capacity - len(self.weight_sums)))

    def add(self, start_frame: int, values: np.ndarray) -> None:
        """Add one window's (n_rows, window columns) values starting at output frame `start_frame`."""
        start = start_frame * self.columns_per_frame
        stop = start + values.shape[1]
        if stop > self.sums.shape[1]:
            self._grow(max(stop, 2 * self.sums.shape[1]))
        weights = self.weights[:values.shape[1]]
        self.sums[:, start:stop] += values * weights
        self.weight_sums[start:stop] += weights

    def average(self, n_frames: int) -> np.ndarray:
        """(n_rows, n_frames * columns_per_frame) weighted means; every column must have been covered."""
        stop = n_frames * self.columns_per_frame
        covered = self.weight_sums[:stop]
        if len(covered) < stop or (covered <= 0).any():
            raise RuntimeError("internal error: output frames not covered by any window")
        return self.sums[:, :stop] / covered
