"""Probing a trained baseline: a small SED head trained on the frozen representation of one CRNN layer.

`ProbeTask` is the mean-teacher core (`SEDTask`) with a different student: the baseline CRNN loaded by
state-dict name from `probe.encoder_checkpoint` (its `sed_student.*` weights, or `probe.encoder_prefix`),
frozen and used up to `probe.layer` (l1..l8), followed by a `ProbeHead` (time projection to
`probe.time_frames` frames, 2-layer BiGRU of `probe.hidden_size`, attention head). As in the reference
(daperera/irct), everything else is the baseline training: soft mixup, supervised BCE, mean-teacher
consistency, with the EMA teacher a copy of the probe (only its head is averaged, the encoders are equal
and stay so). Only the head is optimised.

`probe.frozen_eval_mode` (default True) keeps the encoder in eval mode (fixed batch-norm statistics, no
dropout). False reproduces the reference, whose encoder follows the training mode: its weights still never
change, but batch-norm running statistics are updated by every training forward and dropout is applied to
the probed features.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Iterable, Mapping

from torch import nn

from desed_task.nnet.crnn import CRNN
from desed_task.nnet.probe import ProbedCRNN, ProbeHead
from desed_task.training.sed import SEDTask, ema_update
from desed_task.utils.errors import BadInput, MissingInput

log = logging.getLogger(__name__)

PROBE_DEFAULTS = {"time_frames": 156, "frozen_eval_mode": True, "encoder_prefix": "sed_student."}


def probe_settings(config: Mapping) -> dict:
    """The `probe:` section with defaults (layer, hidden_size and encoder_checkpoint are required)."""
    section = config.get("probe")
    missing = [key for key in ("layer", "hidden_size", "encoder_checkpoint") if key not in (section or {})]
    if missing:
        raise BadInput(f"probe training needs a `probe:` config section with {missing}")
    return {**PROBE_DEFAULTS, **section}


def input_frames(config: Mapping) -> int:
    """Log-mel frames of an `audio_max_len` clip (centred STFT)."""
    samples = int(round(float(config["data"]["audio_max_len"]) * int(config["data"]["fs"])))
    return samples // int(config["feats"]["hop_length"]) + 1


def load_baseline_encoder(config: Mapping, checkpoint: str | Path | None, prefix: str = "sed_student.") -> CRNN:
    """`CRNN(**config["net"])` with the weights of a baseline checkpoint, matched by name (strict).

    `checkpoint=None` leaves the encoder randomly initialised (a random-feature probe).
    """
    if checkpoint is None:
        log.warning("probe.encoder_checkpoint is null: probing a randomly initialised CRNN")
        return CRNN(**config["net"])
    if not Path(checkpoint).is_file():
        raise MissingInput(f"baseline checkpoint {checkpoint} not found (see ckpt/default/README.md)")
    return CRNN.load_official(checkpoint, prefix=prefix, **config["net"])


class ProbeTask(SEDTask):
    """`SEDTask` whose student is a frozen baseline encoder plus a trainable probe head."""

    def build_student(self) -> nn.Module:
        settings = probe_settings(self.config)
        encoder = load_baseline_encoder(self.config, settings["encoder_checkpoint"], settings["encoder_prefix"])
        layer = settings["layer"]
        channels, frames = ProbedCRNN.representation_shape(
            encoder, layer, int(self.config["feats"]["n_mels"]), input_frames(self.config))
        head = ProbeHead(channels, frames, int(settings["hidden_size"]), nclass=int(self.config["net"]["nclass"]),
                         out_frames=int(settings["time_frames"]))
        return ProbedCRNN(encoder, layer, head, frozen_eval_mode=bool(settings["frozen_eval_mode"]))

    def trainable_parameters(self) -> Iterable[nn.Parameter]:
        return self.sed_student.head.parameters()

    def update_teacher(self, step: int) -> float:
        return ema_update(self.sed_teacher.head, self.sed_student.head, self.config["training"]["ema_factor"], step)
