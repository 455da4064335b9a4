"""Fixtures of the data tests: a tiny generated mini DESED shared by the session."""
import numpy as np
import pytest
import soundfile as sf

from desed_task.data.classes import DESED_CLASSES
from desed_task.data.encoder import ManyHotEncoder
from desed_task.data.mini import ensure_mini_dataset

TINY_SIZES = {"n_synth": 12, "n_weak": 20, "n_unlabeled": 10, "n_synth_val": 6, "n_test": 8}


@pytest.fixture(scope="session")
def tiny_mini(tmp_path_factory):
    """(root, data paths) of a tiny mini DESED generated once per session."""
    root = tmp_path_factory.mktemp("mini")
    return root, ensure_mini_dataset(root, seed=3, workers=2, **TINY_SIZES)


@pytest.fixture
def encoder():
    return ManyHotEncoder(DESED_CLASSES)


def write_tone(path, seconds=10.0, sr=16000, freq=440.0, channels=1):
    t = np.arange(int(seconds * sr)) / sr
    tone = 0.5 * np.sin(2 * np.pi * freq * t)
    sf.write(str(path), np.stack([tone] * channels, axis=1) if channels > 1 else tone, sr)
