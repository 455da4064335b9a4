"""Audio Spectrogram Transformer (Gong et al., 2021) as the DCASE 2022 embedding extractor.

The AudioSet 10-10 0.4593 model: DeiT-base-distilled ViT (12 blocks, 768 dims, LayerNorm eps 1e-6) on a
128-bin Kaldi fbank (Hanning window, 10 ms shift, waveform mean removed, zero-padded to 1024 frames,
``(x + 4.2677393) / (2 * 4.5689974)``), 16x16 patches with stride 10 on the (128 freq x 1024 time) image:
12 x 101 patches, frequency-major, after the cls and distillation tokens (1214 tokens).
Outputs: ``frame`` = all tokens after the final norm (B, 768, 1214), ``global`` = ``mlp_head`` on the
mean of the cls and distillation tokens (B, 527).
State-dict names are the original model's (``v.*``, ``mlp_head.*``); the official file's DataParallel
``module.`` prefix and the Hugging Face names are mapped by ``ast_official_state_dict``.
"""
from __future__ import annotations

import re

import torch
from torch import nn

from desed_task.features.kaldi import kaldi_fbank
from desed_task.nnet.official_weights import check_keys, read_official_file

FBANK_MEAN = -4.2677393
FBANK_STD = 4.5689974
TARGET_FRAMES = 1024
HF_PREFIX = "audio_spectrogram_transformer."


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.scale = (dim // heads) ** -0.5
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, tokens, dim = x.shape
        q, k, v = self.qkv(x).reshape(batch, tokens, 3, self.heads, dim // self.heads).permute(2, 0, 3, 1, 4)
        attention = ((q @ k.transpose(-2, -1)) * self.scale).softmax(dim=-1)
        return self.proj((attention @ v).transpose(1, 2).reshape(batch, tokens, dim))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """Pre-norm transformer block of timm's ViT."""

    def __init__(self, dim: int, heads: int, mlp_ratio: int = 4):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, mlp_ratio * dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class PatchEmbed(nn.Module):
    def __init__(self, dim: int, stride: int):
        super().__init__()
        self.proj = nn.Conv2d(1, dim, kernel_size=16, stride=stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


class VisionTransformer(nn.Module):
    """The ``v`` submodule (distilled ViT): tokens [cls, dist, patches] + learned positions, blocks, norm.

    ``head`` / ``head_dist`` are the unused ImageNet heads of the checkpoint, kept so that it loads strictly.
    """

    def __init__(self, dim: int, depth: int, heads: int, n_patches: int, stride: int):
        super().__init__()
        self.patch_embed = PatchEmbed(dim, stride)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.dist_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, n_patches + 2, dim))
        self.blocks = nn.ModuleList(Block(dim, heads) for _ in range(depth))
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.head = nn.Linear(dim, 1000)
        self.head_dist = nn.Linear(dim, 1000)
        for param in (self.cls_token, self.dist_token, self.pos_embed):
            nn.init.trunc_normal_(param, std=0.02)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(image)
        batch = x.shape[0]
        x = torch.cat((self.cls_token.expand(batch, -1, -1), self.dist_token.expand(batch, -1, -1), x), dim=1)
        x = x + self.pos_embed
        for block in self.blocks:
            x = block(x)
        return self.norm(x)


class AST(nn.Module):
    """AST: waveform (B, samples) at 16 kHz -> {"frame": (B, dim, tokens), "global": (B, n_classes)}.

    Defaults are the AudioSet 10-10 model (1214 tokens for 10 s); ``dim``, ``depth``, ``heads`` and
    ``target_frames`` make small variants for tests.
    """

    def __init__(self, dim: int = 768, depth: int = 12, heads: int = 12, n_classes: int = 527,
                 target_frames: int = TARGET_FRAMES, n_mels: int = 128, stride: int = 10):
        super().__init__()
        self.target_frames = target_frames
        self.n_mels = n_mels
        n_patches = ((n_mels - 16) // stride + 1) * ((target_frames - 16) // stride + 1)
        self.v = VisionTransformer(dim, depth, heads, n_patches, stride)
        self.mlp_head = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, n_classes))

    def fbank(self, waveform: torch.Tensor) -> torch.Tensor:
        """(B, samples) -> normalised (B, target_frames, n_mels) input of the transformer."""
        waveform = waveform - waveform.mean(-1, keepdim=True)
        fbank = kaldi_fbank(waveform, num_mel_bins=self.n_mels, window_type="hanning")
        frames = fbank.shape[-2]
        if frames < self.target_frames:
            fbank = nn.functional.pad(fbank, (0, 0, 0, self.target_frames - frames))
        fbank = fbank[..., : self.target_frames, :]
        return (fbank - FBANK_MEAN) / (2 * FBANK_STD)

    def forward(self, waveform: torch.Tensor) -> dict[str, torch.Tensor]:
        tokens = self.v(self.fbank(waveform).transpose(1, 2).unsqueeze(1))
        return {"frame": tokens.transpose(1, 2), "global": self.mlp_head((tokens[:, 0] + tokens[:, 1]) / 2)}

    @classmethod
    def load_official(cls, path, audioset_head: bool = True, **kwargs) -> "AST":
        """An ``AST(**kwargs)`` with the weights of ``audioset_10_10_0.4593.pth`` (``module.v.*`` keys) or of a
        Hugging Face AST state dict, strictly (key mapping: ``ast_official_state_dict``).

        ``audioset_head=False`` re-initialises ``mlp_head`` as the DESED 2022 wrapper did (it copied only
        ``v``), making the 527-d global embedding a random projection; the default keeps the trained head.
        """
        model = cls(**kwargs)
        state = ast_official_state_dict(read_official_file(path, "ast"))
        if not audioset_head:
            state = {k: v for k, v in state.items() if not k.startswith("mlp_head.")}
            dim, n_classes = model.mlp_head[1].in_features, model.mlp_head[1].out_features
            fresh = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, n_classes))
            state.update({f"mlp_head.{k}": v for k, v in fresh.state_dict().items()})
        result = model.load_state_dict(state, strict=False)
        unused_heads = ("v.head.", "v.head_dist.")  # absent from Hugging Face files
        missing = [k for k in result.missing_keys if not k.startswith(unused_heads)]
        check_keys("AST", path, missing, result.unexpected_keys)
        return model


