"""ATST-SED stages: parameter groups and learning rates, schedules, losses, the stage-1 checkpoint criterion on
the strong real validation set, the stage-2 initialisation and end-to-end `--fast_dev_run`s of both recipes
on a generated mini DESED with a strong real set and its validation split."""
import json
import logging
import math
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from desed_task.data.mini import ensure_mini_dataset
from desed_task.nnet import ATSTSED
from desed_task.training.atst_sed import (ATSTBatch, ATSTSEDStage1, ATSTSEDStage2, atst_parameter_groups,
                                         buffered_bce)
from desed_task.data.mini import resolve_config
from desed_task.training.run import main
from desed_task.training.schedulers import ExponentialWarmup
from desed_task.training.sed import SEDTask, TrainBatch, batch_masks, load_sed_checkpoint
from desed_task.utils.config import load_config

REPO = Path(__file__).resolve().parents[2]
DEMO = str(REPO / "confs/atst_sed/demo.yaml")
STAGE2_OPT = {"cnn_lr": 2e-4, "rnn_lr": 2e-3, "tfm_lr": 2e-4, "tfm_lr_scale": 0.5, "tfm_trainable_layers": 14}


def twelve_block_model() -> ATSTSED:
    """The published layer structure (12 ATST blocks) at a small width."""
    return ATSTSED(atst={"embed_dim": 32, "depth": 12, "num_heads": 4}, nb_filters=[4, 8, 8, 8, 8, 8, 8], n_RNN_cell=8)


def test_stage2_has_16_groups_with_layerwise_decay():
    model = twelve_block_model()
    groups = atst_parameter_groups(model, STAGE2_OPT)
    assert len(groups) == 16
    assert [g["lr"] for g in groups[:2]] == [2e-4, 2e-3]
    for index, group in enumerate(groups[2:]):
        assert group["lr"] == pytest.approx(2e-4 * 0.5 ** index)
    assert groups[-1]["lr"] == pytest.approx(2.44140625e-08)
    names = {id(p): n for n, p in model.named_parameters()}
    members = [{names[id(p)] for p in g["params"]} for g in groups]
    assert all(n.startswith("cnn.") for n in members[0])
    assert {n.split(".")[0] for n in members[1]} == {"rnn", "cat_tf", "dense", "dense_softmax"}
    assert members[2] == {"atst_frame.atst.norm_frame.weight", "atst_frame.atst.norm_frame.bias"}
    assert all(n.startswith("atst_frame.atst.blocks.11.") for n in members[3])
    assert all(n.startswith("atst_frame.atst.blocks.0.") for n in members[14])
    assert members[15] == {"atst_frame.atst.patch_embed.patch_embed.weight",
                           "atst_frame.atst.patch_embed.patch_embed.bias", "atst_frame.atst.pos_embed",
                           "atst_frame.atst.mask_embed"}
    assert sum(len(m) for m in members) == len(names)  # every parameter in exactly one group
    assert all(p.requires_grad for p in model.parameters())


def test_stage1_groups_freeze_the_atst():
    model = twelve_block_model()
    groups = atst_parameter_groups(model, {**STAGE2_OPT, "cnn_lr": 1e-3, "rnn_lr": 1e-3, "tfm_trainable_layers": 0})
    assert [g["name"] for g in groups] == ["cnn", "rnn"] and [g["lr"] for g in groups] == [1e-3, 1e-3]
    assert not any(p.requires_grad for p in model.atst_frame.parameters())
    with pytest.raises(ValueError, match="tfm_trainable_layers"):
        atst_parameter_groups(model, {**STAGE2_OPT, "tfm_trainable_layers": 15})


def test_stage2_schedule_values_at_chosen_steps():
    """Published stage 2: 29 steps per epoch, 10 warm-up epochs (R = 290), 250 epochs (N = 7250)."""
    parameters = [torch.nn.Parameter(torch.zeros(1)) for _ in range(2)]
    optimizer = torch.optim.Adam([{"params": [parameters[0]], "lr": 2e-3}, {"params": [parameters[1]], "lr": 2e-4}])
    scheduler = ExponentialWarmup(optimizer, None, rampup_length=290, total_steps=7250, min_scale=0.1)
    expected = {
        1: math.exp(-5 * (1 - 1 / 290) ** 2),
        145: math.exp(-5 * 0.25),
        290: 1.0,
        (290 + 7250) // 2: 0.1 + 0.9 * (math.cos(math.pi * 3480 / 6960) + 1) / 2,
        7250: 0.1,
        8000: 0.1,
    }
    for step in range(1, 8001):
        if step in expected:
            assert scheduler.step_num == step
            assert optimizer.param_groups[0]["lr"] == pytest.approx(2e-3 * expected[step], rel=1e-12)
            assert optimizer.param_groups[1]["lr"] == pytest.approx(2e-4 * expected[step], rel=1e-12)
        optimizer.step()
        scheduler.step()
    assert expected[3770] == pytest.approx(0.55)


