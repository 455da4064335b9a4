"""ATST-Frame's input features (ATST-SED ``ATSTTransform`` + ``ATSTNorm``), a preset of ``MelFrontend``.

torchaudio ``MelSpectrogram(16000, n_fft=1024, win_length=1024, hop_length=160, f_min=60, f_max=7800,
n_mels=64)`` defaults: periodic Hann window, power 2, HTK scale, unnormalised filters, centred with reflect
padding (1001 frames for 10 s). Then ``AmplitudeToDB("power", top_db=80)`` (amin 1e-10, reference 1), a
clamp to [-50, 80] dB and the fixed map ``(x + 79.6482) / 130.3324 * 2 - 1`` of audiossl's ``MinMax``.

The official trainer applies top_db to a (batch, 64, frames) tensor, which torchaudio treats as one
multi-channel signal: one cutoff (the batch peak - 80 dB) for the whole batch, so a clip's features depend
on the clips batched with it and differ between training and single-clip inference. The default here is a
per-clip cutoff (``top_db_per_clip=True``, as audiossl's 4-D input gives); ``False`` reproduces the batch-wide one.
"""
from __future__ import annotations

from collections.abc import Mapping

import torch

from desed_task.features.mel import MelFrontend

NORM_MIN = -79.6482
NORM_MAX = 50.6842
ATST_PRESET = {
    "sample_rate": 16000, "n_fft": 1024, "win_length": 1024, "hop_length": 160, "f_min": 60.0, "f_max": 7800.0,
    "n_mels": 64, "window": "hann", "periodic_window": True, "power": 2.0, "amin": 1e-10, "db_range": (-50.0, 80.0),
    "top_db": 80.0,
}


class ATSTFrontend(MelFrontend):
    """(batch, samples) 16 kHz waveform -> (batch, 64, frames) normalised ATST-Frame input.

    ``mel_amplitude`` gives the power mel (where ATST-SED's stage 2 mixes clips) and ``normalize`` the
    rest of the chain, so ``forward(w) == normalize(mel_amplitude(w))``.
    """

    def __init__(self, top_db_per_clip: bool = True, **overrides):
        unknown = set(overrides) - set(ATST_PRESET)
        if unknown:
            raise ValueError(f"unknown ATSTFrontend arguments {sorted(unknown)} (known: {sorted(ATST_PRESET)})")
        super().__init__(**{**ATST_PRESET, **overrides}, top_db_per_clip=top_db_per_clip)

    @classmethod
    def from_config(cls, feats: Mapping) -> "ATSTFrontend":
        """Build from an ``atst_feats`` config section (keys of ``ATST_PRESET`` plus ``top_db_per_clip``)."""
        return cls(**dict(feats))

    def normalize(self, mel_power: torch.Tensor) -> torch.Tensor:
        """Power mel -> dB (top_db, clamp) -> ``(x - NORM_MIN) / (NORM_MAX - NORM_MIN) * 2 - 1``."""
        return (self.to_db(mel_power) - NORM_MIN) / (NORM_MAX - NORM_MIN) * 2 - 1

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        return self.normalize(self.mel_amplitude(waveform))
