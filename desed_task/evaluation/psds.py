"""Polyphonic Sound Detection Score: threshold-independent (sed_scores_eval) and from operating points (psds_eval).

Both follow the DCASE task 4 baseline: the threshold-independent PSDS is computed on the clips that have
ground-truth events only (scores, ground truth and durations restricted to them), the operating-point PSDS
gives psds_eval the whole ground-truth table and all durations.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from psds_eval import PSDSEval
from sed_scores_eval.base_modules import statistics as sse_statistics
from sed_scores_eval.base_modules.detection import onset_deltas
from sed_scores_eval.base_modules.ground_truth import event_counts_and_durations
from sed_scores_eval.intersection_based.psds import _single_class_roc_from_intermediate_statistics as sse_single_class_rocs
from sed_scores_eval.intersection_based.psds import multi_class_psd_roc_from_single_class_psd_rocs as sse_multi_class_roc
from sed_scores_eval.intersection_based.psds import psds_from_psd_roc
from sed_scores_eval.intersection_based.intermediate_statistics import statistics_fn as sse_statistics_fn

from desed_task.evaluation.intersection_curves import accumulated_statistics, score_runs
from desed_task.evaluation.io import audio_id


@dataclass(frozen=True)
class PSDSScenario:
    """Intersection criteria and PSD-ROC weights of one PSDS scenario."""

    name: str
    dtc_threshold: float
    gtc_threshold: float
    cttc_threshold: float | None
    alpha_ct: float
    alpha_st: float
    max_efpr: float = 100.0


PSDS1 = PSDSScenario("psds1", dtc_threshold=0.7, gtc_threshold=0.7, cttc_threshold=None, alpha_ct=0.0, alpha_st=1.0)
PSDS2 = PSDSScenario("psds2", dtc_threshold=0.1, gtc_threshold=0.1, cttc_threshold=0.3, alpha_ct=0.5, alpha_st=1.0)


@dataclass
class PSDSResult:
    """PSDS value, per-class values and PSD-ROC curves (x: eFPR per hour, y: eTPR / TPR)."""

    value: float
    per_class: dict[str, float]
    roc: tuple[np.ndarray, np.ndarray]
    per_class_rocs: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    scenario: PSDSScenario = PSDS1
    flavour: str = "sed_scores_eval"


def merge_connected_events(events: list) -> list:
    """Merge same-class events that overlap or touch into one (both PSDS implementations reject them)."""
    merged: dict[str, list[list[float]]] = {}
    for onset, offset, label in sorted(events, key=lambda e: (e[2], e[0], e[1])):
        spans = merged.setdefault(label, [])
        if spans and onset <= spans[-1][1]:
            spans[-1][1] = max(spans[-1][1], offset)
        else:
            spans.append([onset, offset])
    return [(on, off, label) for label, spans in merged.items() for on, off in spans]


def ground_truth_events(ground_truth: pd.DataFrame) -> dict[str, list[tuple[float, float, str]]]:
    """Ground-truth table -> {audio id: [(onset, offset, label)]}; clips without events map to []."""
    events: dict[str, list] = {}
    for name, onset, offset, label in ground_truth[["filename", "onset", "offset", "event_label"]].itertuples(index=False):
        clip_events = events.setdefault(audio_id(str(name)), [])
        if isinstance(label, str) and offset > onset:
            clip_events.append((float(onset), float(offset), label))
    return {clip: merge_connected_events(clip_events) for clip, clip_events in events.items()}


def _fast_statistics_fn(
    detection_onset_times, detection_offset_times, target_onset_times, target_offset_times,
    other_onset_times, other_offset_times, dtc_threshold, gtc_threshold, cttc_threshold, time_decimals=6,
):
    """sed_scores_eval's intersection statistics, with the cross-trigger counts of all other classes in one pass."""
    stats = sse_statistics_fn(
        detection_onset_times, detection_offset_times, target_onset_times, target_offset_times,
        other_onset_times, other_offset_times, dtc_threshold, gtc_threshold, None, time_decimals,
    )
    if cttc_threshold is None:
        return stats
    tps = stats["tps"]
    cts = {name: np.zeros_like(tps) for name in other_onset_times}
    active = [name for name in other_onset_times if len(other_onset_times[name])]
    if not active:
        stats["cts"] = cts
        return stats
    det_crit = detection_offset_times > detection_onset_times
    target_intersections = np.maximum(
        np.minimum(detection_offset_times[..., None], target_offset_times)
        - np.maximum(detection_onset_times[..., None], target_onset_times),
        0.0,
    )
    detection_lengths = detection_offset_times - detection_onset_times
    dtc = (
        np.round(np.sum(target_intersections, axis=-1), decimals=time_decimals)
        >= np.round(dtc_threshold * detection_lengths, decimals=time_decimals)
    ) * det_crit
    onsets = np.concatenate([other_onset_times[name] for name in active])
    offsets = np.concatenate([other_offset_times[name] for name in active])
    bounds = np.cumsum([0] + [len(other_onset_times[name]) for name in active])[:-1]
    intersections = np.maximum(
        np.minimum(detection_offset_times[..., None], offsets) - np.maximum(detection_onset_times[..., None], onsets),
        0.0,
    )
    per_class = np.round(np.add.reduceat((1 - dtc[..., None]) * intersections, bounds, axis=-1), decimals=time_decimals)
    cross = (per_class >= np.round(cttc_threshold * detection_lengths, decimals=time_decimals)[..., None]) * det_crit[..., None]
    counts = cross.sum(-2)
    for index, name in enumerate(active):
        cts[name] = counts[..., index]
    stats["cts"] = cts
    return stats


