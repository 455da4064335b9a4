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
`batch_embeddings`, `mix_embeddings`.
"""
from __future__ import annotations

import json
import logging
import os
import random
import warnings
from copy import deepcopy
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd
import pytorch_lightning as pl
import torch
import torch.distributed as dist
from sed_scores_eval.base_modules.io import write_sed_scores
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from desed_task.data.build import SEDDatasets, build_sed_datasets
from desed_task.data.classes import DESED_CLASSES
from desed_task.data.encoder import ManyHotEncoder
from desed_task.data.sampler import MultiSetBatchSampler
from desed_task.evaluation import (
    decode_strong_scores,
    intersection_f1_macro,
    load_durations,
    load_ground_truth,
    save_psd_roc_plot,
    scores_to_detections,
    sed_report,
    weak_f1,
)
from desed_task.features.augment import mixup
from desed_task.features.mel import MelFrontend, amplitude_to_db
from desed_task.features.scaler import TorchScaler
from desed_task.nnet.checkpoint import load_state_dict_by_name
from desed_task.nnet.crnn import CRNN
from desed_task.training.schedulers import ExponentialWarmup, exponential_rampup
from desed_task.utils.errors import BadInput

log = logging.getLogger(__name__)

MODELS = ("student", "teacher")


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


def seed_worker(worker_id: int) -> None:
    """DataLoader worker init: derive numpy/random seeds from the (seeded) torch worker seed."""
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


def capture_rng_states() -> dict:
    """The global random states (torch CPU and CUDA, numpy, random) that dropout and data crops draw from."""
    kind, keys, position, has_gauss, cached_gauss = np.random.get_state()
    numpy_state = {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "position": int(position),
                   "has_gauss": int(has_gauss), "cached_gauss": float(cached_gauss)}  # loadable with weights_only
    states = {"torch": torch.get_rng_state(), "numpy": numpy_state, "python": random.getstate()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_rng_states(states: dict) -> None:
    """Inverse of `capture_rng_states` (the CUDA states only where CUDA is available)."""
    torch.set_rng_state(states["torch"])
    numpy_state = states["numpy"]
    np.random.set_state((numpy_state["kind"], numpy_state["keys"].numpy().astype(np.uint32), numpy_state["position"],
                         numpy_state["has_gauss"], numpy_state["cached_gauss"]))
    random.setstate(states["python"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def psds_thresholds(n_thresholds: int) -> np.ndarray:
    """The baseline's PSDS operating points: 1/(2n), 3/(2n), ..., (2n-1)/(2n)."""
    return np.arange(1 / (n_thresholds * 2), 1, 1 / n_thresholds)


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


