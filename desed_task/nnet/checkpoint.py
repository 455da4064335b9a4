"""Loading (parts of) checkpoints into models by state-dict name."""
from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from desed_task.utils.errors import CheckpointKeyMismatch


def _legacy_cnn_key(key: str, expected: set[str]) -> str:
    """Map ``cnn.<layer>`` to ``cnn.cnn.<layer>`` where only the latter exists in the model.

    Older baseline code overrode ``CNN.state_dict``, which drops the inner ``cnn.`` level when the
    state dict of the whole model is taken; this recovers those keys.
    """
    if key in expected:
        return key
    head, sep, rest = key.rpartition("cnn.")
    candidate = f"{head}cnn.cnn.{rest}" if sep else key
    return candidate if candidate in expected else key


def load_state_dict_by_name(
    model: nn.Module, state_dict: Mapping[str, torch.Tensor], prefix: str = "sed_student.", strict: bool = True
):
    """Load the entries of ``state_dict`` whose names start with ``prefix`` (stripped) into ``model``.

    ``state_dict`` may also be a Lightning checkpoint dict (its ``"state_dict"`` entry is used). With
    ``strict`` a ``CheckpointKeyMismatch`` (a ``KeyError``) lists every missing and unexpected name; shapes must match in any case.
    Returns torch's ``(missing_keys, unexpected_keys)`` result.
    """
    if "state_dict" in state_dict and isinstance(state_dict["state_dict"], Mapping):
        state_dict = state_dict["state_dict"]
    selected = {key[len(prefix) :]: value for key, value in state_dict.items() if key.startswith(prefix)}
    if not selected:
        raise CheckpointKeyMismatch(f"no entry of the state dict starts with {prefix!r}")
    expected = set(model.state_dict())
    selected = {_legacy_cnn_key(key, expected): value for key, value in selected.items()}
    missing = sorted(expected - set(selected))
    unexpected = sorted(set(selected) - expected)
    if strict and (missing or unexpected):
        raise CheckpointKeyMismatch(
            f"state dict (prefix {prefix!r}) does not match {type(model).__name__}: "
            f"missing keys {missing}, unexpected keys {unexpected}"
        )
    return model.load_state_dict(selected, strict=strict)
