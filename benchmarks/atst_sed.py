"""ATST-SED speed and memory: the full-size stage-2 training step, with and without activation checkpointing of
the ATST blocks, and any-length inference of the full model. Prints a table and JSON.

- `step`: one stage-2 training step (both frontends, mixup / ICT / frequency warping as drawn, student forward
  and backward, teacher forward, Adam step, EMA) on random 10 s clips, at `--batch` ([strong real, synthetic,
  weak, unlabeled] sizes): seconds per step; `activation_mib`, the tensors autograd keeps for the backward
  pass during the student forward (counted once per storage by a saved-tensor hook: the activation memory
  that checkpointing removes); on CUDA also the peak allocated memory.
- `inference`: real-time factor (audio seconds per second of compute) of the full model (both frontends,
  teacher, eval mode) on one long clip (ATST chunked past 10 s), with `--threads` CPU threads.

    python benchmarks/atst_sed.py --threads 2 --out atst_bench.json
    python benchmarks/atst_sed.py --device cuda --batch 24 24 48 48 --precision bf16-mixed --no_inference
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from contextlib import nullcontext
from pathlib import Path

import torch

from desed_task.training.atst_sed import ATSTSEDStage2
from desed_task.utils.config import load_config

REPO = Path(__file__).resolve().parents[1]
AUTOCAST_DTYPES = {"16-mixed": torch.float16, "bf16-mixed": torch.bfloat16}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--conf_file", default=str(REPO / "confs/atst_sed/stage2.yaml"))
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--precision", choices=("32", "16-mixed", "bf16-mixed"), default="32")
    parser.add_argument("--batch", type=int, nargs=4, default=[1, 1, 2, 2], metavar="N")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per setting (after one warm-up step)")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (torch.set_num_threads)")
    parser.add_argument("--inference_seconds", type=float, default=60.0, help="length of the inference clip")
    parser.add_argument("--no_inference", action="store_true")
    parser.add_argument("--out", default=None, help="also write the results as JSON here")
    return parser.parse_args(argv)


def build_task(config: dict, checkpointing: bool, device: str) -> ATSTSEDStage2:
    config = {**config, "net": {**config["net"], "atst_checkpointing": checkpointing}}
    torch.manual_seed(0)
    return ATSTSEDStage2(config).to(device)


class SavedTensorMeter:
    """Bytes of the distinct storages autograd saves for backward while active."""

    def __init__(self):
        self.storages: dict[int, int] = {}

    def pack(self, tensor: torch.Tensor):
        storage = tensor.untyped_storage()
        self.storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    def hooks(self):
        return torch.autograd.graph.saved_tensors_hooks(self.pack, lambda tensor: tensor)

    @property
    def mib(self) -> float:
        return sum(self.storages.values()) / 2**20


def training_step(task: ATSTSEDStage2, optimizer, batch, autocast, meter: SavedTensorMeter | None = None) -> None:
    train_batch = task.prepare_train_batch(batch)
    with autocast, (meter.hooks() if meter is not None else nullcontext()):
        student = task.student_forward(train_batch)
    with torch.no_grad(), autocast:
        teacher = task.teacher_forward(train_batch)
    losses = task.training_losses(train_batch, tuple(t.float() for t in student), tuple(t.float() for t in teacher))
    optimizer.zero_grad(set_to_none=True)
    losses["loss"].backward()
    optimizer.step()
    task.update_teacher(1)


def measure_step(config: dict, args, checkpointing: bool) -> dict:
    device = args.device
    task = build_task(config, checkpointing, device)
    task.train_batch_sizes = list(args.batch)
    task.rampup_length = 1
    optimizer = torch.optim.Adam(task.trainable_parameters())
    clips = sum(args.batch)
    frames = task.encoder.n_frames
    generator = torch.Generator().manual_seed(0)
    audio = (torch.randn(clips, 160000, generator=generator) * 0.1).to(device)
    labels = (torch.rand(clips, 10, frames, generator=generator) > 0.8).float().to(device)
    labels[sum(args.batch[:3]):] = 0
    batch = (audio, labels, None, None)
    autocast = (torch.autocast(device, dtype=AUTOCAST_DTYPES[args.precision]) if args.precision in AUTOCAST_DTYPES
                else nullcontext())
    meter = SavedTensorMeter()
    training_step(task, optimizer, batch, autocast, meter)  # warm-up (Adam state allocated), activations counted
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(args.steps):
        started = time.perf_counter()
        training_step(task, optimizer, batch, autocast)
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - started)
    result = {"checkpointing": checkpointing, "seconds_per_step": statistics.median(times),
              "clips_per_second": clips / statistics.median(times), "activation_mib": round(meter.mib, 1)}
    if device == "cuda":
        result["peak_allocated_mib"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return result


@torch.no_grad()
def measure_inference(config: dict, args) -> dict:
    task = build_task(config, False, args.device).eval()
    audio = (torch.randn(1, int(args.inference_seconds * 16000), generator=torch.Generator().manual_seed(1)) * 0.1)
    audio = audio.to(args.device)
    task.detect(task.inference_inputs(audio[:, :16000]), task.sed_teacher)  # warm-up
    started = time.perf_counter()
    strong, _ = task.detect(task.inference_inputs(audio), task.sed_teacher)
    elapsed = time.perf_counter() - started
    return {"clip_seconds": args.inference_seconds, "seconds": elapsed,
            "real_time_factor": args.inference_seconds / elapsed, "output_frames": strong.shape[-1]}


def main(argv=None) -> dict:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    config = load_config(args.conf_file)
    results = {"device": args.device, "precision": args.precision, "batch": args.batch, "threads": args.threads,
               "platform": platform.processor() or platform.machine(), "torch": torch.__version__}
    if args.device == "cuda":
        results["gpu"] = torch.cuda.get_device_name()
    plain, checkpointed = (measure_step(config, args, flag) for flag in (False, True))
    results["step"] = [plain, checkpointed]
    results["activation_memory_reduction"] = plain["activation_mib"] / checkpointed["activation_mib"]
    results["checkpointing_time_overhead"] = checkpointed["seconds_per_step"] / plain["seconds_per_step"] - 1
    if not args.no_inference:
        results["inference"] = measure_inference(config, args)
    print(f"stage-2 step, batch {args.batch}, {args.device}, precision {args.precision}, {args.threads} threads")
    for row in results["step"]:
        extra = f", peak {row['peak_allocated_mib']} MiB" if "peak_allocated_mib" in row else ""
        print(f"  checkpointing {str(row['checkpointing']):5}: {row['seconds_per_step']:.2f} s/step, "
              f"activations {row['activation_mib']:.0f} MiB{extra}")
    print(f"  activation memory / {results['activation_memory_reduction']:.1f} for "
          f"{100 * results['checkpointing_time_overhead']:+.0f} % step time")
    if "inference" in results:
        inference = results["inference"]
        print(f"inference: {inference['clip_seconds']:.0f} s clip in {inference['seconds']:.2f} s, "
              f"{inference['real_time_factor']:.1f}x real time")
    print(json.dumps(results, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
