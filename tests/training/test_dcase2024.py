"""DCASE 2024 task: per-dataset class masks (no gradient from a dataset's items to the classes it does not
annotate), DESED-only consistency, schedule, MAESTRO recording split, missing-embedding report."""
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml

from desed_task.data.encoder import ManyHotEncoder
from desed_task.data.maestro import DCASE2024_CLASSES, MAESTRO_VALID_CLASSES, MaestroChunkSet, find_recordings
from desed_task.training.dcase2024 import (
    DCASE2024Task, lr_factor, require_embeddings, split_maestro_recordings,
)
from desed_task.utils.errors import BadInput

REPO = Path(__file__).resolve().parents[2]
SIZES = [2, 1, 1, 2, 2]


@pytest.fixture(scope="module")
def task():
    config = yaml.safe_load((REPO / "confs/dcase2024_task4_baseline/demo.yaml").read_text())
    config["pretrained"].update(e2e=False, extracted_embeddings_dir="unused")
    config["net"].update(nb_filters=[4, 8, 8, 8, 8, 8, 8], n_RNN_cell=8, embedding_size=16)
    task = DCASE2024Task(config, evaluation=True)
    task.train_batch_sizes = list(SIZES)
    return task


def test_masked_classes_get_no_gradient_from_each_dataset(task):
    torch.manual_seed(0)
    n = sum(SIZES)
    frames = task.encoder.n_frames
    batch = (torch.randn(n, 160000) * 0.1, torch.rand(n, 27, frames), torch.ones(n, frames, dtype=torch.bool),
             [f"clip{i}.wav" for i in range(n)], torch.randn(n, 16, 20))
    task.mixup_this_step = lambda: True  # exercise the per-group mixup too
    outputs = {}

    def keep(name):
        def hook(module, inputs, output):
            output.retain_grad()
            outputs[name] = output
        return hook

    handles = [task.sed_student.dense.register_forward_hook(keep("strong")),
               task.sed_student.dense_softmax.register_forward_hook(keep("attention"))]
    try:
        train_batch = task.prepare_train_batch(batch)
        student = task.student_forward(train_batch)
        with torch.no_grad():
            teacher = task.teacher_forward(train_batch)
        losses = task.training_losses(train_batch, student, teacher)
        losses["loss"].backward()
    finally:
        for handle in handles:
            handle.remove()
    valid = task.batch_class_mask()
    assert valid[:2].sum(1).tolist() == [len(MAESTRO_VALID_CLASSES)] * 2 and valid[2:].sum(1).tolist() == [10] * 6
    for name in ("strong", "attention"):
        grad = outputs[name].grad.abs().amax(1)  # (B, 27): largest gradient over frames
        assert grad[~valid].max() == 0, name
        # the attention only reaches the weak outputs, which no loss uses on MAESTRO items (as officially)
        reached = grad[2:][valid[2:]] if name == "attention" else grad[valid]
        assert (reached > 0).float().mean() > 0.9, name
    assert train_batch.labels[~valid].abs().max() == 0
    assert losses["weight"] >= 0


def test_consistency_loss_only_on_desed_items(task):
    n = sum(SIZES)
    strong, weak = torch.rand(n, 27, 5), torch.rand(n, 27)
    batch = SimpleNamespace(strong_mask=torch.arange(n) < 4, weak_mask=(torch.arange(n) >= 4) & (torch.arange(n) < 6),
                            labels=torch.zeros(n, 27, 5), weak_labels=torch.zeros(2, 27))
    teacher_strong, teacher_weak = strong.clone(), weak.clone()
    teacher_strong[:2] += 0.5  # the teacher differs on the MAESTRO items only
    teacher_weak[:2] -= 0.5
    losses = task.training_losses(batch, (strong, weak), (teacher_strong, teacher_weak))
    assert losses["student/strong_self_sup_loss"] == 0 and losses["student/weak_self_sup_loss"] == 0
    teacher_strong[2] += 0.5
    losses = task.training_losses(batch, (strong, weak), (teacher_strong, teacher_weak))
    assert losses["student/strong_self_sup_loss"] > 0


def test_learning_rate_schedule():
    warmup, constant, total, floor = 50, 100, 300, 1e-5
    assert lr_factor(25, warmup, constant, total, floor) == pytest.approx(np.exp(-5 * 0.25))
    assert lr_factor(50, warmup, constant, total, floor) == 1 and lr_factor(100, warmup, constant, total, floor) == 1
    assert lr_factor(200, warmup, constant, total, floor) == pytest.approx(0.5)
    assert lr_factor(300, warmup, constant, total, floor) == floor
    assert lr_factor(1, warmup, constant, total, floor) == pytest.approx(np.exp(-5 * (49 / 50) ** 2))


def test_maestro_split_per_scene():
    names = [f"cafe_restaurant_{i:02d}" for i in range(7)] + [f"metro_station_{i:02d}" for i in range(6)]
    train, valid = split_maestro_recordings(names, 0.9, 42)
    assert len(train) == 6 + 5 and len(valid) == 2 and sorted(train + valid) == sorted(names)
    assert {v.rsplit("_", 1)[0] for v in valid} == {"cafe_restaurant", "metro_station"}
    assert split_maestro_recordings(names, 0.9, 42) == (train, valid)


def test_missing_maestro_embeddings_are_named_before_training(tmp_path):
    (tmp_path / "development_audio/x").mkdir(parents=True)
    (tmp_path / "development_annotation/x").mkdir(parents=True)
    sf.write(str(tmp_path / "development_audio/x/city_center_00.wav"), np.zeros(16000 * 12, dtype=np.float32), 16000)
    (tmp_path / "development_annotation/x/city_center_00.txt").write_text("0.5\t2.0\tcar\t0.8\n")
    chunks = MaestroChunkSet(find_recordings(tmp_path), ManyHotEncoder(DCASE2024_CLASSES), hop=1.0)
    reader = SimpleNamespace(index={"city_center_00-000000-001000": 0}, path=tmp_path / "maestro_real_train.hdf5")
    with pytest.raises(BadInput, match=r"no embedding for 2 MAESTRO chunk\(s\).*city_center_00-000100-001100\.wav"):
        require_embeddings(chunks, reader, "maestro_train", tmp_path / "reports")
    assert "city_center_00-000200-001200.wav" in (tmp_path / "reports/missing_embeddings_maestro_train.tsv").read_text()
