"""Console logging of the entry points: INFO for this package, WARNING for the libraries it uses."""
from __future__ import annotations

import logging
import sys

PACKAGE_LOGGER = "desed_task"


def configure_logging(level: int = logging.INFO) -> None:
    """One stderr handler on the root logger at WARNING, and `level` for `desed_task.*`.

    Idempotent (a second call changes nothing), so recipes and tests may both call it.
    Lightning's and codecarbon's own handlers are lowered to WARNING as well: their INFO lines (devices,
    tracker set-up) would drown the run's own messages.
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
