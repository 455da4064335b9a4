"""The mean-teacher sound event detection core of the DCASE 2022 Task 4 baseline, as one LightningModule.

`SEDTask` trains a student CRNN with BCE on the strongly labelled part (synthetic, plus real strong
with `--strong_real`) and the weakly labelled part of each mixed batch, an MSE consistency loss between
student and EMA teacher on the whole batch (weighted by `const_max` times the exponential warm-up), and
evaluates both student and teacher. Batches are `[strong parts | weak part | unlabeled part]` as built by
`desed_task.data.sampler.MultiSetBatchSampler`.

Subclasses (IRCT, probes) change behaviour through a few documented hooks:
`build_student`, `build_teacher`, `trainable_parameters`, `augment`, `student_forward`, `training_losses`,
`compute_extra_loss`, `detect`, `inference_inputs`, `teacher_forward`, `validation_sets` (with
`_validation_metrics`), and for networks that also take pretrained-model embeddings (training/pretrained.py)
`batch_embeddings`, `mix_embeddings`, `optional_checkpoint_modules`.

The SED core: this module (training step, EMA teacher, losses), training/sed_data.py (loaders, scaler,
exact-resume state), training/sed_scoring.py (validation and test scoring, reports), training/distributed.py
(rank gather/broadcast, random states), training/schedulers.py (`adam_with_warmup`); data/sampler.py,
features/mel.py, features/scaler.py, features/augment.py, nnet/crnn.py.
"""
from __future__ import annotations

from copy import deepcopy
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import pandas as pd
import pytorch_lightning as pl
import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from desed_task.data.build import SEDDatasets, build_sed_datasets
from desed_task.data.classes import DESED_CLASSES
from desed_task.data.encoder import ManyHotEncoder
from desed_task.data.sampler import MultiSetBatchSampler
from desed_task.features.augment import mixup
from desed_task.features.mel import MelFrontend, amplitude_to_db
from desed_task.features.scaler import TorchScaler
from desed_task.nnet.checkpoint import load_state_dict_by_name
from desed_task.nnet.crnn import CRNN
from desed_task.training.schedulers import adam_with_warmup, exponential_rampup
from desed_task.training.sed_data import SEDData
from desed_task.training.sed_scoring import SEDEvaluation
from desed_task.utils.errors import BadInput
from desed_task.utils.files import load_torch_file



def build_encoder(config: dict, labels: Sequence[str] = DESED_CLASSES) -> ManyHotEncoder:
    """The label encoder matching the config's audio length, STFT and network pooling."""
    return ManyHotEncoder(
        list(labels),
        audio_len=config["data"]["audio_max_len"],
        frame_len=config["feats"]["n_filters"],
        frame_hop=config["feats"]["hop_length"],
        net_pooling=config["data"]["net_subsample"],
        fs=config["data"]["fs"],
    )


@torch.no_grad()
def ema_update(teacher: nn.Module, student: nn.Module, alpha_max: float, step: int, ramp: bool = True) -> float:
    """teacher <- alpha * teacher + (1 - alpha) * student over parameters, alpha = min(1 - 1/(step+1), alpha_max).

    The ramp makes the teacher the true running average of the first student states (Tarvainen &
    Valpola, 2017); `ramp=False` uses alpha_max from the first step (ATST-SED stage 2). Buffers
    (batch-norm statistics) are not averaged, as in the baseline. Returns alpha.
    """
    alpha = min(1.0 - 1.0 / (step + 1), alpha_max) if ramp else alpha_max
    for teacher_param, student_param in zip(teacher.parameters(), student.parameters()):
        teacher_param.mul_(alpha).add_(student_param.detach(), alpha=1.0 - alpha)
    return alpha


@dataclass
class TrainBatch:
    """One training batch after feature extraction and augmentation.

    `features` are clamped dB log-mels (B, n_mels, frames), the input of `detect`; `labels` the frame
    targets (B, n_classes, n_frames) of the whole batch (mixed where mixup applied, zeros for unlabeled
    clips); `weak_labels` (n_weak, n_classes) the clip targets of the weak part; the masks (B,) select
    the strongly labelled, weakly labelled and unlabeled parts; `embeddings` the pretrained-model
    embeddings fed to the network (mixed like the features), None when it takes none.
    """

    audio: Tensor
    features: Tensor
    labels: Tensor
    weak_labels: Tensor
    strong_mask: Tensor
    weak_mask: Tensor
    unlabeled_mask: Tensor
    embeddings: Tensor | None = None


