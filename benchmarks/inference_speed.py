"""Speed and peak memory of `python -m desed_task.inference` on long files.

For each model (the full-size DCASE baseline CRNN of default.yaml and the demo CRNN of demo.yaml, random
weights: speed does not depend on them) and each file length (default 1, 5 and 60 minutes of 16 kHz noise), one
fresh process runs the CLI (default options: hop 5 s, batch 16, CPU, scores + detections written, no figure)
and reports its wall time (checkpoint loading, decoding, windows, model, post-processing and writing
included), the real-time factor (audio seconds / wall seconds), its CPU time (user + system; audio seconds
per CPU second is what a busy shared machine cannot hide), its peak resident memory and how much the resident
memory still rose after the first batches (flat memory: 0 however long the file). The load average of the
machine is recorded with every number. Prints a table and one JSON line. Usage:
  python benchmarks/inference_speed.py [--minutes 1 5 60] [--models default demo] [--threads 2]
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

REPO = Path(__file__).resolve().parents[1]
WARMUP_BATCHES = 5
"""Resident memory after this many batches is the reference of `growth_after_warmup_mb`: the largest rise of the
resident memory over it in the batches that follow (the allocator settles during the first batches; the peak it
settles at varies by about 100 MB between identical runs)."""
CONFIGS = {"default": REPO / "confs/dcase2022_task4_baseline/default.yaml",
           "demo": REPO / "confs/dcase2022_task4_baseline/demo.yaml"}


def write_noise(path: Path, minutes: float, sample_rate: int = 16000) -> None:
    """Pink-ish noise written minute by minute (the file is never held in memory)."""
    rng = np.random.default_rng(0)
    with sf.SoundFile(str(path), "w", sample_rate, 1, subtype="PCM_16") as handle:
        for _ in range(int(round(minutes))):
            handle.write((0.05 * rng.standard_normal(60 * sample_rate)).astype(np.float32))


def save_random_checkpoint(config_path: Path, path: Path) -> int:
    from desed_task.training.sed import SEDTask
    from desed_task.utils.config import load_config
    torch.manual_seed(0)
    task = SEDTask(load_config(config_path))
    torch.save({"state_dict": task.state_dict(), "hyper_parameters": dict(task.hparams)}, path)
    return sum(p.numel() for p in task.sed_student.parameters())


def worker(argv) -> None:
    """Run the CLI in this process and print its summary with the peak memory, the resident memory after each
    batch and the load averages."""
    from desed_task.inference.__main__ import main as cli
    from desed_task.inference.detect import Detector
    resident_mb = []
    forward = Detector._forward

    def traced_forward(self, batch):
        forward(self, batch)
        with open("/proc/self/statm") as handle:
            resident_mb.append(int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20)

    Detector._forward = traced_forward
    load_before = os.getloadavg()
    code = cli(argv)
    summary = json.loads((Path(argv[argv.index("--out") + 1]) / "summary.json").read_text())
    usage = resource.getrusage(resource.RUSAGE_SELF)
    warm = resident_mb[WARMUP_BATCHES - 1:]
    summary.update(exit_code=code, peak_rss_mb=usage.ru_maxrss / 1024, cpu_seconds=usage.ru_utime + usage.ru_stime,
                   batches=len(resident_mb), growth_after_warmup_mb=max(warm) - warm[0] if warm else None,
                   load_before=load_before, load_after=os.getloadavg())
    print("RESULT " + json.dumps(summary))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, nargs="+", default=[1, 5, 60])
    parser.add_argument("--models", nargs="+", choices=tuple(CONFIGS), default=["default", "demo"])
    parser.add_argument("--threads", type=int, default=2, help="torch threads (the target is for 2 cores)")
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--extra", nargs=argparse.REMAINDER, default=[], help="more CLI options, e.g. --hop 10")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        audio = {}
        for minutes in args.minutes:
            audio[minutes] = folder / f"noise_{minutes:g}min.wav"
            write_noise(audio[minutes], minutes)
        for model in args.models:
            checkpoint = folder / f"{model}.ckpt"
            parameters = save_random_checkpoint(CONFIGS[model], checkpoint)
            for minutes, path in audio.items():
                command = [sys.executable, __file__, "--worker", "--checkpoint", str(checkpoint), str(path),
                           "--out", str(folder / f"out_{model}_{minutes:g}"), "--no_progress",
                           "--batch_size", str(args.batch_size), *args.extra]
                environment = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
                completed = subprocess.run(command, capture_output=True, text=True, env=environment)
                lines = [line for line in completed.stdout.splitlines() if line.startswith("RESULT ")]
                if completed.returncode != 0 or not lines:
                    raise RuntimeError(f"{model} {minutes} min failed:\n{completed.stderr[-3000:]}")
                summary = json.loads(lines[0][len("RESULT "):])
                rows.append({"model": model, "parameters": parameters, "minutes": minutes,
                             "wall_s": summary["wall_seconds"], "real_time_factor": summary["real_time_factor"],
                             "cpu_s": summary["cpu_seconds"],
                             "audio_s_per_cpu_s": summary["audio_hours"] * 3600 / summary["cpu_seconds"],
                             "peak_rss_mb": summary["peak_rss_mb"], "batches": summary["batches"],
                             "growth_after_warmup_mb": summary["growth_after_warmup_mb"],
                             "torch_threads": summary["torch_threads"],
                             "batch_size": args.batch_size, "hop_s": summary["hop_seconds"],
                             "load_before": summary["load_before"], "load_after": summary["load_after"]})
                row = rows[-1]
                print(f"{model:<8} {parameters:>9,d} params {minutes:5g} min: {row['wall_s']:7.1f} s wall, "
                      f"{row['real_time_factor']:6.0f}x real time, {row['audio_s_per_cpu_s']:6.0f} audio s per CPU s, peak RSS {row['peak_rss_mb']:6.0f} MB, "
                      f"{row['batches']} batches, resident growth after batch {WARMUP_BATCHES}: "
                      f"{'-' if row['growth_after_warmup_mb'] is None else format(row['growth_after_warmup_mb'], '.0f')} MB, "
                      f"load {row['load_before'][0]:.1f} -> {row['load_after'][0]:.1f}", flush=True)
    print(json.dumps({"cpu_count": os.cpu_count(), "torch": torch.__version__, "extra_options": args.extra,
                      "results": rows}))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker(sys.argv[2:])
    else:
        main()
