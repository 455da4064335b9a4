"""F-scores: intersection-based macro F1, collar-based (event) and segment-based F1 (sed_eval's), weak F1."""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

with warnings.catch_warnings():  # dcase_util, imported by sed_eval, warns that pkg_resources is deprecated
    warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)
    import sed_eval

from desed_task.evaluation.collar_segment import sed_eval_counts_numpy
from desed_task.evaluation.io import audio_id


def _events(table: pd.DataFrame) -> pd.DataFrame:
    events = table[table["event_label"].notna()].copy()
    events["clip"] = events["filename"].astype(str).map(audio_id)
    return events[events["offset"] > events["onset"]].reset_index(drop=True)


@dataclass
class IntersectionCounts:
    """Intersection-criterion counts per clip and class: (clips, labels) arrays of found ground-truth events
    (`tp`), false-positive detections (`fp`) and ground-truth events (`n_ref`). Clips: the ground truth's,
    in its order, then clips that only have detections; labels: the ground-truth classes, sorted."""

    clips: list[str]
    labels: list[str]
    tp: np.ndarray
    fp: np.ndarray
    n_ref: np.ndarray


def intersection_counts(
    detections: pd.DataFrame, ground_truth: pd.DataFrame, durations: dict[str, float],
    dtc_threshold: float = 0.5, gtc_threshold: float = 0.5,
) -> IntersectionCounts:
    """psds_eval's counting (`PSDSEval.compute_macro_f_score`), kept per clip.

    A detection is a true positive candidate when the summed fraction of it covered by same-class ground
    truth reaches `dtc_threshold`; a ground-truth event is found when those detections cover `gtc_threshold`
    of it. Other detections that lie inside their clip are false positives (the cross-trigger threshold does
    not change the F-score).
    """
    gt = _events(ground_truth)
    det = _events(detections)
    det["det_id"] = np.arange(len(det))
    gt["gt_id"] = np.arange(len(gt))
    labels = sorted(set(gt["event_label"]))
    pairs = det.merge(gt, on=["clip", "event_label"], suffixes=("_det", "_gt"))
    pairs = pairs[(pairs["onset_det"] < pairs["offset_gt"]) & (pairs["onset_gt"] < pairs["offset_det"])]
    overlap = np.minimum(pairs["offset_det"], pairs["offset_gt"]) - np.maximum(pairs["onset_det"], pairs["onset_gt"])
    pairs = pairs.assign(
        det_precision=overlap / (pairs["offset_det"] - pairs["onset_det"]),
        gt_coverage=overlap / (pairs["offset_gt"] - pairs["onset_gt"]),
    )
    precision = pairs.groupby("det_id")["det_precision"].sum()
    relevant = precision.index[precision >= dtc_threshold]
    coverage = pairs[pairs["det_id"].isin(relevant)].groupby("gt_id")["gt_coverage"].sum()
    found = gt.loc[coverage.index[coverage >= gtc_threshold]]
    clip_durations = {audio_id(name): value for name, value in durations.items()}
    inside = det["clip"].map(clip_durations)
    false_pos = det[~det["det_id"].isin(relevant) & (det["onset"] < inside) & (det["offset"] > 0)]
    ground_truth_clips = ground_truth["filename"].astype(str).map(audio_id)
    clips = pd.Index(pd.unique(pd.concat([ground_truth_clips, det["clip"]], ignore_index=True)))
    label_index = pd.Index(labels)

    def per_clip(events: pd.DataFrame) -> np.ndarray:
        clip, label = clips.get_indexer(events["clip"]), label_index.get_indexer(events["event_label"])
        known = label >= 0
        cells = clip[known] * len(labels) + label[known]
        return np.bincount(cells, minlength=len(clips) * len(labels)).reshape(len(clips), len(labels))

    return IntersectionCounts(
        clips=list(clips), labels=labels, tp=per_clip(found), fp=per_clip(false_pos), n_ref=per_clip(gt))


