"""IRCT augmentations do what they say: exact shifts, pitch ratios, mask counts/widths, gain ranges."""
import math

import pytest
import torch

from desed_task.features import irct_augment as aug
from desed_task.features.mel import DB_RANGE

SR = 16000


def tone(freq, seconds=4.0, batch=1):
    t = torch.arange(int(SR * seconds)) / SR
    return torch.sin(2 * math.pi * freq * t).repeat(batch, 1)


def peak_frequency(signal, n_fft=2048):
    """Peak of the mean magnitude spectrum of 2048-point frames (bin width 7.8 Hz)."""
    frames = signal.unfold(-1, n_fft, n_fft // 2)[..., 4:-4, :] * torch.hann_window(n_fft)
    spectrum = torch.fft.rfft(frames).abs().mean(dim=-2)
    return spectrum.argmax(-1).item() * SR / n_fft


@pytest.mark.parametrize("cents", [-250, -50, 100, 250])
def test_pitch_shift_moves_a_tone_by_the_cent_ratio_and_keeps_length(cents):
    signal = tone(1000.0)
    shifted = aug.pitch_shift(signal, cents)
    assert shifted.shape == signal.shape
    expected = 1000.0 * 2 ** (cents / 1200)
    assert abs(peak_frequency(shifted) - expected) <= SR / 2048
    core = shifted[:, SR // 2 : -SR // 2]
    assert core.pow(2).mean().sqrt().item() == pytest.approx(1 / math.sqrt(2), rel=0.02)


def test_pitch_shift_fine_frequency_with_long_fft():
    shifted = aug.pitch_shift(tone(1000.0), 150)
    core = shifted[0, SR : 3 * SR] * torch.hann_window(2 * SR)
    measured = torch.fft.rfft(core).abs().argmax().item() * SR / (2 * SR)
    assert measured == pytest.approx(1000.0 * 2 ** (150 / 1200), abs=1.0)


def test_time_shift_moves_an_impulse_by_exact_frames():
    frontend_frames = 626
    features = torch.full((2, 8, frontend_frames), -50.0)
    features[:, :, 100] = 10.0
    info_aug = aug.Augmentation("time_shift", strength=3, shift_fraction=0.3)
    out, info = aug.apply_augmentation(info_aug, torch.zeros(2, 10), lambda w: features, net_pooling=4)
    label_shift = int(156 * 0.3)
    assert info.details["shift_label_frames"] == label_shift
    assert info.shift_input_frames == 4 * label_shift
    assert (out[:, :, 100 + 4 * label_shift] == 10.0).all()
    assert (out == 10.0).sum() == 2 * 8


def test_time_mask_covers_5s_masks_of_one_percent():
    waves = torch.ones(3, SR * 10)
    generator = torch.Generator().manual_seed(0)
    masked, starts = aug.time_mask(waves, strength=2, generator=generator)
    width = int(0.01 * SR * 10)
    assert starts.shape == (3, 10)
    expected = torch.zeros_like(waves, dtype=torch.bool)
    for clip, clip_starts in enumerate(starts):
        for start in clip_starts.tolist():
            expected[clip, start : start + width] = True
    assert torch.equal(masked == 0, expected)


def test_freq_mask_sets_2s_bands_to_floor():
    features = torch.randn(4, 128, 50)
    masked, starts = aug.freq_mask(features, strength=3, generator=torch.Generator().manual_seed(1))
    for clip, start in enumerate(starts.tolist()):
        floor_rows = (masked[clip] == DB_RANGE[0]).all(dim=-1).nonzero().flatten().tolist()
        assert floor_rows == list(range(start, start + 6))


def test_filter_augment_gains_and_band_count():
    features = torch.zeros(6, 128, 20)
    for seed in range(10):
        n_bands = 2 + seed % 3
        out, gains = aug.filter_augment(features, n_bands, torch.Generator().manual_seed(seed))
        assert torch.allclose(out, gains[:, :, None].expand_as(out))
        assert gains.min() >= -7.5 and gains.max() <= 6.0
        for clip_gains in gains:
            assert 1 <= len(torch.unique_consecutive(clip_gains)) <= n_bands


def test_sampler_sets_strengths_and_determinism():
    generator = torch.Generator().manual_seed(0)
    draws = [aug.sample_augmentation("tau1", generator) for _ in range(300)]
    assert {d.name for d in draws} == set(aug.AUGMENTATION_SETS["tau1"])
    assert {d.strength for d in draws} == {1, 2, 3, 4, 5}
    for draw in draws:
        if draw.name == "pitch_shift":
            assert abs(draw.cents) == 50 * draw.strength
        if draw.name == "time_shift":
            assert draw.shift_fraction == draw.strength / 10
    tau2 = {aug.sample_augmentation("tau2", generator).name for _ in range(300)}
    assert tau2 == set(aug.AUGMENTATION_SETS["tau2"])
    again = [aug.sample_augmentation("tau1", torch.Generator().manual_seed(0)) for _ in range(1)]
    assert again[0] == draws[0]


def test_hard_mixup_sums_partner_clips():
    waves = torch.randn(5, 100)
    mixed, partners = aug.hard_mixup(waves, 2, torch.Generator().manual_seed(3))
    assert len(partners) == 2
    assert torch.allclose(mixed, waves + waves[partners[0]] + waves[partners[1]])
    labels = torch.zeros(5, 2, 4)
    labels[0, 0] = 1
    mixed_labels = aug.mix_labels(labels, partners)
    has_clip0 = {i for i in range(5) if i == 0 or any(int(p[i]) == 0 for p in partners)}
    assert mixed_labels.max() == 1
    assert set(mixed_labels[:, 0, 0].nonzero().flatten().tolist()) == has_clip0


def test_build_views_shapes_parts_and_determinism():
    waves = torch.randn(6, 4096)
    labels = torch.zeros(6, 10, 4)
    frontend = lambda w: w.reshape(w.shape[0], 32, -1)  # noqa: E731  (stand-in for the log-mel frontend)

    def build(seed):
        return aug.build_irct_views(waves, labels, [2, 1, 3], frontend, "tau2", torch.Generator().manual_seed(seed))

    views = build(0)
    assert set(views.features) == set(aug.VIEWS)
    assert all(v.shape == (6, 32, 128) for v in views.features.values())
    assert [p.rows for p in views.parts] == [slice(0, 2), slice(2, 3), slice(3, 6)]
    assert [p.ratio for p in views.parts] == [2 / 6, 1 / 6, 3 / 6]
    for part in views.parts:
        rows = torch.arange(6)[part.rows]
        for partner in part.partners:
            assert set(partner.tolist()) == set(rows.tolist())
    again = build(0)
    for view in aug.VIEWS:
        assert torch.equal(views.features[view], again.features[view])
