"""Log-mel frontend in pure torch, numerically equal to the DCASE baseline's torchaudio chain.

The baseline computes ``MelSpectrogram(power=1, window_fn=hamming_window(periodic=False))`` (HTK mel
scale, no filter normalisation), then ``AmplitudeToDB(stype="amplitude")`` with ``amin=1e-5`` and
clamps the result to [-50, 80] dB. torchaudio is not a dependency, so the filterbank and the chain are
written here.
"""
from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import nn

AMIN = 1e-5
DB_RANGE = (-50.0, 80.0)


def hz_to_mel_htk(freq: torch.Tensor) -> torch.Tensor:
    return 2595.0 * torch.log10(1.0 + freq / 700.0)


def mel_to_hz_htk(mel: torch.Tensor) -> torch.Tensor:
    return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)


def mel_filterbank(
    n_freqs: int, f_min: float, f_max: float, n_mels: int, sample_rate: int, dtype=torch.float64
) -> torch.Tensor:
    """Triangular HTK mel filters (n_freqs, n_mels), unnormalised, as torchaudio ``melscale_fbanks``.

    FFT bin ``k`` sits at ``k * (sr / 2) / (n_freqs - 1)``; the ``n_mels + 2`` filter edges are equally
    spaced on the HTK mel scale between ``f_min`` and ``f_max``. Computed in float64, then cast.
    """
    all_freqs = torch.linspace(0, sample_rate // 2, n_freqs, dtype=torch.float64)
    mel_edges = torch.linspace(
        float(hz_to_mel_htk(torch.tensor(float(f_min), dtype=torch.float64))),
        float(hz_to_mel_htk(torch.tensor(float(f_max), dtype=torch.float64))),
        n_mels + 2,
        dtype=torch.float64,
    )
    hz_edges = mel_to_hz_htk(mel_edges)
    widths = hz_edges[1:] - hz_edges[:-1]
    slopes = hz_edges.unsqueeze(0) - all_freqs.unsqueeze(1)
    rising = -slopes[:, :-2] / widths[:-1]
    falling = slopes[:, 2:] / widths[1:]
    return torch.clamp(torch.minimum(rising, falling), min=0.0).to(dtype)


def linear_spectrogram(
    waveform: torch.Tensor, n_fft: int, win_length: int, hop_length: int, window: torch.Tensor
) -> torch.Tensor:
    """Magnitude STFT (..., n_fft // 2 + 1, frames), centred with reflect padding, unnormalised."""
    shape = waveform.shape
    spec = torch.stft(
        waveform.reshape(-1, shape[-1]),
        n_fft=n_fft,
        hop_length=hop_length,
        win_length=win_length,
        window=window.to(waveform),
        center=True,
        pad_mode="reflect",
        normalized=False,
        onesided=True,
        return_complex=True,
    )
    return spec.abs().reshape(*shape[:-1], *spec.shape[-2:])


def amplitude_to_db(mels: torch.Tensor, amin: float = AMIN, db_range=DB_RANGE) -> torch.Tensor:
    """``20 * log10(max(x, amin))`` (reference 1.0, no top_db) clamped to ``db_range``."""
    return (20.0 * torch.log10(torch.clamp(mels, min=amin))).clamp(min=db_range[0], max=db_range[1])


class MelFrontend(nn.Module):
    """(batch, samples) waveform -> (batch, n_mels, frames) clamped dB log-mel.

    With ``center=True`` there are ``samples // hop_length + 1`` frames (626 for 10 s at 16 kHz).
    """

    def __init__(
        self,
        sample_rate: int = 16000,
        n_fft: int = 2048,
        win_length: int = 2048,
        hop_length: int = 256,
        f_min: float = 0.0,
        f_max: float = 8000.0,
        n_mels: int = 128,
    ):
        super().__init__()
        self.sample_rate = sample_rate
        self.n_fft = n_fft
        self.win_length = win_length
        self.hop_length = hop_length
        self.n_mels = n_mels
        # Derived constants: float64 (cast to the input dtype at use, so float64 inputs keep full
        # precision) and non-persistent (they follow from the arguments, checkpoints need not hold them).
        self.register_buffer(
            "window",
            torch.hamming_window(win_length, periodic=False, dtype=torch.float64),
            persistent=False,
        )
        self.register_buffer(
            "filterbank",
            mel_filterbank(n_fft // 2 + 1, f_min, f_max, n_mels, sample_rate),
            persistent=False,
        )

    @classmethod
    def from_config(cls, feats: Mapping) -> "MelFrontend":
        """Build from the config's ``feats`` section (``n_filters`` is n_fft, ``n_window`` the window)."""
        return cls(
            sample_rate=feats["sample_rate"],
            n_fft=feats["n_filters"],
            win_length=feats["n_window"],
            hop_length=feats["hop_length"],
            f_min=feats["f_min"],
            f_max=feats["f_max"],
            n_mels=feats["n_mels"],
        )

    def mel_amplitude(self, waveform: torch.Tensor) -> torch.Tensor:
        """Mel-filtered magnitude spectrogram (..., n_mels, frames), before the dB conversion."""
        spec = linear_spectrogram(waveform, self.n_fft, self.win_length, self.hop_length, self.window)
        return torch.matmul(spec.transpose(-1, -2), self.filterbank.to(spec)).transpose(-1, -2)

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        return amplitude_to_db(self.mel_amplitude(waveform))


def hz_to_mel_slaney(freq: torch.Tensor) -> torch.Tensor:
    """Slaney's mel scale (librosa's default): linear below 1 kHz, logarithmic above."""
    linear = freq / (200.0 / 3)
    logarithmic = 15.0 + torch.log(torch.clamp(freq, min=1e-10) / 1000.0) / (math.log(6.4) / 27.0)
    return torch.where(freq >= 1000.0, logarithmic, linear)


def mel_to_hz_slaney(mel: torch.Tensor) -> torch.Tensor:
    linear = mel * (200.0 / 3)
    logarithmic = 1000.0 * torch.exp((math.log(6.4) / 27.0) * (mel - 15.0))
    return torch.where(mel >= 15.0, logarithmic, linear)


def slaney_mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, f_min: float, f_max: float) -> torch.Tensor:
    """Slaney-scale, Slaney-normalised (area 1 per filter) triangles (n_fft // 2 + 1, n_mels) in float32,
    as ``librosa.filters.mel(sr, n_fft, n_mels, fmin, fmax).T`` (PANNs' filters). Computed in float64."""
    fft_freqs = torch.linspace(0, sample_rate / 2, n_fft // 2 + 1, dtype=torch.float64)
    edges = torch.tensor([float(f_min), float(f_max)], dtype=torch.float64)
    mel_edges = torch.linspace(*hz_to_mel_slaney(edges).tolist(), n_mels + 2, dtype=torch.float64)
    hz_edges = mel_to_hz_slaney(mel_edges)
    widths = hz_edges[1:] - hz_edges[:-1]
    ramps = hz_edges.unsqueeze(1) - fft_freqs.unsqueeze(0)
    rising = -ramps[:-2] / widths[:-1].unsqueeze(1)
    falling = ramps[2:] / widths[1:].unsqueeze(1)
    weights = torch.clamp(torch.minimum(rising, falling), min=0.0)
    weights = weights * (2.0 / (hz_edges[2:] - hz_edges[:-2])).unsqueeze(1)
    return weights.T.to(torch.float32)
