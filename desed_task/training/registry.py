"""The systems this package trains: one `System` entry each, run by `desed_task.training.run.main`.

A system names its task class, its data (SED systems: the shared DESED builders; clip classifiers: a
`data` function), its default config and log folder, the shipped configs that define its valid keys,
and the official flag names of its paper (aliases of config keys). Adding a system is one entry here
plus its task module, its configs under `confs/` and a recipe script calling `main(system=...)`.

Files of each family:
  sed, irct, probe, atst_stage1/2, pretrained, dcase2024:
      `training/{sed,sed_data,sed_scoring,irct,probe,atst_sed,pretrained,dcase2024}.py`,
      `data/{build,datasets,sampler,maestro}.py`, `nnet/{crnn,atst,panns,ast,beats}.py`, `embeddings/`.
  uclser: `training/uclser.py`, `data/fsdnoisy18k.py`, `features/uclser_augment.py`, `nnet/uclser.py`.
  cp_mobile, cp_mobile_qat: `training/cp_mobile.py`, `data/tau22.py`, `features/cpjku.py`,
      `nnet/{cp_mobile,quantization,complexity}.py`.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import torch
from pytorch_lightning.utilities import rank_zero_only

from desed_task.data.fsdnoisy18k import (FSD_CLASSES, EvaluationPatchDataset, FeatureStore, SupervisedPatchDataset,
                                         clean_split)
from desed_task.data.mini_fsdnoisy18k import ensure_mini_fsdnoisy18k
from desed_task.data.mini_tau22 import TEACHER_FILE, ensure_mini_tau22
from desed_task.data.tau22 import DEVICE_GROUPS, TAU22_CLASSES, TAU22_DEVICES, build_tau22_datasets
from desed_task.features.uclser_augment import PatchAugment, dataset_mean_std
from desed_task.nnet.complexity import complexity_report, format_complexity_report, quantized_parameter_bytes
from desed_task.nnet.cp_mobile import CPMobile
from desed_task.nnet.quantization import convert_to_int8
from desed_task.training.atst_sed import ATSTSEDStage1, ATSTSEDStage2
from desed_task.training.cp_mobile import OFFICIAL_FLAGS, CPMobileQATTask, CPMobileTask
from desed_task.training.dcase2024 import DCASE2024Task
from desed_task.training.irct import IRCTTask
from desed_task.training.pretrained import PretrainedSEDTask
from desed_task.training.probe import ProbeTask
from desed_task.training.sed import SEDTask
from desed_task.training.uclser import ContrastiveTask, UCLSERTask
from desed_task.training.uclser_data import ContrastivePatchDataset, extract_fsdnoisy18k
from desed_task.utils.config import get_nested
from desed_task.utils.errors import BadInput, MissingInput
from desed_task.utils.files import atomic_path, write_json

log = logging.getLogger(__name__)

CONFS = Path(__file__).resolve().parents[2] / "confs"


@dataclass(frozen=True)
class Alias:
    """An official command-line flag that sets one config key (`--data_dir D` is `data.data_dir=D`)."""

    flags: tuple[str, ...]
    key: str
    type: Callable[[str], Any] = str


@dataclass(frozen=True)
class System:
    """One trainable system.

    task: the task class; `task_for(config)` may pick a subclass from the config (UCLSER's stage).
    configs: glob patterns under `confs/`; their keys are the valid keys of the system's configs, and
        the keys all of them share are required (`utils.config.check_config`).
    data: clip classifiers only: `(config, log_dir) -> task keyword arguments` (datasets, class names).
    finish: after the test: `(task, results, config, log_dir)` writes the system's extra reports.
    monitor: the validation metric selecting the tested checkpoint; None: the last epoch is tested.
    marker: a config key (section or dotted path) found only in this system's checkpoints (how inference
        recognises them).
    """

    name: str
    description: str
    task: type
    conf_file: str
    log_dir: str
    configs: tuple[str, ...]
    aliases: tuple[Alias, ...] = ()
    recipe: str = ""
    data: Callable[[dict, Path], dict] | None = None
    finish: Callable[[Any, dict, dict, Path], None] | None = None
    task_for: Callable[[dict], type] | None = None
    monitor: str | None = "val/obj_metric"
    strong_real: bool = False
    scores_file: str | None = None
    marker: str | None = None

    @property
    def sed(self) -> bool:
        """Whether the system is a sound event detector (the SED task, datasets and evaluation)."""
        return issubclass(self.task, SEDTask)

    def task_class(self, config: Mapping) -> type:
        return self.task_for(config) if self.task_for else self.task


# ---------------------------------------------------------------- CP-JKU (TAU22 acoustic scenes)
def tau22_data(config: dict, log_dir: Path) -> dict:
    """TAU22 train / evaluate datasets; `data.mini` generates (once) the mini TAU22 and points there."""
    data = config["data"]
    mini = dict(data.get("mini") or {})
    if mini:
        root = ensure_mini_tau22(mini.pop("out_dir", "data/mini_tau22"), **mini)
        data.update(data_dir=str(root), teacher_logits=str(root / TEACHER_FILE), dir_path=str(root / "dirs"))
    if not Path(data["data_dir"]).is_dir():
        raise MissingInput(f"data.data_dir {data['data_dir']}: folder not found (or set data.mini)")
    teacher = data.get("teacher_logits") if float(config["training"]["kd_lambda"]) < 1 else None
    if teacher is not None and not Path(teacher).is_file():
        raise MissingInput(f"data.teacher_logits {teacher}: file not found (kd_lambda < 1 needs it)")
    train, evaluate = build_tau22_datasets(data["data_dir"], data.get("cache_dir"), teacher,
                                           report_dir=log_dir / "data_reports")
    print(format_complexity_report(complexity_report(CPMobile(**config.get("model", {})))))
    return {"class_names": TAU22_CLASSES, "train_data": train, "valid_data": evaluate, "group_names": TAU22_DEVICES}


def device_table(results: dict, stages: tuple[str, ...]) -> str:
    """Accuracy (%) per device, device set, overall and macro, one column per stage (e.g. test, test_fp32)."""
    rows = [*(f"acc_group.{d}" for d in TAU22_DEVICES), *(f"acc_set.{s}" for s in DEVICE_GROUPS), "acc", "macro_acc"]
    lines = [f"{'':<16}" + "".join(f"{stage:>12}" for stage in stages)]
    for row in rows:
        values = [results.get(f"{stage}/{row}") for stage in stages]
        if any(value is not None for value in values):
            label = row.split(".")[-1] if "." in row else row
            lines.append(f"{label:<16}" + "".join("           -" if v is None else f"{100 * v:>12.2f}" for v in values))
    return "\n".join(lines)


@rank_zero_only
def cp_mobile_finish(task, results: dict, config: dict, log_dir: Path) -> None:
    """`complexity.json` (of the architecture) and the per-device accuracy table."""
    report = complexity_report(CPMobile(**config.get("model", {})))
    write_json(log_dir / "complexity.json", report, indent=2, sort_keys=True)
    print(device_table(results, ("test",)))


@rank_zero_only
def cp_mobile_qat_finish(task, results: dict, config: dict, log_dir: Path) -> None:
    """`complexity.json`, the int8 model `cp_mobile_int8.pt` and `qat_report.json` (accuracies, sizes)."""
    report = complexity_report(CPMobile(**config.get("model", {})))
    write_json(log_dir / "complexity.json", report, indent=2, sort_keys=True)
    int8 = convert_to_int8(task.model)
    path = log_dir / "cp_mobile_int8.pt"
    with atomic_path(path) as tmp:
        torch.save(int8.state_dict(), tmp)
    summary = {"fake_quant_acc": results.get("test_fp32/acc"), "int8_acc": results.get("test/acc"),
               "int8_param_bytes": report["int8"]["param_bytes"],
               "int8_stored_param_bytes": quantized_parameter_bytes(int8),
               "int8_state_dict_file_bytes": path.stat().st_size}
    write_json(log_dir / "qat_report.json", summary, indent=2, sort_keys=True)
    print(device_table(results, ("test_fp32", "test")))
    print(f"int8 model: {summary['int8_stored_param_bytes']:,} parameter bytes as stored, "
          f"{summary['int8_state_dict_file_bytes']:,} bytes on disk ({path})")


CPJKU_ALIASES = (
    Alias(("--data_dir",), "data.data_dir"),
    Alias(("--mini",), "data.mini.out_dir"),
    Alias(("--experiment_name",), "run_name"),
    *(Alias((f"--{flag}",), f"{section}.{key}", kind) for flag, (section, key, kind) in OFFICIAL_FLAGS.items()),
)


# ---------------------------------------------------------------- UCLSER (FSDnoisy18k)
UCLSER_STAGES = {"Contrastive": ContrastiveTask, "CE": UCLSERTask}


def uclser_stage(config: Mapping) -> type:
    """`learn.method`: `Contrastive` (pre-training) or `CE` (supervised, fine-tuning, linear evaluation)."""
    method = config["learn"]["method"]
    if method not in UCLSER_STAGES:
        raise BadInput(f"learn.method must be one of {sorted(UCLSER_STAGES)}, got {method!r}")
    return UCLSER_STAGES[method]


def prepare_features(data: dict, report_dir: Path | None = None, workers: int = 1) -> dict[str, Path]:
    """Generate the mini dataset if configured, then make sure every split's HDF5 file is complete."""
    root = data["root"]
    if data.get("mini"):
        options = dict(data["mini"])
        root = options.pop("out_dir", root)
        ensure_mini_fsdnoisy18k(root, **options)
    if not Path(root).is_dir():
        raise MissingInput(f"data.root {root}: folder not found (or set data.mini)")
    return extract_fsdnoisy18k(root, data["hdf5_dir"], report_dir=report_dir, workers=workers,
                               progress=bool(data.get("progress", True)))


