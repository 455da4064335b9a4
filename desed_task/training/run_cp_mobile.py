"""Run logic of the CP-JKU recipes (``recipes/cpjku_dcase23/run_training.py`` and ``run_qat.py``).

Config from ``--conf_file`` (``confs/cpjku_dcase23/*.yaml``), then the official flags, ``--data_dir``
and ``KEY=VALUE`` overrides. ``data.mini`` (or ``--mini DIR``) generates the mini TAU22 and trains on it.
Writes ``results.json`` (test = fold1_evaluate metrics of the last epoch), ``complexity.json`` and, for
QAT, ``qat_report.json`` and the int8 model ``cp_mobile_int8.pt``.
"""
from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path
from typing import Sequence

import torch

from desed_task.data.mini_tau22 import TEACHER_FILE, ensure_mini_tau22
from desed_task.data.tau22 import DEVICE_GROUPS, TAU22_CLASSES, TAU22_DEVICES, build_tau22_datasets
from desed_task.nnet.cp_mobile import CPMobile
from desed_task.nnet.complexity import complexity_report, format_complexity_report, quantized_parameter_bytes
from desed_task.nnet.quantization import convert_to_int8
from desed_task.training.cp_mobile import CPMobileQATTask, CPMobileTask, add_official_flags, apply_official_flags
from desed_task.training.run_classification import add_common_flags, fit_and_test, report_results
from desed_task.utils.allocator import keep_freed_memory
from desed_task.utils.config import load_config

log = logging.getLogger(__name__)


def build_parser(qat: bool) -> argparse.ArgumentParser:
    stage = "qat" if qat else "default"
    parser = argparse.ArgumentParser(
        description="CP-JKU DCASE23 Task 1: " + ("quantisation-aware training of a trained CP-Mobile" if qat
                                                 else "CP-Mobile training with knowledge distillation"))
    parser.add_argument("--conf_file", default=f"confs/cpjku_dcase23/{stage}.yaml")
    parser.add_argument("--data_dir", default=None, help="TAU22 development folder (meta.csv, evaluation_setup/, audio/)")
    parser.add_argument("--mini", default=None, metavar="DIR",
                        help="generate (once) the mini TAU22 in DIR and train on it, with its teacher logits and IRs")
    if qat:
        parser.add_argument("--checkpoint", default=None,
                            help="trained CP-Mobile (.ckpt of run_training.py or the official one); qat.checkpoint")
    add_official_flags(parser)
    add_common_flags(parser, log_dir=f"exp/cpjku_dcase23/{'qat' if qat else 'training'}")
    return parser


def resolve_config(args: argparse.Namespace, qat: bool) -> dict:
    config = apply_official_flags(load_config(args.conf_file, [*args.set_overrides, *args.overrides]), args)
    data = config["data"]
    if args.data_dir:
        data["data_dir"] = args.data_dir
    mini = dict(data.get("mini") or {})
    if args.mini:
        mini["out"] = args.mini
    if mini:
        root = ensure_mini_tau22(mini.pop("out"), **mini)
        data.update(data_dir=str(root), teacher_logits=str(root / TEACHER_FILE), dir_path=str(root / "dirs"))
    if qat and getattr(args, "checkpoint", None):
        config.setdefault("qat", {})["checkpoint"] = args.checkpoint
    return config


def device_table(results: dict, stages: Sequence[str]) -> str:
    """Accuracy (%) per device, device set, overall and macro, one column per stage (e.g. test, test_fp32)."""
    rows = [*(f"acc_group.{d}" for d in TAU22_DEVICES), *(f"acc_set.{s}" for s in DEVICE_GROUPS), "acc", "macro_acc"]
    lines = [f"{'':<16}" + "".join(f"{stage:>12}" for stage in stages)]
    for row in rows:
        values = [results.get(f"{stage}/{row}") for stage in stages]
        if any(value is not None for value in values):
            label = row.split(".")[-1] if "." in row else row
            lines.append(f"{label:<16}" + "".join("           -" if v is None else f"{100 * v:>12.2f}" for v in values))
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None, qat: bool = False) -> dict:
    args = build_parser(qat).parse_args(argv)
    keep_freed_memory()
    config = resolve_config(args, qat)
    log_dir = Path(args.log_dir)
    teacher = config["data"].get("teacher_logits") if float(config["training"]["kd_lambda"]) < 1 else None
    train, evaluate = build_tau22_datasets(config["data"]["data_dir"], config["data"].get("cache_dir"), teacher,
                                           report_dir=log_dir / "data_reports")
    task_cls = CPMobileQATTask if qat else CPMobileTask
    task = task_cls(config, TAU22_CLASSES, train_data=train, valid_data=evaluate, group_names=TAU22_DEVICES,
                    log_dir=log_dir)
    report = complexity_report(CPMobile(**config.get("model", {})))  # depends on the architecture only
    print(format_complexity_report(report))
    results = fit_and_test(task, log_dir, gpus=args.gpus, fast_dev_run=args.fast_dev_run, wandb=args.wandb)
    report_results(report, log_dir / "complexity.json")
    if qat:
        int8 = convert_to_int8(task.model)
        path = log_dir / "cp_mobile_int8.pt"
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        torch.save(int8.state_dict(), tmp)
        os.replace(tmp, path)
        summary = {"fake_quant_acc": results.get("test_fp32/acc"), "int8_acc": results.get("test/acc"),
                   "int8_param_bytes": report["int8"]["param_bytes"],
                   "int8_stored_param_bytes": quantized_parameter_bytes(int8),
                   "int8_state_dict_file_bytes": path.stat().st_size}
        report_results(summary, log_dir / "qat_report.json")
        print(device_table(results, ("test_fp32", "test")))
        print(f"int8 model: {summary['int8_stored_param_bytes']:,} parameter bytes as stored, "
              f"{summary['int8_state_dict_file_bytes']:,} bytes on disk ({path})")
    else:
        print(device_table(results, ("test",)))
    return results

