"""A built-in mini TAU Urban Acoustic Scenes 2022 Mobile: same layout, procedural scenes, deterministic.

``python -m desed_task.data.mini_tau22 --out DIR`` writes 1 s, 44.1 kHz clips of 10 procedurally
distinct scene textures (babble and footsteps for pedestrian streets, engine rumble for traffic and
buses, rail squeal for trams and metros, birds and wind for parks, announcements and reverberant
crowds for stations and airports, ...; speech, bells and water come from ``synth_events``). Device
``a`` is the clean signal; ``b``, ``c`` and ``s1``-``s6`` colour the same segments with a fixed
per-device filter and noise floor. As in TAU22, ``s4``-``s6`` appear only in the evaluation fold and the training and
evaluation folds come from disjoint cities. ``ensemble_logits.pt`` holds the logits of a simple
teacher (softmax regression on band energies) trained on the training fold, one row per
``meta.csv`` row, so that distillation runs end to end, and ``dirs/`` a few synthetic microphone
impulse responses for the DIR augmentation.
"""
from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy.signal import butter, fftconvolve, lfilter, sosfilt, welch

from desed_task.data.audio import resample
from desed_task.data.resample import write_audio_atomic
from desed_task.data.synth_events import _band, alarm_bell_ringing, running_water, speech
from desed_task.data.tau22 import TAU22_CLASSES
from desed_task.utils.files import atomic_path, ensure_generated, write_tsv

SAMPLE_RATE = 44100
TRAIN_CITIES = ("barcelona", "helsinki", "lisbon", "london", "paris", "stockholm")
EVAL_CITIES = ("lyon", "milan", "prague", "vienna")
TRAIN_DEVICES = ("b", "c", "s1", "s2", "s3")
EVAL_DEVICES = ("a", "b", "c", "s1", "s2", "s3", "s4", "s5", "s6")
TEACHER_FILE = "ensemble_logits.pt"


def _unit(x: np.ndarray) -> np.ndarray:
    return x / (np.sqrt(np.mean(x ** 2)) + 1e-9)


def babble(n, sr, rng, voices=3):
    return _unit(sum(rng.uniform(0.3, 1.0) * speech(n, sr, rng) for _ in range(voices)))


def reverberant(x, sr, rng, rt60=(0.6, 1.4)):
    """Convolution with an exponentially decaying noise tail (a large hall)."""
    length = int(0.5 * sr)
    t = np.arange(length) / sr
    tail = rng.standard_normal(length) * np.exp(-6.9 * t / rng.uniform(*rt60))
    tail[0] = 3.0
    return _unit(fftconvolve(x, tail)[: len(x)])


def footsteps(n, sr, rng):
    out = np.zeros(n)
    period = rng.uniform(0.35, 0.6)
    for start in np.arange(rng.uniform(0, period), n / sr, period):
        begin = int(start * sr)
        length = min(int(0.06 * sr), n - begin)
        decay = np.exp(-np.arange(length) / (0.012 * sr))
        out[begin:begin + length] += _band(rng.standard_normal(length), sr, 80, 2500) * decay
    return _unit(out)


def engine(n, sr, rng, f0_range=(25.0, 45.0)):
    t = np.arange(n) / sr
    f0 = rng.uniform(*f0_range) * (1 + 0.05 * np.sin(2 * np.pi * rng.uniform(0.2, 1) * t))
    phase = np.cumsum(f0) / sr
    harmonic = sum(np.sin(2 * np.pi * k * phase + rng.uniform(0, 6.3)) / k for k in range(1, 25) if 25 * k < sr / 2)
    rumble = _band(rng.standard_normal(n), sr, None, 300, order=4)
    return _unit(_unit(harmonic) + 0.8 * _unit(rumble))


def rail_squeal(n, sr, rng):
    t = np.arange(n) / sr
    f = rng.uniform(2000, 4500) * (1 + 0.04 * np.sin(2 * np.pi * rng.uniform(0.3, 2) * t)
                                   + 0.01 * np.sin(2 * np.pi * 7 * t))
    phase = np.cumsum(f) / sr
    tone = np.sin(2 * np.pi * phase) + 0.3 * np.sin(4 * np.pi * phase)
    envelope = 0.4 + 0.6 * np.clip(np.sin(2 * np.pi * rng.uniform(0.3, 1.2) * t + rng.uniform(0, 6.3)), 0, 1)
    return _unit(tone * envelope)