def fsdnoisy18k_data(config: dict, log_dir: Path) -> dict:
    """Features (extracted once), the stage's train / validation / test patch datasets.

    Training on the noisy set validates on the clean set; `learn.train_on_clean` trains on 85 % of the
    clean set and validates on the rest (`data.clean_split`: correct | official, see `clean_split`).
    """
    data, learn = config["data"], config["learn"]
    uclser_stage(config)
    hdf5 = prepare_features(data, log_dir / "data_reports", workers=int(data.get("extract_workers", 1)))
    in_memory = bool(data.get("in_memory", False))
    clean = FeatureStore(hdf5["clean"], in_memory=in_memory)
    if learn.get("train_on_clean"):
        train_ids, val_ids = clean_split(len(clean), int(config["training"].get("seed") or 0),
                                         mode=data.get("clean_split", "correct"))
        train = FeatureStore(hdf5["clean"], in_memory=in_memory, subset=train_ids)
        valid = FeatureStore(hdf5["clean"], in_memory=in_memory, subset=val_ids)
    else:
        train, valid = FeatureStore(hdf5["noisy"], in_memory=in_memory), clean
    test = FeatureStore(hdf5["test"], in_memory=in_memory)
    mean, std = dataset_mean_std(train, data.get("std_mode", "correct"))
    log.info("normalisation (%s std): mean %.6g, std %.6g", data.get("std_mode", "correct"), mean, std)
    patch_len, patch_hop = int(data.get("patch_len", 101)), int(data.get("patch_hop", 50))
    if learn["method"] == "Contrastive":
        train_set = ContrastivePatchDataset(train, mean, std, PatchAugment.from_config(config.get("da")),
                                            float(learn.get("mix_back_alpha", 0.05)), patch_len)
    else:
        augment = PatchAugment.from_config(config["da"]) if config.get("da") else None
        train_set = SupervisedPatchDataset(train, mean, std, augment, patch_len)
    return {"class_names": FSD_CLASSES, "train_data": train_set,
            "valid_data": EvaluationPatchDataset(valid, mean, std, patch_len, patch_hop),
            "test_data": EvaluationPatchDataset(test, mean, std, patch_len, patch_hop)}


