"""Distributed (DDP) and random-state helpers shared by the training tasks.

Gathering per-clip outputs from every rank, sending rank 0's results and buffers to the others, and
capturing / restoring the global random generators for exact resume. Every function is a no-op in a
single process, so the tasks call them unconditionally.
"""
from __future__ import annotations

import logging
import random

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

log = logging.getLogger(__name__)


def world_size() -> int:
    """Number of processes of the initialised process group (1 without one)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def gather_objects(value) -> list:
    """`value` (any picklable object) from every rank, as a list indexed by global rank."""
    if world_size() == 1:
        return [value]
    values = [None] * world_size()
    dist.all_gather_object(values, value)
    return values


def rank_shard(items: list, rank: int, n_ranks: int) -> list:
    """This rank's contiguous share of `items` for evaluation: every item on exactly one rank (no padding
    repeats, unlike `DistributedSampler`), so metrics over the gathered shares equal single-process ones."""
    bounds = np.linspace(0, len(items), n_ranks + 1).round().astype(int)
    return items[bounds[rank]:bounds[rank + 1]]


def broadcast_from_rank0(value):
    """Rank 0's `value` on every rank (metrics are computed once, on rank 0)."""
    if world_size() == 1:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def broadcast_buffers(module: nn.Module) -> None:
    """Rank 0's buffers (batch-norm statistics) on every rank."""
    if world_size() > 1:
        for buffer in module.buffers():
            dist.broadcast(buffer, src=0)


def gather_clips(items: list[dict]) -> dict[str, list]:
    """Per-batch value dicts of every rank -> {key: one entry per clip}, DDP padding removed and in file-id
    order when there is a `file_id` key, so metrics do not depend on how the clips were split among ranks."""
    merged: dict[str, list] = {}
    for item in items:
        for key, value in item.items():
            merged.setdefault(key, []).extend(list(value))
    if world_size() > 1:
        parts = gather_objects(merged)
        merged = {key: [v for part in parts for v in part.get(key, [])] for key in merged}
    if "file_id" not in merged:
        return merged
    first_index: dict[str, int] = {}
    for index, file_id in enumerate(merged["file_id"]):
        first_index.setdefault(file_id, index)
    keep = [first_index[file_id] for file_id in sorted(first_index)]
    return {key: [values[i] for i in keep] for key, values in merged.items()}


def rank_entry(states: list | None, rank: int, n_ranks: int, name: str):
    """This rank's entry of a `gather_objects` list stored in a checkpoint, or None (fresh seeds kept) when the
    checkpoint has none or was written by another number of processes (with a warning)."""
    if states is None or len(states) == 0:
        return None
    if not isinstance(states, list):  # one process's state, as single-process checkpoints stored it
        states = [states]
    if len(states) != n_ranks:
        log.warning("%s: checkpoint of %d processes resumed on %d; restarted from the seed", name, len(states), n_ranks)
        return None
    return states[rank]


def seed_worker(worker_id: int) -> None:
    """DataLoader worker init: derive numpy/random seeds from the (seeded) torch worker seed."""
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


def capture_rng_states() -> dict:
    """The global random states (torch CPU and CUDA, numpy, random) that dropout and data crops draw from."""
    kind, keys, position, has_gauss, cached_gauss = np.random.get_state()
    numpy_state = {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "position": int(position),
                   "has_gauss": int(has_gauss), "cached_gauss": float(cached_gauss)}  # loadable with weights_only
    states = {"torch": torch.get_rng_state(), "numpy": numpy_state, "python": random.getstate()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_rng_states(states: dict) -> None:
    """Inverse of `capture_rng_states` (the CUDA states only where CUDA is available)."""
    torch.set_rng_state(states["torch"])
    numpy_state = states["numpy"]
    np.random.set_state((numpy_state["kind"], numpy_state["keys"].numpy().astype(np.uint32), numpy_state["position"],
                         numpy_state["has_gauss"], numpy_state["cached_gauss"]))
    random.setstate(states["python"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