def _fast_acceleration_fn(
    scores, timestamps, target_onset_times, target_offset_times, other_onset_times, other_offset_times,
    dtc_threshold, gtc_threshold, cttc_threshold, time_decimals=6,
):
    """Closed-form deltas when the clip has no ground truth that any detection of this class can hit.

    Every detection is then a false positive and nothing else changes, so the deltas are the onset deltas.
    """
    if len(target_onset_times) or (
        cttc_threshold is not None and any(len(times) for times in other_onset_times.values())
    ):
        return None, None, None
    deltas_ = onset_deltas(scores)
    change_points = np.abs(deltas_) > 0.5
    cp_scores = scores[change_points]
    zeros = np.zeros_like(cp_scores)
    cts = zeros if cttc_threshold is None else {name: zeros for name in other_onset_times}
    return None, cp_scores, {"fps": deltas_[change_points], "tps": zeros, "cts": cts}


PSDS_BACKENDS = ("numpy", "sed_scores_eval")


def _psd_roc_from_statistics(statistics, n_ref: dict, t_ref: dict, dataset_duration: float, scenario: PSDSScenario):
    """sed_scores_eval's PSD-ROC and PSDS from accumulated per-class statistics, event counts and durations."""
    full = {
        label: (thresholds, {
            **stats, "n_ref": n_ref[label], "t_ref": t_ref[label],
            "n_ref_other": {other: n_ref[other] for other in statistics if other != label},
            "t_ref_other": {other: t_ref[other] for other in statistics if other != label},
        })
        for label, (thresholds, stats) in statistics.items()
    }
    per_class_rocs = sse_single_class_rocs(
        full, dataset_duration=dataset_duration, alpha_ct=scenario.alpha_ct,
        unit_of_time="hour", max_efpr=scenario.max_efpr,
    )
    tpr, efpr = sse_multi_class_roc(per_class_rocs, alpha_st=scenario.alpha_st, max_efpr=scenario.max_efpr)
    return PSDSResult(
        value=float(psds_from_psd_roc(tpr, efpr, scenario.max_efpr)),
        per_class={name: float(psds_from_psd_roc(y, x, scenario.max_efpr)) for name, (y, x, _) in per_class_rocs.items()},
        roc=(np.asarray(efpr), np.asarray(tpr)),
        per_class_rocs={name: (np.asarray(x), np.asarray(y)) for name, (y, x, _) in per_class_rocs.items()},
        scenario=scenario,
        flavour="sed_scores_eval",
    )


