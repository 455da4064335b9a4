"""End to end on the 16-clip mini DESED: extract embeddings with a tiny randomly initialised model of each
family (official file layouts), then train (--fast_dev_run), test and evaluate the fused CRNN."""
import json
import subprocess
import sys
from pathlib import Path

import torch

from desed_task.embeddings import EmbeddingReader
from desed_task.embeddings.extract import main as extract
from desed_task.nnet import AST, BEATs, PANNsCnn14
from desed_task.training.pretrained import PretrainedSEDTask
from desed_task.training.run import main as train

REPO = Path(__file__).resolve().parents[2]
FAMILIES = {  # family: (config, tiny model options, net overrides)
    "panns": ("dcase2022_task4_baseline/pretrained_panns_global.yaml", {"channels": [4, 4, 4, 4, 4, 8]},
              ["net.embedding_size=8"]),
    "ast": ("dcase2022_task4_baseline/pretrained_ast_frame.yaml", {"dim": 16, "depth": 1, "heads": 2, "n_classes": 5},
            ["net.embedding_size=16", "net.frame_emb_enc_dim=8"]),
    "beats": ("dcase2023_task4_baseline/pretrained_beats.yaml", {}, ["net.embedding_size=16"]),
}
BEATS_CFG = {"encoder_layers": 1, "embed_dim": 8, "encoder_embed_dim": 16, "encoder_ffn_embed_dim": 32,
             "encoder_attention_heads": 2, "conv_pos": 16, "conv_pos_groups": 4}


def tiny_checkpoint(family, options, folder: Path) -> Path:
    torch.manual_seed(0)
    path = folder / f"{family}.pt"
    if family == "panns":
        torch.save({"model": PANNsCnn14(channels=tuple(options["channels"])).state_dict()}, path)
    elif family == "ast":
        torch.save({f"module.{k}": v for k, v in AST(**options).state_dict().items()}, path)
    else:
        torch.save({"cfg": BEATS_CFG, "model": BEATs(BEATS_CFG).state_dict()}, path)
    return path


def test_extract_each_family_then_train_test_and_evaluate(tmp_path, mini_dir, tiny_overrides):
    """Extraction with each family; the fused CRNN trained and tested on the BEATs files (2023 config) through
    the recipe script, then evaluated. The other fusions are tested in tests/nnet/test_crnn.py."""
    test_clips = {p.stem for p in (mini_dir / "audio/validation/validation_16k").glob("*.wav")}
    for family, (conf, options, _) in FAMILIES.items():
        checkpoint = tiny_checkpoint(family, options, tmp_path)
        written = extract(["--model", family, "--checkpoint", str(checkpoint), "--conf_file", str(REPO / "confs" / conf),
                           "--out", str(tmp_path / family), "--model_options", json.dumps(options), "--batch_size", "16",
                           *tiny_overrides])
        assert set(written) == {"synth_train", "weak_train", "unlabeled_train", "synth_val", "test", "eval"}
        assert (tmp_path / family / "weak_val.hdf5").is_file()
        assert EmbeddingReader(tmp_path / family / "devtest.hdf5").stems == test_clips
    assert EmbeddingReader(tmp_path / "ast/devtest.hdf5").read(next(iter(test_clips)), "frame").shape == (16, 1214)

    conf, _, net = FAMILIES["beats"]
    conf = str(REPO / "confs" / conf)
    overrides = [*tiny_overrides, *net, f"pretrained.extracted_embeddings_dir={tmp_path / 'beats'}"]
    log_dir = tmp_path / "run"
    command = [sys.executable, str(REPO / "recipes/dcase2022_task4_baseline/train_pretrained.py"), "--conf_file", conf,
               "--log_dir", str(log_dir), "--gpus", "0", "--fast_dev_run", "--scores_file", "", *overrides]
    completed = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=900)
    assert completed.returncode == 0, completed.stderr[-3000:]
    results = json.loads((log_dir / "test_metrics.json").read_text())
    assert 0.0 <= results["test/teacher/psds1_sed_scores_eval"] <= 1.0
    state = torch.load(log_dir / "last.ckpt", map_location="cpu", weights_only=False)["state_dict"]
    assert state["sed_student.cat_tf.weight"].shape == (8, 8 + 16)  # pool1d: C + E -> C
    assert not any(key.startswith("pretrained_model.") for key in state)  # e2e: False, embeddings from files

    eval_dir = tmp_path / "eval"
    train(["--conf_file", conf, "--log_dir", str(eval_dir), "--gpus", "0", "--scores_file", "",
           "--eval_from_checkpoint", str(log_dir / "last.ckpt"), *overrides], task_cls=PretrainedSEDTask)
    assert {p.stem for p in (eval_dir / "eval_scores/teacher").glob("*.tsv")} == test_clips
