"""HDF5 files of per-clip embeddings, one per data split, in the DCASE 2023 layout.

Layout written (readable by the official 2023/2024 readers): ``filenames`` (N,) UTF-8 strings (wav stems),
``frame_embeddings`` (N, D, T) float32 and ``global_embeddings`` (N, G) float32, chunked one clip per
chunk. Also read: the DCASE 2022 layout, where both datasets hold variable-length rows (``frame`` (N, D)
of length-T vectors, ``global`` (N,) vectors) and the row of a clip is an HDF5 attribute ``attrs[stem]``.

Writing is resumable and atomic: rows go to ``<name>.partial`` with the count of finished rows in the
``n_written`` attribute; ``finish`` renames it to the final name, so a final file is always complete.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Sequence

import h5py
import numpy as np

from desed_task.utils.errors import BadInput, MissingInput

log = logging.getLogger(__name__)

EMBEDDING_FILES = {  # data split (desed_task.data.build names) -> file name of the official recipes
    "synth_train": "synth_train.hdf5",
    "strong_train": "strong_train.hdf5",
    "weak_train": "weak_train.hdf5",
    "unlabeled_train": "unlabeled_train.hdf5",
    "synth_val": "synth_val.hdf5",
    "weak_val": "weak_val.hdf5",
    "test": "devtest.hdf5",
    "eval": "eval.hdf5",
}
KINDS = ("frame", "global")


def embedding_file(directory: str | Path, split: str) -> Path:
    if split not in EMBEDDING_FILES:
        raise BadInput(f"unknown split {split!r}, expected one of {sorted(EMBEDDING_FILES)}")
    return Path(directory) / EMBEDDING_FILES[split]


class EmbeddingWriter:
    """Resumable writer of one split's file: ``write(stems, frame (B, D, T), global (B, G))`` in order.

    ``stems`` is the full ordered list of clips to extract; ``n_done`` tells where a previous run stopped
    (0 when its partial file does not hold the same first clips, which then starts over).
    """

    def __init__(self, path: str | Path, stems: Sequence[str], frame_shape: tuple[int, int], global_dim: int):
        self.path = Path(path)
        self.partial = self.path.with_name(self.path.name + ".partial")
        self.stems = list(stems)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.file = self._open(tuple(frame_shape), int(global_dim))

    def _open(self, frame_shape, global_dim) -> h5py.File:
        if self.partial.is_file():
            try:
                file = h5py.File(self.partial, "r+")
                done = int(file.attrs["n_written"])
                stored = [s.decode() if isinstance(s, bytes) else s for s in file["filenames"][:done]]
                if (file["frame_embeddings"].shape == (len(self.stems), *frame_shape)
                        and file["global_embeddings"].shape == (len(self.stems), global_dim)
                        and stored == self.stems[:done]):
                    log.info("resuming %s after %d of %d clips", self.partial, done, len(self.stems))
                    return file
                file.close()
            except (OSError, KeyError) as error:
                log.warning("unusable partial file %s (%s): starting over", self.partial, error)
            self.partial.unlink()
        file = h5py.File(self.partial, "w")
        n = len(self.stems)
        file.create_dataset("filenames", shape=(n,), dtype=h5py.string_dtype("utf-8"))
        file.create_dataset("frame_embeddings", shape=(n, *frame_shape), dtype="float32",
                            chunks=(1, *frame_shape) if n else None)
        file.create_dataset("global_embeddings", shape=(n, global_dim), dtype="float32",
                            chunks=(1, global_dim) if n else None)
        file.attrs["n_written"] = 0
        return file

    @property
    def n_done(self) -> int:
        return int(self.file.attrs["n_written"])

    def write(self, stems: Sequence[str], frame: np.ndarray, global_: np.ndarray) -> None:
        start = self.n_done
        stop = start + len(stems)
        if list(stems) != self.stems[start:stop]:
            raise ValueError(f"{self.partial}: clips must be written in order, expected {self.stems[start:stop]}")
        self.file["filenames"][start:stop] = list(stems)
        self.file["frame_embeddings"][start:stop] = np.asarray(frame, dtype=np.float32)
        self.file["global_embeddings"][start:stop] = np.asarray(global_, dtype=np.float32)
        self.file.attrs["n_written"] = stop
        self.file.flush()

    def finish(self) -> Path:
        """Close and move the complete file to its final name (atomic rename)."""
        if self.n_done != len(self.stems):
            raise RuntimeError(f"{self.partial}: {self.n_done} of {len(self.stems)} clips written")
        del self.file.attrs["n_written"]
        self.file.close()
        os.replace(self.partial, self.path)
        return self.path

    def close(self) -> None:
        """Close without finishing (the partial file stays for a later resume)."""
        if self.file.id.valid:
            self.file.close()


class EmbeddingReader:
    """Read embeddings by clip stem from a 2023- or 2022-layout file.

    The stem index is built once (``stems``); the HDF5 handle is opened lazily in each process (data
    loader workers must not share one) and kept open.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.is_file():
            raise MissingInput(f"embedding file not found: {self.path} (run python -m desed_task.embeddings.extract)")
        with h5py.File(self.path, "r") as file:
            self.layout = "2023" if "filenames" in file else "2022"
            if self.layout == "2023":
                names = file["filenames"].asstr()[:]
                self.index = {str(name): row for row, name in enumerate(names)}
            else:
                dataset = file["frame_embeddings"] if "frame_embeddings" in file else file["global_embeddings"]
                self.index = {str(name): int(row) for name, row in dataset.attrs.items()}
        self._file: h5py.File | None = None
        self._pid: int | None = None

    @property
    def stems(self) -> set[str]:
        return set(self.index)

    def _handle(self) -> h5py.File:
        if self._file is None or self._pid != os.getpid():
            self._file = h5py.File(self.path, "r")
            self._pid = os.getpid()
        return self._file

    def read(self, stem: str, kind: str) -> np.ndarray:
        """The ``kind`` ("frame" (D, T) or "global" (G,)) embedding of clip ``stem`` as float32."""
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        row = self.index[stem]
        data = self._handle()[f"{kind}_embeddings"][row]
        if self.layout == "2022" and kind == "frame":
            data = np.stack(data)
        return np.asarray(data, dtype=np.float32)

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_file"] = state["_pid"] = None
        return state
