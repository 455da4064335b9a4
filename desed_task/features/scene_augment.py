"""Augmentations of the CP-JKU scene classifier, batched on the training device.

- Device impulse responses (DIR): convolve recordings of the reference device with the impulse
  response of another microphone (causal FIR, truncated to the clip length, no gain normalisation, as
  the official ``scipy.signal.convolve(x, ir, 'full')[:T]``), here as one FFT convolution per batch;
- circular time roll of each waveform by up to ``max_shift`` samples either way;
- freq-MixStyle: mix the per-frequency mean/std of each spectrogram with those of another one.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn


def fft_convolve_truncated(audio: torch.Tensor, responses: torch.Tensor) -> torch.Tensor:
    """Causal convolution of each row of ``audio`` (B, T) with ``responses`` (B, L), truncated to T samples."""
    length = audio.shape[-1] + responses.shape[-1] - 1
    n_fft = 1 << (length - 1).bit_length()
    spectrum = torch.fft.rfft(audio, n_fft) * torch.fft.rfft(responses.to(audio), n_fft)
    return torch.fft.irfft(spectrum, n_fft)[..., : audio.shape[-1]]


class DeviceImpulseResponses(nn.Module):
    """DIR augmentation: each eligible clip gets, with probability ``prob``, a uniformly drawn IR.

    The IRs (zero-padded to the longest) are a non-persistent buffer, so they follow the module to the
    training device. The responses of a folder are read by ``desed_task.data.tau22.load_impulse_responses``.
    """

    def __init__(self, responses: list[np.ndarray], names: list[str] | None = None, prob: float = 0.6):
        super().__init__()
        longest = max(len(response) for response in responses)
        bank = np.zeros((len(responses), longest), dtype=np.float32)
        for row, response in zip(bank, responses):
            row[: len(response)] = response
        self.register_buffer("responses", torch.from_numpy(bank), persistent=False)
        self.names = list(names or [])
        self.prob = prob

    def forward(self, audio: torch.Tensor, eligible: torch.Tensor | None = None,
                generator: torch.Generator | None = None) -> torch.Tensor:
        """``audio`` (B, T); ``eligible`` (B,) bool (e.g. device-a clips), all clips when None."""
        batch = audio.shape[0]
        chosen = torch.rand(batch, generator=generator) < self.prob
        if eligible is not None:
            chosen &= eligible.bool().cpu()
        if not chosen.any():
            return audio
        index = chosen.nonzero().flatten()
        which = torch.randint(len(self.responses), (len(index),), generator=generator)
        index = index.to(audio.device)
        convolved = fft_convolve_truncated(audio[index], self.responses[which.to(self.responses.device)])
        return audio.index_copy(0, index, convolved.to(audio.dtype))


def roll_waveform(audio: torch.Tensor, max_shift: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Circularly shift each row of ``audio`` (B, T) by its own integer in [-max_shift, max_shift]."""
    if max_shift <= 0:
        return audio
    batch, length = audio.shape
    shifts = torch.randint(-max_shift, max_shift + 1, (batch, 1), generator=generator).to(audio.device)
    source = (torch.arange(length, device=audio.device).unsqueeze(0) - shifts) % length
    return torch.gather(audio, 1, source)


def freq_mixstyle(x: torch.Tensor, prob: float = 0.4, alpha: float = 0.3, eps: float = 1e-6,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """Freq-MixStyle on (B, C, F, T): with probability ``prob`` per batch, mix per-frequency statistics.

    Mean and std over channel and time (unbiased variance + ``eps``, detached) are mixed with those of a
    permuted batch by ``lambda ~ Beta(alpha, alpha)`` per sample: ``x_hat * sigma_mix + mu_mix``.
    """
    if float(torch.rand(1, generator=generator)) > prob:
        return x
    batch = x.shape[0]
    mu = x.mean(dim=(1, 3), keepdim=True).detach()
    sigma = (x.var(dim=(1, 3), keepdim=True) + eps).sqrt().detach()
    normalised = (x - mu) / sigma
    gammas = torch._standard_gamma(torch.full((2, batch), float(alpha)), generator=generator)
    lam = (gammas[0] / gammas.sum(0)).to(x).view(batch, 1, 1, 1)
    perm = torch.randperm(batch, generator=generator).to(x.device)
    mu_mix = lam * mu + (1 - lam) * mu[perm]
    sigma_mix = lam * sigma + (1 - lam) * sigma[perm]
    return normalised * sigma_mix + mu_mix
