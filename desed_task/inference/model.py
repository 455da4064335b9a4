"""Rebuilding a trained SED task from a checkpoint for inference, with the trainer's own classes.

The config is the checkpoint's `hyper_parameters` (saved by `SEDTask.save_hyperparameters`, and by the
official DCASE baseline); with an explicit config file, `training.run.checkpoint_architecture` takes the
architecture sections (feats, net, scaler) from the checkpoint and the rest from the file, as
`--test_from_checkpoint` does. Weights load with `training.sed.load_sed_checkpoint` (official key names;
the official `mel_spec.*` buffers are ignored). The task class comes from the system registry
(`training.registry`: the system whose `marker` section the config has, else `SEDTask`); a clip
classifier's checkpoint (CP-Mobile, UCLSER) is refused with its system's name and test command. If a
new system's `detect` needs more than the log-mel, its class overrides the `SEDTask.inference_inputs`
hook, which validation, test and inference all call.
"""
from __future__ import annotations

import importlib
from pathlib import Path
from typing import Mapping

import torch

from desed_task.training.registry import system_of_config
from desed_task.training.run import checkpoint_architecture
from desed_task.training.run import read_checkpoint as read_checkpoint_file
from desed_task.training.sed import SEDTask, load_sed_checkpoint
from desed_task.training.sed_scoring import MODELS
from desed_task.utils.config import load_config
from desed_task.utils.errors import BadInput
from desed_task.utils.files import load_torch_file


class CheckpointError(BadInput):
    """A checkpoint that cannot be used for inference; the message names the file."""


def import_task_class(spec: str) -> type[SEDTask]:
    """The `SEDTask` subclass named `"package.module:Class"`."""
    module, _, name = spec.partition(":")
    task_cls = getattr(importlib.import_module(module), name, None) if name else None
    if not (isinstance(task_cls, type) and issubclass(task_cls, SEDTask)):
        raise ValueError(f"{spec!r} is not a SEDTask class given as package.module:Class")
    return task_cls


def task_class_for(config: Mapping) -> type[SEDTask]:
    """The trainer class of a config: its registered system's (`training.registry`, by marker section), else
    `SEDTask`."""
    system = system_of_config(config)
    return system.task_class(config) if system is not None and system.sed else SEDTask


def refuse_clip_classifier(checkpoint: Mapping, source) -> None:
    """A `CheckpointError` naming the system of a clip-classifier checkpoint and the command that tests it."""
    system = system_of_config(checkpoint.get("hyper_parameters") or {})
    if system is not None and not system.sed:
        raise CheckpointError(f"{source}: a {system.name} checkpoint ({system.description}), not a sound event "
                              f"detector; test it with python {system.recipe} --test_from_checkpoint {source}")


def read_checkpoint(path: str | Path) -> dict:
    """`training.run.read_checkpoint` (missing or unreadable file: an error naming it), and a Lightning
    checkpoint's `state_dict` required."""
    checkpoint = read_checkpoint_file(path)
    if not isinstance(checkpoint.get("state_dict"), Mapping):
        raise CheckpointError(f"{path}: not a Lightning checkpoint (no state_dict)")
    return checkpoint


def checkpoint_config(checkpoint: Mapping, source, conf_file: str | Path | None = None) -> dict:
    """The config to rebuild the task with: the checkpoint's hyper-parameters, or `conf_file` with the
    checkpoint's architecture sections."""
    if conf_file is not None:
        return checkpoint_architecture(dict(checkpoint), load_config(conf_file))
    hparams = checkpoint.get("hyper_parameters")
    if not isinstance(hparams, Mapping) or not all(isinstance(hparams.get(s), Mapping) for s in ("feats", "net")):
        raise CheckpointError(f"{source}: the checkpoint has no training config (hyper_parameters with feats and net "
                              "sections); give the training config with --conf_file")
    return {key: dict(value) if isinstance(value, Mapping) else value for key, value in hparams.items()}


def late_fusion_config(config: dict, source, embedding_checkpoint: str | Path | None) -> dict:
    """A late-fusion config (net.use_embeddings: PANNs / AST / BEATs embeddings, DCASE 2022-2024 baselines)
    set to compute its embeddings itself (`pretrained.e2e`) from `embedding_checkpoint`, else from the
    config's `pretrained.checkpoint`; a missing file is a `CheckpointError`."""
    pretrained = dict(config.get("pretrained") or {})
    weights = embedding_checkpoint or pretrained.get("checkpoint")
    if not weights or not Path(weights).is_file():
        raise CheckpointError(f"{source}: a late-fusion checkpoint needs the weights of its embedding model "
                              f"({pretrained.get('model', 'pretrained.model')}): give them with "
                              f"--embedding_checkpoint (pretrained.checkpoint {weights!r} is not a file)")
    return {**config, "pretrained": {**pretrained, "e2e": True, "checkpoint": str(weights)}}


def load_task(checkpoint: str | Path | Mapping, conf_file: str | Path | None = None,
              task_cls: type[SEDTask] | None = None, embedding_checkpoint: str | Path | None = None) -> SEDTask:
    """The trainer task of a checkpoint (path or loaded dict), weights loaded, in eval mode. A late-fusion
    checkpoint runs its embedding model inside the task (`late_fusion_config`)."""
    source = checkpoint if not isinstance(checkpoint, Mapping) else "checkpoint"
    if not isinstance(checkpoint, Mapping):
        checkpoint = read_checkpoint(checkpoint)
    refuse_clip_classifier(checkpoint, source)
    config = checkpoint_config(checkpoint, source, conf_file)
    if isinstance(config.get("pretrained"), Mapping) and (config.get("net") or {}).get("use_embeddings"):
        config = late_fusion_config(config, source, embedding_checkpoint)
    task_cls = task_cls or task_class_for(config)
    try:
        task = task_cls(config)
        load_sed_checkpoint(task, dict(checkpoint))
    except (KeyError, ValueError, RuntimeError, TypeError) as error:
        raise CheckpointError(f"{source}: cannot build {task_cls.__name__} from the checkpoint: {error}") from None
    if task.scaler.statistic == "dataset" and not task.scaler.fitted:
        path = config["scaler"].get("savepath")
        if not path or not Path(path).is_file():
            raise CheckpointError(f"{source}: the scaler uses dataset statistics, which are neither in the checkpoint "
                                  f"nor in scaler.savepath ({path})")
        task.scaler.load_state_dict(load_torch_file(path, weights_only=True, what="scaler statistics"))
    return task.eval()


def select_model(task: SEDTask, model: str) -> torch.nn.Module:
    """The task's `sed_student` or `sed_teacher`."""
    if model not in MODELS:
        raise ValueError(f"model must be one of {MODELS}, got {model!r}")
    return getattr(task, f"sed_{model}")