def intersection_f1_from_counts(tp: np.ndarray, fp: np.ndarray, n_ref: np.ndarray, zero_tp_as_nan: bool = False):
    """Per-class F1 (..., classes) of summed counts and their macro average over the classes with ground truth.

    Counts are (..., classes) arrays; a class without ground truth is left out (NaN), as psds_eval does.
    """
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = 2 * tp / (2 * tp + (n_ref - tp) + fp)
    f1 = np.where(n_ref > 0, f1, np.nan)
    if zero_tp_as_nan:
        f1 = np.where(tp == 0, np.nan, f1)
    defined = np.isfinite(f1)
    macro = np.where(defined.any(-1), np.nansum(f1, -1) / np.maximum(defined.sum(-1), 1), 0.0)
    return macro, f1


def intersection_f1_macro(
    detections: pd.DataFrame, ground_truth: pd.DataFrame, durations: dict[str, float],
    dtc_threshold: float = 0.5, gtc_threshold: float = 0.5, zero_tp_as_nan: bool = False,
) -> tuple[float, dict[str, float]]:
    """Intersection-based macro F1 with psds_eval's counting (`intersection_counts`).

    psds_eval leaves classes without any true positive out of the macro average (their F is NaN);
    `zero_tp_as_nan=True` reproduces that, the default scores them 0.
    """
    counts = intersection_counts(detections, ground_truth, durations, dtc_threshold, gtc_threshold)
    macro, f1 = intersection_f1_from_counts(
        counts.tp.sum(0), counts.fp.sum(0), counts.n_ref.sum(0), zero_tp_as_nan)
    return float(macro), {label: float(value) for label, value in zip(counts.labels, f1)}


def _event_lists(table: pd.DataFrame) -> dict[str, list[dict]]:
    """{filename: [event dicts]} as sed_eval wants them; a clip without events is [{"filename": name}]."""
    lists: dict[str, list[dict]] = {}
    for name, onset, offset, label in table[["filename", "onset", "offset", "event_label"]].itertuples(index=False):
        clip = lists.setdefault(name, [])
        if isinstance(label, str):
            clip.append({"filename": name, "onset": onset, "offset": offset, "event_label": label})
    return {name: events or [{"filename": name}] for name, events in lists.items()}


def _summary(results: dict, labels) -> dict:
    """The figures we report, out of a sed_eval-style `results()` dict.

    `f1_macro` is sed_eval's class-wise average, which leaves out classes whose F1 is undefined (NaN: no
    detection of the class, for segments, or no ground truth of it); `f1_macro_nan_as_zero` scores them 0.
    """
    overall, average, class_wise = results["overall"], results["class_wise_average"], results["class_wise"]
    class_f1 = [class_wise[label]["f_measure"]["f_measure"] for label in labels]
    summary = {
        "f1_micro": overall["f_measure"]["f_measure"],
        "precision_micro": overall["f_measure"]["precision"],
        "recall_micro": overall["f_measure"]["recall"],
        "error_rate_micro": overall["error_rate"]["error_rate"],
        "substitution_rate_micro": overall["error_rate"]["substitution_rate"],
        "deletion_rate_micro": overall["error_rate"]["deletion_rate"],
        "insertion_rate_micro": overall["error_rate"]["insertion_rate"],
        "f1_macro": average["f_measure"]["f_measure"],
        "f1_macro_nan_as_zero": float(np.mean(np.nan_to_num(class_f1, nan=0.0))) if class_f1 else np.nan,
        "precision_macro": average["f_measure"]["precision"],
        "recall_macro": average["f_measure"]["recall"],
        "error_rate_macro": average["error_rate"]["error_rate"],
        "deletion_rate_macro": average["error_rate"]["deletion_rate"],
        "insertion_rate_macro": average["error_rate"]["insertion_rate"],
        "class_wise": {
            label: {
                "n_ref": class_wise[label]["count"]["Nref"],
                "n_sys": class_wise[label]["count"]["Nsys"],
                "f1": class_wise[label]["f_measure"]["f_measure"],
                "precision": class_wise[label]["f_measure"]["precision"],
                "recall": class_wise[label]["f_measure"]["recall"],
                "error_rate": class_wise[label]["error_rate"]["error_rate"],
                "deletion_rate": class_wise[label]["error_rate"]["deletion_rate"],
                "insertion_rate": class_wise[label]["error_rate"]["insertion_rate"],
            }
            for label in labels
        },
    }
    return {key: (float(v) if isinstance(v, (int, float, np.floating)) else v) for key, v in summary.items()}


