"""The DCASE task 4 baseline CRNN, with layer-wise access for IRCT.

Same layers, parameter count (1,112,420 with the default config) and state-dict names as the
official model, so official checkpoints load as they are. The network is a chain of stages; the
output after each stage is a named placement (``CRNN.PLACEMENTS``), and ``encode`` / ``classify``
split the chain at any placement. ``forward`` is ``classify(x, "input")``, so there is one forward path.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from desed_task.nnet.cnn import CNN
from desed_task.nnet.rnn import BidirectionalGRU

ATTENTION_SOFTMAX_DIMS = ("classes", "time")


def attention_pooling(strong: torch.Tensor, logits: torch.Tensor, softmax_dim: str = "classes") -> torch.Tensor:
    """Weak (B, C) predictions: strong (B, T, C) frame scores averaged over time with attention weights.

    The weights are softmax(logits) clamped at 1e-7, normalised over time; the official baseline takes the
    softmax over the classes (``softmax_dim="classes"``), ``"time"`` takes it over the frames.
    """
    weights = torch.softmax(logits, dim=-1 if softmax_dim == "classes" else 1).clamp(min=1e-7, max=1)
    return (strong * weights).sum(1) / weights.sum(1)


class CRNN(nn.Module):
    """(B, n_mels, frames) log-mels -> (strong (B, nclass, frames'), weak (B, nclass)).

    Placements: ``input`` (the log-mels), ``l1``..``l7`` (outputs of conv blocks 1..7, after their
    dropout and pooling, (B, C, T', F')), ``l8`` (BiGRU output after the dropout that follows it,
    (B, T', 2 * n_RNN_cell)), ``l9`` (the tuple (strong, weak)).

    ``attention_softmax_dim``: the official model normalises the attention weights with a softmax over
    the *classes* axis of its (B, T, C) logits (``nn.Softmax(dim=-1)``), not over time as the attention
    pooling is usually described. ``"classes"`` (default) keeps that, so official checkpoints give their
    published results; ``"time"`` normalises over frames. The weak output is in both cases
    ``sum_t(strong * w) / sum_t(w)`` with ``w`` clamped to at least 1e-7.
    """

    PLACEMENTS = ("input", "l1", "l2", "l3", "l4", "l5", "l6", "l7", "l8", "l9")
    """Placements of the default 7-block network (``self.placements`` for other depths)."""

    def __init__(
        self,
        n_in_channel: int = 1,
        nclass: int = 10,
        attention: bool = True,
        activation: str = "glu",
        dropout: float = 0.5,
        rnn_type: str = "BGRU",
        n_RNN_cell: int = 128,
        rnn_layers: int = 2,
        dropout_recurrent: float = 0.0,
        kernel_size: Sequence = (3,) * 7,
        padding: Sequence = (1,) * 7,
        stride: Sequence = (1,) * 7,
        nb_filters: Sequence[int] = (16, 32, 64, 128, 128, 128, 128),
        pooling: Sequence = ((2, 2), (2, 2), (1, 2), (1, 2), (1, 2), (1, 2), (1, 2)),
        attention_softmax_dim: str = "classes",
    ):
        super().__init__()
        if rnn_type != "BGRU":
            raise ValueError(f"only rnn_type 'BGRU' is supported, got {rnn_type!r}")
        if attention_softmax_dim not in ATTENTION_SOFTMAX_DIMS:
            raise ValueError(f"attention_softmax_dim must be one of {ATTENTION_SOFTMAX_DIMS}")
        self.attention = attention
        self.attention_softmax_dim = attention_softmax_dim
        self.cnn = CNN(
            n_in_channel=n_in_channel,
            activation=activation,
            conv_dropout=dropout,
            kernel_size=kernel_size,
            padding=padding,
            stride=stride,
            nb_filters=nb_filters,
            pooling=pooling,
        )
        self.rnn = BidirectionalGRU(
            n_in=self.cnn.nb_filters[-1], n_hidden=n_RNN_cell, dropout=dropout_recurrent, num_layers=rnn_layers
        )
        self.dropout = nn.Dropout(dropout)
        self.dense = nn.Linear(2 * n_RNN_cell, nclass)
        self.sigmoid = nn.Sigmoid()
        if attention:
            self.dense_softmax = nn.Linear(2 * n_RNN_cell, nclass)
        n_conv = self.cnn.n_blocks
        self.placements = ("input", *(f"l{i}" for i in range(1, n_conv + 3)))

    def _index(self, placement: str) -> int:
        try:
            return self.placements.index(placement)
        except ValueError:
            raise ValueError(f"unknown placement {placement!r}, expected one of {self.placements}") from None

    def _stage(self, index: int, h, pad_mask: torch.Tensor | None):
        """Map the output at placement ``index`` to the output at placement ``index + 1``."""
        n_conv = self.cnn.n_blocks
        if index < n_conv:
            if index == 0:
                h = h.transpose(1, 2).unsqueeze(1)
            return self.cnn.forward_blocks(h, index, index + 1)
        if index == n_conv:
            batch, channels, frames, freq = h.shape
            return self.dropout(self.rnn(h.permute(0, 2, 1, 3).reshape(batch, frames, channels * freq)))
        return self.head(h, pad_mask)

    def head(self, h: torch.Tensor, pad_mask: torch.Tensor | None = None):
        """Strong and weak predictions from the (B, T, 2 * n_RNN_cell) recurrent features.

        ``pad_mask`` (B, T) or (B, 1 or nclass, T), True on padded frames, is excluded from the
        attention as in the official model (with the classes softmax it only makes the weights uniform).
        """
        strong = self.sigmoid(self.dense(h))
        if not self.attention:
            return strong.transpose(1, 2), strong.mean(1)
        logits = self.dense_softmax(h)
        if pad_mask is not None:
            mask = pad_mask.unsqueeze(1) if pad_mask.ndim == 2 else pad_mask
            logits = logits.masked_fill(mask.transpose(1, 2), -1e30)
        return strong.transpose(1, 2), attention_pooling(strong, logits, self.attention_softmax_dim)

    def encode(self, x: torch.Tensor, placement: str):
        """The chain from the log-mels up to and including ``placement``."""
        for index in range(self._index(placement)):
            x = self._stage(index, x, None)
        return x

    def classify(self, h, placement: str, pad_mask: torch.Tensor | None = None):
        """The rest of the chain after ``placement``: returns (strong, weak)."""
        for index in range(self._index(placement), len(self.placements) - 1):
            h = self._stage(index, h, pad_mask)
        return h

    def forward(self, x: torch.Tensor, pad_mask: torch.Tensor | None = None):
        return self.classify(x, "input", pad_mask)
