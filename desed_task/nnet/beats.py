"""BEATs (Chen et al., 2023) as the DCASE 2023 embedding extractor (``BEATs_iter3_plus_AS2M.pt``).

Waveform x 2^15 -> 128-bin Kaldi fbank (povey window) -> ``(x - 15.41663) / (2 * 6.55582)`` -> 16x16
patches with stride 16 (62 x 8 for 10 s, flattened time-major) -> LayerNorm(512) -> ``post_extract_proj``
-> convolutional positional embedding (weight-normalised, 128 taps, 16 groups) -> 12 post-norm
(deep-norm) transformer layers with bucketed relative position bias, gated per query
(``grep_linear``, ``grep_a``), computed once in layer 0 and reused by all layers.
Outputs: ``frame`` (B, 768, 496), ``global`` = mean over tokens (B, 768).
State-dict names are the official ones (``{"cfg", "model"}`` file, ``model`` loads strictly).
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass, fields

import torch
import torch.nn.functional as F
from torch import nn

from desed_task.features.kaldi import kaldi_fbank
from desed_task.nnet.official_weights import check_keys, read_official_file
from desed_task.utils.errors import CheckpointKeyMismatch

log = logging.getLogger(__name__)

FBANK_MEAN = 15.41663
FBANK_STD = 6.55582


@dataclass
class BEATsConfig:
    """The ``cfg`` of a BEATs checkpoint; defaults are those of ``BEATs_iter3_plus_AS2M.pt``.

    Keys of a checkpoint's cfg that this implementation does not use are logged and ignored.
    """

    input_patch_size: int = 16
    embed_dim: int = 512
    conv_bias: bool = False
    encoder_layers: int = 12
    encoder_embed_dim: int = 768
    encoder_ffn_embed_dim: int = 3072
    encoder_attention_heads: int = 12
    activation_fn: str = "gelu"
    layer_wise_gradient_decay_ratio: float = 0.6
    layer_norm_first: bool = False
    deep_norm: bool = True
    dropout: float = 0.0
    attention_dropout: float = 0.0
    activation_dropout: float = 0.0
    encoder_layerdrop: float = 0.05
    dropout_input: float = 0.0
    conv_pos: int = 128
    conv_pos_groups: int = 16
    relative_position_embedding: bool = True
    num_buckets: int = 320
    max_distance: int = 800
    gru_rel_pos: bool = True
    finetuned_model: bool = False
    predictor_dropout: float = 0.1
    predictor_class: int = 527

    @classmethod
    def from_dict(cls, cfg: dict) -> "BEATsConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(cfg) - known)
        if unknown:
            log.warning("BEATs config keys not used by this implementation: %s", unknown)
        return cls(**{key: value for key, value in cfg.items() if key in known})


def _scale_gradient(x: torch.Tensor, ratio: float) -> torch.Tensor:
    """Identity forward, gradient times ``ratio`` (fairseq's GradMultiply)."""
    return x if ratio == 1.0 else x * ratio + x.detach() * (1.0 - ratio)


class WeightNormConv1d(nn.Module):
    """Conv1d with ``weight = weight_v * weight_g / ||weight_v||`` (norm over all dims but the last),
    the parametrisation of ``nn.utils.weight_norm(conv, dim=2)`` with its state-dict names."""

    def __init__(self, channels: int, kernel: int, groups: int):
        super().__init__()
        conv = nn.Conv1d(channels, channels, kernel, padding=kernel // 2, groups=groups)
        nn.init.normal_(conv.weight, mean=0, std=math.sqrt(4 / (kernel * channels)))
        self.padding, self.groups = kernel // 2, groups
        self.weight_v = nn.Parameter(conv.weight.detach().clone())
        self.weight_g = nn.Parameter(conv.weight.detach().norm(dim=(0, 1), keepdim=True))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.weight_v * (self.weight_g / self.weight_v.norm(dim=(0, 1), keepdim=True))
        return F.conv1d(x, weight, self.bias, padding=self.padding, groups=self.groups)


class MultiheadAttention(nn.Module):
    """Self-attention with BEATs's gated relative position bias (names of the official module)."""

    def __init__(self, cfg: BEATsConfig, has_relative_attention_bias: bool):
        super().__init__()
        dim, heads = cfg.encoder_embed_dim, cfg.encoder_attention_heads
        self.heads, self.head_dim = heads, dim // heads
        self.scaling = self.head_dim ** -0.5
        self.num_buckets, self.max_distance = cfg.num_buckets, cfg.max_distance
        self.dropout = nn.Dropout(cfg.attention_dropout)
        if has_relative_attention_bias:
            self.relative_attention_bias = nn.Embedding(cfg.num_buckets, heads)
        self.k_proj, self.v_proj, self.q_proj, self.out_proj = (nn.Linear(dim, dim) for _ in range(4))
        self.gru_rel_pos = cfg.gru_rel_pos
        if cfg.gru_rel_pos:
            self.grep_linear = nn.Linear(self.head_dim, 8)
            self.grep_a = nn.Parameter(torch.ones(1, heads, 1, 1))

    def _buckets(self, relative: torch.Tensor) -> torch.Tensor:
        half = self.num_buckets // 2
        buckets = (relative > 0).long() * half
        distance = relative.abs()
        max_exact = half // 2
        large = max_exact + (torch.log(distance.float() / max_exact) / math.log(self.max_distance / max_exact)
                             * (half - max_exact)).long()
        large = torch.clamp(large, max=half - 1)
        return buckets + torch.where(distance < max_exact, distance, large)

    def compute_bias(self, length: int) -> torch.Tensor:
        """(heads, length, length) relative position bias."""
        position = torch.arange(length, device=self.relative_attention_bias.weight.device)
        buckets = self._buckets(position[None, :] - position[:, None])
        return self.relative_attention_bias(buckets).permute(2, 0, 1)

    def forward(self, x: torch.Tensor, position_bias: torch.Tensor | None):
        """x (T, B, C) -> (T, B, C); also returns the (B * heads, T, T) position bias for the next layers."""
        length, batch, dim = x.shape
        if position_bias is None and hasattr(self, "relative_attention_bias"):
            position_bias = self.compute_bias(length).unsqueeze(0).expand(batch, -1, -1, -1)
            position_bias = position_bias.reshape(batch * self.heads, length, length)
        alpha = 32.0
        query = self.q_proj(x)
        q = (query * self.scaling / alpha).reshape(length, batch * self.heads, self.head_dim).transpose(0, 1)
        k = self.k_proj(x).reshape(length, batch * self.heads, self.head_dim).transpose(0, 1)
        v = self.v_proj(x).reshape(length, batch * self.heads, self.head_dim).transpose(0, 1)
        weights = torch.bmm(q, k.transpose(1, 2))
        weights = (weights - weights.max(dim=-1, keepdim=True).values) * alpha
        if position_bias is not None:
            bias = position_bias
            if self.gru_rel_pos:
                heads_query = query.reshape(length, batch, self.heads, self.head_dim).permute(1, 2, 0, 3)
                gates = self.grep_linear(heads_query).reshape(batch, self.heads, length, 2, 4).sum(-1)
                gate_a, gate_b = torch.sigmoid(gates).chunk(2, dim=-1)
                gate = gate_a * (gate_b * self.grep_a - 1.0) + 2.0
                bias = gate.reshape(batch * self.heads, length, 1) * position_bias
            weights = weights + bias
        attention = self.dropout(F.softmax(weights, dim=-1))
        out = torch.bmm(attention, v).transpose(0, 1).reshape(length, batch, dim)
        return self.out_proj(out), position_bias


class EncoderLayer(nn.Module):
    def __init__(self, cfg: BEATsConfig, has_relative_attention_bias: bool):
        super().__init__()
        if cfg.layer_norm_first or cfg.activation_fn != "gelu":
            raise ValueError("only the post-norm GELU layers of the BEATs checkpoints are implemented")
        dim = cfg.encoder_embed_dim
        self.self_attn = MultiheadAttention(cfg, has_relative_attention_bias)
        self.self_attn_layer_norm = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, cfg.encoder_ffn_embed_dim)
        self.fc2 = nn.Linear(cfg.encoder_ffn_embed_dim, dim)
        self.final_layer_norm = nn.LayerNorm(dim)
        self.dropout, self.activation_dropout = nn.Dropout(cfg.dropout), nn.Dropout(cfg.activation_dropout)
        self.residual_scale = math.pow(2 * cfg.encoder_layers, 0.25) if cfg.deep_norm else 1.0

    def forward(self, x: torch.Tensor, position_bias: torch.Tensor | None):
        attended, position_bias = self.self_attn(x, position_bias)
        x = self.self_attn_layer_norm(x * self.residual_scale + self.dropout(attended))
        hidden = self.activation_dropout(F.gelu(self.fc1(x).float()).type_as(x))
        x = self.final_layer_norm(x * self.residual_scale + self.dropout(self.fc2(hidden)))
        return x, position_bias


class TransformerEncoder(nn.Module):
    def __init__(self, cfg: BEATsConfig):
        super().__init__()
        self.cfg = cfg
        self.pos_conv = nn.Sequential(WeightNormConv1d(cfg.encoder_embed_dim, cfg.conv_pos, cfg.conv_pos_groups))
        self.layers = nn.ModuleList(EncoderLayer(cfg, cfg.relative_position_embedding and i == 0)
                                    for i in range(cfg.encoder_layers))
        if cfg.relative_position_embedding:  # one table, shared (and saved) by every layer, as the original
            for layer in self.layers[1:]:
                layer.self_attn.relative_attention_bias = self.layers[0].self_attn.relative_attention_bias
        self.layer_norm = nn.LayerNorm(cfg.encoder_embed_dim)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        conv = self.pos_conv(x.transpose(1, 2))
        if self.cfg.conv_pos % 2 == 0:  # SamePad: drop the extra last step of an even kernel
            conv = conv[..., :-1]
        x = self.dropout(self.layer_norm(x + F.gelu(conv).transpose(1, 2))).transpose(0, 1)
        position_bias = None
        for layer in self.layers:
            x = _scale_gradient(x, self.cfg.layer_wise_gradient_decay_ratio)
            if self.training and self.cfg.encoder_layerdrop > 0 and float(torch.rand(())) <= self.cfg.encoder_layerdrop:
                continue
            x, position_bias = layer(x, position_bias)
        return x.transpose(0, 1)


class BEATs(nn.Module):
    """BEATs: waveform (B, samples) at 16 kHz -> {"frame": (B, 768, patches), "global": (B, 768)}."""

    def __init__(self, cfg: BEATsConfig | dict | None = None):
        super().__init__()
        cfg = BEATsConfig.from_dict(cfg) if isinstance(cfg, dict) else (cfg or BEATsConfig())
        if cfg.finetuned_model:
            raise ValueError("fine-tuned BEATs checkpoints (with a predictor) are not embedding extractors here")
        self.cfg = cfg
        self.patch_embedding = nn.Conv2d(1, cfg.embed_dim, cfg.input_patch_size, stride=cfg.input_patch_size,
                                         bias=cfg.conv_bias)
        self.layer_norm = nn.LayerNorm(cfg.embed_dim)
        self.post_extract_proj = (nn.Linear(cfg.embed_dim, cfg.encoder_embed_dim)
                                  if cfg.embed_dim != cfg.encoder_embed_dim else None)
        self.dropout_input = nn.Dropout(cfg.dropout_input)
        self.encoder = TransformerEncoder(cfg)

    @staticmethod
    def fbank(waveform: torch.Tensor) -> torch.Tensor:
        """(B, samples) -> normalised (B, frames, 128) Kaldi fbank of the 16-bit-scaled waveform."""
        fbank = kaldi_fbank(waveform * 2 ** 15, num_mel_bins=128, window_type="povey")
        return (fbank - FBANK_MEAN) / (2 * FBANK_STD)

    def forward(self, waveform: torch.Tensor) -> dict[str, torch.Tensor]:
        patches = self.patch_embedding(self.fbank(waveform).unsqueeze(1))
        x = self.layer_norm(patches.flatten(2).transpose(1, 2))
        if self.post_extract_proj is not None:
            x = self.post_extract_proj(x)
        x = self.encoder(self.dropout_input(x))
        return {"frame": x.transpose(1, 2), "global": x.mean(dim=1)}

    @classmethod
    def load_official(cls, path, **cfg) -> "BEATs":
        """A BEATs built from the ``cfg`` of an official ``{"cfg", "model"}`` file (``BEATs_iter3_plus_AS2M.pt``),
        updated by ``cfg`` (e.g. dropout settings), with the file's ``model`` weights, strictly (the names are
        the official ones)."""
        checkpoint = read_official_file(path, "beats")
        if "cfg" not in checkpoint or "model" not in checkpoint:
            raise CheckpointKeyMismatch(f"{path}: expected a BEATs file with 'cfg' and 'model' entries, got "
                                        f"{sorted(checkpoint)}")
        model = cls({**checkpoint["cfg"], **cfg})
        result = model.load_state_dict(checkpoint["model"], strict=False)
        check_keys("BEATs", path, result.missing_keys, result.unexpected_keys)
        return model
