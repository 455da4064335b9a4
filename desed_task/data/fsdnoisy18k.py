"""FSDnoisy18k for UCLSER: validated metadata, the HDF5 feature store and the supervised and evaluation patch
datasets (the extraction that writes the store and the contrastive dataset: `training/uclser_data.py`).

Layout (Zenodo record 2529934)::

    ROOT/FSDnoisy18k.audio_train/*.wav, ROOT/FSDnoisy18k.audio_test/*.wav
    ROOT/FSDnoisy18k.meta/train.csv   fname,label,aso_id,manually_verified,noisy_small
    ROOT/FSDnoisy18k.meta/test.csv    fname,label,aso_id

Splits: ``noisy`` = train.csv rows with manually_verified 0 (15,813 clips), ``clean`` = 1 (1,772),
``test`` = test.csv (947). Labels are indices in ONE fixed alphabetical list of the 20 classes
(``FSD_CLASSES``); the official loader instead re-sorts the string indices lexicographically per file
('0', '1', '10', ...), a quirk not reproduced.

Bad input: a CSV with a wrong header, an unknown label or a malformed field raises a ValueError naming
the file and line; listed audio that is missing or unreadable is skipped and written to
``missing_files_<split>.tsv`` in the report directory. An HDF5 file without the completion mark or built from
other settings/clips (`is_complete`) is rebuilt by the extraction.
"""
from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import h5py
import numpy as np
import torch
from torch.utils.data import Dataset

from desed_task.data.manifest import check_audio_files

log = logging.getLogger(__name__)

FSD_CLASSES = (
    "Acoustic_guitar", "Bass_guitar", "Clapping", "Coin_(dropping)", "Crash_cymbal", "Dishes_and_pots_and_pans",
    "Engine", "Fart", "Fire", "Fireworks", "Glass", "Hi-hat", "Piano", "Rain", "Slam", "Squeak", "Tearing",
    "Walk_or_footsteps", "Wind", "Writing",
)
TRAIN_COLUMNS = ("fname", "label", "aso_id", "manually_verified", "noisy_small")
TEST_COLUMNS = ("fname", "label", "aso_id")
SPLITS = ("noisy", "clean", "test")
SAMPLE_RATE = 22050
HEAD_ROOM = 0.005
MIN_SAMPLES = SAMPLE_RATE  # clips of at most 1 s are tiled to exactly 1 s
PATCH_LEN = 101
PATCH_HOP = 50
N_MELS = 96
FORMAT_VERSION = 1
# What an extraction depends on besides the clips (recorded in the HDF5 fingerprint).
EXTRACTION_SETTINGS = {"format": FORMAT_VERSION, "sample_rate": SAMPLE_RATE, "head_room": HEAD_ROOM,
                       "min_samples": MIN_SAMPLES, "frontend": "UCLSERFrontend: n_fft 2048, win 660 periodic hamming, "
                       "hop 220, power, slaney mel 96 50-10500 Hz, log10(+1.1e-8)", "resampler": "resample_poly"}


@dataclass(frozen=True)
class Clip:
    fname: str
    label: int
    path: str


def dataset_paths(root: str | Path) -> dict[str, Path]:
    root = Path(root)
    return {"train_audio": root / "FSDnoisy18k.audio_train", "test_audio": root / "FSDnoisy18k.audio_test",
            "train_csv": root / "FSDnoisy18k.meta" / "train.csv", "test_csv": root / "FSDnoisy18k.meta" / "test.csv"}