def threshold_independent_psds(
    scores: dict[str, pd.DataFrame], ground_truth: pd.DataFrame, durations: dict[str, float],
    scenarios=(PSDS1, PSDS2), backend: str = "numpy", num_jobs: int = 1,
) -> list[PSDSResult]:
    """Threshold-independent PSDS of several scenarios (sharing the detection runs) on the clips with events.

    `backend="numpy"` is the vectorised implementation (`intersection_curves`), `"sed_scores_eval"` runs
    sed_scores_eval's per-clip statistics (with `num_jobs` processes); both give the same statistics.
    """
    if backend not in PSDS_BACKENDS:
        raise ValueError(f"unknown PSDS backend {backend!r}; choose from {PSDS_BACKENDS}")
    events = {clip: clip_events for clip, clip_events in ground_truth_events(ground_truth).items() if clip_events}
    events = {clip: events[clip] for clip in sorted(events)}
    clip_durations = {audio_id(name): value for name, value in durations.items()}
    missing = sorted(set(events) - set(scores))
    if missing:
        raise ValueError(f"{len(missing)} clips with ground-truth events have no scores, e.g. {missing[:3]}")
    labels = list(scores[next(iter(events))].columns[2:])
    runs = score_runs(scores, events, labels) if backend == "numpy" else None
    results = []
    for scenario in scenarios:
        if runs is not None:
            statistics = accumulated_statistics(
                runs, scenario.dtc_threshold, scenario.gtc_threshold, scenario.cttc_threshold)
        else:
            deltas = sse_statistics.intermediate_statistics_deltas(
                {clip: scores[clip] for clip in events}, events, _fast_statistics_fn,
                acceleration_fn=_fast_acceleration_fn, num_jobs=num_jobs, dtc_threshold=scenario.dtc_threshold,
                gtc_threshold=scenario.gtc_threshold, cttc_threshold=scenario.cttc_threshold, time_decimals=6,
            )
            statistics = sse_statistics.accumulated_intermediate_statistics_from_deltas(deltas)
        n_ref, t_ref = event_counts_and_durations(events, event_classes=list(statistics))
        dataset_duration = sum(clip_durations[clip] for clip in events)
        results.append(_psd_roc_from_statistics(statistics, n_ref, t_ref, dataset_duration, scenario))
    return results


def psds_from_scores(
    scores: dict[str, pd.DataFrame], ground_truth: pd.DataFrame, durations: dict[str, float],
    scenario: PSDSScenario = PSDS1, num_jobs: int = 1, backend: str = "numpy",
) -> PSDSResult:
    """Threshold-independent PSDS (sed_scores_eval algorithm) on the clips that have ground-truth events."""
    return threshold_independent_psds(scores, ground_truth, durations, [scenario], backend, num_jobs)[0]


def psds_eval_object(ground_truth: pd.DataFrame, durations: dict[str, float], scenario: PSDSScenario) -> PSDSEval:
    """psds_eval evaluator on the full ground truth and all durations (as the DCASE baseline)."""
    metadata = pd.DataFrame({"filename": list(durations), "duration": list(durations.values())})
    return PSDSEval(
        dtc_threshold=scenario.dtc_threshold, gtc_threshold=scenario.gtc_threshold,
        cttc_threshold=0.3 if scenario.cttc_threshold is None else scenario.cttc_threshold,
        ground_truth=ground_truth, metadata=metadata,
    )


def psds_from_operating_points(
    operating_points: dict[float, pd.DataFrame], ground_truth: pd.DataFrame, durations: dict[str, float],
    scenario: PSDSScenario = PSDS1,
) -> PSDSResult:
    """PSDS from detections at several thresholds, computed by psds_eval exactly as the DCASE baseline does."""
    evaluator = psds_eval_object(ground_truth, durations, scenario)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        for index, threshold in enumerate(sorted(operating_points)):
            detections = operating_points[threshold][["filename", "onset", "offset", "event_label"]].copy()
            detections.index = pd.RangeIndex(1, len(detections) + 1, name="index")
            evaluator.add_operating_point(detections, info={"name": f"Op {index + 1:02d}", "threshold": threshold})
        _, _, tpr_vs_efpr = evaluator.psd_roc_curves(scenario.alpha_ct)
    # PSDSEval.psds(alpha_ct, alpha_st, max_efpr) on these curves, without building them a second time
    psd_roc = evaluator._effective_tp_ratio(tpr_vs_efpr, scenario.alpha_st)
    value = evaluator._auc(psd_roc.xp, psd_roc.yp, scenario.max_efpr, scenario.alpha_st > 0) / scenario.max_efpr
    class_names = sorted(set(evaluator.class_names) - {"injected_psds_world_label"})
    per_class_rocs = {name: (np.asarray(tpr_vs_efpr.xp), np.asarray(tpr_vs_efpr.yp[i])) for i, name in enumerate(class_names)}
    per_class = {
        name: float(PSDSEval._auc(x, y, scenario.max_efpr) / scenario.max_efpr) for name, (x, y) in per_class_rocs.items()
    }
    return PSDSResult(
        value=float(value),
        per_class=per_class,
        roc=(np.asarray(psd_roc.xp), np.asarray(psd_roc.yp)),
        per_class_rocs=per_class_rocs,
        scenario=scenario,
        flavour="psds_eval",
    )