_EPS = np.spacing(1)


def _f_measure(n_tp: float, n_sys: float, n_ref: float, zero_score: bool) -> dict:
    """sed_eval.metric precision / recall / f_measure, with the same operations (hence the same bits)."""
    precision = 0 if (n_sys == 0 and zero_score) else (np.nan if n_sys == 0 else float(n_tp / float(n_sys)))
    recall = np.nan if n_ref == 0 else float(n_tp / float(n_ref))
    f_measure = 0.0 if (precision == 0 and recall == 0) else float(2.0 * precision * recall / (precision + recall))
    return {"f_measure": f_measure, "precision": precision, "recall": recall}


def _results_from_counts(counts: dict, substitutions: str, deletions: str, insertions: str, zero_score: bool) -> dict:
    """sed_eval's `results()` (F-measure and error-rate parts) computed from its accumulated counts."""
    overall = counts["overall"]
    n_ref = overall["Nref"]
    rates = {
        name: float(overall[key] / (n_ref + _EPS))
        for name, key in (
            ("substitution_rate", substitutions), ("deletion_rate", deletions), ("insertion_rate", insertions))
    }
    rates["error_rate"] = float(rates["substitution_rate"] + rates["deletion_rate"] + rates["insertion_rate"])
    class_wise = {}
    for label, values in counts["class_wise"].items():
        deletion = float(values["Nfn"] / (values["Nref"] + _EPS))
        insertion = float(values["Nfp"] / (values["Nref"] + _EPS))
        class_wise[label] = {
            "f_measure": _f_measure(values["Ntp"], values["Nsys"], values["Nref"], zero_score),
            "error_rate": {"error_rate": float(0.0 + deletion + insertion), "deletion_rate": deletion,
                           "insertion_rate": insertion},
            "count": {"Nref": values["Nref"], "Nsys": values["Nsys"]},
        }
    average = {
        part: {key: _nanmean([class_wise[label][part][key] for label in class_wise]) for key in keys}
        for part, keys in (("f_measure", ("f_measure", "precision", "recall")),
                           ("error_rate", ("error_rate", "deletion_rate", "insertion_rate")))
    } if class_wise else {"f_measure": {}, "error_rate": {}}
    return {
        "overall": {"f_measure": _f_measure(overall["Ntp"], overall["Nsys"], n_ref, zero_score), "error_rate": rates},
        "class_wise": class_wise,
        "class_wise_average": average,
    }


def _nanmean(values) -> float:
    """np.nanmean, NaN without a warning when every value is NaN (e.g. no class has a detection)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(np.nanmean(values))


F1_BACKENDS = ("numpy", "sed_eval")


def _sed_eval_objects(detections, ground_truth, labels, collar, percentage_of_length, segment_length):
    """sed_eval's EventBasedMetrics and SegmentBasedMetrics after evaluating every ground-truth file."""
    event_metric = sed_eval.sound_event.EventBasedMetrics(
        event_label_list=labels, t_collar=collar, percentage_of_length=percentage_of_length,
        empty_system_output_handling="zero_score",
    )
    segment_metric = sed_eval.sound_event.SegmentBasedMetrics(event_label_list=labels, time_resolution=segment_length)
    reference, estimated = _event_lists(ground_truth), _event_lists(detections)
    for name in ground_truth["filename"].unique():
        estimated_events = estimated.get(name, [{"filename": name}])
        event_metric.evaluate(reference_event_list=reference[name], estimated_event_list=estimated_events)
        segment_metric.evaluate(reference_event_list=reference[name], estimated_event_list=estimated_events)
    return event_metric, segment_metric


