"""Mini MAESTRO generator: official layout readable by the MAESTRO reader, soft confidences, determinism."""
import hashlib

import numpy as np

from desed_task.data.encoder import ManyHotEncoder
from desed_task.data.maestro import (
    DCASE2024_CLASSES, MAESTRO_CLASSES, SCENES, MaestroChunkSet, find_recordings, read_annotation_file, read_split_list,
)
from desed_task.data.mini_maestro import SCENE_CLASSES, TIMBRES, ensure_mini_maestro, generate_mini_maestro

SMALL = {"n_train_per_scene": 1, "n_test_per_scene": 1, "duration_range": (20.0, 30.0), "n_annotators": 4}


def digest(root):
    files = sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith("."))
    return {str(p.relative_to(root)): hashlib.md5(p.read_bytes()).hexdigest() for p in files}


def test_every_class_has_a_timbre_and_a_scene():
    assert set(TIMBRES) == set(MAESTRO_CLASSES) and set(SCENE_CLASSES) == set(SCENES)
    assert set().union(*map(set, SCENE_CLASSES.values())) == set(MAESTRO_CLASSES)


def test_generated_layout_reads_back(tmp_path):
    paths = ensure_mini_maestro(tmp_path / "a", seed=1, workers=1, **SMALL)
    train = read_split_list(paths["maestro_train_split"], "train")
    test = read_split_list(paths["maestro_test_split"], "val")
    assert len(train) == len(test) == 5 and not set(train) & set(test)
    recordings = find_recordings(paths["maestro_root"], train)
    confidences = np.array([e.confidence for _, annotation in recordings.values()
                            for e in read_annotation_file(annotation)])
    assert len(confidences) > 20 and (confidences < 1).any() and (confidences == 1).any()
    assert set(np.round(confidences * 4, 6)) <= {1.0, 2.0, 3.0, 4.0}  # fractions of the 4 annotators
    data = MaestroChunkSet(recordings, ManyHotEncoder(DCASE2024_CLASSES), hop=1.0, training=True)
    durations = {line.split("\t")[0]: float(line.split("\t")[1])
                 for line in open(paths["maestro_durations"]).read().splitlines()[1:]}
    assert all(20 <= durations[f"{name}.wav"] <= 30 for name in train)
    waveform, labels, _, _ = data[3]
    assert waveform.abs().max() > 0 and labels.shape == (27, 156)


def test_deterministic(tmp_path):
    generate_mini_maestro(tmp_path / "a", seed=2, workers=1, **SMALL)
    generate_mini_maestro(tmp_path / "b", seed=2, workers=2, **SMALL)
    generate_mini_maestro(tmp_path / "c", seed=3, workers=1, **SMALL)
    assert digest(tmp_path / "a") == digest(tmp_path / "b") != digest(tmp_path / "c")
