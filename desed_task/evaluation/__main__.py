"""Command line: `python -m desed_task.evaluation --ground_truth GT.tsv --durations DUR.tsv --scores DIR ...`."""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import pandas as pd

from desed_task.evaluation.io import (
    GROUND_TRUTH_END_TOLERANCE, TIME_TOLERANCE, EvaluationInputError, check_scores_cover_ground_truth,
    check_within_durations, clip_ground_truth_ends, load_detections, load_durations, load_ground_truth,
    load_operating_points, load_score_tables, parse_classes,
)
from desed_task.evaluation.plots import save_psd_roc_plot
from desed_task.evaluation.report import format_report, sed_report
from desed_task.evaluation.segment import segment_metrics
from desed_task.postprocess import apply_postprocessing, load_params
from desed_task.utils.errors import InputError
from desed_task.utils.files import write_json


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m desed_task.evaluation", description=__doc__)
    parser.add_argument("--ground_truth", required=True, help="ground-truth TSV (filename onset offset event_label)")
    parser.add_argument("--durations", required=True, help="durations TSV (filename duration)")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--scores", help="folder of per-clip score TSVs (threshold-independent PSDS)")
    source.add_argument("--operating_points", help="folder of predictions_th_<X>.tsv detection files (psds_eval PSDS)")
    source.add_argument("--detections", help="one detection file, TSV or CSV (F1 metrics only)")
    parser.add_argument(
        "--classes", help="the known event classes: a comma-separated list or a file with one class a line "
        "(default: the ten DESED classes); any other label in the inputs is an error",
    )
    parser.add_argument(
        "--allow_events_past_duration", action="store_true",
        help=f"score events that end after their clip's duration (+{TIME_TOLERANCE * 1000:g} ms) as given, "
        "with a warning, instead of stopping (the DCASE baseline's detections have such events). Without it, "
        f"ground-truth events up to {GROUND_TRUTH_END_TOLERANCE:g} s past the end are clipped to it with a "
        "notice (DESED's validation ground truth has such events)",
    )
    parser.add_argument(
        "--postprocess", metavar="PARAMS.yaml",
        help="post-process the --scores tables with this parameter file (python -m desed_task.postprocess tune) first",
    )
    parser.add_argument("--threshold", type=float, default=0.5, help="decision threshold for the F1 metrics")
    parser.add_argument("--out", help="write the report as JSON here")
    parser.add_argument("--plot", help="write PSD-ROC PNG plots into this folder (with --scores or --operating_points)")
    parser.add_argument(
        "--bootstrap", type=int, default=0,
        help="number of bootstrap draws (clips resampled) for 95 %% intervals of the F1s, and of PSDS1/PSDS2 with --scores",
    )
    parser.add_argument(
        "--psds_bootstrap", type=int, default=None,
        help="bootstrap draws for the PSDS intervals (default: --bootstrap; 0: none); a PSDS draw costs much more "
        "than an F1 draw (see docs/evaluation.md)",
    )
    parser.add_argument(
        "--segment_length", type=float, default=None,
        help="with --scores: segment-based metrics over segments of this many seconds (MAESTRO: 1) instead of "
        "PSDS and F1: mpAUC (see --max_fpr), mAUC and the macro F1 at each class's best threshold",
    )
    parser.add_argument("--max_fpr", type=float, default=0.1, help="false-positive-rate limit of the mpAUC")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--num_jobs", type=int, default=1, help="processes for the sed_scores_eval PSDS backend")
    parser.add_argument(
        "--psds_backend", choices=["numpy", "sed_scores_eval"], default="numpy",
        help="threshold-independent PSDS implementation: vectorised numpy (default) or sed_scores_eval's own loops",
    )
    parser.add_argument(
        "--float_precision", choices=["high", "legacy", "round_trip"], default=None,
        help="pandas float parser; 'legacy' reproduces figures computed with pandas < 1.3 (DCASE baseline reports)",
    )
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.plot and args.detections:
        parser.error("--plot draws PSD-ROC curves, which need --scores or --operating_points, not --detections")
    if args.postprocess and not args.scores:
        parser.error("--postprocess applies to score tables: give --scores")
    if args.segment_length is not None and not args.scores:
        parser.error("--segment_length scores segments of score tables: it needs --scores")
    if args.bootstrap < 0 or (args.psds_bootstrap or 0) < 0:
        parser.error("--bootstrap and --psds_bootstrap must be >= 0")
    start = time.perf_counter()
    try:
        classes = parse_classes(args.classes)
        ground_truth = load_ground_truth(args.ground_truth, args.float_precision, labels=classes)
        durations = load_durations(args.durations, args.float_precision)
        if not args.allow_events_past_duration:
            ground_truth, clipped, overshoot = clip_ground_truth_ends(ground_truth, durations)
            if clipped:
                print(f"notice: {args.ground_truth}: {clipped} events end up to {overshoot:.3f} s after their clip's "
                      f"duration (tolerance {GROUND_TRUTH_END_TOLERANCE:g} s); clipped to it", file=sys.stderr)
        past = {args.ground_truth: check_within_durations(
            ground_truth, durations, args.ground_truth, args.durations, args.allow_events_past_duration)}
        options = dict(durations_source=args.durations, allow_past_duration=args.allow_events_past_duration)
        scores = operating_points = detections = None
        if args.scores:
            scores = load_score_tables(args.scores, classes, durations, **options)
            check_scores_cover_ground_truth(scores, ground_truth, args.scores, args.ground_truth)
            if args.postprocess:
                scores = apply_postprocessing(scores, load_params(args.postprocess, list(next(iter(scores.values())).columns[2:])))
            past[args.scores] = _past_duration(
                [pd.DataFrame({"filename": list(scores), "offset": [table["offset"].iloc[-1] for table in scores.values()]})],
                durations)
        elif args.operating_points:
            operating_points = load_operating_points(
                args.operating_points, classes, durations, args.float_precision, **options)
            past[args.operating_points] = _past_duration(operating_points.values(), durations)
        else:
            detections = load_detections(args.detections, classes, durations, args.float_precision, **options)
            past[args.detections] = _past_duration([detections], durations)
    except (EvaluationInputError, InputError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    absent = [label for label in classes if label not in set(ground_truth["event_label"].dropna())]
    if scores is not None and absent:
        print(f"warning: {args.ground_truth}: no event of {', '.join(absent)}; the threshold-independent PSDS "
              "averages over all score columns, with a TPR of 0 for these (as sed_scores_eval does)", file=sys.stderr)
    for source, (count, overshoot) in past.items():
        if count:
            what = "score tables" if source == args.scores else "events"
            print(f"warning: {source}: {count} {what} end after their clip's duration (up to {overshoot:.3f} s "
                  "after it); scored as given (--allow_events_past_duration)", file=sys.stderr)
    if args.segment_length is not None:
        return _segment_report(args, scores, ground_truth, durations, classes, start)
    curves = {}
    report = sed_report(
        ground_truth, durations, scores=scores, operating_points=operating_points, detections=detections,
        threshold=args.threshold, n_bootstrap=args.bootstrap, seed=args.seed, num_jobs=args.num_jobs,
        curves=curves, psds_backend=args.psds_backend, n_psds_bootstrap=args.psds_bootstrap, progress=True,
    )
    report["seconds"] = time.perf_counter() - start
    print(format_report(report))
    if args.out:
        clean = {k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in report.items()}
        write_json(args.out, clean, indent=2)
    if args.plot:
        for result in curves.values():
            save_psd_roc_plot(result, args.plot)
    return 0


def _segment_report(args, scores, ground_truth, durations, classes, start) -> int:
    report = segment_metrics(scores, ground_truth, durations, classes, args.segment_length, args.max_fpr)
    report["seconds"] = time.perf_counter() - start
    print("\n".join([f"{'metric':<30}{'value':>10}"] + [f"{key:<30}{value:>10.4f}" for key, value in report.items()]))
    if args.out:
        write_json(args.out, report, indent=2)
    return 0


def _past_duration(tables, durations) -> tuple[int, float]:
    """(rows ending after their clip's duration, largest overshoot) over detection tables already validated."""
    counts = [check_within_durations(table, durations, "", "", allow_past_duration=True) for table in tables]
    return sum(count for count, _ in counts), max((overshoot for _, overshoot in counts), default=0.0)


if __name__ == "__main__":
    sys.exit(main())
