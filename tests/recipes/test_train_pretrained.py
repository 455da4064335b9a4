"""End to end on the 16-clip mini DESED: extract embeddings with a tiny randomly initialised model of each
family (official file layouts), then train (--fast_dev_run), test and evaluate the fused CRNN of each family."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
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
FUSION_KEYS = {  # family: (state-dict key of the fusion layer only that variant has, its shape)
    "panns": ("sed_student.shrink_emb.0.weight", (8, 8)),  # global: Linear(E, C)
    "ast": ("sed_student.frame_embs_encoder.weight_ih_l0", (3 * 8, 16)),  # frame: BiGRU(E, 8) over the sequence
    "beats": ("sed_student.cat_tf.weight", (8, 8 + 16)),  # pool1d: cat_tf(C + E -> C)
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


@pytest.fixture(scope="module")
def extracted(tmp_path_factory, tiny_overrides) -> Path:
    """Embedding files of every split for each family, in `<folder>/<family>/`."""
    folder = tmp_path_factory.mktemp("embeddings")
    for family, (conf, options, _) in FAMILIES.items():
        checkpoint = tiny_checkpoint(family, options, folder)
        written = extract(["--model", family, "--checkpoint", str(checkpoint), "--conf_file", str(REPO / "confs" / conf),
                           "--out", str(folder / family), "--model_options", json.dumps(options), "--batch_size", "16",
                           *tiny_overrides])
        assert set(written) == {"synth_train", "weak_train", "unlabeled_train", "synth_val", "test", "eval"}
    return folder


def family_args(family: str, extracted: Path, tiny_overrides: list[str]) -> tuple[str, list[str]]:
    conf, _, net = FAMILIES[family]
    return str(REPO / "confs" / conf), [*tiny_overrides, *net, f"pretrained.extracted_embeddings_dir={extracted / family}"]


def test_every_split_extracted_for_each_family(extracted, mini_dir):
    test_clips = {p.stem for p in (mini_dir / "audio/validation/validation_16k").glob("*.wav")}
    for family in FAMILIES:
        assert (extracted / family / "weak_val.hdf5").is_file()
        assert EmbeddingReader(extracted / family / "devtest.hdf5").stems == test_clips
    assert EmbeddingReader(extracted / "ast/devtest.hdf5").read(next(iter(test_clips)), "frame").shape == (16, 1214)
    assert EmbeddingReader(extracted / "panns/devtest.hdf5").read(next(iter(test_clips)), "global").shape == (8,)


@pytest.mark.parametrize("family", ["panns", "ast"])
def test_each_2022_family_trains_tests_and_retests_from_its_checkpoint(family, extracted, tiny_overrides, tmp_path):
    """fast_dev_run on the family's files, then `--test_from_checkpoint` of its best checkpoint in a fresh run
    gives the same test metrics on the same (first) test batch: same weights, embeddings and post-processing."""
    conf, overrides = family_args(family, extracted, tiny_overrides)
    log_dir = tmp_path / "run"
    train(["--conf_file", conf, "--log_dir", str(log_dir), "--gpus", "0", "--fast_dev_run", "--scores_file", "",
           *overrides], task_cls=PretrainedSEDTask)
    trained = json.loads((log_dir / "test_metrics.json").read_text())
    state = torch.load(log_dir / "last.ckpt", map_location="cpu", weights_only=False)["state_dict"]
    key, shape = FUSION_KEYS[family]
    assert state[key].shape == shape

    retest_dir = tmp_path / "retest"
    (best,) = log_dir.glob("epoch=*.ckpt")  # the checkpoint the training run tested
    train(["--conf_file", conf, "--log_dir", str(retest_dir), "--gpus", "0", "--fast_dev_run", "--scores_file", "",
           "--test_from_checkpoint", str(best), *overrides], task_cls=PretrainedSEDTask)
    retested = json.loads((retest_dir / "test_metrics.json").read_text())
    for name in ("test/teacher/psds1_sed_scores_eval", "test/student/psds2_sed_scores_eval",
                 "test/student/intersection_f1_macro", "test/teacher/weak_f1_macro"):
        assert retested[name] == pytest.approx(trained[name], abs=1e-9), name


def test_beats_recipe_script_trains_tests_and_evaluates(extracted, tiny_overrides, mini_dir, tmp_path):
    """The 2023 config through the recipe script (a subprocess, as users run it), then `--eval_from_checkpoint`."""
    conf, overrides = family_args("beats", extracted, tiny_overrides)
    log_dir = tmp_path / "run"
    command = [sys.executable, str(REPO / "recipes/dcase2022_task4_baseline/train_pretrained.py"), "--conf_file", conf,
               "--log_dir", str(log_dir), "--gpus", "0", "--fast_dev_run", "--scores_file", "", *overrides]
    completed = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=900)
    assert completed.returncode == 0, completed.stderr[-3000:]
    results = json.loads((log_dir / "test_metrics.json").read_text())
    assert 0.0 <= results["test/teacher/psds1_sed_scores_eval"] <= 1.0
    state = torch.load(log_dir / "last.ckpt", map_location="cpu", weights_only=False)["state_dict"]
    key, shape = FUSION_KEYS["beats"]
    assert state[key].shape == shape
    assert not any(name.startswith("pretrained_model.") for name in state)  # e2e: False, embeddings from files

    eval_dir = tmp_path / "eval"
    train(["--conf_file", conf, "--log_dir", str(eval_dir), "--gpus", "0", "--scores_file", "",
           "--eval_from_checkpoint", str(log_dir / "last.ckpt"), *overrides], task_cls=PretrainedSEDTask)
    test_clips = {p.stem for p in (mini_dir / "audio/validation/validation_16k").glob("*.wav")}
    assert {p.stem for p in (eval_dir / "eval_scores/teacher").glob("*.tsv")} == test_clips
