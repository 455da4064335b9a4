"""Kaldi fbank against an independent numpy implementation of the Kaldi formulas (torchaudio is not
installable here). Compared: framing (snip_edges), DC removal, pre-emphasis, povey / hanning windows,
power-of-two padding, the Kaldi mel filterbank (1127 ln(1 + f/700), low 20 Hz, high = Nyquist) and the
log floor, on the AST and BEATs settings; plus Kaldi mel filters against librosa's HTK-shaped triangles
(htk=True, norm=None) on the same edges, where the two definitions agree."""
import math

import librosa
import numpy as np
import pytest
import torch

from desed_task.features.kaldi import kaldi_fbank, kaldi_mel_banks


def numpy_fbank(signal, num_bins, window_type, sr=16000, low=20.0):
    """Frame by frame, in float64, straight from the Kaldi feature-window / mel-bank definitions."""
    size, shift, padded = 400, 160, 512
    n_frames = 1 + (len(signal) - size) // shift
    n = np.arange(size)
    hann = 0.5 - 0.5 * np.cos(2 * np.pi * n / (size - 1))
    window = hann ** 0.85 if window_type == "povey" else hann
    mel = lambda f: 1127.0 * np.log(1.0 + np.asarray(f) / 700.0)
    edges = np.linspace(mel(low), mel(sr / 2), num_bins + 2)
    bin_mels = mel(np.arange(padded // 2) * sr / padded)
    out = np.zeros((n_frames, num_bins))
    for t in range(n_frames):
        frame = signal[t * shift: t * shift + size].astype(np.float64)
        frame = frame - frame.mean()
        frame = frame - 0.97 * np.concatenate(([frame[0]], frame[:-1]))
        spectrum = np.abs(np.fft.rfft(np.pad(frame * window, (0, padded - size)))) ** 2
        for b in range(num_bins):
            left, center, right = edges[b], edges[b + 1], edges[b + 2]
            weights = np.clip(np.minimum((bin_mels - left) / (center - left), (right - bin_mels) / (right - center)), 0, None)
            out[t, b] = np.log(max(np.dot(spectrum[:padded // 2], weights), np.finfo(np.float32).eps))
    return out


@pytest.mark.parametrize("window_type,scale", [("povey", 2 ** 15), ("hanning", 1.0)])  # BEATs, AST settings
def test_fbank_equals_numpy_kaldi_formula(window_type, scale):
    rng = np.random.default_rng(0)
    signal = (rng.standard_normal(16000) * 0.1 + np.sin(np.arange(16000) * 0.3)) * scale
    signal[8000:9000] = 0.0  # silent frames hit the log floor
    ours = kaldi_fbank(torch.tensor(signal, dtype=torch.float32)[None], num_mel_bins=128, window_type=window_type)[0]
    ref = numpy_fbank(signal.astype(np.float32), 128, window_type)
    assert ours.shape == (98, 128)
    np.testing.assert_allclose(ours.numpy(), ref, atol=2e-3, rtol=1e-4)


def test_ten_seconds_gives_998_frames_and_batches_are_independent():
    audio = torch.randn(3, 160000)
    fbank = kaldi_fbank(audio, num_mel_bins=128)
    assert fbank.shape == (3, 998, 128)
    torch.testing.assert_close(fbank[1], kaldi_fbank(audio[1], num_mel_bins=128))


def test_mel_banks_match_librosa_htk_triangles_on_kaldi_edges():
    """librosa's triangles (htk=True, norm=None) are linear in Hz, Kaldi's linear in mel, so only their
    supports agree: the same FFT bins are non-zero in both, filter by filter."""
    banks = kaldi_mel_banks(40, 512, 16000.0, 20.0, 0.0).double().numpy()
    assert banks.shape == (40, 257) and np.all(banks[:, -1] == 0)
    fft_freqs = np.arange(257) * 16000 / 512
    edges_mel = np.linspace(1127 * math.log(1 + 20 / 700), 1127 * math.log(1 + 8000 / 700), 42)
    edges_hz = 700 * (np.exp(edges_mel / 1127) - 1)
    ref = librosa.filters.mel(sr=16000, n_fft=512, n_mels=40, fmin=20, fmax=8000, htk=True, norm=None)
    for b in range(40):
        support = (fft_freqs > edges_hz[b]) & (fft_freqs < edges_hz[b + 2])
        assert np.all(banks[b][:-1][~support[:-1]] == 0)
        assert np.all(banks[b][support] > 0) and np.all(ref[b][support] > 0)
        assert np.all(ref[b][~support] < 1e-10)


def test_errors():
    with pytest.raises(ValueError, match="shorter than one"):
        kaldi_fbank(torch.randn(100))
    with pytest.raises(ValueError, match="window_type"):
        kaldi_fbank(torch.randn(1000), window_type="blackmann")