def test_stage1_schedule_is_constant_after_the_warmup():
    optimizer = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=1e-3)
    scheduler = ExponentialWarmup(optimizer, None, rampup_length=2950)  # 59 steps x 50 epochs
    lrs = []
    for _ in range(4000):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert lrs[0] == pytest.approx(1e-3 * math.exp(-5 * (1 - 1 / 2950) ** 2))
    assert lrs[2949] == 1e-3 and lrs[-1] == 1e-3


@pytest.fixture(scope="module")
def demo_config():
    return load_config(DEMO, ["net.nb_filters=[4,8,8,8,8,8,8]", "net.n_RNN_cell=8",
                              "net.atst={embed_dim: 16, depth: 1, num_heads: 2}"])


def test_ict_and_mean_teacher_losses(demo_config):
    task = ATSTSEDStage2(demo_config)
    torch.manual_seed(0)
    n, frames = 6, 5
    strong_mask = torch.tensor([1, 1, 0, 0, 0, 0], dtype=torch.bool)
    weak_mask = torch.tensor([0, 0, 1, 1, 0, 0], dtype=torch.bool)
    unlabeled_mask = ~(strong_mask | weak_mask)
    labels = (torch.rand(n, 10, frames) > 0.5).float()
    weak_labels = labels[weak_mask].amax(-1)
    student = (torch.rand(n, 10, frames), torch.rand(n, 10))
    teacher = (torch.rand(n, 10, frames), torch.rand(n, 10))
    batch = ATSTBatch(torch.zeros(n, 1), None, labels, weak_labels, strong_mask, weak_mask, unlabeled_mask)
    task.rampup_length = 0  # weight = const_max
    weight = float(demo_config["training"]["const_max"])
    mse, bce = torch.nn.functional.mse_loss, torch.nn.functional.binary_cross_entropy
    supervised = bce(student[0][:2], labels[:2]) + bce(student[1][2:4], weak_labels) / 2

    mean_teacher = task.training_losses(batch, student, teacher)
    expected = supervised + (mse(student[0], teacher[0]) + mse(student[1], teacher[1]) / 2) * weight
    torch.testing.assert_close(mean_teacher["loss"], expected)

    permutation, c = torch.tensor([1, 0]), 0.3
    batch.mix = {"draws": {part: (mask, permutation, c) for part, mask in
                           (("strong", strong_mask), ("weak", weak_mask), ("unlabeled", unlabeled_mask))},
                 "labels": labels, "weak_labels": weak_labels}
    ict = 0.0
    for mask in (strong_mask, weak_mask, unlabeled_mask):
        t_strong, t_weak = teacher[0][mask], teacher[1][mask]
        ict = ict + mse(student[0][mask], (c * t_strong + (1 - c) * t_strong[[1, 0]]).clamp(0, 1)) + mse(
            student[1][mask], (c * t_weak + (1 - c) * t_weak[[1, 0]]).clamp(0, 1)) / 2
    losses = task.training_losses(batch, student, teacher)
    torch.testing.assert_close(losses["loss"], supervised + ict / 6 * weight / 4)


def test_stage2_mixes_both_frontends_alike_and_gives_the_teacher_unmixed_inputs(demo_config):
    task = ATSTSEDStage2(demo_config)
    audio = torch.randn(8, 16000) * 0.1
    mel = task.mel.mel_amplitude(audio)
    labels = torch.zeros(8, 10, 8)
    labels[:, 3] = 1.0
    strong, weak, unlabeled = batch_masks([2, 2, 2, 2])
    mixed = None
    for _ in range(20):  # mixup and warping each happen with probability 0.5
        batch = task.augment(TrainBatch(audio, mel, labels, labels[weak].amax(-1), strong, weak, unlabeled), mel)
        if batch.mix is not None:
            mixed = batch
            break
    assert mixed is not None
    torch.testing.assert_close(mixed.teacher_features[0], task.mel.to_db(mel))
    for mask, permutation, c in mixed.mix["draws"].values():
        crnn_power = task.mel.mel_amplitude(audio)[mask]
        expected_crnn = c * crnn_power + (1 - c) * crnn_power[permutation.tolist()]
        torch.testing.assert_close(mixed.features[0][mask], task.mel.to_db(expected_crnn))


def test_stage2_without_model_init_names_the_config_key(demo_config, tmp_path):
    with pytest.raises(ValueError, match="init.model_init"):
        ATSTSEDStage2(demo_config, train_data=torch.utils.data.ConcatDataset([[0]]), train_batch_sizes=[1, 1, 1, 1])
    config = {**demo_config, "init": {"model_init": str(tmp_path / "missing.ckpt")}}
    with pytest.raises(FileNotFoundError, match="init.model_init = .*missing.ckpt"):
        ATSTSEDStage2(config, train_data=torch.utils.data.ConcatDataset([[0]]), train_batch_sizes=[1, 1, 1, 1])


