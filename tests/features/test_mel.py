"""MelFrontend against librosa / numpy references of the baseline's torchaudio chain."""
import librosa
import numpy as np
import pytest
import scipy.signal
import torch

from desed_task.features.mel import MelFrontend, amplitude_to_db, mel_filterbank, slaney_mel_filterbank

FEATS_CFG = {"n_mels": 128, "n_filters": 2048, "hop_length": 256, "n_window": 2048,
             "sample_rate": 16000, "f_min": 0, "f_max": 8000}


def reference_log_mel(waveform: np.ndarray, sr=16000, n_fft=2048, hop=256, n_mels=128, fmax=8000):
    """Independent float64 computation: librosa STFT with a symmetric hamming window, HTK mel, dB clamp."""
    window = scipy.signal.get_window("hamming", n_fft, fftbins=False)
    magnitude = np.abs(librosa.stft(waveform, n_fft=n_fft, hop_length=hop, win_length=n_fft, window=window,
                                    center=True, pad_mode="reflect"))
    filters = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=0, fmax=fmax, htk=True, norm=None,
                                  dtype=np.float64)
    return np.clip(20 * np.log10(np.maximum(filters @ magnitude, 1e-5)), -50, 80)


@pytest.fixture(scope="module")
def waveforms():
    rng = np.random.default_rng(0)
    t = np.arange(160000) / 16000
    tone = 0.5 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.standard_normal(t.size)
    quiet = 1e-4 * rng.standard_normal(t.size)  # exercises the -50 dB clamp and the amin floor
    return np.stack([tone, quiet])


def test_filterbank_equals_librosa_htk():
    ours = mel_filterbank(1025, 0, 8000, 128, 16000).numpy().T
    ref = librosa.filters.mel(sr=16000, n_fft=2048, n_mels=128, fmin=0, fmax=8000, htk=True, norm=None,
                              dtype=np.float64)
    assert ours.shape == (128, 1025)
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-6 * ref.max())
    assert (ours >= 0).all() and (ours.max(axis=1) > 0).all()


def test_filterbank_other_range_equals_librosa():
    ours = mel_filterbank(513, 50, 7000, 64, 16000).numpy().T
    ref = librosa.filters.mel(sr=16000, n_fft=1024, n_mels=64, fmin=50, fmax=7000, htk=True, norm=None,
                              dtype=np.float64)
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-6 * ref.max())


def test_frontend_equals_reference_float32(waveforms):
    frontend = MelFrontend()
    out = frontend(torch.from_numpy(waveforms).float())
    assert out.shape == (2, 128, 626) and out.dtype == torch.float32
    ref = np.stack([reference_log_mel(w) for w in waveforms])
    np.testing.assert_allclose(out.numpy(), ref, rtol=0, atol=1e-3)
    assert out.min() == -50.0  # the quiet clip reaches the clamp


def test_frontend_equals_reference_float64(waveforms):
    out = MelFrontend()(torch.from_numpy(waveforms))
    assert out.dtype == torch.float64
    np.testing.assert_allclose(out.numpy(), np.stack([reference_log_mel(w) for w in waveforms]), rtol=0, atol=1e-9)


def test_from_config_and_arbitrary_leading_dims():
    frontend = MelFrontend.from_config(FEATS_CFG)
    assert frontend.filterbank.shape == (1025, 128) and frontend.window.shape == (2048,)
    assert frontend.state_dict() == {}  # derived constants are not checkpointed
    x = torch.randn(3, 16000)
    assert frontend(x).shape == (3, 128, 16000 // 256 + 1)
    torch.testing.assert_close(frontend(x[None])[0], frontend(x))


def test_amplitude_to_db_clamps():
    x = torch.tensor([0.0, 1e-6, 1e-2, 1.0, 1e5])
    torch.testing.assert_close(amplitude_to_db(x), torch.tensor([-50.0, -50.0, -40.0, 0.0, 80.0]))
    torch.testing.assert_close(amplitude_to_db(x, db_range=(-200.0, 200.0))[:2], torch.tensor([-100.0, -100.0]))


def test_gradients_flow():
    x = (0.1 * torch.randn(1, 8000, dtype=torch.float64)).requires_grad_()
    MelFrontend()(x).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_slaney_filterbank_equals_librosa_default():
    ours = slaney_mel_filterbank(257, 50.0, 8000.0, 64, 16000, torch.float32, norm="slaney").numpy()
    ref = librosa.filters.mel(sr=16000, n_fft=512, n_mels=64, fmin=50, fmax=8000).T  # htk=False, norm="slaney"
    assert ours.shape == (257, 64)
    np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-8)
