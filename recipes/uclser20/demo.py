"""make demo-uclser: contrastive pre-training of a small encoder on the mini FSDnoisy18k, then linear
evaluation of that encoder and of a randomly initialised one (both frozen); prints both balanced accuracies.

    python recipes/uclser20/demo.py [--log_dir exp/demo_uclser]
"""
import argparse
import json
import logging
import time
from pathlib import Path

from desed_task.training.run_uclser import run
from desed_task.utils.config import load_config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--log_dir", default="exp/demo_uclser")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO)
    log_dir = Path(args.log_dir)
    started = time.perf_counter()
    run(load_config("confs/uclser20/demo_pretrain.yaml"), str(log_dir / "pretrain"))
    encoder = log_dir / "pretrain" / "VGG_best.pth"
    lineval = load_config("confs/uclser20/demo_lineval.yaml", [f"model.pretrained_path={encoder}"])
    scores = {"pretrained": run(lineval, str(log_dir / "lineval_pretrained"))["test/macro_acc"]}
    random_init = load_config("confs/uclser20/demo_lineval.yaml")
    scores["random"] = run(random_init, str(log_dir / "lineval_random"))["test/macro_acc"]
    minutes = (time.perf_counter() - started) / 60
    best = json.loads((log_dir / "pretrain" / "best_encoder.json").read_text())
    print(f"\nlinear evaluation on the mini FSDnoisy18k test set (balanced accuracy, 20 classes, chance 0.05):\n"
          f"  contrastively pre-trained encoder (best kNN epoch {best['epoch']}): {scores['pretrained']:.3f}\n"
          f"  randomly initialised encoder:                         {scores['random']:.3f}\n"
          f"demo time: {minutes:.1f} min")


if __name__ == "__main__":
    main()
