"""Vectorised intersection-based statistics over every score threshold (the sed_scores_eval algorithm).

sed_scores_eval detects, for one class of one clip and each unique score θ, the maximal runs of frames with
score >= θ, and counts TPs, FPs and cross triggers per θ in a Python loop over clips and classes. Here
all clips and classes are processed at once. Over all θ the distinct runs form a tree: the run holding
frame i at θ = s[i] reaches from the nearest smaller score left of i to the nearest smaller score right of
it, and exists for θ in (max(score before it, score after it), s[i]]. Whether a run passes the DTC, is a
false positive or a cross trigger depends on the run alone, so those counts change by +1 when θ falls to
the run's top and by -1 when it falls to its bottom. A ground-truth event is found when the DTC-passing
runs alive at θ cover gtc of it; its coverage is tracked with the same +/- steps.

Layout: one row per (clip, class) of width `max frames + 1`, scores replaced by their rank within the row,
and at least one trailing -inf (rank 0) per row, so that neighbour searches on the flattened array stop
at row ends. Nearest smaller neighbours use binary lifting over a sparse table of range minima.
Intersections with the (merged, disjoint) ground truth of a class are differences of its cumulative
coverage F(t) = |ground truth ∩ [0, t]| taken at the frame boundaries.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

TIME_DECIMALS = 6


@dataclass
class ScoreRuns:
    """Every distinct detection (run) of every (clip, class) row, and the ground truth on the same grid."""

    labels: list[str]
    width: int  # row width: frames of the longest clip + 1
    rank_values: np.ndarray  # (rows * width,) score of each (row, rank)
    coverage: np.ndarray  # (rows * width,) F of the row's class ground truth at each frame boundary
    all_coverage: np.ndarray  # (rows * width,) F of the ground truth of all classes of the row's clip
    present_bits: np.ndarray  # per clip: bit k set when the clip has ground truth of class k
    run_count_steps: np.ndarray  # (rows * width,) change of the number of runs when θ falls to each (row, rank)
    row: np.ndarray  # per run: row = clip * n_classes + class
    start: np.ndarray  # per run: flat index of its first frame
    stop: np.ndarray  # per run: flat index after its last frame
    top: np.ndarray  # per run: rank of the highest threshold at which it exists
    bottom: np.ndarray  # per run: rank of the threshold at which it disappears (0: never)
    onset: np.ndarray
    offset: np.ndarray
    gt_row: np.ndarray  # per ground-truth event (sorted by row)
    gt_onset: np.ndarray
    gt_offset: np.ndarray


def _rows(scores: dict[str, pd.DataFrame], clips: list[str], labels: list[str]):
    """(rows, width) scores padded with -inf and (rows, width) frame boundary times."""
    n_classes = len(labels)
    arrays = []
    for clip in clips:
        table = scores[clip]
        columns = list(table.columns)
        values = table.to_numpy(dtype=np.float64)
        if columns[2:] != labels:
            values = np.concatenate([values[:, :2], values[:, [columns.index(label) for label in labels]]], axis=1)
        arrays.append(values)
    width = max(len(values) for values in arrays) + 1
    score_rows = np.full((len(clips), n_classes, width), -np.inf)
    times = np.empty((len(clips), width))
    for index, values in enumerate(arrays):
        n_frames = len(values)
        score_rows[index, :, :n_frames] = values[:, 2:].T
        times[index, :n_frames] = values[:, 0]
        times[index, n_frames:] = values[-1, 1]
    if np.isnan(score_rows).any():
        raise ValueError("score tables contain NaN")
    return score_rows.reshape(len(clips) * n_classes, width), times, width


def _dense_ranks(score_rows: np.ndarray):
    """Rank of each score within its row (equal scores share a rank, -inf is 0) and the score of each rank."""
    order = np.argsort(score_rows, axis=1, kind="stable")
    ordered = np.take_along_axis(score_rows, order, axis=1)
    new_value = np.ones(ordered.shape, dtype=bool)
    new_value[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
    dense = np.cumsum(new_value, axis=1, dtype=np.int32) - 1
    if score_rows.shape[1] < np.iinfo(np.int16).max:
        dense = dense.astype(np.int16)
    ranks = np.empty_like(dense)
    np.put_along_axis(ranks, order, dense, axis=1)
    rank_values = np.full(score_rows.shape, -np.inf)
    np.put_along_axis(rank_values, dense, ordered, axis=1)
    return ranks.ravel(), rank_values.ravel()


def _range_minima(ranks: np.ndarray, width: int) -> np.ndarray:
    """table[k, j] = min(ranks[j : j + 2**k]) (truncated at the end) for 2**k < width."""
    levels = [ranks]
    while (1 << len(levels)) < width:
        previous, step = levels[-1], 1 << (len(levels) - 1)
        current = previous.copy()
        np.minimum(previous[:-step], previous[step:], out=current[:-step])
        levels.append(current)
    return np.stack(levels)


def _runs(ranks: np.ndarray, width: int):
    """(start, stop, top, bottom) of every distinct run over all thresholds, in flat-index order."""
    minima = _range_minima(ranks, width)
    size = len(ranks)
    frames = np.flatnonzero(ranks > 0)
    level = ranks[frames]
    start = frames.copy()
    stop = frames + 1
    for k in reversed(range(len(minima))):
        jump = 1 << k
        left = start - jump
        ok = left >= 0
        ok &= minima[k, np.maximum(left, 0)] >= level
        start = np.where(ok, left, start)
        ok = stop + jump <= size
        ok &= minima[k, np.minimum(stop, size - 1)] >= level
        stop = np.where(ok, stop + jump, stop)
    # Frames of equal score inside one run give the same run: keep the leftmost of them.
    span = frames - start
    keep = span == 0
    inner = np.flatnonzero(~keep)
    k = np.floor(np.log2(span[inner])).astype(np.intp)
    left_min = np.minimum(minima[k, start[inner]], minima[k, frames[inner] - (1 << k)])
    keep[inner] = left_min > level[inner]
    start, stop, top = start[keep], stop[keep], level[keep]
    before = np.where(start > 0, ranks[np.maximum(start - 1, 0)], 0)
    bottom = np.maximum(before, ranks[stop])
    return start, stop, top, bottom


def score_runs(scores: dict[str, pd.DataFrame], events: dict[str, list], labels: list[str]) -> ScoreRuns:
    """Runs of all clips of `events` ({clip: [(onset, offset, label)]}, same-class events disjoint)."""
    clips = list(events)
    labels = list(labels)
    n_classes = len(labels)
    score_rows, times, width = _rows(scores, clips, labels)
    ranks, rank_values = _dense_ranks(score_rows)
    start, stop, top, bottom = _runs(ranks, width)
    # The number of runs at θ is the number of frames with score >= θ after one below θ (sed_scores_eval's onset deltas).
    frames = np.flatnonzero(ranks > 0)
    level = ranks[frames]
    rises = level > ranks[frames - 1]
    falls_next = ranks[frames + 1] > level
    run_count_steps = np.bincount(
        (frames // width) * width + level, weights=rises.astype(np.float64) - falls_next, minlength=len(ranks))
    boundary_times = np.repeat(times, n_classes, axis=0).ravel()

    class_index = {label: index for index, label in enumerate(labels)}
    unknown = {label for clip_events in events.values() for _, _, label in clip_events} - set(class_index)
    if unknown:
        raise ValueError(f"ground-truth labels {sorted(unknown)} have no score column")
    gt = np.array(
        [(index * n_classes + class_index[label], onset, offset)
         for index, clip in enumerate(clips) for onset, offset, label in events[clip]],
        dtype=np.float64,
    ).reshape(-1, 3)
    gt = gt[np.lexsort((gt[:, 1], gt[:, 0]))]
    gt_row = gt[:, 0].astype(np.intp)
    gt_onset, gt_offset = gt[:, 1], gt[:, 2]
    cells = gt_row[:, None] * width + np.arange(width)
    contribution = np.clip(boundary_times[cells] - gt_onset[:, None], 0.0, (gt_offset - gt_onset)[:, None])
    coverage = np.bincount(cells.ravel(), weights=contribution.ravel(), minlength=len(ranks))
    all_coverage = np.repeat(coverage.reshape(len(clips), n_classes, width).sum(axis=1), n_classes, axis=0).ravel()
    present = np.zeros(len(clips) * n_classes, dtype=bool)
    present[gt_row] = True
    return ScoreRuns(
        labels=labels, width=width, rank_values=rank_values, coverage=coverage, all_coverage=all_coverage,
        present_bits=present.reshape(len(clips), n_classes) @ (1 << np.arange(n_classes, dtype=np.int64)), run_count_steps=run_count_steps, row=start // width, start=start, stop=stop, top=top,
        bottom=bottom, onset=boundary_times[start], offset=boundary_times[stop], gt_row=gt_row, gt_onset=gt_onset,
        gt_offset=gt_offset,
    )


def _reaches(amount: np.ndarray, threshold: float, length: np.ndarray) -> np.ndarray:
    """sed_scores_eval's criterion: round(amount) >= round(threshold * length) at TIME_DECIMALS."""
    return np.round(amount, TIME_DECIMALS) >= np.round(threshold * length, TIME_DECIMALS)


