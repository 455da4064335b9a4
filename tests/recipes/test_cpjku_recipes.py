"""End to end: run_training.py then run_qat.py, each a --fast_dev_run on the tiny generated mini TAU22."""
import json
import runpy
import sys
import tempfile
from pathlib import Path

import pytest

from desed_task.data.mini_tau22 import ensure_mini_tau22

RECIPES = Path(__file__).resolve().parents[2] / "recipes" / "cpjku_dcase23"
TINY = {"n_train_a": 2, "n_train_other": 1, "n_eval": 1}  # shared with tests/data/test_mini_tau22.py


@pytest.fixture(scope="module")
def mini_option():
    root = Path(tempfile.gettempdir()) / "desed_task_tests" / "mini_tau22_tiny"
    ensure_mini_tau22(root, 0, **TINY)
    return "data.mini={out_dir: %s, seed: 0, n_train_a: 2, n_train_other: 1, n_eval: 1}" % root


def run_recipe(script, args, monkeypatch):
    monkeypatch.setattr(sys, "argv", [str(RECIPES / script), *args])
    runpy.run_path(str(RECIPES / script), run_name="__main__")


@pytest.fixture(scope="module")
def trained(tmp_path_factory, mini_option):
    log_dir = tmp_path_factory.mktemp("cpjku_training")
    with pytest.MonkeyPatch.context() as monkeypatch:
        run_recipe("run_training.py", ["--fast_dev_run", "--gpus", "0", "--log_dir", str(log_dir), "--batch_size", "8",
                                       "--num_workers", "0", "--dir_prob", "0.6", "--mixstyle_p", "1.0",
                                       "training.batch_size_val=8", "training.enable_progress_bar=false",
                                       mini_option], monkeypatch)
    return log_dir


def test_run_training_fast_dev_run(trained, capsys):
    results = json.loads((trained / "test_metrics.json").read_text())
    assert 0.0 <= results["test/acc"] <= 1.0
    assert {"test/acc_group.a", "test/acc_group.s4", "test/acc_set.unseen", "test/acc_class.airport"} <= set(results)
    complexity = json.loads((trained / "complexity.json").read_text())
    assert complexity["unfused"] == {"params": 126_952, "macs": 28_893_268, "macs_conv": 28_889_088}
    assert (trained / "last.ckpt").is_file()
    saved = (trained / "config.yaml").read_text()
    assert "dir_prob: 0.6" in saved and "mixstyle_p: 1.0" in saved and "kd_lambda: 0.02" in saved


def test_run_qat_fast_dev_run(trained, tmp_path, mini_option, monkeypatch, capsys):
    run_recipe("run_qat.py", ["--checkpoint", str(trained / "last.ckpt"), "--fast_dev_run",
                              "--log_dir", str(tmp_path), "--batch_size", "8", "--num_workers", "0",
                              "training.batch_size_val=8", "training.enable_progress_bar=false", mini_option],
               monkeypatch)
    report = json.loads((tmp_path / "qat_report.json").read_text())
    assert report["int8_param_bytes"] == 124_862 and report["int8_stored_param_bytes"] == 131_168
    assert 0.0 <= report["int8_acc"] <= 1.0 and 0.0 <= report["fake_quant_acc"] <= 1.0
    results = json.loads((tmp_path / "test_metrics.json").read_text())
    assert "test_fp32/acc_group.a" in results and "test/acc_group.a" in results
    assert (tmp_path / "cp_mobile_int8.pt").is_file()
    assert "int8 parameter memory: 124,862 bytes" in capsys.readouterr().out
