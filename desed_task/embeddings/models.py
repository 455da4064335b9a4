"""The pretrained embedding models by name, built and loaded from their official weight files."""
from __future__ import annotations

from torch import nn

from desed_task.nnet.ast import AST
from desed_task.nnet.beats import BEATs
from desed_task.nnet.panns import PANNsCnn14
from desed_task.utils.errors import BadInput

EMBEDDING_MODELS = ("panns", "ast", "beats")


def build_embedding_model(name: str, checkpoint, options: dict | None = None) -> nn.Module:
    """``name`` in ``EMBEDDING_MODELS`` with the weights of the official file ``checkpoint``.

    ``options``: constructor arguments of PANNsCnn14 / AST (small variants for tests), plus for AST
    ``audioset_head`` (see ``AST.load_official``); BEATs takes its architecture from the file's ``cfg``.
    """
    options = dict(options or {})
    if name == "panns":
        return PANNsCnn14.load_official(checkpoint, **options)
    if name == "ast":
        return AST.load_official(checkpoint, **options)
    if name == "beats":
        if options:
            raise BadInput(f"BEATs takes its configuration from its file, got options {options}")
        return BEATs.load_official(checkpoint)
    raise BadInput(f"unknown embedding model {name!r}, expected one of {EMBEDDING_MODELS}")