def clip_buffers(shape: tuple[int, ...], n: int, seed: int) -> dict:
    """Validation buffers of `n` clips: per-clip outputs of both models and targets, as `_collect` returns them."""
    generator = torch.Generator().manual_seed(seed)
    values = {model: list(torch.rand(n, *shape, generator=generator) * 0.98 + 0.01) for model in ("student", "teacher")}
    return {"file_id": [f"{seed}_{i}.wav" for i in range(n)], **values,
            "target": list((torch.rand(n, *shape, generator=generator) > 0.6).float())}


def mean_bce(outputs: list, targets: list) -> float:
    p, y = torch.stack(outputs).double(), torch.stack(targets).double()
    return float(-(y * p.log() + (1 - y) * (1 - p).log()).mean())


def test_stage1_criterion_is_the_teachers_weak_and_strong_real_bce(demo_config, monkeypatch):
    monkeypatch.setattr(SEDTask, "_validation_metrics", lambda self, synth, weak: {})  # only stage 1's additions
    task = ATSTSEDStage1(demo_config)
    weak, synth, strong_real = clip_buffers((10,), 5, 1), clip_buffers((10, 7), 4, 2), clip_buffers((10, 7), 3, 3)
    results = task._validation_metrics(synth, weak, strong_real=strong_real)
    for model in ("student", "teacher"):
        weak_bce = mean_bce(weak[model], weak["target"])
        strong_bce = mean_bce(strong_real[model], strong_real["target"])
        assert results[f"val/weak/{model}/bce"] == pytest.approx(weak_bce, rel=1e-5)
        assert results[f"val/strong_real/{model}/bce"] == pytest.approx(strong_bce, rel=1e-5)
        assert results[f"val/{model}/bce_weak_strong"] == pytest.approx((weak_bce + strong_bce) / 2, rel=1e-5)
    assert results["val/obj_metric"] == results["val/teacher/bce_weak_strong"]
    assert not any(name.startswith("val/synth/") for name in results)
    assert buffered_bce({}, "teacher") == 0.0

    fallback = task._validation_metrics(synth, weak)  # no strong real validation set: the synthetic one
    synth_bce = mean_bce(synth["teacher"], synth["target"])
    assert fallback["val/synth/teacher/bce"] == pytest.approx(synth_bce, rel=1e-5)
    assert fallback["val/obj_metric"] == pytest.approx((mean_bce(weak["teacher"], weak["target"]) + synth_bce) / 2,
                                                       rel=1e-5)


def test_stage1_without_strong_val_tsv_warns_and_validates_on_the_synthetic_set(demo_config, caplog):
    assert demo_config["data"]["strong_val_tsv"] is None
    with caplog.at_level(logging.WARNING, logger="desed_task.training.atst_sed"):
        task = ATSTSEDStage1(demo_config, train_data=torch.utils.data.ConcatDataset([[0]]),
                             train_batch_sizes=[1, 1, 1, 1])
    assert "config key data.strong_val_tsv is not set" in caplog.text and "synthetic validation set" in caplog.text
    assert list(task.validation_sets()) == ["synth", "weak"]


# ---------------------------------------------------------------------------------------- end-to-end runs
MINI = {"n_synth": 8, "n_weak": 8, "n_unlabeled": 8, "n_synth_val": 8, "n_test": 8, "n_strong": 8}


@pytest.fixture(scope="module")
def tiny_run_overrides() -> list[str]:
    root = Path(tempfile.gettempdir()) / "desed_task_tests" / "mini_desed_atst_8"
    ensure_mini_dataset(root, seed=0, **MINI)
    mini = "{" + f"out_dir: {root}, seed: 0, " + ", ".join(f"{k}: {v}" for k, v in MINI.items()) + "}"
    return [f"data.mini={mini}", "training.batch_size=[2,2,2,2]", "training.batch_size_val=8",
            "training.num_workers=0", "training.n_test_thresholds=5", "training.validation_interval=1",
            "net.nb_filters=[4,8,8,8,8,8,8]", "net.n_RNN_cell=8", "net.atst={embed_dim: 16, depth: 2, num_heads: 2}"]


