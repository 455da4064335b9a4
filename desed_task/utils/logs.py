"""Console logging of the entry points: one format (`HH:MM:SS LEVEL logger: message`), INFO for this
package, WARNING for the libraries it uses, and the libraries' known-harmless warnings filtered once."""
from __future__ import annotations

import logging
import sys
import warnings

PACKAGE_LOGGER = "desed_task"

HARMLESS_WARNINGS = (
    # CP-Mobile QAT uses torch's eager-mode quantisation on purpose (the official int8 path); torch announces
    # its move to torchao on every call.
    (DeprecationWarning, r"torch\.ao\.quantization is deprecated"),
    (UserWarning, r"torch\.quantize_per_tensor, torch\.quantize_per_channel and other quantized tensor"),
    (UserWarning, r"Please use quant_min and quant_max to specify the range for observers"),
    # The complexity report converts an untrained (never observed) copy to int8 only to count its bytes.
    (UserWarning, r"must run observer before calling calculate_qparams"),
    # pytorch_lightning 2.6 builds torch's deprecated LeafSpec at every fit and test.
    (FutureWarning, r"`isinstance\(treespec, LeafSpec\)` is deprecated"),
    # dcase_util (imported by sed_eval, itself imported by sed_scores_eval) imports the deprecated pkg_resources.
    (UserWarning, r"pkg_resources is deprecated"),
    # Lightning's notice that a checkpoint folder is not empty is about the run's own config.yaml: the runner
    # chooses a fresh folder for each run (`training.run.run_folder`).
    (UserWarning, r"Checkpoint directory .* exists and is not empty"),
    # The configs choose their DataLoader workers (0 on the small demos, where worker start-up costs more).
    (Warning, r".*does not have many workers which may be a bottleneck"),
)


def filter_harmless_warnings() -> None:
    """Ignore `HARMLESS_WARNINGS` (each listed with its reason)."""
    for category, message in HARMLESS_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category)


def configure_logging(level: int = logging.INFO) -> None:
    """One stderr handler on the root logger at WARNING, and `level` for `desed_task.*`.

    Idempotent (a second call changes nothing), so recipes and tests may both call it.
    Lightning's and codecarbon's own handlers are lowered to WARNING as well: their INFO lines (devices,
    tips, model summary, tracker set-up) would drown the run's own messages.
    """
    root = logging.getLogger()
    if not any(getattr(handler, "_desed_task", False) for handler in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))
        handler._desed_task = True
        root.addHandler(handler)
    root.setLevel(logging.WARNING)
    logging.getLogger(PACKAGE_LOGGER).setLevel(level)
    for name in ("lightning", "lightning.pytorch", "pytorch_lightning", "lightning_fabric", "codecarbon"):
        logging.getLogger(name).setLevel(logging.WARNING)
    filter_harmless_warnings()
