"""FSDnoisy18k for UCLSER: validated metadata, log-mel extraction to HDF5, and patch datasets.

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
``missing_files_<split>.tsv`` in the report directory. Extraction writes each HDF5 file under a
temporary name, marks it complete and renames it into place; a file without the completion mark or
built from other settings/clips is rebuilt.
"""
from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing import get_context
from multiprocessing.pool import Pool
from pathlib import Path
from typing import Sequence

import h5py
import numpy as np
import torch
from torch.utils.data import Dataset
from tqdm import tqdm

from desed_task.data.audio import read_audio
from desed_task.data.manifest import check_audio_files
from desed_task.features.mel import UCLSERFrontend
from desed_task.features.uclser_augment import PatchAugment, mix_back
from desed_task.utils.files import atomic_path

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


_FRONTEND: UCLSERFrontend | None = None


def clip_features(path: str | Path) -> np.ndarray:
    """(frames, 96) float32 log10 mel of one audio file (read at 22,050 Hz with polyphase resampling)."""
    global _FRONTEND
    if _FRONTEND is None:
        _FRONTEND = UCLSERFrontend()
    waveform = preprocess_waveform(read_audio(path, SAMPLE_RATE))
    with torch.no_grad():
        return _FRONTEND(torch.from_numpy(waveform)).numpy().astype(np.float32)


def hdf5_path(hdf5_dir: str | Path, split: str) -> Path:
    return Path(hdf5_dir) / f"FSDnoisy18k_{split}.hdf5"


def _fingerprint(clips: Sequence[Clip]) -> str:
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


def extract_split(clips: Sequence[Clip], out_path: str | Path, workers: int = 1, progress: bool = True,
                  pool: Pool | None = None) -> bool:
    """Write the log-mel features of ``clips`` to ``out_path`` unless a complete, identical file exists.

    Layout (h5py 3): ``features`` (sum of frames, 96) float32, clip ``i`` = rows ``offsets[i]:offsets[i+1]``;
    ``labels`` int64 (index in ``FSD_CLASSES``); ``fnames`` UTF-8 strings; attrs ``complete``,
    ``fingerprint``, ``classes``. Clips are processed by ``pool`` when given, else by ``workers``
    processes. Returns True when the file was (re)built.
    """
    out_path = Path(out_path)
    fingerprint = _fingerprint(clips)
    if is_complete(out_path, fingerprint):
        return False
    if out_path.exists():
        log.warning("%s is incomplete or stale: rebuilding it", out_path)
    for leftover in out_path.parent.glob(f".{out_path.name}.*.tmp"):
        leftover.unlink()
    paths = [clip.path for clip in clips]
    with atomic_path(out_path) as tmp:
        with h5py.File(tmp, "w") as store, feature_pool(workers, pool) as active_pool:
            features = store.create_dataset("features", shape=(0, N_MELS), maxshape=(None, N_MELS), dtype="f4",
                                            chunks=(1024, N_MELS))
            offsets = [0]
            mels = active_pool.imap(clip_features, paths, chunksize=4) if active_pool else _single_thread(paths)
            for mel in tqdm(mels, total=len(paths), desc=f"log-mel {out_path.name}", unit="clip",
                            disable=not progress):
                features.resize(offsets[-1] + len(mel), axis=0)
                features[offsets[-1]:] = mel
                offsets.append(offsets[-1] + len(mel))
            store.create_dataset("offsets", data=np.asarray(offsets, dtype=np.int64))
            store.create_dataset("labels", data=np.asarray([c.label for c in clips], dtype=np.int64))
            store.create_dataset("fnames", data=[c.fname for c in clips], dtype=h5py.string_dtype())
            store.attrs["classes"] = json.dumps(FSD_CLASSES)
            store.attrs["fingerprint"] = fingerprint
            store.attrs["complete"] = True
    return True


