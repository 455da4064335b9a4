"""Reading the published weight files of the pretrained embedding models, with errors that say what to get."""
from __future__ import annotations

from pathlib import Path


from desed_task.utils.errors import CheckpointKeyMismatch, MissingInput
from desed_task.utils.files import load_torch_file

OFFICIAL_FILES = {
    "panns": ("Cnn14_16k_mAP=0.438.pth", "https://zenodo.org/record/3987831 (PANNs, Kong et al.)"),
    "ast": ("audioset_10_10_0.4593.pth", "the AST repository YuanGongND/ast (AudioSet 10-10 0.4593 model), "
            "or convert the Hugging Face MIT/ast-finetuned-audioset-10-10-0.4593 state dict"),
    "beats": ("BEATs_iter3_plus_AS2M.pt", "microsoft/unilm beats/README.md (BEATs_iter3+ AS2M, the "
              "'Pre-Trained Model' column); automatic download no longer works, fetch it by hand"),
}


def read_official_file(path: str | Path, model: str) -> dict:
    """``torch.load`` the official weight file of ``model`` (a key of ``OFFICIAL_FILES``) on the CPU.

    A missing file raises ``FileNotFoundError`` naming the expected file, where to get it and where it
    was looked for.
    """
    file_name, source = OFFICIAL_FILES[model]
    path = Path(path)
    if not path.is_file():
        raise MissingInput(
            f"{model} weights not found at {path}: expected the file {file_name} from {source}; "
            f"put it there (e.g. ./pretrained_models/{file_name}) or pass its path")
    return load_torch_file(path, weights_only=False, what=f"{model} weight file")


def check_keys(model_name: str, path, missing, unexpected) -> None:
    """Raise a ``KeyError`` naming the file when a strict load found missing or unexpected keys."""
    if missing or unexpected:
        raise CheckpointKeyMismatch(f"{path} does not hold {model_name} weights as expected: missing keys "
                                    f"{sorted(missing)}, unexpected keys {sorted(unexpected)}")
