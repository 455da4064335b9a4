"""EmbeddingClipSet: items carry their clip's embedding; clips without one are skipped and reported."""
import numpy as np
import pandas as pd
import pytest
import torch
from torch.utils.data import Dataset

from desed_task.embeddings import EmbeddingReader, EmbeddingWriter
from desed_task.embeddings.dataset import EmbeddingClipSet


class Clips(Dataset):
    def __init__(self, names):
        self.filenames = names
        self.audio_info = {name: 10.0 for name in names}

    def __len__(self):
        return len(self.filenames)

    def __getitem__(self, index):
        return torch.full((3,), float(index)), torch.zeros(2, 4), torch.ones(4, dtype=torch.bool), self.filenames[index]


def test_items_carry_embeddings_and_missing_clips_are_reported(tmp_path):
    writer = EmbeddingWriter(tmp_path / "synth_val.hdf5", ["a", "c"], (2, 3), 5)
    frame = np.arange(12, dtype=np.float32).reshape(2, 2, 3)
    writer.write(["a", "c"], frame, np.zeros((2, 5)))
    writer.finish()
    reader = EmbeddingReader(tmp_path / "synth_val.hdf5")
    data = EmbeddingClipSet(Clips(["a.wav", "b.wav", "c.wav"]), reader, "frame", "synth_val", tmp_path / "reports")
    assert len(data) == 2 and data.filenames == ["a.wav", "c.wav"]
    audio, _, _, name, embedding = data[1]
    assert name == "c.wav" and float(audio[0]) == 2.0  # the third clip of the wrapped set
    torch.testing.assert_close(embedding, torch.from_numpy(frame[1]))
    report = pd.read_csv(tmp_path / "reports/missing_embeddings_synth_val.tsv", sep="\t")
    assert list(report["filename"]) == ["b.wav"] and "synth_val.hdf5" in report["path"][0]
    assert data.audio_info["b.wav"] == 10.0
    with pytest.raises(ValueError, match="none of its 1 clips"):
        EmbeddingClipSet(Clips(["z.wav"]), reader, "frame", "weak_val")
