"""The post-processing methods on sed_scores_eval score tables ({audio id: DataFrame(onset, offset, <classes>)}).

- `median`: the DCASE median filter (`evaluation.decode.median_filter_scores`), one window (frames) per class.
- `csebbs`: change-point sound event bounding boxes (Ebbers et al., Interspeech 2024). The change detection
  is the optional `sebbs` package's (AGPL-3.0; `pip install --no-deps sebbs==1.0.2`); the segment merging
  and the score tables are sebbs' algorithm vectorised over all clips and classes (tested equal to sebbs'
  `CSEBBsPredictor` up to floating-point summation order), so that a tuning grid costs one change
  detection per filter length. Each box becomes a constant score (its confidence) over its extent and
  -inf elsewhere, in sebbs' score-table format, so every threshold-based metric scores the boxes.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from desed_task.evaluation.decode import median_filter_scores
from desed_task.postprocess.params import PostprocessParams, validate
from desed_task.utils.errors import InputError


class MissingExtra(InputError, ImportError):
    """An optional dependency needed by the chosen option is not installed."""


def require_sebbs():
    """The `sebbs` package, or a one-line error naming the extra to install."""
    try:
        import sebbs.change_detection
    except ImportError:
        raise MissingExtra("cSEBBs post-processing needs the optional 'sebbs' package (AGPL-3.0): "
                           "pip install --no-deps sebbs==1.0.2 (as make install does)") from None
    return sebbs


def score_classes(scores: dict[str, pd.DataFrame]) -> list[str]:
    """Class columns of the first score table."""
    if not scores:
        raise InputError("no score tables to post-process")
    return list(next(iter(scores.values())).columns[2:])


def table_from_arrays(times: np.ndarray, values: np.ndarray, columns: pd.Index) -> pd.DataFrame:
    """A score table from frame boundaries (T + 1,) and scores (T, C), built in one piece (`columns`:
    onset, offset, classes; one shared Index saves most of the construction time)."""
    return pd.DataFrame(np.column_stack([times[:-1], times[1:], values]), columns=columns, copy=False)


def table_columns(classes: list[str]) -> pd.Index:
    return pd.Index(["onset", "offset", *classes])


def median_filtered(scores: dict[str, pd.DataFrame], windows: dict[str, int]) -> dict[str, pd.DataFrame]:
    """Every table median-filtered along time, class c with `windows[c]` frames (columns in the first
    table's order). Clips of equal length are filtered side by side in one `median_filter_scores` call."""
    classes = score_classes(scores)
    arrays = score_arrays(scores, classes)
    per_class = np.array([int(windows[label]) for label in classes])
    by_length: dict[int, list[str]] = {}
    for clip, (_, values) in arrays.items():
        by_length.setdefault(len(values), []).append(clip)
    filtered, columns = {}, table_columns(classes)
    for n_frames, clips in by_length.items():
        side_by_side = np.concatenate([arrays[clip][1] for clip in clips], axis=1)
        result = median_filter_scores(side_by_side, np.tile(per_class, len(clips)))
        for index, clip in enumerate(clips):
            part = result[:, index * len(classes):(index + 1) * len(classes)]
            filtered[clip] = table_from_arrays(arrays[clip][0], part, columns)
    return {clip: filtered[clip] for clip in scores}


def score_arrays(scores: dict[str, pd.DataFrame], classes: list[str]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{clip: (frame boundaries (T + 1,), scores (T, C) in `classes` order)}."""
    arrays = {}
    for clip, table in scores.items():
        values = table.to_numpy(dtype=np.float64)
        order = [2 + list(table.columns[2:]).index(c) for c in classes]
        arrays[clip] = (np.append(values[:, 0], values[-1, 1]), np.ascontiguousarray(values[:, order]))
    return arrays


@dataclass
class Segments:
    """sebbs' change-point segments of every (clip, class) row, flattened: per event candidate its row,
    onset, offset, mean and max score; per gap after it (within its row) its min score, mean score and length."""

    clips: list[str]
    n_classes: int
    row: np.ndarray
    onset: np.ndarray
    offset: np.ndarray
    mean: np.ndarray
    max: np.ndarray
    gap_min: np.ndarray
    gap_mean: np.ndarray
    gap_length: np.ndarray
    row_events: np.ndarray  # number of event candidates of each row


def change_points(arrays: dict[str, tuple[np.ndarray, np.ndarray]], step_filter_lengths) -> Segments:
    """sebbs' change detection (its compiled step filter) on every clip, one filter length per class."""
    require_sebbs()
    from sebbs.change_detection import change_detection

    lengths = np.asarray(step_filter_lengths, dtype=np.float64)
    parts = {name: [] for name in ("onset", "offset", "mean", "max", "gap_min", "gap_mean", "gap_length")}
    row_events = []
    for timestamps, values in arrays.values():
        for bounds, mean, low, high in change_detection(values, timestamps, lengths):
            parts["onset"].append(bounds[1:-2:2])
            parts["offset"].append(bounds[2:-1:2])
            parts["mean"].append(mean[1:-1:2])
            parts["max"].append(high[1:-1:2])
            # the gap after each event; the last event's is the end gap, never merged
            parts["gap_min"].append(low[2::2])
            parts["gap_mean"].append(mean[2::2])
            parts["gap_length"].append(bounds[3::2] - bounds[2:-1:2])
            row_events.append(len(bounds) // 2 - 1)
    flat = {name: np.concatenate(chunks) if chunks else np.empty(0) for name, chunks in parts.items()}
    row_events = np.asarray(row_events, dtype=np.intp)
    return Segments(list(arrays), lengths.size, np.repeat(np.arange(len(row_events)), row_events), **flat,
                    row_events=row_events)


def merged_boxes(segments: Segments, merge_threshold_abs, merge_threshold_rel):
    """sebbs' segment merging, on all rows at once, with one threshold pair per class.

    Two neighbouring candidates merge (with the gap between them) when both exceed the gap's min score by
    less than the absolute threshold and by less than the relative factor (scores + 1e-3); rows with at
    least two candidates then score each box by its length-weighted mean over the merged segments with a
    1e-6 guard, as sebbs does (equal up to the summation order, ~1e-16 relative).
    Returns (row, onset, offset, confidence) of every box.
    """
    row = segments.row
    class_of = row % segments.n_classes
    absolute = np.asarray(merge_threshold_abs, dtype=np.float64)[class_of]
    relative = np.asarray(merge_threshold_rel, dtype=np.float64)[class_of]
    last = np.ones(len(row), dtype=bool)
    last[:-1] = row[1:] != row[:-1]
    event = segments.max + 1e-3
    gap = segments.gap_min + 1e-3
    following = np.append(event[1:], 0.0)
    merge = (~last & (event / gap < relative) & (following / gap < relative)
             & (event - gap < absolute) & (following - gap < absolute))
    merge &= segments.row_events[row] >= 2
    first = np.ones(len(row), dtype=bool)
    first[1:] = ~merge[:-1]
    starts = np.flatnonzero(first)
    ends = np.append(starts[1:], len(row)) - 1
    if not len(row):
        return row, segments.onset, segments.offset, segments.mean
    # length-weighted sums over event, gap, event, ... of each box
    lengths = np.column_stack([segments.offset - segments.onset, segments.gap_length]).ravel()
    weights = np.column_stack([segments.offset - segments.onset, segments.gap_length]) * np.column_stack(
        [segments.mean, segments.gap_mean])
    bounds = np.column_stack([2 * starts, 2 * ends + 1]).ravel()
    weights = weights.ravel()
    total = np.add.reduceat(lengths, bounds)[::2]
    weighted = np.add.reduceat(weights, bounds)[::2]
    plain = segments.row_events[row[starts]] < 2
    confidence = np.where(total == 0.0, 0.0, weighted / (total + 1e-6))
    confidence[plain] = segments.mean[starts[plain]]
    return row[starts], segments.onset[starts], segments.offset[ends], confidence


def box_tables(segments: Segments, boxes, classes: list[str]) -> dict[str, pd.DataFrame]:
    """sebbs' score tables of the boxes: one row per interval between consecutive box bounds (from 0), each
    box's confidence over its extent, -inf elsewhere; a clip without boxes gets one -inf row [0, 0.001]."""
    row, onset, offset, confidence = boxes
    n_classes = segments.n_classes
    clip_of = row // n_classes
    bounds = np.searchsorted(clip_of, np.arange(len(segments.clips) + 1))
    tables, columns = {}, table_columns(classes)
    for index, clip in enumerate(segments.clips):
        part = slice(bounds[index], bounds[index + 1])
        if bounds[index] == bounds[index + 1]:
            times, values = np.array([0.0, 0.001]), np.full((1, n_classes), -np.inf)
        else:
            times = np.unique(np.concatenate([[0.0], onset[part], offset[part]]))
            start, stop = np.searchsorted(times, onset[part]), np.searchsorted(times, offset[part])
            spans = stop - start
            cells = np.arange(spans.sum()) - np.repeat(np.cumsum(spans) - spans, spans) + np.repeat(start, spans)
            values = np.full((len(times) - 1, n_classes), -np.inf)
            values[cells, np.repeat(row[part] % n_classes, spans)] = np.repeat(confidence[part], spans)
        tables[clip] = table_from_arrays(times, values, columns)
    return tables


def csebbs_tables(scores: dict[str, pd.DataFrame], params: PostprocessParams) -> dict[str, pd.DataFrame]:
    """cSEBBs score tables with the class-wise parameters of `params` (classes in score column order)."""
    classes = score_classes(scores)
    segments = change_points(score_arrays(scores, classes), [params.params[c]["step_filter_length"] for c in classes])
    boxes = merged_boxes(segments, [params.params[c]["merge_threshold_abs"] for c in classes],
                         [params.params[c]["merge_threshold_rel"] for c in classes])
    return box_tables(segments, boxes, classes)


def apply_postprocessing(scores: dict[str, pd.DataFrame], params: PostprocessParams) -> dict[str, pd.DataFrame]:
    """Post-processed score tables; the classes of `params` must be those of the tables."""
    classes = score_classes(scores)
    validate(params, classes)
    if params.method == "median":
        return median_filtered(scores, {c: params.params[c]["window"] for c in classes})
    return csebbs_tables(scores, params)
