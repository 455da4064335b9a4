"""CP-Mobile, the receptive-field-regularised mobile CNN of the CP-JKU DCASE 2023 Task 1 system.

Schmid et al., "Efficient and low-complexity acoustic scene classification" (official code
fschmid56/cpjku_dcase23, ``models/cp_mobile_clean.py``). The module tree reproduces the official one, so
the state-dict keys are the checkpoint's minus its ``model.`` prefix (``in_c.0.0.weight``,
``stages.s1.b1.block.0.0.weight``, ``stages.s1.b1.after_block_norm.gamma``, ``feed_forward.0.weight``).
With the defaults the model has 126,952 parameters. Quant/DeQuant stubs and ``FloatFunctional`` adds
are identities in float and make the eager-mode int8 conversion (``fuse_model`` + torch.ao QAT) work.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torch.ao.nn.quantized import FloatFunctional
from torch.ao.quantization import DeQuantStub, QuantStub, fuse_modules

from desed_task.nnet.checkpoint import load_state_dict_by_name
from desed_task.utils.files import load_torch_file


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """MobileNet channel rounding: nearest multiple of ``divisor``, never more than 10 % below ``value``."""
    min_value = divisor if min_value is None else min_value
    rounded = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


def conv_norm_act(in_channels: int, out_channels: int, kernel_size: int, stride=1, groups: int = 1,
                  activation: bool = True) -> nn.Sequential:
    """[Conv2d (no bias, 'same' padding), BatchNorm2d, ReLU]: torchvision's ConvNormActivation layout."""
    layers = [
        nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=(kernel_size - 1) // 2,
                  groups=groups, bias=False),
        nn.BatchNorm2d(out_channels),
    ]
    if activation:
        layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class GlobalResponseNorm(nn.Module):
    """ConvNeXt-V2 GRN with scalar gain and bias: ``gamma * x * Nx + beta + x``.

    ``Nx`` is the per-channel L2 norm over (freq, time) divided by its channel mean (+1e-6). It runs in
    float between stubs, so a quantised model dequantises around it, as the official model does.
    """

    def __init__(self, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.gamma = nn.Parameter(torch.zeros(1))
        self.beta = nn.Parameter(torch.zeros(1))
        self.dequant = DeQuantStub()
        self.quant = QuantStub()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.dequant(x)
        norms = torch.norm(x, p=2, dim=(2, 3), keepdim=True)
        normalised = norms / (norms.mean(dim=1, keepdim=True) + self.eps)
        return self.quant(self.gamma * (x * normalised) + self.beta + x)


class CPMobileBlock(nn.Module):
    """1x1 expand -> depthwise 3x3 (strided) -> 1x1 project, with a shortcut when in == out channels.

    The shortcut is the identity, or a 3x3 average pool (stride 2, padding 1) in strided blocks. After
    the residual add: GRN, then ReLU.
    """

    def __init__(self, in_channels: int, out_channels: int, expansion_rate: int, stride):
        super().__init__()
        expanded = make_divisible(in_channels * expansion_rate, 8)
        self.after_block_norm = GlobalResponseNorm()
        self.after_block_activation = nn.ReLU()
        self.use_shortcut = in_channels == out_channels
        if not self.use_shortcut:
            self.shortcut = None
        elif stride in (1, (1, 1)):
            self.shortcut = nn.Sequential()
        else:
            self.shortcut = nn.Sequential(nn.AvgPool2d(3, stride=stride, padding=1), nn.Sequential())
        self.block = nn.Sequential(
            conv_norm_act(in_channels, expanded, 1),
            conv_norm_act(expanded, expanded, 3, stride=stride, groups=expanded),
            conv_norm_act(expanded, out_channels, 1, activation=False),
        )
        self.skip_add = FloatFunctional()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.block(x)
        if self.use_shortcut:
            y = self.skip_add.add(y, self.shortcut(x))
        return self.after_block_activation(self.after_block_norm(y))


class CPMobile(nn.Module):
    """(B, 1, n_mels, frames) normalised log-mel -> (B, n_classes) logits. Defaults: the published model.

    Stem of two stride-2 3x3 conv-BN-ReLU (in -> base/4 -> base), three stages of CP-Mobile blocks
    (``n_blocks`` per stage, widths ``make_divisible(base * multiplier**stage)``, strides per block name),
    then a 1x1 conv to the classes, BN and global average pooling.
    """

    def __init__(self, n_classes: int = 10, in_channels: int = 1, base_channels: int = 32,
                 channels_multiplier: float = 2.3, expansion_rate: int = 3, n_blocks=(3, 2, 1),
                 strides=None):
        super().__init__()
        strides = {"b2": (2, 2), "b4": (2, 1)} if strides is None else dict(strides)
        base_channels = make_divisible(base_channels, 8)
        widths = [make_divisible(base_channels * channels_multiplier ** stage, 8) for stage in range(len(n_blocks))]
        self.quant = QuantStub()
        self.dequant = DeQuantStub()
        self.in_c = nn.Sequential(
            conv_norm_act(in_channels, base_channels // 4, 3, stride=2),
            conv_norm_act(base_channels // 4, base_channels, 3, stride=2),
        )
        self.stages = nn.Sequential()
        channels, block_index = base_channels, 0
        for stage, (count, width) in enumerate(zip(n_blocks, widths)):
            stage_blocks = nn.Sequential()
            for _ in range(count):
                block_index += 1
                name = f"b{block_index}"
                stage_blocks.add_module(name, CPMobileBlock(channels, width, expansion_rate, strides.get(name, 1)))
                channels = width
            self.stages.add_module(f"s{stage + 1}", stage_blocks)
        self.feed_forward = nn.Sequential(
            nn.Conv2d(channels, n_classes, 1, bias=False),
            nn.BatchNorm2d(n_classes),
            nn.AdaptiveAvgPool2d((1, 1)),
        )
        self.apply(_initialise)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.quant(x)
        x = self.stages(self.in_c(x))
        x = self.feed_forward(x).flatten(1)
        return self.dequant(x)

    def fuse_model(self) -> "CPMobile":
        """Fold every BN (and following ReLU) into its conv, in place; call in eval mode (torch.ao fusion).

        As in torch 1.11 (the authors' version), the folded biases stay trainable parameters for QAT.
        """
        groups = [["0.0", "0.1", "0.2"], ["1.0", "1.1", "1.2"]]
        fuse_modules(self.in_c, groups, inplace=True)
        for stage in self.stages:
            for block in stage:
                fuse_modules(block.block, [["0.0", "0.1", "0.2"], ["1.0", "1.1", "1.2"], ["2.0", "2.1"]],
                             inplace=True)
        fuse_modules(self.feed_forward, [["0", "1"]], inplace=True)
        for module in self.modules():
            if isinstance(module, nn.Conv2d) and module.bias is not None:
                module.bias.requires_grad_(True)
        return self

    @classmethod
    def load_official(cls, path: str | Path, **kwargs) -> "CPMobile":
        """The model with the weights of an official Lightning checkpoint (``model.*`` keys), strictly."""
        checkpoint = load_torch_file(path, weights_only=True, what="CP-Mobile checkpoint")
        model = cls(**kwargs)
        load_state_dict_by_name(model, checkpoint, prefix="model.", strict=True)
        return model


def _initialise(module: nn.Module) -> None:
    """The official init: Kaiming-normal (fan out) convs, unit/zero norms, N(0, 0.01) linears."""
    if isinstance(module, nn.Conv2d):
        nn.init.kaiming_normal_(module.weight, mode="fan_out")
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, (nn.BatchNorm2d, nn.GroupNorm, nn.LayerNorm)):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Linear):
        nn.init.normal_(module.weight, 0, 0.01)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
