"""The UCLSER preset of MelFrontend against librosa (the official wav2spec chain, librosa pad_mode='reflect')."""
import librosa
import numpy as np
import pytest
import scipy.signal
import torch

from desed_task.features import MelFrontend, UCLSERFrontend
from desed_task.features.mel import hz_to_mel_slaney, mel_to_hz_slaney, slaney_mel_filterbank


def librosa_uclser(waveform: np.ndarray) -> np.ndarray:
    """wav2spec: |STFT(y + eps)|^2 with a periodic 660-sample Hamming window, Slaney mel, log10(+eps), frames first."""
    window = scipy.signal.get_window("hamming", 660, fftbins=True)
    power = np.abs(librosa.stft(waveform + 1.1e-8, n_fft=2048, hop_length=220, win_length=660, window=window,
                                center=True, pad_mode="reflect")) ** 2
    filters = librosa.filters.mel(sr=22050, n_fft=2048, n_mels=96, fmin=50, fmax=10500, htk=False, norm=None,
                                  dtype=np.float64)
    return np.log10(filters @ power + 1.1e-8).T


@pytest.fixture(scope="module")
def waveforms():
    rng = np.random.default_rng(0)
    t = np.arange(33075) / 22050
    tone = 0.3 * rng.standard_normal(t.size) + np.sin(2 * np.pi * 440 * t)
    quiet = 1e-6 * rng.standard_normal(t.size)  # mel energies near the eps floor
    return np.stack([tone, quiet])


def test_slaney_filterbank_equals_librosa():
    ours = slaney_mel_filterbank(1025, 50, 10500, 96, 22050).numpy().T
    ref = librosa.filters.mel(sr=22050, n_fft=2048, n_mels=96, fmin=50, fmax=10500, htk=False, norm=None,
                              dtype=np.float64)
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-9)
    freqs = torch.tensor([0.0, 500.0, 1000.0, 4000.0, 10500.0], dtype=torch.float64)
    np.testing.assert_allclose(hz_to_mel_slaney(freqs).numpy(), librosa.hz_to_mel(freqs.numpy(), htk=False))
    torch.testing.assert_close(mel_to_hz_slaney(hz_to_mel_slaney(freqs)), freqs)
    with pytest.raises(ValueError, match="mel_scale"):
        MelFrontend(mel_scale="bark")


def test_uclser_frontend_equals_librosa(waveforms):
    frontend = UCLSERFrontend()
    out = frontend(torch.from_numpy(waveforms))
    assert out.shape == (2, 1 + 33075 // 220, 96) and out.dtype == torch.float64
    ref = np.stack([librosa_uclser(w) for w in waveforms])
    np.testing.assert_allclose(out.numpy(), ref, rtol=0, atol=1e-6)
    out32 = frontend(torch.from_numpy(waveforms).float())
    np.testing.assert_allclose(out32.numpy(), ref, rtol=0, atol=1e-4)


def test_one_second_is_101_frames_and_preset_values():
    frontend = UCLSERFrontend()
    assert frontend(torch.zeros(22050)).shape == (101, 96)
    window = frontend.window.numpy()
    np.testing.assert_allclose(window, scipy.signal.get_window("hamming", 660, fftbins=True), atol=1e-15)
    assert isinstance(frontend, MelFrontend) and frontend.state_dict() == {}
    assert torch.isfinite(frontend(torch.zeros(1, 22050))).all()

    assert frontend.mel_scale == "slaney" and frontend.power == 2.0
