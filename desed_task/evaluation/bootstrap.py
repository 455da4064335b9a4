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

import sys
import warnings
from typing import Callable

import numpy as np
import pandas as pd
from tqdm import tqdm

from desed_task.evaluation.collar_segment import clip_counts_numpy
from desed_task.evaluation.f1 import _labels, intersection_counts, intersection_f1_from_counts
from desed_task.evaluation.intersection_curves import accumulate_steps, score_runs, statistic_steps
from desed_task.evaluation.io import audio_id
from desed_task.evaluation.psds import PSDS1, PSDS2, _psd_roc_from_statistics, ground_truth_events

SECONDS_PER_HOUR = 3600.0


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


def _within_max_efpr(statistics, t_ref: dict, dataset_duration: float, scenario) -> dict:
    """The statistics without the thresholds whose eFPR exceeds the scenario's maximum.

    sed_scores_eval sorts a class's operating points by eFPR and cuts them at `max_efpr`, so leaving those
    points out beforehand changes nothing but saves its (Python) sort of every threshold.
    """
    kept = {}
    for label, (thresholds, stats) in statistics.items():
        efpr = stats["fps"] / dataset_duration
        if scenario.alpha_ct != 0.0:
            rates = [stats["cts"][other] / max(t_ref[other], 1e-12) for other in stats["cts"]]
            efpr = efpr + scenario.alpha_ct * np.mean(rates, axis=0)
        keep = efpr * SECONDS_PER_HOUR <= scenario.max_efpr * (1 + 1e-9)
        cts = stats["cts"]
        cts = {other: values[keep] for other, values in cts.items()} if isinstance(cts, dict) else cts[keep]
        kept[label] = (thresholds[keep], {"tps": stats["tps"][keep], "fps": stats["fps"][keep], "cts": cts})
    return kept


def psds_bootstrap_values(
    scores: dict[str, pd.DataFrame], ground_truth: pd.DataFrame, durations: dict[str, float], indices: np.ndarray,
    scenarios=(PSDS1, PSDS2), progress: bool = False,
) -> dict[str, np.ndarray]:
    """Per draw: the threshold-independent PSDS of each scenario on the drawn clips (`<scenario>_sed_scores_eval`).

    As the plain PSDS, each draw is evaluated on its clips that have ground-truth events. `indices` index
    `ground_truth["filename"].unique()`. The detection runs and their count steps are computed once; a draw
    re-weights the steps by clip and runs sed_scores_eval's PSD-ROC on the thresholds under `max_efpr`.
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
    values = {f"{scenario.name}_sed_scores_eval": np.empty(len(indices)) for scenario in scenarios}
    steps = [(scenario, statistic_steps(runs, scenario.dtc_threshold, scenario.gtc_threshold, scenario.cttc_threshold))
             for scenario in scenarios]
    for draw in tqdm(range(len(indices)), desc="bootstrap PSDS", file=sys.stderr, disable=not progress):
        clip_weights = event_weights[draw]
        n_ref = dict(zip(labels, clip_weights @ n_ref_clip))
        t_ref = dict(zip(labels, clip_weights @ t_ref_clip))
        dataset_duration = float(clip_weights @ duration_clip)
        for scenario, scenario_steps in steps:
            statistics = _within_max_efpr(
                accumulate_steps(scenario_steps, clip_weights), t_ref, dataset_duration, scenario)
            result = _psd_roc_from_statistics(statistics, n_ref, t_ref, dataset_duration, scenario)
            values[f"{scenario.name}_sed_scores_eval"][draw] = result.value
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
