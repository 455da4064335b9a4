"""Training throughput of the mean-teacher SED core, in clips per second.

Two numbers on the built-in mini DESED (generated on first use):
- `step`: one training step on batches already in memory: log-mel on the device, student forward and
  backward, teacher forward, optimiser step and EMA update (what the model costs);
- `epoch`: one whole Lightning training epoch (data loading, resampled-audio reads, logging included).
The allocator is set as the training entry points set it (`keep_freed_memory`); `--default_allocator` leaves
glibc's defaults, for an A/B of that setting.

    python benchmarks/train_throughput.py --device cpu --precision 32 --out bench.json
    python benchmarks/train_throughput.py --device cuda --precision bf16-mixed --set training.num_workers=8
"""
from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import pytorch_lightning as pl
import torch

from desed_task.data.build import build_sed_datasets
from desed_task.data.mini import apply_mini_config
from desed_task.data.sampler import MultiSetBatchSampler
from desed_task.training.sed import SEDTask, build_encoder
from desed_task.utils.allocator import keep_freed_memory
from desed_task.utils.config import apply_overrides, load_config
from desed_task.utils.seed import seed_everything

REPO = Path(__file__).resolve().parents[1]
AUTOCAST_DTYPES = {"16-mixed": torch.float16, "bf16-mixed": torch.bfloat16}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--conf_file", default=str(REPO / "confs/dcase2022_task4_baseline/default.yaml"),
                        help="model and training config (default: the official baseline)")
    parser.add_argument("--mini_dir", default=str(REPO / "data/mini_desed"), help="mini DESED folder (data.mini)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--precision", choices=("32", "16-mixed", "bf16-mixed"), default="32")
    parser.add_argument("--steps", type=int, default=5, help="timed training steps (after --warmup_steps)")
    parser.add_argument("--warmup_steps", type=int, default=1)
    parser.add_argument("--no_epoch", action="store_true", help="skip the whole-epoch measurement")
    parser.add_argument("--set", dest="overrides", nargs="+", action="extend", default=[], metavar="KEY=VALUE")
    parser.add_argument("--default_allocator", action="store_true",
                        help="leave glibc's allocator as it is (the training entry points call keep_freed_memory)")
    parser.add_argument("--out", default=None, help="also write the results as JSON here")
    return parser.parse_args(argv)


def benchmark_config(args) -> dict:
    """The config on the mini DESED, whose paths replace the config file's data paths (as `data.mini` given on the
    command line does)."""
    config = load_config(args.conf_file)
    config["data"]["mini"] = {"out_dir": args.mini_dir, "seed": 0}
    config["training"]["enable_progress_bar"] = False
    return apply_mini_config(apply_overrides(config, args.overrides), file_config=load_config(args.conf_file))


def synchronize(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def time_steps(task: SEDTask, batches: list, args) -> float:
    """Seconds per training step, averaged over `args.steps` steps."""
    optimizer = torch.optim.Adam(task.trainable_parameters(), lr=task.config["opt"]["lr"])
    dtype = AUTOCAST_DTYPES.get(args.precision)
    grad_scaler = torch.amp.GradScaler(args.device, enabled=args.precision == "16-mixed")
    task.rampup_length = 1
    task.train()

    def step(batch, step_index):
        with torch.autocast(args.device, dtype=dtype, enabled=dtype is not None):
            train_batch = task.prepare_train_batch(batch)
            student = task.detect(train_batch.features, task.sed_student)
            with torch.no_grad():
                teacher = task.detect(train_batch.features, task.sed_teacher)
        losses = task.training_losses(train_batch, tuple(o.float() for o in student), tuple(o.float() for o in teacher))
        optimizer.zero_grad(set_to_none=True)
        grad_scaler.scale(losses["loss"]).backward()
        grad_scaler.step(optimizer)
        grad_scaler.update()
        task.update_teacher(step_index)

    for index in range(args.warmup_steps):
        step(batches[index % len(batches)], index + 1)
    synchronize(args.device)
    started = time.perf_counter()
    for index in range(args.steps):
        step(batches[index % len(batches)], args.warmup_steps + index + 1)
    synchronize(args.device)
    return (time.perf_counter() - started) / args.steps


def time_epoch(config: dict, datasets, encoder, args) -> tuple[float, int]:
    """(seconds, clips) of one Lightning training epoch without validation."""
    task = SEDTask(config, encoder, train_data=datasets.train, train_batch_sizes=datasets.train_batch_sizes)
    trainer = pl.Trainer(accelerator="gpu" if args.device == "cuda" else "cpu", devices=1, precision=args.precision,
                         max_epochs=1, limit_val_batches=0, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                         use_distributed_sampler=False)
    started = time.perf_counter()
    trainer.fit(task)
    synchronize(args.device)
    seconds = time.perf_counter() - started
    return seconds, trainer.global_step * sum(datasets.train_batch_sizes)


def main(argv=None) -> dict:
    args = parse_args(argv)
    kept_freed_memory = False if args.default_allocator else keep_freed_memory()
    config = benchmark_config(args)
    seed_everything(int(config["training"]["seed"]))
    encoder = build_encoder(config)
    datasets = build_sed_datasets(config, encoder)
    task = SEDTask(config, encoder, train_data=datasets.train, train_batch_sizes=datasets.train_batch_sizes)
    sampler = MultiSetBatchSampler([len(d) for d in datasets.train.datasets], datasets.train_batch_sizes, seed=0)
    loader = torch.utils.data.DataLoader(datasets.train, batch_sampler=sampler, num_workers=0)
    n_batches = min(len(sampler), args.steps + args.warmup_steps)
    batches = []
    for index, batch in enumerate(loader):
        if index == n_batches:
            break
        audio, labels, valid, ids = batch
        batches.append((audio.to(args.device), labels.to(args.device), valid.to(args.device), ids))
    task.to(args.device)
    batch_size = sum(datasets.train_batch_sizes)
    seconds_per_step = time_steps(task, batches, args)
    results = {
        "device": args.device,
        "device_name": torch.cuda.get_device_name() if args.device == "cuda" else platform.processor() or "cpu",
        "torch_threads": torch.get_num_threads(),
        "precision": args.precision,
        "keep_freed_memory": kept_freed_memory,
        "conf_file": str(args.conf_file),
        "batch_size": batch_size,
        "parameters": sum(p.numel() for p in task.sed_student.parameters()),
        "step_seconds": seconds_per_step,
        "step_clips_per_second": batch_size / seconds_per_step,
    }
    if not args.no_epoch:
        seconds, clips = time_epoch(config, datasets, encoder, args)
        results.update({"epoch_seconds": seconds, "epoch_clips": clips, "epoch_clips_per_second": clips / seconds})
    print(json.dumps(results, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
