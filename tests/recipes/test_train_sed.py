"""End-to-end runs of the DCASE 2022 baseline recipe on a 16-clip mini DESED with a narrow CRNN."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from desed_task.evaluation import load_durations, load_ground_truth, load_score_tables
from desed_task.postprocess import load_params
from desed_task.postprocess.report import postprocessed_metrics
from desed_task.training.run import main
from desed_task.training.sed import SEDTask
from desed_task.utils.scores import read_score_blocks

REPO = Path(__file__).resolve().parents[2]
CONF = str(REPO / "confs/dcase2022_task4_baseline/demo.yaml")


class RecordingTask(SEDTask):
    """SEDTask that keeps its last instance and the training state seen when training starts."""

    last = None

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        RecordingTask.last = self
        self.start_state = None

    def on_train_start(self):
        optimizer = self.trainer.optimizers[0]
        self.start_state = {
            "epoch": self.current_epoch,
            "global_step": self.global_step,
            "teacher": {k: v.clone() for k, v in self.sed_teacher.state_dict().items()},
            "adam_steps": [float(state["step"]) for state in optimizer.state.values()],
            "scheduler_step": self.trainer.lr_scheduler_configs[0].scheduler.step_num,
        }


def run(log_dir, overrides, *flags, task_cls=SEDTask):
    return main(["--conf_file", CONF, "--log_dir", str(log_dir), "--gpus", "0", *flags, "--set", *overrides],
                task_cls=task_cls)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_overrides):
    """One fit + test (1 epoch), reused by the tests that need a trained run."""
    log_dir = tmp_path_factory.mktemp("trained")
    results = run(log_dir, tiny_overrides)
    return log_dir, results


def run_script(log_dir, *args):
    command = [sys.executable, str(REPO / "recipes/dcase2022_task4_baseline/train_sed.py"), "--conf_file", CONF,
               "--log_dir", str(log_dir), "--gpus", "0", *args]
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def script_fast_dev_run(tmp_path_factory, tiny_overrides):
    """`--fast_dev_run` of the recipe script with the demo config's validation interval (5 epochs)."""
    log_dir = tmp_path_factory.mktemp("script")
    overrides = [o for o in tiny_overrides if not o.startswith("training.validation_interval")]
    completed = run_script(log_dir, "--fast_dev_run", *overrides)
    assert completed.returncode == 0, completed.stderr[-3000:]
    return log_dir, completed


def test_fast_dev_run_of_the_recipe_script(script_fast_dev_run):
    tmp_path, completed = script_fast_dev_run
    metrics = json.loads((tmp_path / "test_metrics.json").read_text())
    for model in ("student", "teacher"):
        for name in ("psds1_sed_scores_eval", "psds2_sed_scores_eval", "psds1_psds_eval", "psds2_psds_eval",
                     "intersection_f1_macro", "event_f1_macro", "weak_f1_macro"):
            assert 0.0 <= metrics[f"test/{model}/{name}"] <= 1.0
    assert "hp_metric" in metrics
    assert "psds1_sed_scores_eval" in completed.stdout  # the summary table
    assert (tmp_path / "config.yaml").is_file() and (tmp_path / "last.ckpt").is_file()
    assert float((tmp_path / "training_codecarbon/training_tot_kwh.txt").read_text()) >= 0
    assert float((tmp_path / "devtest_codecarbon/devtest_tot_kwh.txt").read_text()) >= 0
    assert list((tmp_path / "psd_roc/teacher").glob("*.png"))


def test_fit_writes_metrics_scores_and_checkpoints(trained, mini_dir):
    log_dir, results = trained
    assert json.loads((log_dir / "test_metrics.json").read_text()) == pytest.approx(results, nan_ok=True)
    assert "test/teacher/event_f1_classwise:Cat" in results
    checkpoint = torch.load(log_dir / "last.ckpt", map_location="cpu", weights_only=False)
    assert any(k.startswith("sed_student.cnn.cnn.conv0") for k in checkpoint["state_dict"])
    assert any(k.startswith("sed_teacher.rnn.rnn.weight_ih_l0") for k in checkpoint["state_dict"])
    assert checkpoint["hyper_parameters"]["net"]["nb_filters"] == [4, 8, 8, 8, 8, 8, 8]
    test_clips = {p.stem for p in (mini_dir / "audio/validation/validation_16k").glob("*.wav")}
    scores = load_score_tables(log_dir / "test_scores/teacher")
    assert set(scores) == test_clips


def official_style_checkpoint(path, trained_dir):
    """A Lightning checkpoint laid out like the official baseline's: sed_student./sed_teacher. keys, the
    official mel_spec.* buffers, hyper-parameters; the teacher differs from the student."""
    ours = torch.load(trained_dir / "last.ckpt", map_location="cpu", weights_only=False)
    state = {k: v for k, v in ours["state_dict"].items() if k.startswith(("sed_student.", "sed_teacher."))}
    state = {k: (v + 0.01 if k.startswith("sed_teacher.") and v.is_floating_point() else v) for k, v in state.items()}
    state["mel_spec.spectrogram.window"] = torch.hamming_window(2048, periodic=False)
    state["mel_spec.mel_scale.fb"] = torch.zeros(1025, 128)
    torch.save({"state_dict": state, "hyper_parameters": ours["hyper_parameters"], "epoch": 7}, path)
    return state


