"""UCLSER stages as small variations of the clip-classification core (``training/classification.py``).

- ``UCLSERTask``: supervised cross-entropy on one random patch per clip (from-scratch baseline,
  fine-tuning, and with ``learn.lin_eval`` linear evaluation of a frozen encoder). Evaluation averages
  the softmax of every patch of a clip (50-frame hop); ``macro_acc`` is the balanced accuracy.
- ``ContrastiveTask``: SimCLR-style pre-training of encoder + projection head with NT-Xent over the two
  views of each clip; model selection by a kNN monitor (cosine top-200 over the patch embeddings of
  the validation split, leave-one-clip-out, per-patch then per-clip majority votes, balanced accuracy).
  The best encoder is written as ``<log_dir>/<Net>_best.pth``, a plain state dict like the released ones.

Config sections beyond the core's (``training``, ``opt``, ``scheduler``): ``model`` (``network``,
``pretrained_path``, ``options``: constructor arguments), ``learn`` (``lin_eval``, ``bn_mode``, ``temp``, ``knn_k``).
``scheduler.name: multistep`` (``milestones``, ``gamma``) is the official MultiStepLR, stepped per epoch.
Files of the family: data/fsdnoisy18k.py, data/mini_fsdnoisy18k.py, features/mel.py (``UCLSERFrontend``),
features/uclser_augment.py, nnet/uclser.py, training/uclser_data.py (extraction, contrastive patches), this
module, training/run_uclser.py.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Iterable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader

from desed_task.data.fsdnoisy18k import EvaluationPatchDataset, clip_batches, collate_clip_patches
from desed_task.nnet.uclser import ProjectionHead, UCLSEREncoder, build_uclser_encoder, load_official_state_dict
from desed_task.training.classification import ClassificationTask
from desed_task.training.distributed import rank_shard
from desed_task.utils.files import atomic_path, write_json

log = logging.getLogger(__name__)

BN_MODES = ("train", "eval")
OFFICIAL_FILE_NAMES = {"res18": "ResNet_best.pth", "vgg_relu": "VGG_best.pth", "crnn": "CRNN_best.pth"}


def nt_xent(z: Tensor, temperature: float = 0.2) -> Tensor:
    """NT-Xent over 2N L2-normalised projections ordered [view 1 of clips 1..N; view 2 of clips 1..N]:
    mean over the 2N anchors of ``-log(exp(s_pos / t) / sum_{k != anchor} exp(s_k / t))``."""
    n_views = z.shape[0]
    if n_views % 2:
        raise ValueError(f"NT-Xent needs an even number of views, got {n_views}")
    logits = (z @ z.t()) / temperature
    logits = logits.masked_fill(torch.eye(n_views, dtype=torch.bool, device=z.device), float("-inf"))
    targets = (torch.arange(n_views, device=z.device) + n_views // 2) % n_views
    return F.cross_entropy(logits, targets)


def balanced_accuracy(predictions: Tensor, labels: Tensor, n_classes: int) -> tuple[float, list[float]]:
    """Mean over the classes present in ``labels`` of the per-class accuracy, and the per-class list
    (NaN for absent classes)."""
    per_class = []
    for index in range(n_classes):
        selected = labels == index
        per_class.append(float((predictions[selected] == index).float().mean()) if selected.any() else float("nan"))
    present = [value for value in per_class if not np.isnan(value)]
    return sum(present) / len(present), per_class


def majority_vote(votes: Tensor, groups: Tensor, n_groups: int, n_classes: int) -> Tensor:
    """Per group, the most frequent class among ``votes`` (ties: the lowest class index, as torch.unique
    + argmax in the official code)."""
    counts = torch.zeros(n_groups, n_classes, dtype=torch.long, device=votes.device)
    counts.index_put_((groups, votes), torch.ones_like(votes), accumulate=True)
    return counts.argmax(dim=1)


@torch.no_grad()
def knn_predict(embeddings: Tensor, labels: Tensor, clip_of_patch: Tensor, k: int = 200, n_classes: int = 20,
                chunk: int = 1024) -> tuple[Tensor, Tensor]:
    """Leave-one-clip-out kNN on one split, vectorised in row chunks.

    ``embeddings`` (P, D) L2-normalised patch embeddings, ``labels`` (P,) their clips' labels,
    ``clip_of_patch`` (P,) clip ids 0..C-1. Each patch votes the majority label of its ``k`` most
    cosine-similar patches of other clips; each clip takes the majority of its patches' votes.
    Returns (clip predictions (C,), clip labels (C,)).
    """
    n_clips = int(clip_of_patch.max()) + 1
    k = min(k, len(embeddings) - int(torch.bincount(clip_of_patch).max()))
    if k < 1:
        raise ValueError("kNN needs patches of at least two clips")
    votes = torch.empty(len(embeddings), dtype=torch.long, device=embeddings.device)
    for start in range(0, len(embeddings), chunk):
        rows = slice(start, start + chunk)
        similarity = embeddings[rows] @ embeddings.t()
        same_clip = clip_of_patch[rows, None] == clip_of_patch[None, :]
        neighbours = similarity.masked_fill(same_clip, float("-inf")).topk(k, dim=1).indices
        neighbour_labels = labels[neighbours]
        row_ids = torch.arange(len(neighbour_labels), device=embeddings.device)[:, None].expand_as(neighbour_labels)
        votes[rows] = majority_vote(neighbour_labels.reshape(-1), row_ids.reshape(-1), len(neighbour_labels),
                                    n_classes)
    clip_predictions = majority_vote(votes, clip_of_patch, n_clips, n_classes)
    clip_labels = torch.zeros(n_clips, dtype=torch.long, device=labels.device).scatter_(0, clip_of_patch, labels)
    return clip_predictions, clip_labels


def freeze(module: nn.Module) -> None:
    for param in module.parameters():
        param.requires_grad_(False)


class UCLSERTask(ClassificationTask):
    """Supervised stages on patches: from scratch (``model.pretrained_path`` null), fine-tuning (a
    pre-trained encoder, all weights trained) or linear evaluation (``learn.lin_eval``: the encoder is
    frozen, a new linear head is trained).

    ``learn.bn_mode`` (linear evaluation only): ``train`` (default, official) keeps the frozen encoder's
    batch norms in training mode, so they use batch statistics and re-estimate their running statistics
    on the downstream data; ``eval`` keeps the pre-trained statistics.
    """

    @property
    def learn(self) -> dict:
        return self.config.get("learn") or {}

    @property
    def bn_mode(self) -> str:
        mode = self.learn.get("bn_mode", "train")
        if mode not in BN_MODES:
            raise ValueError(f"learn.bn_mode must be one of {BN_MODES}, got {mode!r}")
        return mode

    def build_encoder(self) -> UCLSEREncoder:
        """The encoder of ``model.network``, loaded from ``model.pretrained_path`` when set."""
        model = self.config["model"]
        path = model.get("pretrained_path")
        options = model.get("options") or {}
        encoder = build_uclser_encoder(model["network"], n_classes=len(self.class_names), **options)
        if path:
            load_official_state_dict(encoder, path)
            log.info("encoder initialised from %s", path)
        return encoder

    def build_model(self) -> nn.Module:
        """The encoder; for linear evaluation frozen (pre-trained or random), and any loaded encoder gets
        a new classifier (the released heads are untrained)."""
        encoder = self.build_encoder()
        if self.learn.get("lin_eval"):
            freeze(encoder)
        if self.learn.get("lin_eval") or self.config["model"].get("pretrained_path"):
            encoder.reset_classifier(len(self.class_names))
        return encoder

    def train(self, mode: bool = True):
        super().train(mode)
        if mode and self.learn.get("lin_eval") and self.bn_mode == "eval":
            for module in self.model.modules():
                if isinstance(module, nn.modules.batchnorm._BatchNorm):
                    module.eval()
        return self

    def build_scheduler(self, optimizer: torch.optim.Optimizer):
        section = self.config.get("scheduler") or {}
        if section.get("name") == "multistep":
            return torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=list(section["milestones"]),
                                                        gamma=float(section.get("gamma", 0.1)))
        return super().build_scheduler(optimizer)

    def _clip_loader(self, dataset: EvaluationPatchDataset | None) -> DataLoader:
        if dataset is None:
            raise RuntimeError(f"{type(self).__name__} was given no evaluation data")
        training = self.config["training"]
        max_patches = int(training.get("batch_size_val", training["batch_size"]))
        workers = int(training.get("num_workers", 0))
        batches = rank_shard(clip_batches(dataset, max_patches), self.global_rank, self.n_ranks)
        return DataLoader(dataset, batch_sampler=batches, collate_fn=collate_clip_patches,
                          num_workers=workers, persistent_workers=workers > 0)

    def val_dataloader(self):
        return self._clip_loader(self.valid_data)

    def test_dataloader(self):
        return self._clip_loader(self.test_data if self.test_data is not None else self.valid_data)

    def evaluate_batch(self, batch: dict) -> Tensor:
        """Clip log-probabilities: log of the mean over each clip's patches of the patch softmax."""
        probabilities = self.model(batch["input"]).float().softmax(dim=1)
        n_clips = len(batch["label"])
        summed = torch.zeros(n_clips, probabilities.shape[1], device=probabilities.device).index_add_(
            0, batch["patch_clip"], probabilities)
        counts = torch.bincount(batch["patch_clip"], minlength=n_clips).clamp(min=1)
        return torch.log(summed / counts[:, None])


