"""IRCT probes: train a small head on a frozen baseline layer (`probe.layer`), test it, and append the test
metrics to the score file (run name: the config's `run_name`). Needs `probe.encoder_checkpoint`
(ckpt/default/default_N.ckpt, see ckpt/default/README.md).

    python recipes/irct/probe_train_sed.py --conf_file confs/irct/probe_h16_l5_3.yaml --log_dir exp/probe_h16_l5_3 \
        [--scores_file misc/scores.txt] [--gpus 0] [--set training.n_epochs=100 ...]
"""
from desed_task.training.run import main

if __name__ == "__main__":
    main(system="probe")