def batch_masks(batch_sizes: Sequence[int], device=None) -> tuple[Tensor, Tensor, Tensor]:
    """(strong, weak, unlabeled) boolean masks of a `[strong sets... | weak | unlabeled]` batch layout."""
    sizes = list(batch_sizes)
    if len(sizes) < 3:
        raise BadInput(f"batch sizes {sizes} must be [strong set(s)..., weak, unlabeled]")
    total, n_strong = sum(sizes), sum(sizes[:-2])
    index = torch.arange(total, device=device)
    strong = index < n_strong
    weak = (index >= n_strong) & (index < n_strong + sizes[-2])
    return strong, weak, index >= n_strong + sizes[-2]


class SEDTask(SEDData, SEDEvaluation, pl.LightningModule):
    """Mean-teacher SED training, validation, test and evaluation (DCASE 2022 Task 4 baseline).

    Args:
        config: the whole experiment config (sections training, scaler, data, opt, feats, net); saved as
            the checkpoint's hyper-parameters like the official baseline.
        encoder: label encoder (built from the config when None).
        train_data: ConcatDataset of the training sets, in the order of `train_batch_sizes`.
        train_batch_sizes: items per set in each batch, `[synth, (strong,) weak, unlabeled]`.
        valid_synth, valid_weak: validation sets (synthetic strong, weak split).
        test_data: strongly labelled test set, or the unlabeled evaluation set when `evaluation`.
        log_dir: where metrics, score files and plots go.
        evaluation: test on an unlabeled set: only write score files.
    The submodules `sed_student`, `sed_teacher` keep the official names so official checkpoints load.
    """

    obj_metric_mode = "max"
    """Whether the checkpoint criterion `val/obj_metric` is maximised ("max") or minimised ("min")."""
    labels: Sequence[str] = DESED_CLASSES
    """The output classes, in the label encoder's order (the runner builds the encoder with them)."""

    @classmethod
    def build_datasets(cls, config: dict, encoder: ManyHotEncoder, strong_real: bool = False,
                       report_dir=None) -> SEDDatasets:
        """Hook: the training, validation and test sets of a fit (default: `build_sed_datasets`)."""
        return build_sed_datasets(config, encoder, strong_real=strong_real, report_dir=report_dir)

    def __init__(
        self,
        config: dict,
        encoder: ManyHotEncoder | None = None,
        train_data: Dataset | None = None,
        train_batch_sizes: Sequence[int] | None = None,
        valid_synth: Dataset | None = None,
        valid_weak: Dataset | None = None,
        test_data: Dataset | None = None,
        log_dir: str | Path = ".",
        evaluation: bool = False,
    ):
        super().__init__()
        self.save_hyperparameters(config)
        self.config = config
        self.encoder = encoder if encoder is not None else build_encoder(config)
        self.train_data = train_data
        self.train_batch_sizes = list(train_batch_sizes or config["training"]["batch_size"])
        self.valid_synth = valid_synth
        self.valid_weak = valid_weak
        self.test_data = test_data
        self.log_dir = Path(log_dir)
        self.evaluation = evaluation

        training = config["training"]
        self.mel = MelFrontend.from_config(config["feats"])
        self.scaler = TorchScaler(config["scaler"]["statistic"], config["scaler"]["normtype"], config["scaler"]["dims"])
        self.sed_student = self.build_student()
        self.sed_teacher = self.build_teacher(self.sed_student)
        self.supervised_loss = nn.BCELoss()
        if training["self_sup_loss"] == "mse":
            self.selfsup_loss = nn.MSELoss()
        elif training["self_sup_loss"] == "bce":
            self.selfsup_loss = nn.BCELoss()
        else:
            raise BadInput(f"training.self_sup_loss must be mse or bce, got {training['self_sup_loss']!r}")
        if training.get("mixup") not in (None, "soft", "hard"):
            raise BadInput(f"training.mixup must be soft, hard or null, got {training['mixup']!r}")
        # The batch generator makes the draws of the whole (global) batch (see `augment`). It is seeded alike
        # on every DDP rank and every rank makes the same draws, so the ranks agree, and a single process draws
        # exactly what it drew before multi-process training existed.
        self.batch_generator = torch.Generator().manual_seed(self.seed)
        self.rampup_length = 0
        self._train_sampler: MultiSetBatchSampler | None = None
        self._outputs: dict[str, list] = {}
        self._synth_val_reference: tuple[pd.DataFrame, dict] | None = None
        self.validation_scores: dict | None = None  # set by `keep_validation_scores`
        self._keep_validation_scores = False  # set by `validate_for_tuning`
        self._train_loader_generator = torch.Generator()
        self._resumed_rng_states: dict | None = None
        self._first_epoch = 0  # the first epoch this run trains (after the checkpoint's when resuming)
        self.test_results: dict[str, float] = {}

    @property
    def seed(self) -> int:
        """`training.seed` (0 when unset): seeds the sampler, mixup draws and data-loader workers."""
        return int(self.config["training"].get("seed") or 0)

    # ------------------------------------------------------------------ hooks for subclasses
    def build_student(self) -> nn.Module:
        """Hook: the student network (default `CRNN(**config["net"])`), stored as `sed_student`."""
        return CRNN(**self.config["net"])

    def build_teacher(self, student: nn.Module) -> nn.Module:
        """Hook: the EMA teacher, stored as `sed_teacher` (default: a frozen copy of the student)."""
        teacher = deepcopy(student)
        for param in teacher.parameters():
            param.requires_grad_(False)
        return teacher

    def trainable_parameters(self) -> Iterable[nn.Parameter]:
        """Hook: the parameters the optimiser updates (default: all student parameters)."""
        return self.sed_student.parameters()

    def detect(self, features: Tensor, model: nn.Module, embeddings: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Hook: log-mels (B, n_mels, frames) -> `model(scaler(features))` = (strong (B, C, T), weak (B, C)).

        `embeddings` (pretrained-model embeddings of the same clips), when given, are passed on as
        `model(..., embeddings=embeddings)`.
        """
        if embeddings is None:
            return model(self.scaler(features))
        return model(self.scaler(features), embeddings=embeddings)

    def optional_checkpoint_modules(self) -> dict[str, nn.Module]:
        """Hook: {state-dict prefix: module} that `load_sed_checkpoint` loads when the checkpoint holds that
        prefix (default: the fitted dataset scaler)."""
        return {"scaler.": self.scaler}

    def batch_embeddings(self, batch) -> Tensor | None:
        """Hook: the embeddings of a collated batch that the network fuses (default: none)."""
        return None

    def mix_embeddings(self, batch: TrainBatch, mask: Tensor, permutation: Tensor, weight: float) -> None:
        """Hook: mix `batch.embeddings[mask]` like the features of that part were (default: nothing to mix)."""

    def audio_embeddings(self, audio: Tensor) -> Tensor | None:
        """Hook: the embeddings the network fuses, computed by the task from waveforms (B, samples), for
        any-length inference (default: none)."""
        return None

    def inference_inputs(self, audio: Tensor):
        """Hook: waveforms (B, samples) -> the input of `detect` in validation, test and any-length inference
        (`desed_task.inference`). Default: the clamped dB log-mel; a model with a second frontend returns both."""
        return self.mel(audio)

    def student_forward(self, batch: TrainBatch) -> tuple[Tensor, Tensor]:
        """Hook: the student's (strong, weak) outputs in a training step (default: `detect` on the features).

        IRCT overrides it to encode its three views up to the placement and keep them on the batch.
        """
        return self.detect(batch.features, self.sed_student, batch.embeddings)

    def teacher_forward(self, batch: TrainBatch) -> tuple[Tensor, Tensor]:
        """Hook: the teacher's (strong, weak) outputs in a training step, run without gradients
        (default: `detect` on the student's features; ATST-SED's stage 2 gives the teacher unmixed inputs)."""
        return self.detect(batch.features, self.sed_teacher, batch.embeddings)

    def augment(self, batch: TrainBatch, mel_amplitude: Tensor) -> TrainBatch:
        """Hook: augment a training batch; `mel_amplitude` is the linear mel spectrogram of `batch.audio`.

        Default (baseline): with probability 0.5 (`training.mixup` set), Beta(0.2, 0.2) mixup of the
        mel magnitudes, separately inside the weak part and inside the strong part; then dB conversion.
        Under DDP the decision and the two mixing weights are the global batch's, and the mixing partners
        of every rank's clips are drawn on every rank (`rank_permutation`), each rank using its own.
        """
        mixup_type = self.config["training"].get("mixup")
        if mixup_type is not None and self.mixup_this_step():
            mel_amplitude = mel_amplitude.clone()
            labels = batch.labels.clone()
            weak, strong = batch.weak_mask, batch.strong_mask
            mel_amplitude[weak], batch.weak_labels, mix = mixup(
                mel_amplitude[weak], batch.weak_labels, mixup_label_type=mixup_type,
                permutation=self.rank_permutation(int(weak.sum())),
                generator=self.batch_generator, return_mix=True,
            )
            self.mix_embeddings(batch, weak, *mix)
            mel_amplitude[strong], labels[strong], mix = mixup(
                mel_amplitude[strong], labels[strong], mixup_label_type=mixup_type,
                permutation=self.rank_permutation(int(strong.sum())),
                generator=self.batch_generator, return_mix=True,
            )
            self.mix_embeddings(batch, strong, *mix)
            batch.labels = labels
        batch.features = amplitude_to_db(mel_amplitude)
        return batch

    def mixup_this_step(self) -> bool:
        """Whether this step's batch is mixed (probability 0.5); the same answer on every DDP rank."""
        return float(torch.rand((), generator=self.batch_generator)) < 0.5

    def rank_permutation(self, size: int) -> Tensor:
        """Mixing partners among this rank's `size` clips: one permutation per DDP rank is drawn from the batch
        generator (so it advances alike on every rank), and this rank's is returned."""
        world_size = self.trainer.world_size if self._trainer is not None else 1
        permutations = [torch.randperm(size, generator=self.batch_generator) for _ in range(world_size)]
        return permutations[self.global_rank]

    def compute_extra_loss(
        self, batch: TrainBatch, student: tuple[Tensor, Tensor], teacher: tuple[Tensor, Tensor]
    ) -> tuple[Tensor | None, dict[str, Tensor]]:
        """Hook: an additional loss term (added to the total as is) and values to log under `train/`.

        `student` / `teacher` are the (strong, weak) outputs on `batch.features` (teacher detached).
        Default: no extra loss.
        """
        return None, {}

    def training_losses(
        self, batch: TrainBatch, student: tuple[Tensor, Tensor], teacher: tuple[Tensor, Tensor]
    ) -> dict[str, Tensor]:
        """Hook: the mean-teacher losses; must return at least `loss` (the total that is minimised).

        Supervised: BCE(student strong, labels) on the strong part + BCE(student weak, weak labels) on
        the weak part. Consistency: self-supervised loss (MSE) between student and detached teacher
        outputs, strong and weak, on the whole batch, times `const_max * exponential_rampup(step)`.
        """
        strong_s, weak_s = student
        strong_t, weak_t = teacher
        loss_strong = self.supervised_loss(strong_s[batch.strong_mask], batch.labels[batch.strong_mask])
        loss_weak = self.supervised_loss(weak_s[batch.weak_mask], batch.weak_labels)
        with torch.no_grad():
            loss_strong_teacher = self.supervised_loss(strong_t[batch.strong_mask], batch.labels[batch.strong_mask])
            loss_weak_teacher = self.supervised_loss(weak_t[batch.weak_mask], batch.weak_labels)
        weight = self.consistency_weight()
        strong_self_sup = self.selfsup_loss(strong_s, strong_t.detach())
        weak_self_sup = self.selfsup_loss(weak_s, weak_t.detach())
        tot_self = (strong_self_sup + weak_self_sup) * weight
        supervised = loss_strong + loss_weak
        return {
            "loss": supervised + tot_self,
            "student/loss_strong": loss_strong,
            "student/loss_weak": loss_weak,
            "teacher/loss_strong": loss_strong_teacher,
            "teacher/loss_weak": loss_weak_teacher,
            "student/tot_supervised": supervised,
            "student/strong_self_sup_loss": strong_self_sup,
            "student/weak_self_sup_loss": weak_self_sup,
            "student/tot_self_loss": tot_self,
            "weight": torch.tensor(weight),
        }

    # ------------------------------------------------------------------ training
    def consistency_weight(self) -> float:
        """`const_max` times the exponential warm-up factor of the current optimiser step."""
        factor = exponential_rampup(self.global_step + 1, self.rampup_length)
        return float(self.config["training"]["const_max"]) * factor

    def update_teacher(self, step: int) -> float:
        """Hook: EMA update of the teacher after optimiser step number `step` (from 1); returns alpha."""
        return ema_update(self.sed_teacher, self.sed_student, self.config["training"]["ema_factor"], step)

    def prepare_train_batch(self, batch) -> TrainBatch:
        """Collated dataset items -> `TrainBatch` (mel on the training device, then `augment`)."""
        audio, labels = batch[0], batch[1]
        strong, weak, unlabeled = batch_masks(self.train_batch_sizes, device=audio.device)
        if len(strong) != audio.shape[0]:
            raise ValueError(f"batch of {audio.shape[0]} clips but training batch sizes {self.train_batch_sizes}")
        mel_amplitude = self.mel.mel_amplitude(audio)
        train_batch = TrainBatch(
            audio=audio,
            features=mel_amplitude,
            labels=labels,
            weak_labels=labels[weak].amax(-1),
            strong_mask=strong,
            weak_mask=weak,
            unlabeled_mask=unlabeled,
            embeddings=self.batch_embeddings(batch),
        )
        return self.augment(train_batch, mel_amplitude)

    def training_step(self, batch, batch_idx):
        train_batch = self.prepare_train_batch(batch)
        student = self.student_forward(train_batch)
        with torch.no_grad():
            teacher = self.teacher_forward(train_batch)
        losses = self.training_losses(train_batch, student, teacher)
        extra, extra_logs = self.compute_extra_loss(train_batch, student, teacher)
        if extra is not None:
            losses["loss"] = losses["loss"] + extra
            losses["extra_loss"] = extra
        losses.update(extra_logs)
        batch_size = train_batch.audio.shape[0]
        for name, value in losses.items():
            if name != "loss":
                self.log(f"train/{name}", value, batch_size=batch_size)
        self.log("train/loss", losses["loss"], batch_size=batch_size, prog_bar=True)
        self.log("train/step", float(self.global_step + 1), batch_size=batch_size)
        self.log("train/lr", self.trainer.optimizers[0].param_groups[-1]["lr"], batch_size=batch_size, prog_bar=True)
        return losses["loss"]

    def optimizer_step(self, epoch, batch_idx, optimizer, optimizer_closure=None):
        super().optimizer_step(epoch, batch_idx, optimizer, optimizer_closure)
        # global_step counts completed steps only after this hook returns, hence + 1.
        self.update_teacher(self.global_step + 1)

    def configure_optimizers(self):
        return adam_with_warmup(self.trainable_parameters(), self.rampup_length, lr=self.config["opt"]["lr"])

    def setup(self, stage: str) -> None:
        if stage == "fit" and self.train_data is not None:
            training = self.config["training"]
            sizes = [len(dataset) for dataset in self.train_data.datasets]
            self._train_sampler = MultiSetBatchSampler(
                sizes, self.train_batch_sizes, shuffle=True, seed=self.seed,
                num_replicas=self.trainer.world_size, rank=self.trainer.global_rank,
            )
            steps_per_epoch = max(len(self._train_sampler) // training["accumulate_batches"], 1)
            self.rampup_length = training["n_epochs_warmup"] * steps_per_epoch
            if self.config["scaler"]["statistic"] == "dataset" and not self.scaler.fitted:
                self._fit_scaler()
            if self.trainer.world_size > 1:  # rank-specific dropout masks (the ranks were seeded alike)
                torch.manual_seed(self.seed + self.global_rank)
        self.batch_generator.manual_seed(self.seed)


def load_sed_checkpoint(task: SEDTask, checkpoint: str | Path | dict) -> dict:
    """Load student and teacher weights of a Lightning checkpoint (ours or the official baseline's).

    Only `sed_student.*` / `sed_teacher.*` and the task's `optional_checkpoint_modules` present in the checkpoint
    are taken, so the official `mel_spec.*` buffers are ignored. Returns the checkpoint dict.
    """
    if not isinstance(checkpoint, dict):
        checkpoint = load_torch_file(checkpoint, weights_only=False)
    state = checkpoint.get("state_dict", checkpoint)
    load_state_dict_by_name(task.sed_student, state, prefix="sed_student.")
    load_state_dict_by_name(task.sed_teacher, state, prefix="sed_teacher.")
    for prefix, module in task.optional_checkpoint_modules().items():
        if any(key.startswith(prefix) for key in state):
            load_state_dict_by_name(module, state, prefix=prefix)
    return checkpoint
