"""Linear-probe style SED heads on a frozen CRNN representation (IRCT paper, probing experiments).

`ProbeHead` maps the representation of one CRNN placement (l1..l7: conv block output (B, C, T', F'),
l8: BiGRU output (B, T', D)) to (strong (B, nclass, out_frames), weak (B, nclass)): a linear projection
of the time axis to `out_frames` label frames, a small 2-layer BiGRU followed by dropout, and the
baseline's attention pooling (softmax over the classes, as the official CRNN). `ProbedCRNN` chains a
frozen `CRNN.encode(x, layer)` and a head.
"""
from __future__ import annotations

import torch
from torch import nn

from desed_task.nnet.crnn import CRNN, attention_pooling
from desed_task.nnet.rnn import BidirectionalGRU

PROBE_LAYERS = ("l1", "l2", "l3", "l4", "l5", "l6", "l7", "l8")


def representation_to_sequence(h: torch.Tensor) -> torch.Tensor:
    """(B, C, T, F) conv features -> (B, C * F, T); (B, T, D) recurrent features -> (B, D, T)."""
    if h.ndim == 4:
        batch, channels, frames, freq = h.shape
        return h.permute(0, 1, 3, 2).reshape(batch, channels * freq, frames)
    if h.ndim == 3:
        return h.transpose(1, 2)
    raise ValueError(f"expected a (B, C, T, F) or (B, T, D) representation, got shape {tuple(h.shape)}")


class ProbeHead(nn.Module):
    """Time projection -> BiGRU(hidden_size, 2 layers) -> dropout -> attention head.

    Args:
        in_channels: feature size per frame of the representation (C * F' for conv layers, D for l8).
        in_frames: frames of the representation (T').
        hidden_size: BiGRU hidden size (8, 16 or 32 in the paper).
        out_frames: label frames of the predictions (156 for 10 s clips).
    """

    def __init__(self, in_channels: int, in_frames: int, hidden_size: int, nclass: int = 10,
                 out_frames: int = 156, rnn_layers: int = 2, dropout: float = 0.5):
        super().__init__()
        self.time_projection = nn.Linear(in_frames, out_frames)
        self.rnn = BidirectionalGRU(in_channels, hidden_size, num_layers=rnn_layers)
        self.dropout = nn.Dropout(dropout)
        self.dense = nn.Linear(2 * hidden_size, nclass)
        self.dense_softmax = nn.Linear(2 * hidden_size, nclass)

    def forward(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        sequence = self.time_projection(representation_to_sequence(h))  # (B, C, out_frames)
        features = self.dropout(self.rnn(sequence.transpose(1, 2)))  # (B, out_frames, 2 * hidden)
        strong = torch.sigmoid(self.dense(features))
        return strong.transpose(1, 2), attention_pooling(strong, self.dense_softmax(features))


class ProbedCRNN(nn.Module):
    """A frozen CRNN encoder up to `layer` followed by a trainable `ProbeHead`.

    The encoder's parameters never receive gradients (its forward runs under `no_grad`). With
    `frozen_eval_mode` (default) it also stays in eval mode whatever `train()` is called with, so its
    batch-norm statistics are fixed and its dropout is off. With `frozen_eval_mode=False` the encoder
    follows the module's mode as in the reference code: in training, batch-norm normalises with batch
    statistics and updates its running statistics, and dropout is active on the probed features.
    """

    def __init__(self, encoder: CRNN, layer: str, head: ProbeHead, frozen_eval_mode: bool = True):
        super().__init__()
        if layer not in PROBE_LAYERS:
            raise ValueError(f"probe layer must be one of {PROBE_LAYERS}, got {layer!r}")
        self.encoder = encoder
        self.layer = layer
        self.head = head
        self.frozen_eval_mode = frozen_eval_mode
        self.encoder.requires_grad_(False)
        self.train(self.training)

    @staticmethod
    def representation_shape(encoder: CRNN, layer: str, n_mels: int, n_frames: int) -> tuple[int, int]:
        """(features per frame, frames) of the encoder's representation at `layer` for such inputs."""
        was_training = encoder.training
        encoder.eval()
        with torch.no_grad():
            h = encoder.encode(torch.zeros(1, n_mels, n_frames), layer)
        encoder.train(was_training)
        sequence = representation_to_sequence(h)
        return sequence.shape[1], sequence.shape[2]

    def train(self, mode: bool = True):
        super().train(mode)
        if self.frozen_eval_mode:
            self.encoder.eval()
        return self

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.no_grad():
            h = self.encoder.encode(x, self.layer)
        return self.head(h)
