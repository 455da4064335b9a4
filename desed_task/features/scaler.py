"""Feature normalisation as in the DCASE baseline's ``TorchScaler``.

``statistic="instance"`` normalises each tensor with statistics over ``dims`` of that tensor itself;
``statistic="dataset"`` uses a mean and mean of squares fitted once on a dataloader and kept as buffers
(``mean``, ``mean_squared``, the baseline's names, so its ``scaler.ckpt`` files load).
"""
from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import nn

STATISTICS = ("instance", "dataset")
NORMTYPES = ("mean", "standard", "minmax")


class TorchScaler(nn.Module):
    """Normalise (batch, n_mels, frames) features.

    normtype ``mean``: ``x - mean``; ``standard``: ``(x - mean) / (std + eps)``; ``minmax``:
    ``(x - min) / (max - min + eps)`` (instance statistics only, as in the baseline). Instance
    ``standard`` uses the unbiased std over ``dims``; dataset ``standard`` uses
    ``sqrt(mean_squared - mean**2)``.
    """

    def __init__(self, statistic: str = "instance", normtype: str = "minmax", dims=(1, 2), eps: float = 1e-8):
        super().__init__()
        if statistic not in STATISTICS:
            raise ValueError(f"statistic must be one of {STATISTICS}, got {statistic!r}")
        if normtype not in NORMTYPES:
            raise ValueError(f"normtype must be one of {NORMTYPES}, got {normtype!r}")
        if statistic == "dataset" and normtype == "minmax":
            raise ValueError("normtype 'minmax' is only available with statistic 'instance'")
        self.statistic = statistic
        self.normtype = normtype
        self.dims = tuple(dims)
        self.eps = eps
        if statistic == "dataset":
            self.register_buffer("mean", None)
            self.register_buffer("mean_squared", None)

    @property
    def fitted(self) -> bool:
        return self.statistic == "instance" or self.mean is not None

    @torch.no_grad()
    def fit(self, dataloader: Iterable, transform_func: Callable = lambda batch: batch[0]) -> None:
        """Fit dataset statistics: per-batch averages of per-item means over ``dims``, averaged over batches."""
        if self.statistic != "dataset":
            raise RuntimeError("fit() only applies to statistic='dataset'")
        mean_sum, mean_squared_sum, n_batches = 0.0, 0.0, 0
        for batch in dataloader:
            feats = transform_func(batch)
            mean_sum = mean_sum + feats.mean(self.dims, keepdim=True).mean(0, keepdim=True)
            mean_squared_sum = mean_squared_sum + (feats**2).mean(self.dims, keepdim=True).mean(0, keepdim=True)
            n_batches += 1
        if n_batches == 0:
            raise ValueError("cannot fit the scaler on an empty dataloader")
        self.mean = mean_sum / n_batches
        self.mean_squared = mean_squared_sum / n_batches

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # Unfitted dataset buffers are None; give them the stored shape so loading fills them.
        if self.statistic == "dataset":
            for name in ("mean", "mean_squared"):
                if prefix + name in state_dict:
                    setattr(self, name, torch.empty_like(state_dict[prefix + name]))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        if self.statistic == "dataset":
            if not self.fitted:
                raise RuntimeError("TorchScaler(statistic='dataset') must be fitted or loaded before use")
            if self.normtype == "mean":
                return features - self.mean
            std = torch.sqrt(self.mean_squared - self.mean**2)
            return (features - self.mean) / (std + self.eps)
        if self.normtype == "mean":
            return features - features.mean(self.dims, keepdim=True)
        if self.normtype == "standard":
            return (features - features.mean(self.dims, keepdim=True)) / (
                features.std(self.dims, keepdim=True) + self.eps
            )
        low = features.amin(self.dims, keepdim=True)
        high = features.amax(self.dims, keepdim=True)
        return (features - low) / (high - low + self.eps)
