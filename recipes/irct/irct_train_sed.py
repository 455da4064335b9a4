"""IRCT: train the baseline CRNN with the invariance loss at `irct.placement`, test it, and append the test
metrics to the score file (run name: the config's `run_name`).

    python recipes/irct/irct_train_sed.py --conf_file confs/irct/irct_t1_l3_1.yaml --log_dir exp/irct_t1_l3_1 \
        [--scores_file misc/scores.txt] [--gpus 0] [--set training.n_epochs=100 ...]
"""
from desed_task.training.run import main

if __name__ == "__main__":
    main(system="irct")
