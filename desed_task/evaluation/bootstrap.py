"""Bootstrap confidence intervals over clips: resampled F1s from per-clip counts, resampled PSDS from per-clip steps.

A draw picks as many clips as the ground truth has, with replacement. Every metric here is a function of
counts that add up over clips (intersection TP / FP / reference events, sed_eval's collar and segment
TP / system / reference counts, the PSD-ROC's TP / FP / cross-trigger steps, event counts and durations),
so a draw's metric is that function of the counts weighted by how often each clip was drawn. The counts are
computed once; the F1s of all draws then take one matrix product each, and a PSDS draw only re-accumulates
the precomputed steps. `bootstrap_confidence_interval` is the plain per-draw recomputation, kept as the
reference that the fast path is tested against (same draws, same values).
"""
from __future__ import annotations

import functools
import sys
import warnings
from typing import Callable

import numpy as np
import pandas as pd
import scipy.sparse
from tqdm import tqdm

from desed_task.evaluation.collar_segment import clip_counts_numpy
from desed_task.evaluation.f1 import _labels, intersection_counts, intersection_f1_from_counts
from desed_task.evaluation.intersection_curves import StatisticSteps, score_runs, statistic_steps
from desed_task.evaluation.io import audio_id
from desed_task.evaluation.psds import PSDS1, PSDS2, ground_truth_events, psds_from_psd_roc

SECONDS_PER_HOUR = 3600.0
PRUNE_MARGIN = 3.0  # thresholds kept for a PSDS draw: FP rate on all clips within 3 x max_efpr (see _ScenarioDraws)


def bootstrap_indices(n_clips: int, n_draws: int, seed: int = 0) -> np.ndarray:
    """(n_draws, n_clips) clip indices drawn with replacement."""
    return np.random.default_rng(seed).integers(0, n_clips, size=(n_draws, n_clips))


def draw_weights(indices: np.ndarray, n_clips: int) -> np.ndarray:
    """(n_draws, n_clips) how many times each clip was drawn in each draw."""
    n_draws = len(indices)
    flat = (indices + np.arange(n_draws)[:, None] * n_clips).ravel()
    return np.bincount(flat, minlength=n_draws * n_clips).reshape(n_draws, n_clips)


def percentile_interval(values, confidence: float = 0.95) -> tuple[float, float]:
    """Percentile interval of the draws' values."""
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(np.asarray(values, dtype=float), [tail, 100 - tail])
    return float(low), float(high)


def _class_f1(tp: np.ndarray, n_sys: np.ndarray, n_ref: np.ndarray, zero_score: bool) -> np.ndarray:
    """sed_eval's class-wise F-measure on arrays (NaN where undefined), with the operations of `f1._f_measure`."""
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(n_sys == 0, 0.0 if zero_score else np.nan, tp / n_sys)
        recall = np.where(n_ref == 0, np.nan, tp / n_ref)
        f1 = 2.0 * precision * recall / (precision + recall)
    return np.where((precision == 0) & (recall == 0), 0.0, f1)


def _nanmean_rows(values: np.ndarray) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a draw where every class is undefined gives NaN
        return np.nanmean(values, axis=-1)


def f1_bootstrap_values(
    detections: pd.DataFrame, ground_truth: pd.DataFrame, durations: dict[str, float], indices: np.ndarray,
) -> dict[str, np.ndarray]:
    """Per draw: intersection, collar (event) and segment macro F1 of the drawn clips, as `sed_report` computes them.

    `indices` index `ground_truth["filename"].unique()`. Classes are those of the drawn clips, as a
    recomputation on the drawn clips would have them.
    """
    clips = ground_truth["filename"].unique()
    weights = draw_weights(indices, len(clips)).astype(np.float64)
    intersection = intersection_counts(detections, ground_truth, durations)
    rows = pd.Index(intersection.clips).get_indexer([audio_id(str(name)) for name in clips])
    summed = [weights @ getattr(intersection, key)[rows] for key in ("tp", "fp", "n_ref")]
    values = {"intersection_f1_macro": intersection_f1_from_counts(*summed)[0]}
    event, segment = clip_counts_numpy(detections, ground_truth, _labels(detections, ground_truth))
    present = weights @ (event["Nref"] + event["Nsys"]) > 0  # the draw's classes: labels of its rows
    for name, counts, zero_score in (("event", event, True), ("segment", segment, False)):
        tp, n_sys, n_ref = (weights @ counts[key] for key in ("Ntp", "Nsys", "Nref"))
        class_f1 = _class_f1(tp, n_sys, n_ref, zero_score)
        values[f"{name}_f1_macro"] = _nanmean_rows(class_f1)
        zero_scored = np.where(present, np.nan_to_num(class_f1, nan=0.0), 0.0).sum(-1)
        values[f"{name}_f1_macro_nan_as_zero"] = np.where(
            present.any(-1), zero_scored / np.maximum(present.sum(-1), 1), np.nan)
    return values


