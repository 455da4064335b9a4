"""DCASE 2022 Task 4 baseline: train a mean-teacher CRNN, then test it (or only test / evaluate a checkpoint).

    python recipes/dcase2022_task4_baseline/train_sed.py --conf_file confs/dcase2022_task4_baseline/default.yaml \
        --log_dir exp/2022_baseline [--gpus 1] [--set training.n_epochs=100 ...]
"""
from desed_task.training.run import main

if __name__ == "__main__":
    main(system="sed")
