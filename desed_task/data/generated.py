"""Generate-once folders (the built-in mini datasets): a completion marker written last, under a lock."""
from __future__ import annotations

import fcntl
import json
import logging
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Callable, Sequence

log = logging.getLogger(__name__)


def ensure_generated(root: str | Path, name: str, recipe: dict, generate: Callable[[Path], object]) -> Path:
    """Run `generate(root)` unless `root` already holds a complete `name` generated from the same `recipe`.

    `recipe` (seed, sizes, ...) is stored in the marker `.<name>_complete.json`, written atomically after
    `generate` returns, so an interrupted generation is redone. Concurrent callers (test sessions, DDP
    ranks) serialise on `.<name>.lock`; the second finds the marker and returns at once.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    marker = root / f".{name}_complete.json"

    def complete() -> bool:
        try:
            return json.loads(marker.read_text()) == recipe
        except (OSError, ValueError):
            return False

    if complete():
        return root
    with open(root / f".{name}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not complete():
            marker.unlink(missing_ok=True)
            log.info("generating %s into %s", name, root)
            started = time.perf_counter()
            generate(root)
            log.info("%s generated in %.0f s", name, time.perf_counter() - started)
            tmp = root / f".{marker.name}.{os.getpid()}.tmp"
            tmp.write_text(json.dumps(recipe))
            os.replace(tmp, marker)
    return root


def render_all(render: Callable, jobs: Sequence, workers: int) -> None:
    """`render(job)` for every job: in `workers` processes (each job is independent and deterministic, so
    the result does not depend on the count), or in this process when `workers <= 1`."""
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            list(pool.map(render, jobs, chunksize=8))
    else:
        for job in jobs:
            render(job)
