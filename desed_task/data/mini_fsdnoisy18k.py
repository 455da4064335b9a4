"""Built-in mini FSDnoisy18k: a small, deterministic dataset with the real folders and CSVs.

    python -m desed_task.data.mini_fsdnoisy18k --out DIR [--seed N --n_noisy 20 --n_clean 8 --n_test 8]

The 20 classes carry the FSDnoisy18k names; each is one of the ten timbres of ``synth_events.py`` in one
of two registers: as synthesised, or synthesised at twice the rate and played at the normal rate (an
octave lower and twice slower). Clips are 0.3-4 s long (some exactly 1 s, many shorter, so the
extraction tiles them), an event over a room background at 6-20 dB SNR, 16-bit 44.1 kHz mono. Every
class has ``n_noisy`` noisy, ``n_clean`` clean and ``n_test`` test clips; ``noisy_share`` of the noisy
clips get a wrong label (another class, uniformly), so "noisy" means something. Each clip draws from
its own generator seeded by (seed, set, index): the same arguments give byte-identical files.
"""
from __future__ import annotations

import argparse
import csv
import os
import shutil
import time
from pathlib import Path

import numpy as np

from desed_task.data.generated import render_all
from desed_task.data.fsdnoisy18k import FSD_CLASSES, TEST_COLUMNS, TRAIN_COLUMNS, dataset_paths
from desed_task.data.resample import write_audio_atomic
from desed_task.data.synth_events import GENERATORS, background
from desed_task.utils.files import atomic_path, ensure_generated

SAMPLE_RATE = 44100
DURATION_RANGE = (0.3, 4.0)
ONE_SECOND_SHARE = 0.1
SNR_DB = (6.0, 20.0)
SET_IDS = {"noisy": 1, "clean": 2, "test": 3}
TIMBRES = list(GENERATORS)


def class_timbre(label: int) -> tuple[str, int]:
    """(synth_events timbre, register) of class ``label``: register 1 is an octave lower and slower."""
    return TIMBRES[label % len(TIMBRES)], label // len(TIMBRES)


def synthesize_clip(label: int, duration: float, rng: np.random.Generator, sr: int = SAMPLE_RATE) -> np.ndarray:
    """One clip of class ``label``: the class timbre over a background at a random SNR, peak <= 0.9."""
    n = int(round(duration * sr))
    timbre, register = class_timbre(label)
    event = GENERATORS[timbre](n, sr * (1 + register), rng)
    event = event / (np.sqrt(np.mean(event ** 2)) + 1e-9)
    fade = min(int(0.005 * sr), n // 2)
    ramp = np.linspace(0.0, 1.0, fade)
    event[:fade] *= ramp
    event[n - fade:] *= ramp[::-1]
    noise = background(n, sr, rng) * 10 ** (-rng.uniform(*SNR_DB) / 20)
    mix = event + noise
    return (0.9 * rng.uniform(0.3, 1.0) * mix / np.max(np.abs(mix))).astype(np.float32)


def _plan(seed: int, subset: str, n_per_class: int, noisy_share: float) -> list[dict]:
    """Rows (fname, true label, listed label, duration) of one subset; classes interleaved."""
    rows = []
    for index in range(n_per_class * len(FSD_CLASSES)):
        rng = np.random.default_rng([seed, SET_IDS[subset], index, 0])
        label = index % len(FSD_CLASSES)
        duration = 1.0 if rng.random() < ONE_SECOND_SHARE else round(float(rng.uniform(*DURATION_RANGE)), 3)
        listed = label
        if subset == "noisy" and rng.random() < noisy_share:
            listed = (label + int(rng.integers(1, len(FSD_CLASSES)))) % len(FSD_CLASSES)
        offset = {"noisy": 100000, "clean": 200000, "test": 300000}[subset]
        rows.append({"fname": f"{offset + index}.wav", "label": label, "listed": listed, "duration": duration,
                     "index": index, "subset": subset, "noisy_small": int(rng.random() < 0.5)})
    return rows


def _render(job: tuple) -> None:
    seed, row, folder = job
    rng = np.random.default_rng([seed, SET_IDS[row["subset"]], row["index"], 1])
    write_audio_atomic(Path(folder) / row["fname"], synthesize_clip(row["label"], row["duration"], rng), SAMPLE_RATE)


def _write_csv(path: Path, columns, rows) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows(rows)


def generate_mini_fsdnoisy18k(out_dir, seed: int = 0, n_noisy: int = 20, n_clean: int = 8, n_test: int = 8,
                              noisy_share: float = 0.3, workers: int | None = None) -> dict[str, Path]:
    """Write the mini dataset into ``out_dir`` (replacing a previous one); returns ``dataset_paths``."""
    paths = dataset_paths(out_dir)
    for folder in ("train_audio", "test_audio"):
        shutil.rmtree(paths[folder], ignore_errors=True)
        paths[folder].mkdir(parents=True)
    plans = {"noisy": _plan(seed, "noisy", n_noisy, noisy_share), "clean": _plan(seed, "clean", n_clean, 0.0),
             "test": _plan(seed, "test", n_test, 0.0)}
    jobs = [(seed, row, str(paths["test_audio" if subset == "test" else "train_audio"]))
            for subset, rows in plans.items() for row in rows]
    workers = workers or min(2, os.cpu_count() or 1)
    render_all(_render, jobs, workers)
    train_rows = [(r["fname"], FSD_CLASSES[r["listed"]], f"mini:{r['listed']}", int(subset == "clean"),
                   r["noisy_small"] if subset == "noisy" else 0)
                  for subset in ("noisy", "clean") for r in plans[subset]]
    _write_csv(paths["train_csv"], TRAIN_COLUMNS, train_rows)
    _write_csv(paths["test_csv"], TEST_COLUMNS,
               [(r["fname"], FSD_CLASSES[r["label"]], f"mini:{r['label']}") for r in plans["test"]])
    return paths


def ensure_mini_fsdnoisy18k(out_dir, seed: int = 0, workers: int | None = None, **sizes) -> dict[str, Path]:
    """Generate the mini dataset unless a complete one with the same seed and sizes is there (see
    `ensure_generated`); returns its paths."""
    recipe = {"seed": seed, **{key: sizes[key] for key in sorted(sizes)}}
    root = ensure_generated(out_dir, "mini_fsdnoisy18k", recipe,
                            lambda root: generate_mini_fsdnoisy18k(root, seed, workers=workers, **sizes))
    return dataset_paths(root)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="Generate the built-in mini FSDnoisy18k dataset.")
    parser.add_argument("--out", required=True, help="output folder (FSDnoisy18k.audio_train/, ...meta/ inside)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n_noisy", type=int, default=20, help="noisy clips per class")
    parser.add_argument("--n_clean", type=int, default=8, help="clean clips per class")
    parser.add_argument("--n_test", type=int, default=8, help="test clips per class")
    parser.add_argument("--noisy_share", type=float, default=0.3, help="share of noisy clips with a wrong label")
    parser.add_argument("--workers", type=int, default=None)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    generate_mini_fsdnoisy18k(args.out, args.seed, args.n_noisy, args.n_clean, args.n_test, args.noisy_share,
                              args.workers)
    print(f"mini FSDnoisy18k written to {args.out} in {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
