"""make demo-dcase2024: the DCASE 2024 baseline end to end without downloads. A small randomly initialised
BEATs (1 layer, width 64) is saved in the official file layout at `pretrained.checkpoint` when that file is
absent, then the recipe trains and tests on the mini DESED and mini MAESTRO with BEATs run inside the step
(confs/dcase2024_task4_baseline/demo.yaml). It proves the pipeline, not the scores.

    python recipes/dcase2024_task4_baseline/demo.py [--fast_dev_run] [any runner flag] [KEY=VALUE ...]

Flags given here override the demo defaults (config, `--log_dir exp/demo_dcase2024`, `--gpus 0`).
"""
import sys
from pathlib import Path

import torch

from desed_task.nnet.beats import BEATs
from desed_task.training.run import build_parser, main as run_main
from desed_task.utils.config import get_nested, load_config
from desed_task.utils.errors import InputError
from desed_task.utils.files import atomic_path

DEFAULTS = ["--conf_file", "confs/dcase2024_task4_baseline/demo.yaml", "--log_dir", "exp/demo_dcase2024",
            "--gpus", "0"]
SMALL_BEATS = {"encoder_layers": 1, "embed_dim": 32, "encoder_embed_dim": 64, "encoder_ffn_embed_dim": 128,
               "encoder_attention_heads": 2, "conv_pos": 16, "conv_pos_groups": 4}


def write_random_beats(path: Path) -> None:
    """Save a seeded random BEATs with the official checkpoint keys (`cfg`, `model`), unless `path` exists."""
    if path.is_file():
        return
    torch.manual_seed(0)
    with atomic_path(path) as tmp:
        torch.save({"cfg": SMALL_BEATS, "model": BEATs(SMALL_BEATS).state_dict()}, tmp)


def main(argv=None):
    argv = [*DEFAULTS, *(sys.argv[1:] if argv is None else argv)]
    args = build_parser("dcase2024").parse_args(argv)
    try:
        checkpoint = get_nested(load_config(args.conf_file, [*args.set_overrides, *args.overrides]),
                                "pretrained.checkpoint")
    except InputError:
        checkpoint = None  # the runner checks the config and reports bad input in its own words
    if checkpoint:
        write_random_beats(Path(checkpoint))
    return run_main(argv, system="dcase2024")


if __name__ == "__main__":
    main()
