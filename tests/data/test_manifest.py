import logging

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from desed_task.data.classes import DESED_CLASSES
from desed_task.data.datasets import StronglyAnnotatedSet
from desed_task.data.manifest import (read_durations, read_strong_annotations, read_weak_annotations,
                                      scan_unlabeled, write_durations)

from .conftest import write_tone


@pytest.fixture
def folder(tmp_path):
    audio = tmp_path / "audio"
    audio.mkdir()
    write_tone(audio / "a.wav", seconds=10.0)
    write_tone(audio / "b.wav", seconds=8.0, channels=2)
    (audio / "corrupt.wav").write_bytes(b"RIFF\x00\x00garbage, not audio")
    return audio


def _strong_tsv(path, body):
    path.write_text("filename\tonset\toffset\tevent_label\n" + body)
    return path


def test_strong_reading_keeps_empty_clips(folder, tmp_path):
    tsv = _strong_tsv(tmp_path / "s.tsv", "a.wav\t0.5\t1.5\tDog\na.wav\t2.0\t3.0\tCat\nb.wav\t\t\t\n")
    events, infos = read_strong_annotations(tsv, folder, DESED_CLASSES, "synth")
    assert events == {"a.wav": [("Dog", 0.5, 1.5), ("Cat", 2.0, 3.0)], "b.wav": []}
    assert infos["b.wav"].duration == pytest.approx(8.0) and infos["a.wav"].samplerate == 16000


def test_missing_and_corrupt_files_are_skipped_and_reported(folder, tmp_path, caplog):
    tsv = _strong_tsv(tmp_path / "s.tsv", "a.wav\t0.5\t1.5\tDog\nabsent.wav\t1\t2\tCat\ncorrupt.wav\t1\t2\tCat\n")
    report_dir = tmp_path / "logs"
    with caplog.at_level(logging.WARNING):
        events, _ = read_strong_annotations(tsv, folder, DESED_CLASSES, "synth", report_dir=report_dir)
    assert list(events) == ["a.wav"]
    assert "skipping 2" in caplog.text
    report = pd.read_csv(report_dir / "missing_files_synth.tsv", sep="\t")
    assert list(report["filename"]) == ["absent.wav", "corrupt.wav"]
    assert report["reason"].iloc[0] == "missing" and report["reason"].iloc[1].startswith("unreadable")


@pytest.mark.parametrize("row, message", [
    ("a.wav\t1.0\t2.0\tDoorbell\n", "unknown event label 'Doorbell'"),
    ("a.wav\t3.0\t2.0\tDog\n", "onset 3.0 is after offset 2.0"),
    ("a.wav\t-1.0\t2.0\tDog\n", "negative onset"),
    ("a.wav\t\t2.0\tDog\n", "onset is missing"),
])
def test_bad_annotations_name_file_and_line(folder, tmp_path, row, message):
    tsv = _strong_tsv(tmp_path / "bad.tsv", "a.wav\t0.5\t1.5\tDog\n" + row)
    with pytest.raises(ValueError, match=message) as error:
        read_strong_annotations(tsv, folder, DESED_CLASSES, "synth")
    assert f"{tsv} line 3" in str(error.value)


def test_event_past_clip_end_is_clipped_with_warning(folder, tmp_path, caplog):
    tsv = _strong_tsv(tmp_path / "s.tsv", "b.wav\t7.0\t9.5\tDog\nb.wav\t8.5\t9.0\tCat\n")
    with caplog.at_level(logging.WARNING):
        events, _ = read_strong_annotations(tsv, folder, DESED_CLASSES, "test")
    assert events["b.wav"] == [("Dog", 7.0, 8.0)]
    assert "line 2" in caplog.text and "clipped" in caplog.text


def test_empty_split_names_the_config_key(folder, tmp_path):
    tsv = _strong_tsv(tmp_path / "s.tsv", "absent.wav\t1\t2\tDog\n")
    with pytest.raises(ValueError, match=r"split 'synth' is empty.*data\.synth_tsv"):
        read_strong_annotations(tsv, folder, DESED_CLASSES, "synth", config_key="synth_tsv")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match=r"data\.unlabeled_folder = .*empty"):
        scan_unlabeled(empty, "unlabeled", config_key="unlabeled_folder")