_HF_NAMES = [  # (Hugging Face regex, original name), applied after removing HF_PREFIX
    (r"^embeddings\.cls_token$", "v.cls_token"),
    (r"^embeddings\.distillation_token$", "v.dist_token"),
    (r"^embeddings\.position_embeddings$", "v.pos_embed"),
    (r"^embeddings\.patch_embeddings\.projection\.", "v.patch_embed.proj."),
    (r"^encoder\.layer\.(\d+)\.layernorm_before\.", r"v.blocks.\1.norm1."),
    (r"^encoder\.layer\.(\d+)\.layernorm_after\.", r"v.blocks.\1.norm2."),
    (r"^encoder\.layer\.(\d+)\.attention\.output\.dense\.", r"v.blocks.\1.attn.proj."),
    (r"^encoder\.layer\.(\d+)\.intermediate\.dense\.", r"v.blocks.\1.mlp.fc1."),
    (r"^encoder\.layer\.(\d+)\.output\.dense\.", r"v.blocks.\1.mlp.fc2."),
    (r"^layernorm\.", "v.norm."),
    (r"^classifier\.layernorm\.", "mlp_head.0."),
    (r"^classifier\.dense\.", "mlp_head.1."),
]


def ast_official_state_dict(state: dict) -> dict:
    """The one key mapping of AST weights to this module's names.

    Accepts the original file (DataParallel ``module.v.*`` / ``module.mlp_head.*``), the same without
    ``module.``, or a Hugging Face ``ASTForAudioClassification`` state dict (``audio_spectrogram_transformer.*``
    and ``classifier.*``; query / key / value are concatenated into ``qkv``). The Hugging Face files have no
    ImageNet heads: ``v.head*`` are then absent (they are unused), and the caller loads non-strictly.
    """
    if "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    state = {k[len("module."):] if k.startswith("module.") else k: v for k, v in state.items()}
    if not any(k.startswith((HF_PREFIX, "classifier.")) for k in state):
        return state
    mapped, qkv = {}, {}
    for key, value in state.items():
        key = key[len(HF_PREFIX):] if key.startswith(HF_PREFIX) else key
        match = re.match(r"^encoder\.layer\.(\d+)\.attention\.attention\.(query|key|value)\.(weight|bias)$", key)
        if match:
            qkv[(int(match[1]), match[3], match[2])] = value
            continue
        for pattern, replacement in _HF_NAMES:
            if re.match(pattern, key):
                mapped[re.sub(pattern, replacement, key)] = value
                break
        else:
            mapped[key] = value  # unknown: reported as unexpected by the strict check
    for layer, kind in sorted({(layer, kind) for layer, kind, _ in qkv}):
        parts = [qkv[(layer, kind, name)] for name in ("query", "key", "value")]
        mapped[f"v.blocks.{layer}.attn.qkv.{kind}"] = torch.cat(parts, dim=0)
    return mapped
