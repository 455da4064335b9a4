"""IRCT probes: train a small head on a frozen baseline layer (`probe.layer`), test it, and append the test
metrics to the score file (run name: the config's `run_name`). Needs `probe.encoder_checkpoint`
(ckpt/default/default_N.ckpt, see ckpt/default/README.md).

    python recipes/irct/probe_train_sed.py --conf_file confs/irct/probe_h16_l5_3.yaml --log_dir exp/probe_h16_l5_3 \
        [--scores_file misc/scores.txt] [--gpus 0] [--set training.n_epochs=100 ...]
"""
from desed_task.training.probe import ProbeTask
from desed_task.training.run import build_parser, main

if __name__ == "__main__":
    main(task_cls=ProbeTask, parser=build_parser(
        "Train and test a probe head on a frozen baseline CRNN layer.", scores_file="misc/scores.txt"))
