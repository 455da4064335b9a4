"""DCASE 2024 Task 4 baseline: one 27-class CRNN (BEATs frame fusion) on DESED + MAESTRO Real.

`DCASE2024Task` is `PretrainedSEDTask` with:

- data (`build_datasets`): the MAESTRO Real training chunks (1 s hop, DESED copies of mapped classes) in
  front of the DESED sets [synth, strong, weak, unlabeled]; `training.batch_size` lists the five parts,
  official `[12, 6, 6, 12, 24]`. The MAESTRO training recordings are split per scene, recording by
  recording (seed `training.seed`), keeping int(`maestro_split` * n) for training; the rest validates
  (1 s hop chunks). Dev-test is the `data.maestro_test_split` recordings (5 s hop);
- class masks: DESED items train only the 10 DESED classes, MAESTRO items their 17 classes plus Speech,
  Dog and Dishes, in the network's attention and heads and in the targets; the consistency loss is on the
  DESED items only (strong BCE over MAESTRO, synth and strong, weak BCE over the weak part);
- mixup inside each group (weak, DESED strong, MAESTRO). `training.mixup_official_2024: true` (default)
  reproduces the official code, which mixes the embeddings with a second draw (own permutation and weight)
  and so mixes the labels twice; `false` mixes features, embeddings and labels with one draw;
- the schedule: exponential warm-up over `n_epochs_warmup`, constant until `n_epochs_constant`, then a
  cosine down to 0 at `n_epochs` (floor 1e-8 / lr);
- evaluation: per-class median filters (`training.median_window`, a list of 27), MAESTRO segment scores
  (1 s, overlap-added over the windows), mpAUC / mAUC / best-threshold F1 on the 11 evaluated classes beside
  PSDS1 / PSDS2 on DESED. The checkpoint criterion adds the MAESTRO validation term selected by
  `training.obj_metric_maestro_type`: `f1` (default, what the official code computes even when its YAML
  says `mpauc`) or `mpauc`.
"""
from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import Tensor
from torch.optim.lr_scheduler import LambdaLR
from torch.utils.data import ConcatDataset, Dataset

from desed_task.data.build import SEDDatasets, build_sed_datasets
from desed_task.data.encoder import ManyHotEncoder
from desed_task.data.maestro import (
    DCASE2024_CLASSES, MAESTRO_CLASSES, MAESTRO_EVAL_CLASSES, MAESTRO_VALID_CLASSES, MaestroChunkSet, class_mask,
    find_recordings, read_split_list,
)
from desed_task.data.classes import DESED_CLASSES
from desed_task.data.mini_maestro import ensure_mini_maestro
from desed_task.embeddings.dataset import EmbeddingClipSet
from desed_task.embeddings.store import EmbeddingReader
from desed_task.evaluation.decode import median_filter_scores
from desed_task.evaluation.segment import overlap_add, segment_metrics, window_segment_scores
from desed_task.features.augment import mixup
from desed_task.features.mel import amplitude_to_db
from desed_task.training.pretrained import PretrainedSEDTask
from desed_task.training.sed import TrainBatch
from desed_task.training.sed_scoring import MODELS
from desed_task.utils.errors import BadInput

log = logging.getLogger(__name__)

MAESTRO_EMBEDDING_FILES = {"maestro_train": "maestro_real_train.hdf5", "maestro_val": "maestro_real_val.hdf5",
                           "maestro_test": "maestro_real_devtest.hdf5"}


def lr_factor(step: int, warmup: int, constant_until: int, total: int, floor: float) -> float:
    """Learning-rate factor of optimiser step ``step`` (from 1): exp(-5 (1 - step / warmup)^2) during the
    warm-up, 1 until ``constant_until``, then a cosine from 1 to 0 at ``total``, never below ``floor``."""
    if warmup and step < warmup:
        return max(math.exp(-5.0 * (1 - step / warmup) ** 2), floor)
    if step <= constant_until or total <= constant_until:
        return 1.0
    progress = min((step - constant_until) / (total - constant_until), 1.0)
    return max(0.5 * (1 + math.cos(math.pi * progress)), floor)


