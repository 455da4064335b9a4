"""ProbeTask: baseline weights loaded by name, only the head trains, the frozen encoder never changes."""
from pathlib import Path

import pytest
import torch

from desed_task.nnet.crnn import CRNN
from desed_task.training.probe import ProbeTask, input_frames, probe_settings
from desed_task.utils.config import load_config

REPO = Path(__file__).resolve().parents[2]
TINY_NET = ["net.nb_filters=[4,8,8,8,8,8,8]", "net.n_RNN_cell=8"]
SAMPLES = 16000  # 1 s clips (data.audio_max_len=1): 63 log-mel frames, 15 label frames


@pytest.fixture(scope="module")
def baseline_checkpoint(tmp_path_factory):
    """A baseline-style checkpoint of a tiny CRNN, keys in shuffled order, teacher different from student."""
    torch.manual_seed(1)
    student, teacher = CRNN(nb_filters=[4, 8, 8, 8, 8, 8, 8], n_RNN_cell=8), CRNN(nb_filters=[4, 8, 8, 8, 8, 8, 8],
                                                                                  n_RNN_cell=8)
    for module in student.modules():  # non-trivial batch-norm statistics, as after training
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    state = {f"sed_student.{k}": v for k, v in student.state_dict().items()}
    state.update({f"sed_teacher.{k}": v for k, v in teacher.state_dict().items()})
    keys = list(state)
    order = torch.randperm(len(keys), generator=torch.Generator().manual_seed(0)).tolist()
    path = tmp_path_factory.mktemp("ckpt") / "default_3.ckpt"
    torch.save({"state_dict": {keys[i]: state[keys[i]] for i in order}, "hyper_parameters": {}}, path)
    return path, student.state_dict()


def make_task(checkpoint, layer="l5", frozen_eval_mode=True):
    overrides = [*TINY_NET, f"probe.layer={layer}", f"probe.encoder_checkpoint={checkpoint}",
                 f"probe.frozen_eval_mode={frozen_eval_mode}", "probe.time_frames=15", "data.audio_max_len=1",
                 "training.batch_size=[2,2,4]"]
    torch.manual_seed(0)
    return ProbeTask(load_config(REPO / "confs/irct/probe_h8_l5_3.yaml", overrides))


def raw_batch(seed):
    generator = torch.Generator().manual_seed(seed)
    audio = 0.1 * torch.randn(8, SAMPLES, generator=generator)
    labels = (torch.rand(8, 10, 15, generator=generator) > 0.7).float()
    labels[4:] = 0
    return audio, labels, torch.ones(8, 15, dtype=torch.bool), [f"clip{i}.wav" for i in range(8)]


def train_steps(task, n_steps=3):
    """Optimiser steps through the task's hooks in the order training_step / optimizer_step use them."""
    optimizer = task.configure_optimizers()["optimizer"]
    task.train()
    for step in range(1, n_steps + 1):
        batch = task.prepare_train_batch(raw_batch(step))
        student = task.detect(batch.features, task.sed_student)
        with torch.no_grad():
            teacher = task.detect(batch.features, task.sed_teacher)
        task.training_losses(batch, student, teacher)["loss"].backward()
        optimizer.step()
        optimizer.zero_grad()
        task.update_teacher(step)


def snapshot(module):
    return {k: v.clone() for k, v in module.state_dict().items()}


def changed(before, module):
    return {k for k, v in module.state_dict().items() if not torch.equal(v, before[k])}


def test_encoder_weights_are_the_baseline_student_loaded_by_name(baseline_checkpoint):
    path, student_state = baseline_checkpoint
    task = make_task(path)
    for model in (task.sed_student, task.sed_teacher):
        encoder_state = model.encoder.state_dict()
        assert encoder_state.keys() == student_state.keys()
        assert all(torch.equal(encoder_state[k], v) for k, v in student_state.items())


def test_optimiser_holds_only_the_head(baseline_checkpoint):
    task = make_task(baseline_checkpoint[0])
    optimised = {id(p) for group in task.configure_optimizers()["optimizer"].param_groups for p in group["params"]}
    assert optimised == {id(p) for p in task.sed_student.head.parameters()}


@pytest.mark.parametrize("layer", ["l1", "l8"])
def test_training_steps_update_the_head_and_never_the_frozen_encoder(baseline_checkpoint, layer):
    task = make_task(baseline_checkpoint[0], layer=layer)
    student_encoder, teacher_encoder = snapshot(task.sed_student.encoder), snapshot(task.sed_teacher.encoder)
    student_head, teacher_head = snapshot(task.sed_student.head), snapshot(task.sed_teacher.head)
    train_steps(task)
    assert not changed(student_encoder, task.sed_student.encoder)  # weights and batch-norm statistics
    assert not changed(teacher_encoder, task.sed_teacher.encoder)
    assert changed(student_head, task.sed_student.head) and changed(teacher_head, task.sed_teacher.head)


def test_switch_off_updates_encoder_batch_norm_statistics_but_never_weights(baseline_checkpoint):
    task = make_task(baseline_checkpoint[0], frozen_eval_mode=False)
    encoder = snapshot(task.sed_student.encoder)
    train_steps(task, n_steps=1)
    moved = changed(encoder, task.sed_student.encoder)
    assert moved and all("running_" in k or "num_batches_tracked" in k for k in moved)


def test_settings_and_missing_checkpoint(tmp_path):
    config = load_config(REPO / "confs/irct/probe_h32_l8_3.yaml")
    settings = probe_settings(config)
    assert settings["layer"] == "l8" and settings["hidden_size"] == 32 and settings["frozen_eval_mode"] is True
    assert settings["encoder_checkpoint"] == "ckpt/default/default_3.ckpt" and input_frames(config) == 626
    with pytest.raises(ValueError, match="probe"):
        probe_settings({"probe": {"layer": "l1"}})
    with pytest.raises(FileNotFoundError, match="README"):
        make_task(tmp_path / "absent.ckpt")


def test_architecture_mismatch_is_reported_by_name(baseline_checkpoint):
    overrides = [f"probe.encoder_checkpoint={baseline_checkpoint[0]}", "data.audio_max_len=1"]
    with pytest.raises(KeyError, match="unexpected keys"):  # a 1-layer GRU lacks the *_l1 weights
        ProbeTask(load_config(REPO / "confs/irct/probe_h8_l5_3.yaml", [*overrides, *TINY_NET, "net.rnn_layers=1"]))
