"""ATST-SED's two fine-tuning stages (Shao, Li & Li, ICASSP 2024) as small `SEDTask` subclasses.

Both stages train `ATSTSED` (CRNN + ATST-Frame) with two frontends: the baseline's dB log-mel for the CRNN
(`feats`, + the instance min-max scaler) and `ATSTFrontend` for the ATST (`atst_feats`). Batches are
`[synthetic, strong real, weak, unlabeled]` (the house's order of the strongly labelled parts; the official
`[strong real, synthetic, ...]` has equal sizes and both parts share the strong loss, so it is the same batch).

- `ATSTSEDStage1`: ATST frozen and in eval mode; CNN and "RNN" (rnn, cat_tf, dense, dense_softmax) groups;
  exponential warm-up then constant; mixup (p 0.5) of the CRNN mel only, in the strong, weak and unlabeled
  parts; mean-teacher loss with the ramped EMA; checkpoint on the minimum of the teacher's
  (weak-validation BCE + strong-real-validation BCE) / 2 (`data.strong_val_*`, the official
  audioset_strong_val.tsv; the synthetic validation set when `data.strong_val_tsv` is not set).
- `ATSTSEDStage2`: initialised from a stage-1 checkpoint (`init.model_init`); everything trainable in
  2 + 14 groups (ATST layer-wise decay); warm-up then cosine decay to 0.1x; mixup of both frontends with one
  weight and permutation per part, followed by the interpolation-consistency loss, else the mean-teacher
  loss; frequency warping of the ATST features; fixed EMA; checkpoint on the teacher's synthetic-validation
  PSDS1 + PSDS2.

Files of the family: features/atst.py, nnet/atst.py, this module, and the SED core.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from desed_task.data.build import build_strong_val_dataset
from desed_task.evaluation import threshold_independent_psds
from desed_task.features.atst import ATSTFrontend
from desed_task.features.augment import beta_sample, frequency_warp, mixup
from desed_task.features.mel import amplitude_to_db
from desed_task.nnet.atst import ATSTSED
from desed_task.nnet.checkpoint import load_state_dict_by_name
from desed_task.training.schedulers import adam_with_warmup
from desed_task.training.sed import SEDTask, TrainBatch, ema_update
from desed_task.training.sed_scoring import MODELS, present_classes, restrict_to_clips
from desed_task.utils.errors import BadInput, CheckpointKeyMismatch, MissingInput
from desed_task.utils.files import load_torch_file

log = logging.getLogger(__name__)


def atst_parameter_groups(model: ATSTSED, opt: dict) -> list[dict]:
    """Official parameter groups (`separate_opt_params`): `cnn` (non-ATST names containing "cnn") at
    `opt.cnn_lr`, `rnn` (the other non-ATST parameters: rnn, cat_tf, dense, dense_softmax) at `opt.rnn_lr`,
    then the first `opt.tfm_trainable_layers` of the ATST groups in decay order: norm_frame, the blocks from
    the last to the first, then the patch, positional and mask embeddings; group i at `tfm_lr * tfm_lr_scale**i`.
    ATST groups beyond `tfm_trainable_layers` are frozen (requires_grad False) and left out.
    """
    atst = model.atst_frame.atst
    cnn = [p for n, p in model.named_parameters() if not n.startswith("atst_frame.") and "cnn" in n]
    rnn = [p for n, p in model.named_parameters() if not n.startswith("atst_frame.") and "cnn" not in n]
    layers = [list(atst.norm_frame.parameters())]
    layers += [list(block.parameters()) for block in reversed(atst.blocks)]
    layers.append([*atst.patch_embed.parameters(), atst.pos_embed, atst.mask_embed])
    trainable = int(opt["tfm_trainable_layers"])
    if not 0 <= trainable <= len(layers):
        raise BadInput(f"config key opt.tfm_trainable_layers must be in [0, {len(layers)}], got {trainable}")
    groups = [{"params": cnn, "lr": float(opt["cnn_lr"]), "name": "cnn"},
              {"params": rnn, "lr": float(opt["rnn_lr"]), "name": "rnn"}]
    for index, params in enumerate(layers):
        for param in params:
            param.requires_grad_(index < trainable)
        if index < trainable:
            lr = float(opt["tfm_lr"]) * float(opt["tfm_lr_scale"]) ** index
            groups.append({"params": params, "lr": lr, "name": f"atst_{index}"})
    return groups


def buffered_bce(buffers: dict, model: str) -> float:
    """BCE of `model`'s buffered outputs against their targets over every clip of a validation set (0 when empty)."""
    if not buffers:
        return 0.0
    return float(nn.functional.binary_cross_entropy(torch.stack(buffers[model]), torch.stack(buffers["target"])))


