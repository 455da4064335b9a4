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
