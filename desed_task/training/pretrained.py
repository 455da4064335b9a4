"""Mean-teacher SED with late fusion of pretrained-model embeddings (DCASE 2022 PANNs / AST, 2023 BEATs).

`PretrainedSEDTask` is `SEDTask` whose CRNN (`net.use_embeddings`) also takes the embeddings of a
pretrained model, configured in the `pretrained` section:

- `e2e: false` (published setting): embeddings are read from `extracted_embeddings_dir/<split>.hdf5`
  (written by `python -m desed_task.embeddings.extract`); each clip set is wrapped so its items carry the
  embedding, and clips without one are skipped and reported.
- `e2e: true`: the model (`model`, weights `checkpoint`) runs inside the step. `freezed: true` keeps it in
  eval mode under `torch.no_grad()` (the official code kept a gradient graph); `freezed: false` trains it,
  at learning rate `lr` (null: `opt.lr`, as the official code).
- `mix_embeddings: true` (default) mixes the embeddings with the same weight and permutation as the
  log-mels and labels; `false` reproduces the official recipes, whose mixed clips keep their own embedding.
- `random_crop: false` (default) crops training clips longer than `data.audio_max_len` from their start
  when embeddings come from files, as the extraction does; `true` keeps the random crop of the official
  recipes (the embedding then describes another part of the clip).

Hooks for subclasses (ATST-SED stage 1 feeds a frozen encoder this way): `build_embedding_model`,
`compute_embeddings`.

Files of the family: nnet/panns.py, nnet/ast.py, nnet/beats.py, nnet/official_weights.py, embeddings/, this
module, and the SED core.
"""
from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.utils.data import ConcatDataset, Dataset

from desed_task.embeddings.dataset import EmbeddingClipSet
from desed_task.embeddings.models import build_embedding_model
from desed_task.embeddings.store import EmbeddingReader, embedding_file
from desed_task.features.augment import mixup
from desed_task.training.sed import SEDTask, TrainBatch
from desed_task.utils.errors import BadInput

log = logging.getLogger(__name__)

PRETRAINED_DEFAULTS = {"e2e": False, "freezed": True, "checkpoint": None, "extracted_embeddings_dir": None,
                       "model_options": {}, "mix_embeddings": True, "random_crop": False, "lr": None}


def pretrained_settings(config: dict) -> dict:
    """The `pretrained` section with defaults, checked against the `net` section."""
    if "pretrained" not in config:
        raise BadInput("the config has no `pretrained` section (model, e2e, extracted_embeddings_dir, ...)")
    settings = {**PRETRAINED_DEFAULTS, **config["pretrained"]}
    unknown = sorted(set(settings) - set(PRETRAINED_DEFAULTS) - {"model"})
    if unknown:
        raise BadInput(f"unknown pretrained.* config keys {unknown}")
    if not config["net"].get("use_embeddings"):
        raise BadInput("pretrained embeddings need net.use_embeddings: True")
    if not settings["freezed"] and not settings["e2e"]:
        raise BadInput("pretrained.freezed: false trains the pretrained model, which needs pretrained.e2e: true")
    key = "checkpoint" if settings["e2e"] else "extracted_embeddings_dir"
    if not settings[key]:
        raise BadInput(f"pretrained.e2e: {settings['e2e']} needs pretrained.{key}")
    return settings


