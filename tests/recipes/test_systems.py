"""The runner's guarantees, the same for every registered system: the common flags, the config-key check
(in the YAML file and on the command line), bad input as one line with exit 2 and nothing written, and, on
each family's tiny mini data, the same outputs in a fresh run folder and `--test_from_checkpoint`."""
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml

from desed_task.data.classes import DESED_CLASSES
from desed_task.data.mini_tau22 import ensure_mini_tau22
from desed_task.inference.__main__ import main as detect
from desed_task.postprocess import PostprocessParams, save_params
from desed_task.training.registry import SYSTEMS
from desed_task.training.run import build_parser, main
from desed_task.training.sed_scoring import MODELS

REPO = Path(__file__).resolve().parents[2]
COMMON = ["--conf_file", "c.yaml", "--log_dir", "d", "--gpus", "0", "--accelerator", "cpu", "--devices", "1",
          "--num_nodes", "1", "--fast_dev_run", "--resume_from_checkpoint", "r.ckpt", "--test_from_checkpoint",
          "t.ckpt", "--set", "a.b=1", "c.d=2"]


def run_expecting_exit_2(system: str, argv: list[str], capsys) -> str:
    with pytest.raises(SystemExit) as stopped:
        main(argv, system=system)
    assert stopped.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: ")
    return err[-1]


def shipped_config(system: str) -> dict:
    return yaml.safe_load((REPO / SYSTEMS[system].conf_file).read_text())


@pytest.mark.parametrize("system", SYSTEMS)
def test_every_system_takes_the_common_flags(system):
    args = build_parser(system).parse_args(COMMON)
    assert (args.conf_file, args.log_dir, args.gpus, args.accelerator, args.devices, args.num_nodes) == (
        "c.yaml", "d", "0", "cpu", "1", 1)
    assert args.fast_dev_run and args.resume_from_checkpoint == "r.ckpt" and args.test_from_checkpoint == "t.ckpt"
    assert args.set_overrides == ["a.b=1", "c.d=2"]
    assert build_parser(system).parse_args([]).conf_file == SYSTEMS[system].conf_file


@pytest.mark.parametrize("system", SYSTEMS)
def test_a_typo_in_the_yaml_file_is_one_line_naming_file_and_key(system, tmp_path, capsys):
    config = shipped_config(system)
    config["training"]["n_epoch"] = config["training"].pop("n_epochs")
    conf = tmp_path / "typo.yaml"
    conf.write_text(yaml.safe_dump(config))
    log_dir = tmp_path / "run"
    line = run_expecting_exit_2(system, ["--conf_file", str(conf), "--log_dir", str(log_dir), "--gpus", "0"], capsys)
    assert str(conf) in line and "'training.n_epoch'" in line and "'training.n_epochs'" in line
    assert not log_dir.exists()


@pytest.mark.parametrize("system", SYSTEMS)
def test_a_missing_required_key_and_an_unknown_override_are_one_line(system, tmp_path, capsys):
    config = shipped_config(system)
    del config["training"]["n_epochs"]
    conf = tmp_path / "short.yaml"
    conf.write_text(yaml.safe_dump(config))
    log_dir = tmp_path / "run"
    line = run_expecting_exit_2(system, ["--conf_file", str(conf), "--log_dir", str(log_dir)], capsys)
    assert str(conf) in line and "missing required key" in line and "training.n_epochs" in line
    conf_file = str(REPO / SYSTEMS[system].conf_file)
    line = run_expecting_exit_2(system, ["--conf_file", conf_file, "--log_dir", str(log_dir), "training.n_epoks=3"],
                                capsys)
    assert "training.n_epoks" in line
    assert not log_dir.exists()


@pytest.mark.parametrize("system", SYSTEMS)
def test_missing_data_is_one_line_and_writes_nothing(system, tmp_path, capsys):
    """The shipped configs point at data that is not on this machine."""
    log_dir = tmp_path / "run"
    run_expecting_exit_2(system, ["--conf_file", str(REPO / SYSTEMS[system].conf_file), "--log_dir", str(log_dir),
                                  "--gpus", "0"], capsys)
    assert not log_dir.exists() or not any(log_dir.iterdir())


@pytest.fixture(scope="module")
def family_args(tiny_overrides):
    """Per family: a system, its config and the overrides that train it on tiny mini data in seconds."""
    tau22 = Path(tempfile.gettempdir()) / "desed_task_tests" / "mini_tau22_tiny"
    ensure_mini_tau22(tau22, 0, n_train_a=2, n_train_other=1, n_eval=1)
    fsd = Path(tempfile.gettempdir()) / "desed_task_tests" / "mini_fsdnoisy18k_1"
    return {
        "sed": ("confs/dcase2022_task4_baseline/demo.yaml", ["--set", *tiny_overrides]),
        "cp_mobile": ("confs/cpjku_dcase23/demo.yaml", [
            "--batch_size", "8", "--num_workers", "0", "training.batch_size_val=8",
            f"data.mini={{out_dir: {tau22}, seed: 0, n_train_a: 2, n_train_other: 1, n_eval: 1}}"]),
        "uclser": ("confs/uclser20/params_supervised_lineval.yaml", [
            f"data.mini={{out_dir: {fsd}, seed: 0, n_noisy: 1, n_clean: 1, n_test: 1}}",
            f"data.hdf5_dir={fsd / 'hdf5'}", "data.progress=false", "model.network=vgg_relu",
            "model.pretrained_path=null",
            "model.options={channels: [4, 4, 4, 8, 8, 8], embed_dim: 16}", "training.batch_size=8",
            "training.batch_size_val=32", "training.num_workers=0", "training.enable_progress_bar=false"]),
    }


