"""Run-level helpers of the recipes' entry point: log folders, checkpoint reading, checkpoint settings."""
import logging

import pytest
import torch

from desed_task.training.run import checkpoint_architecture, holds_a_run, override_keys, read_checkpoint, run_folder
from desed_task.utils.errors import BadInput, InputError, MissingInput


def test_run_folder_is_the_log_dir_when_it_holds_no_run(tmp_path):
    assert run_folder(tmp_path / "new") == tmp_path / "new"
    (tmp_path / "reports_only" / "data_reports").mkdir(parents=True)  # what a run stopped by bad input leaves
    assert run_folder(tmp_path / "reports_only") == tmp_path / "reports_only"


def test_issue13_item4_fresh_run_into_a_used_log_dir_gets_the_next_free_version(tmp_path, caplog):
    (tmp_path / "last.ckpt").write_bytes(b"")
    assert holds_a_run(tmp_path)
    with caplog.at_level(logging.WARNING, logger="desed_task"):
        assert run_folder(tmp_path) == tmp_path / "version_1"
    assert "holds an earlier run" in caplog.text
    (tmp_path / "version_1").mkdir()
    (tmp_path / "version_1" / "test_metrics.json").write_text("{}")
    assert run_folder(tmp_path) == tmp_path / "version_2"
    assert run_folder(tmp_path, resume=True) == tmp_path  # a resumed run continues in place


def test_read_checkpoint_errors_name_the_file(tmp_path):
    with pytest.raises(MissingInput, match="nope.ckpt"):
        read_checkpoint(tmp_path / "nope.ckpt")
    (tmp_path / "text.ckpt").write_text("not a checkpoint")
    with pytest.raises(BadInput, match="text.ckpt: not a readable PyTorch checkpoint"):
        read_checkpoint(tmp_path / "text.ckpt")
    torch.save([1, 2], tmp_path / "list.ckpt")
    with pytest.raises(InputError, match="must hold a dict"):
        read_checkpoint(tmp_path / "list.ckpt")


def test_override_keys():
    assert override_keys(["training.median_window=5", "net.nb_filters=[1,2]", "junk"]) == [
        "training.median_window", "net.nb_filters"]


def test_issue13_item7_checkpoint_post_processing_is_the_default(caplog):
    checkpoint = {"hyper_parameters": {"net": {"n_RNN_cell": 128}, "feats": {"hop_length": 256},
                                       "scaler": {"statistic": "instance"},
                                       "data": {"audio_max_len": 10, "fs": 16000, "net_subsample": 4},
                                       "training": {"median_window": 7}}}
    config = {"net": {"n_RNN_cell": 32}, "feats": {"hop_length": 512}, "scaler": {"statistic": "instance"},
              "data": {"audio_max_len": 10, "fs": 16000, "net_subsample": 4, "test_tsv": "mine.tsv"},
              "training": {"median_window": 3, "batch_size_val": 24}}
    with caplog.at_level(logging.INFO, logger="desed_task"):
        rebuilt = checkpoint_architecture(checkpoint, config)
    assert rebuilt["training"]["median_window"] == 7 and rebuilt["feats"]["hop_length"] == 256
    assert rebuilt["data"]["test_tsv"] == "mine.tsv" and rebuilt["training"]["batch_size_val"] == 24
    assert "checkpoint's 7" in caplog.text
    assert config["training"]["median_window"] == 3  # the caller's config is not modified
    asked = checkpoint_architecture(checkpoint, config, explicit_keys=["training.median_window"])
    assert asked["training"]["median_window"] == 3
    assert "from the command line" in caplog.text
