"""Train and test the DCASE 2024 Task 4 baseline (DESED + MAESTRO Real, BEATs frame fusion, class masks).

    python recipes/dcase2024_task4_baseline/train_sed.py --conf_file confs/dcase2024_task4_baseline/default.yaml

`--random_beats` first writes a small randomly initialised BEATs to `pretrained.checkpoint` (the demo's
stand-in for the official weights, with `pretrained.e2e: true`).
"""
import sys
from pathlib import Path

import torch

from desed_task.nnet.beats import BEATs
from desed_task.training import run
from desed_task.training.dcase2024 import DCASE2024Task

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
    parser = run.build_parser("Train and test the DCASE 2024 Task 4 baseline (DESED + MAESTRO Real).")
    parser.set_defaults(conf_file="./confs/dcase2024_task4_baseline/default.yaml", log_dir="./exp/2024_baseline")
    parser.add_argument("--random_beats", action="store_true",
                        help="write a small random BEATs to pretrained.checkpoint when absent (demo, tests)")
    args = parser.parse_args(argv)
    if args.random_beats:
        write_random_beats(run.resolve_config(args.conf_file, [*args.set_overrides, *args.overrides]))
    return run.main(argv, task_cls=DCASE2024Task, parser=parser)


if __name__ == "__main__":
    main(sys.argv[1:])
