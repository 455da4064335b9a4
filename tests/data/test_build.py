import logging
from pathlib import Path

import pandas as pd
import pytest
import soundfile as sf
import torch

from desed_task.data.build import build_eval_dataset, build_sed_datasets, build_strong_val_dataset, prepare_folder
from desed_task.data.datasets import WeaklyAnnotatedSet
from desed_task.data.mini import apply_mini_config, generate_mini_desed, mini_config_paths
from desed_task.data.resample import COMPLETE_MARKER
from desed_task.data.sampler import MultiSetBatchSampler

from .conftest import TINY_SIZES, write_tone


def _config(paths, batch_size=(4, 4, 4)):
    return {"data": {**paths, "audio_max_len": 10, "fs": 16000, "net_subsample": 4},
            "training": {"batch_size": list(batch_size), "weak_split": 0.9, "seed": 42}}


def test_build_resamples_and_returns_all_sets(tiny_mini, encoder, tmp_path):
    _, paths = tiny_mini
    built = build_sed_datasets(_config(paths), encoder, report_dir=tmp_path)
    synth_16k = list(Path(paths["synth_folder"]).glob("*.wav"))
    assert len(synth_16k) == TINY_SIZES["n_synth"] and {sf.info(str(p)).samplerate for p in synth_16k} == {16000}
    assert (Path(paths["weak_folder"]) / COMPLETE_MARKER).is_file()
    assert [len(d) for d in built.train.datasets] == [12, 18, 10]
    assert [len(built.valid_synth), len(built.valid_weak)] == [6, 2] and len(built.test) == 8
    assert built.train_batch_sizes == [4, 4, 4] and Path(paths["test_dur"]).is_file()
    sampler = MultiSetBatchSampler([len(d) for d in built.train.datasets], built.train_batch_sizes)
    loader = torch.utils.data.DataLoader(built.train, batch_sampler=sampler)
    waveform, labels, valid, file_ids = next(iter(loader))
    assert waveform.shape == (12, 160000) and labels.shape == (12, 10, 156) and valid.shape == (12, 156)
    assert file_ids[0].endswith(".wav") and labels[8:].sum() == 0
    assert build_eval_dataset(_config(paths), encoder)[0][0].shape == (160000,)


def test_strong_real_needs_four_batch_sizes_and_a_strong_set(tiny_mini, encoder):
    _, paths = tiny_mini
    with pytest.raises(ValueError, match=r"must have 4 entries \[synth, strong, weak, unlabeled\]"):
        build_sed_datasets(_config(paths), encoder, strong_real=True)
    with pytest.raises(ValueError, match=r"data\.strong_folder"):  # the mini dataset has no strong split by default
        build_sed_datasets(_config(paths, (2, 2, 2, 2)), encoder, strong_real=True)


def test_missing_test_folder_names_the_key(tiny_mini, encoder, tmp_path):
    _, paths = tiny_mini
    broken = dict(paths, test_folder=str(tmp_path / "nowhere"))
    with pytest.raises(ValueError, match=r"data\.test_folder = .*nowhere"):
        build_sed_datasets(_config(broken), encoder)


def test_apply_mini_config_reuses_a_complete_dataset(tiny_mini):
    root, paths = tiny_mini
    config = {"data": {"mini": {"out_dir": str(root), "seed": 3, "workers": 2, **TINY_SIZES}, "synth_folder": None}}
    marker_time = (root / ".mini_complete.json").stat().st_mtime_ns
    resolved = apply_mini_config(config)
    assert resolved["data"]["synth_folder"] == mini_config_paths(root)["synth_folder"] == paths["synth_folder"]
    assert (root / ".mini_complete.json").stat().st_mtime_ns == marker_time
    assert config["data"]["synth_folder"] is None


def test_issue13_item2_truncated_44k_clip_is_reported_and_skipped(tmp_path, encoder):
    source = tmp_path / "weak"
    source.mkdir()
    for name in ("complete.wav", "cut.wav"):
        write_tone(source / name, seconds=8.3, sr=44100)
    (source / "cut.wav").write_bytes((source / "cut.wav").read_bytes()[:100])
    tsv = tmp_path / "weak.tsv"
    tsv.write_text("filename\tevent_labels\ncomplete.wav\tCat\ncut.wav\tDog,Speech\n")
    data = {"weak_folder": str(tmp_path / "weak_16k"), "weak_folder_44k": str(source), "fs": 16000}
    folder = prepare_folder(data, "weak_folder")
    dataset = WeaklyAnnotatedSet(folder, tsv, encoder, split="weak_train", report_dir=tmp_path / "reports")
    assert dataset.filenames == ["complete.wav"] and not (tmp_path / "weak_16k" / "cut.wav").exists()
    report = pd.read_csv(tmp_path / "reports" / "missing_files_weak_train.tsv", sep="\t")
    assert list(report["filename"]) == ["cut.wav"]
    assert report["reason"].iloc[0] == (f"source {source.resolve() / 'cut.wav'} not resampled: truncated: the header "
                                        "declares 8.300 s (366030 frames), the file holds 0.001 s (28 frames)")


def test_strong_real_validation_set_is_optional_and_held_out(encoder, tmp_path, caplog):
    paths = generate_mini_desed(tmp_path / "mini", seed=3, n_synth=1, n_weak=1, n_unlabeled=1, n_synth_val=1,
                                n_test=1, n_strong=4, n_strong_val=3, workers=1)
    assert build_strong_val_dataset(_config({**paths, "strong_val_tsv": None}), encoder) is None
    Path(paths["strong_val_dur"]).unlink()
    with caplog.at_level(logging.WARNING, logger="desed_task.data.build"):
        valid = build_strong_val_dataset(_config(paths), encoder, report_dir=tmp_path)
    assert len(valid) == 3 and Path(paths["strong_val_dur"]).is_file() and "training clips" not in caplog.text
    with caplog.at_level(logging.WARNING, logger="desed_task.data.build"):
        build_strong_val_dataset(_config({**paths, "strong_tsv": paths["strong_val_tsv"]}), encoder)
    assert "3 of the 3 clips of data.strong_val_tsv are training clips of data.strong_tsv" in caplog.text
    with pytest.raises(ValueError, match="data.strong_val_folder must be set"):
        build_strong_val_dataset(_config({**paths, "strong_val_folder": None}), encoder)