def motor_whine(n, sr, rng):
    t = np.arange(n) / sr
    f = rng.uniform(500, 1100) * (1 + rng.uniform(-0.3, 0.3) * t)
    phase = np.cumsum(f) / sr
    return _unit(np.sin(2 * np.pi * phase) + 0.5 * np.sin(2 * np.pi * 3 * phase))


def birds(n, sr, rng):
    out = np.zeros(n)
    for _ in range(int(rng.integers(4, 12))):
        begin = int(rng.uniform(0, 0.9) * n)
        length = min(int(rng.uniform(0.03, 0.12) * sr), n - begin)
        t = np.arange(length) / sr
        f = rng.uniform(3000, 7000) * (1 - rng.uniform(0.1, 0.4) * t / t[-1])
        out[begin:begin + length] += np.sin(2 * np.pi * np.cumsum(f) / sr) * np.hanning(length)
    return _unit(out)


def wind(n, sr, rng):
    t = np.arange(n) / sr
    gust = 1 + 0.7 * np.sin(2 * np.pi * rng.uniform(0.2, 0.8) * t + rng.uniform(0, 6.3))
    return _unit(_band(rng.standard_normal(n), sr, None, rng.uniform(300, 700), order=2) * gust)


def announcement(n, sr, rng):
    loudspeaker = _band(speech(n, sr, rng), sr, 300, 3400, order=4)
    return reverberant(_unit(loudspeaker), sr, rng, (1.0, 2.0))


def music(n, sr, rng):
    t = np.arange(n) / sr
    root = rng.uniform(110, 220)
    chord = sum(np.sin(2 * np.pi * root * r * k * t) / k ** 1.5 for r in (1, 1.26, 1.5) for k in range(1, 6))
    return _unit(chord * (1 + 0.3 * np.sin(2 * np.pi * rng.uniform(1, 3) * t)))


def traffic(n, sr, rng):
    t = np.arange(n) / sr
    out = _band(rng.standard_normal(n), sr, None, 1500, order=2) * 0.5
    for _ in range(int(rng.integers(1, 3))):
        centre, width = rng.uniform(0, 1), rng.uniform(0.2, 0.5)
        out += _band(rng.standard_normal(n), sr, 100, 4000) * np.exp(-((t - centre) / width) ** 2) * 2
    if rng.random() < 0.4:
        horn = (t > rng.uniform(0, 0.6)) & (t < rng.uniform(0.6, 1.0))
        out += 0.8 * horn * np.sign(np.sin(2 * np.pi * rng.uniform(350, 500) * t))
    return _unit(out)


def _pink(n, rng):
    return _unit(lfilter([0.049922035, -0.095993537, 0.050612699, -0.004408786],
                         [1, -2.494956002, 2.017265875, -0.522189400], rng.standard_normal(n)))


SCENES = {
    "airport": lambda n, sr, r: [(reverberant(babble(n, sr, r, 4), sr, r), 1.0), (announcement(n, sr, r), 0.6),
                                 (engine(n, sr, r, (90, 160)), 0.4)],
    "bus": lambda n, sr, r: [(engine(n, sr, r), 1.0), (babble(n, sr, r, 2), 0.3)],
    "metro": lambda n, sr, r: [(engine(n, sr, r, (40, 70)), 0.8), (rail_squeal(n, sr, r), 0.5),
                               (motor_whine(n, sr, r), 0.4)],
    "metro_station": lambda n, sr, r: [(reverberant(babble(n, sr, r, 4), sr, r), 0.8), (announcement(n, sr, r), 0.8),
                                       (_band(rail_squeal(n, sr, r), sr, None, 3000), 0.3)],
    "park": lambda n, sr, r: [(birds(n, sr, r), 0.8), (wind(n, sr, r), 1.0)],
    "public_square": lambda n, sr, r: [(babble(n, sr, r, 2), 0.6), (footsteps(n, sr, r), 0.4),
                                       (_unit(running_water(n, sr, r)), 0.5), (traffic(n, sr, r), 0.3)],
    "shopping_mall": lambda n, sr, r: [(reverberant(babble(n, sr, r, 3), sr, r), 0.8), (music(n, sr, r), 0.6)],
    "street_pedestrian": lambda n, sr, r: [(babble(n, sr, r, 2), 0.9), (footsteps(n, sr, r), 0.8)],
    "street_traffic": lambda n, sr, r: [(traffic(n, sr, r), 1.0), (engine(n, sr, r, (30, 60)), 0.5)],
    "tram": lambda n, sr, r: [(rail_squeal(n, sr, r), 0.7), (_unit(alarm_bell_ringing(n, sr, r)), 0.4),
                              (motor_whine(n, sr, r), 0.6)],
}


