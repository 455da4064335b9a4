"""UCLSER speed on CPU: feature extraction, contrastive training throughput, kNN monitor.

    python benchmarks/uclser.py [--threads 2] [--encoder vgg_relu] [--batch_size 32] [--steps 3] [--out FILE]

- extraction: clips/s of ``extract_split`` (read, resample 44.1 -> 22.05 kHz, log-mel, HDF5 write) on a
  generated mini FSDnoisy18k (0.3-4 s clips);
- contrastive training: clips/s of full steps: two views with mix-back and the default augmentations
  (data loading in the main process), encoder + projection head forward/backward, NT-Xent, SGD;
- kNN monitor: seconds of ``knn_predict`` (top-200 cosine, 512-d) over 2,000 clips of 1-15 patches.
Prints the numbers and one JSON line (also written to ``--out``).
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import default_collate

from desed_task.data.fsdnoisy18k import FSD_CLASSES, FeatureStore, read_splits
from desed_task.data.mini_fsdnoisy18k import generate_mini_fsdnoisy18k
from desed_task.features.uclser_augment import PatchAugment, dataset_mean_std
from desed_task.training.uclser import ContrastiveTask, knn_predict
from desed_task.training.uclser_data import ContrastivePatchDataset, extract_split


def bench_extraction(workdir: Path) -> tuple[dict, Path]:
    generate_mini_fsdnoisy18k(workdir / "mini", seed=0, n_noisy=4, n_clean=1, n_test=1, workers=1)
    clips = read_splits(workdir / "mini")["noisy"]
    out = workdir / "noisy.hdf5"
    started = time.perf_counter()
    extract_split(clips, out, progress=False)
    seconds = time.perf_counter() - started
    return {"extraction_clips": len(clips), "extraction_clips_per_s": len(clips) / seconds}, out


def bench_training(store_path: Path, encoder: str, batch_size: int, steps: int) -> dict:
    store = FeatureStore(store_path, in_memory=True)
    mean, std = dataset_mean_std(store)
    dataset = ContrastivePatchDataset(store, mean, std, PatchAugment())
    config = {"model": {"network": encoder, "pretrained_path": None}, "learn": {"method": "Contrastive", "temp": 0.2},
              "training": {"batch_size": batch_size, "seed": 0},
              "opt": {"name": "sgd", "lr": 0.03, "momentum": 0.9, "weight_decay": 1e-4}}
    task = ContrastiveTask(config, FSD_CLASSES)
    optimizer = task.build_optimizer()
    task.train()
    generator = np.random.default_rng(0)

    def step():
        batch = default_collate([dataset[int(i)] for i in generator.integers(0, len(dataset), batch_size)])
        loss, _ = task.training_loss(task.model(batch["input"]), batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    step()  # warm-up
    started = time.perf_counter()
    for _ in range(steps):
        step()
    seconds = time.perf_counter() - started
    return {"train_encoder": encoder, "train_batch_size": batch_size, "train_steps": steps,
            "train_clips_per_s": steps * batch_size / seconds}


def bench_knn(n_clips: int = 2000, dim: int = 512, k: int = 200) -> dict:
    rng = np.random.default_rng(0)
    patches = rng.integers(1, 16, n_clips)
    clip_of_patch = torch.from_numpy(np.repeat(np.arange(n_clips), patches))
    labels = torch.from_numpy(rng.integers(0, 20, n_clips))[clip_of_patch]
    z = torch.nn.functional.normalize(torch.randn(len(clip_of_patch), dim), dim=1)
    started = time.perf_counter()
    knn_predict(z, labels, clip_of_patch, k=k, n_classes=20)
    return {"knn_clips": n_clips, "knn_patches": len(z), "knn_seconds": time.perf_counter() - started}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads (the target is 2 cores)")
    parser.add_argument("--encoder", default="vgg_relu", choices=["vgg_relu", "crnn", "res18"])
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--out", default=None, help="also write the JSON here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    results = {"threads": args.threads, "load_average_1min": os.getloadavg()[0]}
    with tempfile.TemporaryDirectory() as tmp:
        extraction, store = bench_extraction(Path(tmp))
        results.update(extraction)
        results.update(bench_training(store, args.encoder, args.batch_size, args.steps))
    results.update(bench_knn())
    results["load_average_1min_end"] = os.getloadavg()[0]
    for name, value in results.items():
        print(f"{name:>26}: {value:.3f}" if isinstance(value, float) else f"{name:>26}: {value}")
    line = json.dumps(results)
    print(line)
    if args.out:
        Path(args.out).write_text(line + "\n")


if __name__ == "__main__":
    main()
