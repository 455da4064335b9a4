"""make demo-uclser: contrastive pre-training of a small encoder on the mini FSDnoisy18k, then linear
evaluation of that encoder and of a randomly initialised one (both frozen); prints both balanced accuracies.

    python recipes/uclser20/demo.py [--log_dir exp/demo_uclser]
"""
import argparse
import json
import time
from pathlib import Path

from desed_task.training.run import main, run_folder


def train(conf_file: str, log_dir: Path, *overrides: str) -> dict:
    return main(["--conf_file", conf_file, "--log_dir", str(log_dir), *overrides], system="uclser")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--log_dir", default="exp/demo_uclser")
    log_dir = Path(parser.parse_args().log_dir)
    started = time.perf_counter()
    pretrain = run_folder(log_dir / "pretrain")
    train("confs/uclser20/demo_pretrain.yaml", pretrain)
    encoder = pretrain / "VGG_best.pth"
    scores = {"pretrained": train("confs/uclser20/demo_lineval.yaml", run_folder(log_dir / "lineval_pretrained"),
                                  f"model.pretrained_path={encoder}")["test/macro_acc"],
              "random": train("confs/uclser20/demo_lineval.yaml",
                              run_folder(log_dir / "lineval_random"))["test/macro_acc"]}
    minutes = (time.perf_counter() - started) / 60
    best = json.loads((pretrain / "best_encoder.json").read_text())
    print(f"\nlinear evaluation on the mini FSDnoisy18k test set (balanced accuracy, 20 classes, chance 0.05):\n"
          f"  contrastively pre-trained encoder (best kNN epoch {best['epoch']}): {scores['pretrained']:.3f}\n"
          f"  randomly initialised encoder:                         {scores['random']:.3f}\n"
          f"demo time: {minutes:.1f} min")
