"""Per-class tuning of post-processing parameters on a validation set, by PSDS1, PSDS2 or collar F1.

Every candidate parameter set is applied to all classes at once and scored once with the project's
vectorised PSDS (`evaluation.psds.threshold_independent_psds`) or collar F1; the per-class pieces of
those scores are then recombined to choose one candidate per class. Why that is exact:

- PSDS. A class's PSD-ROC (TPR against effective FPR) is built from its own detections only: its true
  positives, false positives and cross triggers all count detections of that class, and the
  normalisers (event counts, durations) are fixed by the ground truth. Since every method here filters
  each score column on its own, class c's parameters change class c's ROC and nothing else. The PSDS,
  however, is the area under mean_c TPR_c - alpha_st * std_c TPR_c (interpolated on a common eFPR
  axis), so the best per-class areas do not in general give the best PSDS. Hence: start from each class's
  best single-class PSDS, then coordinate ascent on the full PSDS, recombining the stored per-class
  ROCs (no new detection or PSDS run): for each class in turn, take the candidate that maximises the
  PSDS with the other classes fixed; repeat until no class changes. Each step can only increase the
  PSDS, so this ends at a coordinate-wise optimum over the grid.
- Collar F1 (event-based, 200 ms / 20 % collars, decision threshold 0.5): the macro F1 is the mean of
  the class F1s and each depends on its own class only, so the per-class best is the exact optimum
  (an undefined F1 counts as 0).

A class without ground-truth events in the validation clips cannot be scored: it keeps its default
parameters, and the result lists it in `tuning["defaults_kept"]`.
The published cSEBBs grid is the default: step filter 0.32 / 0.48 / 0.64 s with either an absolute merge
threshold 0.15 / 0.2 / 0.3 or a relative one 1.5 / 2.0 / 3.0 (the other one off).
"""
from __future__ import annotations

import itertools
import math
import time

import numpy as np
import pandas as pd
from sed_scores_eval.intersection_based.psds import multi_class_psd_roc_from_single_class_psd_rocs as sse_multi_class_roc
from sed_scores_eval.intersection_based.psds import psds_from_psd_roc

from desed_task.evaluation.decode import scores_to_detections
from desed_task.evaluation.f1 import sed_eval_metrics
from desed_task.evaluation.io import audio_id
from desed_task.evaluation.psds import PSDS1, PSDS2, threshold_independent_psds
from desed_task.postprocess.methods import (
    box_tables, change_points, median_filtered, merged_boxes, score_arrays, score_classes,
)
from desed_task.postprocess.params import PostprocessParams
from desed_task.utils.errors import BadInput

OBJECTIVES = ("psds1", "psds2", "collar_f1")
TUNING_METHODS = ("median", "classwise_median", "csebbs")
MEDIAN_WINDOWS = (1, 3, 5, 7, 9, 11, 15, 21, 27, 33, 41)
CSEBBS_STEP_FILTER_LENGTHS = (0.32, 0.48, 0.64)
CSEBBS_MERGE_THRESHOLDS_ABS = (0.15, 0.2, 0.3)
CSEBBS_MERGE_THRESHOLDS_REL = (1.5, 2.0, 3.0)
DEFAULTS = {
    "median": {"window": 7},
    "csebbs": {"step_filter_length": 0.48, "merge_threshold_abs": 0.2, "merge_threshold_rel": math.inf},
}
COLLAR_F1_THRESHOLD = 0.5


def median_grid(windows=MEDIAN_WINDOWS) -> list[dict]:
    return [{"window": int(w)} for w in windows]


def csebbs_grid(step_filter_lengths=CSEBBS_STEP_FILTER_LENGTHS, merge_thresholds_abs=CSEBBS_MERGE_THRESHOLDS_ABS,
                merge_thresholds_rel=CSEBBS_MERGE_THRESHOLDS_REL) -> list[dict]:
    """Each step filter length with each absolute threshold (relative off), then each relative one (absolute off)."""
    thresholds = [(float(a), math.inf) for a in merge_thresholds_abs] + [(math.inf, float(r)) for r in merge_thresholds_rel]
    return [{"step_filter_length": float(s), "merge_threshold_abs": a, "merge_threshold_rel": r}
            for s, (a, r) in itertools.product(step_filter_lengths, thresholds)]


def candidate_scores(method: str, scores: dict[str, pd.DataFrame], candidates: list[dict]):
    """Yield (candidate, post-processed tables) for each candidate applied to every class. cSEBBs runs
    sebbs' change detection once per step filter length and merges the segments once per threshold pair."""
    classes = score_classes(scores)
    if method == "median":
        for candidate in candidates:
            yield candidate, median_filtered(scores, {c: candidate["window"] for c in classes})
        return
    arrays = score_arrays(scores, classes)
    for step, group in itertools.groupby(candidates, key=lambda c: c["step_filter_length"]):
        segments = change_points(arrays, [step] * len(classes))
        for candidate in group:
            boxes = merged_boxes(segments, [candidate["merge_threshold_abs"]] * len(classes),
                                 [candidate["merge_threshold_rel"]] * len(classes))
            yield candidate, box_tables(segments, boxes, classes)


