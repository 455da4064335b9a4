"""Train and test the DCASE 2024 Task 4 baseline (DESED + MAESTRO Real, BEATs frame fusion, class masks).

    python recipes/dcase2024_task4_baseline/train_sed.py --conf_file confs/dcase2024_task4_baseline/default.yaml

Takes every flag of `desed_task.training.run` (system `dcase2024`) and one of its own: `--random_beats` first
writes a small randomly initialised BEATs to `pretrained.checkpoint` when that file is absent (the demo's
stand-in for the official weights, run inside the step with `pretrained.e2e: true`).
"""
import sys
from pathlib import Path

import torch

from desed_task.nnet.beats import BEATs
from desed_task.training.registry import SYSTEMS
from desed_task.training.run import build_parser, main as run_main, resolve_system_config

SMALL_BEATS = {"encoder_layers": 1, "embed_dim": 32, "encoder_embed_dim": 64, "encoder_ffn_embed_dim": 128,
               "encoder_attention_heads": 2, "conv_pos": 16, "conv_pos_groups": 4}


def write_random_beats(config: dict) -> None:
    path = Path(config["pretrained"]["checkpoint"])
    if path.is_file():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    torch.save({"cfg": SMALL_BEATS, "model": BEATs(SMALL_BEATS).state_dict()}, path)


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--random_beats" in argv:
        argv.remove("--random_beats")
        args = build_parser("dcase2024").parse_args(argv)
        write_random_beats(resolve_system_config(args.conf_file, [*args.set_overrides, *args.overrides],
                                                 SYSTEMS["dcase2024"]))
    return run_main(argv, system="dcase2024")


if __name__ == "__main__":
    main()
