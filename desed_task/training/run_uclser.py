"""Run entry of the UCLSER recipes: features (extracted once to HDF5), datasets and the stage's task.

    python recipes/uclser20/main_train.py -p confs/uclser20/params_unsupervised_cl.yaml [--log_dir D]
        [--gpus 0] [--fast_dev_run] [section.key=value ...]

``learn.method`` picks the stage: ``Contrastive`` (pre-training) or ``CE`` (supervised: from scratch,
fine-tuning, or linear evaluation with ``learn.lin_eval``). Data come from ``data.root`` (the real
FSDnoisy18k layout) or, when ``data.mini`` is set, from a generated mini FSDnoisy18k.
"""
from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Sequence

import pytorch_lightning as pl

from desed_task.data.fsdnoisy18k import (FSD_CLASSES, EvaluationPatchDataset, FeatureStore, SupervisedPatchDataset,
                                         clean_split)
from desed_task.data.mini_fsdnoisy18k import ensure_mini_fsdnoisy18k
from desed_task.features.uclser_augment import PatchAugment, dataset_mean_std
from desed_task.training.run_classification import add_common_flags, fit_and_test, report_results
from desed_task.training.uclser import ContrastiveTask, UCLSERTask
from desed_task.training.uclser_data import ContrastivePatchDataset, extract_fsdnoisy18k
from desed_task.utils.allocator import keep_freed_memory
from desed_task.utils.config import load_config
from desed_task.utils.seed import seed_everything

log = logging.getLogger(__name__)

METHODS = {"Contrastive": ContrastiveTask, "CE": UCLSERTask}


def prepare_features(data: dict, workers: int = 1) -> dict[str, Path]:
    """Generate the mini dataset if configured, then make sure every split's HDF5 file is complete."""
    root = data["root"]
    if data.get("mini"):
        options = dict(data["mini"])
        root = options.pop("out_dir", root)
        ensure_mini_fsdnoisy18k(root, **options)
    return extract_fsdnoisy18k(root, data["hdf5_dir"], report_dir=data.get("report_dir"), workers=workers,
                               progress=bool(data.get("progress", True)))


def build_datasets(config: dict, hdf5: dict[str, Path]) -> tuple:
    """(train, validation, test) datasets of the stage and the normalisation (mean, std) used.

    Training on the noisy set validates on the clean set; ``learn.train_on_clean`` trains on 85 % of the
    clean set and validates on the rest (``data.clean_split``: correct | official, see ``clean_split``).
    """
    data, learn = config["data"], config["learn"]
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
    return (train_set, EvaluationPatchDataset(valid, mean, std, patch_len, patch_hop),
            EvaluationPatchDataset(test, mean, std, patch_len, patch_hop), (mean, std))


def run(config: dict, log_dir: str, gpus: str = "0", fast_dev_run: bool = False) -> dict:
    """Extract (if needed), build the stage's task and datasets, fit, test; returns the test metrics."""
    method = config["learn"]["method"]
    if method not in METHODS:
        raise ValueError(f"learn.method must be one of {sorted(METHODS)}, got {method!r}")
    hdf5 = prepare_features(config["data"], workers=int(config["data"].get("extract_workers", 1)))
    train, valid, test, (mean, std) = build_datasets(config, hdf5)
    seed = int(config["training"].get("seed") or 0)
    seed_everything(seed)
    pl.seed_everything(seed, workers=True, verbose=False)
    task = METHODS[method](config, FSD_CLASSES, train_data=train, valid_data=valid, test_data=test, log_dir=log_dir)
    results = fit_and_test(task, log_dir, gpus=gpus, fast_dev_run=fast_dev_run)
    summary = {"method": method, "lin_eval": bool(config["learn"].get("lin_eval")),
               "pretrained_path": config["model"].get("pretrained_path"), "normalisation": [mean, std],
               "test": results, "val": task.validation_results}
    report_results(summary, Path(log_dir) / "summary.json")
    return results


def main(argv: Sequence[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description="UCLSER: contrastive pre-training, linear evaluation, fine-tuning")
    parser.add_argument("-p", "--params", required=True, help="YAML config (confs/uclser20/params_*.yaml)")
    add_common_flags(parser, log_dir="exp/uclser20")
    args = parser.parse_args(argv)
    keep_freed_memory()
    config = load_config(args.params, [*args.set_overrides, *args.overrides])
    results = run(config, args.log_dir, gpus=args.gpus, fast_dev_run=args.fast_dev_run)
    printable = {name: round(value, 4) for name, value in results.items() if "class." not in name}
    print(f"test results: {printable}")
    return results


def extract_main(argv: Sequence[str] | None = None) -> None:
    """``recipes/uclser20/extract.py``: the features of every split to HDF5 (resumable, atomic)."""
    parser = argparse.ArgumentParser(description="Extract UCLSER log-mel features of FSDnoisy18k to HDF5")
    parser.add_argument("-p", "--params", required=True, help="YAML config with the data section")
    parser.add_argument("--workers", type=int, default=1, help="extraction processes")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides")
    args = parser.parse_args(argv)
    keep_freed_memory()
    config = load_config(args.params, args.overrides)
    for split, path in prepare_features(config["data"], workers=args.workers).items():
        print(f"{split}: {path}")