def split_maestro_recordings(names, train_fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """Per scene (name without its ``_NN`` suffix), a seeded shuffle keeps int(fraction * n) recordings for training."""
    rng = np.random.default_rng(seed)
    train, valid = [], []
    for scene in sorted({name.rsplit("_", 1)[0] for name in names}):
        recordings = sorted(n for n in names if n.rsplit("_", 1)[0] == scene)
        order = [recordings[i] for i in rng.permutation(len(recordings))]
        keep = int(train_fraction * len(recordings))
        train += order[:keep]
        valid += order[keep:]
    return train, valid


def maestro_sets(config: dict, encoder: ManyHotEncoder) -> dict[str, MaestroChunkSet]:
    """The MAESTRO training, validation (held-out training recordings) and dev-test chunk sets of ``config``
    (``data.maestro_mini``: of the built-in mini MAESTRO, generated on first use)."""
    data, training = dict(config["data"]), config["training"]
    if data.get("maestro_mini"):
        options = dict(data["maestro_mini"])
        data.update(ensure_mini_maestro(options.pop("out_dir", "data/mini_maestro"), options.pop("seed", 0), **options))
    for key in ("maestro_root", "maestro_train_split", "maestro_test_split"):
        if not data.get(key):
            raise BadInput(f"data.{key} is not set (the MAESTRO Real folder and the official split lists)")
    names = read_split_list(data["maestro_train_split"], "train")
    train, valid = split_maestro_recordings(names, float(training.get("maestro_split", 0.9)),
                                            int(training.get("seed") or 0))
    test = read_split_list(data["maestro_test_split"], "val")
    root, fs = data["maestro_root"], int(data["fs"])
    return {
        "maestro_train": MaestroChunkSet(find_recordings(root, train), encoder, hop=1.0, training=True, fs=fs),
        "maestro_val": MaestroChunkSet(find_recordings(root, valid), encoder, hop=1.0, fs=fs),
        "maestro_test": MaestroChunkSet(find_recordings(root, test), encoder, hop=5.0, fs=fs),
    }


def require_embeddings(chunks: MaestroChunkSet, reader: EmbeddingReader, split: str, report_dir) -> None:
    """Every chunk of ``chunks`` must have an embedding: the missing ones are listed in
    ``<report_dir>/missing_embeddings_<split>.tsv`` and named in the error, before any training."""
    missing = [name for name in chunks.filenames if Path(name).stem not in reader.index]
    if not missing:
        return
    report = Path(report_dir) / f"missing_embeddings_{split}.tsv"
    report.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"filename": missing, "path": str(reader.path)}).to_csv(report, sep="\t", index=False)
    shown = ", ".join(missing[:5]) + (f", ... ({len(missing)} in all, listed in {report})" if len(missing) > 5 else "")
    raise BadInput(f"{reader.path}: no embedding for {len(missing)} MAESTRO chunk(s) of split '{split}': {shown}")


