"""CP-JKU DCASE 2023 Task 1: train CP-Mobile on TAU22 with knowledge distillation (official flag names too).

python recipes/cpjku_dcase23/run_training.py --data_dir PATH/TAU-urban-acoustic-scenes-2022-mobile-development \
    --teacher_logits resources/ensemble_logits.pt --dir_path datasets/dirs [--gpus 1]
"""
from desed_task.training.run import main

if __name__ == "__main__":
    main(system="cp_mobile")
