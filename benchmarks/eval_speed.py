"""Time of the full evaluation report on the real DESED validation set (1,168 clips).

Threshold-independent path: PSDS1 + PSDS2 (sed_scores_eval algorithm) + all F1s from synthetic score tables
(156 frames x 10 classes per clip), with its parts (vectorised PSDS, decoding, F1s), beside sed_scores_eval's own
PSDS time and sed_eval's own collar/segment F1 time on the same tables. Operating-point
path: PSDS1 + PSDS2 from the baseline's 50 real detection files + all F1s, beside psds_eval's own time.
Prints a table and one JSON line. Usage: python benchmarks/eval_speed.py [--anchors ../shared/anchors/desed]
"""
import argparse
import json
import time
from pathlib import Path

import pandas as pd
import sed_scores_eval
from psds_eval import PSDSEval

from desed_task.evaluation import (
    PSDS1, PSDS2, intersection_f1_macro, load_durations, load_ground_truth, load_operating_points, scores_to_detections,
    sed_eval_metrics, sed_report, threshold_independent_psds,
)
from desed_task.evaluation.synthetic import synthetic_score_tables


def timed(function):
    start = time.perf_counter()
    value = function()
    return value, time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--anchors", default=str(Path(__file__).resolve().parents[2] / "shared" / "anchors" / "desed"))
    parser.add_argument("--num_jobs", type=int, default=1)
    args = parser.parse_args()
    root = Path(args.anchors)
    gt_path, dur_path = root / "validation.tsv", root / "validation_durations.tsv"
    ground_truth, durations = load_ground_truth(gt_path), load_durations(dur_path)
    labels = sorted(ground_truth["event_label"].dropna().unique())
    scores = synthetic_score_tables(ground_truth, durations, labels)
    results = {"clips": len(durations)}

    report, results["ours_threshold_independent_full_report_s"] = timed(
        lambda: sed_report(ground_truth, durations, scores=scores, num_jobs=args.num_jobs))
    results["psds1_sed_scores_eval"], results["psds2_sed_scores_eval"] = report["psds1_sed_scores_eval"], report["psds2_sed_scores_eval"]
    _, results["part_psds1_psds2_numpy_s"] = timed(lambda: threshold_independent_psds(scores, ground_truth, durations))
    detections, results["part_decode_detections_0.5_s"] = timed(lambda: scores_to_detections(scores, [0.5])[0.5])
    _, results["part_intersection_f1_s"] = timed(lambda: intersection_f1_macro(detections, ground_truth, durations))
    _, results["part_event_segment_f1_numpy_s"] = timed(lambda: sed_eval_metrics(detections, ground_truth))
    _, results["sed_eval_event_segment_f1_only_s"] = timed(
        lambda: sed_eval_metrics(detections, ground_truth, backend="sed_eval"))

    reference_gt = {k: v for k, v in sed_scores_eval.io.read_ground_truth_events(gt_path).items() if v}
    reference_durations = {k: durations[k + ".wav"] for k in reference_gt}
    reference_scores = {k: scores[k] for k in reference_gt}
    total = 0.0
    for scenario in (PSDS1, PSDS2):
        _, seconds = timed(lambda: sed_scores_eval.intersection_based.psds(
            reference_scores, reference_gt, reference_durations, dtc_threshold=scenario.dtc_threshold,
            gtc_threshold=scenario.gtc_threshold, cttc_threshold=scenario.cttc_threshold, alpha_ct=scenario.alpha_ct,
            alpha_st=scenario.alpha_st, max_efpr=100))
        total += seconds
    results["sed_scores_eval_psds1_psds2_only_s"] = total

    operating_points, results["load_50_operating_points_s"] = timed(
        lambda: load_operating_points(root / "baseline_student" / "predictions_operating_points"))
    report, results["ours_operating_point_full_report_s"] = timed(
        lambda: sed_report(ground_truth, durations, operating_points=operating_points))
    results["psds1_psds_eval"], results["psds2_psds_eval"] = report["psds1_psds_eval"], report["psds2_psds_eval"]

    def psds_eval_direct():
        gt_raw, meta_raw = pd.read_csv(gt_path, sep="\t"), pd.read_csv(dur_path, sep="\t")
        for scenario in (PSDS1, PSDS2):
            evaluator = PSDSEval(scenario.dtc_threshold, scenario.gtc_threshold, scenario.cttc_threshold or 0.3,
                                 ground_truth=gt_raw, metadata=meta_raw)
            for threshold, det in operating_points.items():
                evaluator.add_operating_point(det.set_axis(pd.RangeIndex(1, len(det) + 1)))
            evaluator.psds(scenario.alpha_ct, scenario.alpha_st, 100)

    _, results["psds_eval_psds1_psds2_only_s"] = timed(psds_eval_direct)
    for key, value in results.items():
        print(f"{key:<45}{value:>12.4f}" if isinstance(value, float) else f"{key:<45}{value:>12}")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