@rank_zero_only
def uclser_finish(task, results: dict, config: dict, log_dir: Path) -> None:
    """`summary.json`: stage, encoder source, normalisation, test and last validation metrics."""
    summary = {"method": config["learn"]["method"], "lin_eval": bool(config["learn"].get("lin_eval")),
               "pretrained_path": config["model"].get("pretrained_path"),
               "normalisation": [task.test_data.mean, task.test_data.std], "test": results, "val": task.validation_results}
    write_json(log_dir / "summary.json", summary, indent=2, sort_keys=True)
    printable = {name: round(value, 4) for name, value in results.items() if "class." not in name}
    print(f"test results: {printable}")


# ---------------------------------------------------------------- the registry
BASELINE = ("dcase2022_task4_baseline/default*.yaml", "dcase2022_task4_baseline/demo.yaml", "irct/default_*.yaml")

SYSTEMS: dict[str, System] = {system.name: system for system in (
    System("sed", "DCASE 2022 Task 4 baseline: mean-teacher CRNN", SEDTask,
           "./confs/dcase2022_task4_baseline/default.yaml", "./exp/2022_baseline", BASELINE,
           recipe="recipes/dcase2022_task4_baseline/train_sed.py"),
    System("pretrained", "CRNN with late fusion of PANNs / AST / BEATs embeddings", PretrainedSEDTask,
           "./confs/dcase2022_task4_baseline/pretrained_ast_frame.yaml", "./exp/2022_pretrained",
           ("dcase2022_task4_baseline/pretrained_*.yaml", "dcase2023_task4_baseline/*.yaml",
            "dcase2022_task4_baseline/demo_pretrained.yaml"),
           recipe="recipes/dcase2022_task4_baseline/train_pretrained.py", marker="pretrained"),
    System("dcase2024", "DCASE 2024 Task 4 baseline: DESED + MAESTRO, BEATs late fusion, class masks", DCASE2024Task,
           "./confs/dcase2024_task4_baseline/default.yaml", "./exp/2024_baseline", ("dcase2024_task4_baseline/*.yaml",),
           recipe="recipes/dcase2024_task4_baseline/train_sed.py", strong_real=True, marker="data.maestro_root"),
    System("irct", "IRCT: CRNN with an invariance loss at one layer", IRCTTask,
           "./confs/irct/irct_t1_l3_1.yaml", "./exp/irct", ("irct/irct_*.yaml",),
           recipe="recipes/irct/irct_train_sed.py", scores_file="misc/scores.txt", marker="irct"),
    System("probe", "IRCT probe: a small head on a frozen baseline layer", ProbeTask,
           "./confs/irct/probe_h16_l5_3.yaml", "./exp/probe", ("irct/probe_*.yaml",),
           recipe="recipes/irct/probe_train_sed.py", scores_file="misc/scores.txt"),
    System("atst_stage1", "ATST-SED stage 1: CRNN on a frozen ATST-Frame", ATSTSEDStage1,
           "./confs/atst_sed/stage1.yaml", "./exp/atst_sed_stage1", ("atst_sed/*.yaml",),
           recipe="recipes/atst_sed/train_stage1.py", strong_real=True, marker="atst_feats"),
    System("atst_stage2", "ATST-SED stage 2: the fused CRNN + ATST-Frame fine-tuned", ATSTSEDStage2,
           "./confs/atst_sed/stage2.yaml", "./exp/atst_sed_stage2", ("atst_sed/*.yaml",),
           recipe="recipes/atst_sed/train_stage2.py", strong_real=True),
    System("uclser", "UCLSER: contrastive pre-training, linear evaluation, fine-tuning", UCLSERTask,
           "./confs/uclser20/params_unsupervised_cl.yaml", "./exp/uclser20", ("uclser20/*.yaml",),
           aliases=(Alias(("-p", "--params"), "conf_file"),), recipe="recipes/uclser20/main_train.py",
           data=fsdnoisy18k_data, finish=uclser_finish, task_for=uclser_stage, monitor=None, marker="learn"),
    System("cp_mobile", "CP-JKU: CP-Mobile acoustic scene classifier trained with distillation", CPMobileTask,
           "./confs/cpjku_dcase23/default.yaml", "./exp/cpjku_dcase23/training",
           ("cpjku_dcase23/default.yaml", "cpjku_dcase23/demo.yaml"), aliases=CPJKU_ALIASES,
           recipe="recipes/cpjku_dcase23/run_training.py", data=tau22_data, finish=cp_mobile_finish, monitor=None,
           marker="mel"),
    System("cp_mobile_qat", "CP-JKU: quantisation-aware training of a trained CP-Mobile", CPMobileQATTask,
           "./confs/cpjku_dcase23/qat.yaml", "./exp/cpjku_dcase23/qat",
           ("cpjku_dcase23/qat.yaml", "cpjku_dcase23/demo_qat.yaml"),
           aliases=(*CPJKU_ALIASES, Alias(("--checkpoint",), "qat.checkpoint")),
           recipe="recipes/cpjku_dcase23/run_qat.py", data=tau22_data, finish=cp_mobile_qat_finish, monitor=None,
           marker="qat"),
)}


