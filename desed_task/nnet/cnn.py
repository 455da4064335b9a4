"""Convolutional front of the DCASE baseline CRNN (same layers and state-dict names)."""
from __future__ import annotations

import copy
import itertools
from collections.abc import Sequence

import torch
from torch import nn


class GLU(nn.Module):
    """The baseline's gated unit: ``Linear_over_channels(x) * sigmoid(x)`` on (B, C, T, F) maps.

    Unlike ``nn.GLU`` it does not split channels: the linear map is the value, the input is the gate.
    On a channels-last map the channel permutes are free views; without gradients the gate multiplies the
    value in place (one map-sized buffer less per block).
    """

    def __init__(self, channels: int):
        super().__init__()
        self.sigmoid = nn.Sigmoid()
        self.linear = nn.Linear(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        value = self.linear(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        if torch.is_grad_enabled():
            return value * self.sigmoid(x)
        return value.mul_(self.sigmoid(x))


class ContextGating(nn.Module):
    """``x * sigmoid(Linear_over_channels(x))`` on (B, C, T, F) maps."""

    def __init__(self, channels: int):
        super().__init__()
        self.sigmoid = nn.Sigmoid()
        self.linear = nn.Linear(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.sigmoid(self.linear(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2))


def _activation(name: str, channels: int) -> tuple[str, nn.Module]:
    """(state-dict name stem, module) of an activation, as named in the baseline."""
    name = name.lower()
    if name == "glu":
        return "glu", GLU(channels)
    if name == "cg":
        return "cg", ContextGating(channels)
    if name == "relu":
        return "relu", nn.ReLU()
    if name == "leakyrelu":
        return "relu", nn.LeakyReLU(0.2)
    raise ValueError(f"unknown activation {name!r} (glu, cg, relu, leakyrelu)")


class FastDropout(nn.Dropout):
    """``nn.Dropout`` (inverted, train-only) drawing its mask with ``rand < keep``: ~3x faster than
    ``bernoulli_`` on CPU, where dropout otherwise dominates the CNN forward of small networks."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        if self.p == 1.0:
            return torch.zeros_like(x)
        keep = 1.0 - self.p
        return x * (torch.rand_like(x) < keep).to(x.dtype) * (1.0 / keep)


class CNN(nn.Module):
    """Stack of blocks conv -> BatchNorm2d(eps=1e-3, momentum=0.99) -> activation -> dropout -> AvgPool2d.

    Input (B, n_in_channel, frames, freq). Modules live in one ``nn.Sequential`` named ``cnn`` with the
    baseline's names (``conv{i}``, ``batchnorm{i}``, ``glu{i}``, ``dropout{i}``, ``pooling{i}``);
    ``forward_blocks`` runs a range of blocks for layer-wise access.
    """

    def __init__(
        self,
        n_in_channel: int = 1,
        activation: str = "glu",
        conv_dropout: float = 0.5,
        kernel_size: Sequence = (3,) * 7,
        padding: Sequence = (1,) * 7,
        stride: Sequence = (1,) * 7,
        nb_filters: Sequence[int] = (16, 32, 64, 128, 128, 128, 128),
        pooling: Sequence = ((2, 2), (2, 2), (1, 2), (1, 2), (1, 2), (1, 2), (1, 2)),
    ):
        super().__init__()
        n_blocks = len(nb_filters)
        per_block = {"kernel_size": kernel_size, "padding": padding, "stride": stride, "pooling": pooling}
        for name, values in per_block.items():
            if len(values) != n_blocks:
                raise ValueError(f"{name} has {len(values)} entries, nb_filters has {n_blocks}")
        self.nb_filters = list(nb_filters)
        self.cnn = nn.Sequential()
        self.block_bounds: list[tuple[int, int]] = []
        for i, n_out in enumerate(nb_filters):
            start = len(self.cnn)
            n_in = n_in_channel if i == 0 else nb_filters[i - 1]
            self.cnn.add_module(f"conv{i}", nn.Conv2d(n_in, n_out, kernel_size[i], stride[i], padding[i]))
            self.cnn.add_module(f"batchnorm{i}", nn.BatchNorm2d(n_out, eps=0.001, momentum=0.99))
            stem, module = _activation(activation, n_out)
            self.cnn.add_module(f"{stem}{i}", module)
            self.cnn.add_module(f"dropout{i}", FastDropout(conv_dropout))
            pool = tuple(pooling[i]) if isinstance(pooling[i], Sequence) else pooling[i]
            self.cnn.add_module(f"pooling{i}", nn.AvgPool2d(pool))
            self.block_bounds.append((start, len(self.cnn)))

    @property
    def n_blocks(self) -> int:
        return len(self.block_bounds)

    def forward_blocks(self, x: torch.Tensor, first: int, last: int) -> torch.Tensor:
        """Run blocks ``first`` .. ``last - 1`` (0-based)."""
        if last <= first:
            return x
        for module in itertools.islice(self.cnn, self.block_bounds[first][0], self.block_bounds[last - 1][1]):
            x = module(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_blocks(x, 0, self.n_blocks)


@torch.no_grad()
def fold_for_inference(model: nn.Module) -> nn.Module:
    """An eval-mode copy of `model` for fast inference, with the same outputs (to float rounding): each `CNN`'s
    batch norms are folded into the convolutions before them, and its convolution weights are made channels-last,
    so that every map is (the convolutions follow their weights' layout): the GLUs' channel permutes are then
    free views (together about 1.5x faster on CPU for the baseline CRNN).

    For inference only (the copy has no batch norms left to train). Each folded norm becomes an ``Identity``
    under its own name, so code that walks the blocks (`CNN.forward_blocks`, layer placements) runs unchanged.
    """
    model = copy.deepcopy(model).eval()
    for cnn in [module for module in model.modules() if isinstance(module, CNN)]:
        layers = cnn.cnn._modules
        for name, module in list(layers.items()):
            if isinstance(module, nn.BatchNorm2d):
                conv = layers[name.replace("batchnorm", "conv")]
                scale = module.weight / torch.sqrt(module.running_var + module.eps)
                bias = conv.bias if conv.bias is not None else torch.zeros_like(module.running_mean)
                conv.weight.mul_(scale[:, None, None, None])
                conv.bias = nn.Parameter((bias - module.running_mean) * scale + module.bias)
                layers[name] = nn.Identity()
        for conv in [module for module in cnn.modules() if isinstance(module, nn.Conv2d)]:
            conv.weight = nn.Parameter(conv.weight.contiguous(memory_format=torch.channels_last))
    return model
