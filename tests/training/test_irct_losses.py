"""IRCT loss terms: zero for identical inputs, positive otherwise, real shifts, right time axes."""
import pytest
import torch

from desed_task.features.irct_augment import Augmentation, AugmentInfo, PartPlan
from desed_task.training import irct_losses as L

crnn_module = pytest.importorskip("desed_task.nnet.crnn")


@pytest.fixture(scope="module")
def crnn():
    torch.manual_seed(0)
    return crnn_module.CRNN(nb_filters=[4, 4, 4, 4, 4, 4, 4], n_RNN_cell=8).eval()


@pytest.mark.parametrize("placement", L.PLACEMENTS)
def test_time_axis_matches_the_crnn_representation(crnn, placement):
    frames = 64
    x = torch.randn(2, 128, frames)
    h = crnn.encode(x, placement)
    strong = h[0] if isinstance(h, tuple) else h
    expected_frames = {"input": frames, "l1": frames // 2}.get(placement, frames // 4)
    assert strong.shape[L.time_axis(placement)] == expected_frames


@pytest.mark.parametrize("placement", ["input", "l1", "l5", "l8", "l9"])
def test_terms_zero_for_identical_and_positive_otherwise(crnn, placement):
    x = torch.randn(4, 128, 64)
    h = crnn.encode(x, placement)
    h_other = crnn.encode(x + torch.randn_like(x), placement)
    assert L.invariance_loss(h, h).item() == 0
    assert L.invariance_loss(h_other, h).item() > 0
    assert L.equivariance_loss(h, h, 0, placement).item() == 0
    assert L.equivariance_loss(h_other, h, 3, placement).item() > 0
    partners = [torch.tensor([1, 2, 3, 0])]
    h_mix_exact = L.mixup_target(h, partners)
    assert L.mixup_equivariance_loss(h_mix_exact, h, partners).item() == 0
    assert L.mixup_equivariance_loss(h, h, partners).item() > 0


@pytest.mark.parametrize("placement", ["input", "l3", "l8", "l9"])
def test_equivariance_target_is_a_real_shift(placement):
    torch.manual_seed(1)
    shape = {"input": (2, 5, 20), "l3": (2, 3, 20, 4), "l8": (2, 20, 6)}
    h = (torch.randn(2, 10, 20), torch.rand(2, 10)) if placement == "l9" else torch.randn(shape[placement])
    shift = 7
    axis = L.time_axis(placement)
    strong = h[0] if isinstance(h, tuple) else h
    length = strong.shape[axis]
    explicit = torch.cat(
        [strong.narrow(axis, length - shift, shift), strong.narrow(axis, 0, length - shift)], dim=axis
    )
    rolled = L.roll_time(h, shift, placement)
    rolled_strong = rolled[0] if isinstance(rolled, tuple) else rolled
    assert torch.equal(rolled_strong, explicit)
    target = (explicit, h[1]) if isinstance(h, tuple) else explicit
    assert L.equivariance_loss(target, h, shift, placement).item() == 0
    assert L.equivariance_loss(target, h, shift, placement, roll_bug_compatible=True).item() > 0
    assert L.equivariance_loss(h, h, shift, placement, roll_bug_compatible=True).item() == 0


def test_layer_shift_scales_input_frames_to_layer_frames():
    assert L.layer_shift(64, 626, 156) == 16
    assert L.layer_shift(64, 626, 313) == 32
    assert L.layer_shift(64, 626, 626) == 64


def test_detach_target_stops_gradient_to_the_target():
    h = torch.randn(3, 4, requires_grad=True)
    h_aug = torch.randn(3, 4, requires_grad=True)
    L.invariance_loss(h_aug, h, detach_target=True).backward()
    assert h.grad is None and h_aug.grad is not None
    L.invariance_loss(h_aug, h).backward()
    assert h.grad is not None


def test_irct_loss_weights_parts_by_ratio_and_cost():
    torch.manual_seed(2)
    h = torch.randn(4, 3, 8, 2)
    h_aug = torch.randn(4, 3, 8, 2)
    partners = [[torch.tensor([1, 0])], [torch.tensor([3, 2])]]
    h_mix = torch.cat([L.mixup_target(h, partners[0], slice(0, 2)), L.mixup_target(h, partners[1], slice(2, 4))])
    shift_info = AugmentInfo(Augmentation("time_shift", 1, shift_fraction=0.1), shift_input_frames=8)
    mask_info = AugmentInfo(Augmentation("time_mask", 1))
    parts = [
        PartPlan("synthetic", slice(0, 2), 0.5, partners[0], shift_info),
        PartPlan("unlabeled", slice(2, 4), 0.5, partners[1], mask_info),
    ]
    losses = L.irct_loss(h, h_mix, h_aug, parts, "l3", input_frames=32, cost_i=0.1)
    assert losses["loss_mixup"].item() == pytest.approx(0, abs=1e-12)
    expected = 0.1 * 0.5 * (
        L.equivariance_loss(h_aug[:2], h[:2], 2, "l3") + L.invariance_loss(h_aug[2:], h[2:])
    )
    assert losses["loss_i"].item() == pytest.approx(expected.item(), rel=1e-6)