def get_system(name: str) -> System:
    if name not in SYSTEMS:
        raise BadInput(f"unknown system {name!r} (known: {', '.join(SYSTEMS)})")
    return SYSTEMS[name]


def system_of_task(task_cls: type) -> System:
    """The entry whose task class `task_cls` is or derives from (the nearest one)."""
    for base in task_cls.__mro__:
        for system in SYSTEMS.values():
            if system.task is base:
                return system
    raise BadInput(f"{task_cls.__name__} belongs to no registered system")


FIRST_MARKERS = ("cp_mobile_qat", "dcase2024")  # their configs also hold another system's marker
_ABSENT = object()


def system_of_config(config: Mapping) -> System | None:
    """The system whose `marker` key `config` (a checkpoint's hyper-parameters) has (a section: as a mapping);
    None: none does.

    QAT before CP-Mobile and DCASE 2024 before the embedding baselines (their configs hold both markers)."""
    order = sorted((s for s in SYSTEMS.values() if s.marker), key=lambda s: s.name not in FIRST_MARKERS)
    return next((s for s in order if has_marker(config, s.marker)), None)


def has_marker(config: Mapping, marker: str) -> bool:
    if "." in marker:
        return get_nested(config, marker, _ABSENT) is not _ABSENT
    return isinstance(config.get(marker), Mapping)
