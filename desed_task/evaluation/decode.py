"""Frame scores -> sed_scores_eval score tables -> detections at thresholds; median filtering."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import scipy.ndimage

from desed_task.evaluation.io import audio_id


def median_filter_scores(scores: np.ndarray, window) -> np.ndarray:
    """Median filter of (T, C) scores along time, one window for all classes or one per class.

    Same filter as the DCASE baseline (`scipy.ndimage.median_filter(scores, (window, 1))`, reflect mode).
    """
    scores = np.asarray(scores, dtype=np.float64)
    windows = np.broadcast_to(np.asarray(window, dtype=int), (scores.shape[1],))
    if (windows < 1).any():
        raise ValueError(f"median windows must be >= 1, got {window}")
    if (windows == windows[0]).all():
        return scipy.ndimage.median_filter(scores, (int(windows[0]), 1)) if windows[0] > 1 else scores.copy()
    return np.stack(
        [scipy.ndimage.median_filter(scores[:, c], int(w)) if w > 1 else scores[:, c] for c, w in enumerate(windows)],
        axis=1,
    )


def _score_table(scores: np.ndarray, timestamps: np.ndarray, labels, duration: float | None) -> pd.DataFrame:
    if duration is not None:
        n_frames = min(len(scores), max(1, int(np.searchsorted(timestamps[:-1], duration, side="left"))))
        timestamps = timestamps[: n_frames + 1].copy()
        timestamps[-1] = min(timestamps[-1], duration)
        scores = scores[:n_frames]
    table = pd.DataFrame(scores, columns=list(labels))
    table.insert(0, "offset", timestamps[1:])
    table.insert(0, "onset", timestamps[:-1])
    return table


def decode_strong_scores(strong, file_ids, encoder, median_window, durations: dict[str, float] | None = None):
    """Strong frame probabilities (B, C, T) -> (raw, postprocessed) dicts {audio id: score table}.

    Score tables use the sed_scores_eval format (columns onset, offset, <encoder.labels>), with timestamps
    `encoder.frame_to_time(arange(T + 1))`; keys are the file names without extension. `median_window`
    is an int or one int per class. When `durations` ({file name or audio id: seconds}) is given, frames
    starting at or after the clip end are dropped and the last offset is cut to the duration.
    """
    if hasattr(strong, "detach"):
        strong = strong.detach().cpu().float().numpy()
    strong = np.asarray(strong, dtype=np.float64)
    if strong.ndim != 3 or strong.shape[0] != len(file_ids) or strong.shape[1] != len(encoder.labels):
        raise ValueError(f"strong must be (len(file_ids), n_classes, T), got {strong.shape}")
    timestamps = np.asarray(encoder.frame_to_time(np.arange(strong.shape[2] + 1)), dtype=np.float64)
    clip_durations = {}
    for key, value in (durations or {}).items():
        clip_durations[audio_id(str(key))] = float(value)
    raw, postprocessed = {}, {}
    for file_id, clip_scores in zip(file_ids, strong):
        clip = audio_id(Path(str(file_id)).name)
        frame_scores = clip_scores.T
        duration = clip_durations.get(clip) if durations is not None else None
        raw[clip] = _score_table(frame_scores, timestamps, encoder.labels, duration)
        postprocessed[clip] = _score_table(
            median_filter_scores(frame_scores, median_window), timestamps, encoder.labels, duration
        )
    return raw, postprocessed


def _as_array(table: pd.DataFrame, columns: pd.Index) -> np.ndarray:
    """A score table as a float array with `columns` in that order (one cheap conversion per clip)."""
    if not table.columns.equals(columns):
        table = table[columns]
    return table.to_numpy(dtype=np.float64)


def scores_to_detections(scores: dict[str, pd.DataFrame], thresholds, audio_format: str = "wav") -> dict[float, pd.DataFrame]:
    """Score tables -> {threshold: DataFrame(filename, onset, offset, event_label)}.

    A frame is active when its score is strictly above the threshold (as the DCASE baseline); each run of
    active frames becomes one event from the onset of its first frame to the offset of its last.
    All clips are processed at once: runs are found on one concatenated array with an inactive
    separator row between clips.
    """
    thresholds = [float(t) for t in np.atleast_1d(thresholds)]
    clips = list(scores)
    if not clips:
        return {t: pd.DataFrame(columns=["filename", "onset", "offset", "event_label"]) for t in thresholds}
    columns = pd.Index(["onset", "offset", *scores[clips[0]].columns[2:]])
    labels = list(columns[2:])
    tables = [_as_array(scores[c], columns) for c in clips]
    lengths = np.array([len(t) for t in tables])
    separator = np.full((1, len(columns)), np.nan)
    stacked_tables = np.concatenate([np.concatenate([t, separator]) for t in tables])
    frame_onsets, frame_offsets = stacked_tables[:, 0], stacked_tables[:, 1]
    stacked = np.nan_to_num(stacked_tables[:, 2:], nan=-np.inf)
    clip_of_row = np.repeat(np.arange(len(clips)), lengths + 1)
    names = np.array([f"{c}.{audio_format}" for c in clips], dtype=object)
    label_array = np.array(labels, dtype=object)
    detections = {}
    for threshold in thresholds:
        active = stacked > threshold
        padded = np.concatenate([np.zeros((1, len(labels)), bool), active])
        change = np.diff(padded.astype(np.int8), axis=0)
        on_cls, on_rows = np.nonzero(change.T == 1)
        _, off_rows = np.nonzero(change.T == -1)
        table = pd.DataFrame(
            {
                "filename": names[clip_of_row[on_rows]],
                "onset": frame_onsets[on_rows],
                "offset": frame_offsets[off_rows - 1],
                "event_label": label_array[on_cls],
            }
        )
        detections[threshold] = table.sort_values(["filename", "onset", "event_label"], kind="stable").reset_index(drop=True)
    return detections
