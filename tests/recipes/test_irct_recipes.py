"""`--fast_dev_run` of the IRCT and probe recipes on the 16-clip mini DESED with a narrow CRNN (smoke runs:
the score file is never written, see tests/recipes/test_train_sed.py for a recorded run).

The runs go through `run.main` in-process (the scripts' only line), with the cheap test metrics of
tests/recipes/conftest.py, except one of the IRCT script itself in a subprocess (real psds_eval and plots).
"""
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from desed_task.nnet.checkpoint import load_state_dict_by_name
from desed_task.nnet.crnn import CRNN
from desed_task.training.irct import IRCTTask
from desed_task.training.run import main
from desed_task.training.probe import ProbeTask
from desed_task.utils.scores import read_score_blocks

REPO = Path(__file__).resolve().parents[2]
IRCT_CONF = str(REPO / "confs/irct/irct_t1_l3_1.yaml")
PROBE_CONF = str(REPO / "confs/irct/probe_h8_l5_3.yaml")
FAST = ["training.n_test_thresholds=3", "training.batch_size_val=4"]
SMALL_BATCHES = ["training.batch_size=[1,1,2]"]  # IRCT steps (three views, pitch shift) are the slow part


class RecordingIRCTTask(IRCTTask):
    """IRCTTask keeping the training metrics logged by its last run."""

    train_metrics: dict = {}

    def on_train_end(self):
        RecordingIRCTTask.train_metrics = {k: float(v) for k, v in self.trainer.callback_metrics.items()}


@pytest.fixture(scope="module")
def scores_file(tmp_path_factory):
    return tmp_path_factory.mktemp("misc") / "scores.txt"


@pytest.fixture(scope="module")
def baseline_checkpoint(tmp_path_factory, tiny_overrides):
    """A baseline checkpoint of the tiny CRNN of `tiny_overrides` (student and teacher weights)."""
    torch.manual_seed(3)
    model = CRNN(nb_filters=[4, 8, 8, 8, 8, 8, 8], n_RNN_cell=8)
    state = {f"{prefix}.{k}": v for prefix in ("sed_student", "sed_teacher") for k, v in model.state_dict().items()}
    path = tmp_path_factory.mktemp("ckpt") / "default_3.ckpt"
    torch.save({"state_dict": state}, path)
    return path


def run(conf, task_cls, log_dir, scores_file, overrides, *flags):
    argv = ["--conf_file", conf, "--log_dir", str(log_dir), "--gpus", "0", "--scores_file", str(scores_file), *flags,
            "--set", *overrides]
    return main(argv, task_cls=task_cls)


@pytest.mark.parametrize("placement, batches", [("input", SMALL_BATCHES), ("l3", [])])  # l8: the script run
def test_irct_fast_dev_run_trains_with_loss_i_and_records_scores(placement, batches, tmp_path, tiny_overrides,
                                                                 scores_file):
    run_name = f"irct_t2_{placement}_9"
    results = run(IRCT_CONF, RecordingIRCTTask, tmp_path, scores_file,
                  [*tiny_overrides, *FAST, *batches, f"irct.placement={placement}", "irct.aug_set=tau2",
                   f"run_name={run_name}"], "--fast_dev_run")
    assert 0 <= results["test/student/psds2_sed_scores_eval"] <= 1
    metrics = RecordingIRCTTask.train_metrics
    if placement == "input":  # the scaled log-mels: loss_i is real but has no parameter to train
        assert metrics["train/student/loss_i"] > 0
    else:
        assert metrics["train/student/loss_i"] > 0 and metrics["train/extra_loss"] > 0
    checkpoint = torch.load(tmp_path / "last.ckpt", map_location="cpu", weights_only=False)
    assert "irct_generator_states" in checkpoint and checkpoint["hyper_parameters"]["irct"]["placement"] == placement
    assert not scores_file.exists() or run_name not in read_score_blocks(scores_file)  # smoke runs are not results


@pytest.mark.parametrize("layer", ["l1", "l8"])
def test_probe_fast_dev_run_keeps_the_encoder_and_records_scores(layer, tmp_path, tiny_overrides, scores_file,
                                                                 baseline_checkpoint):
    run_name = f"probe_h8_l{layer[1]}_9"
    results = run(PROBE_CONF, ProbeTask, tmp_path, scores_file,
                  [*tiny_overrides, *FAST, f"probe.layer={layer}", f"probe.encoder_checkpoint={baseline_checkpoint}",
                   f"run_name={run_name}"], "--fast_dev_run")
    assert 0 <= results["test/teacher/psds1_sed_scores_eval"] <= 1
    baseline = torch.load(baseline_checkpoint, map_location="cpu")["state_dict"]
    trained = torch.load(tmp_path / "last.ckpt", map_location="cpu", weights_only=False)["state_dict"]
    for model in ("sed_student", "sed_teacher"):
        for key, value in baseline.items():
            if key.startswith("sed_student."):
                assert torch.equal(trained[f"{model}.encoder.{key[len('sed_student.'):]}"], value), key
    assert 0 <= results["test/student/psds2_sed_scores_eval"] <= 1
    assert not scores_file.exists() or run_name not in read_score_blocks(scores_file)  # smoke runs are not results


def test_irct_script_fast_dev_run(tmp_path, tiny_overrides):
    scores = tmp_path / "misc" / "scores.txt"
    command = [sys.executable, str(REPO / "recipes/irct/irct_train_sed.py"), "--conf_file", IRCT_CONF, "--log_dir",
               str(tmp_path / "exp"), "--gpus", "0", "--fast_dev_run", "--scores_file", str(scores),
               *tiny_overrides, *FAST, "irct.placement=l8", *SMALL_BATCHES, "irct.aug_set=tau1"]
    completed = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert not scores.exists()  # issue 13 item 5: a smoke run never writes the score file
    assert "smoke run (--fast_dev_run): test metrics not written to" in completed.stderr
    assert (tmp_path / "exp" / "test_metrics.json").is_file()


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_provided_baseline_checkpoints_are_small_and_load_by_name(seed):
    path = REPO / "ckpt/default" / f"default_{seed}.ckpt"
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    assert path.stat().st_size < 10 * 2**20
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    state = checkpoint["state_dict"]
    assert all(k.startswith(("sed_student.", "sed_teacher.")) for k in state)
    assert all(v.dtype == torch.float32 for v in state.values() if v.is_floating_point())
    assert checkpoint["hyper_parameters"]["run_name"] == f"default_{seed}"
    model = CRNN(**checkpoint["hyper_parameters"]["net"])
    assert sum(p.numel() for p in model.parameters()) == 1_112_420
    for prefix in ("sed_student.", "sed_teacher."):
        load_state_dict_by_name(model, state, prefix=prefix, strict=True)