class _StepLayout:
    """Count steps of the thresholds at or above position `first[class]` of each class, laid out for fast sums.

    The kept thresholds of all classes share one row index (`offsets[class] + position - first[class]`): TP and
    FP steps are (rows, clips) sparse matrices, so that a draw's counts at every threshold take one sparse
    product and one cumulative sum. Cross-trigger steps (PSDS2) are laid out the same way, one block
    of rows per (class, other class), and read only at the thresholds whose FP rate alone is within `max_efpr`.
    """

    def __init__(self, entries: dict, cross: dict | None, sizes: np.ndarray, first: np.ndarray, n_clips: int):
        self.first, self.sizes, n_classes = first, sizes, len(sizes)
        self.offsets = np.concatenate([[0], np.cumsum(sizes - first)])
        kept = entries["position"] >= first[entries["class"]]
        rows = (self.offsets[entries["class"]] + entries["position"] - first[entries["class"]])[kept]
        shape = (int(self.offsets[-1]), n_clips)
        self.tps, self.fps = (scipy.sparse.csr_matrix((entries[key][kept], (rows, entries["clip"][kept])), shape=shape)
                              for key in ("tps", "fps"))
        self.cross = None
        if cross is not None:
            kept = cross["position"] >= first[cross["class"]]
            pair_sizes = np.repeat(sizes - first, n_classes) * (1 - np.eye(n_classes, dtype=np.intp).ravel())
            self.pair_start = np.concatenate([[0], np.cumsum(pair_sizes)])
            rows = (self.pair_start[cross["class"] * n_classes + cross["other"]] + cross["position"]
                    - first[cross["class"]])[kept]
            self.cross = scipy.sparse.csr_matrix(
                (cross["sums"][kept], (rows, cross["clip"][kept])), shape=(int(self.pair_start[-1]), n_clips))

    @staticmethod
    def _prefix_sums(matrix, weights: np.ndarray) -> np.ndarray:
        """0, then the clip-weighted row sums of `matrix` summed from the first row on."""
        return np.concatenate([[0.0], np.cumsum(matrix @ weights)])

    def psds(self, scenario, labels, weights: np.ndarray, n_ref: np.ndarray, t_ref: np.ndarray,
             dataset_duration: float) -> float:
        """PSDS of the clips weighted by `weights`, as sed_scores_eval computes it from the summed statistics;
        exact when every threshold below `first` has an eFPR above `max_efpr` for these weights."""
        n_classes = len(labels)
        tps, fps = self._prefix_sums(self.tps, weights), self._prefix_sums(self.fps, weights)
        cross = None if self.cross is None else self._prefix_sums(self.cross, weights)
        rocs = {}
        for index, label in enumerate(labels):
            start, stop = self.offsets[index], self.offsets[index + 1]
            # counts at each threshold (steps there and above) plus +inf (counts 0), as sed_scores_eval's
            tp_ratio = (tps[stop] - tps[start:stop + 1]) / max(n_ref[index], 1)
            fp_rate = (fps[stop] - fps[start:stop + 1]) / dataset_duration
            candidates = np.flatnonzero(fp_rate * SECONDS_PER_HOUR <= scenario.max_efpr)
            tp_ratio, efpr = tp_ratio[candidates], fp_rate[candidates]
            if cross is not None and scenario.alpha_ct != 0.0:
                others = np.delete(np.arange(n_classes), index)
                block = self.pair_start[index * n_classes + others]
                counts = cross[block + (stop - start)][:, None] - cross[block[:, None] + candidates]
                rates = counts / np.maximum(t_ref[others], 1e-12)[:, None]
                efpr = efpr + scenario.alpha_ct * np.mean(rates, axis=0)
            rocs[label] = _unique_cummax_roc(tp_ratio, efpr * SECONDS_PER_HOUR, scenario.max_efpr)
        tpr, efpr = _multi_class_roc(rocs, scenario.alpha_st, scenario.max_efpr)
        return float(psds_from_psd_roc(tpr, efpr, scenario.max_efpr))