class DCASE2024Task(PretrainedSEDTask):
    """The DCASE 2024 Task 4 baseline (see the module docstring)."""

    labels = DCASE2024_CLASSES

    @classmethod
    def build_datasets(cls, config: dict, encoder: ManyHotEncoder, strong_real: bool = False,
                       report_dir=None) -> SEDDatasets:
        sizes = list(config["training"]["batch_size"])
        if len(sizes) != 5:
            raise BadInput(f"training.batch_size = {sizes} must have 5 entries [maestro, synth, strong, weak, unlabeled]")
        desed_config = {**config, "training": {**config["training"], "batch_size": sizes[1:]}}
        desed = build_sed_datasets(desed_config, encoder, strong_real=True, report_dir=report_dir)
        return SEDDatasets(train=ConcatDataset(desed.train.datasets), train_batch_sizes=sizes[1:],
                           valid_synth=desed.valid_synth, valid_weak=desed.valid_weak, test=desed.test)

    def __init__(self, config: dict, encoder=None, train_data: ConcatDataset | None = None, train_batch_sizes=None,
                 valid_synth: Dataset | None = None, valid_weak: Dataset | None = None,
                 test_data: Dataset | None = None, log_dir=".", evaluation: bool = False):
        encoder = encoder if encoder is not None else ManyHotEncoder(
            DCASE2024_CLASSES, config["data"]["audio_max_len"], config["feats"]["n_window"],
            config["feats"]["hop_length"], config["data"]["net_subsample"], config["data"]["fs"])
        if list(encoder.labels) != list(DCASE2024_CLASSES):
            raise BadInput("the DCASE 2024 task needs the 27-class encoder (DESED then MAESTRO classes)")
        maestro = {} if evaluation else maestro_sets(config, encoder)
        if train_data is None:
            maestro.pop("maestro_train", None)
            maestro.pop("maestro_val", None)
        if test_data is None:
            maestro.pop("maestro_test", None)
        super().__init__(config, encoder, train_data, train_batch_sizes, valid_synth, valid_weak, test_data,
                         log_dir, evaluation)
        report_dir = Path(log_dir) / "data_reports"
        self.maestro: dict[str, Dataset] = {}
        for split, chunks in maestro.items():
            self.maestro[split] = chunks
            if not self.settings["e2e"]:
                reader = EmbeddingReader(Path(self.settings["extracted_embeddings_dir"]) / MAESTRO_EMBEDDING_FILES[split])
                require_embeddings(chunks, reader, split, report_dir)
                self.maestro[split] = EmbeddingClipSet(chunks, reader, self.embedding_type, split, report_dir)
        self.maestro_chunks = maestro
        if train_data is not None:
            self.train_data = ConcatDataset([self.maestro["maestro_train"], *self.train_data.datasets])
            self.train_batch_sizes = list(config["training"]["batch_size"])
        self.desed_mask = class_mask(DESED_CLASSES, DCASE2024_CLASSES)
        self.maestro_mask = class_mask(MAESTRO_VALID_CLASSES, DCASE2024_CLASSES)
        self.eval_columns = [DCASE2024_CLASSES.index(c) for c in MAESTRO_EVAL_CLASSES]

    # ------------------------------------------------------------------ training
    def batch_class_mask(self, device=None) -> Tensor:
        """(B, 27) masks of the training batch layout: MAESTRO items first, then the DESED items."""
        n_maestro, n_desed = self.train_batch_sizes[0], sum(self.train_batch_sizes[1:])
        return torch.cat([self.maestro_mask.expand(n_maestro, -1), self.desed_mask.expand(n_desed, -1)]).to(device)

    def prepare_train_batch(self, batch) -> TrainBatch:
        train_batch = super().prepare_train_batch(batch)
        mask = self.batch_class_mask(train_batch.labels.device)
        train_batch.class_mask = mask
        train_batch.labels = train_batch.labels * mask[:, :, None]
        train_batch.weak_labels = train_batch.labels[train_batch.weak_mask].amax(-1)
        return train_batch

    def augment(self, batch: TrainBatch, mel_amplitude: Tensor) -> TrainBatch:
        """Mixup (probability 0.5) separately in the weak, DESED strong and MAESTRO groups, then dB."""
        mixup_type = self.config["training"].get("mixup")
        if mixup_type is not None and self.mixup_this_step():
            official = self.config["training"].get("mixup_official_2024", True)
            mel_amplitude, labels = mel_amplitude.clone(), batch.labels.clone()
            embeddings = batch.embeddings.clone() if batch.embeddings is not None else None
            n_maestro = self.train_batch_sizes[0]
            maestro = torch.zeros_like(batch.strong_mask)
            maestro[:n_maestro] = True
            for group in (batch.weak_mask, batch.strong_mask & ~maestro, maestro):
                size = int(group.sum())
                mel_amplitude[group], labels[group], (permutation, weight) = mixup(
                    mel_amplitude[group], labels[group], mixup_label_type=mixup_type,
                    permutation=self.rank_permutation(size), generator=self.batch_generator, return_mix=True)
                if embeddings is None:
                    continue
                if official:  # a second draw, which mixes the labels again
                    embeddings[group], labels[group] = mixup(
                        embeddings[group], labels[group], mixup_label_type=mixup_type,
                        permutation=self.rank_permutation(size), generator=self.batch_generator)
                else:
                    embeddings[group] = mixup(embeddings[group], permutation=permutation, mix_weight=weight)
            batch.labels, batch.embeddings = labels, embeddings
            batch.weak_labels = labels[batch.weak_mask].amax(-1)
        batch.features = amplitude_to_db(mel_amplitude)
        return batch

    def mix_embeddings(self, batch: TrainBatch, mask: Tensor, permutation: Tensor, weight: float) -> None:
        """Unused: `augment` mixes the embeddings of each group itself."""

    def student_forward(self, batch: TrainBatch) -> tuple[Tensor, Tensor]:
        return self.sed_student(self.scaler(batch.features), embeddings=batch.embeddings, class_mask=batch.class_mask)

    def teacher_forward(self, batch: TrainBatch) -> tuple[Tensor, Tensor]:
        return self.sed_teacher(self.scaler(batch.features), embeddings=batch.embeddings, class_mask=batch.class_mask)

    def training_losses(self, batch: TrainBatch, student, teacher) -> dict[str, Tensor]:
        """Strong BCE on MAESTRO + synth + strong, weak BCE on the weak part, consistency on the DESED items."""
        strong_s, weak_s = student
        strong_t, weak_t = teacher
        loss_strong = self.supervised_loss(strong_s[batch.strong_mask], batch.labels[batch.strong_mask])
        loss_weak = self.supervised_loss(weak_s[batch.weak_mask], batch.weak_labels)
        desed = torch.ones_like(batch.strong_mask)
        desed[:self.train_batch_sizes[0]] = False
        weight = self.consistency_weight()
        strong_self = self.selfsup_loss(strong_s[desed], strong_t[desed].detach())
        weak_self = self.selfsup_loss(weak_s[desed], weak_t[desed].detach())
        supervised = loss_strong + loss_weak
        tot_self = (strong_self + weak_self) * weight
        return {"loss": supervised + tot_self, "student/loss_strong": loss_strong, "student/loss_weak": loss_weak,
                "student/tot_supervised": supervised, "student/strong_self_sup_loss": strong_self,
                "student/weak_self_sup_loss": weak_self, "student/tot_self_loss": tot_self,
                "weight": torch.tensor(weight)}

    def configure_optimizers(self):
        training = self.config["training"]
        optimizer = torch.optim.Adam(self.trainable_parameters(), lr=self.config["opt"]["lr"], betas=(0.9, 0.999))
        per_epoch = max(self.rampup_length // max(int(training["n_epochs_warmup"]), 1), 1)
        constant = int(training.get("n_epochs_constant", 100)) * per_epoch
        total = int(training["n_epochs"]) * per_epoch
        floor = 1e-8 / float(self.config["opt"]["lr"])
        scheduler = LambdaLR(optimizer, lambda index: lr_factor(index + 1, self.rampup_length, constant, total, floor))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    # ------------------------------------------------------------------ validation and test
    def validation_sets(self) -> dict[str, tuple[Dataset, str]]:
        sets = super().validation_sets()
        if "maestro_val" in self.maestro:
            sets["maestro"] = (self.maestro["maestro_val"], "strong")
        return sets

    def _median(self, strong: Tensor) -> np.ndarray:
        """(C, T) probabilities -> (T, C) median-filtered (per-class windows)."""
        return median_filter_scores(strong.numpy().T, self.config["training"]["median_window"])

    def _maestro_segment_tables(self, chunks: MaestroChunkSet, file_ids, strong, per_recording: bool):
        """Segment score tables of the 17 MAESTRO classes, per recording (overlap-add) or per chunk, and their
        durations (a recording's ends with its last scored chunk: all of it unless batches were limited)."""
        by_name = {chunk.name: chunk for chunk in chunks.chunks}
        frame_hop = float(self.encoder.frame_to_time(1))
        columns = [DCASE2024_CLASSES.index(c) for c in MAESTRO_CLASSES]
        windows, durations = [], {}
        for name, scores in zip(file_ids, strong):
            chunk = by_name[name]
            segments = window_segment_scores(self._median(scores)[:, columns], frame_hop, chunk.end - chunk.start)
            key = chunk.recording if per_recording else Path(name).stem
            durations[key] = max(durations.get(key, 0.0), chunk.end if per_recording else chunk.end - chunk.start)
            windows.append((key, chunk.start if per_recording else 0.0, segments))
        return overlap_add(windows, durations, MAESTRO_CLASSES), durations

    def _maestro_metrics(self, chunks: MaestroChunkSet, outputs: dict, per_recording: bool, stage: str) -> dict:
        if per_recording:
            truth = chunks.recording_ground_truth()
        else:
            truth = chunks.chunk_ground_truth()
        results = {}
        for model in MODELS:
            tables, durations = self._maestro_segment_tables(chunks, outputs["file_id"], outputs[model], per_recording)
            stems = truth["filename"].map(lambda f: Path(f).stem)
            length = stems.map(durations)
            truth_part = truth[length.notna() & (truth["onset"] < length)].copy()
            truth_part["offset"] = np.minimum(truth_part["offset"], length[truth_part.index])
            for name, value in segment_metrics(tables, truth_part, durations, MAESTRO_EVAL_CLASSES).items():
                results[f"{stage}/{model}/maestro/{name}"] = value
        return results

    def _validation_metrics(self, synth: dict, weak: dict, maestro: dict | None = None) -> dict[str, float]:
        results = super()._validation_metrics(synth, weak)
        if maestro:
            results.update(self._maestro_metrics(self.maestro_chunks["maestro_val"], maestro, False, "val"))
            kind = self.config["training"].get("obj_metric_maestro_type", "f1")
            if kind not in ("f1", "mpauc"):
                raise BadInput(f"training.obj_metric_maestro_type must be f1 or mpauc, got {kind!r}")
            term = "segment_f1_best" if kind == "f1" else "mpauc"
            value = results[f"val/student/maestro/{term}"]
            results["val/obj_metric"] += 0.0 if np.isnan(value) else value  # NaN: no event in the scored chunks
        return results

    def test_dataloader(self):
        loaders = [super().test_dataloader()]
        if "maestro_test" in self.maestro:
            loaders.append(self._eval_loader(self.maestro["maestro_test"]))
        return loaders

    def test_step(self, batch, batch_idx, dataloader_idx: int = 0):
        if dataloader_idx == 0:
            return super().test_step(batch, batch_idx)
        predictions = self._predict(batch)
        self._buffer("test_maestro", file_id=list(batch[3]), student=predictions["student"][0],
                     teacher=predictions["teacher"][0])

    def on_test_epoch_end(self) -> None:
        self._maestro_test_outputs = self._collect("test_maestro") if "maestro_test" in self.maestro else {}
        super().on_test_epoch_end()

    def _test_metrics(self, outputs: dict) -> dict[str, float]:
        """DESED PSDS / F1 on the 10 DESED columns, then MAESTRO dev-test mpAUC / mAUC / F1 per recording."""
        results = super()._test_metrics(outputs)
        if self._maestro_test_outputs:
            results.update(self._maestro_metrics(self.maestro_chunks["maestro_test"], self._maestro_test_outputs,
                                                 True, "test"))
        return results
