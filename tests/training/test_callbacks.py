"""The codecarbon callback writes the baseline's energy files and never stops a run when codecarbon fails."""
import logging
from types import SimpleNamespace

import codecarbon

from desed_task.training.callbacks import CodeCarbonCallback


def trainer():
    return SimpleNamespace(is_global_zero=True, logger=None, global_step=0)


def test_energy_files_for_training_and_test(tmp_path):
    callback = CodeCarbonCallback(tmp_path)
    callback.on_train_start(trainer(), None)
    sum(i * i for i in range(10**5))
    callback.on_train_end(trainer(), None)
    callback.on_test_start(trainer(), None)
    callback.on_test_end(trainer(), None)
    assert float((tmp_path / "training_codecarbon/training_tot_kwh.txt").read_text()) >= 0
    assert float((tmp_path / "devtest_codecarbon/devtest_tot_kwh.txt").read_text()) >= 0


def test_codecarbon_failure_is_a_warning(tmp_path, monkeypatch, caplog):
    def broken(*args, **kwargs):
        raise RuntimeError("no hardware access")

    monkeypatch.setattr(codecarbon, "OfflineEmissionsTracker", broken)
    callback = CodeCarbonCallback(tmp_path, evaluation=True)
    with caplog.at_level(logging.WARNING):
        callback.on_test_start(trainer(), None)
        callback.on_test_end(trainer(), None)
    assert "could not start" in caplog.text
    assert not (tmp_path / "evaluation_codecarbon/eval_tot_kwh.txt").exists()


def test_only_global_rank_zero_tracks(tmp_path):
    callback = CodeCarbonCallback(tmp_path)
    other_rank = SimpleNamespace(is_global_zero=False, logger=None, global_step=0)
    callback.on_train_start(other_rank, None)
    callback.on_train_end(other_rank, None)
    assert not (tmp_path / "training_codecarbon").exists()
