"""Post-processing benchmark: PSDS1, PSDS2 and collar F1 for none / median / class-wise median / cSEBBs, and tuning time.

Quality, on real scores (default: the DCASE 2023 BEATs baseline's scores of 20 DESED public-evaluation clips,
`../shared/anchors/dcase2023_beats_scores`), each method tuned by each objective (psds1, psds2, collar_f1):
- "oracle": tuned and scored on the same clips (an upper bound, not a result);
- "5-fold CV": clips split into 5 folds (sorted ids, every 5th clip); each fold is post-processed with the
  parameters tuned on the 4 others, then all clips are scored together.
With `--scores DIR --ground_truth GT --durations DUR --test_scores DIR --test_ground_truth GT --test_durations DUR`:
tuned on that validation set and scored on that test set instead ("validation -> test").
"median" is one window for all classes (tuned); metrics: threshold-independent PSDS (sed_scores_eval algorithm)
and the collar-based (event) macro F1 at threshold 0.5.

Speed (unless `--no_timing`): tuning time (wall and process CPU seconds, with the load average: on a shared
machine the CPU time is the closer figure) of the class-wise median grid and of the published cSEBBs grid
on synthetic score tables of the 1,168 DESED validation clips (`benchmarks/eval_speed.py`'s tables).
Prints a table and one JSON line.
Usage: python benchmarks/postprocess.py [--anchors ../shared/anchors] [--no_timing] [--scores ... --test_scores ...]
"""
import argparse
import json
import os
import time
from pathlib import Path

import pandas as pd

from desed_task.evaluation import load_durations, load_ground_truth, load_score_tables, sed_report
from desed_task.evaluation.io import audio_id
from desed_task.evaluation.synthetic import synthetic_score_tables
from desed_task.postprocess import OBJECTIVES, apply_postprocessing, tune

METHODS = ("median", "classwise_median", "csebbs")


def metrics(scores, ground_truth, durations) -> dict:
    report = sed_report(ground_truth, durations, scores=scores)
    return {"psds1": report["psds1_sed_scores_eval"], "psds2": report["psds2_sed_scores_eval"],
            "collar_f1": report["event_f1_macro"]}


def restrict(ground_truth: pd.DataFrame, durations: dict, clips) -> tuple[pd.DataFrame, dict]:
    clips = set(clips)
    return (ground_truth[ground_truth["filename"].astype(str).map(audio_id).isin(clips)],
            {name: value for name, value in durations.items() if audio_id(name) in clips})


def cross_validated(method, objective, scores, ground_truth, durations, n_folds=5) -> dict:
    clips = sorted(scores)
    processed = {}
    for fold in range(n_folds):
        held_out = clips[fold::n_folds]
        tuning_clips = [clip for clip in clips if clip not in held_out]
        gt, dur = restrict(ground_truth, durations, tuning_clips)
        params = tune(method, {clip: scores[clip] for clip in tuning_clips}, gt, dur, objective)
        processed.update(apply_postprocessing({clip: scores[clip] for clip in held_out}, params))
    return metrics(processed, ground_truth, durations)


def quality(protocols) -> list[dict]:
    """protocols: [(label, validation (scores, gt, dur) or None for CV, test (scores, gt, dur))]."""
    rows = []
    for label, validation, test in protocols:
        rows.append({"protocol": label, "method": "none", "tuned_by": "-", **metrics(*test)})
        for method in METHODS:
            for objective in OBJECTIVES:
                start = time.perf_counter()
                if validation is None:
                    values = cross_validated(method, objective, *test)
                else:
                    params = tune(method, *validation, objective)
                    values = metrics(apply_postprocessing(test[0], params), *test[1:])
                rows.append({"protocol": label, "method": method, "tuned_by": objective, **values,
                             "seconds": time.perf_counter() - start})
    return rows


def timing(desed_root: Path) -> dict:
    ground_truth = load_ground_truth(desed_root / "validation.tsv")
    durations = load_durations(desed_root / "validation_durations.tsv")
    labels = sorted(ground_truth["event_label"].dropna().unique())
    scores = synthetic_score_tables(ground_truth, durations, labels)
    results = {"timing_clips": len(scores), "cpu_count": os.cpu_count()}
    results["load_average_1min"] = os.getloadavg()[0]
    for method in ("classwise_median", "csebbs"):
        start, cpu = time.perf_counter(), time.process_time()
        params = tune(method, scores, ground_truth, durations, "psds1")
        results[f"tune_{method}_psds1_s"] = time.perf_counter() - start
        results[f"tune_{method}_psds1_cpu_s"] = time.process_time() - cpu
        results[f"tune_{method}_candidates"] = params.tuning["candidates"]
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--anchors", default=str(Path(__file__).resolve().parents[2] / "shared" / "anchors"))
    parser.add_argument("--no_timing", action="store_true", help="skip the 1,168-clip tuning time")
    for prefix in ("", "test_"):
        for name in ("scores", "ground_truth", "durations"):
            parser.add_argument(f"--{prefix}{name}")
    args = parser.parse_args()
    given = [args.scores, args.ground_truth, args.durations, args.test_scores, args.test_ground_truth,
             args.test_durations]
    if any(given) and not all(given):
        parser.error("give all of --scores --ground_truth --durations --test_scores --test_ground_truth --test_durations")

    def load(scores, ground_truth, durations):
        return load_score_tables(scores), load_ground_truth(ground_truth), load_durations(durations)

    if all(given):
        protocols = [("validation -> test", load(*given[:3]), load(*given[3:]))]
    else:
        root = Path(args.anchors) / "dcase2023_beats_scores"
        data = load(root / "scores", root / "ground_truth.tsv", root / "durations.tsv")
        protocols = [("oracle (tuned on the scored clips)", data, data), ("5-fold CV", None, data)]
    rows = quality(protocols)
    print(f"{'protocol':<36}{'method':<18}{'tuned by':<11}{'PSDS1':>8}{'PSDS2':>8}{'collar F1':>11}")
    for row in rows:
        print(f"{row['protocol']:<36}{row['method']:<18}{row['tuned_by']:<11}{row['psds1']:>8.4f}{row['psds2']:>8.4f}"
              f"{row['collar_f1']:>11.4f}")
    results = {"quality": rows}
    if not args.no_timing:
        results.update(timing(Path(args.anchors) / "desed"))
        for key, value in results.items():
            if key != "quality":
                print(f"{key:<40}{value:>10.2f}" if isinstance(value, float) else f"{key:<40}{value!s:>10}")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
