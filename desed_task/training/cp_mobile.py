"""CP-JKU DCASE 2023 Task 1 training: CP-Mobile distilled from teacher logits, and its int8 QAT stage.

``CPMobileTask`` is the clip-classification core with the official pipeline: waveform -> device
impulse responses (device-a clips, ``dir_prob``) -> circular roll -> CP-JKU log-mel (fmax redraw,
frequency mask) -> freq-MixStyle -> CP-Mobile; loss
``kd_lambda * CE + (1 - kd_lambda) * KL(student/T || teacher/T) * T^2``.

The official KL is ``KLDivLoss(reduction="none")(...).mean()``: an average over batch x classes
elements, one tenth of the usual per-clip KL for 10 classes. ``training.kd_reduction: elementwise_mean``
(default) reproduces it; ``batchmean`` gives the textbook per-clip KL.

``CPMobileQATTask`` starts from trained weights, folds batch norms (eval mode), attaches the
fbgemm QAT config, freezes observers for the last ``qat.freeze_observer_epochs`` epochs, and at every
validation converts a copy to int8 and validates it on CPU (``val/*``) beside the fake-quantised float
model (``val_fp32/*``).

Files of the family: data/tau22.py, data/mini_tau22.py, features/cpjku.py, features/scene_augment.py,
nnet/cp_mobile.py, nnet/quantization.py, this module, training/run_cp_mobile.py.
"""
from __future__ import annotations

import logging

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from desed_task.data.tau22 import TAU22_DEVICES, load_impulse_responses
from desed_task.features.cpjku import CPJKUFrontend
from desed_task.features.scene_augment import DeviceImpulseResponses, freq_mixstyle, roll_waveform
from desed_task.nnet.cp_mobile import CPMobile
from desed_task.nnet.quantization import convert_to_int8, prepare_qat_model, set_observers_frozen
from desed_task.training.classification import ClassificationTask

log = logging.getLogger(__name__)

KD_REDUCTIONS = ("elementwise_mean", "batchmean")
REFERENCE_DEVICE = TAU22_DEVICES.index("a")

# Official run_training.py / run_qat.py flag -> (config section, key, type).
OFFICIAL_FLAGS = {
    "n_epochs": ("training", "n_epochs", int),
    "batch_size": ("training", "batch_size", int),
    "num_workers": ("training", "num_workers", int),
    "mixstyle_p": ("training", "mixstyle_p", float),
    "mixstyle_alpha": ("training", "mixstyle_alpha", float),
    "roll": ("training", "roll", int),
    "dir_prob": ("training", "dir_prob", float),
    "temperature": ("training", "temperature", float),
    "kd_lambda": ("training", "kd_lambda", float),
    "lr": ("opt", "lr", float),
    "weight_decay": ("opt", "weight_decay", float),
    "warm_up_len": ("scheduler", "warm_up_len", int),
    "ramp_down_start": ("scheduler", "ramp_down_start", int),
    "ramp_down_len": ("scheduler", "ramp_down_len", int),
    "last_lr_value": ("scheduler", "last_lr_value", float),
    "n_classes": ("model", "n_classes", int),
    "in_channels": ("model", "in_channels", int),
    "base_channels": ("model", "base_channels", int),
    "channels_multiplier": ("model", "channels_multiplier", float),
    "expansion_rate": ("model", "expansion_rate", int),
    "window_size": ("mel", "win_length", int),
    "hop_size": ("mel", "hop_length", int),
    "n_fft": ("mel", "n_fft", int),
    "n_mels": ("mel", "n_mels", int),
    "freqm": ("mel", "freqm", int),
    "fmin": ("mel", "f_min", float),
    "fmax": ("mel", "f_max", float),
    "fmin_aug_range": ("mel", "fmin_aug_range", int),
    "fmax_aug_range": ("mel", "fmax_aug_range", int),
    "cache_path": ("data", "cache_dir", str),
    "teacher_logits": ("data", "teacher_logits", str),
    "dir_path": ("data", "dir_path", str),
}


def distillation_loss(student_logits: Tensor, teacher_logits: Tensor, temperature: float,
                      reduction: str = "elementwise_mean") -> Tensor:
    """``KL(softmax(teacher/T) || softmax(student/T)) * T^2``, averaged as ``reduction`` says."""
    if reduction not in KD_REDUCTIONS:
        raise ValueError(f"training.kd_reduction must be one of {KD_REDUCTIONS}, got {reduction!r}")
    student = F.log_softmax(student_logits / temperature, dim=-1)
    teacher = F.log_softmax(teacher_logits.float() / temperature, dim=-1)
    elementwise = F.kl_div(student, teacher, reduction="none", log_target=True)
    kl = elementwise.mean() if reduction == "elementwise_mean" else elementwise.sum() / len(elementwise)
    return kl * temperature ** 2


