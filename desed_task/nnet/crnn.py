"""The DCASE task 4 baseline CRNN, with layer-wise access for IRCT and late fusion of pretrained embeddings.

Same layers, parameter count (1,112,420 with the default config) and state-dict names as the
official model, so official checkpoints load as they are. The network is a chain of stages; the
output after each stage is a named placement (``CRNN.PLACEMENTS``), and ``encode`` / ``classify``
split the chain at any placement. ``forward`` is ``classify(x, "input")``, so there is one forward path.

Late fusion (DCASE 2022 / 2023 pretrained baselines, ATST-SED): with ``use_embeddings`` the embeddings of
a pretrained model are merged into the CNN features right before the BiGRU, with the official modules
``frame_embs_encoder``, ``shrink_emb`` and ``cat_tf``.

Class masks (DCASE 2024, data with missing labels): ``forward(..., class_mask=)`` takes a (B, nclass) bool
mask of the classes each item's dataset annotates; the other classes get -1e30 attention logits and zero
strong and weak outputs, as the official 2024 model does.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from desed_task.nnet.checkpoint import load_state_dict_by_name
from desed_task.nnet.cnn import CNN
from desed_task.nnet.rnn import BidirectionalGRU
from desed_task.utils.files import load_torch_file

ATTENTION_SOFTMAX_DIMS = ("classes", "time")
AGGREGATION_TYPES = ("frame", "global", "pool1d", "interpolate")
EMBEDDING_TYPES = ("frame", "global")


def time_mask(x: torch.Tensor, max_len: int, max_fraction: float) -> torch.Tensor:
    """(B, T, C) with one span of frames zeroed per item ("dropstep", the official 2024 ``TimeMasking``
    with iid masks): span length uniform in [0, min(max_len, floor(max_fraction * T))), start uniform."""
    batch, frames = x.shape[:2]
    limit = min(max_len, int(max_fraction * frames))
    length = torch.rand(batch, device=x.device) * limit
    start = torch.rand(batch, device=x.device) * (frames - length)
    position = torch.arange(frames, device=x.device)
    masked = (position >= start.floor()[:, None]) & (position < (start + length).floor()[:, None])
    return x.masked_fill(masked[..., None], 0.0)


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

    Embeddings (``use_embeddings=True``): ``embedding_type`` says what the caller passes, ``"frame"``
    (B, embedding_size, T_e) or ``"global"`` (B, embedding_size); ``aggregation_type`` says how it is fused
    into the (B, T', C) CNN features ``x``:

    - ``frame`` (2022): ``frame_embs_encoder``, a 1-layer BiGRU of hidden size ``frame_emb_enc_dim``, reads
      the sequence; its output at the last step goes through ``shrink_emb`` (Linear + LayerNorm to C), is
      repeated over the T' frames, concatenated to ``x`` and projected back by ``cat_tf`` (2C -> C);
    - ``global`` (2022): ``shrink_emb`` (Linear(E, C) + LayerNorm), repeated, concatenated, ``cat_tf``;
    - ``pool1d`` (2023, ATST-SED): the sequence is adaptively average-pooled to T' frames, concatenated
      and projected by ``cat_tf`` (C + E -> C);
    - ``interpolate`` (2023): nearest-exact interpolation to T' frames, then as ``pool1d``.

    DCASE 2024 fusion options: ``fusion_dropout`` applies ``dropout`` to the concatenation before ``cat_tf``;
    ``dropstep_recurrent`` > 0 zeroes, in training, one random span of at most ``dropstep_recurrent_len``
    frames (and at most that fraction of the frames) in the CNN sequence and, independently, in the pooled
    embeddings (``time_mask``).

    ``aggregation_type=None`` (default) fuses as ``embedding_type`` says, which is the 2022 package's
    behaviour; the 2023 package defaulted to ``"global"``, which silently routed 2022 frame configs to the
    global path, so a configuration that wants that writes ``aggregation_type: global`` explicitly.
    The fusion belongs to the stage from the last conv block to ``l8``: ``encode`` to ``l8``/``l9`` and
    ``classify`` from ``input``..``l7`` need ``embeddings``; ``classify`` from ``l8``/``l9`` starts after the
    fusion and ignores them, so callers can pass them for every placement.
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
        use_embeddings: bool = False,
        embedding_size: int = 527,
        embedding_type: str = "global",
        frame_emb_enc_dim: int = 512,
        aggregation_type: str | None = None,
        fusion_dropout: bool = False,
        dropstep_recurrent: float = 0.0,
        dropstep_recurrent_len: int = 5,
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
        self.use_embeddings = use_embeddings
        self.embedding_type = embedding_type
        self.aggregation_type = aggregation_type or embedding_type
        self.fusion_dropout = fusion_dropout
        self.dropstep_recurrent, self.dropstep_recurrent_len = dropstep_recurrent, dropstep_recurrent_len
        if use_embeddings:
            self._build_fusion(self.cnn.nb_filters[-1], embedding_size, frame_emb_enc_dim)
        n_conv = self.cnn.n_blocks
        self.placements = ("input", *(f"l{i}" for i in range(1, n_conv + 3)))

    def _build_fusion(self, n_features: int, embedding_size: int, frame_emb_enc_dim: int) -> None:
        """The official fusion modules for ``self.aggregation_type`` (names as in the official CRNN)."""
        if self.embedding_type not in EMBEDDING_TYPES:
            raise ValueError(f"embedding_type must be one of {EMBEDDING_TYPES}, got {self.embedding_type!r}")
        if self.aggregation_type not in AGGREGATION_TYPES:
            raise ValueError(f"aggregation_type must be one of {AGGREGATION_TYPES}, got {self.aggregation_type!r}")
        needed = "global" if self.aggregation_type == "global" else "frame"
        if self.embedding_type != needed:
            raise ValueError(f"aggregation_type {self.aggregation_type!r} fuses {needed} embeddings, "
                             f"but embedding_type is {self.embedding_type!r}")
        if self.aggregation_type == "frame":
            self.frame_embs_encoder = nn.GRU(embedding_size, frame_emb_enc_dim, batch_first=True, bidirectional=True)
            self.shrink_emb = nn.Sequential(nn.Linear(2 * frame_emb_enc_dim, n_features), nn.LayerNorm(n_features))
        elif self.aggregation_type == "global":
            self.shrink_emb = nn.Sequential(nn.Linear(embedding_size, n_features), nn.LayerNorm(n_features))
        if self.aggregation_type in ("frame", "global"):
            self.cat_tf = nn.Linear(2 * n_features, n_features)
        else:
            self.cat_tf = nn.Linear(n_features + embedding_size, n_features)

    def fuse(self, x: torch.Tensor, embeddings: torch.Tensor) -> torch.Tensor:
        """(B, T', C) CNN features fused with the embeddings -> (B, T', C) (see the class docstring)."""
        frames = x.shape[1]
        if self.aggregation_type in ("frame", "global"):
            if self.aggregation_type == "frame":
                embeddings = self.frame_embs_encoder(embeddings.transpose(1, 2))[0][:, -1]
            per_frame = self.shrink_emb(embeddings).unsqueeze(1).expand(-1, frames, -1)
        elif self.aggregation_type == "pool1d":
            per_frame = F.adaptive_avg_pool1d(embeddings, frames).transpose(1, 2)
        else:
            per_frame = F.interpolate(embeddings, size=frames, mode="nearest-exact").transpose(1, 2)
        if self.dropstep_recurrent and self.training:
            x = time_mask(x, self.dropstep_recurrent_len, self.dropstep_recurrent)
            per_frame = time_mask(per_frame, self.dropstep_recurrent_len, self.dropstep_recurrent)
        joined = torch.cat((x, per_frame), -1)
        return self.cat_tf(self.dropout(joined) if self.fusion_dropout else joined)

    def _index(self, placement: str) -> int:
        try:
            return self.placements.index(placement)
        except ValueError:
            raise ValueError(f"unknown placement {placement!r}, expected one of {self.placements}") from None

    def _check_embeddings(self, embeddings: torch.Tensor | None, first: int, last: int) -> None:
        """Stages ``first`` .. ``last - 1`` are about to run: embeddings are needed iff they cross the fusion."""
        if embeddings is not None and not self.use_embeddings:
            raise ValueError("embeddings were passed to a CRNN built with use_embeddings=False")
        if self.use_embeddings and embeddings is None and first <= self.cnn.n_blocks < last:
            raise ValueError(f"this CRNN fuses {self.embedding_type} embeddings before its BiGRU: pass embeddings=")

    def _stage(self, index: int, h, pad_mask: torch.Tensor | None, embeddings: torch.Tensor | None = None,
               class_mask: torch.Tensor | None = None):
        """Map the output at placement ``index`` to the output at placement ``index + 1``."""
        n_conv = self.cnn.n_blocks
        if index < n_conv:
            if index == 0:
                h = h.transpose(1, 2).unsqueeze(1)
            return self.cnn.forward_blocks(h, index, index + 1)
        if index == n_conv:
            batch, channels, frames, freq = h.shape
            h = h.permute(0, 2, 1, 3).reshape(batch, frames, channels * freq)
            if self.use_embeddings:
                h = self.fuse(h, embeddings)
            return self.dropout(self.rnn(h))
        return self.head(h, pad_mask, class_mask)

    def head(self, h: torch.Tensor, pad_mask: torch.Tensor | None = None, class_mask: torch.Tensor | None = None):
        """Strong and weak predictions from the (B, T, 2 * n_RNN_cell) recurrent features.

        ``pad_mask`` (B, T) or (B, 1 or nclass, T), True on padded frames, is excluded from the
        attention as in the official model (with the classes softmax it only makes the weights uniform).
        ``class_mask`` (B, nclass) bool, False on classes the item's dataset does not annotate: their
        attention logits are -1e30 and their strong and weak outputs 0 (official 2024 order).
        """
        strong = self.sigmoid(self.dense(h))
        if not self.attention:
            weak = strong.mean(1)
        else:
            logits = self.dense_softmax(h)
            if pad_mask is not None:
                mask = pad_mask.unsqueeze(1) if pad_mask.ndim == 2 else pad_mask
                logits = logits.masked_fill(mask.transpose(1, 2), -1e30)
            if class_mask is not None:
                logits = logits.masked_fill(~class_mask[:, None, :], -1e30)
            weak = attention_pooling(strong, logits, self.attention_softmax_dim)
        if class_mask is not None:
            strong = strong.masked_fill(~class_mask[:, None, :], 0.0)
            weak = weak.masked_fill(~class_mask, 0.0)
        return strong.transpose(1, 2), weak

    def encode(self, x: torch.Tensor, placement: str, embeddings: torch.Tensor | None = None):
        """The chain from the log-mels up to and including ``placement``."""
        last = self._index(placement)
        self._check_embeddings(embeddings, 0, last)
        for index in range(last):
            x = self._stage(index, x, None, embeddings)
        return x

    def classify(self, h, placement: str, pad_mask: torch.Tensor | None = None,
                 embeddings: torch.Tensor | None = None, class_mask: torch.Tensor | None = None):
        """The rest of the chain after ``placement``: returns (strong, weak)."""
        first = self._index(placement)
        self._check_embeddings(embeddings, first, len(self.placements) - 1)
        for index in range(first, len(self.placements) - 1):
            h = self._stage(index, h, pad_mask, embeddings, class_mask)
        return h

    def forward(self, x: torch.Tensor, pad_mask: torch.Tensor | None = None, embeddings: torch.Tensor | None = None,
                class_mask: torch.Tensor | None = None):
        return self.classify(x, "input", pad_mask, embeddings, class_mask)

    @classmethod
    def load_official(cls, path: str | Path, prefix: str = "sed_student.", **kwargs) -> "CRNN":
        """A ``CRNN(**kwargs)`` with the ``prefix`` weights of a DCASE baseline checkpoint (official or ours), strictly
        (key mapping: ``load_state_dict_by_name``, which also reads the older baselines' ``cnn.*`` names)."""
        model = cls(**kwargs)
        load_state_dict_by_name(model, load_torch_file(path, weights_only=False), prefix=prefix, strict=True)
        return model
