"""Log-mel frontend in pure torch, numerically equal to the DCASE baseline's torchaudio chain.

The baseline computes ``MelSpectrogram(power=1, window_fn=hamming_window(periodic=False))`` (HTK mel
scale, no filter normalisation), then ``AmplitudeToDB(stype="amplitude")`` with ``amin=1e-5`` and
clamps the result to [-50, 80] dB. torchaudio is not a dependency, so the filterbank and the chain are
written here.

The same class, with other arguments, is the frontend of other papers (``ATSTFrontend``: periodic Hann
window, power mel, dB with a top_db cutoff); each preset is a subclass that only fixes arguments.
"""
from __future__ import annotations

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


def mel_to_db(
    mels: torch.Tensor,
    power: float = 1.0,
    amin: float = AMIN,
    db_range=DB_RANGE,
    top_db: float | None = None,
    top_db_per_clip: bool = True,
) -> torch.Tensor:
    """dB of a magnitude (``power=1``: 20 log10) or power (``power=2``: 10 log10) mel, floored at ``amin``,
    reference 1.0, then (``top_db``) raised to at least ``peak - top_db``, then clamped to ``db_range``.

    The peak is each clip's own (over its last two axes) with ``top_db_per_clip``, else the whole tensor's,
    as torchaudio's ``AmplitudeToDB`` does for a 3-D (batch, n_mels, frames) input.
    """
    db = (20.0 / power) * torch.log10(torch.clamp(mels, min=amin))
    if top_db is not None:
        peak = db.amax(dim=(-2, -1), keepdim=True) if top_db_per_clip else db.amax()
        db = torch.maximum(db, peak - top_db)
    return db.clamp(min=db_range[0], max=db_range[1])


WINDOWS = {
    "hamming_symmetric": lambda n: torch.hamming_window(n, periodic=False, dtype=torch.float64),
    "hann": lambda n: torch.hann_window(n, periodic=True, dtype=torch.float64),
}
"""STFT windows: the DCASE baseline's ``hamming_window(periodic=False)``, torchaudio's default periodic Hann."""


class MelFrontend(nn.Module):
    """(batch, samples) waveform -> (batch, n_mels, frames) clamped dB log-mel.

    With ``center=True`` there are ``samples // hop_length + 1`` frames (626 for 10 s at 16 kHz).
    The defaults are the DCASE baseline's; ``window``, ``power`` (1: magnitude, 2: power mel), ``amin``,
    ``db_range``, ``top_db`` and ``top_db_per_clip`` (see ``mel_to_db``) describe other papers' frontends.
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
        window: str = "hamming_symmetric",
        power: float = 1.0,
        amin: float = AMIN,
        db_range=DB_RANGE,
        top_db: float | None = None,
        top_db_per_clip: bool = True,
    ):
        super().__init__()
        if window not in WINDOWS:
            raise ValueError(f"window must be one of {tuple(WINDOWS)}, got {window!r}")
        if power not in (1.0, 2.0):
            raise ValueError(f"power must be 1 (magnitude) or 2 (power), got {power!r}")
        self.sample_rate = sample_rate
        self.n_fft = n_fft
        self.win_length = win_length
        self.hop_length = hop_length
        self.n_mels = n_mels
        self.power = float(power)
        self.amin = amin
        self.db_range = tuple(db_range)
        self.top_db = top_db
        self.top_db_per_clip = top_db_per_clip
        # Derived constants: float64 (cast to the input dtype at use, so float64 inputs keep full
        # precision) and non-persistent (they follow from the arguments, checkpoints need not hold them).
        self.register_buffer(
            "window",
            WINDOWS[window](win_length),
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

    def mel_spectrogram(self, waveform: torch.Tensor) -> torch.Tensor:
        """Mel-filtered ``|STFT| ** power`` (..., n_mels, frames), before the dB conversion."""
        spec = linear_spectrogram(waveform, self.n_fft, self.win_length, self.hop_length, self.window)
        if self.power == 2.0:
            spec = spec.square()
        return torch.matmul(spec.transpose(-1, -2), self.filterbank.to(spec)).transpose(-1, -2)

    def mel_amplitude(self, waveform: torch.Tensor) -> torch.Tensor:
        """Mel-filtered magnitude spectrogram (..., n_mels, frames) of a ``power=1`` frontend."""
        if self.power != 1.0:
            raise ValueError("mel_amplitude needs a power=1 frontend; use mel_spectrogram")
        return self.mel_spectrogram(waveform)

    def to_db(self, mels: torch.Tensor) -> torch.Tensor:
        """The frontend's dB conversion of ``mel_spectrogram`` outputs (mixed ones included)."""
        return mel_to_db(mels, self.power, self.amin, self.db_range, self.top_db, self.top_db_per_clip)

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        return self.to_db(self.mel_spectrogram(waveform))
