"""Learning-rate schedules of the DCASE baselines, as stateful torch schedulers (so resuming restores them)."""
from __future__ import annotations

import math

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

    def __init__(self, optimizer: Optimizer, max_lr: float, rampup_length: int, exponent: float = -5.0):
        self.max_lr = max_lr
        self.rampup_length = rampup_length
        self.exponent = exponent
        super().__init__(optimizer)

    @property
    def step_num(self) -> int:
        """Index (from 1) of the optimiser step the current learning rate is for."""
        return self.last_epoch + 1

    def scaling_factor(self) -> float:
        return exponential_rampup(self.step_num, self.rampup_length, self.exponent)

    def get_lr(self) -> list[float]:
        return [self.max_lr * self.scaling_factor() for _ in self.optimizer.param_groups]


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


class GroupExponentialWarmup(LRScheduler):
    """Per-parameter-group learning rates `max_lr[i] * factor(step_num)` (each group's own initial `lr` is its
    maximum), stepped every batch with `step_num` counted as in `ExponentialWarmup`.

    The factor is the exponential warm-up, then constant (`total_steps=None`, ATST-SED stage 1) or the cosine
    decay of `warmup_cosine_factor` to `min_scale` at `total_steps` (stage 2).
    """

    def __init__(self, optimizer: Optimizer, rampup_length: int, total_steps: int | None = None,
                 min_scale: float = 0.1, exponent: float = -5.0):
        self.rampup_length = rampup_length
        self.total_steps = total_steps
        self.min_scale = min_scale
        self.exponent = exponent
        super().__init__(optimizer)

    @property
    def step_num(self) -> int:
        return self.last_epoch + 1

    def scaling_factor(self) -> float:
        if self.total_steps is None:
            return exponential_rampup(self.step_num, self.rampup_length, self.exponent)
        return warmup_cosine_factor(self.step_num, self.rampup_length, self.total_steps, self.min_scale, self.exponent)

    def get_lr(self) -> list[float]:
        return [max_lr * self.scaling_factor() for max_lr in self.base_lrs]
