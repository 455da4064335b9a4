"""Kaldi-compatible log mel filterbanks in pure torch, batched.

Equal to ``torchaudio.compliance.kaldi.fbank`` for the options AST and BEATs use (``snip_edges=True``,
no dither, no VTLN, no energy column): frames of ``frame_length`` ms every ``frame_shift`` ms, per-frame
DC removal, pre-emphasis (the first sample is its own predecessor), a symmetric window (``povey`` =
Hann^0.85, ``hanning``, ``hamming``, ``rectangular``), zero padding to the next power of two, power
spectrum, triangular filters equally spaced on the Kaldi mel scale ``1127 ln(1 + f / 700)`` between
``low_freq`` and ``high_freq`` (<= 0: offset from Nyquist; computed in float64, torchaudio uses float32),
and ``log(max(x, float32 eps))``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from desed_task.features.mel import kaldi_mel_filterbank

FLOAT32_EPS = torch.finfo(torch.float32).eps
WINDOW_TYPES = ("povey", "hanning", "hamming", "rectangular")


def kaldi_mel_banks(num_bins: int, padded_window_size: int, sample_frequency: float, low_freq: float,
                    high_freq: float) -> torch.Tensor:
    """Kaldi's triangular filters (num_bins, padded_window_size // 2 + 1), the Nyquist column zero: the
    package's `kaldi_mel_filterbank` with Kaldi's argument conventions (``high_freq <= 0``: offset from Nyquist)."""
    nyquist = 0.5 * sample_frequency
    if high_freq <= 0.0:
        high_freq += nyquist
    if not 0.0 <= low_freq < high_freq <= nyquist:
        raise ValueError(f"need 0 <= low_freq ({low_freq}) < high_freq ({high_freq}) <= Nyquist ({nyquist})")
    return kaldi_mel_filterbank(padded_window_size // 2 + 1, low_freq, high_freq, num_bins, sample_frequency).T


def _window(window_type: str, size: int, dtype, device) -> torch.Tensor:
    if window_type == "hanning":
        return torch.hann_window(size, periodic=False, dtype=dtype, device=device)
    if window_type == "povey":
        return torch.hann_window(size, periodic=False, dtype=dtype, device=device).pow(0.85)
    if window_type == "hamming":
        return torch.hamming_window(size, periodic=False, alpha=0.54, beta=0.46, dtype=dtype, device=device)
    if window_type == "rectangular":
        return torch.ones(size, dtype=dtype, device=device)
    raise ValueError(f"window_type must be one of {WINDOW_TYPES}, got {window_type!r}")


def kaldi_fbank(
    waveform: torch.Tensor,
    num_mel_bins: int = 23,
    sample_frequency: float = 16000.0,
    frame_length: float = 25.0,
    frame_shift: float = 10.0,
    window_type: str = "povey",
    preemphasis_coefficient: float = 0.97,
    remove_dc_offset: bool = True,
    low_freq: float = 20.0,
    high_freq: float = 0.0,
) -> torch.Tensor:
    """(..., samples) waveform -> (..., frames, num_mel_bins) log mel energies (see the module docstring).

    Defaults are torchaudio's; ``htk_compat`` and ``use_energy`` are irrelevant without the energy column.
    """
    shape = waveform.shape
    samples = waveform.reshape(-1, shape[-1])
    window_size = int(sample_frequency * frame_length * 0.001)
    window_shift = int(sample_frequency * frame_shift * 0.001)
    if not 2 <= window_size <= samples.shape[-1]:
        raise ValueError(f"{samples.shape[-1]} samples: shorter than one {window_size}-sample frame")
    padded_size = 1 << (window_size - 1).bit_length()
    frames = samples.unfold(-1, window_size, window_shift)  # (B, m, window_size)
    if remove_dc_offset:
        frames = frames - frames.mean(-1, keepdim=True)
    if preemphasis_coefficient != 0.0:
        previous = torch.cat((frames[..., :1], frames[..., :-1]), -1)
        frames = frames - preemphasis_coefficient * previous
    frames = frames * _window(window_type, window_size, frames.dtype, frames.device)
    frames = F.pad(frames, (0, padded_size - window_size))
    power = torch.fft.rfft(frames).abs().pow(2.0)
    banks = kaldi_mel_banks(num_mel_bins, padded_size, sample_frequency, low_freq, high_freq)
    energies = torch.matmul(power, banks.to(power).T)
    energies = torch.clamp(energies, min=FLOAT32_EPS).log()
    return energies.reshape(*shape[:-1], *energies.shape[-2:])