def _steps(runs: ScoreRuns, selected: np.ndarray):
    """Flat (row, rank) keys and signs of the +1 / -1 steps of the selected runs."""
    key_top = runs.row[selected] * runs.width + runs.top[selected]
    ends = selected[runs.bottom[selected] > 0]
    key_bottom = runs.row[ends] * runs.width + runs.bottom[ends]
    return np.concatenate([key_top, key_bottom]), np.concatenate([np.ones(len(key_top)), -np.ones(len(key_bottom))])


def _true_positive_steps(runs: ScoreRuns, relevant: np.ndarray, gtc_threshold: float):
    """Keys and +/-1 changes of the number of found ground-truth events when the threshold falls to each key."""
    rows = runs.row[relevant]
    first = np.searchsorted(runs.gt_row, rows, side="left")
    counts = np.searchsorted(runs.gt_row, rows, side="right") - first
    pair_run = np.repeat(relevant, counts)
    offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    pair_gt = np.repeat(first, counts) + offsets
    overlap = (np.minimum(runs.offset[pair_run], runs.gt_offset[pair_gt])
               - np.maximum(runs.onset[pair_run], runs.gt_onset[pair_gt]))
    hit = overlap > 0
    pair_run, pair_gt, overlap = pair_run[hit], pair_gt[hit], overlap[hit]
    ends = runs.bottom[pair_run] > 0
    gt_index = np.concatenate([pair_gt, pair_gt[ends]])
    rank = np.concatenate([runs.top[pair_run], runs.bottom[pair_run][ends]])
    amount = np.concatenate([overlap, -overlap[ends]])
    if not len(gt_index):
        return np.empty(0, dtype=np.intp), np.empty(0)
    order = np.lexsort((-rank, gt_index))
    gt_index, rank, amount = gt_index[order], rank[order], amount[order]
    groups, group_start, group_size = np.unique(gt_index, return_index=True, return_counts=True)
    group = np.repeat(np.arange(len(groups)), group_size)
    position = np.arange(len(gt_index)) - group_start[group]
    grid = np.zeros((len(groups), group_size.max()))
    grid[group, position] = amount
    covered = np.cumsum(grid, axis=1)[group, position]
    last = np.ones(len(gt_index), dtype=bool)
    last[:-1] = (gt_index[1:] != gt_index[:-1]) | (rank[1:] != rank[:-1])
    gt_index, rank, covered = gt_index[last], rank[last], covered[last]
    found = _reaches(covered, gtc_threshold, runs.gt_offset[gt_index] - runs.gt_onset[gt_index]).astype(np.int64)
    before = np.zeros_like(found)
    same = gt_index[1:] == gt_index[:-1]
    before[1:][same] = found[:-1][same]
    change = found - before
    nonzero = change != 0
    return runs.gt_row[gt_index[nonzero]] * runs.width + rank[nonzero], change[nonzero].astype(np.float64)


