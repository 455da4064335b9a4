"""ATST-SED stage 2: the whole model fine-tuned from a stage-1 checkpoint (`init.model_init`).

    python recipes/atst_sed/train_stage2.py --conf_file confs/atst_sed/stage2.yaml --log_dir exp/atst_sed_stage2 \
        --set init.model_init=exp/atst_sed_stage1/last.ckpt
"""
from desed_task.training.run import main

if __name__ == "__main__":
    main(system="atst_stage2")