def _single_thread(paths: Sequence[str]):
    """Features of each path in this process with one torch thread (per-clip ops are too small to share)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield from map(clip_features, paths)
    finally:
        torch.set_num_threads(threads)


@contextmanager
def feature_pool(workers: int, pool: Pool | None = None):
    """``pool`` itself, or a new pool of ``workers`` spawned single-thread processes (None for 1 worker)."""
    if pool is not None or workers <= 1:
        yield pool
        return
    with get_context("spawn").Pool(workers, initializer=torch.set_num_threads, initargs=(1,)) as new_pool:
        yield new_pool


def extract_fsdnoisy18k(root: str | Path, hdf5_dir: str | Path, report_dir: str | Path | None = None,
                        workers: int = 1, progress: bool = True) -> dict[str, Path]:
    """Extract every split of the dataset at ``root`` into ``hdf5_dir`` (one process pool for all splits,
    started only if a split needs work); returns split -> HDF5 path."""
    splits = read_splits(root, report_dir)
    out = {split: hdf5_path(hdf5_dir, split) for split in SPLITS}
    if all(is_complete(out[split], _fingerprint(splits[split])) for split in SPLITS):
        return out
    with feature_pool(workers) as pool:
        for split in SPLITS:
            extract_split(splits[split], out[split], workers=workers, progress=progress, pool=pool)
    return out


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


class _NormalisedPatches(Dataset):
    def __init__(self, store: FeatureStore, mean: float, std: float, patch_len: int = PATCH_LEN):
        self.store = store
        self.mean = float(mean)
        self.std = float(std)
        self.patch_len = patch_len

    def __len__(self) -> int:
        return len(self.store)

    def normalise(self, patch: torch.Tensor) -> torch.Tensor:
        return ((patch - self.mean) / self.std).unsqueeze(0)


class ContrastivePatchDataset(_NormalisedPatches):
    """Item ``i`` -> ``{"input": (2, 1, 101, 96), "label", "index"}``: two random patches of clip ``i``
    (they may overlap), each mixed with a random patch of a different random clip ("mix-back", weight
    ``U(0, mix_back_alpha)`` shared by both views), augmented independently, then normalised. The label
    is carried for monitoring only.

    Randomness comes from torch's global generator (seeded per DataLoader worker and epoch).
    """

    def __init__(self, store: FeatureStore, mean: float, std: float, augment: PatchAugment | None = None,
                 mix_back_alpha: float = 0.05, patch_len: int = PATCH_LEN):
        super().__init__(store, mean, std, patch_len)
        if len(store) < 3 and mix_back_alpha > 0:
            raise ValueError("mix-back needs at least 3 clips")
        self.augment = augment or PatchAugment()
        self.mix_back_alpha = mix_back_alpha

    def _other_clips(self, index: int) -> list[int]:
        """Two distinct clip indices different from ``index``."""
        others = torch.randperm(len(self.store) - 1)[:2]
        return [int(o) + (int(o) >= index) for o in others]

    def __getitem__(self, index: int):
        views = [self.store.random_patch(index, self.patch_len) for _ in range(2)]
        if self.mix_back_alpha > 0:
            weight = self.mix_back_alpha * float(torch.rand(()))
            backgrounds = [self.store.random_patch(other, self.patch_len) for other in self._other_clips(index)]
            views = [mix_back(view, back, weight) for view, back in zip(views, backgrounds)]
        views = torch.stack([self.normalise(self.augment(view)) for view in views])
        return {"input": views, "label": int(self.store.labels[index]), "index": index}


class SupervisedPatchDataset(_NormalisedPatches):
    """Item ``i`` -> ``{"input": one random 101-frame patch of clip i (1, 101, 96), "label"}``; no
    augmentation unless ``augment`` is given (the official supervised recipes use none)."""

    def __init__(self, store: FeatureStore, mean: float, std: float, augment: PatchAugment | None = None,
                 patch_len: int = PATCH_LEN):
        super().__init__(store, mean, std, patch_len)
        self.augment = augment

    def __getitem__(self, index: int):
        patch = self.store.random_patch(index, self.patch_len)
        if self.augment is not None:
            patch = self.augment(patch)
        return {"input": self.normalise(patch), "label": int(self.store.labels[index])}


class EvaluationPatchDataset(_NormalisedPatches):
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
