"""CP-Mobile speed on CPU: training throughput through the whole pipeline, fp32 vs int8 inference latency.

Training: waveform batch -> device impulse responses -> roll -> CP-JKU log-mel (training mode) ->
freq-MixStyle -> CP-Mobile forward + KD loss + backward + Adam step, in clips per second.
Inference: one 1 s clip (batch 1) through the model, fp32 (eval) and int8 (QAT-prepared, converted),
median latency per clip and the fp32 / int8 ratio; the frontend's latency is reported separately.
Prints a JSON object (with the load average it was measured under).

python benchmarks/cp_mobile.py [--threads 2] [--batch_size 32] [--steps 5] [--dirs DIR]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from desed_task.features import CPJKUFrontend
from desed_task.data.tau22 import load_impulse_responses
from desed_task.features.scene_augment import DeviceImpulseResponses, freq_mixstyle, roll_waveform
from desed_task.nnet import CPMobile
from desed_task.nnet.quantization import convert_to_int8, prepare_qat_model
from desed_task.training.cp_mobile import distillation_loss

DEFAULT_DIRS = Path(__file__).resolve().parents[2] / "shared" / "anchors" / "cpjku_dcase23" / "dirs"


def impulse_responses(folder: Path) -> DeviceImpulseResponses:
    if folder.is_dir():
        return DeviceImpulseResponses(*load_impulse_responses(folder), prob=0.6)
    rng = np.random.default_rng(0)  # 66 synthetic IRs of the real ones' length (~0.45 s) when absent
    return DeviceImpulseResponses([rng.standard_normal(14400).astype(np.float32) * 0.01 for _ in range(66)], prob=0.6)


def training_throughput(batch_size: int, steps: int, dirs: Path) -> float:
    frontend, model, irs = CPJKUFrontend().train(), CPMobile().train(), impulse_responses(dirs)
    optimizer = torch.optim.Adam(model.parameters(), lr=9e-4, weight_decay=1e-4)
    audio = 0.1 * torch.randn(batch_size, 32000)
    device_a = torch.rand(batch_size) < 0.7
    labels, teacher = torch.randint(10, (batch_size,)), torch.randn(batch_size, 10)

    def step():
        x = roll_waveform(irs(audio, device_a), 4000)
        features = freq_mixstyle(frontend(x), prob=0.4)
        logits = model(features)
        loss = 0.02 * torch.nn.functional.cross_entropy(logits, labels) + 0.98 * distillation_loss(logits, teacher, 2.0)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    step()  # warm-up
    started = time.perf_counter()
    for _ in range(steps):
        step()
    return batch_size * steps / (time.perf_counter() - started)


def median_latency(function, x: torch.Tensor, repeats: int) -> float:
    with torch.no_grad():
        for _ in range(3):
            function(x)
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            function(x)
            times.append(time.perf_counter() - started)
    return statistics.median(times)


def inference_latency(repeats: int) -> dict:
    frontend = CPJKUFrontend().eval()
    clip = 0.1 * torch.randn(1, 32000)
    features = frontend(clip)
    model = CPMobile().eval()
    qat = prepare_qat_model(CPMobile().eval())
    with torch.no_grad():
        for _ in range(3):
            qat(frontend(0.1 * torch.randn(8, 32000)))
    int8 = convert_to_int8(qat)
    fp32_s, int8_s = median_latency(model, features, repeats), median_latency(int8, features, repeats)
    return {"fp32_latency_ms": 1e3 * fp32_s, "int8_latency_ms": 1e3 * int8_s, "fp32_over_int8": fp32_s / int8_s,
            "frontend_latency_ms": 1e3 * median_latency(frontend, clip, repeats)}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--dirs", type=Path, default=DEFAULT_DIRS, help="device IR folder (synthetic IRs if absent)")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    results = {"threads": args.threads, "batch_size": args.batch_size, "steps": args.steps,
               "real_irs": args.dirs.is_dir(), "load_average_before": os.getloadavg()[0],
               "train_clips_per_s": training_throughput(args.batch_size, args.steps, args.dirs),
               **inference_latency(args.repeats), "load_average_after": os.getloadavg()[0]}
    print(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
