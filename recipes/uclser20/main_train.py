"""UCLSER training: python recipes/uclser20/main_train.py -p confs/uclser20/params_unsupervised_cl.yaml
[--log_dir DIR] [--gpus 0] [--fast_dev_run] [section.key=value ...]; `learn.method` picks the stage."""
from desed_task.training.run import main

if __name__ == "__main__":
    main(system="uclser")
