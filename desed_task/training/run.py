"""Shared run logic of the SED recipes: DCASE command-line flags, config resolution, datasets, Trainer,
and the fit -> test, test-only and evaluation flows. Recipe scripts call `main(task_cls=...)`.
"""
from __future__ import annotations

import argparse
import logging
import math
import sys
from pathlib import Path
from typing import Mapping, Sequence

import pytorch_lightning as pl
import torch
import yaml
from pytorch_lightning.callbacks import EarlyStopping, ModelCheckpoint
from pytorch_lightning.loggers import TensorBoardLogger
from pytorch_lightning.utilities import rank_zero_only

from desed_task.data.build import build_eval_dataset, build_test_dataset
from desed_task.data.mini import apply_mini_config
from desed_task.nnet.checkpoint import load_torch_file
from desed_task.training.callbacks import CodeCarbonCallback, EnvironmentRecord
from desed_task.training.sed import MODELS, SEDTask, build_encoder, load_sed_checkpoint
from desed_task.utils.allocator import keep_freed_memory
from desed_task.utils.config import get_nested, load_config, save_config
from desed_task.utils.errors import InputError, MissingInput
from desed_task.utils.logs import configure_logging
from desed_task.utils.scores import write_scores
from desed_task.utils.seed import seed_everything

log = logging.getLogger(__name__)

SUMMARY_METRICS = ("psds1_sed_scores_eval", "psds2_sed_scores_eval", "psds1_psds_eval", "psds2_psds_eval",
                   "intersection_f1_macro", "event_f1_macro", "weak_f1_macro")
ARCHITECTURE_SECTIONS = ("feats", "atst_feats", "net", "scaler")
CHECKPOINT_KEYS = ("data.audio_max_len", "data.fs", "data.net_subsample", "training.median_window")
"""Config values that must follow the checkpoint too: the label framing and the post-processing it was
selected with. A value given on the command line still wins (with a notice)."""
RUN_MARKERS = ("*.ckpt", "test_metrics.json", "hparams.yaml", "events.out.tfevents.*", "test_scores", "eval_scores")
"""Files that mean a log folder holds (part of) an earlier run. Only files written once every process of
a run has started count, so that the processes of one multi-process run agree on its folder."""


