"""The runner of every system (`training.registry`): the DCASE command-line flags, config resolution and
key check, log folder, Trainer, loggers, callbacks, seeding, one-line errors, and the fit -> test, resume,
test-only and evaluation flows. Recipe scripts call `main(system="<registry name>")`.

Every run writes into its log folder: the checkpoints (`last.ckpt`, and the best epoch's when the system
monitors a validation metric), `config.yaml`, `environment.json`, TensorBoard events, `test_metrics.json`
and the system's own reports; `data_reports/` lists skipped input files.
"""
from __future__ import annotations

import argparse
import logging
import math
import sys
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping, Sequence

import pytorch_lightning as pl
import torch
import yaml
from pytorch_lightning.callbacks import EarlyStopping, ModelCheckpoint
from pytorch_lightning.loggers import TensorBoardLogger
from pytorch_lightning.utilities import rank_zero_only

from desed_task.data.build import build_eval_dataset, build_test_dataset
from desed_task.data.mini import apply_mini_config
from desed_task.postprocess.tune import tuning_request
from desed_task.training.callbacks import CodeCarbonCallback, EnvironmentRecord
from desed_task.training.registry import CONFS, SYSTEMS, System, get_system, system_of_task
from desed_task.training.sed import build_encoder, load_sed_checkpoint
from desed_task.training.sed_scoring import MODELS
from desed_task.utils.allocator import keep_freed_memory
from desed_task.utils.config import (ConfigSchema, apply_overrides, get_nested, load_config, save_config,
                                     set_nested)
from desed_task.utils.errors import BadInput, InputError, MissingInput
from desed_task.utils.files import load_torch_file
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
FAST_DEV_EPOCHS = 3
FAST_DEV_BATCHES = 2
RUN_MARKERS = ("*.ckpt", "test_metrics.json", "hparams.yaml", "events.out.tfevents.*", "test_scores", "eval_scores")
"""Files that mean a log folder holds (part of) an earlier run. Only files written once every process of
a run has started count, so that the processes of one multi-process run agree on its folder."""


def build_parser(system: System | str = "sed", description: str | None = None) -> argparse.ArgumentParser:
    """The common flags of every system (DCASE baseline names), its official aliases, and `--set a.b=value ...`
    / positional `a.b=value` config overrides."""
    system = get_system(system) if isinstance(system, str) else system
    parser = argparse.ArgumentParser(description=description or system.description)
    conf_flags = [flag for alias in system.aliases if alias.key == "conf_file" for flag in alias.flags]
    parser.add_argument("--conf_file", *conf_flags, dest="conf_file", default=system.conf_file,
                        help="YAML config with all the experiment parameters")
    parser.add_argument("--log_dir", default=system.log_dir,
                        help="where TensorBoard logs, checkpoints, config, metrics and reports are written")
    parser.add_argument("--resume_from_checkpoint", default=None, help="continue a training run from this .ckpt")
    parser.add_argument("--test_from_checkpoint", default=None, help="only test this .ckpt on the test set")
    parser.add_argument("--eval_from_checkpoint", default=None,
                        help="SED systems: only write score files of this .ckpt on the unlabeled data.eval_folder")
    parser.add_argument("--gpus", default=None,
                        help="0: CPU; N: N GPUs; '0,1' or '1,': these GPU indices (more than one GPU: DDP); "
                             "default: every GPU of the machine, else the CPU")
    parser.add_argument("--accelerator", choices=("cpu", "gpu"), default=None,
                        help="with --devices, replaces --gpus: e.g. '--accelerator cpu --devices 2' trains with 2 CPU "
                             "processes (DDP, gloo backend)")
    parser.add_argument("--devices", default=None,
                        help="processes per node with --accelerator: N, or GPU indices '0,1' (default 1)")
    parser.add_argument("--num_nodes", type=int, default=1,
                        help="machines of a multi-node run (SLURM or torchrun); --gpus/--devices count per node")
    parser.add_argument("--fast_dev_run", action="store_true",
                        help=f"smoke run: {FAST_DEV_EPOCHS} epochs of {FAST_DEV_BATCHES} batches each for train, "
                             "validation and test")
    parser.add_argument("--strong_real", action="store_true", default=system.strong_real,
                        help="SED systems: also train on the real strongly labelled set (training.batch_size needs 4 "
                             "entries)")
    parser.add_argument("--wandb", action="store_true", help="also log to Weights & Biases (if installed)")
    parser.add_argument("--set", dest="set_overrides", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                        help="override config values, e.g. --set training.n_epochs=3 opt.lr=0.01")
    parser.add_argument("--scores_file", default=system.scores_file,
                        help="score file (IRCT format) collecting the test metrics of every run; '' to skip")
    group = parser.add_argument_group(f"official {system.name} flags (set config keys)")
    for alias in system.aliases:
        if alias.key != "conf_file":
            group.add_argument(*alias.flags, dest=f"alias:{alias.key}", type=alias.type, default=None, help=alias.key)
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="more config overrides")
    return parser


