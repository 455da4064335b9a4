"""ATST-SED stage 2: the whole model fine-tuned from a stage-1 checkpoint (`init.model_init`).

    python recipes/atst_sed/train_stage2.py --conf_file confs/atst_sed/stage2.yaml --log_dir exp/atst_sed_stage2 \
        --set init.model_init=exp/atst_sed_stage1/last.ckpt
"""
from desed_task.training.atst_sed import ATSTSEDStage2
from desed_task.training.run import build_parser, main

if __name__ == "__main__":
    parser = build_parser("ATST-SED stage 2: fine-tuning of the fused CRNN + ATST-Frame.")
    parser.set_defaults(conf_file="./confs/atst_sed/stage2.yaml", log_dir="./exp/atst_sed_stage2", strong_real=True)
    main(task_cls=ATSTSEDStage2, parser=parser)
