"""ATSTFrontend against librosa and a numpy re-derivation of the torchaudio dB chain; frequency warping."""
import librosa
import numpy as np
import pytest
import torch

from desed_task.features import ATSTFrontend, MelFrontend
from desed_task.features.atst import NORM_MAX, NORM_MIN
from desed_task.features.augment import frequency_warp


@pytest.fixture(scope="module")
def waveforms():
    rng = np.random.default_rng(0)
    t = np.arange(160000) / 16000
    loud = 0.8 * np.sin(2 * np.pi * 1000 * t) + 0.1 * rng.standard_normal(t.size)
    quiet = 1e-3 * rng.standard_normal(t.size)
    return np.stack([loud, quiet])


def librosa_power_mel(waveform: np.ndarray) -> np.ndarray:
    return librosa.feature.melspectrogram(
        y=waveform, sr=16000, n_fft=1024, hop_length=160, win_length=1024, window="hann", center=True,
        pad_mode="reflect", power=2.0, n_mels=64, fmin=60, fmax=7800, htk=True, norm=None, dtype=np.float64)


def reference_features(power_mels: np.ndarray, per_clip: bool) -> np.ndarray:
    db = 10 * np.log10(np.maximum(power_mels, 1e-10))
    peak = db.max(axis=(-2, -1), keepdims=True) if per_clip else db.max()
    db = np.clip(np.maximum(db, peak - 80), -50, 80)
    return (db + 79.6482) / 130.3324 * 2 - 1


def test_power_mel_equals_librosa(waveforms):
    ours = ATSTFrontend().mel_amplitude(torch.from_numpy(waveforms)).numpy()
    ref = np.stack([librosa_power_mel(w) for w in waveforms])
    assert ours.shape == (2, 64, 1001)
    np.testing.assert_allclose(ours, ref, rtol=1e-9, atol=1e-12 * ref.max())


@pytest.mark.parametrize("per_clip", [True, False])
def test_normalised_features_equal_the_reference(waveforms, per_clip):
    frontend = ATSTFrontend(top_db_per_clip=per_clip)
    ours = frontend(torch.from_numpy(waveforms).float())
    ref = reference_features(np.stack([librosa_power_mel(w) for w in waveforms]), per_clip)
    assert ours.dtype == torch.float32
    np.testing.assert_allclose(ours.numpy(), ref, rtol=0, atol=2e-5)


def test_top_db_cutoff_is_per_clip_by_default(waveforms):
    """Batched with a loud clip, the quiet clip keeps its own features only with the per-clip cutoff."""
    batch = torch.from_numpy(waveforms)
    alone = ATSTFrontend()(batch[1:])
    torch.testing.assert_close(ATSTFrontend()(batch)[1:], alone)
    batch_wide = ATSTFrontend(top_db_per_clip=False)(batch)[1:]
    assert (batch_wide - alone).abs().max() > 0.1


def test_constants_and_padding_floor():
    assert (NORM_MIN, NORM_MAX) == (-79.6482, 50.6842)
    frontend = ATSTFrontend()
    zeros_and_tone = torch.zeros(1, 16000, dtype=torch.float64)
    zeros_and_tone[0, :8000] = 1e-3 * torch.sin(torch.arange(8000) * 0.3)  # peak - 80 dB is below -50 dB
    features = frontend(zeros_and_tone)
    assert features.shape == (1, 64, 101)
    floor = (-50 - NORM_MIN) / (NORM_MAX - NORM_MIN) * 2 - 1
    assert features[..., -10:].max().item() == pytest.approx(floor)


def test_atst_frontend_is_a_mel_frontend_preset():
    frontend = ATSTFrontend(n_mels=32)
    assert isinstance(frontend, MelFrontend) and frontend.n_mels == 32
    with pytest.raises(ValueError, match="unknown ATSTFrontend arguments.*n_filters"):
        ATSTFrontend(n_filters=1024)


def test_frequency_warp_crops_a_band_and_resizes_it():
    features = torch.randn(3, 64, 50)
    generator = torch.Generator().manual_seed(0)
    identity = frequency_warp(features, scale=(1.0, 1.0), generator=generator)
    torch.testing.assert_close(identity, features)
    state = generator.get_state()
    warped = frequency_warp(features, generator=generator)
    generator.set_state(state)
    draw = float(torch.empty((), dtype=torch.float64).uniform_(0.6, 1.0, generator=generator))
    height = int(draw * 64)
    offset = int(torch.randint(0, 64 - height + 1, (), generator=generator))
    expected = torch.nn.functional.interpolate(features[:, None, offset:offset + height], size=(64, 50),
                                               mode="bicubic", align_corners=True)[:, 0]
    assert 38 <= height <= 64 and warped.shape == features.shape
    torch.testing.assert_close(warped, expected, rtol=0, atol=0)
    # the band's first and last bins land exactly on the first and last output bins (align_corners)
    torch.testing.assert_close(warped[:, 0], features[:, offset])
    torch.testing.assert_close(warped[:, -1], features[:, offset + height - 1])
