"""CP-Mobile training pieces: the official KD loss and its switch, the loss hook, QAT fold/convert fidelity."""
import copy

import pytest
import torch
import torch.nn.functional as F

from desed_task.data.tau22 import TAU22_CLASSES, TAU22_DEVICES
from desed_task.nnet import CPMobile
from desed_task.nnet.quantization import convert_to_int8, prepare_qat_model, set_observers_frozen
from desed_task.training.cp_mobile import CPMobileQATTask, CPMobileTask, distillation_loss


def test_distillation_loss_official_average_and_batchmean():
    torch.manual_seed(0)
    student, teacher = torch.randn(4, 10), torch.randn(4, 10)
    p_teacher = F.softmax(teacher / 2, -1)
    per_clip_kl = (p_teacher * (p_teacher.log() - F.log_softmax(student / 2, -1))).sum(-1)
    official = distillation_loss(student, teacher, 2.0)
    assert official == pytest.approx(float(per_clip_kl.mean() / 10 * 4), rel=1e-5)  # / n_classes, x T^2
    batchmean = distillation_loss(student, teacher, 2.0, "batchmean")
    assert batchmean == pytest.approx(float(per_clip_kl.mean() * 4), rel=1e-5)
    with pytest.raises(ValueError, match="kd_reduction"):
        distillation_loss(student, teacher, 2.0, "sum")


def small_config(**training):
    return {"training": {"batch_size": 4, "n_epochs": 2, "dir_prob": 0.0, "roll": 0, "mixstyle_p": 0.0,
                         "kd_lambda": 0.02, "temperature": 2.0, **training},
            "opt": {"name": "adam", "lr": 1e-3, "weight_decay": 1e-4}, "model": {}, "mel": {}}


def test_loss_hook_combines_label_and_kd_and_needs_a_teacher():
    task = CPMobileTask(small_config(), TAU22_CLASSES, group_names=TAU22_DEVICES)
    logits, teacher = torch.randn(3, 10), torch.randn(3, 10)
    batch = {"label": torch.tensor([0, 3, 9]), "teacher_logits": teacher}
    loss, parts = task.training_loss(logits, batch)
    expected = 0.02 * F.cross_entropy(logits, batch["label"]) + 0.98 * distillation_loss(logits, teacher, 2.0)
    assert loss == pytest.approx(float(expected)) and set(parts) == {"label_loss", "kd_loss"}
    with pytest.raises(ValueError, match="--kd_lambda=1"):
        task.training_loss(logits, {"label": batch["label"]})
    label_only = CPMobileTask(small_config(kd_lambda=1.0), TAU22_CLASSES)
    loss, parts = label_only.training_loss(logits, {"label": batch["label"]})
    assert loss == pytest.approx(float(F.cross_entropy(logits, batch["label"]))) and set(parts) == {"label_loss"}
    with pytest.raises(ValueError, match="data.dir_path"):
        CPMobileTask(small_config(dir_prob=0.6), TAU22_CLASSES)


def test_qat_fold_and_convert_keep_the_logits(anchors):
    """Folding is exact to float precision. Without QAT fine-tuning, the int8 model stays within a few
    output quantisation steps of the fake-quantised model on average (the two differ in how per-channel
    weight ranges are rounded) and keeps most decisions of the float model on calibrated features."""
    from desed_task.features import CPJKUFrontend

    model = CPMobile.load_official(anchors / "cpjku_dcase23" / "cp_mobile_c0a7nzin_epoch149.ckpt").eval()
    generator = torch.Generator().manual_seed(0)
    t = torch.arange(32000) / 32000
    tones = torch.stack([torch.sin(2 * torch.pi * f * t) for f in torch.linspace(100, 8000, 12)])
    audio = 0.1 * tones + 0.02 * torch.randn(12, 32000, generator=generator)
    features = CPJKUFrontend().eval()(audio)
    with torch.no_grad():
        reference = model(features)
        folded = copy.deepcopy(model).fuse_model()
        assert torch.allclose(folded(features), reference, atol=1e-4)
        qat = prepare_qat_model(copy.deepcopy(model))
        for _ in range(3):
            qat(features)
        set_observers_frozen(qat, True)
        qat.eval()
        fake = qat(features)
        int8 = convert_to_int8(qat)(features)
    output_step = float(qat.feed_forward[0].activation_post_process.scale)  # the head's int8 step
    assert (int8 - fake).abs().mean() <= 4 * output_step
    assert (int8.argmax(1) == fake.argmax(1)).float().mean() >= 0.75
    assert (int8.argmax(1) == reference.argmax(1)).float().mean() >= 0.75
    assert (int8 - reference).abs().mean() < 0.25 * reference.abs().mean()
    # within the quantisation error: int8 is no farther from the float logits than the fake-quantised model
    # (measured 0.17 against 0.39 of the mean |logit|)
    assert (int8 - reference).abs().mean() <= (fake - reference).abs().mean()


def test_qat_task_loads_checkpoint_and_freezes_observers_late(anchors, tmp_path):
    config = small_config()
    config["qat"] = {"checkpoint": str(anchors / "cpjku_dcase23" / "cp_mobile_c0a7nzin_epoch149.ckpt"),
                     "freeze_observer_epochs": 4}
    config["training"]["n_epochs"] = 20
    task = CPMobileQATTask(config, TAU22_CLASSES)
    assert task.freeze_from_epoch == 16
    assert task.model.in_c[0][0].weight_fake_quant is not None
    assert task.model.in_c[0][0].bias.requires_grad
    assert sum(p.numel() for p in task.model.parameters()) == 124_862