def render_scene(scene: str, city: str, rng: np.random.Generator, sr: int = SAMPLE_RATE) -> np.ndarray:
    """One clean (device ``a``) 1 s clip: the scene's textures over a city-dependent pink background."""
    n = sr
    city_rng = np.random.default_rng(sum(map(ord, city)))
    mix = sum(gain * rng.uniform(0.7, 1.3) * texture for texture, gain in SCENES[scene](n, sr, rng))
    mix = _unit(mix) + city_rng.uniform(0.1, 0.4) * _pink(n, rng)
    return 0.1 * _unit(mix)


def device_colouration(device: str):
    """A fixed (filter, noise floor) pair per device; ``a`` is the reference (no colouration)."""
    if device == "a":
        return None, 0.0
    rng = np.random.default_rng(sum(map(ord, device)) * 7919)
    low = rng.uniform(80, 400)
    high = rng.uniform(5000, 14000)
    sos = butter(2, [low / (SAMPLE_RATE / 2), high / (SAMPLE_RATE / 2)], btype="band", output="sos")
    peak = butter(1, [f / (SAMPLE_RATE / 2) for f in sorted(rng.uniform(1000, 4000) * np.array([0.8, 1.25]))],
                  btype="band", output="sos")
    return (sos, peak, rng.uniform(0.5, 2.0)), rng.uniform(0.002, 0.01)


def apply_device(clean: np.ndarray, device: str, rng: np.random.Generator) -> np.ndarray:
    filters, noise_floor = device_colouration(device)
    if filters is None:
        return clean
    sos, peak, peak_gain = filters
    coloured = sosfilt(sos, clean) + peak_gain * sosfilt(peak, clean)
    coloured = np.tanh(3 * coloured) / 3  # mild saturation of a cheap microphone chain
    return coloured + noise_floor * rng.standard_normal(len(clean))


def plan_clips(seed: int, n_train_a: int, n_train_other: int, n_eval: int) -> pd.DataFrame:
    """Rows (filename, scene, city-location, device, fold, segment) of the whole set, in meta.csv order.

    As in TAU22, devices record the same segments in parallel: per scene, ``n_train_a`` training
    segments on device a, the first ``n_train_other`` of them also on b, c and s1-s3, and ``n_eval``
    evaluation segments on all nine devices.
    """
    rows = []
    rng = np.random.default_rng([seed, 0])
    for scene in TAU22_CLASSES:
        for fold, cities, count, devices in (("train", TRAIN_CITIES, n_train_a, ("a",) + TRAIN_DEVICES),
                                             ("evaluate", EVAL_CITIES, n_eval, EVAL_DEVICES)):
            for segment in range(count):
                city, location = cities[int(rng.integers(len(cities)))], int(rng.integers(3))
                recorded_on = devices if fold == "evaluate" or segment < n_train_other else ("a",)
                for device in recorded_on:
                    name = f"audio/{scene}-{city}-{location}-{segment}-0-{device}.wav"
                    rows.append((name, scene, f"{city}-{location}", device, fold, f"{scene}-{fold}-{segment}"))
    return pd.DataFrame(rows, columns=["filename", "scene_label", "identifier", "source_label", "fold", "segment"])


def band_features(clips_32k: np.ndarray) -> np.ndarray:
    """Per clip: log energies of 48 log-spaced bands (Welch spectrum) and the log std over 32 ms frames."""
    freqs, power = welch(clips_32k, fs=32000, nperseg=1024, axis=-1)
    edges = np.geomspace(40, 16000, 49)
    bands = np.stack([power[:, (freqs >= lo) & (freqs < hi)].sum(1) for lo, hi in zip(edges[:-1], edges[1:])], 1)
    frames = clips_32k[:, : 31 * 1024].reshape(len(clips_32k), 31, 1024)
    return np.concatenate([np.log(bands + 1e-10), np.log(frames.std(-1).std(-1, keepdims=True) + 1e-6)], 1)


