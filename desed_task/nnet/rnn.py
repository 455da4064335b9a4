"""Recurrent part of the DCASE baseline CRNN."""
from __future__ import annotations

import torch
from torch import nn


class BidirectionalGRU(nn.Module):
    """Batch-first bidirectional GRU returning only the output sequence (B, T, 2 * n_hidden)."""

    def __init__(self, n_in: int, n_hidden: int, dropout: float = 0.0, num_layers: int = 1):
        super().__init__()
        self.rnn = nn.GRU(
            n_in, n_hidden, bidirectional=True, dropout=dropout, batch_first=True, num_layers=num_layers
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.rnn(x)[0]
