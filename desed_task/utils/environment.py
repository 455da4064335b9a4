"""What a run's figures may depend on besides config and seed: threads, processes, library versions, code."""
from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import torch
from desed_task.utils.files import write_text

PACKAGES = ("torch", "pytorch-lightning", "numpy", "scipy", "pandas", "soundfile", "sed_scores_eval", "psds_eval",
            "sed_eval", "codecarbon", "desed_task")
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _git_commit(folder: Path) -> str | None:
    """`git describe --always --dirty` of the code's checkout, or None outside a git checkout."""
    try:
        completed = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=folder, capture_output=True,
                                   text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    if completed.returncode != 0:
        return None
    return completed.stdout.strip() or None


def describe_environment(world_size: int = 1, accelerator: str | None = None) -> dict:
    """Threads, processes, hardware, Python and library versions and the code's git commit of this process."""
    return {
        "torch_num_threads": torch.get_num_threads(),
        "torch_num_interop_threads": torch.get_num_interop_threads(),
        "thread_variables": {name: os.environ.get(name) for name in THREAD_VARIABLES},
        "cpu_count": os.cpu_count(),
        "world_size": world_size,
        "accelerator": accelerator,
        "cuda_devices": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())],
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": {package: _version(package) for package in PACKAGES},
        "git_commit": _git_commit(Path(__file__).resolve().parent),
    }


def write_environment(path: str | Path, **kwargs) -> dict:
    """Write `describe_environment(**kwargs)` as JSON to `path` (atomically); returns it."""
    environment = describe_environment(**kwargs)
    write_text(path, json.dumps(environment, indent=2) + "\n")
    return environment
