"""Extract the embeddings of a pretrained model for every split a config uses, one HDF5 file per split.

    python -m desed_task.embeddings.extract --model beats --checkpoint pretrained_models/BEATs_iter3_plus_AS2M.pt \
        --conf_file confs/dcase2023_task4_baseline/pretrained_beats.yaml --out embeddings/beats

Splits (file names of the official recipes): synth_train, strong_train, weak_train (the whole weak folder;
weak_val.hdf5 is a hard link to it, the split into train/validation happens when training),
unlabeled_train, synth_val, devtest and eval, for each of whose folders the config sets. Clips are read
at ``data.fs`` (resampled when needed), cropped or zero-padded to ``data.audio_max_len`` from their
start (no random crop). Unreadable files are skipped and listed in ``<out>/data_reports``. A finished
split is not redone; an interrupted one resumes where it stopped.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Sequence

import torch
from torch.utils.data import DataLoader, Dataset

from desed_task.data.audio import crop_or_pad, list_audio_files, read_audio
from desed_task.data.build import prepare_folder
from desed_task.data.manifest import check_audio_files
from desed_task.data.mini import resolve_config
from desed_task.embeddings.models import EMBEDDING_MODELS, build_embedding_model
from desed_task.embeddings.store import EmbeddingWriter, embedding_file
from desed_task.utils.allocator import keep_freed_memory
from desed_task.utils.errors import InputError

log = logging.getLogger(__name__)

SPLIT_FOLDERS = {  # extracted split -> config key of its 16 kHz folder
    "synth_train": "synth_folder",
    "strong_train": "strong_folder",
    "weak_train": "weak_folder",
    "unlabeled_train": "unlabeled_folder",
    "synth_val": "synth_val_folder",
    "test": "test_folder",
    "eval": "eval_folder",
}


class ClipSet(Dataset):
    """Fixed-length clips of a folder: (waveform, stem)."""

    def __init__(self, folder, names: Sequence[str], fs: int, n_samples: int):
        self.folder, self.names, self.fs, self.n_samples = Path(folder), list(names), fs, n_samples

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, index: int):
        audio = read_audio(self.folder / self.names[index], self.fs)
        return torch.from_numpy(crop_or_pad(audio, self.n_samples, 0)[0]), Path(self.names[index]).stem


def split_folders(data: dict) -> dict[str, str]:
    """The splits whose folder the config sets and that exist (after resampling from ``*_44k``)."""
    folders = {}
    for split, key in SPLIT_FOLDERS.items():
        if not data.get(key):
            continue
        if not Path(data[key]).is_dir() and not (data.get(f"{key}_44k") and Path(data[f"{key}_44k"]).is_dir()):
            log.warning("split %s: folder data.%s = %s not found, not extracted", split, key, data[key])
            continue
        folders[split] = prepare_folder(data, key)
    return folders


@torch.no_grad()
def extract_split(model: torch.nn.Module, folder, split: str, out_dir: Path, fs: int, n_samples: int,
                  batch_size: int = 8, num_workers: int = 0, device: str = "cpu") -> Path:
    """Write (or resume, or keep when finished) the file of one split; returns its path."""
    path = embedding_file(out_dir, split)
    if path.is_file():
        log.info("split %s: %s exists, skipped", split, path)
        return path
    readable = check_audio_files(folder, list_audio_files(folder), split, out_dir / "data_reports")
    names = sorted(readable)
    stems = [Path(name).stem for name in names]
    probe = model(torch.zeros(1, n_samples, device=device))
    writer = EmbeddingWriter(path, stems, tuple(probe["frame"].shape[1:]), probe["global"].shape[-1])
    try:
        clips = ClipSet(folder, names[writer.n_done:], fs, n_samples)
        loader = DataLoader(clips, batch_size=batch_size, num_workers=num_workers)
        for audio, batch_stems in loader:
            out = model(audio.to(device))
            writer.write(list(batch_stems), out["frame"].float().cpu().numpy(), out["global"].float().cpu().numpy())
        log.info("split %s: %d clips -> %s", split, len(stems), path)
        return writer.finish()
    finally:
        writer.close()


def link_weak_validation(out_dir: Path) -> None:
    """weak_val.hdf5 = weak_train.hdf5 (both hold the whole weak folder, as the official files)."""
    source, target = embedding_file(out_dir, "weak_train"), embedding_file(out_dir, "weak_val")
    if source.is_file() and not target.exists():
        try:
            os.link(source, target)
        except OSError:
            target.symlink_to(source.name)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, choices=EMBEDDING_MODELS)
    parser.add_argument("--checkpoint", required=True, help="the official weight file of the model")
    parser.add_argument("--conf_file", required=True, help="the training config whose data splits are extracted")
    parser.add_argument("--out", required=True, help="output folder of the HDF5 files")
    parser.add_argument("--model_options", default="{}", help="JSON constructor options (small test variants)")
    parser.add_argument("--splits", nargs="*", default=None, help="only these splits (default: all the config uses)")
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--num_workers", type=int, default=0)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides")
    return parser


def main(argv: Sequence[str] | None = None) -> dict[str, Path]:
    """Extract every split; bad input (config, weights, data) ends with its one-line message, exit status 2."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    keep_freed_memory()
    try:
        return run(args)
    except InputError as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from None


def run(args: argparse.Namespace) -> dict[str, Path]:
    config = resolve_config(args.conf_file, args.overrides)  # as the training run resolves it
    data = config["data"]
    fs = int(data.get("fs", 16000))
    n_samples = int(round(float(data.get("audio_max_len", 10)) * fs))
    model = build_embedding_model(args.model, args.checkpoint, json.loads(args.model_options))
    model = model.to(args.device).eval()
    out_dir = Path(args.out)
    written = {}
    for split, folder in split_folders(data).items():
        if args.splits is None or split in args.splits:
            written[split] = extract_split(model, folder, split, out_dir, fs, n_samples, args.batch_size,
                                           args.num_workers, args.device)
    link_weak_validation(out_dir)
    return written


if __name__ == "__main__":
    main()
