"""Does a taper help the overlap average of window scores? Measured on long files made of mini test clips.

The mini DESED test clips (data/mini_desed by default, `make demo`'s) are concatenated in name order into
long files of `--clips_per_file` clips, with their ground truth shifted to the clip offsets; a trained
checkpoint then runs over the long files with each setting (hop, taper), and the detections are scored with
the evaluation package (PSDS1/PSDS2 from the score tables, intersection F1 at 0.5). The same clips scored one
by one (each its own padded window, as the trainer's test step) are the reference row.
Prints a table and one JSON line. Usage:
  python benchmarks/inference_taper.py --checkpoint exp/demo/last.ckpt [--mini data/mini_desed]
"""
import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf

from desed_task.data.mini import mini_config_paths
from desed_task.evaluation import load_durations, load_ground_truth, sed_report
from desed_task.inference import Detector, load_task


def build_long_files(mini: Path, out: Path, clips_per_file: int) -> tuple[pd.DataFrame, dict]:
    """Concatenated test clips as `long_<n>.wav` and their shifted ground truth and durations."""
    paths = mini_config_paths(mini)
    truth = load_ground_truth(paths["test_tsv"])
    clips = sorted(load_durations(paths["test_dur"]))
    rows, durations = [], {}
    for number, start in enumerate(range(0, len(clips), clips_per_file)):
        name, offset, parts = f"long_{number}.wav", 0.0, []
        for clip in clips[start:start + clips_per_file]:
            audio, rate = sf.read(Path(paths["test_folder"]) / clip, dtype="float32")
            for event in truth[truth["filename"] == clip].dropna().itertuples():
                rows.append((name, event.onset + offset, event.offset + offset, event.event_label))
            parts.append(audio)
            offset += len(audio) / rate
        sf.write(out / name, np.concatenate(parts), rate, subtype="FLOAT")
        durations[name] = offset
    return pd.DataFrame(rows, columns=["filename", "onset", "offset", "event_label"]), durations


def evaluate(detector: Detector, files, ground_truth, durations) -> dict:
    start = time.perf_counter()
    scores = {result.clip_id: result.scores for result in detector.run(files)}
    report = sed_report(ground_truth, durations, scores=scores)
    return {"psds1": report["psds1_sed_scores_eval"], "psds2": report["psds2_sed_scores_eval"],
            "intersection_f1": report["intersection_f1_macro"], "seconds": time.perf_counter() - start}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--mini", default="data/mini_desed")
    parser.add_argument("--model", default="teacher")
    parser.add_argument("--clips_per_file", type=int, default=10)
    args = parser.parse_args()
    task = load_task(args.checkpoint)
    paths = mini_config_paths(args.mini)
    results = {}
    clips = sorted(Path(paths["test_folder"]) / name for name in load_durations(paths["test_dur"]))
    results["clips one by one"] = evaluate(Detector(task, args.model), clips, paths["test_tsv"], paths["test_dur"])
    with tempfile.TemporaryDirectory() as folder:
        ground_truth, durations = build_long_files(Path(args.mini), Path(folder), args.clips_per_file)
        files = sorted(Path(folder).glob("long_*.wav"))
        for hop, taper in ((10.0, "none"), (5.0, "none"), (5.0, "hann"), (2.5, "none"), (2.5, "hann")):
            detector = Detector(task, args.model, hop=hop, taper=taper)
            results[f"long files, hop {hop} s, taper {taper}"] = evaluate(detector, files, ground_truth, durations)
    print(f"{'setting':<36} {'PSDS1':>7} {'PSDS2':>7} {'inter. F1':>9} {'seconds':>8}")
    for name, row in results.items():
        print(f"{name:<36} {row['psds1']:7.4f} {row['psds2']:7.4f} {row['intersection_f1']:9.4f} {row['seconds']:8.1f}")
    print(json.dumps({"checkpoint": args.checkpoint, "model": args.model, "results": results}))


if __name__ == "__main__":
    main()
