"""IRCT (invariance-regularised CRNN training): the mean-teacher SED core plus an invariance loss at one layer.

Each training batch is turned into three views of the same clips (IRCT-A's `build_irct_views`): the
original clips, a hard mixup of each clip with 1 or 2 other clips of its data part, and one augmentation
per data part drawn from tau1/tau2. As in the reference (daperera/irct), the student encodes the three
views separately up to `irct.placement`; only one view (chosen uniformly at random each step, or fixed by
`irct.supervised_view`) goes through the rest of the network and feeds the supervised loss and the
mean-teacher consistency (the teacher sees that same view). The invariance loss `loss_i`
(`desed_task.training.irct_losses.irct_loss`: mixup equivariance, time-shift equivariance, invariance to
the other augmentations, each MSE weighted by cost_i times the part's share of the batch) is added times
the consistency weight, `const_max` x the exponential ramp-up, as the reference does. The baseline's soft
mixup is not applied (the mixup view replaces it), as in the reference.

Differences from the reference, each with a switch: `irct.roll_bug_compatible` (the reference's
equivariance roll is a no-op; default: roll for real), `irct.augment_invariance` (the reference has the
invariance term of the non-shift augmentations commented out, so they only act through the supervised
view; default: the term is on, as the method describes), `irct.detach_target` (default False, as the
reference). The reference's reconstruction branch (`loss_r`) has cost 0 in every paper run and is not
implemented; no test-time `loss_i` is logged (the reference logs a constant 0 there).

Files of the family: features/irct_augment.py, training/irct_losses.py, this module, and the SED core.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, fields
from typing import Mapping

import torch
from torch import Tensor

from desed_task.features.irct_augment import (
    AUGMENTATION_SETS,
    VIEWS,
    IRCTViews,
    build_irct_views,
    choose_supervised_view,
)
from desed_task.features.mel import amplitude_to_db
from desed_task.training.distributed import gather_objects
from desed_task.training.irct_losses import irct_loss
from desed_task.training.sed import SEDTask, TrainBatch
from desed_task.utils.errors import BadInput

log = logging.getLogger(__name__)

IRCT_DEFAULTS = {
    "cost_i": 0.1,
    "mix_extra": [1, 2],
    "supervised_view": "random",
    "roll_bug_compatible": False,
    "detach_target": False,
    "augment_invariance": True,
    "seed": None,
}
SUPERVISED_VIEWS = ("random", *VIEWS)


def irct_settings(config: Mapping) -> dict:
    """The validated `irct:` section with defaults (placement and aug_set are required)."""
    section = config.get("irct")
    if not isinstance(section, Mapping) or "placement" not in section or "aug_set" not in section:
        raise BadInput("IRCT needs an `irct:` config section with at least `placement` and `aug_set`")
    settings = {**IRCT_DEFAULTS, **section}
    if settings["aug_set"] not in AUGMENTATION_SETS:
        raise BadInput(f"irct.aug_set must be one of {tuple(AUGMENTATION_SETS)}, got {settings['aug_set']!r}")
    if settings["supervised_view"] not in SUPERVISED_VIEWS:
        raise BadInput(f"irct.supervised_view must be one of {SUPERVISED_VIEWS}, got {settings['supervised_view']!r}")
    if not settings["mix_extra"] or any(int(n) < 1 for n in settings["mix_extra"]):
        raise BadInput(f"irct.mix_extra must list numbers of extra clips >= 1, got {settings['mix_extra']!r}")
    if settings["seed"] is None:
        settings["seed"] = int(config["training"].get("seed") or 0)
    return settings


@dataclass
class IRCTBatch(TrainBatch):
    """A `TrainBatch` whose features/labels are those of `supervised_view`, with all three `views`."""

    views: IRCTViews | None = None
    supervised_view: str = "original"
    representations: dict[str, object] | None = None


class IRCTTask(SEDTask):
    """`SEDTask` with IRCT's three-view batches and invariance loss (hooks: augment, student_forward,
    compute_extra_loss; plus the state of its own random generators in setup and checkpoints)."""

    def __init__(self, config: dict, *args, **kwargs):
        super().__init__(config, *args, **kwargs)
        self.irct = irct_settings(config)
        if self.irct["placement"] not in self.sed_student.placements:
            raise BadInput(f"irct.placement must be one of {self.sed_student.placements}, "
                             f"got {self.irct['placement']!r}")
        # As SEDTask's generators: batch-level draws (number of mixed clips, augmentations, supervised view)
        # are equal on every DDP rank; per-clip draws (mixing partners, mask positions) are the rank's own.
        self.irct_batch_generator = torch.Generator().manual_seed(int(self.irct["seed"]))
        self.irct_generator = torch.Generator().manual_seed(int(self.irct["seed"]))

    def augment(self, batch: TrainBatch, mel_amplitude: Tensor) -> IRCTBatch:
        """Build the original / mixup / augmented views and select the supervised one."""
        views = build_irct_views(
            batch.audio, batch.labels, self.train_batch_sizes, self.mel, self.irct["aug_set"],
            generator=self.irct_generator, mix_extra=[int(n) for n in self.irct["mix_extra"]],
            net_pooling=int(self.config["data"]["net_subsample"]), original_features=amplitude_to_db(mel_amplitude),
            batch_generator=self.irct_batch_generator,
        )
        view = self.irct["supervised_view"]
        if view == "random":
            view = choose_supervised_view(self.irct_batch_generator)
        labels = views.labels[view]
        common = {f.name: getattr(batch, f.name) for f in fields(TrainBatch)}
        common.update(features=views.features[view], labels=labels, weak_labels=labels[batch.weak_mask].amax(-1))
        return IRCTBatch(**common, views=views, supervised_view=view)

    def student_forward(self, batch: IRCTBatch) -> tuple[Tensor, Tensor]:
        """Encode the three views separately up to the placement (kept on the batch for
        `compute_extra_loss`) and classify the supervised view. Teacher, validation and test use `detect`."""
        placement = self.irct["placement"]
        batch.representations = {name: self.sed_student.encode(self.scaler(batch.views.features[name]), placement)
                                 for name in VIEWS}
        return self.sed_student.classify(batch.representations[batch.supervised_view], placement)

    def compute_extra_loss(self, batch: IRCTBatch, student, teacher) -> tuple[Tensor, dict[str, Tensor]]:
        """loss_i of the student's three views, times the consistency weight (const_max x ramp-up)."""
        representations = batch.representations
        if representations is None:
            raise RuntimeError("IRCTTask.compute_extra_loss needs `student_forward` of the same batch first")
        terms = irct_loss(
            representations["original"], representations["mixup"], representations["augmented"],
            batch.views.parts, self.irct["placement"], input_frames=batch.features.shape[-1],
            cost_i=float(self.irct["cost_i"]), roll_bug_compatible=bool(self.irct["roll_bug_compatible"]),
            detach_target=bool(self.irct["detach_target"]),
            augment_invariance=bool(self.irct["augment_invariance"]),
        )
        logs = {f"student/{name}": value.detach() for name, value in terms.items()}
        return terms["loss_i"] * self.consistency_weight(), logs

    def setup(self, stage: str) -> None:
        super().setup(stage)
        self.irct_batch_generator.manual_seed(int(self.irct["seed"]))
        self.irct_generator.manual_seed(int(self.irct["seed"]) + self.global_rank)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint["irct_batch_generator_state"] = self.irct_batch_generator.get_state()
        checkpoint["irct_generator_states"] = gather_objects(self.irct_generator.get_state())

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        super().on_load_checkpoint(checkpoint)
        if "irct_batch_generator_state" in checkpoint:
            self.irct_batch_generator.set_state(checkpoint["irct_batch_generator_state"])
        irct_state = self.rank_state(checkpoint.get("irct_generator_states"), "IRCT generator")
        if irct_state is not None:
            self.irct_generator.set_state(irct_state)
