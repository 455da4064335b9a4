"""Built-in mini DESED: a small, deterministic, DESED-shaped dataset synthesised procedurally.

    python -m desed_task.data.mini --out DIR --seed N

Layout and TSV formats follow DESED (synthetic strong train, weak train, unlabeled in-domain, synthetic
validation with durations, "real" validation used as test set with durations; with `n_strong`, ATST-SED's
strong real set and its validation split with durations). Synthetic train and weak
audio are written at 44.1 kHz into the `*_44k` folders so runs exercise the resample cache; the other sets
are 16 kHz. Event statistics follow DESED real data: ~3.7 events per clip, the DESED class shares and
median durations (long classes clipped at the clip end), and a few clips without events.
Same seed and sizes give byte-identical files: every clip draws from its own generator seeded by
(seed, set, clip index), so clips can be synthesised in parallel.
"""
from __future__ import annotations

import argparse
import copy
import inspect
import logging
import os
import shutil
import time
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from desed_task.data.classes import DESED_CLASSES
from desed_task.data.generated import render_all
from desed_task.data.resample import write_audio_atomic
from desed_task.data.synth_events import background, synthesize_event
from desed_task.utils.config import load_config
from desed_task.utils.errors import BadInput
from desed_task.utils.files import ensure_generated, write_tsv

log = logging.getLogger(__name__)

CLIP_LEN = 10.0
CLASS_SHARES = {
    "Alarm_bell_ringing": 0.10, "Blender": 0.02, "Cat": 0.08, "Dishes": 0.13, "Dog": 0.13,
    "Electric_shaver_toothbrush": 0.02, "Frying": 0.02, "Running_water": 0.06, "Speech": 0.41,
    "Vacuum_cleaner": 0.02,
}
MEDIAN_DURATION = {
    "Alarm_bell_ringing": 1.0, "Blender": 4.7, "Cat": 0.9, "Dishes": 0.4, "Dog": 0.8,
    "Electric_shaver_toothbrush": 9.9, "Frying": 10.0, "Running_water": 4.9, "Speech": 1.2,
    "Vacuum_cleaner": 10.0,
}
# Long classes are drawn around a nominal length and clipped at the clip end, which yields the medians above.
LONG_NOMINAL = {"Electric_shaver_toothbrush": 9.9, "Frying": 10.3, "Vacuum_cleaner": 10.3}
EMPTY_CLIP_PROBABILITY = 0.05
EXTRA_EVENTS_MEAN = 2.95
SNR_DB = (6.0, 20.0)
BACKGROUND_BANK_SIZE = 6
SUBSETS = {  # name: (set id for seeding, sample rate, annotation kind, allow empty clips, short-clip share)
    "synth_train": (1, 44100, "strong", True, 0.0),
    "weak": (2, 44100, "weak", False, 0.1),
    "unlabeled": (3, 16000, None, True, 0.1),
    "synth_val": (4, 16000, "strong", True, 0.0),
    "test": (5, 16000, "strong", True, 0.1),
    "strong_real": (6, 16000, "strong", True, 0.1),  # written only when n_strong > 0 (ATST-SED's strong real set)
    "strong_val": (7, 16000, "strong", True, 0.1),  # its validation split (`strong_val_size`), in the same folder
}


