"""The mini TAU22 generator: layout readable by tau22.py, folds, devices, cities, determinism, teacher."""
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch

from desed_task.data.mini_tau22 import TEACHER_FILE, ensure_mini_tau22, generate_mini_tau22, plan_clips
from desed_task.data.tau22 import TAU22_CLASSES, load_teacher_logits, read_fold, read_meta

TINY = {"n_train_a": 2, "n_train_other": 1, "n_eval": 1}


@pytest.fixture(scope="module")
def mini_root():
    return ensure_mini_tau22(Path(tempfile.gettempdir()) / "desed_task_tests" / "mini_tau22_tiny", 0, **TINY)


def test_layout_folds_devices_and_cities(mini_root):
    meta = read_meta(mini_root)
    assert len(meta) == 10 * (2 + 5) + 10 * 9  # parallel recordings: 2 segments on a, 1 also on 5 devices
    train, evaluate = read_fold(mini_root, meta, "fold1_train"), read_fold(mini_root, meta, "fold1_evaluate")
    assert len(set(train) | set(evaluate)) == len(meta) and not set(train) & set(evaluate)
    assert set(meta["device"][train]) == {"a", "b", "c", "s1", "s2", "s3"}
    assert set(meta["device"][evaluate]) == {"a", "b", "c", "s1", "s2", "s3", "s4", "s5", "s6"}
    cities = meta["identifier"].str.split("-").str[0]
    assert not set(cities[train]) & set(cities[evaluate])
    assert sorted(meta["scene_label"].unique()) == list(TAU22_CLASSES)
    header = (mini_root / "meta.csv").read_text().splitlines()[0]
    assert header == "filename\tscene_label\tidentifier\tsource_label"
    info = sf.info(str(mini_root / meta["filename"][0]))
    assert info.samplerate == 44100 and info.frames == 44100


def test_teacher_logits_beat_chance(mini_root):
    meta = read_meta(mini_root)
    logits = load_teacher_logits(mini_root / TEACHER_FILE, len(meta))
    evaluate = read_fold(mini_root, meta, "fold1_evaluate")
    accuracy = (logits[evaluate].argmax(1).numpy() == meta["label"].to_numpy()[evaluate]).mean()
    assert accuracy > 0.5


def test_deterministic_plan_and_audio(tmp_path, mini_root):
    assert plan_clips(0, **TINY).equals(plan_clips(0, **TINY))
    assert not plan_clips(1, **TINY).equals(plan_clips(0, **TINY))
    small = {"n_train_a": 1, "n_train_other": 0, "n_eval": 0}
    first = generate_mini_tau22(tmp_path / "one", 0, **small)
    second = generate_mini_tau22(tmp_path / "two", 0, **small)
    names = pd.read_csv(first / "meta.csv", sep="\t")["filename"]
    for name in names[:3]:
        assert np.array_equal(sf.read(first / name)[0], sf.read(second / name)[0])
    assert torch.equal(torch.load(first / TEACHER_FILE), torch.load(second / TEACHER_FILE))


def test_parallel_recordings_share_their_segment(mini_root):
    meta = read_meta(mini_root)
    evaluate = read_fold(mini_root, meta, "fold1_evaluate")
    first = meta.iloc[evaluate[:9]]
    assert list(first["device"]) == ["a", "b", "c", "s1", "s2", "s3", "s4", "s5", "s6"]
    assert first["identifier"].nunique() == 1
    clean, _ = sf.read(mini_root / first["filename"].iloc[0])
    coloured, _ = sf.read(mini_root / first["filename"].iloc[1])
    assert np.corrcoef(clean, coloured)[0, 1] > 0.3 and not np.allclose(clean, coloured)