@dataclass
class StatisticSteps:
    """Where, and by how much, each class's TP / FP / cross-trigger counts change as the threshold falls.

    `keys` are the (row, rank) flat indices with a change, grouped by class (`class_bounds`); `threshold_index`
    maps each to its position in its class's `thresholds`. The counts are sums over clips (a key's clip is
    `key // (n_classes * width)`), so weighting each clip's steps gives the statistics of any multiset of clips.
    """

    labels: list[str]
    width: int
    keys: np.ndarray
    class_bounds: np.ndarray
    thresholds: list[np.ndarray]
    threshold_index: np.ndarray
    tps: np.ndarray
    fps: np.ndarray
    cross: dict[tuple[int, int], tuple[np.ndarray, np.ndarray, np.ndarray]] | None  # (class, other): keys, index, sums


def statistic_steps(
    runs: ScoreRuns, dtc_threshold: float, gtc_threshold: float, cttc_threshold: float | None,
) -> StatisticSteps:
    """The count changes of every (clip, class) row at every threshold (see `StatisticSteps`)."""
    n_classes, width, size = len(runs.labels), runs.width, len(runs.rank_values)
    length = runs.offset - runs.onset
    on_target = runs.coverage[runs.stop] - runs.coverage[runs.start]
    relevant = _reaches(on_target, dtc_threshold, length)
    relevant_keys, relevant_signs = _steps(runs, np.flatnonzero(relevant))
    fps = runs.run_count_steps - np.bincount(relevant_keys, weights=relevant_signs, minlength=size)
    tp_keys, tp_changes = _true_positive_steps(runs, np.flatnonzero(relevant), gtc_threshold)
    tps = np.bincount(tp_keys, weights=tp_changes, minlength=size)
    changed = (fps != 0) | (tps != 0)

    cross_steps = {}  # other class -> (keys, summed changes) of the cross-trigger counts against it
    if cttc_threshold is not None:
        on_any = runs.all_coverage[runs.stop] - runs.all_coverage[runs.start]
        touching = np.flatnonzero(~relevant & (on_any - on_target > 0))
        target = runs.row[touching] % n_classes
        others = runs.present_bits[runs.row[touching] // n_classes] & ~(1 << target)
        for other in range(n_classes):
            candidates = touching[(others >> other) & 1 == 1]
            shift = (other - runs.row[candidates] % n_classes) * width
            on_other = runs.coverage[runs.stop[candidates] + shift] - runs.coverage[runs.start[candidates] + shift]
            step_keys, step_signs = _steps(runs, candidates[_reaches(on_other, cttc_threshold, length[candidates])])
            summed = np.bincount(step_keys, weights=step_signs, minlength=size)
            keys = np.flatnonzero(summed)
            cross_steps[other] = (keys, summed[keys])
            changed[keys] = True

    kept = np.flatnonzero(changed)
    kept_class = ((kept // width) % n_classes).astype(np.int16)
    by_class = np.argsort(kept_class, kind="stable")
    keys = kept[by_class]
    class_bounds = np.searchsorted(kept_class[by_class], np.arange(n_classes + 1))
    thresholds, threshold_index = [], np.empty(len(keys), dtype=np.intp)
    for index in range(n_classes):
        part = slice(class_bounds[index], class_bounds[index + 1])
        values, threshold_index[part] = np.unique(runs.rank_values[keys[part]], return_inverse=True)
        thresholds.append(values)
    cross = None
    if cttc_threshold is not None:
        cross = {}
        for other, (other_keys, sums) in cross_steps.items():
            key_class = (other_keys // width) % n_classes
            for index in range(n_classes):
                if index != other:
                    entries = key_class == index
                    part = keys[class_bounds[index]:class_bounds[index + 1]]
                    position = threshold_index[class_bounds[index] + np.searchsorted(part, other_keys[entries])]
                    cross[index, other] = (other_keys[entries], position, sums[entries])
    return StatisticSteps(
        labels=list(runs.labels), width=width, keys=keys, class_bounds=class_bounds, thresholds=thresholds,
        threshold_index=threshold_index, tps=tps[keys], fps=fps[keys], cross=cross,
    )


def accumulate_steps(steps: StatisticSteps) -> dict[str, tuple[np.ndarray, dict]]:
    """Per class: (thresholds + [inf], {"tps", "fps", "cts"}) summed over clips, as sed_scores_eval's
    `accumulated_intermediate_statistics_from_deltas`.
    """
    def accumulate(deltas, at, n_thresholds):
        summed = np.bincount(at, weights=deltas, minlength=n_thresholds)
        return np.concatenate([np.cumsum(summed[::-1])[::-1], [0.0]])

    tps, fps = steps.tps, steps.fps
    statistics = {}
    for index, label in enumerate(steps.labels):
        part = slice(steps.class_bounds[index], steps.class_bounds[index + 1])
        thresholds, at = steps.thresholds[index], steps.threshold_index[part]
        stats = {"tps": accumulate(tps[part], at, len(thresholds)), "fps": accumulate(fps[part], at, len(thresholds))}
        if steps.cross is None:
            stats["cts"] = np.zeros(len(thresholds) + 1)
        else:
            stats["cts"] = {}
            for other, other_label in enumerate(steps.labels):
                if other != index:
                    _, position, sums = steps.cross[index, other]
                    stats["cts"][other_label] = accumulate(sums, position, len(thresholds))
        statistics[label] = (np.concatenate([thresholds, [np.inf]]), stats)
    return statistics


def accumulated_statistics(
    runs: ScoreRuns, dtc_threshold: float, gtc_threshold: float, cttc_threshold: float | None,
) -> dict[str, tuple[np.ndarray, dict]]:
    """Per class: (thresholds + [inf], {"tps", "fps", "cts"}) summed over clips, as sed_scores_eval's
    `accumulated_intermediate_statistics_from_deltas` (thresholds are the scores where some clip's counts change).
    """
    return accumulate_steps(statistic_steps(runs, dtc_threshold, gtc_threshold, cttc_threshold))
