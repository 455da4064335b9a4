"""Baseline augmentations: mixup label math, frame shift alignment, noise level, determinism."""
import pytest
import torch

from desed_task.features.augment import add_noise, frame_shift, mixup


def make_batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    feats = torch.randn(6, 16, 40, generator=g)
    labels = (torch.rand(6, 10, 10, generator=g) > 0.7).float()
    return feats, labels


def test_mixup_soft_and_hard_label_math():
    feats, labels = make_batch()
    perm = torch.tensor([1, 2, 3, 4, 5, 0])
    mixed, soft = mixup(feats, labels, permutation=perm, mix_weight=0.3)
    torch.testing.assert_close(mixed, 0.3 * feats + 0.7 * feats[perm])
    torch.testing.assert_close(soft, 0.3 * labels + 0.7 * labels[perm])
    _, hard = mixup(feats, labels, permutation=perm, mixup_label_type="hard", mix_weight=0.3)
    torch.testing.assert_close(hard, torch.clamp(labels + labels[perm], 0, 1))
    assert set(hard.unique().tolist()) <= {0.0, 1.0}


def test_mixup_soft_labels_clamped_and_without_targets():
    feats, _ = make_batch()
    out = mixup(feats, permutation=torch.arange(6), generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(out, feats)  # identity permutation leaves the batch unchanged
    _, soft = mixup(feats, torch.full((6, 2), 1.5), mix_weight=0.4)
    assert soft.max() == 1.0


def test_mixup_deterministic_with_generator_and_beta_weight():
    feats, labels = make_batch()
    a = mixup(feats, labels, generator=torch.Generator().manual_seed(7))
    b = mixup(feats, labels, generator=torch.Generator().manual_seed(7))
    torch.testing.assert_close(a, b)
    # with one-hot items and an explicit permutation, the weight c is visible in the output
    eye = torch.eye(4)
    weights = [mixup(eye, permutation=torch.tensor([1, 0, 3, 2]),
                     generator=torch.Generator().manual_seed(s))[0, 0].item() for s in range(400)]
    weights = torch.tensor(weights)
    assert 0 <= weights.min() and weights.max() <= 1
    assert abs(weights.mean() - 0.5) < 0.06 and abs(weights.var() - 0.25 / 1.4) < 0.03  # Beta(0.2, 0.2)
    with pytest.raises(ValueError):
        mixup(feats, labels, mixup_label_type="medium")


def test_frame_shift_rolls_features_and_labels_consistently():
    net_pooling = 4
    labels = torch.zeros(8, 2, 25)
    labels[:, 0, 10:15] = 1
    feats = labels.repeat_interleave(net_pooling, dim=-1)  # features aligned with labels
    shifted_feats, shifted_labels = frame_shift(feats, labels, net_pooling, generator=torch.Generator().manual_seed(3))
    assert shifted_feats.shape == feats.shape and shifted_labels.shape == labels.shape
    n_rolled = 0
    for item in range(8):
        shift = next(s for s in range(100) if torch.equal(torch.roll(feats[item], s, -1), shifted_feats[item]))
        n_rolled += shift != 0
        torch.testing.assert_close(shifted_labels[item], torch.roll(labels[item], shift // net_pooling, -1))
    assert n_rolled > 0


def test_frame_shift_deterministic_and_floor_division_for_negative_shifts():
    feats = torch.arange(40.0).repeat(3, 1, 1)
    labels = torch.arange(10.0).repeat(3, 1, 1)
    first = frame_shift(feats, labels, generator=torch.Generator().manual_seed(0), shift_std=5)
    second = frame_shift(feats, labels, generator=torch.Generator().manual_seed(0), shift_std=5)
    torch.testing.assert_close(first, second)
    shifts = (torch.randn(3, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 5).tolist()
    for item, shift in enumerate(int(s) for s in shifts):
        torch.testing.assert_close(first[0][item], torch.roll(feats[item], shift, -1))
        torch.testing.assert_close(first[1][item], torch.roll(labels[item], shift // 4, -1))
    assert [int(s) for s in shifts] == [7, -1, -10]  # label shifts 1, -1, -3: negatives round away from 0


def test_add_noise_snr():
    g = torch.Generator().manual_seed(0)
    feats = torch.randn(4, 64, 500, generator=g) * 2
    noisy = add_noise(feats, snrs=20.0, generator=g)
    noise_std = (noisy - feats).std((1, 2))
    torch.testing.assert_close(noise_std, feats.std((1, 2)) / 10, rtol=0.02, atol=0)
    ranged = add_noise(feats, snrs=(6, 30), generator=torch.Generator().manual_seed(1))
    ratio = feats.std((1, 2)) / (ranged - feats).std((1, 2))
    snr_db = 20 * torch.log10(ratio)
    assert ((snr_db > 5.8) & (snr_db < 30.2)).all()


def test_mixup_returns_its_permutation_and_weight_for_other_inputs():
    generator = torch.Generator().manual_seed(3)
    features, targets = torch.randn(5, 4, 6), torch.rand(5, 3)
    mixed, mixed_targets, (permutation, weight) = mixup(features, targets, generator=generator, return_mix=True)
    torch.testing.assert_close(mixed, weight * features + (1 - weight) * features[permutation])
    other = torch.randn(5, 7, requires_grad=True)
    again = mixup(other, permutation=permutation, mix_weight=weight)
    torch.testing.assert_close(again, weight * other + (1 - weight) * other[permutation])
    assert again.grad_fn is not None  # differentiable: a trained pretrained model's embeddings keep their gradient
