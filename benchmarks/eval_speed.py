"""Time of the full evaluation report on the real DESED validation set (1,168 clips).

Threshold-independent path: PSDS1 + PSDS2 (sed_scores_eval algorithm) + all F1s from synthetic score tables
(156 frames x 10 classes per clip), with its parts (vectorised PSDS, decoding, F1s), beside sed_scores_eval's own
PSDS time and sed_eval's own collar/segment F1 time on the same tables. Operating-point
path: PSDS1 + PSDS2 from the baseline's 50 real detection files + all F1s, beside psds_eval's own time.
Bootstrap: `--bootstrap_draws` (1000) draws of the macro F1 intervals on the baseline's real 0.5 detections and
of the PSDS1 + PSDS2 intervals on the synthetic score tables, beside the per-draw recomputation (timed on
`--plain_draws` draws, then scaled). Prints a table and one JSON line.
Usage: python benchmarks/eval_speed.py [--anchors ../shared/anchors/desed] [--bootstrap_draws 1000] [--bootstrap_only]
"""
import argparse
import json
import time
from pathlib import Path

import pandas as pd
import sed_scores_eval
from psds_eval import PSDSEval

from desed_task.evaluation import (
    PSDS1, PSDS2, bootstrap_intervals, intersection_f1_macro, load_durations, load_ground_truth, load_operating_points,
    scores_to_detections, sed_eval_metrics, sed_report, threshold_independent_psds,
)
from desed_task.evaluation.bootstrap import resampled_metric_values
from desed_task.evaluation.synthetic import synthetic_score_tables


def timed(function):
    start = time.perf_counter()
    value = function()
    return value, time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--anchors", default=str(Path(__file__).resolve().parents[2] / "shared" / "anchors" / "desed"))
    parser.add_argument("--num_jobs", type=int, default=1)
    parser.add_argument("--bootstrap_draws", type=int, default=1000)
    parser.add_argument("--plain_draws", type=int, default=3)
    parser.add_argument("--bootstrap_only", action="store_true", help="time the bootstrap only")
    args = parser.parse_args()
    root = Path(args.anchors)
    gt_path, dur_path = root / "validation.tsv", root / "validation_durations.tsv"
    ground_truth, durations = load_ground_truth(gt_path), load_durations(dur_path)
    labels = sorted(ground_truth["event_label"].dropna().unique())
    scores = synthetic_score_tables(ground_truth, durations, labels)
    results = {"clips": len(durations)}

    if not args.bootstrap_only:
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

    real_detections = pd.read_csv(root / "baseline_student" / "predictions0.5.csv", index_col=0)
    n_draws = args.bootstrap_draws
    results["bootstrap_draws"] = n_draws
    intervals, results["bootstrap_f1s_s"] = timed(lambda: bootstrap_intervals(
        ground_truth, durations, detections=real_detections, n_draws=n_draws))
    results["intersection_f1_macro_ci"] = [intervals["intersection_f1_macro_ci_low"], intervals["intersection_f1_macro_ci_high"]]
    intervals, results["bootstrap_psds1_psds2_s"] = timed(lambda: bootstrap_intervals(
        ground_truth, durations, scores=scores, n_draws=0, n_psds_draws=n_draws))
    results["psds1_ci"] = [intervals["psds1_sed_scores_eval_ci_low"], intervals["psds1_sed_scores_eval_ci_high"]]
    _, plain_psds_s = timed(lambda: threshold_independent_psds(scores, ground_truth, durations))
    results["bootstrap_psds_per_draw_after_setup_s_approx"] = (results["bootstrap_psds1_psds2_s"] - plain_psds_s) / n_draws

    def plain_f1s(gt, det, dur):  # what the bootstrap recomputed per draw before: the three macro F1s
        intersection_f1_macro(det, gt, dur)
        sed_eval_metrics(det, gt)
        return sed_eval_metrics(det, gt)[1]["f1_macro"]
    _, seconds = timed(lambda: resampled_metric_values(
        plain_f1s, ground_truth, real_detections, durations, n_draws=args.plain_draws))
    results[f"plain_recomputation_f1s_{n_draws}_draws_s_extrapolated"] = seconds / args.plain_draws * n_draws
    _, seconds = timed(lambda: resampled_metric_values(
        lambda gt, det, dur: threshold_independent_psds(
            {copy: scores[copy.split("_", 1)[1]] for copy in gt["filename"].str[:-4].unique()}, gt, dur)[0].value,
        ground_truth, real_detections, durations, n_draws=args.plain_draws))
    results[f"plain_recomputation_psds1_psds2_{n_draws}_draws_s_extrapolated"] = seconds / args.plain_draws * n_draws
    for key, value in results.items():
        print(f"{key:<55}{value:>12.4f}" if isinstance(value, float) else f"{key:<55}{value!s:>12}")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
