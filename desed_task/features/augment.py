"""Baseline augmentations of the DCASE task 4 recipe: mixup, frame shift and white noise.

All randomness comes from an optional ``torch.Generator`` so that a seeded call is reproducible.
"""
from __future__ import annotations

import torch

MIXUP_LABEL_TYPES = ("soft", "hard")


def beta_sample(alpha: float, beta: float, generator: torch.Generator | None) -> float:
    """One Beta(alpha, beta) draw from two Gamma draws made with ``generator``."""
    gammas = torch._standard_gamma(torch.tensor([alpha, beta], dtype=torch.float64), generator=generator)
    return float(gammas[0] / gammas.sum())


def mixup(
    features: torch.Tensor,
    targets: torch.Tensor | None = None,
    alpha: float = 0.2,
    beta: float = 0.2,
    mixup_label_type: str = "soft",
    permutation: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    mix_weight: float | None = None,
    return_mix: bool = False,
):
    """Mix each item with another item of the batch, as the baseline's ``mixup``.

    One weight ``c ~ Beta(alpha, beta)`` for the whole batch (or ``mix_weight`` when given) and
    ``mixed = c * x + (1 - c) * x[permutation]`` with a random permutation unless given. Targets:
    ``soft`` -> ``clamp(c * t + (1 - c) * t[perm], 0, 1)``; ``hard`` -> ``clamp(t + t[perm], 0, 1)``.
    Returns ``mixed`` or ``(mixed, mixed_targets)`` when targets are given; with ``return_mix`` the
    ``(permutation, weight)`` used are appended, so other inputs can be mixed the same way.
    Differentiable: embeddings of a pretrained model that is being trained keep their gradient.
    """
    if mixup_label_type not in MIXUP_LABEL_TYPES:
        raise ValueError(f"mixup_label_type must be one of {MIXUP_LABEL_TYPES}, got {mixup_label_type!r}")
    if permutation is None:
        permutation = torch.randperm(features.shape[0], generator=generator)
    permutation = permutation.to(features.device)
    c = beta_sample(alpha, beta, generator) if mix_weight is None else float(mix_weight)
    mixed = c * features + (1 - c) * features[permutation]
    outputs = (mixed,)
    if targets is not None:
        if mixup_label_type == "soft":
            mixed_targets = c * targets + (1 - c) * targets[permutation]
        else:
            mixed_targets = targets + targets[permutation]
        outputs += (mixed_targets.clamp(0, 1),)
    if return_mix:
        outputs += ((permutation, c),)
    return outputs[0] if len(outputs) == 1 else outputs


def frame_shift(
    features: torch.Tensor,
    labels: torch.Tensor,
    net_pooling: int = 4,
    shift_std: float = 90.0,
    generator: torch.Generator | None = None,
):
    """Roll each item along time by ``int(N(0, shift_std))`` feature frames, as the baseline.

    Labels (at ``1 / net_pooling`` of the feature frame rate) roll by ``shift // net_pooling``
    (floor division, so a negative shift rounds away from zero, exactly as the baseline).
    features (B, n_mels, T), labels (B, n_classes, T // net_pooling).
    """
    shifts = (torch.randn(features.shape[0], generator=generator, dtype=torch.float64) * shift_std).tolist()
    shifted, new_labels = [], []
    for item, item_labels, shift in zip(features, labels, shifts):
        shift = int(shift)
        shifted.append(torch.roll(item, shift, dims=-1))
        new_labels.append(torch.roll(item_labels, shift // net_pooling, dims=-1))
    return torch.stack(shifted), torch.stack(new_labels)


def add_noise(
    features: torch.Tensor, snrs=(6.0, 30.0), dims=(1, 2), generator: torch.Generator | None = None
) -> torch.Tensor:
    """Add white noise at an SNR (dB) drawn uniformly per item from ``snrs`` (or fixed if a number).

    The noise std is ``std(features over dims) / 10 ** (snr / 20)``, as the baseline's ``add_noise``.
    """
    if isinstance(snrs, (list, tuple)):
        uniform = torch.rand(features.shape[0], generator=generator).to(features)
        snr = (snrs[0] - snrs[1]) * uniform + snrs[1]
        snr = snr.reshape(-1, *([1] * (features.ndim - 1)))
    else:
        snr = torch.as_tensor(float(snrs), dtype=features.dtype, device=features.device)
    sigma = features.std(dim=dims, keepdim=True) / 10 ** (snr / 20)
    noise = torch.randn(features.shape, generator=generator, dtype=features.dtype).to(features.device)
    return features + noise * sigma


def frequency_warp(
    features: torch.Tensor, scale: tuple[float, float] = (0.6, 1.0), generator: torch.Generator | None = None
) -> torch.Tensor:
    """ATST-SED's frequency warping (its ``RandomResizeCrop`` with the time scale fixed to 1).

    ``features`` (batch, n_bins, frames): one band of ``int(U(scale) * n_bins)`` bins at a uniform random
    offset is cropped over the whole time axis, for the whole batch, and resized back to (n_bins, frames)
    by bicubic interpolation with ``align_corners=True``.
    """
    n_bins = features.shape[-2]
    draw = float(torch.empty((), dtype=torch.float64).uniform_(scale[0], scale[1], generator=generator))
    height = min(max(int(draw * n_bins), 1), n_bins)
    offset = int(torch.randint(0, n_bins - height + 1, (), generator=generator))
    band = features[:, offset:offset + height].unsqueeze(1)
    warped = torch.nn.functional.interpolate(band, size=features.shape[-2:], mode="bicubic", align_corners=True)
    return warped.squeeze(1)