def test_test_from_checkpoint_loads_official_key_names(trained, tmp_path, tiny_overrides):
    trained_dir, _ = trained
    state = official_style_checkpoint(tmp_path / "official.ckpt", trained_dir)
    results = run(tmp_path / "test", [o for o in tiny_overrides if not o.startswith("net.")],
                  "--test_from_checkpoint", str(tmp_path / "official.ckpt"), task_cls=RecordingTask)
    task = RecordingTask.last
    for prefix, module in (("sed_student.", task.sed_student), ("sed_teacher.", task.sed_teacher)):
        for key, value in module.state_dict().items():
            assert torch.equal(value, state[prefix + key]), prefix + key
    assert results["test/student/psds1_sed_scores_eval"] >= 0
    student = load_score_tables(tmp_path / "test/test_scores/student")
    teacher = load_score_tables(tmp_path / "test/test_scores/teacher")
    assert set(student) == set(teacher)
    assert any(not student[clip].equals(teacher[clip]) for clip in student)  # two different models were tested


def test_eval_from_checkpoint_writes_readable_score_files(trained, tmp_path, tiny_overrides, mini_dir):
    trained_dir, _ = trained
    eval_folder = mini_dir / "audio/validation/validation_16k"
    run(tmp_path, [*tiny_overrides, f"data.eval_folder={eval_folder}"],
        "--eval_from_checkpoint", str(trained_dir / "last.ckpt"))
    clips = {p.stem for p in eval_folder.glob("*.wav")}
    for model in ("student", "teacher"):
        scores = load_score_tables(tmp_path / "eval_scores" / model)
        assert set(scores) == clips
        table = next(iter(scores.values()))
        assert list(table.columns[:2]) == ["onset", "offset"] and "Speech" in table.columns
    assert not (tmp_path / "test_metrics.json").exists()
    assert (tmp_path / "evaluation_codecarbon/eval_tot_kwh.txt").is_file()


def test_issue13_item14_the_entry_point_logs_the_package_at_info_and_libraries_at_warning(script_fast_dev_run):
    _, completed = script_fast_dev_run
    assert "INFO desed_task.training.run: best model:" in completed.stderr
    assert "GPU available" not in completed.stderr + completed.stdout  # Lightning's INFO lines


def test_issue13_item16_fast_dev_run_validates_and_selects_a_checkpoint(script_fast_dev_run):
    log_dir, completed = script_fast_dev_run
    best = [p.name for p in log_dir.glob("epoch=*.ckpt")]
    assert len(best) == 1, best  # ModelCheckpoint on val/obj_metric saved the best epoch
    assert f"best model: {log_dir / best[0]}" in completed.stderr


def test_issue13_item15_bad_input_is_one_line_exit_2_and_leaves_no_log_dir(tmp_path, tiny_overrides):
    log_dir = tmp_path / "run"
    completed = run_script(log_dir, "--fast_dev_run", *tiny_overrides, "training.n_epoch=3")
    assert completed.returncode == 2
    assert completed.stderr.strip().splitlines()[-1].startswith("error: override 'training.n_epoch=3': unknown key")
    assert "Traceback" not in completed.stderr
    assert not (log_dir / "config.yaml").exists()


def test_issue13_item4_a_second_run_into_the_same_log_dir_gets_its_own_version(trained, tmp_path, tiny_overrides):
    log_dir, first = trained
    before = (log_dir / "last.ckpt").read_bytes()
    scores = tmp_path / "scores.txt"
    second = run(log_dir, [*tiny_overrides, "training.n_test_thresholds=3"], "--scores_file", str(scores))
    block = read_score_blocks(scores)[f"{log_dir.name}_version_1"]  # a recorded (not smoke) run, named by its folder
    assert block["test/student/psds2_sed_scores_eval"] == pytest.approx(second["test/student/psds2_sed_scores_eval"])
    assert (log_dir / "last.ckpt").read_bytes() == before and not list(log_dir.glob("last-v*.ckpt"))
    assert json.loads((log_dir / "test_metrics.json").read_text()) == pytest.approx(first, nan_ok=True)
    assert (log_dir / "version_1" / "last.ckpt").is_file() and (log_dir / "version_1" / "hparams.yaml").is_file()
    assert (log_dir / "version_1" / "test_metrics.json").is_file()


