"""Built-in mini MAESTRO Real: a few long recordings in the five scene types, in the official layout.

    python -m desed_task.data.mini_maestro --out DIR --seed N

Writes ``development_audio/<scene>/<scene>_NN.wav`` (16 kHz), ``development_annotation/soft_labels_<scene>/
<scene>_NN.txt`` (``onset offset label confidence``), ``train_split.csv`` (column ``train``),
``validation_split.csv`` (column ``val``) and ``maestro_real_durations.tsv``. Events of the 17 MAESTRO
classes are synthesised with the mini DESED timbres (``synth_events``), each class a DESED generator
played at its own speed (which moves its pitch and tempo) and level; events longer than 4 s loop a 4 s
stretch. Every event is annotated per 1 s
segment by ``n_annotators`` simulated annotators who notice it with a probability that grows with its
level; the confidence of a segment is the fraction who marked it, so confidences are soft as in MAESTRO.
Same seed and sizes give byte-identical files (each recording has its own generator).
"""
from __future__ import annotations

import argparse
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd

from desed_task.data.generated import render_all
from desed_task.data.maestro import SCENES
from desed_task.data.resample import write_audio_atomic
from desed_task.data.synth_events import background, synthesize_event
from desed_task.utils.files import ensure_generated, write_text

FS = 16000
# MAESTRO class: (DESED generator, speed factor (>1 raises the pitch), duration range in s)
TIMBRES = {
    "cutlery and dishes": ("Dishes", 1.0, (0.3, 1.5)),
    "furniture dragging": ("Vacuum_cleaner", 0.4, (0.8, 3.0)),
    "people talking": ("Speech", 1.0, (2.0, 12.0)),
    "children voices": ("Speech", 1.7, (1.0, 8.0)),
    "coffee machine": ("Blender", 1.5, (5.0, 20.0)),
    "footsteps": ("Dishes", 0.25, (2.0, 10.0)),
    "large_vehicle": ("Vacuum_cleaner", 0.25, (4.0, 15.0)),
    "car": ("Blender", 0.35, (3.0, 10.0)),
    "brakes_squeaking": ("Alarm_bell_ringing", 2.5, (0.5, 3.0)),
    "cash register beeping": ("Alarm_bell_ringing", 1.3, (0.3, 1.5)),
    "announcement": ("Speech", 0.8, (4.0, 12.0)),
    "shopping cart": ("Frying", 0.6, (2.0, 8.0)),
    "metro leaving": ("Electric_shaver_toothbrush", 0.5, (8.0, 20.0)),
    "metro approaching": ("Electric_shaver_toothbrush", 0.45, (8.0, 20.0)),
    "door opens/closes": ("Dog", 0.6, (0.5, 2.0)),
    "wind_blowing": ("Running_water", 0.3, (5.0, 20.0)),
    "birds_singing": ("Cat", 3.0, (1.0, 6.0)),
}
SCENE_CLASSES = {
    "cafe_restaurant": ("cutlery and dishes", "furniture dragging", "people talking", "children voices",
                        "coffee machine", "footsteps", "door opens/closes"),
    "city_center": ("people talking", "children voices", "footsteps", "large_vehicle", "car", "brakes_squeaking",
                    "wind_blowing", "birds_singing"),
    "grocery_store": ("people talking", "children voices", "cash register beeping", "announcement",
                      "shopping cart", "footsteps", "door opens/closes"),
    "metro_station": ("people talking", "footsteps", "announcement", "metro leaving", "metro approaching",
                      "brakes_squeaking", "children voices"),
    "residential_area": ("people talking", "car", "footsteps", "birds_singing", "wind_blowing", "large_vehicle",
                         "children voices", "door opens/closes"),
}
EVENTS_PER_MINUTE = 2.0  # per class of the scene
LOOP_LEN = 4.0  # longer events loop a synthesised 4 s stretch (keeps generation to seconds)
SNR_DB = (0.0, 18.0)
BACKGROUND_LEN = 20.0


def _plan(seed: int, scene_index: int, index: int, duration_range: tuple[float, float]) -> dict:
    scene = SCENES[scene_index]
    rng = np.random.default_rng([seed, scene_index, index])
    duration = float(np.round(rng.uniform(*duration_range), 2))
    events = []
    for label in SCENE_CLASSES[scene]:
        for _ in range(rng.poisson(EVENTS_PER_MINUTE * duration / 60)):
            length = rng.uniform(*TIMBRES[label][2])
            onset = float(np.round(rng.uniform(0, duration - 0.3), 3))
            offset = float(np.round(min(onset + length, duration), 3))
            events.append((onset, offset, label, float(rng.uniform(*SNR_DB))))
    return {"scene": scene, "name": f"{scene}_{index:02d}", "duration": duration, "events": sorted(events),
            "rng": [seed, scene_index, index, 1]}


def _annotate(events: list, duration: float, n_annotators: int, rng: np.random.Generator) -> list[tuple]:
    """Per-1 s-segment soft annotations: the fraction of annotators who notice each event in each segment."""
    rows = []
    for onset, offset, label, snr in events:
        notice = 1 / (1 + np.exp(-(snr - 4.0) / 3.0))
        start = onset
        while start < offset:
            end = min(np.floor(start) + 1.0, offset, duration)
            votes = int((rng.random(n_annotators) < notice).sum())
            if votes:
                rows.append((round(start, 3), round(end, 3), label, round(votes / n_annotators, 3)))
            start = end
    return sorted(rows)


