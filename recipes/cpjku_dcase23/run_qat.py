"""CP-JKU DCASE 2023 Task 1: quantisation-aware training of a trained CP-Mobile, int8 validation each epoch.

python recipes/cpjku_dcase23/run_qat.py --checkpoint exp/cpjku_dcase23/training/last.ckpt \
    --data_dir PATH/TAU-urban-acoustic-scenes-2022-mobile-development [--gpus 1]
"""
from desed_task.training.run import main

if __name__ == "__main__":
    main(system="cp_mobile_qat")
