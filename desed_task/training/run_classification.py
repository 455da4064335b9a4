"""Shared run entry of the clip-classification recipes: common flags, the Trainer, fit -> test, results.

Recipes build their datasets and a ``ClassificationTask`` subclass, then call ``fit_and_test``. The
flags ``--log_dir``, ``--gpus``, ``--fast_dev_run`` and ``KEY=VALUE`` / ``--set`` config overrides are
the same as the SED recipes' (``desed_task.training.run``).
"""
from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Sequence

import pytorch_lightning as pl
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.loggers import TensorBoardLogger
from pytorch_lightning.utilities import rank_zero_only

from desed_task.training.classification import ClassificationTask
from desed_task.training.run import trainer_devices, trainer_precision
from desed_task.utils.config import save_config
from desed_task.utils.files import write_json
from desed_task.utils.seed import seed_everything

log = logging.getLogger(__name__)

FAST_DEV_EPOCHS = 2
FAST_DEV_BATCHES = 2


def add_common_flags(parser: argparse.ArgumentParser, log_dir: str) -> argparse.ArgumentParser:
    """``--log_dir``, ``--gpus``, ``--fast_dev_run``, ``--wandb`` and config overrides."""
    parser.add_argument("--log_dir", default=log_dir, help="TensorBoard logs, checkpoints and results.json")
    parser.add_argument("--gpus", default="0",
                        help="0: CPU; N: N GPUs; '0,1' or '1,': these GPU indices (more than one GPU: DDP)")
    parser.add_argument("--fast_dev_run", action="store_true",
                        help=f"smoke run: {FAST_DEV_EPOCHS} epochs of {FAST_DEV_BATCHES} batches each")
    parser.add_argument("--wandb", action="store_true", help="also log to Weights & Biases (if installed)")
    parser.add_argument("--set", dest="set_overrides", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                        help="override config values, e.g. --set training.n_epochs=3 opt.lr=0.01")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="more config overrides")
    return parser


def build_loggers(log_dir: str | Path, wandb: bool = False, project: str = "desed_task") -> list:
    """TensorBoard always; W&B too when asked for and installed (otherwise a warning)."""
    loggers = [TensorBoardLogger(save_dir=str(log_dir), name="", version="")]
    if wandb:
        try:
            from pytorch_lightning.loggers import WandbLogger

            loggers.append(WandbLogger(project=project, save_dir=str(log_dir)))
        except (ImportError, ModuleNotFoundError) as error:
            log.warning("W&B logging requested but unavailable (%s); logging to TensorBoard only", error)
    return loggers


def build_trainer(config: dict, log_dir: str | Path, gpus: str = "0", fast_dev_run: bool = False,
                  callbacks: Sequence[pl.Callback] = (), wandb: bool = False, max_epochs: int | None = None,
                  checkpoint: bool = True) -> pl.Trainer:
    """A Trainer for ``training.n_epochs`` (or ``max_epochs``) with TensorBoard and a last-epoch checkpoint."""
    training = config["training"]
    callbacks = list(callbacks)
    if checkpoint:
        callbacks.append(ModelCheckpoint(dirpath=str(Path(log_dir) / "checkpoints"), save_last=True, save_top_k=0))
    limit = FAST_DEV_BATCHES if fast_dev_run else 1.0
    return pl.Trainer(
        **trainer_devices(gpus),
        precision=trainer_precision(training.get("precision", 32)),
        max_epochs=FAST_DEV_EPOCHS if fast_dev_run else int(max_epochs or training["n_epochs"]),
        callbacks=callbacks,
        logger=build_loggers(log_dir, wandb, project=str(config.get("project_name", "desed_task"))),
        num_sanity_val_steps=0,
        log_every_n_steps=1 if fast_dev_run else int(training.get("log_every_n_steps", 50)),
        limit_train_batches=limit,
        limit_val_batches=limit,
        limit_test_batches=limit,
        enable_checkpointing=checkpoint,
        enable_progress_bar=bool(training.get("enable_progress_bar", True)),
        deterministic=bool(training.get("deterministic", False)),
    )


def fit_and_test(task: ClassificationTask, log_dir: str | Path, gpus: str = "0", fast_dev_run: bool = False,
                 callbacks: Sequence[pl.Callback] = (), wandb: bool = False, ckpt_path: str | None = None,
                 max_epochs: int | None = None) -> dict:
    """Seed, save the config, fit (validating every epoch), test the last weights; returns the test metrics.

    ``results.json`` in ``log_dir`` holds the test metrics (written by the task).
    """
    seed_everything(task.seed)
    pl.seed_everything(task.seed, workers=True, verbose=False)
    rank_zero_only(save_config)(task.config, Path(log_dir) / "config.yaml")
    trainer = build_trainer(task.config, log_dir, gpus, fast_dev_run, callbacks, wandb, max_epochs)
    trainer.fit(task, ckpt_path=ckpt_path)
    if task.test_data is not None or task.valid_data is not None:
        trainer.test(task, verbose=False)
    return task.test_results


def report_results(results: dict, path: str | Path) -> None:
    """Write a results dict (any JSON-serialisable values) atomically."""
    rank_zero_only(write_json)(path, results, indent=2, sort_keys=True)
