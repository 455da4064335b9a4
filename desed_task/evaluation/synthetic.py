"""Realistic synthetic score tables for a ground truth (for speed benchmarks and cross-checks without a model)."""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.ndimage import gaussian_filter1d

from desed_task.evaluation.io import audio_id


def synthetic_score_tables(
    ground_truth: pd.DataFrame, durations: dict[str, float], labels, n_frames: int = 156, frame_hop: float = 0.064,
    seed: int = 0,
) -> dict[str, pd.DataFrame]:
    """Per clip: smoothed noise plus bumps of random height over the ground-truth events, squashed to (0, 1)."""
    rng = np.random.default_rng(seed)
    labels = list(labels)
    timestamps = np.arange(n_frames + 1) * frame_hop
    events = ground_truth.dropna(subset=["event_label"])
    by_clip = {name: group for name, group in events.groupby("filename")}
    tables = {}
    for name in durations:
        logits = gaussian_filter1d(rng.normal(size=(n_frames, len(labels))), 3, axis=0) * 1.5 - 1.5
        for onset, offset, label in by_clip.get(name, events.iloc[:0])[["onset", "offset", "event_label"]].itertuples(index=False):
            first, last = int(onset / frame_hop), int(np.ceil(offset / frame_hop))
            shift = rng.integers(-3, 4)
            logits[max(0, first + shift):max(0, last + shift), labels.index(label)] += rng.uniform(0.5, 3.5)
        table = pd.DataFrame(1 / (1 + np.exp(-logits)), columns=labels)
        table.insert(0, "offset", timestamps[1:])
        table.insert(0, "onset", timestamps[:-1])
        tables[audio_id(name)] = table
    return tables