@dataclass
class ATSTBatch(TrainBatch):
    """A `TrainBatch` whose `features` are the pair (CRNN dB log-mel, normalised ATST features), with the
    teacher's own inputs (stage 2: unmixed) and the mixup draws of each part (None when not mixed)."""

    teacher_features: tuple[Tensor, Tensor] | None = None
    mix: dict | None = None


class ATSTSEDTask(SEDTask):
    """What both stages share: the two frontends, the fused model, parameter groups and schedule."""

    freeze_atst = False
    cosine_decay = False

    def __init__(self, config: dict, *args, **kwargs):
        super().__init__(config, *args, **kwargs)
        self.atst_mel = ATSTFrontend.from_config(config.get("atst_feats") or {})
        self.total_steps = 0
        self.augment_generator = torch.Generator().manual_seed(self.seed)

    def build_student(self) -> nn.Module:
        return ATSTSED(**self.config["net"], freeze_atst=self.freeze_atst)

    def inference_inputs(self, audio: Tensor) -> tuple[Tensor, Tensor]:
        return self.mel(audio), self.atst_mel(audio)

    def detect(self, features, model: nn.Module, embeddings: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """`features`: the pair (CRNN log-mel, ATST features); the ATST is part of the model, so there are
        no separate `embeddings`."""
        crnn_features, atst_features = features
        return model(self.scaler(crnn_features), atst_features)

    def teacher_forward(self, batch: ATSTBatch) -> tuple[Tensor, Tensor]:
        return self.detect(batch.teacher_features or batch.features, self.sed_teacher)

    def trainable_parameters(self):
        return atst_parameter_groups(self.sed_student, self.config["opt"])

    def configure_optimizers(self):
        return adam_with_warmup(self.trainable_parameters(), self.rampup_length,
                                total_steps=self.total_steps if self.cosine_decay else None)

    def setup(self, stage: str) -> None:
        super().setup(stage)
        if stage == "fit" and self._train_sampler is not None:
            training = self.config["training"]
            steps_per_epoch = max(len(self._train_sampler) // training["accumulate_batches"], 1)
            self.total_steps = training["n_epochs"] * steps_per_epoch
        self.augment_generator.manual_seed(self.seed + self.global_rank)

    def mixup_parts(self, batch: TrainBatch, features: list[Tensor]) -> tuple[list[Tensor], Tensor, Tensor, dict]:
        """Soft mixup inside the strong, weak and unlabeled parts, each with its own Beta(0.2, 0.2) weight and
        permutation, applied alike to every tensor of `features` and to the labels (frame labels of the
        strong part, clip labels of the weak part). Returns the mixed features, labels, weak labels and the
        draws {part: (mask, permutation, weight)}."""
        features = [tensor.clone() for tensor in features]
        labels, weak_labels = batch.labels.clone(), batch.weak_labels.clone()
        draws = {}
        for part, mask in (("strong", batch.strong_mask), ("weak", batch.weak_mask),
                           ("unlabeled", batch.unlabeled_mask)):
            size = int(mask.sum())
            if size == 0:
                continue
            permutation = torch.randperm(size, generator=self.augment_generator)
            weight = beta_sample(0.2, 0.2, self.augment_generator)
            draws[part] = (mask, permutation, weight)
            for tensor in features:
                tensor[mask] = mixup(tensor[mask], permutation=permutation, mix_weight=weight)
            if part == "strong":
                labels[mask] = mixup(labels[mask], permutation=permutation, mix_weight=weight)
            elif part == "weak":
                weak_labels = mixup(weak_labels, permutation=permutation, mix_weight=weight)
        return features, labels, weak_labels, draws

    def draw(self, probability: float = 0.5) -> bool:
        """One Bernoulli(probability) decision of this step's augmentation."""
        return float(torch.rand((), generator=self.augment_generator)) < probability

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint["augment_generator_state"] = self.augment_generator.get_state()
        # As the official trainer: raw module state dicts, read by its stage 2 (`ckpt["sed_student"]`).
        checkpoint["sed_student"] = self.sed_student.state_dict()
        checkpoint["sed_teacher"] = self.sed_teacher.state_dict()

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        super().on_load_checkpoint(checkpoint)
        if "augment_generator_state" in checkpoint:
            self.augment_generator.set_state(checkpoint["augment_generator_state"])


class ATSTSEDStage1(ATSTSEDTask):
    """Stage 1: frozen ATST, CRNN-mel mixup, mean teacher; checkpoint on the minimum validation BCE, with the
    real strong validation set (`valid_strong_real`, built from `data.strong_val_*` when training) as a third
    validation set."""

    freeze_atst = True
    obj_metric_mode = "min"

    def __init__(self, config: dict, *args, **kwargs):
        super().__init__(config, *args, **kwargs)
        self.valid_strong_real = None
        if self.train_data is not None:
            self.load_atst((self.config.get("init") or {}).get("atst_init"))
            self.valid_strong_real = build_strong_val_dataset(self.config, self.encoder, self.log_dir / "data_reports")
            if self.valid_strong_real is None:
                log.warning("config key data.strong_val_tsv is not set: stage 1 selects its checkpoint on the "
                            "synthetic validation set's strong BCE, not on the real strong validation set "
                            "(audioset_strong_val.tsv) of the official recipe")

    def load_atst(self, path: str | None) -> None:
        """The pretrained ATST-Frame (`init.atst_init`, e.g. atst_as2M.ckpt) into student and teacher."""
        if not path:
            log.warning("init.atst_init is not set: stage 1 trains on a randomly initialised, frozen ATST")
            return
        if not Path(path).is_file():
            raise MissingInput(f"config key init.atst_init = {path}: file not found")
        for model in (self.sed_student, self.sed_teacher):
            model.atst_frame.atst.load_official_file(path)

    def augment(self, batch: TrainBatch, mel_amplitude: Tensor) -> ATSTBatch:
        """With p 0.5 (`training.mixup` set): mixup of the CRNN mel magnitudes in the strong, weak and
        unlabeled parts; the ATST features are not mixed. Student and teacher see the same features."""
        labels, weak_labels = batch.labels, batch.weak_labels
        if self.config["training"].get("mixup") and self.draw():
            (mel_amplitude,), labels, weak_labels, _ = self.mixup_parts(batch, [mel_amplitude])
        features = (amplitude_to_db(mel_amplitude), self.atst_mel(batch.audio))
        return ATSTBatch(batch.audio, features, labels, weak_labels, batch.strong_mask, batch.weak_mask,
                         batch.unlabeled_mask)

    def validation_sets(self) -> dict[str, tuple[Dataset, str]]:
        """The baseline's sets, then the real strong validation set `strong_real` when it is configured."""
        sets = super().validation_sets()
        if self.valid_strong_real is not None:
            sets["strong_real"] = (self.valid_strong_real, "strong")
        return sets

    def _validation_metrics(self, synth: dict, weak: dict, strong_real: dict | None = None) -> dict[str, float]:
        """Adds the official stage-1 criterion, the teacher's (weak BCE + strong BCE) / 2, with the strong BCE on
        the real strong validation set (`strong_real`), or on the synthetic one when that set is not configured.
        Both BCEs are logged: `val/weak/<model>/bce` and `val/strong_real/<model>/bce` (`val/synth/...`)."""
        results = super()._validation_metrics(synth, weak)
        strong_name, strong = ("synth", synth) if strong_real is None else ("strong_real", strong_real)
        for model in MODELS:
            weak_bce, strong_bce = buffered_bce(weak, model), buffered_bce(strong, model)
            results[f"val/weak/{model}/bce"] = weak_bce
            results[f"val/{strong_name}/{model}/bce"] = strong_bce
            results[f"val/{model}/bce_weak_strong"] = (weak_bce + strong_bce) / 2
        results["val/obj_metric"] = results["val/teacher/bce_weak_strong"]
        return results


class ATSTSEDStage2(ATSTSEDTask):
    """Stage 2: the whole model fine-tuned from a stage-1 checkpoint with ICT, frequency warping and the
    layer-wise learning rates; checkpoint on the teacher's synthetic-validation PSDS1 + PSDS2."""

    cosine_decay = True

    def __init__(self, config: dict, *args, **kwargs):
        super().__init__(config, *args, **kwargs)
        if self.train_data is not None:
            self.load_stage1(self.config.get("init") or {})

    def load_stage1(self, init: dict) -> None:
        """Student from the stage-1 student, teacher from the stage-1 teacher (`init.model_init`)."""
        path = init.get("model_init")
        if not path:
            raise BadInput("ATST-SED stage 2 starts from a stage-1 checkpoint: set the config key init.model_init")
        if not Path(path).is_file():
            raise MissingInput(f"config key init.model_init = {path}: file not found")
        checkpoint = load_torch_file(path, weights_only=False, what="stage-1 checkpoint")
        try:
            load_state_dict_by_name(self.sed_student, checkpoint, prefix="sed_student.")
            load_state_dict_by_name(self.sed_teacher, checkpoint, prefix="sed_teacher.")
        except KeyError as error:
            raise CheckpointKeyMismatch(f"config key init.model_init = {path}: {error.args[0]}") from None
        log.info("stage 2 initialised from %s", path)

    def update_teacher(self, step: int) -> float:
        return ema_update(self.sed_teacher, self.sed_student, self.config["training"]["ema_factor"], step, ramp=False)

    def augment(self, batch: TrainBatch, mel_amplitude: Tensor) -> ATSTBatch:
        """With p 0.5: mixup of the CRNN mel magnitudes and the ATST power mels (before their normalisation)
        with the same weight and permutation per part. With p 0.5: frequency warping of the normalised ATST
        features, drawn separately for each part and for the student's and the teacher's copies. The teacher
        sees the unmixed features (with its own warping)."""
        atst_power = self.atst_mel.mel_amplitude(batch.audio)
        mixed_mel, mixed_atst, labels, weak_labels = mel_amplitude, atst_power, batch.labels, batch.weak_labels
        draws = None
        if self.config["training"].get("mixup") and self.draw():
            (mixed_mel, mixed_atst), labels, weak_labels, draws = self.mixup_parts(batch, [mel_amplitude, atst_power])
        student_atst, teacher_atst = self.atst_mel.normalize(mixed_atst), self.atst_mel.normalize(atst_power)
        if self.draw():
            for mask in (batch.weak_mask, batch.strong_mask, batch.unlabeled_mask):
                if mask.any():
                    student_atst[mask] = frequency_warp(student_atst[mask], generator=self.augment_generator)
                    teacher_atst[mask] = frequency_warp(teacher_atst[mask], generator=self.augment_generator)
        return ATSTBatch(
            batch.audio, (amplitude_to_db(mixed_mel), student_atst), labels, weak_labels, batch.strong_mask,
            batch.weak_mask, batch.unlabeled_mask,
            teacher_features=(amplitude_to_db(mel_amplitude), teacher_atst),
            mix=None if draws is None else {"draws": draws, "labels": batch.labels, "weak_labels": batch.weak_labels},
        )

    def training_losses(self, batch: ATSTBatch, student, teacher) -> dict[str, Tensor]:
        """Supervised BCE strong + BCE weak / 2; then, after mixup, the interpolation-consistency loss
        (per part: MSE to the teacher's outputs mixed alike and clamped to [0, 1], strong + weak / 2; the
        sum over parts / 6, times weight / 4), else the mean-teacher MSE (strong + weak / 2, times weight);
        weight = const_max x warm-up."""
        strong_s, weak_s = student
        strong_t, weak_t = teacher
        strong, weak = batch.strong_mask, batch.weak_mask
        loss_strong = self.supervised_loss(strong_s[strong], batch.labels[strong])
        loss_weak = self.supervised_loss(weak_s[weak], batch.weak_labels)
        original = batch.mix or {"labels": batch.labels, "weak_labels": batch.weak_labels}
        with torch.no_grad():
            loss_strong_teacher = self.supervised_loss(strong_t[strong], original["labels"][strong])
            loss_weak_teacher = self.supervised_loss(weak_t[weak], original["weak_labels"])
        weight = self.consistency_weight()
        logs = {}
        if batch.mix is not None:
            ict = 0.0
            for mask, permutation, c in batch.mix["draws"].values():
                part_strong, part_weak = strong_t[mask].detach(), weak_t[mask].detach()
                target_strong = (c * part_strong + (1 - c) * part_strong[permutation]).clamp(0, 1)
                target_weak = (c * part_weak + (1 - c) * part_weak[permutation]).clamp(0, 1)
                ict = ict + self.selfsup_loss(strong_s[mask], target_strong) + self.selfsup_loss(
                    weak_s[mask], target_weak) / 2
            logs["student/tot_ict_loss"] = ict / 6
            self_loss = ict / 6 * weight / 4
        else:
            strong_self_sup = self.selfsup_loss(strong_s, strong_t.detach())
            weak_self_sup = self.selfsup_loss(weak_s, weak_t.detach())
            logs.update({"student/strong_self_sup_loss": strong_self_sup, "student/weak_self_sup_loss": weak_self_sup})
            self_loss = (strong_self_sup + weak_self_sup / 2) * weight
        supervised = loss_strong + loss_weak / 2
        return {"loss": supervised + self_loss, "student/loss_strong": loss_strong, "student/loss_weak": loss_weak,
                "teacher/loss_strong": loss_strong_teacher, "teacher/loss_weak": loss_weak_teacher,
                "student/tot_supervised": supervised, "student/tot_self_loss": self_loss,
                "weight": torch.tensor(weight), **logs}

    def _validation_metrics(self, synth: dict, weak: dict) -> dict[str, float]:
        """Adds the synthetic-validation PSDS1 / PSDS2 (sed_scores_eval, median-filtered scores); the
        criterion is the teacher's PSDS1 + PSDS2, as the official stage 2."""
        results = super()._validation_metrics(synth, weak)
        if not synth:
            return results
        ground_truth, durations = restrict_to_clips(*self.synth_val_reference(), synth["file_id"])
        for model in MODELS:
            _, scores = self._decode(synth[model], synth["file_id"], durations)
            present = present_classes(scores, ground_truth, self.encoder.labels)
            psds1, psds2 = threshold_independent_psds(present, ground_truth, durations)
            results[f"val/synth/{model}/psds1"] = float(psds1.value)
            results[f"val/synth/{model}/psds2"] = float(psds2.value)
        results["val/obj_metric"] = results["val/synth/teacher/psds1"] + results["val/synth/teacher/psds2"]
        return results