def build_parser(description: str = "Train and test a mean-teacher SED system (DCASE 2022 Task 4 baseline).",
                 scores_file: str | None = None) -> argparse.ArgumentParser:
    """The DCASE baseline flags, plus `--set a.b=value ...` / positional `a.b=value` config overrides."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--conf_file", default="./confs/dcase2022_task4_baseline/default.yaml",
                        help="YAML config with all the experiment parameters")
    parser.add_argument("--log_dir", default="./exp/2022_baseline",
                        help="where TensorBoard logs, checkpoints, scores and metrics are written")
    parser.add_argument("--resume_from_checkpoint", default=None, help="continue a training run from this .ckpt")
    parser.add_argument("--test_from_checkpoint", default=None, help="only test this .ckpt on the test set")
    parser.add_argument("--eval_from_checkpoint", default=None,
                        help="only write score files of this .ckpt on the unlabeled data.eval_folder")
    parser.add_argument("--gpus", default="1",
                        help="0: CPU; N: N GPUs; '0,1' or '1,': these GPU indices (more than one GPU: DDP)")
    parser.add_argument("--accelerator", choices=("cpu", "gpu"), default=None,
                        help="with --devices, replaces --gpus: e.g. '--accelerator cpu --devices 2' trains with 2 CPU "
                             "processes (DDP, gloo backend)")
    parser.add_argument("--devices", default=None,
                        help="processes per node with --accelerator: N, or GPU indices '0,1' (default 1)")
    parser.add_argument("--num_nodes", type=int, default=1,
                        help="machines of a multi-node run (SLURM or torchrun); --gpus/--devices count per node")
    parser.add_argument("--fast_dev_run", action="store_true",
                        help="smoke run: 3 epochs of 2 batches each for train, validation and test")
    parser.add_argument("--strong_real", action="store_true",
                        help="also train on the real strongly labelled set (training.batch_size needs 4 entries)")
    parser.add_argument("--set", dest="set_overrides", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                        help="override config values, e.g. --set training.n_epochs=3 opt.lr=0.01")
    parser.add_argument("--scores_file", default=scores_file,
                        help="score file (IRCT format) collecting the test metrics of every run; '' to skip")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="more config overrides")
    return parser


def resolve_config(conf_file: str, overrides: Sequence[str] = ()) -> dict:
    """Load the config, apply overrides and, when `data.mini` is set, generate and point to the mini dataset."""
    return apply_mini_config(load_config(conf_file, overrides), file_config=load_config(conf_file))


def trainer_devices(gpus: str | int = "1", accelerator: str | None = None, devices: str | int | None = None,
                    num_nodes: int = 1) -> dict:
    """Device flags -> Trainer accelerator/devices/num_nodes/strategy; more than one process in all: DDP.

    `--gpus`: '0' is one CPU process; 'N' is N GPUs; 'i,j' are GPU indices. `--accelerator cpu|gpu
    --devices N` (or GPU indices) replaces `--gpus`, so `--accelerator cpu --devices 2` gives 2 CPU
    processes (gloo backend). Counts are per node; `num_nodes` > 1 for SLURM or multi-node torchrun.
    """
    if num_nodes < 1:
        raise ValueError(f"--num_nodes must be at least 1, got {num_nodes}")
    if accelerator is None:
        if devices is not None:
            raise ValueError("--devices needs --accelerator cpu or gpu (or use --gpus)")
        accelerator, devices = "gpu", gpus
        if str(gpus).strip() == "0":
            accelerator, devices = "cpu", 1
    text = str(1 if devices is None else devices).strip()
    if "," in text:
        if accelerator == "cpu":
            raise ValueError(f"CPU devices are a number of processes, got {text!r}")
        devices = [int(part) for part in text.split(",") if part.strip()]
        count = len(devices)
    else:
        devices = count = int(text)
        if count == -1 and accelerator == "gpu":
            count = torch.cuda.device_count()
        elif count < 1:
            raise ValueError(f"--devices must be a positive number of {accelerator} processes, got {text!r}")
    strategy = "ddp" if count * num_nodes > 1 else "auto"
    return {"accelerator": accelerator, "devices": devices, "num_nodes": num_nodes, "strategy": strategy}


def trainer_precision(precision) -> str | int:
    """Config precision (32, 16, 'bf16', or a Lightning string) -> Lightning precision."""
    return {32: "32-true", "32": "32-true", 16: "16-mixed", "16": "16-mixed", "bf16": "bf16-mixed"}.get(
        precision, precision)


def read_checkpoint(path: str | Path) -> dict:
    """A Lightning checkpoint loaded on the CPU; a missing or unreadable file is an `InputError` naming it."""
    return load_torch_file(path, weights_only=False, what="checkpoint")


def checkpoint_architecture(checkpoint: dict, config: dict, explicit_keys: Sequence[str] = ()) -> dict:
    """`config` rebuilt as the checkpoint was trained, from its hyper-parameters (when stored).

    The feats/net/scaler sections come from the checkpoint, and so do `CHECKPOINT_KEYS` (label framing,
    median filter), unless `explicit_keys` (the keys overridden on the command line) name them: then the
    command line wins and the difference is logged. Data paths and the other settings stay `config`'s.
    """
    hparams = checkpoint.get("hyper_parameters") or {}
    config = {key: dict(value) if isinstance(value, dict) else value for key, value in config.items()}
    for section in ARCHITECTURE_SECTIONS:
        if isinstance(hparams.get(section), dict):
            config[section] = dict(hparams[section])
    for dotted in CHECKPOINT_KEYS:
        section, key = dotted.split(".")
        trained = get_nested(hparams, dotted, None)
        if trained is None or section not in config:
            continue
        current = config[section].get(key)
        if current == trained:
            continue
        if dotted in explicit_keys:
            log.warning("%s: using %r from the command line, not the checkpoint's %r", dotted, current, trained)
        else:
            log.info("%s: using the checkpoint's %r (the config has %r)", dotted, trained, current)
            config[section][key] = trained
    return config


def holds_a_run(folder: Path) -> bool:
    """Whether `folder` holds outputs of an earlier run (`RUN_MARKERS`)."""
    return folder.is_dir() and any(next(folder.glob(pattern), None) is not None for pattern in RUN_MARKERS)


def run_folder(log_dir: str | Path, resume: bool = False) -> Path:
    """The folder a run writes to: `log_dir`, unless a fresh run would mix its checkpoints, curves and
    metrics with an earlier run's there; then the first `log_dir/version_N` (N >= 1) holding no run.
    A resumed run continues in `log_dir` itself."""
    log_dir = Path(log_dir)
    if resume or not holds_a_run(log_dir):
        return log_dir
    version = 1
    while holds_a_run(log_dir / f"version_{version}"):
        version += 1
    folder = log_dir / f"version_{version}"
    log.warning("%s holds an earlier run: this run writes to %s (--resume_from_checkpoint continues a run in "
                "place)", log_dir, folder)
    return folder


def format_metrics_table(results: dict) -> str:
    """Student/teacher summary of test metrics as an aligned text table."""
    rows = [("metric", *MODELS)]
    for name in SUMMARY_METRICS:
        values = [results.get(f"test/{model}/{name}") for model in MODELS]
        if any(value is not None for value in values):
            rows.append((name, *("-" if v is None or math.isnan(v) else f"{v:.4f}" for v in values)))
    width = max(len(row[0]) for row in rows)
    lines = [f"{row[0]:<{width}}  " + "  ".join(f"{cell:>8}" for cell in row[1:]) for row in rows]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


def single_run(
    config: dict,
    log_dir: str,
    gpus: str = "1",
    accelerator: str | None = None,
    devices: str | None = None,
    num_nodes: int = 1,
    resume_from_checkpoint: str | None = None,
    test_from_checkpoint: str | None = None,
    eval_from_checkpoint: str | None = None,
    fast_dev_run: bool = False,
    strong_real: bool = False,
    task_cls: type[SEDTask] = SEDTask,
    explicit_keys: Sequence[str] = (),
) -> dict:
    """Fit then test the best checkpoint, or only test / evaluate a checkpoint. Returns the test metrics.

    Everything is written into `log_dir` as given (see `run_folder` for choosing it). The config is saved
    there only once the data and the model have been built, so a run stopped by bad input leaves no log
    folder holding only a config. `explicit_keys`: config keys set on the command line (they win over a
    checkpoint's post-processing, see `checkpoint_architecture`).
    """
    training = config["training"]
    seed = int(training.get("seed") or 0)
    seed_everything(seed)
    pl.seed_everything(seed, workers=True, verbose=False)
    log_dir_path = Path(log_dir)
    checkpoint_path = eval_from_checkpoint or test_from_checkpoint
    evaluation = eval_from_checkpoint is not None
    checkpoint = None
    if resume_from_checkpoint is not None and not Path(resume_from_checkpoint).is_file():
        raise MissingInput(f"--resume_from_checkpoint {resume_from_checkpoint}: file not found")
    if checkpoint_path is not None:
        checkpoint = read_checkpoint(checkpoint_path)
        config = checkpoint_architecture(checkpoint, config, explicit_keys)
        log.info("loaded %s (epoch %s)", checkpoint_path, checkpoint.get("epoch"))
    encoder = build_encoder(config, task_cls.labels)
    report_dir = log_dir_path / "data_reports"
    if evaluation:
        task = task_cls(config, encoder, test_data=build_eval_dataset(config, encoder, report_dir),
                        log_dir=log_dir, evaluation=True)
    elif checkpoint is not None:
        task = task_cls(config, encoder, test_data=build_test_dataset(config, encoder, report_dir), log_dir=log_dir)
    else:
        datasets = task_cls.build_datasets(config, encoder, strong_real=strong_real, report_dir=report_dir)
        task = task_cls(config, encoder, train_data=datasets.train, train_batch_sizes=datasets.train_batch_sizes,
                        valid_synth=datasets.valid_synth, valid_weak=datasets.valid_weak, test_data=datasets.test,
                        log_dir=log_dir)
    if checkpoint is not None:
        load_sed_checkpoint(task, checkpoint)
    rank_zero_only(save_config)(config, log_dir_path / "config.yaml")
    if resume_from_checkpoint is not None:  # the logger writes hparams.yaml only when absent: renew it
        rank_zero_only((log_dir_path / "hparams.yaml").unlink)(missing_ok=True)

    callbacks: list[pl.Callback] = [CodeCarbonCallback(log_dir, evaluation=evaluation), EnvironmentRecord(log_dir)]
    if checkpoint is None:
        callbacks += [
            EarlyStopping(monitor="val/obj_metric", patience=training["early_stop_patience"],
                          mode=task_cls.obj_metric_mode),
            ModelCheckpoint(dirpath=log_dir, monitor="val/obj_metric", mode=task_cls.obj_metric_mode, save_top_k=1,
                            save_last=True),
        ]
    limit = 2 if fast_dev_run else None  # None: all batches, without Lightning's notice for an explicit 1.0
    trainer = pl.Trainer(
        **trainer_devices(gpus, accelerator, devices, num_nodes),
        precision=trainer_precision(training["precision"]),
        max_epochs=3 if fast_dev_run else training["n_epochs"],
        callbacks=callbacks,
        logger=TensorBoardLogger(save_dir=log_dir, name="", version=""),
        gradient_clip_val=training["gradient_clip"] or None,
        accumulate_grad_batches=training["accumulate_batches"],
        check_val_every_n_epoch=1 if fast_dev_run else training["validation_interval"],
        num_sanity_val_steps=0,
        log_every_n_steps=1 if fast_dev_run else int(training.get("log_every_n_steps", 40)),
        limit_train_batches=limit,
        limit_val_batches=limit,
        limit_test_batches=limit,
        deterministic=training.get("deterministic", False),
        enable_progress_bar=training.get("enable_progress_bar", True),
        use_distributed_sampler=False,
    )
    if checkpoint is None:
        trainer.fit(task, ckpt_path=resume_from_checkpoint)
        best = trainer.checkpoint_callback.best_model_path
        log.info("best model: %s", best or "(none, testing the last weights)")
        trainer.test(task, ckpt_path=best or None)
    else:
        trainer.test(task)
    results = task.test_results
    if results and trainer.is_global_zero:
        print(format_metrics_table(results))
    return results


def paper_metric_names(results: Mapping[str, float]) -> dict[str, float]:
    """Test metrics under the IRCT score-file names (`weak_f1_classwise:<cls>` is `weak_f1:<cls>` there)."""
    return {name.replace("/weak_f1_classwise:", "/weak_f1:"): float(value) for name, value in results.items()}


def run_name_of(log_dir: str | Path) -> str:
    """`run_name` of the config saved in `log_dir`, else the log directory's name (`<parent>_version_N` for a
    version folder, see `run_folder`)."""
    saved = Path(log_dir) / "config.yaml"
    if saved.is_file():
        name = (yaml.safe_load(saved.read_text()) or {}).get("run_name")
        if name:
            return str(name)
    folder = Path(log_dir).resolve()
    return f"{folder.parent.name}_{folder.name}" if folder.name.startswith("version_") else folder.name


def record_scores(scores_file: str | Path, log_dir: str | Path, results: Mapping[str, float]) -> str:
    """Append (or replace) the run's block of test metrics in the score file; returns the run name.

    Adds `/test/tot_energy_kWh` from the codecarbon devtest file when it was written, as the paper's file.
    """
    metrics = paper_metric_names(results)
    energy = Path(log_dir) / "devtest_codecarbon" / "devtest_tot_kwh.txt"
    if energy.is_file():
        metrics["/test/tot_energy_kWh"] = float(energy.read_text())
    run_name = run_name_of(log_dir)
    write_scores(scores_file, run_name, metrics)
    return run_name


def override_keys(overrides: Sequence[str]) -> list[str]:
    """The dotted keys of `a.b=value` overrides."""
    return [override.split("=", 1)[0] for override in overrides if "=" in override]


def main(argv: Sequence[str] | None = None, task_cls: type[SEDTask] = SEDTask,
         parser: argparse.ArgumentParser | None = None) -> dict:
    """The recipes' entry point: parse the flags, resolve the config and run; returns the test metrics.

    `task_cls` lets recipes plug in a `SEDTask` subclass. Logging goes to stderr (INFO for this package).
    Bad input (`InputError`: config, data, checkpoint) ends the run with its one-line message and exit
    status 2. A smoke run (`--fast_dev_run`) never writes the score file.
    """
    configure_logging()
    keep_freed_memory()
    args = (parser or build_parser()).parse_args(argv)
    overrides = [*args.set_overrides, *args.overrides]
    try:
        config = resolve_config(args.conf_file, overrides)
        log_dir = run_folder(args.log_dir, resume=args.resume_from_checkpoint is not None)
        results = single_run(
            config,
            str(log_dir),
            gpus=args.gpus,
            accelerator=args.accelerator,
            devices=args.devices,
            num_nodes=args.num_nodes,
            resume_from_checkpoint=args.resume_from_checkpoint,
            test_from_checkpoint=args.test_from_checkpoint,
            eval_from_checkpoint=args.eval_from_checkpoint,
            fast_dev_run=args.fast_dev_run,
            strong_real=args.strong_real,
            task_cls=task_cls,
            explicit_keys=override_keys(overrides),
        )
    except InputError as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    if results and args.scores_file:
        if args.fast_dev_run:
            log.info("smoke run (--fast_dev_run): test metrics not written to %s", args.scores_file)
        else:
            run_name = rank_zero_only(record_scores)(args.scores_file, log_dir, results)
            if run_name:
                log.info("test metrics of %s written to %s", run_name, args.scores_file)
    return results
