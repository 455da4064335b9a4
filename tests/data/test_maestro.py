"""MAESTRO Real reader: annotation parsing and its errors, chunking, clipping, soft labels, mapping, ground truth."""
import numpy as np
import pytest
import soundfile as sf

from desed_task.data.encoder import ManyHotEncoder
from desed_task.data.maestro import (
    DCASE2024_CLASSES, MAESTRO_CLASSES, MAESTRO_EVAL_CLASSES, MAESTRO_VALID_CLASSES, Event, MaestroChunkSet,
    chunk_bounds, chunk_events, chunk_name, class_mask, find_recordings, map_to_desed, read_annotation_file,
    read_split_list,
)
from desed_task.utils.errors import BadInput, MissingInput


def test_class_lists():
    assert len(DCASE2024_CLASSES) == 27 and DCASE2024_CLASSES[:10][-1] == "Vacuum_cleaner"
    assert DCASE2024_CLASSES[10] == "cutlery and dishes" and len(set(DCASE2024_CLASSES)) == 27
    assert set(MAESTRO_EVAL_CLASSES) < set(MAESTRO_CLASSES) and len(MAESTRO_EVAL_CLASSES) == 11
    mask = class_mask(MAESTRO_VALID_CLASSES)
    assert mask.sum() == 20 and mask[DCASE2024_CLASSES.index("Dog")] and not mask[0]


def write_recording(root, name, seconds, lines, scene="cafe_restaurant", sr=16000):
    audio = root / "development_audio" / scene
    annotation = root / "development_annotation" / f"soft_labels_{scene}"
    audio.mkdir(parents=True, exist_ok=True)
    annotation.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * sr)) / sr
    sf.write(str(audio / f"{name}.wav"), (0.1 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), sr)
    (annotation / f"{name}.txt").write_text("".join(line + "\n" for line in lines))


def test_annotation_errors_name_file_and_line(tmp_path):
    path = tmp_path / "rec.txt"
    path.write_text("0.0\t1.0\tcar\t0.4\n1.0\t2.0\tspaceship\t0.5\n")
    with pytest.raises(BadInput, match=r"rec\.txt:2: unknown class 'spaceship'"):
        read_annotation_file(path)
    path.write_text("0.0\t1.0\tcar\t0.4\n\n1.0\t2.0\tcar\t1.5\n")
    with pytest.raises(BadInput, match=r"rec\.txt:3: confidence 1.5 is outside \[0, 1\]"):
        read_annotation_file(path)
    path.write_text("0.0\t1.0\tcar\n")
    with pytest.raises(BadInput, match=r"rec\.txt:1: expected"):
        read_annotation_file(path)
    path.write_text("0.0\t1.0\tcar\t0.4\n")
    assert read_annotation_file(path) == [Event(0.0, 1.0, "car", 0.4)]


def test_chunk_bounds_and_names():
    assert chunk_bounds(25.0, 10.0, 5.0) == [(0, 10), (5, 15), (10, 20), (15, 25)]
    assert chunk_bounds(27.0, 10.0, 5.0) == [(0, 10), (5, 15), (10, 20), (15, 25), (20, 27.0)]
    assert chunk_bounds(181.5, 10.0, 1.0)[-2:] == [(171, 181), (172, 181.5)]  # 172 full windows + the tail
    assert len(chunk_bounds(181.0, 10.0, 1.0)) == 172
    assert chunk_bounds(6.5, 10.0, 1.0) == [(0.0, 6.5)]
    assert chunk_name("city_center_05", 17.0, 27.0) == "city_center_05-001700-002700.wav"


def test_chunk_events_clip_and_mapping():
    events = [Event(2.0, 14.0, "people talking", 0.6), Event(12.0, 13.0, "car", 1.0), Event(30.0, 31.0, "car", 1.0)]
    chunk = chunk_events(events, 5.0, 15.0)
    assert chunk == [Event(0.0, 9.0, "people talking", 0.6), Event(7.0, 8.0, "car", 1.0)]
    mapped = map_to_desed(chunk)
    assert mapped[1] == Event(0.0, 9.0, "Speech", 0.6) and len(mapped) == 3


@pytest.fixture
def recordings(tmp_path):
    write_recording(tmp_path, "cafe_restaurant_00", 23.0,
                    ["1.0\t4.0\tpeople talking\t0.4", "3.0\t6.0\tpeople talking\t0.8", "12.0\t21.5\tcar\t1.0"])
    write_recording(tmp_path, "cafe_restaurant_01", 6.0, ["0.5\t2.0\tcutlery and dishes\t0.6"])
    (tmp_path / "train_split.csv").write_text("train\ncafe_restaurant_00.wav\ncafe_restaurant_01.wav\n")
    return tmp_path


def test_chunk_set_items(recordings):
    encoder = ManyHotEncoder(DCASE2024_CLASSES)
    names = read_split_list(recordings / "train_split.csv", "train")
    found = find_recordings(recordings, names)
    train = MaestroChunkSet(found, encoder, hop=1.0, training=True)
    valid = MaestroChunkSet(found, encoder, hop=5.0, training=False)
    assert train.filenames[:2] == ["cafe_restaurant_00-000000-001000.wav", "cafe_restaurant_00-000100-001100.wav"]
    assert len(train) == 14 + 1 and len(valid) == 3 + 1 + 1  # valid: tail 15..23
    waveform, labels, frames, name = train[0]
    assert waveform.shape == (160000,) and labels.shape == (27, 156)
    talking, speech = DCASE2024_CLASSES.index("people talking"), DCASE2024_CLASSES.index("Speech")
    # soft targets: confidence on the event's frames, the later overlapping row wins
    assert labels[talking, 20].item() == pytest.approx(0.4) and labels[talking, 60].item() == pytest.approx(0.8)
    assert labels[talking, 100].item() == 0
    assert labels[speech, 60].item() == pytest.approx(0.8)  # training chunks only get the DESED copy
    assert valid[0][1][speech].max() == 0 and valid[0][1][talking].max() == pytest.approx(0.8)
    short = train.filenames.index("cafe_restaurant_01-000000-000600.wav")
    waveform, labels, frames, _ = train[short]
    assert waveform[96000:].abs().max() == 0 and frames.sum() == int(np.ceil(6.0 * 16000 / 1024))
    assert train.class_mask.sum() == 20


def test_ground_truth_threshold_and_merge(recordings):
    encoder = ManyHotEncoder(DCASE2024_CLASSES)
    data = MaestroChunkSet(find_recordings(recordings), encoder, hop=5.0)
    truth = data.recording_ground_truth()
    rows = sorted(truth.itertuples(index=False, name=None))
    assert rows == [("cafe_restaurant_00", 3.0, 6.0, "people talking"), ("cafe_restaurant_00", 12.0, 21.5, "car"),
                    ("cafe_restaurant_01", 0.5, 2.0, "cutlery and dishes")]
    chunk_truth = data.chunk_ground_truth()
    first = chunk_truth[chunk_truth["filename"] == "cafe_restaurant_00-000000-001000.wav"]
    assert list(first.itertuples(index=False, name=None)) == [
        ("cafe_restaurant_00-000000-001000.wav", 3.0, 6.0, "people talking")]
    third = chunk_truth[chunk_truth["filename"] == "cafe_restaurant_00-001000-002000.wav"]
    assert list(third.itertuples(index=False, name=None)) == [("cafe_restaurant_00-001000-002000.wav", 2.0, 10.0, "car")]


def test_missing_recording(recordings):
    with pytest.raises(MissingInput, match="cafe_restaurant_07"):
        find_recordings(recordings, ["cafe_restaurant_07.wav"])
