"""UCLSER patch augmentations (official ``da/data_augment.py``, ``rnd_resized_crop.py``) and normalisation.

Patches are (frames, bands) log10-mel tensors. Every random draw comes from a ``torch.Generator`` so a
seeded call is reproducible (the datasets seed one per worker and epoch). ``PatchAugment`` composes them
in the official order: time shift -> frequency shift -> random resized crop -> time reversal (p = 0.5)
-> compression -> SpecAugment masks -> Gaussian noise. The paper's best setup (the defaults) turns on
only the crop, compression and noise; mix-back is applied before, by the contrastive dataset.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields

import numpy as np
import torch
import torch.nn.functional as F

STD_MODES = ("official", "correct")


def _uniform(low: float, high: float, generator: torch.Generator | None) -> float:
    return low + (high - low) * float(torch.rand((), generator=generator, dtype=torch.float64))


def _randint(low: int, high_inclusive: int, generator: torch.Generator | None) -> int:
    return int(torch.randint(low, high_inclusive + 1, (), generator=generator))


def mix_back(patch: torch.Tensor, background: torch.Tensor, weight: float) -> torch.Tensor:
    """Mix a background patch into ``patch`` in the linear domain at an energy ratio set by ``weight``:

    ``log10((1 - w) * P + w * (E(P) / E(B)) * B)`` with P = 10^patch, B = 10^background and E the sum of
    the linear values over the whole patch. ``w = 0`` returns ``patch``.
    """
    linear, back = 10.0 ** patch, 10.0 ** background
    return torch.log10((1 - weight) * linear + weight * (linear.sum() / back.sum()) * back)


def random_resized_crop(patch: torch.Tensor, scale=(0.8, 1.0), ratio=(3 / 4, 4 / 3),
                        generator: torch.Generator | None = None, attempts: int = 10) -> torch.Tensor:
    """Crop a random area fraction ``s ~ U(scale)`` with log-uniform aspect ``r`` (bands / frames) and
    resize it back bilinearly; after ``attempts`` crops that do not fit, the whole patch is kept.

    As the official (torchvision-style, on a PIL image of width = bands, height = frames) version:
    band extent ``round(sqrt(s * area * r))``, frame extent ``round(sqrt(s * area / r))``.
    """
    frames, bands = patch.shape
    area = frames * bands
    for _ in range(attempts):
        target = _uniform(*scale, generator) * area
        aspect = math.exp(_uniform(math.log(ratio[0]), math.log(ratio[1]), generator))
        width = int(round(math.sqrt(target * aspect)))
        height = int(round(math.sqrt(target / aspect)))
        if 0 < width <= bands and 0 < height <= frames:
            top = _randint(0, frames - height, generator)
            left = _randint(0, bands - width, generator)
            crop = patch[top:top + height, left:left + width]
            return F.interpolate(crop[None, None], size=(frames, bands), mode="bilinear",
                                 align_corners=False)[0, 0]
    return patch


def compress(patch: torch.Tensor, alpha: float = 0.75, generator: torch.Generator | None = None) -> torch.Tensor:
    """Contrast change ("compander"): multiply by ``U(alpha, 1)`` (``U(1, alpha)`` when alpha > 1)."""
    if alpha == 1:
        return patch
    return patch * _uniform(min(alpha, 1.0), max(alpha, 1.0), generator)


def gaussian_noise(patch: torch.Tensor, max_std: float = 0.01,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """Add N(0, sigma^2) per bin, with ``sigma ~ U(0, max_std)`` per call."""
    if max_std <= 0:
        return patch
    sigma = _uniform(0.0, max_std, generator)
    return patch + sigma * torch.randn(patch.shape, generator=generator, dtype=patch.dtype)


def spec_augment_masks(patch: torch.Tensor, freq_width: int = 20, n_freq_masks: int = 2, time_width: int = 20,
                       n_time_masks: int = 2, generator: torch.Generator | None = None) -> torch.Tensor:
    """SpecAugment masks (no time warp): width ``int(U(0, max))``, start uniform so the mask fits, filled
    with the patch minimum; frequency masks first, as the official code."""
    out = patch.clone()
    frames, bands = out.shape
    for _ in range(n_freq_masks):
        width = int(_uniform(0.0, freq_width, generator))
        start = _randint(0, bands - width, generator)
        out[:, start:start + width] = out.min()
    for _ in range(n_time_masks):
        width = int(_uniform(0.0, time_width, generator))
        start = _randint(0, frames - width, generator)
        out[start:start + width, :] = out.min()
    return out


def time_shift(patch: torch.Tensor, max_shift: int = 30, generator: torch.Generator | None = None) -> torch.Tensor:
    """Circular delay by ``int(U(1, max_shift))`` frames."""
    return torch.roll(patch, int(_uniform(1.0, max_shift, generator)), dims=0)


def freq_shift(patch: torch.Tensor, max_shift: int = 10, generator: torch.Generator | None = None) -> torch.Tensor:
    """Circular upward shift by ``int(U(1, max_shift))`` bands."""
    return torch.roll(patch, int(_uniform(1.0, max_shift, generator)), dims=1)


def time_reversal(patch: torch.Tensor) -> torch.Tensor:
    return torch.flip(patch, dims=(0,))


@dataclass
class PatchAugment:
    """The official augmentation pipeline, configured with the yaml's ``da`` names (defaults = the paper's
    best setup: random resized crop, compression and noise on; the rest available but off)."""

    do_randcrop: bool = True
    rc_scale: tuple = (0.8, 1.0)
    rc_ratio: tuple = (3 / 4, 4 / 3)
    do_compansion: bool = True
    comp_alpha: float = 0.75
    awgn_stdev_gen: float = 0.01
    do_freq_mask: bool = False
    do_time_mask: bool = False
    F: int = 20
    m_f: int = 2
    T: int = 20
    m_t: int = 2
    do_rand_time_shift: bool = False
    Tshift: int = 30
    do_rand_freq_shift: bool = False
    Fshift: int = 10
    do_time_reversal: bool = False

    @classmethod
    def from_config(cls, da: Mapping | None) -> "PatchAugment":
        """From a ``da`` config section; unknown keys are an error so typos do not pass silently."""
        da = dict(da or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(da) - known)
        if unknown:
            raise KeyError(f"unknown augmentation option(s) {unknown}; known: {sorted(known)}")
        for key in ("rc_scale", "rc_ratio"):
            if key in da:
                da[key] = tuple(float(v) for v in da[key])
        return cls(**da)

    @classmethod
    def disabled(cls) -> "PatchAugment":
        return cls(do_randcrop=False, do_compansion=False, awgn_stdev_gen=0.0)

    def __call__(self, patch: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        if self.do_rand_time_shift:
            patch = time_shift(patch, self.Tshift, generator)
        if self.do_rand_freq_shift:
            patch = freq_shift(patch, self.Fshift, generator)
        if self.do_randcrop:
            patch = random_resized_crop(patch, self.rc_scale, self.rc_ratio, generator)
        if self.do_time_reversal and _uniform(0.0, 1.0, generator) < 0.5:
            patch = time_reversal(patch)
        if self.do_compansion:
            patch = compress(patch, self.comp_alpha, generator)
        if self.do_freq_mask or self.do_time_mask:
            patch = spec_augment_masks(patch, self.F, self.m_f if self.do_freq_mask else 0, self.T,
                                       self.m_t if self.do_time_mask else 0, generator)
        return gaussian_noise(patch, self.awgn_stdev_gen, generator)


def dataset_mean_std(clips: Iterable[np.ndarray], std_mode: str = "correct") -> tuple[float, float]:
    """Mean and std of every value of every clip (two passes, float64), for input normalisation.

    ``std_mode="correct"``: the population std ``sqrt(sum((x - mean)^2) / N)``. ``"official"``: the
    reference code's ``sqrt(sum((x - mean)^2)) / N`` = std / sqrt(N), which scales normalised inputs by
    sqrt(N) (~3e4 on FSDnoisy18k) and is baked into the released encoders' first batch norm statistics.
    ``clips`` must be re-iterable (a list, or a store that can be read twice).
    """
    if std_mode not in STD_MODES:
        raise ValueError(f"std_mode must be one of {STD_MODES}, got {std_mode!r}")
    total, count = 0.0, 0
    for clip in clips:
        total += float(np.sum(clip, dtype=np.float64))
        count += int(np.size(clip))
    if count == 0:
        raise ValueError("cannot compute normalisation statistics of an empty set of clips")
    mean = total / count
    squares = sum(float(np.sum((np.asarray(clip, dtype=np.float64) - mean) ** 2)) for clip in clips)
    std = math.sqrt(squares) / count if std_mode == "official" else math.sqrt(squares / count)
    return mean, std
