"""ATST-Frame (Li & Li, 2024), the frame-level audio transformer fine-tuned by ATST-SED, in pure torch,
and ``ATSTSED``, the CRNN that fuses it (Shao, Li & Li, ICASSP 2024).

Same layers, parameter count (85,419,264 in 138 tensors for the base model) and state-dict names as
the official ``FrameAST`` (Audio-WestlakeU/audiossl, copied into ATST-SED), so ``atst_as2M.ckpt`` loads
strictly through ``ATSTFrame.load_official``.

Input: (B, 64, T) normalised ATST mel frames (``desed_task.features.ATSTFrontend``). Tokens are 64 mel
bins x 4 frames flattened mel-major (element [mel m, frame t] -> m * 4 + t), so the output is
(B, 768, T // 4) at 25 Hz. The learned positional table has ``max_tokens + 1`` slots and token i uses
slot i + 1 (slot 0 is unused, as in the official ``pos_type="cut"``); the official model therefore fails
beyond 1003 frames. Here longer inputs are cut into chunks of ``chunk_frames`` frames, each encoded
independently, and the frame outputs concatenated.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.checkpoint import checkpoint

from desed_task.nnet.crnn import CRNN
from desed_task.utils.errors import CheckpointKeyMismatch, MissingInput
from desed_task.utils.files import load_torch_file

log = logging.getLogger(__name__)

LAYOUTS = {
    # name: (prefix of the encoder keys, sub-prefixes under it that are skipped)
    "pretraining": ("model.teacher.encoder.", ("cls_token",)),
    "c2f": ("encoder.encoder.frame_encoder.", ()),
    "frame": ("encoder.encoder.", ("teacher_module.",)),
}
"""The official checkpoint layouts, checked in this order: ATST-Frame pre-training (``model.teacher.encoder.*``,
whose final norm is ``norm`` instead of ``norm_frame``), ATST-C2F (``encoder.encoder.frame_encoder.*``) and
the AudioSet fine-tuned ATST-Frame ``atst_as2M.ckpt`` (``encoder.encoder.*``)."""


class ATSTAttention(nn.Module):
    """Multi-head self-attention without qkv bias (official ``Attention``: ``qkv``, ``proj``)."""

    def __init__(self, dim: int, num_heads: int, dropout: float = 0.0):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"embedding width {dim} is not a multiple of {num_heads} heads")
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=False)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, tokens, dim = x.shape
        qkv = self.qkv(x).reshape(batch, tokens, 3, self.num_heads, dim // self.num_heads).permute(2, 0, 3, 1, 4)
        x = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])
        return self.proj_drop(self.proj(x.transpose(1, 2).reshape(batch, tokens, dim)))


class ATSTMlp(nn.Module):
    """fc1 -> exact GELU -> fc2 (official ``Mlp``)."""

    def __init__(self, dim: int, hidden: int, dropout: float = 0.0):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


class ATSTBlock(nn.Module):
    """Pre-norm transformer block: ``x + attn(norm1(x))`` then ``x + mlp(norm2(x))`` (LayerNorm eps 1e-6).

    ``drop_path`` is the per-sample stochastic depth of the official block (0 in the ATST-SED configs).
    """

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, dropout: float = 0.0, drop_path: float = 0.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = ATSTAttention(dim, num_heads, dropout)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = ATSTMlp(dim, int(dim * mlp_ratio), dropout)
        self.drop_path = drop_path

    def _residual(self, y: torch.Tensor) -> torch.Tensor:
        if not self.training or self.drop_path == 0.0:
            return y
        keep = 1.0 - self.drop_path
        mask = torch.rand((y.shape[0],) + (1,) * (y.ndim - 1), dtype=y.dtype, device=y.device) < keep
        return y * mask.to(y.dtype) / keep

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self._residual(self.attn(self.norm1(x)))
        return x + self._residual(self.mlp(self.norm2(x)))


class ATSTPatchEmbed(nn.Module):
    """(B, n_mels, T) -> (B, T // patch_frames, dim): mel-major flattening of n_mels x patch_frames patches,
    then ``Linear`` (official ``PatchEmbed_v2``; its ``patch_embed`` name is kept)."""

    def __init__(self, n_mels: int, patch_frames: int, dim: int):
        super().__init__()
        self.n_mels = n_mels
        self.patch_frames = patch_frames
        self.patch_embed = nn.Linear(n_mels * patch_frames, dim)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        batch, n_mels, frames = features.shape
        tokens = frames // self.patch_frames
        patches = features[:, :, : tokens * self.patch_frames].reshape(batch, n_mels, tokens, self.patch_frames)
        return self.patch_embed(patches.permute(0, 2, 1, 3).reshape(batch, tokens, n_mels * self.patch_frames))


class ATSTFrame(nn.Module):
    """ATST-Frame encoder: (B, n_mels, T) normalised mel -> (B, embed_dim, T // patch_frames) frame embeddings.

    Args:
        embed_dim, depth, num_heads, mlp_ratio: transformer size (base model: 768, 12, 12, 4).
        n_mels, patch_frames: token shape (64 mel bins x 4 frames).
        max_frames: mel frames the positional table was sized for (1001: 10 s at hop 160); it holds
            ``max_frames // patch_frames + 1`` slots.
        chunk_frames: inputs with more tokens than the table holds are encoded in chunks of this many
            frames. 1000 (default) keeps every token on the global 4-frame grid, so the output has exactly
            T // 4 frames aligned with the input; 1001 reproduces audiossl's chunking (10 s chunks, whose
            last frame is dropped, so later chunks drift by 10 ms each).
        dropout: dropout and stochastic-depth rate (official ``atst_dropout``; 0 in ATST-SED).
        checkpointing: recompute each block's activations in the backward pass instead of keeping them
            (activation checkpointing; same gradients, far less training memory).
    """

    def __init__(
        self,
        embed_dim: int = 768,
        depth: int = 12,
        num_heads: int = 12,
        mlp_ratio: float = 4.0,
        n_mels: int = 64,
        patch_frames: int = 4,
        max_frames: int = 1001,
        chunk_frames: int = 1000,
        dropout: float = 0.0,
        checkpointing: bool = False,
    ):
        super().__init__()
        self.embed_dim = embed_dim
        self.patch_frames = patch_frames
        self.max_tokens = max_frames // patch_frames
        if chunk_frames < patch_frames or chunk_frames // patch_frames > self.max_tokens:
            raise ValueError(f"chunk_frames {chunk_frames} must give 1 to {self.max_tokens} tokens")
        self.chunk_frames = chunk_frames
        self.checkpointing = checkpointing
        self.patch_embed = ATSTPatchEmbed(n_mels, patch_frames, embed_dim)
        self.mask_embed = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, self.max_tokens + 1, embed_dim))
        self.pos_drop = nn.Dropout(dropout)
        rates = torch.linspace(0, dropout, depth).tolist()
        self.blocks = nn.ModuleList(ATSTBlock(embed_dim, num_heads, mlp_ratio, dropout, rate) for rate in rates)
        self.norm_frame = nn.LayerNorm(embed_dim, eps=1e-6)
        self._init_weights()

    def _init_weights(self) -> None:
        """Official initialisation: truncated normal (std 0.02) for linear weights and the embeddings."""
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.trunc_normal_(self.mask_embed, std=0.02)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def _encode(self, features: torch.Tensor) -> torch.Tensor:
        """At most ``max_tokens`` tokens: (B, n_mels, T) -> (B, T // patch_frames, embed_dim)."""
        x = self.patch_embed(features)
        x = self.pos_drop(x + self.pos_embed[:, 1 : x.shape[1] + 1])
        for block in self.blocks:
            if self.checkpointing and torch.is_grad_enabled():
                x = checkpoint(block, x, use_reentrant=False)
            else:
                x = block(x)
        return self.norm_frame(x)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        if features.ndim != 3:
            raise ValueError(f"ATSTFrame expects (batch, n_mels, frames) features, got shape {tuple(features.shape)}")
        frames = features.shape[-1]
        if frames // self.patch_frames <= self.max_tokens:
            return self._encode(features).transpose(1, 2)
        chunks = [features[..., start : start + self.chunk_frames] for start in range(0, frames, self.chunk_frames)]
        outputs = [self._encode(chunk) for chunk in chunks if chunk.shape[-1] >= self.patch_frames]
        return torch.cat(outputs, dim=1).transpose(1, 2)

    @staticmethod
    def official_state_dict(checkpoint: Mapping) -> dict[str, torch.Tensor]:
        """The FrameAST weights of an official checkpoint (or its ``state_dict``), under our (= FrameAST) names.

        Recognises the layouts in ``LAYOUTS``; keys outside the encoder prefix (``head.*``, the student,
        projectors) are ignored. Raises ``KeyError`` when no layout matches.
        """
        state = checkpoint["state_dict"] if isinstance(checkpoint.get("state_dict"), Mapping) else checkpoint
        for name, (prefix, skipped) in LAYOUTS.items():
            selected = {key[len(prefix):]: value for key, value in state.items() if key.startswith(prefix)}
            if not selected:
                continue
            mapped = {}
            for key, value in selected.items():
                if key.startswith(skipped):
                    continue
                if name == "pretraining" and key.startswith("norm."):
                    key = "norm_frame." + key[len("norm."):]
                mapped[key] = value
            log.info("ATST checkpoint layout %r: %d encoder tensors", name, len(mapped))
            return mapped
        prefixes = ", ".join(prefix + "*" for prefix, _ in LAYOUTS.values())
        sample = sorted(state)[:5]
        raise CheckpointKeyMismatch(f"no ATST-Frame encoder weights found (expected keys {prefixes}); "
                                    f"first keys: {sample}")

    def load_official_state_dict(self, checkpoint: Mapping) -> None:
        """Strictly load an official checkpoint dict; an error lists every missing, unexpected or mis-shaped key."""
        weights = self.official_state_dict(checkpoint)
        own = self.state_dict()
        missing = sorted(set(own) - set(weights))
        unexpected = sorted(set(weights) - set(own))
        mismatched = sorted(f"{key} {tuple(weights[key].shape)} (expected {tuple(own[key].shape)})"
                            for key in set(own) & set(weights) if weights[key].shape != own[key].shape)
        if missing or unexpected or mismatched:
            raise CheckpointKeyMismatch(f"ATST-Frame checkpoint does not match the model: missing keys {missing}, "
                           f"unexpected keys {unexpected}, mismatched shapes {mismatched}")
        self.load_state_dict(weights, strict=True)

    def load_official_file(self, path: str | Path) -> None:
        """``load_official_state_dict`` of a checkpoint file; errors name the file."""
        if not Path(path).is_file():
            raise MissingInput(f"ATST checkpoint {path}: file not found")
        checkpoint = load_torch_file(path, weights_only=False, what="ATST checkpoint")
        try:
            self.load_official_state_dict(checkpoint)
        except KeyError as error:
            raise CheckpointKeyMismatch(f"{path}: {error.args[0]}") from None

    @classmethod
    def load_official(cls, path: str | Path, **kwargs) -> "ATSTFrame":
        """An ``ATSTFrame(**kwargs)`` with the weights of an official checkpoint file (e.g. ``atst_as2M.ckpt``)."""
        model = cls(**kwargs)
        model.load_official_file(path)
        return model


class ATSTBranch(nn.Module):
    """Holds the encoder as ``atst`` (so its weights are ``atst_frame.atst.*`` in ATSTSED, as officially named).

    ``freeze()`` (stage 1): no gradients for the encoder, which then runs without autograd and stays in eval mode.
    """

    def __init__(self, atst: ATSTFrame):
        super().__init__()
        self.atst = atst
        self.frozen = False

    def freeze(self) -> None:
        self.frozen = True
        self.atst.requires_grad_(False)
        self.atst.eval()

    def train(self, mode: bool = True) -> "ATSTBranch":
        super().train(mode)
        if self.frozen:
            self.atst.eval()
        return self

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        if self.frozen:
            with torch.no_grad():
                return self.atst(features)
        return self.atst(features)


ATSTSED_CRNN_DEFAULTS = {
    "activation": "cg", "use_embeddings": True, "embedding_type": "frame", "aggregation_type": "pool1d",
}
"""What ATST-SED's CRNN sets: context gating and pool1d late fusion of the frame embeddings."""


class ATSTSED(CRNN):
    """ATST-SED: the baseline CRNN (context gating) fused with ATST-Frame, official names and sizes.

    ``forward(crnn_features (B, 128, T), atst_features (B, 64, T'))`` -> (strong (B, nclass, frames), weak).
    The CNN output (B, frames, 128) is concatenated with the ATST output average-pooled to the CNN frame
    count (B, frames, 768) and projected back by ``cat_tf`` (896 -> 128) before the BiGRU (the CRNN's
    ``pool1d`` fusion). 1,227,236 parameters outside the ATST and 86,646,500 in all with the published config.

    Args:
        atst: ``ATSTFrame`` arguments (default: the base model); its ``embed_dim`` is the fused width.
        atst_checkpointing: activation checkpointing of the ATST blocks (training memory).
        atst_dropout: the official ``atst_dropout`` (dropout and stochastic depth of the ATST).
        atst_init: optional official ATST-Frame checkpoint (``atst_as2M.ckpt``) to load into the encoder.
        freeze_atst: no gradients for the ATST and eval mode for it (ATST-SED stage 1).
        **crnn: ``CRNN`` arguments; ``ATSTSED_CRNN_DEFAULTS`` apply unless given.
    """

    def __init__(
        self,
        atst: Mapping | None = None,
        atst_checkpointing: bool = False,
        atst_dropout: float = 0.0,
        atst_init: str | Path | None = None,
        freeze_atst: bool = False,
        **crnn,
    ):
        encoder = ATSTFrame(**dict(atst or {}), dropout=atst_dropout, checkpointing=atst_checkpointing)
        super().__init__(**{**ATSTSED_CRNN_DEFAULTS, **crnn, "embedding_size": encoder.embed_dim})
        self.atst_frame = ATSTBranch(encoder)
        if atst_init:
            encoder.load_official_file(atst_init)
        if freeze_atst:
            self.atst_frame.freeze()

    def forward(self, crnn_features: torch.Tensor, atst_features: torch.Tensor, pad_mask: torch.Tensor | None = None):
        return super().forward(crnn_features, pad_mask=pad_mask, embeddings=self.atst_frame(atst_features))