class ContrastiveModel(nn.Module):
    """Encoder + projection head: (B, 2, 1, T, F) views -> (2B, D) unit projections [view 1; view 2]."""

    def __init__(self, encoder: UCLSEREncoder, head: ProjectionHead):
        super().__init__()
        self.encoder = encoder
        self.head = head

    def project(self, x: Tensor) -> Tensor:
        return self.head(self.encoder.embed(x))

    def forward(self, views: Tensor) -> Tensor:
        return self.project(torch.cat([views[:, 0], views[:, 1]]))


class ContrastiveTask(UCLSERTask):
    """Contrastive pre-training (NT-Xent, ``learn.temp``), monitored by kNN (``learn.knn_k``) on the
    validation split; writes the best encoder to ``<log_dir>/<Net>_best.pth`` and the final kNN
    metrics to ``test_metrics.json``."""

    def build_model(self) -> nn.Module:
        encoder = self.build_encoder()
        return ContrastiveModel(encoder, ProjectionHead(encoder.embed_dim, **(self.config.get("head") or {})))

    def trainable_parameters(self) -> Iterable[nn.Parameter]:
        """Encoder (without its classifier, which gets no gradient) and projection head."""
        return [*self.model.encoder.encoder_parameters(), *self.model.head.parameters()]

    def training_loss(self, logits: Tensor, batch: dict) -> tuple[Tensor, dict[str, Tensor]]:
        loss = nt_xent(logits, float(self.learn.get("temp", 0.2)))
        return loss, {"loss_nt_xent": loss.detach()}

    @property
    def best_encoder_path(self) -> Path:
        return self.log_dir / OFFICIAL_FILE_NAMES.get(self.config["model"]["network"], "encoder_best.pth")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.best_knn = float("-inf")
        self._projections: dict[str, list[dict]] = {}

    def _collect(self, batch: dict, stage: str) -> None:
        z = self.model.project(batch["input"]).float()
        clips = batch["clip"][batch["patch_clip"]]
        labels = batch["label"][batch["patch_clip"]]
        self._projections.setdefault(stage, []).append({"z": z.cpu(), "label": labels.cpu(), "clip": clips.cpu()})

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self._collect(batch, "val")

    def test_step(self, batch: dict, batch_idx: int) -> None:
        self._collect(batch, "test")

    def knn_metrics(self, stage: str) -> dict[str, float]:
        """kNN balanced accuracy (``<stage>/knn_macro_acc``), accuracy and per-class accuracies."""
        outputs = self._projections.pop(stage, [])
        if not outputs:
            return {}
        merged = {key: torch.cat([item[key] for item in outputs]) for key in outputs[0]}
        _, clip_of_patch = torch.unique(merged["clip"], return_inverse=True)
        predictions, labels = knn_predict(merged["z"], merged["label"], clip_of_patch,
                                          int(self.learn.get("knn_k", 200)), len(self.class_names))
        balanced, per_class = balanced_accuracy(predictions, labels, len(self.class_names))
        metrics = {f"{stage}/knn_macro_acc": balanced,
                   f"{stage}/knn_acc": float((predictions == labels).float().mean())}
        metrics.update({f"{stage}/knn_acc_class.{name}": value for name, value in zip(self.class_names, per_class)
                        if not np.isnan(value)})
        for name, value in metrics.items():
            self.log(name, value, rank_zero_only=True)
        return metrics

    def collect_validation_metrics(self) -> dict[str, float]:
        """kNN metrics of the validation split; a new best writes the encoder (``best_encoder_path``)."""
        metrics = self.knn_metrics("val")
        score = metrics.get("val/knn_macro_acc")
        if score is not None and not self.trainer.sanity_checking and self.trainer.is_global_zero \
                and score > self.best_knn:
            self.best_knn = score
            with atomic_path(self.best_encoder_path) as tmp:
                torch.save(self.model.encoder.state_dict(), tmp)
            write_json(self.log_dir / "best_encoder.json", {"epoch": self.current_epoch, "val/knn_macro_acc": score},
                       indent=2, sort_keys=True)
        return metrics

    def collect_test_metrics(self) -> dict[str, float]:
        return self.knn_metrics("test")