def test_weak_reading_and_validation(folder, tmp_path):
    tsv = tmp_path / "weak.tsv"
    tsv.write_text("filename\tevent_labels\na.wav\tDog,Speech\nb.wav\tCat\nabsent.wav\tDog\n")
    labels, _ = read_weak_annotations(tsv, folder, DESED_CLASSES, "weak")
    assert labels == {"a.wav": ["Dog", "Speech"], "b.wav": ["Cat"]}
    tsv.write_text("filename\tevent_labels\na.wav\tDog,Sirens\n")
    with pytest.raises(ValueError, match=r"weak.tsv line 2: unknown event label 'Sirens'"):
        read_weak_annotations(tsv, folder, DESED_CLASSES, "weak")


def test_unlabeled_scan_skips_corrupt_and_durations_round_trip(folder, tmp_path):
    infos = scan_unlabeled(folder, "unlabeled", report_dir=tmp_path)
    assert sorted(infos) == ["a.wav", "b.wav"]
    assert (tmp_path / "missing_files_unlabeled.tsv").is_file()
    write_durations(folder, tmp_path / "durations.tsv", ["a.wav", "b.wav"])
    assert read_durations(tmp_path / "durations.tsv") == {"a.wav": 10.0, "b.wav": 8.0}


def _truncate(path, n_bytes):
    path.write_bytes(path.read_bytes()[:n_bytes])


def test_issue13_item2_truncated_16k_validation_clip_is_reported_and_skipped(folder, tmp_path, encoder):
    write_tone(folder / "cut.wav", seconds=10.0)
    _truncate(folder / "cut.wav", 44 + 64)  # WAV header + 32 samples: 0.002 s
    tsv = _strong_tsv(tmp_path / "val.tsv", "a.wav\t0.5\t1.5\tCat\ncut.wav\t1.0\t3.0\tDog\ncut.wav\t5.0\t6.0\tSpeech\n")
    dataset = StronglyAnnotatedSet(folder, tsv, encoder, split="synth_val", report_dir=tmp_path / "reports")
    assert dataset.filenames == ["a.wav"]
    report = pd.read_csv(tmp_path / "reports" / "missing_files_synth_val.tsv", sep="\t")
    assert list(report["filename"]) == ["cut.wav"]
    assert report["reason"].iloc[0] == ("truncated: the header declares 10.000 s (160000 frames), "
                                        "the file holds 0.002 s (32 frames)")


def test_audio_disagreeing_with_the_durations_file_is_reported_and_skipped(folder, tmp_path):
    write_tone(folder / "rounded.wav", seconds=9.28)
    durations = tmp_path / "durations.tsv"
    durations.write_text("filename\tduration\na.wav\t10.0\nb.wav\t10.0\nrounded.wav\t9.3\n")
    tsv = _strong_tsv(tmp_path / "val.tsv", "a.wav\t0.5\t1.5\tCat\nb.wav\t1.0\t3.0\tDog\nrounded.wav\t1.0\t2.0\tDog\n")
    events, _ = read_strong_annotations(tsv, folder, DESED_CLASSES, "test", report_dir=tmp_path, durations=durations)
    assert sorted(events) == ["a.wav", "rounded.wav"]
    report = pd.read_csv(tmp_path / "missing_files_test.tsv", sep="\t")
    assert list(report["reason"]) == [f"duration 8.000 s disagrees with {durations} (10.000 s)"]


def test_truncated_flac_is_reported_and_a_complete_one_kept(tmp_path):
    audio = tmp_path / "unlabeled"
    audio.mkdir()
    tone = 0.1 * np.sin(np.arange(160000) * 0.05)
    for name in ("whole.flac", "cut.flac"):
        sf.write(str(audio / name), tone, 16000)
    _truncate(audio / "cut.flac", (audio / "cut.flac").stat().st_size // 2)
    assert sf.info(str(audio / "cut.flac")).frames == 160000  # the header alone does not tell
    infos = scan_unlabeled(audio, "unlabeled", report_dir=tmp_path)
    assert list(infos) == ["whole.flac"]
    reason = pd.read_csv(tmp_path / "missing_files_unlabeled.tsv", sep="\t")["reason"].iloc[0]
    assert reason.startswith("truncated or corrupt: the last 1024 frames cannot be decoded")