def class_pieces(scores: dict[str, pd.DataFrame], ground_truth: pd.DataFrame, durations: dict[str, float],
                 objective: str) -> dict[str, object]:
    """Per class: its PSD-ROC (tpr, efpr) for a PSDS objective, its collar F1 for `collar_f1`."""
    if objective == "collar_f1":
        detections = scores_to_detections(scores, [COLLAR_F1_THRESHOLD])[COLLAR_F1_THRESHOLD]
        event, _ = sed_eval_metrics(detections, ground_truth)
        return {label: float(np.nan_to_num(values["f1"], nan=0.0)) for label, values in event["class_wise"].items()}
    scenario = PSDS1 if objective == "psds1" else PSDS2
    result = threshold_independent_psds(scores, ground_truth, durations, [scenario])[0]
    return {label: (tpr, efpr) for label, (efpr, tpr) in result.per_class_rocs.items()}


def combined_value(pieces: dict[str, object], objective: str) -> float:
    """The objective over all classes from their pieces (`class_pieces`)."""
    if objective == "collar_f1":
        return float(np.mean(list(pieces.values())))
    scenario = PSDS1 if objective == "psds1" else PSDS2
    tpr, efpr = sse_multi_class_roc(pieces, alpha_st=scenario.alpha_st, max_efpr=scenario.max_efpr)
    return float(psds_from_psd_roc(tpr, efpr, scenario.max_efpr))


def single_class_value(piece, objective: str) -> float:
    if objective == "collar_f1":
        return piece
    tpr, efpr = piece
    return float(psds_from_psd_roc(tpr, efpr, (PSDS1 if objective == "psds1" else PSDS2).max_efpr))


def select(pieces: list[dict[str, object]], objective: str, tunable: list[str], default_index: int,
           shared: bool = False) -> tuple[dict[str, int], float]:
    """Candidate index per class and the objective it reaches (see the module docstring).

    `pieces[k]` are the class pieces of candidate k; classes outside `tunable` keep `default_index`.
    `shared`: one candidate for all classes, the one with the best objective.
    """
    labels = list(pieces[0])
    if shared:
        values = [combined_value(p, objective) for p in pieces]
        best = int(np.argmax(values))
        return {label: best for label in labels}, values[best]
    choice = {label: default_index for label in labels}
    for label in tunable:
        choice[label] = int(np.argmax([single_class_value(p[label], objective) for p in pieces]))

    def value(assignment):
        return combined_value({label: pieces[k][label] for label, k in assignment.items()}, objective)

    best = value(choice)
    if objective == "collar_f1":
        return choice, best
    changed = True
    while changed:
        changed = False
        for label in tunable:
            for k in range(len(pieces)):
                if k != choice[label]:
                    trial = value({**choice, label: k})
                    if trial > best + 1e-12:
                        choice, best, changed = {**choice, label: k}, trial, True
    return choice, best


def tune(method: str, scores: dict[str, pd.DataFrame], ground_truth: pd.DataFrame, durations: dict[str, float],
         objective: str = "psds1", candidates: list[dict] | None = None, default: dict | None = None
         ) -> PostprocessParams:
    """Tune `method` ("median": one window for all classes, "classwise_median", "csebbs") on the validation
    `scores` against `ground_truth` / `durations`, by `objective`; returns the chosen per-class parameters.

    `candidates` default to `median_grid()` / `csebbs_grid()`; `default` (else `DEFAULTS`) is kept by
    classes without ground-truth events in the scored clips.
    """
    if method not in TUNING_METHODS:
        raise BadInput(f"unknown tuning method {method!r}; choose from {list(TUNING_METHODS)}")
    if objective not in OBJECTIVES:
        raise BadInput(f"unknown objective {objective!r}; choose from {list(OBJECTIVES)}")
    stored = "csebbs" if method == "csebbs" else "median"
    candidates = list(candidates or (csebbs_grid() if stored == "csebbs" else median_grid()))
    default = dict(default or DEFAULTS[stored])
    if default not in candidates:
        candidates.append(default)
    classes = score_classes(scores)
    clips = set(ground_truth["filename"].astype(str).map(audio_id))
    missing = sorted(clips - set(scores))
    if missing:
        raise BadInput(f"{len(missing)} validation clips have no score table, e.g. {missing[:3]}")
    present = set(ground_truth["event_label"].dropna())
    tunable = [label for label in classes if label in present]
    if not tunable:
        raise BadInput("the validation ground truth has no event of any score class: nothing to tune on")
    start = time.perf_counter()
    pieces = [class_pieces(table, ground_truth, durations, objective)
              for _, table in candidate_scores(stored, scores, candidates)]
    default_index = candidates.index(default)
    choice, value = select(pieces, objective, tunable, default_index, shared=method == "median")
    kept = [label for label in classes if label not in present]
    tuning = {"objective": objective, "value": value, "candidates": len(candidates), "clips": len(clips),
              "seconds": round(time.perf_counter() - start, 3)}
    if kept and method != "median":
        tuning["defaults_kept"] = kept
    chosen = {label: dict(candidates[choice.get(label, default_index)]) for label in classes}
    return PostprocessParams(stored, classes, chosen, tuning)


def tuning_request(value) -> dict | None:
    """`training.postprocess` read as a request to tune after training, `{tune: METHOD, objective: OBJECTIVE}`
    (objective default psds1); None for a parameter-file path or null."""
    if not isinstance(value, dict):
        return None
    unknown = sorted(set(value) - {"tune", "objective"})
    method, objective = value.get("tune"), value.get("objective", "psds1")
    if unknown or method not in TUNING_METHODS or objective not in OBJECTIVES:
        raise BadInput(f"training.postprocess: give a parameter file or {{tune: {'|'.join(TUNING_METHODS)}, "
                       f"objective: {'|'.join(OBJECTIVES)}}}, got {value!r}")
    return {"method": method, "objective": objective}