class CPMobileTask(ClassificationTask):
    """CP-Mobile distillation training on TAU22 items (``group`` = device id, ``teacher_logits``)."""

    def __init__(self, config: dict, *args, **kwargs):
        super().__init__(config, *args, **kwargs)
        training = config["training"]
        dir_path = (config.get("data") or {}).get("dir_path")
        self.device_irs = None
        if float(training.get("dir_prob", 0.0)) > 0:
            if not dir_path:
                raise ValueError("training.dir_prob > 0 needs data.dir_path (a folder of device impulse responses)")
            responses, names = load_impulse_responses(dir_path)
            self.device_irs = DeviceImpulseResponses(responses, names, prob=float(training["dir_prob"]))

    def build_frontend(self) -> nn.Module:
        return CPJKUFrontend(**self.config.get("mel", {}))

    def build_model(self) -> nn.Module:
        return CPMobile(**self.config.get("model", {}))

    def augment_input(self, inputs: Tensor, batch: dict) -> Tensor:
        if self.device_irs is not None:
            inputs = self.device_irs(inputs, batch["group"] == REFERENCE_DEVICE)
        return roll_waveform(inputs, int(self.config["training"].get("roll", 0)))

    def augment_features(self, features: Tensor, batch: dict) -> Tensor:
        training = self.config["training"]
        return freq_mixstyle(features, float(training.get("mixstyle_p", 0.0)), float(training.get("mixstyle_alpha", 0.3)))

    def training_loss(self, logits: Tensor, batch: dict) -> tuple[Tensor, dict[str, Tensor]]:
        training = self.config["training"]
        kd_lambda = float(training["kd_lambda"])
        label_loss = kd_lambda * F.cross_entropy(logits, batch["label"])
        if kd_lambda >= 1.0:
            return label_loss, {"label_loss": label_loss.detach()}
        if "teacher_logits" not in batch:
            raise ValueError("kd_lambda < 1 needs teacher logits (data.teacher_logits); "
                             "to train without distillation, pass --kd_lambda=1 (label loss only)")
        kd_loss = (1.0 - kd_lambda) * distillation_loss(logits, batch["teacher_logits"], float(training["temperature"]),
                                                        training.get("kd_reduction", "elementwise_mean"))
        return label_loss + kd_loss, {"label_loss": label_loss.detach(), "kd_loss": kd_loss.detach()}


class CPMobileQATTask(CPMobileTask):
    """QAT of a trained CP-Mobile; ``qat.checkpoint`` is an official or a ``CPMobileTask`` checkpoint."""

    def build_model(self) -> nn.Module:
        checkpoint = (self.config.get("qat") or {}).get("checkpoint")
        if checkpoint:
            model = CPMobile.load_official(checkpoint, **self.config.get("model", {}))
        else:
            log.warning("qat.checkpoint is not set: quantisation-aware training from random weights")
            model = super().build_model()
        return prepare_qat_model(model)

    @property
    def freeze_from_epoch(self) -> int:
        """First epoch with frozen observers: the last ``freeze_observer_epochs``, never the first epoch
        (observers must have seen data before int8 conversion)."""
        trainer = self._trainer
        n_epochs = int(trainer.max_epochs if trainer is not None else self.config["training"]["n_epochs"])
        return max(1, n_epochs - int((self.config.get("qat") or {}).get("freeze_observer_epochs", 4)))

    def on_train_epoch_start(self) -> None:
        super().on_train_epoch_start()
        frozen = self.current_epoch >= self.freeze_from_epoch
        set_observers_frozen(self.model, frozen)
        self.model.apply(torch.ao.nn.intrinsic.qat.freeze_bn_stats)
        self.log("train/observers_frozen", float(frozen))

    def _start_evaluation(self) -> None:
        """Convert the current QAT model to int8 (on CPU), then keep evaluation data out of the observers.

        The int8 copy is not registered as a submodule: it stays on CPU and out of checkpoints.
        """
        object.__setattr__(self, "int8_model", convert_to_int8(self.model))
        set_observers_frozen(self.model, True)

    def on_validation_epoch_start(self) -> None:
        self._start_evaluation()

    def on_test_epoch_start(self) -> None:
        self._start_evaluation()

    def _int8_logits(self, batch: dict) -> Tensor:
        features = self.frontend(batch["input"]).cpu()
        with torch.no_grad():
            return self.int8_model(features).to(batch["input"].device)

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self.record_logits("val_fp32", self.evaluate_batch(batch), batch)
        self.record_logits("val", self._int8_logits(batch), batch)

    def test_step(self, batch: dict, batch_idx: int) -> None:
        self.record_logits("test_fp32", self.evaluate_batch(batch), batch)
        self.record_logits("test", self._int8_logits(batch), batch)

    def collect_validation_metrics(self) -> dict[str, float]:
        return {**self.stage_metrics("val_fp32"), **self.stage_metrics("val")}

    def collect_test_metrics(self) -> dict[str, float]:
        return {**self.stage_metrics("test_fp32"), **self.stage_metrics("test")}
