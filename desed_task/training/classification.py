"""The clip-classification core: one LightningModule shared by scene classification (CP-Mobile, with
distillation and QAT) and the UCLSER stages (contrastive pre-training, linear evaluation, fine-tuning).

Batches are dicts made by the default collate from dataset items
``{"input": Tensor, "label": int, "group": int (optional), "index": int (optional)}``: ``input`` is
a waveform or a feature patch, ``group`` an id into ``group_names`` (a recording device, a split),
``index`` the item's row in its metadata (e.g. to look up teacher logits).

Subclasses change behaviour through small hooks, all documented below:
``build_model`` (required), ``build_frontend``, ``augment_input``, ``augment_features``,
``training_loss``, ``evaluate_batch``, ``trainable_parameters``, ``build_optimizer``, ``build_scheduler``,
``collect_validation_metrics``, ``collect_test_metrics``; an evaluation flow with several models (e.g.
float and int8) calls ``record_logits`` / ``stage_metrics`` with its own stage names.

Config sections read here (everything else is free for subclasses):
- ``training``: ``batch_size``, ``batch_size_val`` (default batch_size), ``num_workers``, ``seed``,
  ``n_epochs``, ``drop_last`` (default True);
- ``opt``: ``name`` (adam | adamw | sgd), ``lr``, ``weight_decay`` (Adam: coupled L2), ``betas``, ``momentum``;
- ``scheduler``: ``name`` none | cosine (over ``training.n_epochs``) | warmup_linear_decay
  (``warm_up_len``, ``ramp_down_start``, ``ramp_down_len``, ``last_lr_value``), stepped per epoch;
- ``evaluation``: ``group_sets`` ``{set name: [group names]}`` for accuracies over sets of groups.

Validation and test log ``<stage>/loss``, ``/acc``, ``/macro_acc`` (mean of per-class accuracies),
``/acc_class.<class>``, ``/acc_group.<group>``, ``/loss_group.<group>``, ``/count_group.<group>``
and ``/acc_set.<set>`` to the Trainer's loggers (TensorBoard); the test metrics are also written to
``<log_dir>/test_metrics.json``.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from desed_task.training.schedulers import warmup_linear_decay_factor
from desed_task.training.distributed import (capture_rng_states, gather_objects, rank_entry, rank_shard,
                                             restore_rng_states, seed_worker)
from desed_task.utils.files import write_json

log = logging.getLogger(__name__)

OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULERS = ("none", "cosine", "warmup_linear_decay")


def classification_metrics(logits: Tensor, labels: Tensor, class_names: Sequence[str],
                           groups: Tensor | None = None, group_names: Sequence[str] = (),
                           group_sets: Mapping[str, Sequence[str]] | None = None, prefix: str = "val") -> dict:
    """Accuracy, cross-entropy and macro accuracy, per class, per group and per set of groups.

    ``logits`` (N, C), ``labels`` (N,), ``groups`` (N,) ids into ``group_names``. Classes or groups
    without items are left out (no NaN entries); a set counts all items of its groups.
    """
    labels = labels.long()
    losses = F.cross_entropy(logits.float(), labels, reduction="none")
    correct = (logits.argmax(dim=1) == labels).float()
    metrics = {f"{prefix}/loss": float(losses.mean()), f"{prefix}/acc": float(correct.mean())}
    per_class = []
    for index, name in enumerate(class_names):
        selected = labels == index
        if selected.any():
            accuracy = float(correct[selected].mean())
            metrics[f"{prefix}/acc_class.{name}"] = accuracy
            per_class.append(accuracy)
    metrics[f"{prefix}/macro_acc"] = sum(per_class) / len(per_class)
    if groups is None:
        return metrics
    groups = groups.long()
    for index, name in enumerate(group_names):
        selected = groups == index
        if selected.any():
            metrics[f"{prefix}/acc_group.{name}"] = float(correct[selected].mean())
            metrics[f"{prefix}/loss_group.{name}"] = float(losses[selected].mean())
            metrics[f"{prefix}/count_group.{name}"] = int(selected.sum())
    for set_name, members in (group_sets or {}).items():
        unknown = sorted(set(members) - set(group_names))
        if unknown:
            raise ValueError(f"evaluation.group_sets.{set_name}: unknown groups {unknown} (known: {list(group_names)})")
        ids = torch.tensor([group_names.index(member) for member in members])
        selected = torch.isin(groups, ids)
        if selected.any():
            metrics[f"{prefix}/acc_set.{set_name}"] = float(correct[selected].mean())
    return metrics


class ClassificationTask(pl.LightningModule):
    """Clip classification: frontend -> augmentations -> model -> loss; accuracy reports.

    Args:
        config: the experiment config (sections above); saved as the checkpoint's hyper-parameters.
        class_names: class names in label order.
        train_data, valid_data, test_data: datasets of item dicts (see the module docstring).
        group_names: names of the ``group`` ids of the items (e.g. devices), empty when items have none.
        log_dir: where ``test_metrics.json`` goes.
    The network is ``self.model`` and the frontend ``self.frontend`` (an ``nn.Identity`` by default).
    """

    def __init__(self, config: dict, class_names: Sequence[str], train_data: Dataset | None = None,
                 valid_data: Dataset | None = None, test_data: Dataset | None = None,
                 group_names: Sequence[str] = (), log_dir: str | Path = "."):
        super().__init__()
        self.save_hyperparameters(config)
        self.config = config
        self.class_names = list(class_names)
        self.group_names = list(group_names)
        self.train_data, self.valid_data, self.test_data = train_data, valid_data, test_data
        self.log_dir = Path(log_dir)
        self.frontend = self.build_frontend()
        self.model = self.build_model()
        self._outputs: dict[str, list[dict]] = {}
        self.validation_results: dict[str, float] = {}
        self.test_results: dict[str, float] = {}
        self._train_generator: torch.Generator | None = None  # the training loader's shuffling and worker seeds
        self._resumed_states: dict | None = None  # this rank's random states of a resumed checkpoint

    @property
    def seed(self) -> int:
        return int(self.config["training"].get("seed") or 0)

    # ------------------------------------------------------------------ hooks for subclasses
    def build_model(self) -> nn.Module:
        """Hook (required): the network, features -> logits (B, n_classes); stored as ``self.model``."""
        raise NotImplementedError(f"{type(self).__name__} must implement build_model()")

    def build_frontend(self) -> nn.Module:
        """Hook: inputs -> model features (default identity: datasets deliver features)."""
        return nn.Identity()

    def augment_input(self, inputs: Tensor, batch: dict) -> Tensor:
        """Hook: training-only augmentation of the raw inputs, before the frontend (default none)."""
        return inputs

    def augment_features(self, features: Tensor, batch: dict) -> Tensor:
        """Hook: training-only augmentation of the frontend's output (default none)."""
        return features

    def training_loss(self, logits: Tensor, batch: dict) -> tuple[Tensor, dict[str, Tensor]]:
        """Hook: (loss, named parts to log) of a training batch; default cross-entropy to ``label``."""
        loss = F.cross_entropy(logits, batch["label"])
        return loss, {"loss_ce": loss.detach()}

    def evaluate_batch(self, batch: dict) -> Tensor:
        """Hook: logits of an evaluation batch (default: frontend then model, no augmentation)."""
        return self.model(self.frontend(batch["input"]))

    def trainable_parameters(self) -> Iterable[nn.Parameter]:
        """Hook: the parameters the optimiser updates (default all parameters of the model)."""
        return [param for param in self.model.parameters() if param.requires_grad]

    def build_optimizer(self) -> torch.optim.Optimizer:
        """Hook: the optimiser from the ``opt`` section (Adam's ``weight_decay`` is coupled L2)."""
        opt = self.config["opt"]
        name = opt.get("name", "adam").lower()
        params, lr, decay = self.trainable_parameters(), float(opt["lr"]), float(opt.get("weight_decay", 0.0))
        if name == "adam":
            return torch.optim.Adam(params, lr=lr, betas=tuple(opt.get("betas", (0.9, 0.999))), weight_decay=decay)
        if name == "adamw":
            return torch.optim.AdamW(params, lr=lr, betas=tuple(opt.get("betas", (0.9, 0.999))), weight_decay=decay)
        if name == "sgd":
            return torch.optim.SGD(params, lr=lr, momentum=float(opt.get("momentum", 0.0)), weight_decay=decay)
        raise ValueError(f"opt.name must be one of {OPTIMIZERS}, got {name!r}")

    def build_scheduler(self, optimizer: torch.optim.Optimizer):
        """Hook: a per-epoch scheduler from the ``scheduler`` section, or None."""
        section = dict(self.config.get("scheduler") or {"name": "none"})
        name = section.pop("name", "none")
        if name == "none":
            return None
        if name == "cosine":
            return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=int(self.config["training"]["n_epochs"]))
        if name == "warmup_linear_decay":
            return torch.optim.lr_scheduler.LambdaLR(
                optimizer, lambda epoch: warmup_linear_decay_factor(epoch, **section))
        raise ValueError(f"scheduler.name must be one of {SCHEDULERS}, got {name!r}")

    # ------------------------------------------------------------------ training
    def training_step(self, batch: dict, batch_idx: int) -> Tensor:
        inputs = self.augment_input(batch["input"], batch)
        features = self.augment_features(self.frontend(inputs), batch)
        logits = self.model(features)
        loss, parts = self.training_loss(logits, batch)
        size = len(batch["label"])
        self.log("train/loss", loss.detach(), prog_bar=True, batch_size=size)
        for name, value in parts.items():
            self.log(f"train/{name}", value, batch_size=size)
        self.log("train/lr", self.trainer.optimizers[0].param_groups[0]["lr"], batch_size=size)
        return loss

    def configure_optimizers(self):
        optimizer = self.build_optimizer()
        scheduler = self.build_scheduler(optimizer)
        if scheduler is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"}}

    # ------------------------------------------------------------------ data loaders
    def _loader(self, dataset: Dataset | None, train: bool) -> DataLoader:
        if dataset is None:
            raise RuntimeError(f"{type(self).__name__} was given no {'training' if train else 'evaluation'} data")
        training = self.config["training"]
        workers = int(training.get("num_workers", 0))
        batch_size = int(training["batch_size"] if train else training.get("batch_size_val", training["batch_size"]))
        sampler = None
        if self.n_ranks > 1:  # the loaders shard themselves (the runner turns Lightning's sampler injection off)
            sampler = (DistributedSampler(dataset, self.n_ranks, self.global_rank, shuffle=True, seed=self.seed,
                                          drop_last=True) if train
                       else rank_shard(list(range(len(dataset))), self.global_rank, self.n_ranks))
        return DataLoader(dataset, batch_size=batch_size, shuffle=train and sampler is None, sampler=sampler,
                          drop_last=train and bool(training.get("drop_last", True)) and len(dataset) >= batch_size,
                          num_workers=workers, worker_init_fn=seed_worker, persistent_workers=workers > 0,
                          generator=self._train_loader_generator() if train
                          else torch.Generator().manual_seed(self.seed + self.global_rank))

    def _train_loader_generator(self) -> torch.Generator:
        """The training loader's generator, seeded by (seed, rank), or in a resumed run the state it had when
        the checkpoint was written: the resumed epochs shuffle as the uninterrupted run's did."""
        self._train_generator = torch.Generator().manual_seed(self.seed + self.global_rank)
        if self._resumed_states is not None:
            self._train_generator.set_state(self._resumed_states["loader"])
        return self._train_generator

    # ------------------------------------------------------------------ exact resume
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        """Every rank's training-loader generator and global random states (dropout, augmentation)."""
        loader = self._train_generator.get_state() if self._train_generator is not None else None
        checkpoint["random_states"] = gather_objects({"loader": loader, "global": capture_rng_states()})

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        states = rank_entry(checkpoint.get("random_states"), self.global_rank, self.n_ranks, "random states")
        self._resumed_states = states if states is not None and states["loader"] is not None else None

    def on_train_epoch_start(self) -> None:
        if self._resumed_states is not None:  # the first resumed epoch draws as the uninterrupted run's did
            restore_rng_states(self._resumed_states["global"])
            self._resumed_states = None

    @property
    def n_ranks(self) -> int:
        """Number of training processes (1 outside a Trainer)."""
        return self.trainer.world_size if self._trainer is not None else 1

    def train_dataloader(self):
        return self._loader(self.train_data, train=True)

    def val_dataloader(self):
        return self._loader(self.valid_data, train=False)

    def test_dataloader(self):
        return self._loader(self.test_data if self.test_data is not None else self.valid_data, train=False)

    # ------------------------------------------------------------------ evaluation
    def record_logits(self, stage: str, logits: Tensor, batch: dict) -> None:
        """Keep an evaluation batch's logits, labels and groups (of this rank's share) until ``stage_metrics``."""
        values = {"logits": logits.detach().float(), "label": batch["label"]}
        if "group" in batch:
            values["group"] = batch["group"]
        self._outputs.setdefault(stage, []).append({key: value.cpu() for key, value in values.items()})

    def stage_metrics(self, stage: str) -> dict[str, float]:
        """Metrics of everything recorded under ``stage`` (then forgotten), logged under ``<stage>/...``."""
        outputs = self._outputs.pop(stage, [])
        merged = {key: torch.cat([item[key] for item in outputs]) for key in outputs[0]} if outputs else {}
        if self.n_ranks > 1:  # every rank's share, in rank order (a rank's share may be empty)
            parts = [part for part in gather_objects(merged) if part]
            merged = {key: torch.cat([part[key] for part in parts]) for key in parts[0]} if parts else {}
        if not merged:
            return {}
        metrics = classification_metrics(
            merged["logits"], merged["label"], self.class_names, merged.get("group"), self.group_names,
            (self.config.get("evaluation") or {}).get("group_sets"), prefix=stage)
        for name, value in metrics.items():
            self.log(name, float(value))
        return metrics

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self.record_logits("val", self.evaluate_batch(batch), batch)

    def test_step(self, batch: dict, batch_idx: int) -> None:
        self.record_logits("test", self.evaluate_batch(batch), batch)

    def collect_validation_metrics(self) -> dict[str, float]:
        """Hook: the metrics of a finished validation epoch (default ``stage_metrics("val")``)."""
        return self.stage_metrics("val")

    def collect_test_metrics(self) -> dict[str, float]:
        """Hook: the metrics of a finished test epoch (default ``stage_metrics("test")``)."""
        return self.stage_metrics("test")

    def on_validation_epoch_end(self) -> None:
        self.validation_results = self.collect_validation_metrics()

    def on_test_epoch_end(self) -> None:
        self.test_results = self.collect_test_metrics()
        if self.test_results and self.trainer.is_global_zero:
            write_json(self.log_dir / "test_metrics.json", self.test_results, indent=2, sort_keys=True)