@pytest.mark.parametrize("system", ["sed", "cp_mobile", "uclser"])
def test_every_family_writes_the_same_outputs_and_retests_in_a_fresh_folder(system, family_args, tmp_path, capsys):
    conf, overrides = family_args[system]
    log_dir = tmp_path / "run"
    common = ["--conf_file", str(REPO / conf), "--gpus", "0", "--fast_dev_run", "--scores_file", ""]
    if system == "sed":  # test metrics also with tuned post-processing (here class-wise median windows)
        params = PostprocessParams("median", list(DESED_CLASSES), {c: {"window": 1 + 2 * (i % 3)}
                                                                   for i, c in enumerate(DESED_CLASSES)})
        overrides = [*overrides, f"training.postprocess={save_params(params, tmp_path / 'median.yaml')}"]
    trained = main([*common, "--log_dir", str(log_dir), *overrides], system=system)
    if system == "sed":
        assert all(0 <= trained[f"test/{model}/psds1_sed_scores_eval_postprocessed"] <= 1 for model in MODELS)
    for output in ("last.ckpt", "test_metrics.json", "config.yaml", "environment.json"):
        assert (log_dir / output).is_file(), output
    assert list(log_dir.glob("events.out.tfevents.*"))
    written = json.loads((log_dir / "test_metrics.json").read_text())
    assert {key: written[key] for key in trained} == pytest.approx(trained, nan_ok=True)
    retested = main([*common, "--log_dir", str(log_dir), "--test_from_checkpoint", str(log_dir / "last.ckpt"),
                     *overrides], system=system)
    rewritten = json.loads((log_dir / "version_1" / "test_metrics.json").read_text())
    assert {key: rewritten[key] for key in retested} == pytest.approx(retested, nan_ok=True)
    if system != "sed":  # SED tests its best epoch, which fast_dev_run need not make the last one
        assert retested == pytest.approx(trained)
        assert detect(["--checkpoint", str(log_dir / "last.ckpt"), str(tmp_path), "--out", str(tmp_path / "det")]) == 2
        assert f"a {system} checkpoint" in capsys.readouterr().err and not (tmp_path / "det").exists()


@pytest.mark.slow  # two interpreter start-ups plus a 2-process launch (~40 CPU-seconds); run by .ci/run
def test_clip_classification_two_process_ddp_equals_one_process_test(family_args, tmp_path):
    """UCLSER linear evaluation trained for one epoch with 2 CPU processes (Lightning's launcher re-runs the
    recipe): rank 0 alone writes the outputs, and the test metrics, gathered from both ranks, equal a
    one-process test of the written checkpoint."""
    conf, overrides = family_args["uclser"]
    log_dir = tmp_path / "ddp"
    common = [sys.executable, str(REPO / "recipes/uclser20/main_train.py"), "--conf_file", str(REPO / conf),
              "--scores_file", "", *overrides, "training.n_epochs=1"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    subprocess.run([*common, "--log_dir", str(log_dir), "--accelerator", "cpu", "--devices", "2"], check=True,
                   env=env, cwd=tmp_path, timeout=600)
    assert not (log_dir / "version_1").exists()
    ddp = json.loads((log_dir / "test_metrics.json").read_text())
    single = main(["--conf_file", str(REPO / conf), "--scores_file", "", "--gpus", "0", "--log_dir",
                   str(tmp_path / "single"), "--test_from_checkpoint", str(log_dir / "last.ckpt"), *overrides,
                   "training.n_epochs=1"], system="uclser")
    assert ddp == pytest.approx(single)


@pytest.mark.parametrize("system", ["cp_mobile", "uclser"])
def test_clip_classifier_resume_is_exact(system, family_args, tmp_path):
    """1 epoch, then resumed for a 2nd from `last.ckpt`, equal 2 uninterrupted epochs metric for metric: the
    training loader's generator and the global random states travel in the checkpoint."""
    conf, overrides = family_args[system]
    common = ["--conf_file", str(REPO / conf), "--gpus", "0", "--scores_file", ""]
    straight = main([*common, "--log_dir", str(tmp_path / "straight"), *overrides, "training.n_epochs=2"],
                    system=system)
    main([*common, "--log_dir", str(tmp_path / "resumed"), *overrides, "training.n_epochs=1"], system=system)
    resumed = main([*common, "--log_dir", str(tmp_path / "resumed"), "--resume_from_checkpoint",
                    str(tmp_path / "resumed" / "last.ckpt"), *overrides, "training.n_epochs=2"], system=system)
    assert resumed == straight
