"""Mean-teacher pieces of SEDTask: EMA update, batch layout, losses, mixup inside batch parts, checkpoints."""
import math
from pathlib import Path

import pytest
import torch
from torch import nn

from desed_task.training.sed import SEDTask, TrainBatch, batch_masks, ema_update, load_sed_checkpoint
from desed_task.training.sed_scoring import psds_thresholds
from desed_task.utils.config import load_config

CONF = Path(__file__).resolve().parents[2] / "confs/dcase2022_task4_baseline/default.yaml"


@pytest.fixture
def task():
    config = load_config(CONF, ["net.nb_filters=[4,8,8,8,8,8,8]", "net.n_RNN_cell=8", "training.batch_size=[2,2,4]"])
    return SEDTask(config)


def test_ema_alpha_ramps_then_caps():
    student, teacher = nn.Linear(3, 2), nn.Linear(3, 2)
    teacher_before = [p.clone() for p in teacher.parameters()]
    alpha = ema_update(teacher, student, 0.999, step=1)
    assert alpha == 0.5
    for t, t0, s in zip(teacher.parameters(), teacher_before, student.parameters()):
        torch.testing.assert_close(t, 0.5 * t0 + 0.5 * s)
    assert ema_update(teacher, student, 0.999, step=9) == pytest.approx(0.9)
    assert ema_update(teacher, student, 0.999, step=10**6) == 0.999


def test_ema_of_identical_models_changes_nothing():
    student = nn.Linear(3, 2)
    teacher = nn.Linear(3, 2)
    teacher.load_state_dict(student.state_dict())
    ema_update(teacher, student, 0.999, step=5)
    for t, s in zip(teacher.parameters(), student.parameters()):
        torch.testing.assert_close(t, s)


def test_batch_masks_layout():
    strong, weak, unlabeled = batch_masks([2, 3, 4])
    assert strong.tolist() == [True] * 2 + [False] * 7
    assert weak.tolist() == [False] * 2 + [True] * 3 + [False] * 4
    assert unlabeled.tolist() == [False] * 5 + [True] * 4
    strong, weak, unlabeled = batch_masks([1, 2, 3, 4])  # --strong_real: synthetic and real strong parts
    assert strong.sum() == 3 and weak[3:6].all() and weak.sum() == 3 and unlabeled.sum() == 4


def test_teacher_starts_as_frozen_copy(task):
    for (name, s), t in zip(task.sed_student.named_parameters(), task.sed_teacher.parameters()):
        assert torch.equal(s, t) and s.requires_grad and not t.requires_grad, name
    assert list(task.trainable_parameters()) == list(task.sed_student.parameters())


def fake_batch(task, n=8, frames=156):
    generator = torch.Generator().manual_seed(0)
    labels = (torch.rand(n, 10, frames, generator=generator) > 0.7).float()
    strong, weak, unlabeled = batch_masks(task.train_batch_sizes)
    labels[unlabeled] = 0
    return TrainBatch(audio=torch.zeros(n, 10), features=torch.zeros(n, 128, 626), labels=labels,
                      weak_labels=labels[weak].amax(-1), strong_mask=strong, weak_mask=weak, unlabeled_mask=unlabeled)


def test_losses_supervised_parts_and_zero_consistency_for_identical_outputs(task):
    batch = fake_batch(task)
    generator = torch.Generator().manual_seed(1)
    strong = torch.rand(8, 10, 156, generator=generator)
    weak = torch.rand(8, 10, generator=generator)
    losses = task.training_losses(batch, (strong, weak), (strong.clone(), weak.clone()))
    expected_strong = nn.functional.binary_cross_entropy(strong[:2], batch.labels[:2])
    expected_weak = nn.functional.binary_cross_entropy(weak[2:4], batch.labels[2:4].amax(-1))
    torch.testing.assert_close(losses["student/loss_strong"], expected_strong)
    torch.testing.assert_close(losses["student/loss_weak"], expected_weak)
    assert losses["student/tot_self_loss"] == 0
    torch.testing.assert_close(losses["loss"], expected_strong + expected_weak)


def test_consistency_is_mse_on_whole_batch_times_warmup_weight(task):
    task.rampup_length = 100  # global_step is 0: weight = const_max * exp(-5 (1 - 1/100)^2)
    batch = fake_batch(task)
    strong, weak = torch.full((8, 10, 156), 0.3), torch.full((8, 10), 0.6)
    teacher = (torch.full((8, 10, 156), 0.5), torch.full((8, 10), 0.2))
    losses = task.training_losses(batch, (strong, weak), teacher)
    weight = 2 * math.exp(-5 * (1 - 1 / 100) ** 2)
    assert float(losses["weight"]) == pytest.approx(weight)
    assert float(losses["student/tot_self_loss"]) == pytest.approx((0.2**2 + 0.4**2) * weight)


