"""Build the train / validation / test / evaluation datasets of a DCASE-style config `data` section.

Order of work: resample cache for every `*_folder_44k` that is set (so `*_folder` holds 16 kHz audio),
validated datasets (see `manifest` for the checks; the validation and test audio is also checked against
its durations TSV), then durations TSVs written when absent, from the clips that passed the checks.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from torch.utils.data import ConcatDataset

from desed_task.data.datasets import StronglyAnnotatedSet, UnlabeledSet, WeaklyAnnotatedSet, split_weak
from desed_task.data.encoder import ManyHotEncoder
from desed_task.data.manifest import write_durations
from desed_task.data.resample import resample_folder
from desed_task.utils.errors import BadInput

log = logging.getLogger(__name__)


@dataclass
class SEDDatasets:
    """Everything a SED run needs from the data layer.

    `train` is ConcatDataset([synth, (strong,) weak, unlabeled]) with `train_batch_sizes` in the same order
    (feed both to MultiSetBatchSampler). The ground truth and durations of the strongly labelled
    evaluations stay at the config's `synth_val_tsv`/`synth_val_dur` and `test_tsv`/`test_dur`.
    """

    train: ConcatDataset
    train_batch_sizes: list[int]
    valid_synth: StronglyAnnotatedSet
    valid_weak: WeaklyAnnotatedSet
    test: StronglyAnnotatedSet


def _require(data: dict, key: str) -> Any:
    if data.get(key) in (None, ""):
        raise BadInput(f"config key data.{key} must be set")
    return data[key]


def prepare_folder(data: dict, name: str) -> str:
    """Resample `data[name + '_44k']` into `data[name]` when the former is set; return the 16 kHz folder."""
    folder = _require(data, name)
    source = data.get(f"{name}_44k")
    if source:
        resample_folder(source, folder, target_fs=int(data.get("fs", 16000)))
    elif not Path(folder).is_dir():
        raise BadInput(f"config key data.{name} = {folder}: folder not found (and data.{name}_44k is not set)")
    return folder


def _existing_durations(data: dict, set_name: str) -> str | None:
    """`data[set_name + '_dur']` when that file exists (the audio is then checked against it)."""
    path = _require(data, f"{set_name}_dur")
    return path if Path(path).is_file() else None


def _ensure_durations(data: dict, set_name: str, dataset: StronglyAnnotatedSet) -> None:
    """Write `data[set_name + '_dur']` when it is missing, from the clips of `dataset` that passed the checks."""
    path = data[f"{set_name}_dur"]
    if not Path(path).is_file():
        log.info("writing missing durations file %s", path)
        write_durations(data[f"{set_name}_folder"], path, list(dataset.audio_info))


def _common(data: dict, encoder: ManyHotEncoder, report_dir) -> dict:
    return {"encoder": encoder, "audio_max_len": data.get("audio_max_len", 10), "fs": int(data.get("fs", 16000)),
            "report_dir": report_dir}


def build_test_dataset(config: dict, encoder: ManyHotEncoder, report_dir=None) -> StronglyAnnotatedSet:
    """The test set for `--test_from_checkpoint` and the end of training (durations file written if absent)."""
    data = config["data"]
    folder = prepare_folder(data, "test_folder")
    test_tsv = _require(data, "test_tsv")
    test = StronglyAnnotatedSet(folder, test_tsv, split="test", config_key="test_tsv",
                                durations=_existing_durations(data, "test"), **_common(data, encoder, report_dir))
    _ensure_durations(data, "test", test)
    return test


def build_eval_dataset(config: dict, encoder: ManyHotEncoder, report_dir=None) -> UnlabeledSet:
    """The unlabeled evaluation set (`data.eval_folder`) for `--eval_from_checkpoint`."""
    data = config["data"]
    folder = prepare_folder(data, "eval_folder")
    return UnlabeledSet(folder, split="eval", config_key="eval_folder", **_common(data, encoder, report_dir))


def build_strong_val_dataset(config: dict, encoder: ManyHotEncoder,
                             report_dir=None) -> StronglyAnnotatedSet | None:
    """The real strongly labelled validation set (`data.strong_val_folder`, `strong_val_tsv`, `strong_val_dur`:
    ATST-SED's audioset_strong_val.tsv), or None when `data.strong_val_tsv` is not set; its durations file is
    written when absent. Clips also listed in `data.strong_tsv` are trained on, so they are reported."""
    data = config["data"]
    if data.get("strong_val_tsv") in (None, ""):
        return None
    valid = StronglyAnnotatedSet(prepare_folder(data, "strong_val_folder"), data["strong_val_tsv"], split="strong_val",
                                 config_key="strong_val_tsv", durations=_existing_durations(data, "strong_val"),
                                 **_common(data, encoder, report_dir))
    _ensure_durations(data, "strong_val", valid)
    strong_tsv = data.get("strong_tsv")
    if strong_tsv and Path(strong_tsv).is_file():
        trained = set(pd.read_csv(strong_tsv, sep="\t", usecols=["filename"], dtype=str)["filename"])
        overlap = trained.intersection(valid.filenames)
        if overlap:
            log.warning("%d of the %d clips of data.strong_val_tsv are training clips of data.strong_tsv (%s): "
                        "the validation set should be held out", len(overlap), len(valid), strong_tsv)
    return valid


def build_sed_datasets(config: dict, encoder: ManyHotEncoder, strong_real: bool = False, report_dir=None) -> SEDDatasets:
    """Resample, validate and build the train, validation and test sets of `config` (DCASE 2022 keys).

    With `strong_real`, the real strongly labelled set is inserted after the synthetic one and
    `training.batch_size` must list four sizes [synth, strong, weak, unlabeled].
    """
    data, training = config["data"], config["training"]
    batch_sizes = list(training["batch_size"])
    expected = 4 if strong_real else 3
    if len(batch_sizes) != expected:
        layout = "[synth, strong, weak, unlabeled]" if strong_real else "[synth, weak, unlabeled]"
        raise BadInput(
            f"training.batch_size = {batch_sizes} must have {expected} entries {layout}"
            + (" when strong_real is set" if strong_real else "")
        )
    common = _common(data, encoder, report_dir)
    train_sets = [StronglyAnnotatedSet(prepare_folder(data, "synth_folder"), _require(data, "synth_tsv"),
                                       random_crop=True, split="synth_train", config_key="synth_tsv", **common)]
    if strong_real:
        train_sets.append(StronglyAnnotatedSet(prepare_folder(data, "strong_folder"), _require(data, "strong_tsv"),
                                               random_crop=True, split="strong_train", config_key="strong_tsv", **common))
    weak_folder = prepare_folder(data, "weak_folder")
    weak_train_df, weak_valid_df = split_weak(_require(data, "weak_tsv"), training.get("weak_split", 0.9),
                                              training.get("seed", 42))
    train_sets.append(WeaklyAnnotatedSet(weak_folder, weak_train_df, random_crop=True, split="weak_train",
                                         config_key="weak_tsv", **common))
    train_sets.append(UnlabeledSet(prepare_folder(data, "unlabeled_folder"), random_crop=True, split="unlabeled_train",
                                   config_key="unlabeled_folder", **common))

    valid_synth = StronglyAnnotatedSet(prepare_folder(data, "synth_val_folder"), _require(data, "synth_val_tsv"),
                                       split="synth_val", config_key="synth_val_tsv",
                                       durations=_existing_durations(data, "synth_val"), **common)
    valid_weak = WeaklyAnnotatedSet(weak_folder, weak_valid_df, split="weak_val",
                                    config_key="weak_tsv (validation part, training.weak_split)", **common)
    _ensure_durations(data, "synth_val", valid_synth)
    return SEDDatasets(
        train=ConcatDataset(train_sets),
        train_batch_sizes=batch_sizes,
        valid_synth=valid_synth,
        valid_weak=valid_weak,
        test=build_test_dataset(config, encoder, report_dir),
    )
