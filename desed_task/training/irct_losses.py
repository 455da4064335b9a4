"""IRCT loss terms on CRNN representations at one placement (pure functions).

A representation `h` is what `CRNN.encode(x, placement)` returns: a tensor for "input" and l1..l8, the
tuple (strong, weak) for l9. Time axes: "input" (B, n_mels, T) and l1..l7 (B, C, T', F') -> 2,
l8 (B, T, 2H) -> 1, l9 strong (B, C, T) -> 2; the l9 weak output has no time axis (it is compared
without roll: clip-level predictions should not move with a circular shift).

Targets are not detached by default, as in the reference (its invariance target e(x) and the mixup
target sum keep their gradients); `detach_target=True` stops them. The reference's equivariance roll
is a no-op (its split index is the label-frame count times the layer length, so the slices return the
unshifted tensor); `roll_bug_compatible=True` reproduces that, the default rolls for real.
"""
from __future__ import annotations

from typing import Sequence, Union

import torch
import torch.nn.functional as F

from desed_task.features.irct_augment import PartPlan

Representation = Union[torch.Tensor, tuple]
PLACEMENTS = ("input", "l1", "l2", "l3", "l4", "l5", "l6", "l7", "l8", "l9")


def time_axis(placement: str) -> int:
    """Time axis of the placement's representation (for l9: of the strong output)."""
    if placement not in PLACEMENTS:
        raise ValueError(f"unknown placement {placement!r}; expected one of {PLACEMENTS}")
    return 1 if placement == "l8" else 2


def layer_shift(shift_input_frames: int, input_frames: int, layer_frames: int) -> int:
    """A shift of `shift_input_frames` input frames expressed in frames of a layer of `layer_frames`."""
    return round(shift_input_frames * layer_frames / input_frames)


def _as_tuple(h: Representation) -> tuple:
    return tuple(h) if isinstance(h, (tuple, list)) else (h,)


def select_rows(h: Representation, rows) -> Representation:
    """Rows (slice or index tensor) of every tensor of a representation."""
    return tuple(t[rows] for t in h) if isinstance(h, (tuple, list)) else h[rows]


def _target(h: torch.Tensor, detach: bool) -> torch.Tensor:
    return h.detach() if detach else h


def invariance_loss(h_aug: Representation, h_orig: Representation, detach_target: bool = False) -> torch.Tensor:
    """MSE(e(aug(x)), e(x)), summed over the tensors of a tuple representation."""
    return sum(F.mse_loss(a, _target(o, detach_target)) for a, o in zip(_as_tuple(h_aug), _as_tuple(h_orig)))


def roll_time(h: Representation, shift: int, placement: str) -> Representation:
    """Roll a representation later in time by `shift` frames of its layer (weak l9 output untouched)."""
    axis = time_axis(placement)
    if isinstance(h, (tuple, list)):
        strong, *rest = h
        return (torch.roll(strong, shift, dims=axis), *rest)
    return torch.roll(h, shift, dims=axis)


def equivariance_loss(
    h_shifted: Representation,
    h_orig: Representation,
    shift: int,
    placement: str,
    roll_bug_compatible: bool = False,
    detach_target: bool = False,
) -> torch.Tensor:
    """MSE(e(shift(x)), roll(e(x), shift)) with `shift` in frames of the placement's layer."""
    target = h_orig if roll_bug_compatible else roll_time(h_orig, shift, placement)
    return invariance_loss(h_shifted, target, detach_target)


def mixup_target(h_orig: Representation, partners: Sequence[torch.Tensor], rows=slice(None)) -> Representation:
    """Sum of e(x_i) and e of the clips mixed into x_i (partners: global indices, one tensor per clip added)."""
    summed = []
    for tensor in _as_tuple(h_orig):
        total = tensor[rows]
        for partner in partners:
            total = total + tensor[partner]
        summed.append(total)
    return tuple(summed) if isinstance(h_orig, (tuple, list)) else summed[0]


def mixup_equivariance_loss(
    h_mix: Representation,
    h_orig: Representation,
    partners: Sequence[torch.Tensor],
    rows=slice(None),
    detach_target: bool = False,
) -> torch.Tensor:
    """MSE(e(mix(x)), e(x) + sum e(x_partner)) over `rows` of the batch (hard mixup of 1 or 2 clips)."""
    return invariance_loss(select_rows(h_mix, rows), mixup_target(h_orig, partners, rows), detach_target)


def irct_loss(
    h_orig: Representation,
    h_mix: Representation,
    h_aug: Representation,
    parts: Sequence[PartPlan],
    placement: str,
    input_frames: int,
    cost_i: float = 0.1,
    roll_bug_compatible: bool = False,
    detach_target: bool = False,
    augment_invariance: bool = True,
) -> dict[str, torch.Tensor]:
    """IRCT's loss_i for one batch: sum over data parts of cost_i * part ratio * (mixup + augment terms).

    The augment term is the equivariance loss for a time shift and the invariance loss otherwise;
    `augment_invariance=False` drops the latter, as the reference code (where it is commented out). The
    exponential ramp-up weight is applied by the trainer. Returns loss_i and its two components.
    """
    strong_axis = time_axis(placement)
    layer_frames = _as_tuple(h_orig)[0].shape[strong_axis]
    mixup_total = augment_total = _as_tuple(h_orig)[0].new_zeros(())
    for part in parts:
        weight = cost_i * part.ratio
        mixup_total = mixup_total + weight * mixup_equivariance_loss(
            h_mix, h_orig, part.partners, part.rows, detach_target
        )
        aug_part, orig_part = select_rows(h_aug, part.rows), select_rows(h_orig, part.rows)
        if part.info.augmentation.name == "time_shift":
            shift = layer_shift(part.info.shift_input_frames, input_frames, layer_frames)
            term = equivariance_loss(aug_part, orig_part, shift, placement, roll_bug_compatible, detach_target)
        elif augment_invariance:
            term = invariance_loss(aug_part, orig_part, detach_target)
        else:
            continue
        augment_total = augment_total + weight * term
    return {"loss_i": mixup_total + augment_total, "loss_mixup": mixup_total, "loss_augment": augment_total}