def test_stage1_validates_on_the_mini_strong_real_validation_split(tiny_run_overrides, tmp_path):
    config = resolve_config(DEMO, tiny_run_overrides)
    task = ATSTSEDStage1(config, train_data=torch.utils.data.ConcatDataset([[0]]), train_batch_sizes=[2, 2, 2, 2],
                         log_dir=tmp_path)
    assert list(task.validation_sets()) == ["synth", "weak", "strong_real"]
    assert task.validation_sets()["strong_real"] == (task.valid_strong_real, "strong")
    expected = pd.read_csv(config["data"]["strong_val_dur"], sep="\t").filename
    assert sorted(task.valid_strong_real.filenames) == sorted(expected) and len(expected) == 1  # 8 / 8
    assert list(ATSTSEDStage2(config).validation_sets()) == ["synth", "weak"]  # stage 2: the baseline's sets


def logged_scalars(log_dir: Path) -> dict[str, list[float]]:
    """The values of every scalar of a run's TensorBoard events, in step order."""
    events = EventAccumulator(str(log_dir), size_guidance={"scalars": 0})
    events.Reload()
    return {tag: [event.value for event in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


class Stage2Recorder(ATSTSEDStage2):
    """Keeps the weights it starts training from."""

    start = None

    def on_train_start(self):
        Stage2Recorder.start = {name: {k: v.clone() for k, v in model.state_dict().items()}
                                for name, model in (("student", self.sed_student), ("teacher", self.sed_teacher))}


def test_fast_dev_runs_of_stage1_then_stage2(tmp_path, tiny_run_overrides):
    stage1_dir = tmp_path / "stage1"
    command = [sys.executable, str(REPO / "recipes/atst_sed/train_stage1.py"), "--conf_file", DEMO,
               "--log_dir", str(stage1_dir), "--gpus", "0", "--fast_dev_run", "--scores_file", "", *tiny_run_overrides]
    completed = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=1800)
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert "data.strong_val_tsv is not set" not in completed.stderr
    metrics = json.loads((stage1_dir / "test_metrics.json").read_text())
    assert "test/teacher/psds1_sed_scores_eval" in metrics
    scalars = logged_scalars(stage1_dir)
    assert len(scalars["val/obj_metric"]) == 3 and "val/strong_real/teacher/loss_strong" in scalars
    for objective, weak, strong in zip(scalars["val/obj_metric"], scalars["val/weak/teacher/bce"],
                                       scalars["val/strong_real/teacher/bce"]):
        assert objective == pytest.approx((weak + strong) / 2, rel=1e-5)

    stage1 = torch.load(stage1_dir / "last.ckpt", map_location="cpu", weights_only=False)
    assert any(k.startswith("sed_student.atst_frame.atst.") for k in stage1["state_dict"])
    assert "sed_student" in stage1 and "sed_teacher" in stage1  # the official raw dicts too
    results = main(["--conf_file", DEMO, "--log_dir", str(tmp_path / "stage2"), "--gpus", "0", "--fast_dev_run",
                    "--strong_real", "--scores_file", "", "--set", *tiny_run_overrides,
                    f"init.model_init={stage1_dir / 'last.ckpt'}", "opt.tfm_trainable_layers=4",
                    "training.const_max=70"], task_cls=Stage2Recorder)
    assert "test/teacher/psds1_sed_scores_eval" in results
    for name in ("student", "teacher"):
        for key, value in Stage2Recorder.start[name].items():
            assert torch.equal(value, stage1["state_dict"][f"sed_{name}.{key}"]), (name, key)
    start = Stage2Recorder.start
    assert not torch.equal(start["student"]["cat_tf.weight"], start["teacher"]["cat_tf.weight"])


def test_official_lightning_checkpoint_loads_as_it_is(demo_config):
    """The official layout: `sed_student.*` / `sed_teacher.*` plus the trainer's torchaudio buffers in
    `state_dict`, and raw module dicts at the top level (what `--test_from_checkpoint` reads)."""
    source = ATSTSEDStage1(demo_config)
    for param in source.sed_teacher.parameters():
        param.data.add_(1.0)
    state = {f"sed_{name}.{key}": value for name in ("student", "teacher")
             for key, value in getattr(source, f"sed_{name}").state_dict().items()}
    state["mel_spec.spectrogram.window"] = torch.ones(2048)
    state["mel_spec.mel_scale.fb"] = torch.ones(1025, 128)
    checkpoint = {"state_dict": state, "epoch": 249, "global_step": 7249,
                  "sed_student": source.sed_student.state_dict(), "sed_teacher": source.sed_teacher.state_dict()}
    target = ATSTSEDStage1(demo_config)
    load_sed_checkpoint(target, checkpoint)
    for name in ("student", "teacher"):
        for key, value in getattr(source, f"sed_{name}").state_dict().items():
            assert torch.equal(getattr(target, f"sed_{name}").state_dict()[key], value), (name, key)
    del state["sed_teacher.atst_frame.atst.pos_embed"]
    with pytest.raises(KeyError, match="atst_frame.atst.pos_embed"):
        load_sed_checkpoint(ATSTSEDStage1(demo_config), checkpoint)
