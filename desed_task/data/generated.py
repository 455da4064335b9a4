"""Rendering the clips of the built-in mini datasets (generated once with `desed_task.utils.files.ensure_generated`)."""
from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from typing import Callable, Sequence

def render_all(render: Callable, jobs: Sequence, workers: int) -> None:
    """`render(job)` for every job: in `workers` processes (each job is independent and deterministic, so
    the result does not depend on the count), or in this process when `workers <= 1`."""
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            list(pool.map(render, jobs, chunksize=8))
    else:
        for job in jobs:
            render(job)
