"""Atomic writes, generate-once folders and the torch-file reader.

`atomic_path` yields a temporary name beside the target and renames it into place (`os.replace`) only when
the block succeeds, so any writer (torch.save, soundfile, h5py, matplotlib) becomes atomic: a reader never
sees a half-written file. `write_text`, `write_bytes`, `write_json` and `write_tsv` are its common cases.
`ensure_generated` builds a folder once: its finished marker is a JSON file written last (atomically)
holding what the folder was built from, so an interrupted or differently configured build is redone;
concurrent builders serialise on `folder_lock`. `load_torch_file` is the package's one reader of torch files.
"""
from __future__ import annotations

import fcntl
import json
import logging
import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

import torch

from desed_task.utils.errors import BadInput, MissingInput

log = logging.getLogger(__name__)


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield `.<name>.<pid>.tmp` in the folder of `path` (created) for the block to write; rename it to `path`
    when the block succeeds, delete it when it raises."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text(path: str | Path, text: str) -> Path:
    """Write `text` to `path` atomically; returns the path."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def write_bytes(path: str | Path, data: bytes) -> Path:
    """Write `data` to `path` atomically; returns the path."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_json(path: str | Path, value, **dump_kwargs) -> Path:
    """Write `value` as JSON (`json.dumps(value, **dump_kwargs)`) to `path` atomically; returns the path."""
    return write_text(path, json.dumps(value, **dump_kwargs))


def write_tsv(table, path: str | Path, float_format: str | None = None) -> Path:
    """Write a pandas table as a tab-separated file without its index, atomically; returns the path."""
    with atomic_path(path) as tmp:
        table.to_csv(tmp, sep="\t", index=False, float_format=float_format)
    return Path(path)


def read_json(path: str | Path):
    """The JSON content of `path`, or None when it is absent or unreadable (an unfinished marker)."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def load_torch_file(path: str | Path, weights_only: bool, what: str = "checkpoint", expected: type = dict):
    """``torch.load`` on the CPU (files saved on a GPU or in the legacy format included) of an ``expected`` object.

    The package's one reader of torch files. A missing file is a ``MissingInput``, an unreadable one or one
    not holding an ``expected`` a ``BadInput``, each naming the file; ``what`` names the kind of file.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingInput(f"{what} {path} not found")
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=weights_only)
    except Exception as error:  # torch raises many types for truncated or foreign files
        raise BadInput(f"{path}: not a readable PyTorch {what} ({type(error).__name__}: {error})") from None
    if not isinstance(loaded, expected):
        raise BadInput(f"{path}: a {what} must hold a {expected.__name__}, found {type(loaded).__name__}")
    return loaded


@contextmanager
def folder_lock(folder: str | Path, name: str):
    """Exclusive inter-process lock on `folder/.<name>.lock` (created) for the duration of the block."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / f".{name}.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_generated(root: str | Path, name: str, recipe: dict, generate: Callable[[Path], object]) -> Path:
    """Run `generate(root)` unless `root` already holds a complete `name` generated from the same `recipe`.

    `recipe` (seed, sizes, ...) is the finished marker `.<name>_complete.json`, written atomically after
    `generate` returns, so an interrupted generation is redone. Concurrent callers (test sessions, DDP
    ranks) serialise on `.<name>.lock`; the second finds the marker and returns at once.
    """
    root = Path(root)
    marker = root / f".{name}_complete.json"
    if read_json(marker) == recipe:
        return root
    with folder_lock(root, name):
        if read_json(marker) != recipe:
            marker.unlink(missing_ok=True)
            log.info("generating %s into %s", name, root)
            started = time.perf_counter()
            generate(root)
            log.info("%s generated in %.0f s", name, time.perf_counter() - started)
            write_json(marker, recipe)
    return root
