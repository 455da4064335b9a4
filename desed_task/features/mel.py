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


SLANEY_F_SP = 200.0 / 3  # Hz per mel below 1 kHz
SLANEY_MIN_LOG_HZ = 1000.0
SLANEY_MIN_LOG_MEL = SLANEY_MIN_LOG_HZ / SLANEY_F_SP
SLANEY_LOG_STEP = math.log(6.4) / 27.0


def hz_to_mel_slaney(freq: torch.Tensor) -> torch.Tensor:
    """Slaney's Auditory Toolbox mel scale (librosa ``htk=False``): linear below 1 kHz, logarithmic above."""
    octaves = torch.log(torch.clamp(freq, min=SLANEY_MIN_LOG_HZ) / SLANEY_MIN_LOG_HZ)
    above = SLANEY_MIN_LOG_MEL + octaves / SLANEY_LOG_STEP
    return torch.where(freq >= SLANEY_MIN_LOG_HZ, above, freq / SLANEY_F_SP)


def mel_to_hz_slaney(mel: torch.Tensor) -> torch.Tensor:
    above = SLANEY_MIN_LOG_HZ * torch.exp(SLANEY_LOG_STEP * (mel - SLANEY_MIN_LOG_MEL))
    return torch.where(mel >= SLANEY_MIN_LOG_MEL, above, SLANEY_F_SP * mel)


MEL_SCALES = {"htk": (hz_to_mel_htk, mel_to_hz_htk), "slaney": (hz_to_mel_slaney, mel_to_hz_slaney)}


def mel_filterbank(
    n_freqs: int, f_min: float, f_max: float, n_mels: int, sample_rate: int, dtype=torch.float64,
    mel_scale: str = "htk",
) -> torch.Tensor:
    """Triangular mel filters (n_freqs, n_mels) of peak 1, unnormalised, as torchaudio ``melscale_fbanks``
    (``mel_scale="htk"``) or librosa ``filters.mel(htk=False, norm=None)`` (``mel_scale="slaney"``).

    FFT bin ``k`` sits at ``k * (sr / 2) / (n_freqs - 1)``; the ``n_mels + 2`` filter edges are equally
    spaced on the mel scale between ``f_min`` and ``f_max``. Computed in float64, then cast.
    """
    if mel_scale not in MEL_SCALES:
        raise ValueError(f"mel_scale must be one of {sorted(MEL_SCALES)}, got {mel_scale!r}")
    hz_to_mel, mel_to_hz = MEL_SCALES[mel_scale]
    all_freqs = torch.linspace(0, sample_rate // 2, n_freqs, dtype=torch.float64)
    mel_edges = torch.linspace(
        float(hz_to_mel(torch.tensor(float(f_min), dtype=torch.float64))),
        float(hz_to_mel(torch.tensor(float(f_max), dtype=torch.float64))),
        n_mels + 2,
        dtype=torch.float64,
    )
    hz_edges = mel_to_hz(mel_edges)
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


LOG_MODES = ("db", "log10")


class MelFrontend(nn.Module):
    """(batch, samples) waveform -> (batch, n_mels, frames) log-mel.

    With ``center=True`` there are ``samples // hop_length + 1`` frames (626 for 10 s at 16 kHz). The
    defaults are the DCASE baseline's (symmetric Hamming window, magnitude, HTK mel, clamped dB); the
    other arguments give the presets of other papers: ``periodic_window``, ``power`` 2 (power
    spectrogram), ``mel_scale="slaney"`` and ``log_mode="log10"`` (``log10(mel + log_eps)``).
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
        mel_scale: str = "htk",
        periodic_window: bool = False,
        power: float = 1.0,
        log_mode: str = "db",
        log_eps: float = 1.1e-8,
    ):
        super().__init__()
        if log_mode not in LOG_MODES:
            raise ValueError(f"log_mode must be one of {LOG_MODES}, got {log_mode!r}")
        self.sample_rate = sample_rate
        self.n_fft = n_fft
        self.win_length = win_length
        self.hop_length = hop_length
        self.n_mels = n_mels
        self.power = power
        self.log_mode = log_mode
        self.log_eps = log_eps
        # Derived constants: float64 (cast to the input dtype at use, so float64 inputs keep full
        # precision) and non-persistent (they follow from the arguments, checkpoints need not hold them).
        self.register_buffer(
            "window",
            torch.hamming_window(win_length, periodic=periodic_window, dtype=torch.float64),
            persistent=False,
        )
        self.register_buffer(
            "filterbank",
            mel_filterbank(n_fft // 2 + 1, f_min, f_max, n_mels, sample_rate, mel_scale=mel_scale),
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
        """Mel-filtered magnitude (``power`` 1) or power (2) spectrogram (..., n_mels, frames), before the log."""
        spec = linear_spectrogram(waveform, self.n_fft, self.win_length, self.hop_length, self.window)
        if self.power != 1:
            spec = spec ** self.power
        return torch.matmul(spec.transpose(-1, -2), self.filterbank.to(spec)).transpose(-1, -2)

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        mels = self.mel_amplitude(waveform)
        if self.log_mode == "log10":
            return torch.log10(mels + self.log_eps)
        return amplitude_to_db(mels)


class UCLSERFrontend(MelFrontend):
    """UCLSER preset (official ``wav2spec``): waveform at 22,050 Hz -> (..., frames, 96) log10 mel.

    Power STFT (n_fft 2048, periodic Hamming window of 660 samples zero-padded to 2048, hop 220, centred,
    reflect padding) of ``waveform + 1.1e-8`` (the official code adds eps to the signal too), 96 Slaney
    mel bands of peak 1 from 50 to 10,500 Hz, ``log10(mel + 1.1e-8)``; frames first, as the network input
    patches (101 frames per second).
    """

    def __init__(self):
        super().__init__(sample_rate=22050, n_fft=2048, win_length=660, hop_length=220, f_min=50.0,
                         f_max=10500.0, n_mels=96, mel_scale="slaney", periodic_window=True, power=2.0,
                         log_mode="log10", log_eps=1.1e-8)

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        return super().forward(waveform + self.log_eps).transpose(-1, -2)
