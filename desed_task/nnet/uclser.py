"""UCLSER encoders (Fonseca et al., ICASSP 2021): VGG-like, CRNN and one-channel ResNet-18, plus the
projection head of contrastive pre-training.

Every encoder takes log-mel patches (batch, 1, 101 frames, 96 bands), returns class logits from
``forward`` and the representation ``h`` from ``embed``. Module names reproduce the state-dict keys of
the released ``VGG_best.pth`` / ``CRNN_best.pth`` (and torchvision's ResNet names), so
``Model.load_official(path)`` loads them strictly. Those files are the contrastively pre-trained
encoders: their 20-class heads (``dense_out``, ``dense``) were never trained (random initialisation,
their output is discarded during pre-training) and are replaced for linear evaluation.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from desed_task.nnet.checkpoint import load_state_dict_by_name
from desed_task.utils.files import load_torch_file

N_CLASSES = 20


class ConvBNReLU(nn.Module):
    """Conv2d (no bias, 'same' padding) -> BatchNorm2d -> ReLU -> optional max-pool (kernel = stride)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, pooling=None):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)
        self.pool = nn.MaxPool2d(pooling) if pooling is not None else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(F.relu(self.bn(self.conv(x))))


class UCLSEREncoder(nn.Module):
    """Common interface: ``embed(x) -> h``, ``forward(x) = classifier(embed(x))`` (logits, no softmax).

    Subclasses set ``classifier_name`` (the official name of the head) and ``embed_dim``.
    """

    classifier_name = "classifier"
    embed_dim: int

    @property
    def classifier(self) -> nn.Linear:
        return getattr(self, self.classifier_name)

    def reset_classifier(self, n_classes: int = N_CLASSES) -> nn.Linear:
        """A fresh Linear(embed_dim, n_classes) head (linear evaluation, fine-tuning); returns it."""
        head = nn.Linear(self.embed_dim, n_classes)
        setattr(self, self.classifier_name, head)
        return head

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.embed(x))

    def encoder_parameters(self):
        """Parameters of everything but the classifier."""
        head = {id(p) for p in self.classifier.parameters()}
        return [p for p in self.parameters() if id(p) not in head]

    @classmethod
    def load_official(cls, path: str | Path, **kwargs) -> "UCLSEREncoder":
        """Build the model (``kwargs`` go to the constructor) and load an official ``*_best.pth`` strictly."""
        model = cls(**kwargs)
        load_official_state_dict(model, path)
        return model


def read_state_dict(path: str | Path) -> dict:
    """A plain state dict saved by ``torch.save`` (legacy or zip format, possibly from a GPU), on the CPU."""
    return load_torch_file(path, weights_only=True, what="state dict")


def load_official_state_dict(model: nn.Module, path: str | Path) -> None:
    """Strictly load ``path`` into ``model``; any mismatch raises a KeyError naming the file and listing
    the missing keys, the unexpected keys and the keys whose shapes differ."""
    state = read_state_dict(path)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong_shapes = [f"{key}: file {tuple(value.shape)} vs model {tuple(expected[key].shape)}"
                    for key, value in state.items()
                    if key in expected and getattr(value, "shape", None) != expected[key].shape]
    if missing or unexpected or wrong_shapes:
        raise KeyError(f"{path} does not fit {type(model).__name__}: missing keys {missing}, "
                       f"unexpected keys {unexpected}, shape mismatches {wrong_shapes}")
    load_state_dict_by_name(model, state, prefix="", strict=True)