def test_mixup_stays_inside_the_weak_and_strong_parts(task):
    batch = fake_batch(task)
    amplitude = torch.ones(8, 128, 626) * torch.arange(1, 9).view(8, 1, 1).float()
    for _ in range(20):  # mixup is drawn with probability 0.5: some draws must mix
        mixed = task.augment(fake_batch(task), amplitude.clone())
        values = 10 ** (mixed.features[:, 0, 0] / 20)
        assert ((values[:2] >= 1 - 1e-4) & (values[:2] <= 2 + 1e-4)).all()
        assert ((values[2:4] >= 3 - 1e-4) & (values[2:4] <= 4 + 1e-4)).all()
        torch.testing.assert_close(values[4:], torch.arange(5, 9).float(), rtol=1e-4, atol=1e-4)
    assert batch.labels.max() <= 1


def test_mixup_draws_repeat_with_the_seed(task):
    other = SEDTask(task.config)
    amplitude = torch.rand(8, 128, 626) + 0.1
    for _ in range(5):
        a = task.augment(fake_batch(task), amplitude.clone())
        b = other.augment(fake_batch(other), amplitude.clone())
        torch.testing.assert_close(a.features, b.features)
        torch.testing.assert_close(a.labels, b.labels)


def test_psds_thresholds_are_the_baseline_operating_points():
    thresholds = psds_thresholds(50)
    assert len(thresholds) == 50
    assert thresholds[0] == pytest.approx(0.01) and thresholds[-1] == pytest.approx(0.99)


def test_load_checkpoint_with_official_names_ignores_mel_buffers(task):
    source = SEDTask(task.config)
    for param in source.sed_teacher.parameters():
        param.data.add_(1.0)
    state = {f"sed_student.{k}": v for k, v in source.sed_student.state_dict().items()}
    state.update({f"sed_teacher.{k}": v for k, v in source.sed_teacher.state_dict().items()})
    state["mel_spec.mel_scale.fb"] = torch.zeros(1025, 128)
    load_sed_checkpoint(task, {"state_dict": state})
    for key, value in task.sed_teacher.state_dict().items():
        assert torch.equal(value, state[f"sed_teacher.{key}"])
    state.pop("sed_teacher.dense.weight")
    with pytest.raises(KeyError):
        load_sed_checkpoint(task, {"state_dict": state})


def test_baseline_validation_sets_logs_and_buffers_are_unchanged(task, monkeypatch):
    """The two baseline sets: the synthetic one scored on the frame outputs and labels, the weak split on the
    clip outputs and labels, each buffered under its name and passed to `_validation_metrics` by name."""
    assert {name: kind for name, (_, kind) in task.validation_sets().items()} == {"synth": "strong", "weak": "weak"}
    logged, received = {}, {}
    monkeypatch.setattr(task, "log", lambda name, value, **kwargs: logged.setdefault(name, value))
    monkeypatch.setattr(task, "_validation_metrics", lambda **sets: received.update(sets) or {})
    generator = torch.Generator().manual_seed(0)
    audio = torch.randn(2, 160000, generator=generator) * 0.1
    labels = (torch.rand(2, 10, 156, generator=generator) > 0.7).float()
    task.eval()
    with torch.no_grad():
        task.validation_step((audio, labels, None, ["a.wav", "b.wav"]), 0, dataloader_idx=0)
        task.validation_step((audio, labels, None, ["c.wav", "d.wav"]), 0, dataloader_idx=1)
        strong, weak = task.detect(task.mel(audio), task.sed_teacher)
    assert set(logged) == {f"val/{part}/{model}/loss_{kind}" for part, kind in (("synth", "strong"), ("weak", "weak"))
                           for model in ("student", "teacher")}
    bce = nn.functional.binary_cross_entropy
    torch.testing.assert_close(logged["val/synth/teacher/loss_strong"], bce(strong, labels))
    torch.testing.assert_close(logged["val/weak/teacher/loss_weak"], bce(weak, labels.amax(-1)))
    task.on_validation_epoch_end()
    assert set(received) == {"synth", "weak"}
    assert received["synth"]["file_id"] == ["a.wav", "b.wav"] and received["weak"]["file_id"] == ["c.wav", "d.wav"]
    torch.testing.assert_close(torch.stack(received["synth"]["teacher"]), strong)
    torch.testing.assert_close(torch.stack(received["weak"]["target"]), labels.amax(-1))
