"""UCLSER augmentations and the normalisation statistics (both std modes)."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from desed_task.features.uclser_augment import (PatchAugment, compress, dataset_mean_std, freq_shift, gaussian_noise,
                                                mix_back, random_resized_crop, spec_augment_masks, time_shift)


def patch(seed=0):
    return torch.randn(101, 96, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) - 3


def test_mix_back_formula():
    x, background = patch(0), patch(1)
    torch.testing.assert_close(mix_back(x, background, 0.0), x)
    constant = torch.full_like(x, -2.0)
    weight = 0.05
    out = 10 ** mix_back(x, constant, weight)
    added = out - (1 - weight) * 10 ** x
    torch.testing.assert_close(added, torch.full_like(x, float(added[0, 0])))  # flat background
    torch.testing.assert_close(added.sum(), weight * (10 ** x).sum())  # of total power w * E(P)
    manual = torch.log10((1 - weight) * 10 ** x + weight * (10 ** x).sum() / (10 ** background).sum()
                         * 10 ** background)
    torch.testing.assert_close(mix_back(x, background, weight), manual)


def test_bilinear_resize_matches_pil_float_image():
    """The official crop is resized with PIL BILINEAR on a mode 'F' image; crops only upsample."""
    crop = np.random.default_rng(0).standard_normal((90, 85)).astype(np.float32)
    pil = np.asarray(Image.fromarray(crop, mode="F").resize((96, 101), Image.BILINEAR))
    ours = F.interpolate(torch.from_numpy(crop)[None, None], size=(101, 96), mode="bilinear", align_corners=False)
    np.testing.assert_allclose(ours[0, 0].numpy(), pil, atol=1e-4)


def test_random_resized_crop_extent_and_reproducibility():
    ramp = torch.arange(101, dtype=torch.float64)[:, None].expand(101, 96).clone()  # value = frame index
    outs = [random_resized_crop(ramp, generator=torch.Generator().manual_seed(s)) for s in range(20)]
    for out in outs:
        assert out.shape == (101, 96)
        span = float(out[-1, 0] - out[0, 0])
        # the crop keeps between sqrt(0.8 * 3/4) and 1 of the frames (minus the bilinear edge half-pixel)
        assert math.sqrt(0.8 * 0.75) * 101 - 3 <= span <= 101
    assert len({round(float(o[0, 0]), 6) for o in outs}) > 5
    torch.testing.assert_close(random_resized_crop(ramp, generator=torch.Generator().manual_seed(3)), outs[3])
    impossible = random_resized_crop(ramp, scale=(2.0, 2.0), generator=torch.Generator().manual_seed(0))
    assert impossible is ramp


def test_compress_noise_shifts_masks():
    x = patch()
    generator = torch.Generator().manual_seed(0)
    factors = [float((compress(x, 0.75, generator) / x).mean()) for _ in range(200)]
    assert 0.75 <= min(factors) and max(factors) <= 1.0 and np.std(factors) > 0.05
    deviations = [float((gaussian_noise(x, 0.01, generator) - x).std()) for _ in range(200)]
    assert max(deviations) <= 0.0105 and np.mean(deviations) == pytest.approx(0.005, abs=0.001)
    torch.testing.assert_close(gaussian_noise(x, 0.0), x)
    shifted = time_shift(x, 30, torch.Generator().manual_seed(1))
    shift = next(d for d in range(1, 30) if torch.equal(shifted, torch.roll(x, d, 0)))
    assert 1 <= shift < 30
    shifted = freq_shift(x, 10, torch.Generator().manual_seed(1))
    assert any(torch.equal(shifted, torch.roll(x, d, 1)) for d in range(1, 10))
    masked = spec_augment_masks(x, 20, 2, 20, 2, torch.Generator().manual_seed(4))
    changed = masked != x
    assert changed.any() and (masked[changed] == x.min()).all()
    assert changed.all(dim=0).sum() <= 2 * 19 and changed.all(dim=1).sum() <= 2 * 19


def test_patch_augment_config_and_defaults():
    default = PatchAugment.from_config(None)
    assert default.do_randcrop and default.do_compansion and default.awgn_stdev_gen == 0.01
    assert not (default.do_freq_mask or default.do_time_mask or default.do_rand_time_shift
                or default.do_rand_freq_shift or default.do_time_reversal)
    x = patch()
    out = default(x, torch.Generator().manual_seed(0))
    assert out.shape == x.shape and not torch.equal(out, x)
    torch.testing.assert_close(PatchAugment.disabled()(x), x)
    everything = PatchAugment.from_config({"do_freq_mask": True, "do_time_mask": True, "do_time_reversal": True,
                                           "do_rand_time_shift": True, "do_rand_freq_shift": True,
                                           "rc_scale": [0.8, 1]})
    assert everything.rc_scale == (0.8, 1.0) and everything(x, torch.Generator().manual_seed(0)).shape == x.shape
    with pytest.raises(KeyError, match="do_blurr"):
        PatchAugment.from_config({"do_blurr": True})


def test_mean_std_modes():
    rng = np.random.default_rng(0)
    clips = [rng.standard_normal((n, 96)) * 2 + 1 for n in (101, 250, 400)]
    values = np.concatenate([c.ravel() for c in clips])
    mean, std = dataset_mean_std(clips, "correct")
    assert mean == pytest.approx(values.mean()) and std == pytest.approx(values.std())
    mean_o, std_o = dataset_mean_std(clips, "official")
    assert mean_o == mean and std_o == pytest.approx(values.std() / math.sqrt(values.size))
    with pytest.raises(ValueError, match="std_mode"):
        dataset_mean_std(clips, "buggy")
    with pytest.raises(ValueError, match="empty"):
        dataset_mean_std([], "correct")