class SEDTask(pl.LightningModule):
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

    def batch_embeddings(self, batch) -> Tensor | None:
        """Hook: the embeddings of a collated batch that the network fuses (default: none)."""
        return None

    def mix_embeddings(self, batch: TrainBatch, mask: Tensor, permutation: Tensor, weight: float) -> None:
        """Hook: mix `batch.embeddings[mask]` like the features of that part were (default: nothing to mix)."""

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
        optimizer = torch.optim.Adam(self.trainable_parameters(), lr=self.config["opt"]["lr"], betas=(0.9, 0.999))
        scheduler = ExponentialWarmup(optimizer, self.config["opt"]["lr"], self.rampup_length)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

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

    def _fit_scaler(self) -> None:
        """Dataset statistics of the log-mels, from `scaler.savepath` when it exists, else fitted and saved.

        Fitted on the whole training data (not a rank's share) by global rank 0, which saves the file
        (atomically) and sends the statistics to the other ranks.
        """
        path = self.config["scaler"].get("savepath")
        if path and Path(path).is_file():
            self.scaler.load_state_dict(torch.load(path, map_location="cpu"))
            return
        state = None
        if self.global_rank == 0:
            sizes = [len(dataset) for dataset in self.train_data.datasets]
            sampler = MultiSetBatchSampler(sizes, self.train_batch_sizes, seed=self.seed, num_replicas=1, rank=0)
            loader = DataLoader(self.train_data, batch_sampler=sampler, **self._loader_kwargs())
            self.scaler.fit(loader, transform_func=lambda batch: self.mel(batch[0]))
            state = self.scaler.state_dict()
            if path:
                partial = Path(f"{path}.{os.getpid()}.tmp")
                torch.save(state, partial)
                os.replace(partial, path)
        self.scaler.load_state_dict(self._share(state))

    def on_train_epoch_start(self) -> None:
        if self._train_sampler is not None:
            self._train_sampler.set_epoch(self.current_epoch)
        self._train_loader_generator.manual_seed(self._epoch_seed(self.current_epoch))
        if self._resumed_rng_states is not None:
            restore_rng_states(self._resumed_rng_states)
            self._resumed_rng_states = None

    def _epoch_seed(self, epoch: int) -> int:
        """Seed of the training loader's workers in `epoch` on this rank: a function of (seed, rank, epoch)
        only, so a resumed run starts its workers exactly as the uninterrupted run did."""
        return (self.seed * 1_000_003 + self.global_rank * 10_007 + epoch) % 2**63

    def on_validation_epoch_start(self) -> None:
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            # Each rank's last training steps moved its own batch-norm statistics (DDP only sends rank 0's
            # before a training step): validate rank 0's model, the one that is checkpointed, on every rank.
            for buffer in self.buffers():
                dist.broadcast(buffer, src=0)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["batch_generator_state"] = self.batch_generator.get_state()
        checkpoint["rng_states"] = self.gather_rank_states(capture_rng_states())

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        # Single-process checkpoints written before multi-process training named the same generator "mixup".
        state = checkpoint.get("batch_generator_state", checkpoint.get("mixup_generator_state"))
        if state is not None:
            self.batch_generator.set_state(state)
        self._resumed_rng_states = self.rank_state(checkpoint.get("rng_states"), "global random generators")
        self._first_epoch = int(checkpoint.get("epoch", -1)) + 1  # our checkpoints are saved at epoch ends

    @staticmethod
    def gather_rank_states(state):
        """`state` (of a per-rank random generator) from every DDP rank, as a list indexed by global rank.

        Called on every rank: Lightning builds the checkpoint dict on all ranks, rank 0 writes it.
        """
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            states = [None] * dist.get_world_size()
            dist.all_gather_object(states, state)
            return states
        return [state]

    def rank_state(self, states: list | None, name: str):
        """This rank's entry of `gather_rank_states`, or None (fresh seeds kept) when the checkpoint has none
        or was written by another number of processes (with a warning)."""
        if states is None or len(states) == 0:
            return None
        if not isinstance(states, list):  # one process's state, as single-process checkpoints stored it
            states = [states]
        world_size = self._trainer.world_size if self._trainer is not None else 1
        if len(states) != world_size:
            log.warning("%s: checkpoint of %d processes resumed on %d; restarted from the seed",
                        name, len(states), world_size)
            return None
        return states[self.global_rank]

    # ------------------------------------------------------------------ data loaders
    def _loader_kwargs(self) -> dict:
        workers = int(self.config["training"]["num_workers"])
        generator = torch.Generator().manual_seed(self.seed + self.global_rank)
        return {"num_workers": workers, "worker_init_fn": seed_worker, "generator": generator,
                "persistent_workers": workers > 0}

    def train_dataloader(self):
        """Training loader; its workers restart every epoch, seeded by `_epoch_seed` (exact resume).

        Lightning creates the first epoch's iterator (and multi-process loaders draw their first indices)
        before `on_train_epoch_start`, and, when resuming, before its epoch counter reaches the resumed
        epoch; so the sampler epoch and the worker seeds of that first epoch (0, or the one after the
        checkpoint's) are set here; later epochs get them in `on_train_epoch_start`.
        """
        if self._train_sampler is None:
            raise RuntimeError("no training data (train_data) was given to SEDTask")
        self._train_sampler.set_epoch(self._first_epoch)
        self._train_loader_generator.manual_seed(self._epoch_seed(self._first_epoch))
        kwargs = {**self._loader_kwargs(), "generator": self._train_loader_generator, "persistent_workers": False}
        return DataLoader(self.train_data, batch_sampler=self._train_sampler, **kwargs)

    def _eval_loader(self, dataset: Dataset) -> DataLoader:
        sampler = None
        if self.trainer is not None and self.trainer.world_size > 1:
            sampler = DistributedSampler(dataset, self.trainer.world_size, self.trainer.global_rank, shuffle=False)
        return DataLoader(dataset, batch_size=self.config["training"]["batch_size_val"], shuffle=False,
                          drop_last=False, sampler=sampler, **self._loader_kwargs())

    def val_dataloader(self):
        return [self._eval_loader(dataset) for dataset, _ in self.validation_sets().values()]

    def test_dataloader(self):
        return self._eval_loader(self.test_data)

    # ------------------------------------------------------------------ buffers shared by validation and test
    def _predict(self, batch) -> dict[str, tuple[Tensor, Tensor]]:
        features, embeddings = self.inference_inputs(batch[0]), self.batch_embeddings(batch)
        return {"student": self.detect(features, self.sed_student, embeddings),
                "teacher": self.detect(features, self.sed_teacher, embeddings)}

    def _buffer(self, name: str, **values) -> None:
        """Keep per-batch values (moved to CPU) until the end of the epoch."""
        store = self._outputs.setdefault(name, [])
        store.append({key: value.detach().float().cpu() if torch.is_tensor(value) else value
                      for key, value in values.items()})

    def _collect(self, name: str) -> dict[str, list]:
        """All buffered values of `name` from every rank, one entry per clip (DDP padding removed), in
        file-id order, so that metrics do not depend on how the clips were split among the ranks."""
        local = self._outputs.pop(name, [])
        merged: dict[str, list] = {}
        for item in local:
            for key, value in item.items():
                merged.setdefault(key, []).extend(list(value))
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            gathered = [None] * dist.get_world_size()
            dist.all_gather_object(gathered, merged)
            merged = {key: [v for part in gathered for v in part.get(key, [])] for key in merged}
        if "file_id" not in merged:
            return merged
        first_index: dict[str, int] = {}
        for index, file_id in enumerate(merged["file_id"]):
            first_index.setdefault(file_id, index)
        keep = [first_index[file_id] for file_id in sorted(first_index)]
        return {key: [values[i] for i in keep] for key, values in merged.items()}

    def _share(self, results: dict) -> dict:
        """Rank 0's `results` on every rank (metrics are computed once, on rank 0)."""
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            box = [results]
            dist.broadcast_object_list(box, src=0)
            return box[0]
        return results

    def _decode(self, strong: list[Tensor], file_ids: list[str], durations: dict | None):
        return decode_strong_scores(torch.stack(strong).numpy(), list(file_ids), self.encoder,
                                    self.config["training"]["median_window"], durations=durations)

    @staticmethod
    def _restrict(ground_truth: pd.DataFrame, durations: dict, file_ids: Sequence[str]):
        """Ground truth and durations of the evaluated clips only (limited batches, DDP shards)."""
        ids = set(file_ids)
        return ground_truth[ground_truth["filename"].isin(ids)], {k: v for k, v in durations.items() if k in ids}

    # ------------------------------------------------------------------ validation
    def validation_sets(self) -> dict[str, tuple[Dataset, str]]:
        """Hook: the validation sets in loader order, {name: (dataset, "strong" or "weak")}.

        A "strong" set is scored on the frame outputs against the frame labels, a "weak" set on the clip
        outputs against the clip labels: both log `val/<name>/<model>/loss_<kind>` per batch and buffer
        `val_<name>`, whose per-clip values reach `_validation_metrics` as its keyword argument `<name>`.
        Default: the synthetic set `synth` (strong) and the weak split `weak`.
        """
        return {"synth": (self.valid_synth, "strong"), "weak": (self.valid_weak, "weak")}

    def validation_step(self, batch, batch_idx, dataloader_idx: int = 0):
        audio, labels, _, file_ids = batch[:4]
        name, (_, kind) = list(self.validation_sets().items())[dataloader_idx]
        output, target = (0, labels) if kind == "strong" else (1, labels.amax(-1))
        predictions = self._predict(batch)
        for model, outputs in predictions.items():
            self.log(f"val/{name}/{model}/loss_{kind}", self.supervised_loss(outputs[output], target),
                     batch_size=len(audio), add_dataloader_idx=False, sync_dist=True)
        self._buffer(f"val_{name}", file_id=list(file_ids), student=predictions["student"][output],
                     teacher=predictions["teacher"][output], target=target)

    def on_validation_epoch_end(self) -> None:
        outputs = {name: self._collect(f"val_{name}") for name in self.validation_sets()}
        results = self._validation_metrics(**outputs) if self.global_rank == 0 else {}
        for name, value in self._share(results).items():
            self.log(name, value, prog_bar=name == "val/obj_metric", sync_dist=True)  # equal on every rank

    def _validation_metrics(self, synth: dict, weak: dict) -> dict[str, float]:
        """Hook: the epoch's metrics (computed on rank 0, logged on every rank), which include the checkpoint
        criterion `val/obj_metric`; each argument holds the collected buffers of one of `validation_sets`."""
        training = self.config["training"]
        results = {}
        for model in MODELS:
            results[f"val/weak/{model}/macro_F1"] = float(weak_f1(
                torch.stack(weak[model]).numpy(), torch.stack(weak["target"]).numpy(), self.encoder.labels,
                threshold=0.5)[0]) if weak else 0.0
        if synth:
            if self._synth_val_reference is None:  # read once per run, not at every validation
                data = self.config["data"]
                self._synth_val_reference = (load_ground_truth(data["synth_val_tsv"]),
                                             load_durations(data["synth_val_dur"]))
            ground_truth, durations = self._restrict(*self._synth_val_reference, synth["file_id"])
            for model in MODELS:
                _, scores = self._decode(synth[model], synth["file_id"], durations)
                detections = scores_to_detections(scores, list(training["val_thresholds"]))
                results[f"val/synth/{model}/intersection_f1_macro"] = float(np.mean([
                    intersection_f1_macro(frame, ground_truth, durations)[0] for frame in detections.values()]))
        synth_type = training.get("obj_metric_synth_type") or "intersection"
        if synth_type != "intersection":
            raise BadInput(f"training.obj_metric_synth_type {synth_type!r} is not supported (use intersection)")
        results["val/obj_metric"] = (results["val/weak/student/macro_F1"]
                                     + results.get("val/synth/student/intersection_f1_macro", 0.0))
        return results

    # ------------------------------------------------------------------ test and evaluation
    def test_step(self, batch, batch_idx):
        audio, labels, valid_frames, file_ids = batch[:4]
        predictions = self._predict(batch)
        values = {"file_id": list(file_ids)}
        for model, (strong, weak) in predictions.items():
            values[f"{model}_strong"] = strong
            values[f"{model}_weak"] = weak
            if not self.evaluation:
                values[f"{model}_loss_strong"] = nn.functional.binary_cross_entropy(
                    strong, labels, reduction="none").mean(dim=(1, 2))
        if not self.evaluation:
            values["target"] = labels.amax(-1)
        self._buffer("test", **values)

    def on_test_epoch_end(self) -> None:
        outputs = self._collect("test")
        results = {}
        if self.global_rank == 0 and outputs:
            results = self._write_eval_scores(outputs) if self.evaluation else self._test_metrics(outputs)
        results = self._share(results)
        self.test_results = results
        if results and not self.evaluation:
            if self.logger is not None:
                self.logger.log_metrics(results, step=self.global_step)
            for name, value in results.items():
                self.log(name, value, logger=False, sync_dist=True)

    @staticmethod
    def _write_scores(scores: dict[str, pd.DataFrame], folder: Path) -> None:
        """One sed_scores_eval score TSV per clip: `<folder>/<audio id>.tsv`."""
        folder.mkdir(parents=True, exist_ok=True)
        write_sed_scores(scores, folder)

    def _write_eval_scores(self, outputs: dict) -> dict:
        """Evaluation set: per-clip post-processed score files `<log_dir>/eval_scores/<model>/<clip>.tsv`."""
        infos = getattr(self.test_data, "audio_info", {})
        max_len = float(self.config["data"]["audio_max_len"])
        durations = {f: min(infos[f].duration, max_len) for f in outputs["file_id"] if f in infos} or None
        for model in MODELS:
            _, scores = self._decode(outputs[f"{model}_strong"], outputs["file_id"], durations)
            self._write_scores(scores, self.log_dir / "eval_scores" / model)
        log.info("evaluation scores written to %s", self.log_dir / "eval_scores")
        return {}

    def _test_metrics(self, outputs: dict) -> dict[str, float]:
        """PSDS (both tools), F1s for student and teacher on all test clips; writes scores, plots, JSON."""
        data, training = self.config["data"], self.config["training"]
        ground_truth, durations = self._restrict(
            load_ground_truth(data["test_tsv"]), load_durations(data["test_dur"]), outputs["file_id"])
        thresholds = psds_thresholds(int(training["n_test_thresholds"]))
        targets = torch.stack(outputs["target"]).numpy()
        results: dict[str, float] = {}
        for model in MODELS:
            _, scores = self._decode(outputs[f"{model}_strong"], outputs["file_id"], durations)
            self._write_scores(scores, self.log_dir / "test_scores" / model)
            scores = self._present_classes(scores, ground_truth)
            curves: dict = {}
            with warnings.catch_warnings():  # psds_eval warns for every duplicate operating point
                warnings.simplefilter("ignore", UserWarning)
                report = sed_report(ground_truth, durations, scores=scores,
                                    operating_points=scores_to_detections(scores, thresholds), curves=curves)
            for name, value in report.items():
                if isinstance(value, (int, float)) and name != "threshold":
                    results[f"test/{model}/{name}"] = float(value)
            self._plot_psd_roc(model, curves)
            macro, per_class = weak_f1(torch.stack(outputs[f"{model}_weak"]).numpy(), targets,
                                       self.encoder.labels, threshold=0.5)
            results[f"test/{model}/weak_f1_macro"] = float(macro)
            results[f"test/{model}/loss_strong"] = float(torch.stack(outputs[f"{model}_loss_strong"]).mean())
            for label, value in per_class.items():
                results[f"test/{model}/weak_f1_classwise:{label}"] = float(value)
        results["hp_metric"] = max(results["test/student/psds1_psds_eval"], results["test/student/psds2_psds_eval"])
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_dir / "test_metrics.json", "w") as f:
            json.dump(results, f, indent=2, sort_keys=True)
        return results

    def _present_classes(self, scores: dict[str, pd.DataFrame], ground_truth: pd.DataFrame) -> dict:
        """Score tables without the classes that have no ground-truth event in the evaluated clips.

        sed_scores_eval cannot compute a PSDS for such classes; this only happens on tiny or truncated
        test sets (`--fast_dev_run`), where the metrics are then over the present classes.
        """
        absent = [label for label in self.encoder.labels if label not in set(ground_truth["event_label"])]
        if not absent:
            return scores
        log.warning("no ground-truth event of %s in the test clips: metrics are over the other classes", absent)
        return {clip: frame.drop(columns=absent) for clip, frame in scores.items()}

    def _plot_psd_roc(self, model: str, curves: dict) -> None:
        """PSD-ROC plots of every PSDS curve of `model` into `<log_dir>/psd_roc/<model>/`."""
        for name, result in curves.items():
            try:
                save_psd_roc_plot(result, self.log_dir / "psd_roc" / model, prefix=name)
            except Exception as error:  # a plot must not lose the metrics of a run
                log.warning("PSD-ROC plot %s of the %s failed: %s", name, model, error)


def load_sed_checkpoint(task: SEDTask, checkpoint: str | Path | dict) -> dict:
    """Load student and teacher weights of a Lightning checkpoint (ours or the official baseline's).

    Only `sed_student.*` / `sed_teacher.*` (and a fitted dataset scaler's `scaler.*`, an end-to-end
    pretrained model's `pretrained_model.*`) are taken, so the official `mel_spec.*` buffers are ignored. Returns the checkpoint dict.
    """
    if not isinstance(checkpoint, dict):
        checkpoint = torch.load(checkpoint, map_location="cpu", weights_only=False)
    state = checkpoint.get("state_dict", checkpoint)
    load_state_dict_by_name(task.sed_student, state, prefix="sed_student.")
    load_state_dict_by_name(task.sed_teacher, state, prefix="sed_teacher.")
    if any(key.startswith("scaler.") for key in state):
        load_state_dict_by_name(task.scaler, state, prefix="scaler.")
    pretrained = getattr(task, "pretrained_model", None)  # an end-to-end pretrained model (training/pretrained.py)
    if isinstance(pretrained, nn.Module) and any(key.startswith("pretrained_model.") for key in state):
        load_state_dict_by_name(pretrained, state, prefix="pretrained_model.")
    return checkpoint
