"""ATST-SED stage 1: the CRNN trained on a frozen, pretrained ATST-Frame (DCASE flags and config overrides).

    python recipes/atst_sed/train_stage1.py --conf_file confs/atst_sed/stage1.yaml --log_dir exp/atst_sed_stage1
"""
from desed_task.training.run import main

if __name__ == "__main__":
    main(system="atst_stage1")