class _ScenarioDraws:
    """One scenario's PSD-ROC count steps, re-accumulated for many clip weightings.

    Most thresholds of a class are so low that their eFPR is far above `max_efpr`, and sed_scores_eval drops
    them. A draw is computed on the thresholds at or above the lowest one whose FP rate on all clips is within
    `PRUNE_MARGIN x max_efpr`, when a lower bound proves that every threshold below has an FP rate above
    `max_efpr` in that draw (each clip's smallest FP count over those thresholds, weighted by the draw);
    otherwise on all thresholds. Either way the value is the one of the full computation.
    """

    def __init__(self, steps: StatisticSteps, scenario, n_clip_rows: int, n_clips: int, dataset_duration: float):
        self.scenario, self.labels = scenario, steps.labels
        n_classes = len(steps.labels)
        sizes = np.array([len(thresholds) for thresholds in steps.thresholds])
        entries = {
            "class": np.repeat(np.arange(n_classes), np.diff(steps.class_bounds)), "position": steps.threshold_index,
            "clip": steps.keys // n_clip_rows, "tps": steps.tps, "fps": steps.fps,
        }
        cross = None
        if steps.cross is not None:
            parts = list(steps.cross.items())
            cross = {
                "class": np.concatenate([np.full(len(keys), index) for (index, _), (keys, _, _) in parts]),
                "other": np.concatenate([np.full(len(keys), other) for (_, other), (keys, _, _) in parts]),
                "position": np.concatenate([position for _, (_, position, _) in parts]),
                "clip": np.concatenate([keys // n_clip_rows for _, (keys, _, _) in parts]),
                "sums": np.concatenate([sums for _, (_, _, sums) in parts]),
            }
        self._layout_inputs = (entries, cross, sizes, n_clips)
        first = self._first_kept(entries, sizes, dataset_duration)
        self.pruned = _StepLayout(entries, cross, sizes, first, n_clips)
        self.lowest_fps = self._lowest_clip_fps(entries, first, n_clips)

    @functools.cached_property
    def full(self) -> _StepLayout:
        """All thresholds, for the draws where the bound does not hold (built on first use)."""
        entries, cross, sizes, n_clips = self._layout_inputs
        return _StepLayout(entries, cross, sizes, np.zeros(len(sizes), dtype=np.intp), n_clips)

    def _first_kept(self, entries, sizes, dataset_duration) -> np.ndarray:
        """Per class: the position of the lowest threshold whose FP rate on all clips is within the margin."""
        offsets = np.concatenate([[0], np.cumsum(sizes)])
        steps = np.bincount(offsets[entries["class"]] + entries["position"], weights=entries["fps"],
                            minlength=offsets[-1])
        first = np.zeros(len(sizes), dtype=np.intp)
        for index in range(len(sizes)):
            counts = np.cumsum(steps[offsets[index]:offsets[index + 1]][::-1])[::-1]
            within = np.flatnonzero(counts / dataset_duration * SECONDS_PER_HOUR <= PRUNE_MARGIN * self.scenario.max_efpr)
            first[index] = within[0] if len(within) else sizes[index]
        return first

    @staticmethod
    def _lowest_clip_fps(entries, first, n_clips) -> np.ndarray:
        """(clips, classes): a lower bound of each clip's FP count at every threshold below `first` of the class."""
        n_classes = len(first)
        below = entries["position"] < first[entries["class"]]
        cell = entries["clip"] * n_classes + entries["class"]
        at_first = np.bincount(cell[~below], weights=entries["fps"][~below], minlength=n_clips * n_classes)
        # a clip's count at a position below `first` = its count at `first` + its steps from there to `first`
        order = np.lexsort((-entries["position"][below], cell[below]))
        cells, steps = cell[below][order], entries["fps"][below][order]
        running = np.cumsum(steps)
        group_start = np.flatnonzero(np.concatenate([[True], cells[1:] != cells[:-1]])) if len(cells) else np.array([], int)
        before = np.concatenate([[0.0], running])[group_start]
        lowest = np.zeros(n_clips * n_classes)
        if len(cells):
            partial = running - np.repeat(before, np.diff(np.append(group_start, len(cells))))
            lowest[cells[group_start]] = np.minimum(np.minimum.reduceat(partial, group_start), 0.0)
        return (at_first + lowest).reshape(n_clips, n_classes)

    def psds(self, weights: np.ndarray, n_ref: np.ndarray, t_ref: np.ndarray, dataset_duration: float) -> float:
        """PSDS of the clips weighted by `weights` (one draw)."""
        bound = weights @ self.lowest_fps[:, self.pruned.first > 0] / dataset_duration * SECONDS_PER_HOUR
        layout = self.pruned if (bound > self.scenario.max_efpr).all() else self.full
        return layout.psds(self.scenario, self.labels, weights, n_ref, t_ref, dataset_duration)


def _unique_cummax_roc(tp_ratio: np.ndarray, efpr: np.ndarray, max_efpr: float) -> tuple[np.ndarray, np.ndarray]:
    """sed_scores_eval's `_unique_cummax_sort` without its Python sort: points sorted by (eFPR, TPR), the
    running TPR maxima, the last point of each eFPR, cut after `max_efpr`."""
    order = np.lexsort((tp_ratio, efpr))
    tp_ratio, efpr = tp_ratio[order], efpr[order]
    rising = np.maximum.accumulate(tp_ratio)
    kept = np.concatenate([[0], np.arange(1, len(tp_ratio))[rising[1:] > rising[:-1]]])
    tp_ratio, efpr = tp_ratio[kept], efpr[kept]
    efpr, last = np.unique(efpr[::-1], return_index=True)
    tp_ratio = tp_ratio[-1 - last]
    within = int(np.argmax(np.append(efpr > max_efpr, True)))
    return tp_ratio[:within], efpr[:within]


def _multi_class_roc(rocs: dict, alpha_st: float, max_efpr: float) -> tuple[np.ndarray, np.ndarray]:
    """sed_scores_eval's `multi_class_psd_roc_from_single_class_psd_rocs` with its scipy `interp1d(kind="previous",
    fill_value=(0, last))` done by a search: each class's TPR at every class's eFPR, mean - alpha_st x std."""
    efpr = np.unique(np.sort(np.concatenate([class_efpr for _, class_efpr in rocs.values()])))
    interpolated = []
    for class_tpr, class_efpr in rocs.values():
        previous = np.searchsorted(class_efpr, efpr, side="right") - 1
        interpolated.append(np.where(previous >= 0, class_tpr[np.maximum(previous, 0)], 0.0))
    tpr = np.maximum(np.mean(interpolated, axis=0) - alpha_st * np.std(interpolated, axis=0), 0.0)
    return np.concatenate([tpr, tpr[-1:]]), np.concatenate([efpr, [max_efpr]])


def psds_bootstrap_values(
    scores: dict[str, pd.DataFrame], ground_truth: pd.DataFrame, durations: dict[str, float], indices: np.ndarray,
    scenarios=(PSDS1, PSDS2), progress: bool = False,
) -> dict[str, np.ndarray]:
    """Per draw: the threshold-independent PSDS of each scenario on the drawn clips (`<scenario>_sed_scores_eval`).

    As the plain PSDS, each draw is evaluated on its clips that have ground-truth events. `indices` index
    `ground_truth["filename"].unique()`. The detection runs and their count steps are computed once; a draw
    re-weights the steps by clip and computes sed_scores_eval's PSD-ROC from the weighted sums.
    """
    clips = [audio_id(str(name)) for name in ground_truth["filename"].unique()]
    weights = draw_weights(indices, len(clips)).astype(np.float64)
    events = {clip: clip_events for clip, clip_events in ground_truth_events(ground_truth).items() if clip_events}
    events = {clip: events[clip] for clip in sorted(events)}
    event_weights = weights[:, pd.Index(clips).get_indexer(list(events))]
    labels = list(scores[next(iter(events))].columns[2:])
    runs = score_runs(scores, events, labels)
    n_ref_clip = np.zeros((len(events), len(labels)))
    t_ref_clip = np.zeros((len(events), len(labels)))
    for row, clip_events in enumerate(events.values()):
        for onset, offset, label in clip_events:
            n_ref_clip[row, labels.index(label)] += 1
            t_ref_clip[row, labels.index(label)] += offset - onset
    clip_durations = {audio_id(name): value for name, value in durations.items()}
    duration_clip = np.array([clip_durations[clip] for clip in events])
    draws = [
        _ScenarioDraws(statistic_steps(runs, s.dtc_threshold, s.gtc_threshold, s.cttc_threshold), s,
                       len(labels) * runs.width, len(events), float(duration_clip.sum()))
        for s in scenarios
    ]
    values = {f"{scenario.name}_sed_scores_eval": np.empty(len(indices)) for scenario in scenarios}
    for draw in tqdm(range(len(indices)), desc="bootstrap PSDS", unit="draw", file=sys.stderr, disable=not progress):
        clip_weights = event_weights[draw]
        n_ref, t_ref, dataset_duration = clip_weights @ n_ref_clip, clip_weights @ t_ref_clip, clip_weights @ duration_clip
        for scenario_draws in draws:
            values[f"{scenario_draws.scenario.name}_sed_scores_eval"][draw] = scenario_draws.psds(
                clip_weights, n_ref, t_ref, float(dataset_duration))
    return values


def bootstrap_confidence_interval(
    metric: Callable[[pd.DataFrame, pd.DataFrame, dict], float], ground_truth: pd.DataFrame,
    detections: pd.DataFrame, durations: dict[str, float], n_draws: int = 100, seed: int = 0,
    confidence: float = 0.95, indices: np.ndarray | None = None,
) -> tuple[float, float]:
    """Percentile interval of `metric(ground_truth, detections, durations)` recomputed on each draw's clips.

    Draws are `bootstrap_indices(clips, n_draws, seed)` unless `indices` are given; a clip drawn k times
    appears k times under distinct names (`b<i>_<name>`) so that metrics treat the copies as separate clips.
    """
    return percentile_interval(
        resampled_metric_values(metric, ground_truth, detections, durations, n_draws, seed, indices), confidence)


def resampled_metric_values(
    metric: Callable[[pd.DataFrame, pd.DataFrame, dict], float], ground_truth: pd.DataFrame,
    detections: pd.DataFrame, durations: dict[str, float], n_draws: int = 100, seed: int = 0,
    indices: np.ndarray | None = None,
) -> np.ndarray:
    """`metric` recomputed from scratch on every draw (see `bootstrap_confidence_interval`)."""
    clips = ground_truth["filename"].unique()
    indices = bootstrap_indices(len(clips), n_draws, seed) if indices is None else indices
    gt_groups = {name: group for name, group in ground_truth.groupby("filename", sort=False)}
    det_groups = {name: group for name, group in detections.groupby("filename", sort=False)}
    clip_durations = {audio_id(name): value for name, value in durations.items()}
    values = []
    for draw in indices:
        gt_parts, det_parts, draw_durations = [], [], {}
        for index, name in enumerate(clips[draw]):
            copy_name = f"b{index}_{name}"
            draw_durations[copy_name] = clip_durations[audio_id(name)]
            gt_parts.append(gt_groups[name].assign(filename=copy_name))
            if name in det_groups:
                det_parts.append(det_groups[name].assign(filename=copy_name))
        gt_draw = pd.concat(gt_parts, ignore_index=True)
        det_draw = pd.concat(det_parts, ignore_index=True) if det_parts else detections.iloc[:0]
        values.append(metric(gt_draw, det_draw, draw_durations))
    return np.array(values, dtype=float)


def bootstrap_intervals(
    ground_truth: pd.DataFrame, durations: dict[str, float], detections: pd.DataFrame | None = None,
    scores: dict[str, pd.DataFrame] | None = None, n_draws: int = 1000, n_psds_draws: int | None = None,
    seed: int = 0, confidence: float = 0.95, progress: bool = False,
) -> dict[str, float]:
    """`<metric>_ci_low` / `<metric>_ci_high` of the macro F1s (from `detections`) and, from `scores`, of PSDS1
    and PSDS2 (`n_psds_draws` draws, default `n_draws`; the first draws of the same sequence)."""
    clips = ground_truth["filename"].unique()
    n_psds_draws = n_draws if n_psds_draws is None else n_psds_draws
    indices = bootstrap_indices(len(clips), max(n_draws, n_psds_draws), seed)
    values = {}
    if detections is not None and n_draws > 0:
        values.update(f1_bootstrap_values(detections, ground_truth, durations, indices[:n_draws]))
    if scores is not None and n_psds_draws > 0:
        values.update(psds_bootstrap_values(scores, ground_truth, durations, indices[:n_psds_draws], progress=progress))
    intervals = {}
    for name, draws in values.items():
        intervals[f"{name}_ci_low"], intervals[f"{name}_ci_high"] = percentile_interval(draws, confidence)
    return intervals