def test_issue13_item6_one_epoch_plus_a_resumed_one_equal_two_epochs(tmp_path, tiny_overrides):
    """Exact resume on CPU: dropout (global RNG), mixup, sampler, loader workers, teacher, optimiser, scheduler.
    The resumed run starts from the checkpoint's epoch, step, teacher, Adam and scheduler state, and its test
    metrics equal those of an uninterrupted run bit for bit (so the same seed also gives the same run)."""
    overrides = [*tiny_overrides, "training.num_workers=1", "training.n_test_thresholds=3"]
    straight = run(tmp_path / "straight", [*overrides, "training.n_epochs=2"])
    run(tmp_path / "split", overrides)
    checkpoint = torch.load(tmp_path / "split/last.ckpt", map_location="cpu", weights_only=False)
    steps = checkpoint["global_step"]
    assert steps > 0 and checkpoint["epoch"] == 0
    energy_before = checkpoint["callbacks"]["CodeCarbonCallback"]["training_kwh"]
    resumed = run(tmp_path / "split", [*overrides, "training.n_epochs=2"],
                  "--resume_from_checkpoint", str(tmp_path / "split/last.ckpt"), task_cls=RecordingTask)
    start = RecordingTask.last.start_state
    assert start["epoch"] == 1 and start["global_step"] == steps
    for key, value in start["teacher"].items():
        assert torch.equal(value, checkpoint["state_dict"][f"sed_teacher.{key}"]), key
    assert start["adam_steps"] and all(step == steps for step in start["adam_steps"])
    assert start["scheduler_step"] == steps + 1
    assert json.dumps(resumed, sort_keys=True) == json.dumps(straight, sort_keys=True)  # NaN-aware, exact
    last, uninterrupted = (torch.load(tmp_path / run_dir / "last.ckpt", map_location="cpu", weights_only=False)
                           for run_dir in ("split", "straight"))
    assert last["global_step"] == uninterrupted["global_step"] == 2 * steps
    assert last["epoch"] == uninterrupted["epoch"]
    assert last["lr_schedulers"][0]["last_epoch"] == uninterrupted["lr_schedulers"][0]["last_epoch"] == 2 * steps
    assert float((tmp_path / "split/training_codecarbon/training_tot_kwh.txt").read_text()) >= energy_before > 0
    assert "n_epochs: 2" in (tmp_path / "split/hparams.yaml").read_text()
    assert not (tmp_path / "split/version_1").exists()


def test_issue13_item7_test_from_checkpoint_uses_the_checkpoint_post_processing(trained, tmp_path, tiny_overrides):
    trained_dir, _ = trained
    checkpoint = torch.load(trained_dir / "last.ckpt", map_location="cpu", weights_only=False)
    checkpoint["hyper_parameters"]["training"]["median_window"] = 5
    torch.save(checkpoint, tmp_path / "model.ckpt")
    base = [o for o in tiny_overrides if not o.startswith("net.")]
    run(tmp_path / "default", base, "--test_from_checkpoint", str(tmp_path / "model.ckpt"))
    assert "median_window: 5" in (tmp_path / "default/config.yaml").read_text()
    run(tmp_path / "asked", [*base, "training.median_window=1"], "--test_from_checkpoint", str(tmp_path / "model.ckpt"))
    assert "median_window: 1" in (tmp_path / "asked/config.yaml").read_text()


def test_postprocessing_tuned_after_training_is_applied_at_test(tmp_path, tiny_overrides, mini_dir):
    """`training.postprocess: {tune: ...}`: the best checkpoint is validated again, class-wise median windows are
    tuned per model on those synthetic validation scores, saved, and the test metrics are also given with them;
    they equal the saved file applied to the written raw test score tables."""
    results = run(tmp_path, [*tiny_overrides, "training.postprocess={tune: classwise_median, objective: psds1}"])
    metadata = mini_dir / "metadata/validation"
    ground_truth = load_ground_truth(metadata / "validation.tsv")
    durations = load_durations(metadata / "validation_durations.tsv")
    for model in ("student", "teacher"):
        params = load_params(tmp_path / f"postprocess_{model}.yaml")
        assert params.method == "median" and params.tuning["clips"] == 16  # all synthetic validation clips
        assert params.tuning["objective"] == "psds1"
        assert len(load_score_tables(tmp_path / "validation_scores_raw" / model)) == 16
        raw = load_score_tables(tmp_path / "test_scores_raw" / model)
        again = postprocessed_metrics(raw, ground_truth, durations, tmp_path / f"postprocess_{model}.yaml",
                                      f"test/{model}")
        assert again and {k: results[k] for k in again} == pytest.approx(again, nan_ok=True)


def test_postprocessing_tuning_needs_a_training_run(tmp_path, tiny_overrides, capsys):
    with pytest.raises(SystemExit) as stopped:
        run(tmp_path / "run", [*tiny_overrides, "training.postprocess={tune: csebbs}"],
            "--test_from_checkpoint", str(tmp_path / "any.ckpt"))
    assert stopped.value.code == 2
    assert "tuning runs after training" in capsys.readouterr().err.strip().splitlines()[-1]
    assert not (tmp_path / "run").exists()
