"""UCLSER's data pipeline above the data layer: FSDnoisy18k log-mel extraction to HDF5 (the data module's
clips and metadata through the UCLSER frontend) and the contrastive patch dataset (the data module's feature
store through the patch augmentations). The rest of the family: `desed_task/data/fsdnoisy18k.py` (metadata,
feature store, evaluation patches), `data/mini_fsdnoisy18k.py`, `features/mel.py` (`UCLSERFrontend`),
`features/uclser_augment.py`, `nnet/uclser.py`, `training/uclser.py`, `training/run_uclser.py`.
"""
from __future__ import annotations

import json
import logging
from contextlib import contextmanager
from multiprocessing import get_context
from multiprocessing.pool import Pool
from pathlib import Path
from typing import Sequence

import h5py
import numpy as np
import torch
from tqdm import tqdm

from desed_task.data.audio import read_audio
from desed_task.data.fsdnoisy18k import (FSD_CLASSES, N_MELS, PATCH_LEN, SAMPLE_RATE, SPLITS, Clip, FeatureStore,
                                         NormalisedPatches, extraction_fingerprint, hdf5_path, is_complete,
                                         preprocess_waveform, read_splits)
from desed_task.features.mel import UCLSERFrontend
from desed_task.features.uclser_augment import PatchAugment, mix_back
from desed_task.utils.files import atomic_path

log = logging.getLogger(__name__)

_FRONTEND: UCLSERFrontend | None = None


def clip_features(path: str | Path) -> np.ndarray:
    """(frames, 96) float32 log10 mel of one audio file (read at 22,050 Hz with polyphase resampling)."""
    global _FRONTEND
    if _FRONTEND is None:
        _FRONTEND = UCLSERFrontend()
    waveform = preprocess_waveform(read_audio(path, SAMPLE_RATE))
    with torch.no_grad():
        return _FRONTEND(torch.from_numpy(waveform)).numpy().astype(np.float32)


def extract_split(clips: Sequence[Clip], out_path: str | Path, workers: int = 1, progress: bool = True,
                  pool: Pool | None = None) -> bool:
    """Write the log-mel features of ``clips`` to ``out_path`` unless a complete, identical file exists.

    Layout (h5py 3): ``features`` (sum of frames, 96) float32, clip ``i`` = rows ``offsets[i]:offsets[i+1]``;
    ``labels`` int64 (index in ``FSD_CLASSES``); ``fnames`` UTF-8 strings; attrs ``complete``,
    ``fingerprint``, ``classes``. Clips are processed by ``pool`` when given, else by ``workers``
    processes. Returns True when the file was (re)built.
    """
    out_path = Path(out_path)
    fingerprint = extraction_fingerprint(clips)
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
    if all(is_complete(out[split], extraction_fingerprint(splits[split])) for split in SPLITS):
        return out
    with feature_pool(workers) as pool:
        for split in SPLITS:
            extract_split(splits[split], out[split], workers=workers, progress=progress, pool=pool)
    return out



class ContrastivePatchDataset(NormalisedPatches):
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
