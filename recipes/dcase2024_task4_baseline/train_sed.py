"""Train and test the DCASE 2024 Task 4 baseline (DESED + MAESTRO Real, BEATs frame fusion, class masks).

    python recipes/dcase2024_task4_baseline/train_sed.py --conf_file confs/dcase2024_task4_baseline/default.yaml

Takes every flag of `desed_task.training.run` (system `dcase2024`). `demo.py` beside it runs the CPU demo.
"""
from desed_task.training.run import main

if __name__ == "__main__":
    main(system="dcase2024")
