"""Learning-rate schedules of the DCASE baselines, as stateful torch schedulers (so resuming restores them)."""
from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import torch
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler


def exponential_rampup(step: int, rampup_length: int, exponent: float = -5.0) -> float:
    """exp(exponent * (1 - step / rampup_length)^2), clipped to 1 after the ramp (Laine & Aila, 2017).

    `rampup_length == 0` means no ramp: the factor is 1 from the start.
    """
    if rampup_length == 0:
        return 1.0
    current = min(max(step, 0), rampup_length)
    phase = 1.0 - current / rampup_length
    return float(math.exp(exponent * phase * phase))


class ExponentialWarmup(LRScheduler):
    """Learning rate `max_lr * exponential_rampup(step_num, rampup_length)`, stepped every batch.

    `step_num` is 1 for the first optimiser step and grows by one per `step()`, as in the official
    DCASE scheduler, whose factor also weights the mean-teacher consistency loss. One deliberate
    difference: the official scheduler only set the rate after the first step (so step 1 ran at the
    full `max_lr`); here the warmed-up rate applies from step 1.
    """

    def __init__(self, optimizer: Optimizer, max_lr: float | Sequence[float] | None, rampup_length: int,
                 exponent: float = -5.0, total_steps: int | None = None, min_scale: float = 0.1):
        """`max_lr`: one rate for every parameter group, one per group, or None for each group's own initial
        `lr`. `total_steps`: when given, the warm-up is followed by a cosine decay to `min_scale` at that
        step (`warmup_cosine_factor`, ATST-SED stage 2); otherwise the rate stays at its maximum."""
        self.max_lr = max_lr
        self.rampup_length = rampup_length
        self.exponent = exponent
        self.total_steps = total_steps
        self.min_scale = min_scale
        super().__init__(optimizer)

    @property
    def step_num(self) -> int:
        """Index (from 1) of the optimiser step the current learning rate is for."""
        return self.last_epoch + 1

    def scaling_factor(self) -> float:
        if self.total_steps is None:
            return exponential_rampup(self.step_num, self.rampup_length, self.exponent)
        return warmup_cosine_factor(self.step_num, self.rampup_length, self.total_steps, self.min_scale, self.exponent)

    def get_lr(self) -> list[float]:
        groups = self.optimizer.param_groups
        if self.max_lr is None:
            max_lrs = list(self.base_lrs)
        elif isinstance(self.max_lr, Sequence):
            max_lrs = list(self.max_lr)
        else:
            max_lrs = [self.max_lr] * len(groups)
        if len(max_lrs) != len(groups):
            raise ValueError(f"{len(max_lrs)} learning rates for {len(groups)} parameter groups")
        return [max_lr * self.scaling_factor() for max_lr in max_lrs]


def warmup_cosine_factor(step: int, rampup_length: int, total_steps: int, min_scale: float = 0.1,
                         exponent: float = -5.0) -> float:
    """ATST-SED's stage-2 factor: exponential warm-up for `step < rampup_length`, then a cosine from 1 down to
    `min_scale` at `total_steps`: `min_scale + (1 - min_scale) * (cos(pi * (step - R) / (N - R)) + 1) / 2`.

    After `total_steps` the factor stays at `min_scale` (the official formula would rise again).
    """
    if step < rampup_length:
        return exponential_rampup(step, rampup_length, exponent)
    phase = min(max(step - rampup_length, 0) / max(total_steps - rampup_length, 1), 1.0)
    return min_scale + (1.0 - min_scale) * (math.cos(math.pi * phase) + 1.0) / 2.0


def adam_with_warmup(params: Iterable, rampup_length: int, lr: float | None = None, total_steps: int | None = None,
                     min_scale: float = 0.1) -> dict:
    """The SED tasks' optimiser: Adam (betas 0.9, 0.999) with `ExponentialWarmup` stepped every batch, as
    Lightning's `configure_optimizers` dict. Each parameter group warms up to its own `lr` (`lr` for the
    groups that set none); `total_steps` adds the cosine decay to `min_scale` (ATST-SED stage 2)."""
    optimizer = torch.optim.Adam(params, betas=(0.9, 0.999), **({} if lr is None else {"lr": lr}))
    scheduler = ExponentialWarmup(optimizer, None, rampup_length, total_steps=total_steps, min_scale=min_scale)
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


def warmup_linear_decay_factor(epoch: int, warm_up_len: int, ramp_down_start: int, ramp_down_len: int,
                               last_lr_value: float) -> float:
    """Learning-rate factor of the CP-JKU/PaSST recipes, stepped per epoch (use with ``LambdaLR``).

    Exponential warm-up ``exp(-5 (1 - clip(epoch, 0.5, warm_up_len) / warm_up_len)^2)`` for
    ``epoch < warm_up_len`` (the lower clip at 0.5 is the official one), times a linear decay from 1 at
    ``ramp_down_start`` to ``last_lr_value`` over ``ramp_down_len`` epochs, ``last_lr_value`` afterwards.
    """
    rampup = 1.0
    if warm_up_len > 0 and epoch < warm_up_len:
        phase = 1.0 - min(max(epoch, 0.5), warm_up_len) / warm_up_len
        rampup = math.exp(-5.0 * phase * phase)
    if epoch <= ramp_down_start:
        rampdown = 1.0
    elif epoch - ramp_down_start < ramp_down_len:
        rampdown = last_lr_value + (1.0 - last_lr_value) * (ramp_down_len - epoch + ramp_down_start) / ramp_down_len
    else:
        rampdown = last_lr_value
    return rampup * rampdown
