"""Collar-based (event) and segment-based counts computed for all clips at once, identical to sed_eval's.

sed_eval's `EventBasedMetrics` (optimal matching) and `SegmentBasedMetrics` evaluate clip by clip in Python
(~1.5 s for the 1,168 DESED validation clips); here every clip is handled with numpy arrays. The counts are
returned in sed_eval's own layout (`{"overall": {...}, "class_wise": {label: {...}}}` with its keys) so that
the figures can be derived from them with sed_eval's formulas.

Inputs follow how `f1.sed_eval_metrics` feeds sed_eval: the events of a clip are the rows of that file name
whose `event_label` is a string, in table order (the order decides sed_eval's matching and substitutions).
Labels are compared as given (sed_eval's containers would also strip spaces and read "none" as no label;
DESED labels have neither).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

with warnings.catch_warnings():  # dcase_util, imported by sed_eval, warns that pkg_resources is deprecated
    warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)
    from sed_eval.util import bipartite_match


@dataclass
class ClipEvents:
    """Events of the evaluated clips, sorted by (clip, position in the clip's list)."""

    clip: np.ndarray
    onset: np.ndarray
    offset: np.ndarray
    label: np.ndarray


def encode_events(table: pd.DataFrame, clips: pd.Index, labels: pd.Index) -> ClipEvents:
    """Labelled rows of `table` whose file name is one of `clips`, as clip / label codes in table order per clip."""
    labelled = table[table["event_label"].map(lambda value: isinstance(value, str)).to_numpy(dtype=bool)]
    clip = clips.get_indexer(labelled["filename"])
    order = np.argsort(clip, kind="stable")
    order = order[clip[order] >= 0]
    label = labels.get_indexer(labelled["event_label"].to_numpy()[order])
    if (label < 0).any():
        raise ValueError("event labels missing from the label list")
    return ClipEvents(
        clip=clip[order], onset=labelled["onset"].to_numpy(dtype=float)[order],
        offset=labelled["offset"].to_numpy(dtype=float)[order], label=label,
    )


def _clip_pairs(reference: ClipEvents, estimated: ClipEvents, n_clips: int) -> tuple[np.ndarray, np.ndarray]:
    """All (reference, estimated) index pairs within a clip, in row-major order (reference, then estimated)."""
    est_start = np.searchsorted(estimated.clip, np.arange(n_clips))
    est_count = np.bincount(estimated.clip, minlength=n_clips)
    per_reference = est_count[reference.clip]
    ref_index = np.repeat(np.arange(len(reference.clip)), per_reference)
    first = np.cumsum(per_reference) - per_reference
    est_index = np.repeat(est_start[reference.clip] - first, per_reference) + np.arange(len(ref_index))
    return ref_index, est_index


def _optimal_matching(ref_index: np.ndarray, est_index: np.ndarray, clip: np.ndarray) -> np.ndarray:
    """Matched pairs (boolean mask over the label-and-collar hits) of sed_eval's per-clip bipartite matching.

    Where no reference and no estimate has two hits, every hit is matched. The other clips go through
    sed_eval's own Hopcroft-Karp with its graph built in the same order, since which events stay unmatched
    decides the substitution count.
    """
    matched = np.ones(len(ref_index), dtype=bool)
    shared = np.zeros(len(ref_index), dtype=bool)
    for index in (ref_index, est_index):
        _, inverse, counts = np.unique(index, return_inverse=True, return_counts=True)
        shared |= counts[inverse] > 1
    for clip_id in np.unique(clip[shared]):
        in_clip = np.flatnonzero(clip == clip_id)
        graph: dict[int, list[int]] = {}
        for ref, est in zip(ref_index[in_clip].tolist(), est_index[in_clip].tolist()):
            graph.setdefault(est, []).append(ref)
        pairs = set(bipartite_match(graph).items())
        matched[in_clip] = [pair in pairs for pair in zip(ref_index[in_clip].tolist(), est_index[in_clip].tolist())]
    return matched


def _greedy_substitutions(ref_index: np.ndarray, est_index: np.ndarray) -> int:
    """sed_eval's substitution count: each leftover reference, in order, takes the first free leftover estimate."""
    taken_refs, taken_ests = set(), set()
    for ref, est in zip(ref_index.tolist(), est_index.tolist()):
        if ref not in taken_refs and est not in taken_ests:
            taken_refs.add(ref)
            taken_ests.add(est)
    return len(taken_refs)


def collar_counts(
    reference: ClipEvents, estimated: ClipEvents, n_clips: int, n_labels: int, t_collar: float = 0.2,
    percentage_of_length: float = 0.2,
) -> tuple[dict, list[dict], dict]:
    """sed_eval `EventBasedMetrics` counts (onset and offset evaluated, optimal matching): overall, class-wise
    and per clip ({"Nref", "Nsys", "Ntp"}: (n_clips, n_labels) arrays, which add up to the class-wise counts).

    An estimate hits a reference when |onset difference| <= t_collar and |offset difference| <=
    max(t_collar, percentage_of_length * reference length); matched same-label hits are true positives, and
    hits between leftover events of different labels are substitutions.
    """
    ref_index, est_index = _clip_pairs(reference, estimated, n_clips)
    ref_onset, ref_offset = reference.onset[ref_index], reference.offset[ref_index]
    offset_collar = np.maximum(t_collar, percentage_of_length * (ref_offset - ref_onset))
    collar_hit = (np.abs(ref_onset - estimated.onset[est_index]) <= t_collar) & (
        np.abs(ref_offset - estimated.offset[est_index]) <= offset_collar)
    ref_index, est_index = ref_index[collar_hit], est_index[collar_hit]
    label_hit = reference.label[ref_index] == estimated.label[est_index]
    matched = _optimal_matching(ref_index[label_hit], est_index[label_hit], reference.clip[ref_index[label_hit]])
    ref_correct = np.zeros(len(reference.clip), dtype=bool)
    est_correct = np.zeros(len(estimated.clip), dtype=bool)
    ref_correct[ref_index[label_hit][matched]] = True
    est_correct[est_index[label_hit][matched]] = True
    leftover = ~ref_correct[ref_index] & ~est_correct[est_index]
    n_subs = _greedy_substitutions(ref_index[leftover], est_index[leftover])

    per_clip = {
        "Nref": _per_clip_label(reference.clip, reference.label, n_clips, n_labels),
        "Nsys": _per_clip_label(estimated.clip, estimated.label, n_clips, n_labels),
        "Ntp": _per_clip_label(reference.clip[ref_correct], reference.label[ref_correct], n_clips, n_labels),
    }
    n_ref, n_sys, n_tp = (per_clip[key].sum(0) for key in ("Nref", "Nsys", "Ntp"))
    total_ref, total_sys, total_tp = int(n_ref.sum()), int(n_sys.sum()), int(n_tp.sum())
    overall = {
        "Nref": total_ref, "Nsys": total_sys, "Nsubs": n_subs, "Ntp": total_tp,
        "Nfp": total_sys - total_tp - n_subs, "Nfn": total_ref - total_tp - n_subs,
    }
    class_wise = [
        {"Nref": r, "Nsys": s, "Ntp": t, "Ntn": 0, "Nfp": s - t, "Nfn": r - t}
        for r, s, t in zip(n_ref.tolist(), n_sys.tolist(), n_tp.tolist())
    ]
    return overall, class_wise, per_clip


def _per_clip_label(clip: np.ndarray, label: np.ndarray, n_clips: int, n_labels: int) -> np.ndarray:
    """(n_clips, n_labels) number of events per clip and label."""
    return np.bincount(clip * n_labels + label, minlength=n_clips * n_labels).reshape(n_clips, n_labels)


def _clip_max_offset(events: ClipEvents, n_clips: int) -> np.ndarray:
    """dcase_util's `max_offset` per clip: the largest offset, 0 for a clip without a positive one."""
    max_offset = np.zeros(n_clips)
    np.maximum.at(max_offset, events.clip, events.offset)
    return max_offset


def _activity(events: ClipEvents, roll_rows: np.ndarray, segment_base: np.ndarray, n_segments: int, n_labels: int,
              time_resolution: float) -> np.ndarray:
    """Segment activity (all clips stacked), as sed_eval's `event_roll[floor(onset/r):ceil(offset/r)] = 1`.

    The slice bounds follow Python slicing on the clip's own roll (`roll_rows` rows), then the roll is padded.
    """
    rows = roll_rows[events.clip]
    start = np.floor(events.onset * 1 / float(time_resolution)).astype(np.int64)
    stop = np.ceil(events.offset * 1 / float(time_resolution)).astype(np.int64)
    start, stop = (np.where(bound < 0, np.maximum(bound + rows, 0), np.minimum(bound, rows)) for bound in (start, stop))
    filled = stop > start
    base = segment_base[events.clip[filled]]
    change = np.zeros((n_segments + 1, n_labels), dtype=np.int64)
    np.add.at(change, (base + start[filled], events.label[filled]), 1)
    np.add.at(change, (base + stop[filled], events.label[filled]), -1)
    return np.cumsum(change[:-1], axis=0) > 0


def segment_counts(
    reference: ClipEvents, estimated: ClipEvents, n_clips: int, n_labels: int, time_resolution: float = 1.0,
) -> tuple[dict, list[dict], dict]:
    """sed_eval `SegmentBasedMetrics` counts: each clip spans ceil(max offset of both lists / resolution) segments.

    Returned as overall, class-wise and per clip ({"Nref", "Nsys", "Ntp"}: (n_clips, n_labels) arrays).
    """
    ref_max, est_max = _clip_max_offset(reference, n_clips), _clip_max_offset(estimated, n_clips)
    evaluated_segments = np.ceil(np.maximum(ref_max, est_max) * 1 / float(time_resolution)).astype(np.int64)
    segment_base = np.cumsum(evaluated_segments) - evaluated_segments
    n_segments = int(evaluated_segments.sum())
    ref_rows, est_rows = (np.ceil(m * 1 / time_resolution).astype(np.int64) for m in (ref_max, est_max))
    annotated = _activity(reference, ref_rows, segment_base, n_segments, n_labels, time_resolution)
    system = _activity(estimated, est_rows, segment_base, n_segments, n_labels, time_resolution)

    tp, tn = annotated & system, ~annotated & ~system
    fp, fn = system & ~annotated, annotated & ~system
    ref_per_segment, sys_per_segment = annotated.sum(1), system.sum(1)
    tp_per_segment = tp.sum(1)
    overall = {
        "Ntp": int(tp_per_segment.sum()), "Ntn": int(tn.sum()), "Nfp": int(fp.sum()), "Nfn": int(fn.sum()),
        "Nref": int(ref_per_segment.sum()), "Nsys": int(sys_per_segment.sum()), "ER": 0,
        "S": int((np.minimum(ref_per_segment, sys_per_segment) - tp_per_segment).sum()),
        "D": int(np.maximum(0, ref_per_segment - sys_per_segment).sum()),
        "I": int(np.maximum(0, sys_per_segment - ref_per_segment).sum()),
    }
    columns = {"Ntp": tp, "Ntn": tn, "Nfp": fp, "Nfn": fn, "Nref": annotated, "Nsys": system}
    sums = {key: value.sum(0).tolist() for key, value in columns.items()}
    class_wise = [{key: sums[key][label] for key in columns} for label in range(n_labels)]
    per_clip = {}
    for key in ("Nref", "Nsys", "Ntp"):
        cumulative = np.concatenate([np.zeros((1, n_labels), np.int64), np.cumsum(columns[key], axis=0)])
        per_clip[key] = cumulative[segment_base + evaluated_segments] - cumulative[segment_base]
    return overall, class_wise, per_clip


def _count_all(detections, ground_truth, labels, t_collar, percentage_of_length, time_resolution):
    clips, label_index = pd.Index(ground_truth["filename"].unique()), pd.Index(labels)
    reference = encode_events(ground_truth, clips, label_index)
    estimated = encode_events(detections, clips, label_index)
    shape = (reference, estimated, len(clips), len(labels))
    return (
        collar_counts(*shape, t_collar=t_collar, percentage_of_length=percentage_of_length),
        segment_counts(*shape, time_resolution=time_resolution),
    )


def clip_counts_numpy(
    detections: pd.DataFrame, ground_truth: pd.DataFrame, labels: list[str], t_collar: float = 0.2,
    percentage_of_length: float = 0.2, time_resolution: float = 1.0,
) -> tuple[dict, dict]:
    """(event, segment) {"Nref", "Nsys", "Ntp"} as (clips, labels) arrays, clips in ground-truth order.

    Both kinds of counts are sums over clips, so the counts of any multiset of clips are weighted sums of
    these rows (the bootstrap relies on it).
    """
    results = _count_all(detections, ground_truth, labels, t_collar, percentage_of_length, time_resolution)
    return tuple(per_clip for _, _, per_clip in results)


def sed_eval_counts_numpy(
    detections: pd.DataFrame, ground_truth: pd.DataFrame, labels: list[str], t_collar: float = 0.2,
    percentage_of_length: float = 0.2, time_resolution: float = 1.0,
) -> tuple[dict, dict]:
    """(event counts, segment counts) over the ground truth's files, in sed_eval's layout with float values."""
    results = _count_all(detections, ground_truth, labels, t_collar, percentage_of_length, time_resolution)
    return tuple(
        {
            "overall": {key: float(value) for key, value in overall.items()},
            "class_wise": {
                label: {key: float(value) for key, value in counts.items()} for label, counts in zip(labels, class_wise)
            },
        }
        for overall, class_wise, _ in results
    )
