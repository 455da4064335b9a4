"""Command line for post-processing score tables.

    python -m desed_task.postprocess tune --method {median,classwise_median,csebbs} --scores DIR
        --ground_truth GT.tsv --durations DUR.tsv --objective {psds1,psds2,collar_f1} --out params.yaml
    python -m desed_task.postprocess apply --params params.yaml --scores DIR --out DIR2

`tune` chooses per-class parameters on a validation set (`median` tunes one window for all classes);
`apply` writes the post-processed score tables, one TSV per clip, which `python -m desed_task.evaluation
--scores DIR2` scores as usual. Errors are one line on stderr, exit status 2.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sed_scores_eval.base_modules.io import write_sed_scores

from desed_task.evaluation.io import (
    EvaluationInputError, check_scores_cover_ground_truth, load_durations, load_ground_truth, load_score_tables,
)
from desed_task.postprocess.methods import apply_postprocessing, score_classes
from desed_task.postprocess.params import load_params, save_params
from desed_task.postprocess.tune import OBJECTIVES, TUNING_METHODS, tune
from desed_task.utils.errors import InputError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m desed_task.postprocess", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    tuning = commands.add_parser("tune", help="choose per-class parameters on a validation set")
    tuning.add_argument("--method", choices=TUNING_METHODS, required=True)
    tuning.add_argument("--scores", required=True, help="folder of validation score TSVs")
    tuning.add_argument("--ground_truth", required=True, help="validation ground-truth TSV")
    tuning.add_argument("--durations", required=True, help="validation durations TSV")
    tuning.add_argument("--objective", choices=OBJECTIVES, default="psds1")
    tuning.add_argument("--out", required=True, help="parameter YAML to write")
    applying = commands.add_parser("apply", help="write post-processed score tables")
    applying.add_argument("--params", required=True, help="parameter YAML (from tune)")
    applying.add_argument("--scores", required=True, help="folder of score TSVs")
    applying.add_argument("--out", required=True, help="folder for the post-processed score TSVs")
    return parser


def run_tune(args) -> None:
    ground_truth = load_ground_truth(args.ground_truth)
    durations = load_durations(args.durations)
    scores = load_score_tables(args.scores, durations=durations, durations_source=args.durations)
    check_scores_cover_ground_truth(scores, ground_truth, args.scores, args.ground_truth)
    params = tune(args.method, scores, ground_truth, durations, args.objective)
    params.tuning.update({"scores": str(args.scores), "ground_truth": str(args.ground_truth)})
    for label in params.tuning.get("defaults_kept", []):
        print(f"notice: {args.ground_truth}: no event of {label}; it keeps the default parameters "
              f"{params.params[label]}", file=sys.stderr)
    save_params(params, args.out)
    print(f"{params.method} parameters ({args.objective} {params.tuning['value']:.4f} on {params.tuning['clips']} "
          f"clips, {params.tuning['candidates']} candidates, {params.tuning['seconds']:.1f} s) written to {args.out}")


def run_apply(args) -> None:
    scores = load_score_tables(args.scores)
    params = load_params(args.params, score_classes(scores))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_sed_scores(apply_postprocessing(scores, params), out)
    print(f"{len(scores)} score tables post-processed ({params.method}) into {out}")


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        (run_tune if args.command == "tune" else run_apply)(args)
    except (InputError, EvaluationInputError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