def _labels(detections: pd.DataFrame, ground_truth: pd.DataFrame) -> list[str]:
    return sorted(set(ground_truth["event_label"].dropna()) | set(detections["event_label"].dropna()))


def sed_eval_counts(
    detections: pd.DataFrame, ground_truth: pd.DataFrame, collar: float = 0.2, percentage_of_length: float = 0.2,
    segment_length: float = 1.0, backend: str = "numpy",
) -> tuple[dict, dict]:
    """(event, segment) counts in sed_eval's layout: {"overall": {"Ntp", ...}, "class_wise": {label: {...}}}.

    Event counts: Nref, Nsys, Ntp, Nsubs, Nfp, Nfn (class-wise without Nsubs, with Ntn = 0); segment counts:
    Ntp, Ntn, Nfp, Nfn, Nref, Nsys and S, D, I (and sed_eval's unused ER = 0). Values are floats as in sed_eval.
    """
    labels = _labels(detections, ground_truth)
    if backend == "numpy":
        return sed_eval_counts_numpy(detections, ground_truth, labels, collar, percentage_of_length, segment_length)
    if backend != "sed_eval":
        raise ValueError(f"unknown F1 backend {backend!r}; expected one of {F1_BACKENDS}")
    metrics = _sed_eval_objects(detections, ground_truth, labels, collar, percentage_of_length, segment_length)
    return tuple(
        {
            "overall": {key: float(value) for key, value in metric.overall.items()},
            "class_wise": {label: {key: float(v) for key, v in metric.class_wise[label].items()} for label in labels},
        }
        for metric in metrics
    )


def sed_eval_metrics(
    detections: pd.DataFrame, ground_truth: pd.DataFrame, collar: float = 0.2, percentage_of_length: float = 0.2,
    segment_length: float = 1.0, backend: str = "numpy",
) -> tuple[dict, dict]:
    """Collar-based event metrics and segment-based metrics exactly as sed_eval computes them (DCASE baseline).

    The evaluated files are those of the ground truth (clips without events included); classes are the union
    of ground-truth and detected labels. Event matching is sed_eval's default ("optimal"), as in the baseline.
    `backend="numpy"` counts all clips at once (`collar_segment`) and applies sed_eval's formulas; "sed_eval"
    runs sed_eval itself (same counts, same figures to the bit). Returns (event_metrics, segment_metrics) summaries.
    """
    labels = _labels(detections, ground_truth)
    if backend == "sed_eval":
        metrics = _sed_eval_objects(detections, ground_truth, labels, collar, percentage_of_length, segment_length)
        return tuple(_summary(metric.results(), labels) for metric in metrics)
    event, segment = sed_eval_counts(detections, ground_truth, collar, percentage_of_length, segment_length, backend)
    return (
        _summary(_results_from_counts(event, "Nsubs", "Nfn", "Nfp", zero_score=True), labels),
        _summary(_results_from_counts(segment, "S", "D", "I", zero_score=False), labels),
    )


def weak_f1(probabilities, targets, labels, threshold: float = 0.5) -> tuple[float, dict[str, float]]:
    """Clip-level F1: decisions `probability > threshold` against binary targets, per class and macro (0 when undefined)."""
    if hasattr(probabilities, "detach"):
        probabilities = probabilities.detach().cpu().numpy()
    if hasattr(targets, "detach"):
        targets = targets.detach().cpu().numpy()
    predicted = np.asarray(probabilities) > threshold
    actual = np.asarray(targets) > 0.5
    tp = (predicted & actual).sum(0)
    denominator = predicted.sum(0) + actual.sum(0)
    f1 = np.where(denominator > 0, 2 * tp / np.maximum(denominator, 1), 0.0)
    per_class = {label: float(value) for label, value in zip(labels, f1)}
    return float(f1.mean()), per_class
