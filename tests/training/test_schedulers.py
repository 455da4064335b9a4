"""The exponential warm-up of the DCASE baseline: values, per-batch stepping, state restore."""
import math

import pytest
import torch

from desed_task.training.schedulers import ExponentialWarmup, exponential_rampup


def test_rampup_values():
    assert exponential_rampup(0, 100) == pytest.approx(math.exp(-5))
    assert exponential_rampup(50, 100) == pytest.approx(math.exp(-5 * 0.25))
    assert exponential_rampup(100, 100) == 1.0
    assert exponential_rampup(1000, 100) == 1.0  # clipped after the ramp
    assert exponential_rampup(3, 0) == 1.0  # no ramp
    assert exponential_rampup(10, 40, exponent=-2.0) == pytest.approx(math.exp(-2 * 0.75**2))


def make(max_lr=1e-3, length=10):
    optimizer = torch.optim.Adam([torch.nn.Parameter(torch.zeros(2))], lr=max_lr)
    return optimizer, ExponentialWarmup(optimizer, max_lr, length)


def test_learning_rate_follows_the_ramp_step_by_step():
    optimizer, scheduler = make()
    for step_num in range(1, 15):
        assert scheduler.step_num == step_num
        expected = 1e-3 * math.exp(-5 * (1 - min(step_num, 10) / 10) ** 2)
        assert optimizer.param_groups[0]["lr"] == pytest.approx(expected)
        assert scheduler.scaling_factor() == pytest.approx(expected / 1e-3)
        optimizer.step()
        scheduler.step()


def test_state_dict_restores_the_step_and_rate():
    optimizer, scheduler = make()
    for _ in range(4):
        optimizer.step()
        scheduler.step()
    state = scheduler.state_dict()
    fresh_optimizer, fresh = make(length=999)
    fresh.load_state_dict(state)
    fresh_optimizer.load_state_dict(optimizer.state_dict())
    assert fresh.step_num == 5 and fresh.rampup_length == 10
    fresh_optimizer.step()
    fresh.step()
    optimizer.step()
    scheduler.step()
    assert fresh_optimizer.param_groups[0]["lr"] == pytest.approx(optimizer.param_groups[0]["lr"])