def alias_values(system: System, args: argparse.Namespace) -> dict[str, Any]:
    """Config key -> value of the official flags given on the command line."""
    values = {alias.key: getattr(args, f"alias:{alias.key}", None) for alias in system.aliases}
    return {key: value for key, value in values.items() if key != "conf_file" and value is not None}


def default_gpus() -> str:
    """Every GPU of the machine, else the CPU (`"0"`, with a notice)."""
    count = torch.cuda.device_count()
    if count == 0:
        log.info("no GPU found: running on the CPU (--gpus 0)")
        return "0"
    return str(count)


@lru_cache(maxsize=None)
def system_schema(system: System) -> ConfigSchema | None:
    """The key schema of a system: the keys of its shipped configs (None when `confs/` is not installed)."""
    shipped = sorted({path for pattern in system.configs for path in CONFS.glob(pattern)})
    return ConfigSchema([load_config(path) for path in shipped]) if shipped else None


def resolve_system_config(conf_file: str, overrides: Sequence[str] = (), system: System | None = None,
                   aliases: Mapping[str, Any] | None = None) -> dict:
    """Load the config, check its keys, apply overrides and official flags, check again and, for an SED
    system with `data.mini` set, generate and point to the mini dataset.

    With a `system`, the file and the command line are checked against its schema (`system_schema`): an
    unknown or missing key is an `InputError` naming the file (or the command line) and the key. Without
    one, only the overrides are checked (they must name existing keys)."""
    file_config = load_config(conf_file)
    schema = system_schema(system) if system is not None else None
    if schema is not None:
        schema.check(file_config, str(conf_file), required=False)
    config = apply_overrides(file_config, overrides)
    for key, value in (aliases or {}).items():
        set_nested(config, key, value)
    if schema is not None:
        schema.check(config, f"{conf_file} with the command line")
    if system is None or system.sed:
        config = apply_mini_config(config, file_config=file_config)
    return config


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


def last_checkpoint(log_dir) -> ModelCheckpoint:
    """`<log_dir>/last.ckpt`, rewritten at the end of every training epoch (what `--resume_from_checkpoint`
    continues from). Lightning's `save_last` refreshes it only when a top-k checkpoint is saved, so after the
    best epoch it would keep an older state."""
    return ModelCheckpoint(dirpath=log_dir, filename="last", monitor=None, save_top_k=1, every_n_epochs=1,
                           save_on_train_epoch_end=True, enable_version_counter=False)


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


class EpochReport(pl.Callback):
    """One log line per validation epoch with its scalar metrics (per-class ones left out), also off a TTY."""

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        metrics = {name: float(value) for name, value in trainer.callback_metrics.items()
                   if name.startswith("val/") and "class" not in name and getattr(value, "numel", lambda: 1)() == 1}
        fitting = trainer.state.fn == "fit"
        log.info("%s: %s", f"epoch {trainer.current_epoch}" if fitting else "validation of the tested weights",
                 "  ".join(f"{name} {value:.4f}" for name, value in sorted(metrics.items())) or "validated")


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