def teacher_logits(clips_32k: np.ndarray, labels: np.ndarray, train_mask: np.ndarray, steps: int = 500) -> torch.Tensor:
    """Logits of a softmax regression on band energies, fitted on the training fold by gradient descent."""
    features = band_features(clips_32k)
    mean, std = features[train_mask].mean(0), features[train_mask].std(0) + 1e-6
    x = (features - mean) / std
    onehot = np.eye(len(TAU22_CLASSES))[labels[train_mask]]
    weights = np.zeros((x.shape[1], len(TAU22_CLASSES)))
    bias = np.zeros(len(TAU22_CLASSES))
    for _ in range(steps):
        logits = x[train_mask] @ weights + bias
        probs = np.exp(logits - logits.max(1, keepdims=True))
        probs /= probs.sum(1, keepdims=True)
        error = (probs - onehot) / len(onehot)
        weights -= 0.5 * (x[train_mask].T @ error + 1e-3 * weights)
        bias -= 0.5 * error.sum(0)
    return torch.from_numpy(x @ weights + bias).float()


def write_impulse_responses(folder: Path, seed: int, count: int = 8) -> None:
    """``count`` short synthetic microphone impulse responses (band-limited, decaying), for DIR augmentation."""
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        rng = np.random.default_rng([seed, 3, index])
        length = int(rng.uniform(0.01, 0.05) * SAMPLE_RATE)
        decay = np.exp(-np.arange(length) / (rng.uniform(0.001, 0.006) * SAMPLE_RATE))
        response = _band(rng.standard_normal(length), SAMPLE_RATE, rng.uniform(60, 300), rng.uniform(4000, 15000))
        response = response * decay
        response[0] += 1.0
        write_audio_atomic(folder / f"mini_mic_{index}.wav", (0.5 * response / np.abs(response).max()).astype(np.float32),
                           SAMPLE_RATE, subtype="FLOAT")


def generate_mini_tau22(out_dir, seed: int = 0, n_train_a: int = 20, n_train_other: int = 3, n_eval: int = 3) -> Path:
    """Write the mini TAU22 into ``out_dir`` (replacing generated parts of a previous one)."""
    root = Path(out_dir)
    for generated in ("audio", "audio_32k", "evaluation_setup", "dirs"):
        shutil.rmtree(root / generated, ignore_errors=True)
    (root / "audio").mkdir(parents=True)
    plan = plan_clips(seed, n_train_a, n_train_other, n_eval)
    clips_32k = np.zeros((len(plan), 32000), dtype=np.float32)
    clean = {}
    for row, record in plan.iterrows():
        if record["segment"] not in clean:
            segment_rng = np.random.default_rng([seed, 1, len(clean)])
            clean[record["segment"]] = render_scene(record["scene_label"], record["identifier"].split("-")[0],
                                                    segment_rng)
        rng = np.random.default_rng([seed, 2, row])
        audio = np.clip(apply_device(clean[record["segment"]], record["source_label"], rng), -1, 1).astype(np.float32)
        write_audio_atomic(root / record["filename"], audio, SAMPLE_RATE)
        clips_32k[row] = resample(audio, SAMPLE_RATE, 32000)[:32000]
    meta = plan[["filename", "scene_label", "identifier", "source_label"]]
    write_tsv(meta, root / "meta.csv")
    for fold, split in (("train", "fold1_train"), ("evaluate", "fold1_evaluate")):
        write_tsv(plan.loc[plan["fold"] == fold, ["filename", "scene_label"]],
                     root / "evaluation_setup" / f"{split}.csv")
    write_impulse_responses(root / "dirs", seed)
    labels = plan["scene_label"].map(TAU22_CLASSES.index).to_numpy()
    logits = teacher_logits(clips_32k, labels, (plan["fold"] == "train").to_numpy())
    with atomic_path(root / TEACHER_FILE) as tmp:
        torch.save(logits, tmp)
    return root


def ensure_mini_tau22(out_dir, seed: int = 0, **sizes) -> Path:
    """Generate unless a complete mini TAU22 with the same seed and sizes exists (see `ensure_generated`)."""
    recipe = {"seed": seed, **{key: sizes[key] for key in sorted(sizes)}}
    return ensure_generated(out_dir, "mini_tau22", recipe, lambda root: generate_mini_tau22(root, seed, **sizes))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="Generate the built-in mini TAU Urban Acoustic Scenes 2022 Mobile.")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n_train_a", type=int, default=20, help="training segments per scene (device a)")
    parser.add_argument("--n_train_other", type=int, default=3,
                        help="of these, segments per scene also recorded on b, c, s1-s3")
    parser.add_argument("--n_eval", type=int, default=3, help="evaluation segments per scene (on all 9 devices)")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    ensure_mini_tau22(args.out, args.seed, n_train_a=args.n_train_a, n_train_other=args.n_train_other,
                      n_eval=args.n_eval)
    print(f"mini TAU22 written to {args.out} in {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