def read_metadata_csv(path: str | Path, columns: Sequence[str]) -> list[dict]:
    """Rows of a FSDnoisy18k CSV as dicts (``label`` as a class index, ``manually_verified`` as int),
    after checking the header, the labels and the flags; errors name the file and line (1 = header)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"FSDnoisy18k metadata not found: {path}")
    class_index = {name: index for index, name in enumerate(FSD_CLASSES)}
    rows = []
    with open(path, newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None or tuple(h.strip() for h in header) != tuple(columns):
            raise ValueError(f"{path}, line 1: header {header} differs from the expected {list(columns)}")
        for line, fields in enumerate(reader, start=2):
            if not fields:
                continue
            if len(fields) != len(columns):
                raise ValueError(f"{path}, line {line}: {len(fields)} fields, expected {len(columns)}")
            row = dict(zip(columns, (f.strip() for f in fields)))
            if row["label"] not in class_index:
                raise ValueError(f"{path}, line {line}: label {row['label']!r} is not one of the 20 FSDnoisy18k "
                                 "classes")
            if not row["fname"]:
                raise ValueError(f"{path}, line {line}: empty fname")
            row["label"] = class_index[row["label"]]
            if "manually_verified" in row:
                if row["manually_verified"] not in ("0", "1"):
                    raise ValueError(f"{path}, line {line}: manually_verified must be 0 or 1, "
                                     f"got {row['manually_verified']!r}")
                row["manually_verified"] = int(row["manually_verified"])
            rows.append(row)
    return rows


def read_splits(root: str | Path, report_dir: str | Path | None = None) -> dict[str, list[Clip]]:
    """The noisy, clean and test clips whose audio is readable; the others go to the missing-files report."""
    paths = dataset_paths(root)
    train = read_metadata_csv(paths["train_csv"], TRAIN_COLUMNS)
    test = read_metadata_csv(paths["test_csv"], TEST_COLUMNS)
    listed = {"noisy": ([r for r in train if r["manually_verified"] == 0], paths["train_audio"]),
              "clean": ([r for r in train if r["manually_verified"] == 1], paths["train_audio"]),
              "test": (test, paths["test_audio"])}
    splits = {}
    for split, (rows, folder) in listed.items():
        readable = check_audio_files(folder, [r["fname"] for r in rows], split, report_dir)
        splits[split] = [Clip(r["fname"], r["label"], str(folder / r["fname"])) for r in rows if r["fname"] in readable]
        if not splits[split]:
            raise ValueError(f"FSDnoisy18k split '{split}' has no readable audio in {folder}")
    return splits


def preprocess_waveform(waveform: np.ndarray) -> np.ndarray:
    """Official waveform preparation: remove the mean, divide by (max|y| + 0.005), tile clips of at most
    1 s (22,050 samples) and cut them to exactly 1 s; longer clips are kept whole."""
    y = np.asarray(waveform, dtype=np.float64)
    if y.size == 0:
        raise ValueError("empty waveform")
    y = y - y.mean()
    y = y / (np.max(np.abs(y)) + HEAD_ROOM)
    if y.size <= MIN_SAMPLES:
        y = np.tile(y, int(np.ceil(MIN_SAMPLES / y.size)))[:MIN_SAMPLES]
    return y


def hdf5_path(hdf5_dir: str | Path, split: str) -> Path:
    return Path(hdf5_dir) / f"FSDnoisy18k_{split}.hdf5"


def extraction_fingerprint(clips: Sequence[Clip]) -> str:
    """Identity of an extraction: format, frontend settings, file names, labels and file sizes/times."""
    digest = hashlib.sha256(json.dumps(EXTRACTION_SETTINGS, sort_keys=True).encode())
    for clip in clips:
        stat = os.stat(clip.path)
        digest.update(f"{clip.fname}\t{clip.label}\t{stat.st_size}\t{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def is_complete(path: str | Path, fingerprint: str | None = None) -> bool:
    """True when ``path`` is a finished extraction (and, if given, of the same clips and settings)."""
    try:
        with h5py.File(path, "r") as store:
            done = bool(store.attrs.get("complete", False))
            return done and (fingerprint is None or store.attrs.get("fingerprint") == fingerprint)
    except (OSError, KeyError):
        return False


class FeatureStore:
    """Read access to one extracted split: ``store[i]`` -> (frames, 96) float32, ``labels``, ``fnames``.

    The file is opened lazily in each process (DataLoader workers included); ``in_memory`` reads all
    features once instead. ``subset`` restricts the store to some clip indices (e.g. a clean-set split).
    """

    def __init__(self, path: str | Path, in_memory: bool = False, subset: Sequence[int] | None = None):
        self.path = Path(path)
        if not is_complete(self.path):
            raise ValueError(f"{self.path} is not a complete UCLSER feature file: run the extraction "
                             "(recipes/uclser20/extract.py) again")
        with h5py.File(self.path, "r") as store:
            self.offsets = store["offsets"][:]
            labels = store["labels"][:]
            fnames = np.asarray([name.decode() if isinstance(name, bytes) else name for name in store["fnames"][:]])
            self._features = store["features"][:] if in_memory else None
        self.indices = np.arange(len(labels)) if subset is None else np.asarray(subset, dtype=np.int64)
        self.labels = labels[self.indices]
        self.fnames = fnames[self.indices]
        self._file = None

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> np.ndarray:
        return self.frames(index, 0, self.n_frames(index))

    def frames(self, index: int, start: int, stop: int) -> np.ndarray:
        """Frames ``start:stop`` of clip ``index`` (reads only those rows from the file)."""
        first = int(self.offsets[self.indices[index]])
        if self._features is not None:
            return self._features[first + start:first + stop]
        if self._file is None:
            self._file = h5py.File(self.path, "r")
        return self._file["features"][first + start:first + stop]

    def patch(self, index: int, start: int, patch_len: int = PATCH_LEN) -> torch.Tensor:
        """(patch_len, 96) float32 tensor from frame ``start``; a clip shorter than a patch is tiled."""
        frames = self.n_frames(index)
        if frames < patch_len:
            tiled = np.tile(self[index], (int(np.ceil(patch_len / frames)), 1))[:patch_len]
            return torch.from_numpy(np.ascontiguousarray(tiled, dtype=np.float32))
        return torch.from_numpy(np.ascontiguousarray(self.frames(index, start, start + patch_len), dtype=np.float32))

    def random_patch(self, index: int, patch_len: int = PATCH_LEN) -> torch.Tensor:
        """A random full patch: start uniform in [0, T - patch_len] (the official draw never picks the last)."""
        start = int(torch.randint(0, max(self.n_frames(index) - patch_len, 0) + 1, ()))
        return self.patch(index, start, patch_len)

    def n_frames(self, index: int) -> int:
        clip = self.indices[index]
        return int(self.offsets[clip + 1] - self.offsets[clip])

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_file"] = None
        return state


def clean_split(n_clips: int, seed: int = 271828, val_fraction: float = 0.15,
                mode: str = "correct") -> tuple[np.ndarray, np.ndarray]:
    """(train, validation) clip indices of the clean set for ``train_on_clean``.

    ``correct``: a seeded permutation, the first round(0.15 n) clips validate, the others train (disjoint).
    ``official``: the reference code's bug: train = ``perm[perm[n_val:]]`` (a random 85 % that overlaps
    the validation clips) and validation = every clean clip.
    """
    permutation = np.random.RandomState(seed).permutation(n_clips)
    n_val = int(round(n_clips * val_fraction))
    if mode == "correct":
        return np.sort(permutation[n_val:]), np.sort(permutation[:n_val])
    if mode == "official":
        return permutation[permutation[n_val:]], np.arange(n_clips)
    raise ValueError(f"clean split mode must be 'correct' or 'official', got {mode!r}")


class NormalisedPatches(Dataset):
    """Base of the patch datasets: one store, the dataset mean and std that normalise its patches."""

    def __init__(self, store: FeatureStore, mean: float, std: float, patch_len: int = PATCH_LEN):
        self.store = store
        self.mean = float(mean)
        self.std = float(std)
        self.patch_len = patch_len

    def __len__(self) -> int:
        return len(self.store)

    def normalise(self, patch: torch.Tensor) -> torch.Tensor:
        return ((patch - self.mean) / self.std).unsqueeze(0)


class SupervisedPatchDataset(NormalisedPatches):
    """Item ``i`` -> ``{"input": one random 101-frame patch of clip i (1, 101, 96), "label"}``; no
    augmentation unless ``augment`` is given (the official supervised recipes use none)."""

    def __init__(self, store: FeatureStore, mean: float, std: float, augment: Callable | None = None,
                 patch_len: int = PATCH_LEN):
        super().__init__(store, mean, std, patch_len)
        self.augment = augment

    def __getitem__(self, index: int):
        patch = self.store.random_patch(index, self.patch_len)
        if self.augment is not None:
            patch = self.augment(patch)
        return {"input": self.normalise(patch), "label": int(self.store.labels[index])}


class EvaluationPatchDataset(NormalisedPatches):
    """Every full patch of every clip at a 50-frame hop (starts 0, 50, ... while start + 101 <= T; the
    tail is dropped; a clip shorter than a patch is tiled to one patch).

    Item -> ``{"input": (1, 101, 96), "label", "clip"}``. Load it with ``clip_batches`` and
    ``collate_clip_patches`` so that every batch holds whole clips, for per-clip decisions.
    """

    def __init__(self, store: FeatureStore, mean: float, std: float, patch_len: int = PATCH_LEN,
                 patch_hop: int = PATCH_HOP):
        super().__init__(store, mean, std, patch_len)
        self.patch_hop = patch_hop
        starts = [range(0, max(store.n_frames(i) - patch_len, 0) + 1, patch_hop) for i in range(len(store))]
        self.clip_of_patch = np.concatenate([np.full(len(s), i, dtype=np.int64) for i, s in enumerate(starts)])
        self.patch_start = np.concatenate([np.asarray(s, dtype=np.int64) for s in starts])

    def __len__(self) -> int:
        return len(self.clip_of_patch)

    @property
    def n_clips(self) -> int:
        return len(self.store)

    @property
    def clip_labels(self) -> np.ndarray:
        return self.store.labels

    def __getitem__(self, index: int):
        clip = int(self.clip_of_patch[index])
        patch = self.store.patch(clip, int(self.patch_start[index]), self.patch_len)
        return {"input": self.normalise(patch), "label": int(self.store.labels[clip]), "clip": clip}


def clip_batches(dataset: EvaluationPatchDataset, max_patches: int = 256) -> list[list[int]]:
    """Batches of patch indices holding whole clips, at most ``max_patches`` patches each (a longer
    clip forms a batch of its own); for ``DataLoader(batch_sampler=...)``."""
    batches, current = [], []
    boundaries = np.flatnonzero(np.diff(dataset.clip_of_patch)) + 1
    for clip_patches in np.split(np.arange(len(dataset)), boundaries):
        if current and len(current) + len(clip_patches) > max_patches:
            batches.append(current)
            current = []
        current = current + clip_patches.tolist()
    if current:
        batches.append(current)
    return batches


def collate_clip_patches(items: Sequence[dict]) -> dict:
    """Patches of whole clips -> ``{"input": (P, 1, 101, 96), "patch_clip": (P,) batch-local clip index,
    "clip": (C,) dataset clip index, "label": (C,)}``."""
    clips = torch.tensor([item["clip"] for item in items])
    clip_ids, patch_clip = torch.unique_consecutive(clips, return_inverse=True)
    labels = torch.tensor([item["label"] for item in items])
    first = torch.zeros(len(clip_ids), dtype=torch.long).scatter_reduce(
        0, patch_clip, torch.arange(len(items)), reduce="amin", include_self=False)
    return {"input": torch.stack([item["input"] for item in items]), "patch_clip": patch_clip,
            "clip": clip_ids, "label": labels[first]}