class PretrainedSEDTask(SEDTask):
    """`SEDTask` feeding the CRNN pretrained-model embeddings (see the module docstring)."""

    def __init__(self, config: dict, encoder=None, train_data: ConcatDataset | None = None, train_batch_sizes=None,
                 valid_synth: Dataset | None = None, valid_weak: Dataset | None = None,
                 test_data: Dataset | None = None, log_dir=".", evaluation: bool = False):
        self.settings = pretrained_settings(config)
        self.embedding_type = config["net"].get("embedding_type", "global")
        if not self.settings["e2e"]:
            report_dir = Path(log_dir) / "data_reports"
            sizes = list(train_batch_sizes or config["training"]["batch_size"])
            if train_data is not None:
                names = ["synth_train", "strong_train", "weak_train", "unlabeled_train"]
                names = names if len(sizes) == 4 else [n for n in names if n != "strong_train"]
                train_data = ConcatDataset([self._with_embeddings(dataset, split, report_dir, training=True)
                                            for dataset, split in zip(train_data.datasets, names)])
            valid_synth = self._with_embeddings(valid_synth, "synth_val", report_dir)
            valid_weak = self._with_embeddings(valid_weak, "weak_val", report_dir)
            test_data = self._with_embeddings(test_data, "eval" if evaluation else "test", report_dir)
        super().__init__(config, encoder, train_data, train_batch_sizes, valid_synth, valid_weak, test_data,
                         log_dir, evaluation)
        self.pretrained_model = self.build_embedding_model() if self.settings["e2e"] else None
        if self.pretrained_model is not None and self.settings["freezed"]:
            self.pretrained_model.eval()
            for param in self.pretrained_model.parameters():
                param.requires_grad_(False)

    def _with_embeddings(self, dataset: Dataset | None, split: str, report_dir: Path, training: bool = False):
        if dataset is None:
            return None
        if training and not self.settings["random_crop"] and hasattr(dataset, "random_crop"):
            dataset.random_crop = False
        reader = EmbeddingReader(embedding_file(self.settings["extracted_embeddings_dir"], split))
        return EmbeddingClipSet(dataset, reader, self.embedding_type, split, report_dir)

    # ------------------------------------------------------------------ hooks
    def build_embedding_model(self) -> nn.Module:
        """Hook: the pretrained model run in the step when `e2e` (default: `pretrained.model` from its file)."""
        return build_embedding_model(self.settings["model"], self.settings["checkpoint"],
                                     self.settings["model_options"])

    def compute_embeddings(self, audio: Tensor) -> Tensor:
        """Hook: the `net.embedding_type` embeddings of a (B, samples) waveform batch (`e2e`)."""
        if self.settings["freezed"]:
            with torch.no_grad():
                return self.pretrained_model(audio)[self.embedding_type]
        return self.pretrained_model(audio)[self.embedding_type]

    def audio_embeddings(self, audio: Tensor) -> Tensor | None:
        """The pretrained model's embeddings of the waveforms (`e2e`; inference loads checkpoints so)."""
        return self.compute_embeddings(audio) if self.pretrained_model is not None else None

    def optional_checkpoint_modules(self) -> dict[str, nn.Module]:
        """Adds the end-to-end pretrained model (`pretrained_model.*`)."""
        modules = super().optional_checkpoint_modules()
        if self.pretrained_model is not None:
            modules["pretrained_model."] = self.pretrained_model
        return modules

    def batch_embeddings(self, batch) -> Tensor:
        if self.pretrained_model is not None:
            return self.compute_embeddings(batch[0])
        return batch[4]

    def mix_embeddings(self, batch: TrainBatch, mask: Tensor, permutation: Tensor, weight: float) -> None:
        if self.settings["mix_embeddings"]:
            embeddings = batch.embeddings.clone()
            embeddings[mask] = mixup(embeddings[mask], permutation=permutation, mix_weight=weight)
            batch.embeddings = embeddings

    # ------------------------------------------------------------------ training
    def train(self, mode: bool = True):
        super().train(mode)
        if self.pretrained_model is not None and self.settings["freezed"]:
            self.pretrained_model.eval()
        return self

    def trainable_parameters(self):
        """The student, plus the pretrained model when it is trained (its own group when `pretrained.lr`)."""
        student = list(self.sed_student.parameters())
        if self.pretrained_model is None or self.settings["freezed"]:
            return student
        pretrained = [p for p in self.pretrained_model.parameters() if p.requires_grad]
        if self.settings["lr"] is None:
            return student + pretrained
        return [{"params": student, "lr": self.config["opt"]["lr"]},
                {"params": pretrained, "lr": float(self.settings["lr"])}]

