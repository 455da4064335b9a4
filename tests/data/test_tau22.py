"""TAU22 reading: meta/folds, devices, 32 kHz cache, length fixing, teacher logits and bad input."""
import logging

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch

from desed_task.data.tau22 import (
    TAU22_CLASSES, build_tau22_datasets, device_of, load_teacher_logits, read_fold, read_meta,
)

FILES = [("audio/airport-barcelona-0-0-0-a.wav", "airport", 44100),
         ("audio/park-lyon-1-0-0-s4.wav", "park", 44100),
         ("audio/tram-paris-2-3-1-b.wav", "tram", 44100),
         ("audio/bus-vienna-0-0-0-s2.wav", "bus", 48000),
         ("audio/bus-milan-0-0-0-c.wav", "bus", 32000)]


def write_layout(root, missing=(), lengths=None):
    (root / "audio").mkdir(parents=True)
    (root / "evaluation_setup").mkdir()
    rng = np.random.default_rng(0)
    for name, _, rate in FILES:
        if name not in missing:
            seconds = (lengths or {}).get(name, 1.0)
            sf.write(root / name, 0.1 * rng.standard_normal(int(seconds * rate)), rate)
    meta = pd.DataFrame([(n, s, "-".join(n.split("-")[1:3]), n.rsplit("-", 1)[1][:-4]) for n, s, _ in FILES],
                        columns=["filename", "scene_label", "identifier", "source_label"])
    meta.to_csv(root / "meta.csv", sep="\t", index=False)
    meta.iloc[[0, 2, 4], :2].to_csv(root / "evaluation_setup" / "fold1_train.csv", sep="\t", index=False)
    meta.iloc[[1, 3], :2].to_csv(root / "evaluation_setup" / "fold1_evaluate.csv", sep="\t", index=False)
    return meta


def test_meta_devices_labels_and_folds(tmp_path):
    write_layout(tmp_path)
    meta = read_meta(tmp_path)
    assert list(meta["device"]) == ["a", "s4", "b", "s2", "c"]
    assert list(meta["label"]) == [0, 4, 9, 1, 1] and TAU22_CLASSES[7] == "street_pedestrian"
    assert list(read_fold(tmp_path, meta, "fold1_evaluate")) == [1, 3]
    assert device_of("audio/street_traffic-london-1-2-3-s1.wav") == "s1"


def test_datasets_resample_and_fix_length(tmp_path, caplog):
    write_layout(tmp_path, lengths={"audio/tram-paris-2-3-1-b.wav": 0.9, "audio/bus-milan-0-0-0-c.wav": 1.2})
    torch.save(torch.randn(5, 10), tmp_path / "logits.pt")
    with caplog.at_level(logging.WARNING):
        train, evaluate = build_tau22_datasets(tmp_path, tmp_path / "cache", tmp_path / "logits.pt")
        items = [train[i] for i in range(3)]
    assert sf.info(str(tmp_path / "cache" / "bus-vienna-0-0-0-s2.wav")).samplerate == 32000
    assert all(item["input"].shape == (32000,) and item["input"].dtype == torch.float32 for item in items)
    assert "tram-paris-2-3-1-b.wav has 28800 samples" in caplog.text and "zero-padded" in caplog.text
    assert "cut" in caplog.text
    assert items[1]["input"][28800:].abs().max() == 0
    assert [item["group"] for item in items] == [0, 1, 2] and [item["index"] for item in items] == [0, 2, 4]
    assert torch.equal(items[1]["teacher_logits"], torch.load(tmp_path / "logits.pt")[2])
    assert "teacher_logits" not in evaluate[0] and evaluate[0]["group"] == 6


def test_missing_audio_reported_and_skipped(tmp_path):
    write_layout(tmp_path, missing=("audio/tram-paris-2-3-1-b.wav",))
    train, _ = build_tau22_datasets(tmp_path, tmp_path / "cache", report_dir=tmp_path / "reports")
    assert len(train) == 2 and list(train.rows) == [0, 4]
    report = pd.read_csv(tmp_path / "reports" / "missing_files_fold1_train.tsv", sep="\t")
    assert list(report["filename"]) == ["tram-paris-2-3-1-b.wav"] and report["reason"][0] == "missing"


def test_teacher_logits_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="--kd_lambda=1"):
        load_teacher_logits(tmp_path / "absent.pt", 5)
    torch.save(torch.randn(4, 10), tmp_path / "short.pt")
    with pytest.raises(ValueError, match="4 rows of teacher logits but meta.csv has 5 rows"):
        load_teacher_logits(tmp_path / "short.pt", 5)
    torch.save(torch.randn(5, 3), tmp_path / "narrow.pt")
    with pytest.raises(ValueError, match="expected a"):
        load_teacher_logits(tmp_path / "narrow.pt", 5)


def test_bad_metadata(tmp_path):
    meta = write_layout(tmp_path)
    meta.loc[3, "scene_label"] = "beach"
    meta.to_csv(tmp_path / "meta.csv", sep="\t", index=False)
    with pytest.raises(ValueError, match=r"meta.csv, line 5: unknown scene 'beach'"):
        read_meta(tmp_path)
    meta.loc[3, "scene_label"] = "bus"
    meta.to_csv(tmp_path / "meta.csv", sep="\t", index=False)
    pd.DataFrame({"filename": ["audio/x-y-0-0-0-a.wav"]}).to_csv(
        tmp_path / "evaluation_setup" / "fold1_evaluate.csv", sep="\t", index=False)
    with pytest.raises(ValueError, match=r"fold1_evaluate.csv, line 2: 'audio/x-y-0-0-0-a.wav' is not in meta.csv"):
        read_fold(tmp_path, read_meta(tmp_path), "fold1_evaluate")
    (tmp_path / "meta.csv").write_text("filename,scene_label\n")
    with pytest.raises(ValueError, match="missing column"):
        read_meta(tmp_path)
