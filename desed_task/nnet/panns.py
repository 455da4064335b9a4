"""PANNs Cnn14_16k as the DCASE 2022 embedding extractor (Kong et al., 2020; DESED_task 2022 wrapper).

Raw 16 kHz waveform in; the log-mel is computed inside the model, as in the official model, with the
STFT kernels and mel filters stored in its checkpoint: a Hann-windowed (periodic) STFT of 512 points
every 160 samples as a convolution (``spectrogram_extractor.stft.conv_{real,imag}``), power, Slaney mel
filters 50-8000 Hz (``logmel_extractor.melW``: librosa's default filters, ``slaney_mel_filterbank``),
``10 log10(max(x, 1e-10))``.
This is not the DCASE ``MelFrontend`` (HTK filters, Hamming window, magnitude, clamped dB), and its
constants live in the checkpoint, so the model keeps its own front end.
Outputs: ``frame`` = block-3 output (B, 256, 125, 8) as (B, 2048, 125) (row = channel * 8 + mel bin),
``global`` = block-6 output averaged over frequency, then max + mean over time (B, 2048).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from desed_task.features.mel import slaney_mel_filterbank
from desed_task.nnet.official_weights import check_keys, read_official_file

SAMPLE_RATE = 16000
N_FFT = 512
HOP = 160
N_MELS = 64


class ConvBlock(nn.Module):
    """Two (3x3 conv without bias, BatchNorm, ReLU), then average pooling."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.bn2 = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor, pool: tuple[int, int]) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        return F.avg_pool2d(x, pool)


class _ConvSTFT(nn.Module):
    """torchlibrosa's STFT as two frozen 1-D convolutions (names of the official checkpoint)."""

    def __init__(self):
        super().__init__()
        window = torch.hann_window(N_FFT, periodic=True, dtype=torch.float64)
        angle = 2 * np.pi * torch.outer(torch.arange(N_FFT // 2 + 1, dtype=torch.float64),
                                        torch.arange(N_FFT, dtype=torch.float64)) / N_FFT
        self.conv_real = nn.Conv1d(1, N_FFT // 2 + 1, N_FFT, stride=HOP, bias=False)
        self.conv_imag = nn.Conv1d(1, N_FFT // 2 + 1, N_FFT, stride=HOP, bias=False)
        with torch.no_grad():
            self.conv_real.weight.copy_((torch.cos(angle) * window).unsqueeze(1))
            self.conv_imag.weight.copy_((-torch.sin(angle) * window).unsqueeze(1))


class _Spectrogram(nn.Module):
    def __init__(self):
        super().__init__()
        self.stft = _ConvSTFT()

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        """(B, samples) -> power spectrogram (B, 1, frames, 257), centred with reflect padding."""
        x = F.pad(waveform.unsqueeze(1), (N_FFT // 2, N_FFT // 2), mode="reflect")
        power = self.stft.conv_real(x) ** 2 + self.stft.conv_imag(x) ** 2
        return power.transpose(1, 2).unsqueeze(1)


class _LogMel(nn.Module):
    def __init__(self):
        super().__init__()
        filters = slaney_mel_filterbank(N_FFT // 2 + 1, 50.0, 8000.0, N_MELS, SAMPLE_RATE, torch.float32, norm="slaney")
        self.melW = nn.Parameter(filters, requires_grad=False)

    def forward(self, power: torch.Tensor) -> torch.Tensor:
        return 10.0 * torch.log10(torch.clamp(torch.matmul(power, self.melW), min=1e-10))


class PANNsCnn14(nn.Module):
    """Cnn14_16k: waveform (B, samples) at 16 kHz -> {"frame": (B, 2048, T/80 ms), "global": (B, 2048)}.

    ``freeze_bn`` (official default True) keeps every BatchNorm in eval mode with frozen affine
    parameters, also when the model is trained end to end. Dropout (0.2 per block, 0.5 on the global
    embedding) is active only in training mode. ``fc1`` is part of the checkpoint but unused, as in the
    DESED wrapper; ``fc_audioset`` is not built. ``channels`` (the six block widths) only make small
    variants for tests; the frame embedding has ``8 * channels[2]`` rows, the global one ``channels[5]``.
    """

    def __init__(self, freeze_bn: bool = True, channels: tuple[int, ...] = (64, 128, 256, 512, 1024, 2048)):
        super().__init__()
        if len(channels) != 6:
            raise ValueError(f"Cnn14 has 6 conv blocks, got channels {channels}")
        self.freeze_bn = freeze_bn
        self.spectrogram_extractor = _Spectrogram()
        self.logmel_extractor = _LogMel()
        for param in self.spectrogram_extractor.parameters():
            param.requires_grad_(False)
        self.bn0 = nn.BatchNorm2d(N_MELS)
        channels = (1, *channels)
        for i in range(6):
            setattr(self, f"conv_block{i + 1}", ConvBlock(channels[i], channels[i + 1]))
        self.fc1 = nn.Linear(channels[-1], channels[-1])
        self.train(self.training)

    def train(self, mode: bool = True):
        super().train(mode)
        if self.freeze_bn:
            for module in self.modules():
                if isinstance(module, nn.BatchNorm2d):
                    module.eval()
                    module.weight.requires_grad_(False)
                    module.bias.requires_grad_(False)
        return self

    def forward(self, waveform: torch.Tensor) -> dict[str, torch.Tensor]:
        x = self.logmel_extractor(self.spectrogram_extractor(waveform))  # (B, 1, frames, 64)
        x = self.bn0(x.transpose(1, 3)).transpose(1, 3)
        frame = None
        for i in range(6):
            x = getattr(self, f"conv_block{i + 1}")(x, (2, 2) if i < 5 else (1, 1))
            x = F.dropout(x, p=0.2, training=self.training)
            if i == 2:
                frame = x
        x = x.mean(dim=3)
        pooled = x.max(dim=2).values + x.mean(dim=2)
        batch, channels, frames, freq = frame.shape
        return {"frame": frame.transpose(2, 3).reshape(batch, channels * freq, frames),
                "global": F.dropout(pooled, p=0.5, training=self.training)}

    @classmethod
    def load_official(cls, path, **kwargs) -> "PANNsCnn14":
        """A ``PANNsCnn14(**kwargs)`` with the weights of ``Cnn14_16k_mAP=0.438.pth``, strictly
        (key mapping: ``panns_official_state_dict``)."""
        model = cls(**kwargs)
        result = model.load_state_dict(panns_official_state_dict(read_official_file(path, "panns")), strict=False)
        check_keys("PANNs Cnn14_16k", path, result.missing_keys, result.unexpected_keys)
        return model


def panns_official_state_dict(checkpoint: dict) -> dict:
    """The one key mapping of PANNs weights: the file's ``model`` state dict (or the file itself) without the
    AudioSet classifier ``fc_audioset.*``, which the embedding model does not have."""
    state = checkpoint.get("model", checkpoint)
    return {k: v for k, v in state.items() if not k.startswith("fc_audioset.")}