class VGGLike(UCLSEREncoder):
    """VGG-like encoder (official ``VGGlike_small_emb_relu``): six 3x3 conv blocks, max-pools after the
    3rd, 5th and 6th, global max ++ average pooling (max first), ``dense1`` + ReLU -> h (512).

    ``channels`` scales the conv widths (the paper's: 32, 32, 32, 64, 64, 128); 290,292 parameters.
    """

    classifier_name = "dense_out"
    POOL_AFTER = (2, 4, 5)

    def __init__(self, n_classes: int = N_CLASSES, channels: Sequence[int] = (32, 32, 32, 64, 64, 128),
                 embed_dim: int = 512):
        super().__init__()
        if len(channels) != 6:
            raise ValueError(f"VGGLike needs 6 conv widths, got {list(channels)}")
        widths = [1, *channels]
        for index in range(6):
            pooling = (2, 2) if index in self.POOL_AFTER else None
            self.add_module(f"conv{index}", ConvBNReLU(widths[index], widths[index + 1], 3, pooling))
        self.embed_dim = embed_dim
        self.dense1 = nn.Linear(2 * channels[-1], embed_dim)
        self.dense_out = nn.Linear(embed_dim, n_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        for index in range(6):
            x = getattr(self, f"conv{index}")(x)
        pooled = torch.cat([x.amax(dim=(2, 3)), x.mean(dim=(2, 3))], dim=1)
        return F.relu(self.dense1(pooled))


class UCLSERCRNN(UCLSEREncoder):
    """CRNN encoder (official ``CRNN_tagger``): three 5x5 conv blocks (128 channels, max-pools (2,5),
    (2,4), (2,2)), a bidirectional GRU ``rnn1`` (64) over time, h = forward output at the last step times
    backward output at the last step (element-wise, Keras ``merge_mode='mul'``) -> 64.

    The conv map (B, C, T, F) is flattened frequency-major (feature f * C + c) as the official reshape
    of the (B, T, F, C) permutation. 948,116 parameters.
    """

    classifier_name = "dense"

    def __init__(self, n_classes: int = N_CLASSES, channels: int = 128, hidden: int = 64):
        super().__init__()
        self.conv1 = ConvBNReLU(1, channels, 5, (2, 5))
        self.conv2 = ConvBNReLU(channels, channels, 5, (2, 4))
        self.conv3 = ConvBNReLU(channels, channels, 5, (2, 2))
        self.rnn1 = nn.GRU(input_size=2 * channels, hidden_size=hidden, num_layers=1, batch_first=True,
                           bidirectional=True)
        self.embed_dim = hidden
        self.dense = nn.Linear(hidden, n_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv3(self.conv2(self.conv1(x)))
        x = x.permute(0, 2, 3, 1)
        x = x.reshape(x.shape[0], x.shape[1], -1)
        out, _ = self.rnn1(x)
        last = out[:, -1].view(out.shape[0], 2, self.embed_dim)
        return last[:, 0] * last[:, 1]


class BasicBlock(nn.Module):
    """torchvision's ResNet basic block (names conv1, bn1, conv2, bn2, downsample.{0,1})."""

    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = None
        if stride != 1 or in_planes != planes:
            self.downsample = nn.Sequential(nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False),
                                            nn.BatchNorm2d(planes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + identity)


class ResNet18Audio(UCLSEREncoder):
    """ResNet-18 (torchvision layout and key names) with one input channel; h = global average pool (512).

    Convs use Kaiming-normal (fan_out) initialisation and BN weight 1 / bias 0, as torchvision and the
    official ``resnetAudio``. 11,180,500 parameters.
    """

    classifier_name = "fc"

    def __init__(self, n_classes: int = N_CLASSES, layers: Sequence[int] = (2, 2, 2, 2)):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        in_planes = 64
        for index, (planes, blocks) in enumerate(zip((64, 128, 256, 512), layers), start=1):
            stride = 1 if index == 1 else 2
            stage = []
            for block in range(blocks):
                stage.append(BasicBlock(in_planes, planes, stride if block == 0 else 1))
                in_planes = planes
            self.add_module(f"layer{index}", nn.Sequential(*stage))
        self.embed_dim = 512
        self.fc = nn.Linear(512, n_classes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(F.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return x.mean(dim=(2, 3))


class ProjectionHead(nn.Module):
    """Contrastive projection head (official ``MLPHead``, head_size 2): Linear(in, 512) -> BatchNorm1d ->
    ReLU -> Linear(512, out), then L2 normalisation. Used in pre-training only."""

    def __init__(self, in_dim: int, hidden_dim: int = 512, out_dim: int = 512):
        super().__init__()
        self.net1 = nn.Sequential(nn.Linear(in_dim, hidden_dim), nn.BatchNorm1d(hidden_dim), nn.ReLU(inplace=True),
                                  nn.Linear(hidden_dim, out_dim))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.net1(h), p=2, dim=1)


ENCODERS = {"vgg_relu": VGGLike, "crnn": UCLSERCRNN, "res18": ResNet18Audio}


def build_uclser_encoder(network: str, n_classes: int = N_CLASSES, **kwargs) -> UCLSEREncoder:
    """Encoder by its official yaml name (``vgg_relu``, ``crnn``, ``res18``)."""
    if network not in ENCODERS:
        raise ValueError(f"unknown UCLSER network {network!r}; choose one of {sorted(ENCODERS)}")
    return ENCODERS[network](n_classes=n_classes, **kwargs)
