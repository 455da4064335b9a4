"""ATST-SED stage 1: the CRNN trained on a frozen, pretrained ATST-Frame (DCASE flags and config overrides).

    python recipes/atst_sed/train_stage1.py --conf_file confs/atst_sed/stage1.yaml --log_dir exp/atst_sed_stage1
"""
from desed_task.training.atst_sed import ATSTSEDStage1
from desed_task.training.run import build_parser, main

if __name__ == "__main__":
    parser = build_parser("ATST-SED stage 1: CRNN fused with a frozen ATST-Frame.")
    parser.set_defaults(conf_file="./confs/atst_sed/stage1.yaml", log_dir="./exp/atst_sed_stage1", strong_real=True)
    main(task_cls=ATSTSEDStage1, parser=parser)
