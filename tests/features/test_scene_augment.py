"""DIR (against scipy's direct convolution, real IR folder, bad input), roll and freq-MixStyle."""
import logging

import numpy as np
import pytest
import scipy.signal
import soundfile as sf
import torch

from desed_task.data.tau22 import load_impulse_responses
from desed_task.features.scene_augment import (
    DeviceImpulseResponses, fft_convolve_truncated, freq_mixstyle, roll_waveform,
)


def test_fft_convolution_equals_scipy_full_truncated():
    rng = np.random.default_rng(0)
    audio, ir = rng.standard_normal((3, 32000)), rng.standard_normal((3, 15000))
    ours = fft_convolve_truncated(torch.from_numpy(audio), torch.from_numpy(ir)).numpy()
    for row in range(3):
        ref = scipy.signal.convolve(audio[row], ir[row], "full")[:32000]
        np.testing.assert_allclose(ours[row], ref, atol=1e-9)


def test_dir_only_eligible_clips_and_with_a_bank_ir():
    rng = np.random.default_rng(1)
    responses = [rng.standard_normal(50).astype(np.float32), rng.standard_normal(80).astype(np.float32)]
    module = DeviceImpulseResponses(responses, ["r0", "r1"], prob=1.0)
    audio = torch.from_numpy(rng.standard_normal((4, 1000)).astype(np.float32))
    eligible = torch.tensor([True, False, True, False])
    out = module(audio, eligible, generator=torch.Generator().manual_seed(0))
    assert torch.equal(out[1], audio[1]) and torch.equal(out[3], audio[3])
    for row in (0, 2):
        candidates = [scipy.signal.convolve(audio[row].numpy(), r, "full")[:1000] for r in responses]
        assert min(np.abs(out[row].numpy() - c).max() for c in candidates) < 1e-4
    assert torch.equal(DeviceImpulseResponses(responses, prob=0.0)(audio), audio)


def test_dir_probability_is_per_clip():
    module = DeviceImpulseResponses([np.array([0.0, 1.0], dtype=np.float32)], prob=0.6)  # a one-sample delay
    audio = torch.ones(2000, 10)
    out = module(audio, generator=torch.Generator().manual_seed(0))
    changed = (out[:, 0] == 0).float().mean()
    assert 0.55 < float(changed) < 0.65


def test_real_impulse_responses(anchors):
    responses, names = load_impulse_responses(anchors / "cpjku_dcase23" / "dirs", 32000)
    assert len(responses) == 66 and names == sorted(names)
    lengths = np.array([len(r) for r in responses]) / 32000
    assert lengths.min() > 0.3 and lengths.max() < 0.55
    module = DeviceImpulseResponses(responses, names)
    assert module.responses.shape == (66, max(len(r) for r in responses))


def test_bad_impulse_responses(tmp_path, caplog):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no usable impulse response"):
        load_impulse_responses(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_impulse_responses(tmp_path / "nowhere")
    good = tmp_path / "irs"
    good.mkdir()
    sf.write(good / "a.wav", np.r_[1.0, 0.5, 0.25], 44100)
    (good / "broken.wav").write_bytes(b"not a wave file")
    with caplog.at_level(logging.WARNING):
        responses, names = load_impulse_responses(good, 32000)
    assert names == ["a.wav"] and "broken.wav" in caplog.text


def test_roll_is_circular_per_clip_within_range():
    audio = torch.arange(5 * 100, dtype=torch.float32).reshape(5, 100)
    out = roll_waveform(audio, 7, generator=torch.Generator().manual_seed(0))
    for row in range(5):
        shifts = [s for s in range(-7, 8) if torch.equal(torch.roll(audio[row], s), out[row])]
        assert len(shifts) == 1
    assert torch.equal(roll_waveform(audio, 0), audio)
    many = roll_waveform(torch.arange(50.0).repeat(4000, 1), 3,
                         generator=torch.Generator().manual_seed(1))
    assert set((many[:, 0] % 50).long().tolist()) == {47, 48, 49, 0, 1, 2, 3}


def test_freq_mixstyle_statistics():
    x = torch.randn(6, 1, 16, 20) * torch.linspace(0.5, 2, 16).view(1, 1, 16, 1) + 3
    assert torch.equal(freq_mixstyle(x, prob=0.0), x)
    generator = torch.Generator().manual_seed(0)
    out = freq_mixstyle(x, prob=1.0, alpha=0.3, generator=generator)
    generator = torch.Generator().manual_seed(0)
    torch.rand(1, generator=generator)
    gammas = torch._standard_gamma(torch.full((2, 6), 0.3), generator=generator)
    lam = (gammas[0] / gammas.sum(0)).view(6, 1, 1, 1)
    perm = torch.randperm(6, generator=generator)
    mu = x.mean(dim=(1, 3), keepdim=True)
    sigma = (x.var(dim=(1, 3), keepdim=True) + 1e-6).sqrt()
    assert torch.allclose(out.mean(dim=(1, 3), keepdim=True), lam * mu + (1 - lam) * mu[perm], atol=1e-4)
    assert torch.allclose(out.std(dim=(1, 3), keepdim=True), lam * sigma + (1 - lam) * sigma[perm], atol=1e-3)
