"""FSDnoisy18k metadata validation, waveform preparation, atomic HDF5 extraction and patch datasets."""
import shutil
import tempfile
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch

from desed_task.data import fsdnoisy18k as fsd
from desed_task.data.fsdnoisy18k import (FSD_CLASSES, EvaluationPatchDataset, FeatureStore, SupervisedPatchDataset,
                                         clean_split, clip_batches, collate_clip_patches, preprocess_waveform,
                                         read_metadata_csv, read_splits)
from desed_task.training import uclser_data
from desed_task.training.uclser_data import ContrastivePatchDataset, extract_split
from desed_task.data.mini_fsdnoisy18k import ensure_mini_fsdnoisy18k

MINI_SIZES = {"n_noisy": 1, "n_clean": 1, "n_test": 1}


@pytest.fixture(scope="module")
def mini_root() -> Path:
    root = Path(tempfile.gettempdir()) / "desed_task_tests" / "mini_fsdnoisy18k_1"
    ensure_mini_fsdnoisy18k(root, seed=0, **MINI_SIZES)
    return root


def write_csv(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_classes_are_the_twenty_alphabetical():
    assert len(FSD_CLASSES) == 20 and list(FSD_CLASSES) == sorted(FSD_CLASSES)
    assert FSD_CLASSES[0] == "Acoustic_guitar" and FSD_CLASSES[-1] == "Writing"


def test_csv_validation_names_file_and_line(tmp_path):
    good = write_csv(tmp_path / "train.csv", "fname,label,aso_id,manually_verified,noisy_small\n"
                     "1.wav,Writing,/m/a,0,1\n2.wav,Acoustic_guitar,/m/b,1,0\n")
    rows = read_metadata_csv(good, fsd.TRAIN_COLUMNS)
    assert [(r["fname"], r["label"], r["manually_verified"]) for r in rows] == [("1.wav", 19, 0), ("2.wav", 0, 1)]
    bad_header = write_csv(tmp_path / "h.csv", "fname,label,aso_id\n1.wav,Writing,/m/a\n")
    with pytest.raises(ValueError, match=r"h\.csv, line 1: header"):
        read_metadata_csv(bad_header, fsd.TRAIN_COLUMNS)
    bad_label = write_csv(tmp_path / "l.csv", "fname,label,aso_id\n1.wav,Writing,/m/a\n2.wav,Guitar,/m/b\n")
    with pytest.raises(ValueError, match=r"l\.csv, line 3: label 'Guitar'"):
        read_metadata_csv(bad_label, fsd.TEST_COLUMNS)
    bad_flag = write_csv(tmp_path / "f.csv", "fname,label,aso_id,manually_verified,noisy_small\n1.wav,Fire,x,2,0\n")
    with pytest.raises(ValueError, match=r"f\.csv, line 2: manually_verified"):
        read_metadata_csv(bad_flag, fsd.TRAIN_COLUMNS)
    short_row = write_csv(tmp_path / "s.csv", "fname,label,aso_id\n1.wav,Fire\n")
    with pytest.raises(ValueError, match=r"s\.csv, line 2: 2 fields"):
        read_metadata_csv(short_row, fsd.TEST_COLUMNS)


def test_missing_audio_is_skipped_and_reported(mini_root, tmp_path):
    root = tmp_path / "fsd"
    shutil.copytree(mini_root, root, ignore=shutil.ignore_patterns(".*"))
    paths = fsd.dataset_paths(root)
    removed = sorted(p.name for p in paths["train_audio"].iterdir())[0]
    (paths["train_audio"] / removed).unlink()
    splits = read_splits(root, report_dir=tmp_path / "reports")
    assert (len(splits["noisy"]), len(splits["clean"]), len(splits["test"])) == (19, 20, 20)
    report = pd.read_csv(tmp_path / "reports" / "missing_files_noisy.tsv", sep="\t")
    assert report["filename"].tolist() == [removed] and report["reason"].tolist() == ["missing"]
    for split in ("clean", "test"):  # every class (the noisy set lists some clips under wrong labels)
        assert {clip.label for clip in splits[split]} == set(range(20))


def test_preprocess_waveform():
    rng = np.random.default_rng(0)
    short = rng.standard_normal(6615) + 3.0  # 0.3 s with a DC offset
    out = preprocess_waveform(short)
    centred = short - short.mean()
    expected_first = centred / (np.abs(centred).max() + 0.005)
    assert out.shape == (22050,)
    np.testing.assert_allclose(out[:6615], expected_first)
    np.testing.assert_allclose(out[6615:13230], expected_first)  # tiled
    long = rng.standard_normal(30000)
    assert preprocess_waveform(long).shape == (30000,)
    assert np.abs(preprocess_waveform(long)).max() < 1.0
    exactly_one_second = rng.standard_normal(22050)
    assert preprocess_waveform(exactly_one_second).shape == (22050,)
    with pytest.raises(ValueError, match="empty"):
        preprocess_waveform(np.zeros(0))


def test_extraction_is_atomic_and_rebuilt_when_interrupted(mini_root, tmp_path, monkeypatch):
    clips = read_splits(mini_root)["test"][:4]
    out = tmp_path / "FSDnoisy18k_test.hdf5"
    assert extract_split(clips, out, progress=False)
    with h5py.File(out, "r") as store:
        assert store.attrs["complete"] and store["features"].dtype == np.float32
        offsets = store["offsets"][:]
        np.testing.assert_array_equal(store["labels"][:], [c.label for c in clips])
        first = store["features"][offsets[0]:offsets[1]]
    np.testing.assert_allclose(first, uclser_data.clip_features(clips[0].path), rtol=0, atol=1e-6)
    info = sf.info(clips[0].path)
    assert len(first) == 1 + max(int(round(info.duration * 22050)), 22050) // 220
    assert not extract_split(clips, out, progress=False)  # complete and identical: kept
    assert extract_split(clips[:3], out, progress=False)  # other clips: stale, rebuilt
    with h5py.File(out, "a") as store:  # a file left by an interrupted writer has no completion mark
        del store.attrs["complete"]
    with pytest.raises(ValueError, match="not a complete"):
        FeatureStore(out)
    assert extract_split(clips[:3], out, progress=False)
    assert len(FeatureStore(out)) == 3

    calls = []

    def crash_on_third(path):
        calls.append(path)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return np.zeros((101, 96), np.float32)

    monkeypatch.setattr(uclser_data, "clip_features", crash_on_third)
    fresh = tmp_path / "crash.hdf5"
    with pytest.raises(KeyboardInterrupt):
        extract_split(clips, fresh, progress=False)
    assert not fresh.exists() and not list(tmp_path.glob(".crash.hdf5.*"))


@pytest.fixture(scope="module")
def test_store(mini_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("h5") / "test.hdf5"
    extract_split(read_splits(mini_root)["test"], out, progress=False)
    return FeatureStore(out, in_memory=True)


def test_patch_datasets(test_store):
    mean, std = 0.5, 2.0
    torch.manual_seed(0)
    contrastive = ContrastivePatchDataset(test_store, mean, std)
    item = contrastive[3]
    assert item["input"].shape == (2, 1, 101, 96) and item["label"] == test_store.labels[3] and item["index"] == 3
    assert not torch.equal(item["input"][0], item["input"][1])
    assert set(contrastive._other_clips(0)).isdisjoint({0}) and len(set(contrastive._other_clips(5))) == 2
    supervised = SupervisedPatchDataset(test_store, mean, std)
    item = supervised[2]
    assert item["input"].shape == (1, 101, 96) and item["label"] == test_store.labels[2]
    frames = test_store.n_frames(2)
    windows = [test_store[2][s:s + 101] for s in range(frames - 100)]
    assert any(np.allclose(item["input"][0].numpy() * std + mean, w, atol=1e-5) for w in windows)


def test_evaluation_patches_and_clip_batches(test_store):
    dataset = EvaluationPatchDataset(test_store, 0.0, 1.0)
    for clip in range(len(test_store)):
        frames = test_store.n_frames(clip)
        starts = dataset.patch_start[dataset.clip_of_patch == clip]
        np.testing.assert_array_equal(starts, np.arange(0, frames - 101 + 1, 50))
    long_clip = int(np.argmax(np.bincount(dataset.clip_of_patch)))
    assert (dataset.clip_of_patch == long_clip).sum() >= 2
    item = dataset[int(np.flatnonzero(dataset.clip_of_patch == long_clip)[1])]
    np.testing.assert_allclose(item["input"][0].numpy(), test_store[long_clip][50:151])
    assert item["clip"] == long_clip and item["label"] == test_store.labels[long_clip]
    batches = clip_batches(dataset, max_patches=7)
    assert sorted(i for b in batches for i in b) == list(range(len(dataset)))
    for batch in batches:
        clips = set(dataset.clip_of_patch[batch])
        assert all((dataset.clip_of_patch == c).sum() == (dataset.clip_of_patch[batch] == c).sum() for c in clips)
        assert len(batch) <= 7 or len(clips) == 1
    collated = collate_clip_patches([dataset[i] for i in batches[0]])
    assert collated["input"].shape == (len(batches[0]), 1, 101, 96)
    np.testing.assert_array_equal(collated["label"].numpy(), test_store.labels[collated["clip"].numpy()])
    np.testing.assert_array_equal(collated["clip"][collated["patch_clip"]].numpy(), dataset.clip_of_patch[batches[0]])


def test_clean_split_modes():
    train, val = clean_split(100, seed=1)
    assert len(val) == 15 and len(train) == 85 and not set(train) & set(val)
    train_o, val_o = clean_split(100, seed=1, mode="official")
    assert len(train_o) == 85 and len(val_o) == 100 and set(train_o) & set(val)  # the official overlap
    with pytest.raises(ValueError, match="clean split"):
        clean_split(10, mode="other")
