"""A DESED clip set whose items carry the clip's pretrained-model embedding, read from the split's HDF5 file."""
from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd
import torch
from torch.utils.data import Dataset

from desed_task.embeddings.store import EmbeddingReader
from desed_task.utils.errors import BadInput

log = logging.getLogger(__name__)


class EmbeddingClipSet(Dataset):
    """Items ``(*clip_set[i], embedding)`` with ``embedding`` the ``kind`` ("frame" / "global") embedding.

    Clips absent from the embedding file are skipped when the set is built, logged and listed in
    ``<report_dir>/missing_embeddings_<split>.tsv`` (columns filename, path, reason, like the missing
    audio reports), so a run never meets a missing embedding mid-epoch.
    """

    def __init__(self, clip_set: Dataset, reader: EmbeddingReader, kind: str, split: str, report_dir=None):
        self.clip_set, self.reader, self.kind, self.split = clip_set, reader, kind, split
        names = list(clip_set.filenames)
        self.indices = [i for i, name in enumerate(names) if Path(name).stem in reader.index]
        skipped = [(name, str(reader.path), "no embedding in the file")
                   for name in names if Path(name).stem not in reader.index]
        report = Path(report_dir) / f"missing_embeddings_{split}.tsv" if report_dir is not None else None
        if skipped:
            log.warning("split '%s': skipping %d clip(s) without embedding in %s, e.g. %s%s", split, len(skipped),
                        reader.path, skipped[0][0], f"; full list in {report}" if report else "")
            if report is not None:
                report.parent.mkdir(parents=True, exist_ok=True)
                pd.DataFrame(skipped, columns=["filename", "path", "reason"]).to_csv(report, sep="\t", index=False)
        elif report is not None and report.exists():
            report.unlink()
        if not self.indices:
            raise BadInput(f"split '{split}': none of its {len(names)} clips has an embedding in {reader.path}")
        self.filenames = [names[i] for i in self.indices]
        self.audio_info = getattr(clip_set, "audio_info", {})

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int):
        item = self.clip_set[self.indices[index]]
        stem = Path(self.filenames[index]).stem
        return (*item, torch.from_numpy(self.reader.read(stem, self.kind)))
