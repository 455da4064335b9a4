"""Segment-based evaluation of long recordings (DCASE 2024 MAESTRO): 1 s segment scores and mpAUC / mAUC / F1.

Scores of overlapping windows are turned into segment scores in two steps, as the official 2024 baseline
does: each window's (median-filtered) frame probabilities become per-segment scores by a duration-weighted
average over the frames each segment covers (``window_segment_scores``, up to the window's true length),
then each recording segment takes the mean over the windows that cover it (``overlap_add``).
``segment_metrics`` computes with sed_scores_eval's ``segment_based`` module: mpAUC (``auroc`` with
``max_fpr`` 0.1, the partial area divided by ``max_fpr`` without McClish correction), mAUC (``auroc``
without ``max_fpr``) and the macro F1 at each class's best threshold (``best_fscore``).
"""
from __future__ import annotations

import logging
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
from sed_scores_eval import segment_based
from sed_scores_eval.base_modules.scores import create_score_dataframe

from desed_task.data.maestro import Event, merge_events
from desed_task.evaluation.io import audio_id

log = logging.getLogger(__name__)

MAX_FPR = 0.1


def window_segment_scores(frame_scores: np.ndarray, frame_hop: float, length: float,
                          segment_length: float = 1.0) -> np.ndarray:
    """(n_segments, C) scores of one window from its (T, C) frame scores (frame i covers
    [i * frame_hop, (i + 1) * frame_hop)), each segment the overlap-weighted mean of its frames; only the
    first ``length`` seconds (the window's true length) count."""
    frame_scores = np.asarray(frame_scores, dtype=float)
    n_segments = int(np.ceil(length / segment_length - 1e-9))
    starts = np.arange(len(frame_scores)) * frame_hop
    ends = np.minimum(starts + frame_hop, length)
    out = np.zeros((n_segments, frame_scores.shape[1]))
    for k in range(n_segments):
        lo, hi = k * segment_length, min((k + 1) * segment_length, length)
        weight = np.clip(np.minimum(ends, hi) - np.maximum(starts, lo), 0, None)
        out[k] = weight @ frame_scores / weight.sum()
    return out


def overlap_add(windows: Sequence[tuple[str, float, np.ndarray]], durations: Mapping[str, float], classes: Sequence[str],
                segment_length: float = 1.0) -> dict[str, pd.DataFrame]:
    """Per-recording sed_scores_eval score tables (onset, offset, classes): the mean of the window segment
    scores covering each segment. ``windows``: (recording, window start in s (a multiple of
    ``segment_length``), its (n_segments, C) segment scores)."""
    sums, counts = {}, {}
    for recording, start, scores in windows:
        n_total = int(np.ceil(durations[recording] / segment_length - 1e-9))
        total = sums.setdefault(recording, np.zeros((n_total, len(classes))))
        count = counts.setdefault(recording, np.zeros(n_total))
        first = int(round(start / segment_length))
        stop = min(first + len(scores), n_total)
        total[first:stop] += scores[:stop - first]
        count[first:stop] += 1
    tables = {}
    for recording, total in sums.items():
        if (counts[recording] == 0).any():
            missing = np.flatnonzero(counts[recording] == 0)[0] * segment_length
            raise ValueError(f"recording {recording}: no window covers the segment at {missing:g} s")
        edges = np.minimum(np.arange(len(total) + 1) * segment_length, durations[recording])
        tables[recording] = create_score_dataframe(total / counts[recording][:, None], edges, list(classes))
    return tables


def ground_truth_dict(ground_truth: pd.DataFrame, classes: Sequence[str]) -> dict[str, list]:
    """{audio id: [(onset, offset, label)]} of the events of ``classes`` (file name extensions dropped), with
    touching or overlapping same-class events merged (sed_scores_eval refuses connected events)."""
    events = {}
    for row in ground_truth.itertuples(index=False):
        audio = audio_id(str(row.filename))
        events.setdefault(audio, [])
        if row.event_label in classes:
            events[audio].append(Event(float(row.onset), float(row.offset), row.event_label, 1.0))
    return {audio: [(on, off, label) for _, on, off, label in merge_events(audio, found)]
            for audio, found in events.items()}


def segment_metrics(scores: Mapping[str, pd.DataFrame], ground_truth: pd.DataFrame, durations: Mapping[str, float],
                    classes: Sequence[str], segment_length: float = 1.0, max_fpr: float = MAX_FPR) -> dict[str, float]:
    """{"mpauc", "mauc", "segment_f1_best"} over ``classes`` of the score tables of the ground truth's recordings.

    Recordings without ground-truth events are scored too (their segments are negatives); classes without any
    ground-truth event are left out with a warning (NaN metrics when none has one); names may carry
    their audio extension in the ground truth and durations."""
    truth = ground_truth_dict(ground_truth, list(classes))
    present = {label for events in truth.values() for _, _, label in events}
    absent = [c for c in classes if c not in present]
    if absent:
        log.warning("no ground-truth event of %s in the scored recordings: segment metrics over the other classes",
                    absent)
    classes = [c for c in classes if c in present]
    if not classes:
        return {"mpauc": float("nan"), "mauc": float("nan"), "segment_f1_best": float("nan")}
    audio_ids = sorted(set(truth) | set(scores))
    missing = [a for a in audio_ids if a not in scores]
    if missing:
        raise ValueError(f"no scores for recordings {missing}")
    tables = {a: scores[a][["onset", "offset", *classes]] for a in audio_ids}
    truth = {a: truth.get(a, []) for a in audio_ids}
    durations = {audio_id(name): value for name, value in durations.items()}
    lengths = {a: float(durations[a]) for a in audio_ids}
    partial, _ = segment_based.auroc(tables, truth, lengths, segment_length=segment_length, max_fpr=max_fpr)
    full, _ = segment_based.auroc(tables, truth, lengths, segment_length=segment_length)
    f1 = segment_based.best_fscore(tables, truth, lengths, segment_length=segment_length)[0]
    return {"mpauc": float(partial["mean"]), "mauc": float(full["mean"]), "segment_f1_best": float(f1["macro_average"])}
