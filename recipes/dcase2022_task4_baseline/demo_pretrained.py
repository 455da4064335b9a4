"""make demo-pretrained: the late-fusion pipeline end to end without downloads. A small randomly initialised
PANNs CNN14 is saved in the official file layout, its embeddings of the mini DESED are extracted, and the
fused CRNN is trained and tested (confs/dcase2022_task4_baseline/demo_pretrained.yaml). It proves the
pipeline, not the scores: random embeddings carry no AudioSet knowledge.

    python recipes/dcase2022_task4_baseline/demo_pretrained.py [--fast_dev_run] [training.n_epochs=3 ...]
"""
import argparse
import json
from pathlib import Path

import torch
import yaml

from desed_task.embeddings.extract import main as extract
from desed_task.nnet import PANNsCnn14
from desed_task.training.run import main
from desed_task.utils.logs import configure_logging

CONF = "confs/dcase2022_task4_baseline/demo_pretrained.yaml"
CHANNELS = (4, 4, 4, 4, 4, 8)

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--log_dir", default="exp/demo_pretrained/run")
    parser.add_argument("--fast_dev_run", action="store_true")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE")
    args = parser.parse_args()
    configure_logging()
    pretrained = yaml.safe_load(open(CONF))["pretrained"]
    Path(pretrained["checkpoint"]).parent.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    torch.save({"model": PANNsCnn14(channels=CHANNELS).state_dict()}, pretrained["checkpoint"])
    extract(["--model", "panns", "--checkpoint", pretrained["checkpoint"], "--conf_file", CONF,
             "--out", pretrained["extracted_embeddings_dir"], "--model_options", json.dumps({"channels": CHANNELS}),
             *args.overrides])
    main(["--conf_file", CONF, "--log_dir", args.log_dir, *(["--fast_dev_run"] if args.fast_dev_run else []),
          *args.overrides], system="pretrained")
