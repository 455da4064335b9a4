"""The CP-JKU (DCASE 2023 Task 1) log-mel frontend: a preset of ``MelFrontend``.

As the official ``AugmentMelSTFT``: pre-emphasis ``y[n] = x[n+1] - 0.97 x[n]``, STFT (n_fft 4096,
symmetric Hann window of 3072, hop 500, centred, reflect padding), power, 256 Kaldi mel filters
(Nyquist weight 0), ``log(x + 1e-5)``, then ``(x + 4.5) / 5``. A 1 s clip at 32 kHz gives 64 frames.

Training mode only:
- the filter range is redrawn per batch: ``f_min + randint(fmin_aug_range)`` and
  ``f_max + fmax_aug_range // 2 - randint(fmax_aug_range)`` (f_max uniform in 15,001..16,000);
- one frequency mask of ``floor(U * freqm)`` bins starting at ``floor(U' * (n_mels - U * freqm))``,
  filled with 0 in the log domain (0.9 after normalisation). Default: an independent mask per clip.
  ``shared_freq_mask=True`` reproduces the official code, where torchaudio 0.11 ignored ``iid_masks``
  on 3-d input and so shared one mask across the batch.
"""
from __future__ import annotations

import torch

from desed_task.features.mel import MelFrontend

LOG_OFFSET = 1e-5
NORM_SHIFT = 4.5
NORM_SCALE = 5.0


def frequency_mask(logmel: torch.Tensor, max_width: int, shared: bool = False,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """Zero one band of ``floor(U * max_width)`` mel bins per clip (one band for all if ``shared``).

    ``logmel`` (B, n_mels, frames); the band starts at ``floor(U' * (n_mels - U * max_width))`` as
    torchaudio's ``mask_along_axis``.
    """
    batch, n_mels = logmel.shape[0], logmel.shape[1]
    draws = 1 if shared else batch
    width = torch.rand(draws, generator=generator) * max_width
    start = torch.rand(draws, generator=generator) * (n_mels - width)
    lo, hi = start.floor(), (start.floor() + width.floor())
    bins = torch.arange(n_mels, dtype=lo.dtype)
    masked = ((bins >= lo[:, None]) & (bins < hi[:, None])).expand(batch, n_mels).to(logmel.device)
    return logmel.masked_fill(masked.unsqueeze(-1), 0.0)


class CPJKUFrontend(MelFrontend):
    """(B, samples) 32 kHz waveform -> (B, 1, 256, frames) normalised log-mel (64 frames per second)."""

    def __init__(self, sample_rate: int = 32000, n_fft: int = 4096, win_length: int = 3072, hop_length: int = 500,
                 n_mels: int = 256, f_min: float = 0.0, f_max: float = 15500.0, fmin_aug_range: int = 1,
                 fmax_aug_range: int = 1000, freqm: int = 48, shared_freq_mask: bool = False,
                 preemphasis: float = 0.97):
        super().__init__(sample_rate=sample_rate, n_fft=n_fft, win_length=win_length, hop_length=hop_length,
                         f_min=f_min, f_max=f_max, n_mels=n_mels, window="hann", power=2.0, mel_scale="kaldi",
                         preemphasis=preemphasis)
        self.fmin_aug_range = fmin_aug_range
        self.fmax_aug_range = fmax_aug_range
        self.freqm = freqm
        self.shared_freq_mask = shared_freq_mask

    def draw_filterbank(self) -> torch.Tensor:
        """Filters for a random range around (f_min, f_max), one draw per call (per batch)."""
        f_min = self.f_min + int(torch.randint(self.fmin_aug_range, (1,)))
        f_max = self.f_max + self.fmax_aug_range // 2 - int(torch.randint(self.fmax_aug_range, (1,)))
        return self.make_filterbank(f_min, f_max)

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        filterbank = self.draw_filterbank() if self.training else None
        logmel = torch.log(self.mel_amplitude(waveform, filterbank) + LOG_OFFSET)
        if self.training and self.freqm > 0:
            logmel = frequency_mask(logmel, self.freqm, shared=self.shared_freq_mask)
        return ((logmel + NORM_SHIFT) / NORM_SCALE).unsqueeze(1)