def strong_val_size(n_strong: int, n_strong_val: int | None = None) -> int:
    """Clips of the strong real validation split: `n_strong_val`, by default one per 8 strong real training
    clips, rounded up (the official ATST-SED split: 373 validation clips for 3,000 training clips)."""
    return -(-n_strong // 8) if n_strong_val is None else n_strong_val


def mini_config_paths(out_dir: str | os.PathLike) -> dict:
    """The `data.*` config keys pointing into a mini dataset folder (the strong real set and its validation
    split exist when generated with `n_strong > 0`; as in the official layout, both share the audio folder)."""
    root = Path(out_dir)
    audio, meta = root / "audio", root / "metadata"
    return {
        "synth_folder": str(audio / "train/synthetic21_train/soundscapes_16k"),
        "synth_folder_44k": str(audio / "train/synthetic21_train/soundscapes"),
        "synth_tsv": str(meta / "train/synthetic21_train/soundscapes.tsv"),
        "strong_folder": str(audio / "train/strong_label_real_16k"),
        "strong_folder_44k": None,
        "strong_tsv": str(meta / "train/audioset_strong.tsv"),
        "strong_val_folder": str(audio / "train/strong_label_real_16k"),
        "strong_val_folder_44k": None,
        "strong_val_tsv": str(meta / "train/audioset_strong_val.tsv"),
        "strong_val_dur": str(meta / "train/audioset_strong_val_dur.tsv"),
        "weak_folder": str(audio / "train/weak_16k"),
        "weak_folder_44k": str(audio / "train/weak"),
        "weak_tsv": str(meta / "train/weak.tsv"),
        "unlabeled_folder": str(audio / "train/unlabel_in_domain_16k"),
        "unlabeled_folder_44k": None,
        "synth_val_folder": str(audio / "validation/synthetic21_validation/soundscapes_16k"),
        "synth_val_folder_44k": None,
        "synth_val_tsv": str(meta / "validation/synthetic21_validation/soundscapes.tsv"),
        "synth_val_dur": str(meta / "validation/synthetic21_validation/durations.tsv"),
        "test_folder": str(audio / "validation/validation_16k"),
        "test_folder_44k": None,
        "test_tsv": str(meta / "validation/validation.tsv"),
        "test_dur": str(meta / "validation/validation_durations.tsv"),
        "eval_folder": str(audio / "validation/validation_16k"),
        "eval_folder_44k": None,
    }


def _audio_folder(paths: dict, subset: str) -> Path:
    key = {"synth_train": "synth_folder_44k", "weak": "weak_folder_44k", "unlabeled": "unlabeled_folder",
           "synth_val": "synth_val_folder", "test": "test_folder", "strong_real": "strong_folder",
           "strong_val": "strong_val_folder"}[subset]
    return Path(paths[key])


def _sample_duration(label: str, rng: np.random.Generator, clip_len: float) -> tuple[float, float]:
    """(onset, offset) of one event; long classes mostly span the clip and are clipped at its end."""
    if label in LONG_NOMINAL:
        duration = min(LONG_NOMINAL[label] * np.exp(0.05 * rng.standard_normal()), CLIP_LEN)
    else:
        duration = float(np.clip(MEDIAN_DURATION[label] * np.exp(0.4 * rng.standard_normal()), 0.15, CLIP_LEN))
    onset = rng.uniform(0, max(CLIP_LEN - duration, 0.0))
    return round(onset, 3), round(min(onset + duration, clip_len), 3)


def sample_clip_events(rng: np.random.Generator, clip_len: float = CLIP_LEN, allow_empty: bool = True
                       ) -> list[tuple[str, float, float]]:
    """Events [(label, onset, offset)] of one clip, sorted by onset; same-class events never overlap."""
    if allow_empty and rng.random() < EMPTY_CLIP_PROBABILITY:
        return []
    labels = list(CLASS_SHARES)
    shares = np.array(list(CLASS_SHARES.values()))
    n_events = 1 + min(int(rng.poisson(EXTRA_EVENTS_MEAN)), 9)
    events: list[tuple[str, float, float]] = []
    for label in rng.choice(labels, size=n_events, p=shares / shares.sum()):
        for _ in range(4):
            onset, offset = _sample_duration(str(label), rng, clip_len)
            clashes = any(l == label and onset < o2 + 0.1 and o1 < offset + 0.1 for l, o1, o2 in events)
            if offset - onset >= 0.05 and not clashes:
                events.append((str(label), onset, offset))
                break
    return sorted(events, key=lambda e: (e[1], e[0]))


def _clip_plan(seed: int, subset: str, index: int) -> dict:
    """Name, duration and events of one clip, from its own generator."""
    set_id, _, _, allow_empty, short_share = SUBSETS[subset]
    rng = np.random.default_rng([seed, set_id, index, 0])
    duration = round(float(rng.uniform(5.0, CLIP_LEN)), 3) if rng.random() < short_share else CLIP_LEN
    if subset in ("synth_train", "synth_val"):
        name = f"{index}.wav"
    else:
        youtube_id = "".join(rng.choice(list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-"), 11))
        start = int(rng.integers(0, 60)) * 10
        name = f"Y{youtube_id}_{start:.3f}_{start + duration:.3f}.wav"
    events = sample_clip_events(rng, duration, allow_empty)
    return {"name": name, "duration": duration, "events": events, "index": index}


def sample_annotations(n_clips: int, seed: int = 0, subset: str = "synth_train") -> pd.DataFrame:
    """Strong annotations (DESED columns) of `n_clips` clips without synthesising audio (for statistics)."""
    return _strong_frame([_clip_plan(seed, subset, i) for i in range(n_clips)])


def _strong_frame(plans: list[dict]) -> pd.DataFrame:
    rows = []
    for plan in plans:
        rows += [(plan["name"], on, off, label) for label, on, off in plan["events"]] or [(plan["name"], None, None, None)]
    return pd.DataFrame(rows, columns=["filename", "onset", "offset", "event_label"])


@lru_cache(maxsize=8)
def _background_bank(seed: int, subset: str) -> tuple[np.ndarray, ...]:
    """A few 10 s backgrounds per subset; clips take a random circular shift of one (synthesis is costly)."""
    set_id, sr, _, _, _ = SUBSETS[subset]
    rng = np.random.default_rng([seed, set_id, 2 ** 31])
    return tuple(background(int(CLIP_LEN * sr), sr, rng).astype(np.float32) for _ in range(BACKGROUND_BANK_SIZE))


def _render_clip(args: tuple) -> None:
    """Synthesise one clip (background + events at random SNRs) and write it atomically."""
    seed, subset, plan, folder = args
    set_id, sr, _, _, _ = SUBSETS[subset]
    rng = np.random.default_rng([seed, set_id, plan["index"], 1])
    n = int(round(plan["duration"] * sr))
    bank = _background_bank(seed, subset)
    noise = np.roll(bank[rng.integers(len(bank))], int(rng.integers(len(bank[0]))))[:n]
    mix = noise.astype(np.float64) * rng.uniform(0.005, 0.02) * rng.choice([-1.0, 1.0])
    noise_rms = float(np.sqrt(np.mean(mix ** 2)))
    for label, onset, offset in plan["events"]:
        start, stop = int(onset * sr), min(int(offset * sr), n)
        if stop - start < 16:
            continue
        gain = noise_rms * 10 ** (rng.uniform(*SNR_DB) / 20)
        mix[start:stop] += gain * synthesize_event(label, stop - start, sr, rng)
    peak = np.max(np.abs(mix))
    if peak > 0.95:
        mix *= 0.95 / peak
    write_audio_atomic(Path(folder) / plan["name"], mix.astype(np.float32), sr)


def generate_mini_desed(out_dir, seed: int = 0, n_synth: int = 300, n_weak: int = 150, n_unlabeled: int = 300,
                        n_synth_val: int = 100, n_test: int = 100, workers: int | None = None, n_strong: int = 0,
                        n_strong_val: int | None = None) -> dict:
    """Write the mini dataset into `out_dir` (replacing a previous one) and return its `data.*` paths.

    `n_strong_val`: clips of the strong real validation split (default: `strong_val_size(n_strong)`). Every
    clip has its own generator, so the extra splits leave the other files byte-identical."""
    paths = mini_config_paths(out_dir)
    for generated in ("audio", "metadata"):
        shutil.rmtree(Path(out_dir) / generated, ignore_errors=True)
    sizes = {"synth_train": n_synth, "weak": n_weak, "unlabeled": n_unlabeled, "synth_val": n_synth_val, "test": n_test}
    if n_strong:
        sizes["strong_real"] = n_strong
    n_strong_val = strong_val_size(n_strong, n_strong_val)
    if n_strong_val:
        sizes["strong_val"] = n_strong_val
    plans = {subset: [_clip_plan(seed, subset, i) for i in range(size)] for subset, size in sizes.items()}
    jobs = []
    for subset, subset_plans in plans.items():
        folder = _audio_folder(paths, subset)
        folder.mkdir(parents=True, exist_ok=True)
        jobs += [(seed, subset, plan, str(folder)) for plan in subset_plans]
    workers = workers or min(4, os.cpu_count() or 1)
    render_all(_render_clip, jobs, workers)
    write_tsv(_strong_frame(plans["synth_train"]), paths["synth_tsv"], "%.3f")
    if n_strong:
        write_tsv(_strong_frame(plans["strong_real"]), paths["strong_tsv"], "%.3f")
    weak_rows = [(p["name"], ",".join(c for c in DESED_CLASSES if c in {e[0] for e in p["events"]}))
                 for p in plans["weak"]]
    write_tsv(pd.DataFrame(weak_rows, columns=["filename", "event_labels"]), paths["weak_tsv"], "%.3f")
    for subset, tsv_key, dur_key in (("synth_val", "synth_val_tsv", "synth_val_dur"), ("test", "test_tsv", "test_dur"),
                                     ("strong_val", "strong_val_tsv", "strong_val_dur")):
        if subset not in plans:
            continue
        write_tsv(_strong_frame(plans[subset]), paths[tsv_key], "%.3f")
        durations = pd.DataFrame([(p["name"], p["duration"]) for p in plans[subset]], columns=["filename", "duration"])
        write_tsv(durations, paths[dur_key], "%.3f")
    return paths


DEFAULT_SIZES = {name: parameter.default for name, parameter in inspect.signature(generate_mini_desed).parameters.items()
                 if name.startswith("n_") and parameter.default}
"""`generate_mini_desed`'s set sizes, the demo's (the strong real set and its validation split are absent)."""


def ensure_mini_dataset(out_dir, seed: int = 0, workers: int | None = None, **sizes) -> dict:
    """Generate the mini dataset (the demo's sizes: about 660 MB, 20 s on idle cores) unless a complete one
    with the same seed and sizes is already there; returns its config paths (see `ensure_generated`).

    Sizes not given take `generate_mini_desed`'s defaults in the recipe too, so a call that relies on them and
    one that spells them out share one dataset. The recipe records the strong real validation size whenever
    there is such a split, so that a dataset generated before that split existed is regenerated."""
    sizes = {**DEFAULT_SIZES, **sizes}
    n_strong_val = strong_val_size(sizes.get("n_strong", 0), sizes.pop("n_strong_val", None))
    if n_strong_val:
        sizes["n_strong_val"] = n_strong_val
    recipe = {"seed": seed, **{k: sizes[k] for k in sorted(sizes)}}
    root = ensure_generated(out_dir, "mini", recipe, lambda root: generate_mini_desed(root, seed, workers=workers,
                                                                                      **sizes))
    return mini_config_paths(root)


def apply_mini_config(config: dict, file_config: dict | None = None) -> dict:
    """When `data.mini` is set ({seed, out_dir, n_synth, ...}), generate the mini dataset if needed and
    return a copy of `config` whose data paths point into it; otherwise return `config` unchanged.

    The mini dataset never mixes with other data: a data path that is set (not null, and not already the
    mini dataset's) is an error naming the keys. One exception: when `data.mini` was given on the command
    line (`file_config`, the config file before overrides, does not set it), the paths the config file
    itself holds are replaced, with a warning."""
    mini = config.get("data", {}).get("mini")
    if not mini:
        return config
    options = dict(mini)
    out_dir = options.pop("out_dir", "data/mini_desed")
    seed = options.pop("seed", 0)
    data = config["data"]
    mini_paths = mini_config_paths(out_dir)
    given = {key: data[key] for key in mini_paths if data.get(key) not in (None, "") and data[key] != mini_paths[key]}
    file_data = (file_config or {}).get("data") or {}
    replaceable = {} if file_config is None or file_data.get("mini") else {
        key: value for key, value in given.items() if file_data.get(key) == value}
    conflicting = {key: value for key, value in given.items() if key not in replaceable}
    if conflicting:
        listed = ", ".join(f"data.{key}={value}" for key, value in conflicting.items())
        raise BadInput(
            f"data.mini is set, so the mini dataset would replace these data paths: {listed}. To train on "
            "your own data, set data.mini=null (and give every data path); to use the mini dataset, leave "
            "these keys null.")
    if replaceable:
        log.warning("data.mini given on the command line: the mini dataset in %s replaces the config file's "
                    "%d data paths (%s)", out_dir, len(replaceable), ", ".join(f"data.{key}" for key in replaceable))
    config = copy.deepcopy(config)
    config["data"].update(ensure_mini_dataset(out_dir, seed, **options))
    return config


def resolve_config(conf_file: str, overrides: Sequence[str] = ()) -> dict:
    """Load the config, apply overrides and, when `data.mini` is set, generate and point to the mini dataset."""
    return apply_mini_config(load_config(conf_file, overrides), file_config=load_config(conf_file))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="Generate the built-in mini DESED dataset.")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n_synth", type=int, default=300)
    parser.add_argument("--n_weak", type=int, default=150)
    parser.add_argument("--n_unlabeled", type=int, default=300)
    parser.add_argument("--n_synth_val", type=int, default=100)
    parser.add_argument("--n_test", type=int, default=100)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--n_strong", type=int, default=0, help="clips of the strong real set (0: none)")
    parser.add_argument("--n_strong_val", type=int, default=None,
                        help="clips of its validation split (default: n_strong / 8, rounded up)")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    generate_mini_desed(args.out, args.seed, args.n_synth, args.n_weak, args.n_unlabeled, args.n_synth_val,
                        args.n_test, args.workers, args.n_strong, args.n_strong_val)
    print(f"mini DESED written to {args.out} in {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
