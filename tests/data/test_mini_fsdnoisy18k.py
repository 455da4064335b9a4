"""The mini FSDnoisy18k generator: determinism, class coverage, noisy labels, clip lengths."""
import numpy as np

from desed_task.data.fsdnoisy18k import FSD_CLASSES, TRAIN_COLUMNS, read_metadata_csv
from desed_task.data.mini_fsdnoisy18k import _plan, class_timbre, generate_mini_fsdnoisy18k, synthesize_clip


def test_plans_cover_every_class_with_noisy_labels_and_short_clips():
    noisy = _plan(0, "noisy", 20, 0.3)
    assert sorted({r["label"] for r in noisy}) == list(range(20))
    wrong = np.mean([r["listed"] != r["label"] for r in noisy])
    assert 0.2 < wrong < 0.4
    durations = np.array([r["duration"] for r in noisy])
    assert durations.min() >= 0.3 and durations.max() <= 4.0 and (durations <= 1.0).mean() > 0.1
    assert (durations == 1.0).any()
    clean = _plan(0, "clean", 2, 0.3)
    assert all(r["listed"] == r["label"] for r in clean) and sorted({r["label"] for r in clean}) == list(range(20))
    assert _plan(0, "noisy", 20, 0.3) == noisy and _plan(1, "noisy", 20, 0.3) != noisy


def test_synthesis_is_deterministic_and_registers_differ():
    a = synthesize_clip(3, 0.5, np.random.default_rng([0, 1]))
    b = synthesize_clip(3, 0.5, np.random.default_rng([0, 1]))
    np.testing.assert_array_equal(a, b)
    assert a.dtype == np.float32 and len(a) == 22050 and np.abs(a).max() <= 0.9
    assert class_timbre(3)[0] == class_timbre(13)[0] and class_timbre(3)[1] != class_timbre(13)[1]
    assert len({class_timbre(k) for k in range(20)}) == 20


def test_generated_layout_and_csvs(tmp_path):
    paths = generate_mini_fsdnoisy18k(tmp_path, seed=0, n_noisy=1, n_clean=1, n_test=1, workers=1)
    rows = read_metadata_csv(paths["train_csv"], TRAIN_COLUMNS)
    assert len(rows) == 40 and sum(r["manually_verified"] for r in rows) == 20
    assert {r["label"] for r in rows if r["manually_verified"]} == set(range(len(FSD_CLASSES)))
    assert len(list(paths["train_audio"].glob("*.wav"))) == 40 and len(list(paths["test_audio"].glob("*.wav"))) == 20
    first = (paths["test_audio"] / "300000.wav").read_bytes()
    generate_mini_fsdnoisy18k(tmp_path, seed=0, n_noisy=1, n_clean=1, n_test=1, workers=1)
    assert (paths["test_audio"] / "300000.wav").read_bytes() == first