def build_sed_task(task_cls: type, config: dict, log_dir: Path, evaluation: bool, checkpoint: dict | None,
                   strong_real: bool):
    """An SED task with the datasets of its mode (fit, test or evaluation), weights of `checkpoint` loaded."""
    encoder = build_encoder(config, task_cls.labels)
    report_dir = log_dir / "data_reports"
    if evaluation:
        task = task_cls(config, encoder, test_data=build_eval_dataset(config, encoder, report_dir),
                        log_dir=str(log_dir), evaluation=True)
    elif checkpoint is not None:
        task = task_cls(config, encoder, test_data=build_test_dataset(config, encoder, report_dir),
                        log_dir=str(log_dir))
    else:
        datasets = task_cls.build_datasets(config, encoder, strong_real=strong_real, report_dir=report_dir)
        task = task_cls(config, encoder, train_data=datasets.train, train_batch_sizes=datasets.train_batch_sizes,
                        valid_synth=datasets.valid_synth, valid_weak=datasets.valid_weak, test_data=datasets.test,
                        log_dir=str(log_dir))
    if checkpoint is not None:
        load_sed_checkpoint(task, checkpoint)
    return task


def build_classifier_task(system: System, task_cls: type, config: dict, log_dir: Path, checkpoint: dict | None):
    """A clip-classification task on the system's data, weights of `checkpoint` loaded (strictly)."""
    task = task_cls(config, **system.data(config, log_dir), log_dir=log_dir)
    if checkpoint is not None:
        try:
            task.load_state_dict(checkpoint["state_dict"])
        except (KeyError, RuntimeError) as error:
            raise BadInput(f"the checkpoint does not fit {task_cls.__name__}: {str(error).splitlines()[0]}") from None
    return task


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
    task_cls: type | None = None,
    explicit_keys: Sequence[str] = (),
    system: System | None = None,
    wandb: bool = False,
) -> dict:
    """Fit then test (the best checkpoint, or the last weights when the system monitors no metric), or
    only test / evaluate a checkpoint. Returns the test metrics.

    `system` defaults to the one of `task_cls`; `task_cls` to the system's. Everything is written into
    `log_dir` as given (see `run_folder` for choosing it). The config is saved there only once the data
    and the model have been built, so a run stopped by bad input leaves no log folder holding only a
    config. `explicit_keys`: config keys set on the command line (they win over a checkpoint's
    post-processing, see `checkpoint_architecture`).
    """
    system = system or (system_of_task(task_cls) if task_cls is not None else SYSTEMS["sed"])
    task_cls = task_cls or system.task_class(config)
    training = config["training"]
    seed = int(training.get("seed") or 0)
    seed_everything(seed)
    pl.seed_everything(seed, workers=True, verbose=False)
    log_dir_path = Path(log_dir)
    checkpoint_path = eval_from_checkpoint or test_from_checkpoint
    evaluation = eval_from_checkpoint is not None
    if evaluation and not system.sed:
        raise BadInput(f"--eval_from_checkpoint: {system.name} is not an SED system; use --test_from_checkpoint")
    tune_after_training = tuning_request(training.get("postprocess")) if system.sed else None
    if tune_after_training and checkpoint_path is not None:
        raise BadInput("training.postprocess: tuning runs after training; to test a checkpoint, tune with "
                       "`python -m desed_task.postprocess tune` and give the parameter file")
    checkpoint = None
    if resume_from_checkpoint is not None and not Path(resume_from_checkpoint).is_file():
        raise MissingInput(f"--resume_from_checkpoint {resume_from_checkpoint}: file not found")
    if checkpoint_path is not None:
        checkpoint = read_checkpoint(checkpoint_path)
        if system.sed:
            config = checkpoint_architecture(checkpoint, config, explicit_keys)
        log.info("loaded %s (epoch %s)", checkpoint_path, checkpoint.get("epoch"))
    if system.sed:
        task = build_sed_task(task_cls, config, log_dir_path, evaluation, checkpoint, strong_real)
    else:
        task = build_classifier_task(system, task_cls, config, log_dir_path, checkpoint)
    parameters = [(p.numel(), p.requires_grad) for p in task.parameters()]
    log.info("%s: %s parameters, %s trainable", task_cls.__name__, f"{sum(n for n, _ in parameters):,}",
             f"{sum(n for n, trainable in parameters if trainable):,}")
    rank_zero_only(save_config)(config, log_dir_path / "config.yaml")
    if resume_from_checkpoint is not None:  # the logger writes hparams.yaml only when absent: renew it
        rank_zero_only((log_dir_path / "hparams.yaml").unlink)(missing_ok=True)

    callbacks: list[pl.Callback] = [CodeCarbonCallback(log_dir, evaluation=evaluation), EnvironmentRecord(log_dir),
                                    EpochReport()]
    if checkpoint is None and system.monitor:
        callbacks += [
            EarlyStopping(monitor=system.monitor, patience=training["early_stop_patience"],
                          mode=task_cls.obj_metric_mode),
            ModelCheckpoint(dirpath=log_dir, monitor=system.monitor, mode=task_cls.obj_metric_mode, save_top_k=1),
        ]
    if checkpoint is None:
        callbacks.append(last_checkpoint(log_dir))
    limit = FAST_DEV_BATCHES if fast_dev_run else None  # None: all batches, without Lightning's notice for 1.0
    trainer = pl.Trainer(
        **trainer_devices(gpus, accelerator, devices, num_nodes),
        precision=trainer_precision(training.get("precision", 32)),
        max_epochs=FAST_DEV_EPOCHS if fast_dev_run else training["n_epochs"],
        callbacks=callbacks,
        logger=build_loggers(log_dir, wandb, project=str(config.get("project_name", "desed_task"))),
        gradient_clip_val=training.get("gradient_clip") or None,
        accumulate_grad_batches=training.get("accumulate_batches", 1),
        check_val_every_n_epoch=1 if fast_dev_run else training.get("validation_interval", 1),
        num_sanity_val_steps=0,
        log_every_n_steps=1 if fast_dev_run else int(training.get("log_every_n_steps", 40)),
        limit_train_batches=limit,
        limit_val_batches=limit,
        limit_test_batches=limit,
        deterministic=training.get("deterministic", False),
        enable_progress_bar=training.get("enable_progress_bar", True),
        enable_model_summary=False,  # its table reports "FLOPs 0" for these models; the line above counts parameters
        use_distributed_sampler=False,  # every task's loaders shard themselves
    )
    if checkpoint is None:
        trainer.fit(task, ckpt_path=resume_from_checkpoint)
        best = None
        if system.monitor:  # the monitored checkpoint is the first callback; without one, test the last weights
            best = trainer.checkpoint_callback.best_model_path
            log.info("best model: %s", best or "(none, testing the last weights)")
        if tune_after_training:  # the validation scores of the tested weights, to tune the post-processing on
            task.validate_for_tuning(trainer, best or None)
        trainer.test(task, ckpt_path=best or None, verbose=False)
    else:
        trainer.test(task, verbose=False)
    results = task.test_results
    if system.finish is not None:
        system.finish(task, results, config, log_dir_path)
    if results and trainer.is_global_zero and system.sed:
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


def main(argv: Sequence[str] | None = None, system: System | str | None = None,
         task_cls: type | None = None) -> dict:
    """Every recipe's entry point: parse the flags, resolve and check the config, run; returns the test metrics.

    `system`: a registry entry or its name (default: the one of `task_cls`, else `sed`); `task_cls`
    replaces the system's task class with a subclass (tests record with it). Logging goes to stderr
    (`utils.logs`). Bad input (`InputError`: config, data, checkpoint) ends the run with its one-line
    message and exit status 2, before anything is written. A smoke run (`--fast_dev_run`) never writes
    the score file.
    """
    configure_logging()
    keep_freed_memory()
    if system is None:
        system = system_of_task(task_cls) if task_cls is not None else "sed"
    system = get_system(system) if isinstance(system, str) else system
    args = build_parser(system).parse_args(argv)
    overrides = [*args.set_overrides, *args.overrides]
    try:
        config = resolve_system_config(args.conf_file, overrides, system, alias_values(system, args))
        log_dir = run_folder(args.log_dir, resume=args.resume_from_checkpoint is not None)
        if args.gpus is None and args.accelerator is None:
            args.gpus = default_gpus()
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
            system=system,
            wandb=args.wandb,
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