def _render(job: tuple) -> None:
    plan, audio_dir, annotation_dir, n_annotators = job
    rng = np.random.default_rng(plan["rng"])
    n = int(round(plan["duration"] * FS))
    bank = background(int(BACKGROUND_LEN * FS), FS, rng)
    mix = np.resize(np.roll(bank, int(rng.integers(len(bank)))), n) * 0.01
    for onset, offset, label, snr in plan["events"]:
        start, stop = int(onset * FS), min(int(offset * FS), n)
        if stop - start < 64:
            continue
        generator, speed, _ = TIMBRES[label]
        event = np.resize(synthesize_event(generator, min(stop - start, int(LOOP_LEN * FS)), int(round(FS / speed)),
                                           rng), stop - start)
        if label in ("metro leaving", "metro approaching"):
            ramp = np.linspace(1.0, 0.1, stop - start)
            event = event * (ramp if label == "metro leaving" else ramp[::-1])
        mix[start:stop] += 0.01 * 10 ** (snr / 20) * event
    peak = np.max(np.abs(mix))
    if peak > 0.95:
        mix *= 0.95 / peak
    folder = Path(audio_dir) / plan["scene"]
    folder.mkdir(parents=True, exist_ok=True)
    write_audio_atomic(folder / f"{plan['name']}.wav", mix.astype(np.float32), FS)
    rows = _annotate(plan["events"], plan["duration"], n_annotators, rng)
    folder = Path(annotation_dir) / f"soft_labels_{plan['scene']}"
    folder.mkdir(parents=True, exist_ok=True)
    write_text(folder / f"{plan['name']}.txt",
               "".join(f"{on:.3f}\t{off:.3f}\t{label}\t{conf:.3f}\n" for on, off, label, conf in rows))


def mini_maestro_paths(out_dir) -> dict:
    """The ``data.maestro_*`` config paths of a mini MAESTRO in ``out_dir``."""
    out_dir = Path(out_dir)
    return {"maestro_root": str(out_dir), "maestro_train_split": str(out_dir / "train_split.csv"),
            "maestro_test_split": str(out_dir / "validation_split.csv"),
            "maestro_durations": str(out_dir / "maestro_real_durations.tsv")}


def generate_mini_maestro(out_dir, seed: int = 0, n_train_per_scene: int = 2, n_test_per_scene: int = 1,
                          duration_range: tuple[float, float] = (180.0, 300.0), n_annotators: int = 5,
                          workers: int | None = None) -> dict:
    """Write the mini MAESTRO into ``out_dir`` (replacing a previous one); returns its config paths."""
    out_dir = Path(out_dir)
    for generated in ("development_audio", "development_annotation"):
        shutil.rmtree(out_dir / generated, ignore_errors=True)
    per_scene = n_train_per_scene + n_test_per_scene
    plans = [_plan(seed, s, i, tuple(duration_range)) for s in range(len(SCENES)) for i in range(per_scene)]
    jobs = [(plan, str(out_dir / "development_audio"), str(out_dir / "development_annotation"), n_annotators)
            for plan in plans]
    render_all(_render, jobs, workers or min(4, os.cpu_count() or 1))
    train = [p["name"] + ".wav" for p in plans if int(p["name"][-2:]) < n_train_per_scene]
    test = [p["name"] + ".wav" for p in plans if int(p["name"][-2:]) >= n_train_per_scene]
    paths = mini_maestro_paths(out_dir)
    pd.DataFrame({"train": train}).to_csv(paths["maestro_train_split"], index=False)
    pd.DataFrame({"val": test}).to_csv(paths["maestro_test_split"], index=False)
    pd.DataFrame([(p["name"] + ".wav", p["duration"]) for p in plans], columns=["filename", "duration"]).to_csv(
        paths["maestro_durations"], sep="\t", index=False)
    return paths


def ensure_mini_maestro(out_dir, seed: int = 0, workers: int | None = None, **sizes) -> dict:
    """Generate the mini MAESTRO unless a complete one with the same seed and sizes is in ``out_dir``."""
    recipe = {"seed": seed, **{k: list(v) if isinstance(v, tuple) else v for k, v in sorted(sizes.items())}}
    root = ensure_generated(out_dir, "mini_maestro", recipe,
                            lambda root: generate_mini_maestro(root, seed, workers=workers, **sizes))
    return mini_maestro_paths(root)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="Generate the built-in mini MAESTRO Real dataset.")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n_train_per_scene", type=int, default=2)
    parser.add_argument("--n_test_per_scene", type=int, default=1)
    parser.add_argument("--min_duration", type=float, default=180.0)
    parser.add_argument("--max_duration", type=float, default=300.0)
    parser.add_argument("--n_annotators", type=int, default=5)
    parser.add_argument("--workers", type=int, default=None)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    generate_mini_maestro(args.out, args.seed, args.n_train_per_scene, args.n_test_per_scene,
                          (args.min_duration, args.max_duration), args.n_annotators, args.workers)
    print(f"mini MAESTRO written to {args.out} in {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
