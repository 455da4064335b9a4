"""DCASE 2022 / 2023 Task 4 pretrained-embedding baselines: the CRNN fused with PANNs, AST or BEATs embeddings.

    python -m desed_task.embeddings.extract --model ast --checkpoint pretrained_models/audioset_10_10_0.4593.pth \
        --conf_file confs/dcase2022_task4_baseline/pretrained_ast_frame.yaml --out embeddings/ast
    python recipes/dcase2022_task4_baseline/train_pretrained.py \
        --conf_file confs/dcase2022_task4_baseline/pretrained_ast_frame.yaml --log_dir exp/2022_pretrained_ast
"""
from desed_task.training.run import main

if __name__ == "__main__":
    main(system="pretrained")
