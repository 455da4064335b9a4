"""The command line: equal to the trainer's test step, checkpoint layouts and families, bad input, outputs the
evaluation CLI reads."""
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from desed_task.data.mini import ensure_mini_dataset, mini_config_paths
from desed_task.evaluation import load_score_tables
from desed_task.inference import load_task
from desed_task.inference.__main__ import expand_inputs, main, write_score_tsv
from desed_task.training import run
from desed_task.training.irct import IRCTTask

REPO = Path(__file__).resolve().parents[2]
MINI_SIZES = {"n_synth": 16, "n_weak": 16, "n_unlabeled": 16, "n_synth_val": 16, "n_test": 16}


@pytest.fixture(scope="module")
def mini_dir() -> Path:
    """The recipe tests' 16-clip mini DESED (generated once per machine)."""
    root = Path(tempfile.gettempdir()) / "desed_task_tests" / "mini_desed_16"
    ensure_mini_dataset(root, seed=0, **MINI_SIZES)
    return root


def cli(*args) -> int:
    return main([*map(str, args), "--no_progress"])


def test_cli_scores_equal_the_trainer_test_step(tmp_path, mini_dir, demo_checkpoint):
    """The trainer's test step in its evaluation flavour (same `test_step` and decoding, score files only)."""
    test_folder = Path(mini_config_paths(mini_dir)["test_folder"])
    mini = "{" + f"out_dir: {mini_dir}, seed: 0, " + ", ".join(f"{k}: {v}" for k, v in MINI_SIZES.items()) + "}"
    run.main(["--conf_file", str(REPO / "confs/dcase2022_task4_baseline/demo.yaml"), "--log_dir", str(tmp_path / "test"),
              "--gpus", "0", "--eval_from_checkpoint", str(demo_checkpoint), "--scores_file", "", "--set",
              f"data.mini={mini}", f"data.eval_folder={test_folder}", "training.batch_size_val=8",
              "training.num_workers=0", "training.enable_progress_bar=False"])
    for model in ("student", "teacher"):
        assert cli("--checkpoint", demo_checkpoint, "--model", model, test_folder, "--out", tmp_path / model) == 0
        trainer = load_score_tables(tmp_path / "test/eval_scores" / model)
        ours = load_score_tables(tmp_path / model / "scores")
        assert set(ours) == set(trainer) and len(ours) == 16
        assert {len(table) for table in ours.values()} == {74, 78}  # one clip is 9.447 s long
        for clip, table in trainer.items():
            assert list(ours[clip].columns) == list(table.columns)
            np.testing.assert_allclose(ours[clip].to_numpy(), table.to_numpy(), atol=1e-5, rtol=0, err_msg=clip)
    student = load_score_tables(tmp_path / "student/scores")
    teacher = load_score_tables(tmp_path / "teacher/scores")
    assert any(not np.allclose(student[c].to_numpy(), teacher[c].to_numpy()) for c in student)


def test_official_layout_checkpoint_loads(tmp_path, make_task, make_checkpoint, make_audio):
    task = make_task(seed=3)
    path = make_checkpoint(task, tmp_path / "official.ckpt", official=True)
    loaded = load_task(path)
    assert type(loaded).__name__ == "SEDTask"
    for name in ("sed_student", "sed_teacher"):
        for key, value in getattr(task, name).state_dict().items():
            assert torch.equal(getattr(loaded, name).state_dict()[key], value), key
    audio = make_audio(tmp_path / "in/clip.wav", 10.0)
    assert cli("--checkpoint", path, audio, "--out", tmp_path / "out", "--model", "student") == 0
    assert (tmp_path / "out/scores/clip.tsv").is_file()


def test_checkpoint_without_hyper_parameters_needs_the_config(tmp_path, make_task, make_audio, capsys):
    task = make_task()
    path = tmp_path / "weights.ckpt"
    torch.save({"state_dict": task.state_dict()}, path)
    audio = make_audio(tmp_path / "clip.wav", 2.0)
    assert cli("--checkpoint", path, audio, "--out", tmp_path / "out") == 2
    assert "weights.ckpt: the checkpoint has no training config" in capsys.readouterr().err
    conf = tmp_path / "conf.yaml"
    conf.write_text((REPO / "confs/dcase2022_task4_baseline/demo.yaml").read_text())
    assert cli("--checkpoint", path, "--conf_file", conf, audio, "--out", tmp_path / "out") == 2  # wide net in conf
    assert "cannot build SEDTask" in capsys.readouterr().err
    with_net = tmp_path / "with_net.ckpt"
    torch.save({"state_dict": task.state_dict(), "hyper_parameters": {"net": task.config["net"]}}, with_net)
    assert cli("--checkpoint", with_net, "--conf_file", conf, audio, "--out", tmp_path / "out") == 0


def test_irct_checkpoint_rebuilds_the_irct_task(tmp_path, make_task, make_checkpoint, make_audio):
    task = make_task(REPO / "confs/irct/irct_t1_l3_1.yaml", task_cls=IRCTTask)
    path = make_checkpoint(task, tmp_path / "irct.ckpt")
    assert isinstance(load_task(path), IRCTTask)
    assert cli("--checkpoint", path, make_audio(tmp_path / "a.wav", 3.0), "--out", tmp_path / "out") == 0


def test_unreadable_checkpoint(tmp_path, make_audio, capsys):
    audio = make_audio(tmp_path / "a.wav", 1.0)
    broken = tmp_path / "broken.ckpt"
    broken.write_bytes(b"PK\x03\x04 truncated")
    assert cli("--checkpoint", broken, audio, "--out", tmp_path / "out") == 2
    assert "broken.ckpt: not a readable PyTorch checkpoint" in capsys.readouterr().err
    assert cli("--checkpoint", tmp_path / "absent.ckpt", audio, "--out", tmp_path / "out") == 2
    assert "absent.ckpt not found" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_folder_with_bad_files_outputs_and_evaluation(tmp_path, demo_checkpoint, make_audio, capsys):
    folder = tmp_path / "recordings"
    make_audio(folder / "long.flac", 12.3, sample_rate=44100, channels=2, subtype="PCM_16")
    make_audio(folder / "short.wav", 0.2)
    make_audio(folder / "empty.wav", np.zeros(0, dtype=np.float32))
    (folder / "notes.txt").write_text("not audio")
    out = tmp_path / "out"
    assert cli("--checkpoint", demo_checkpoint, folder, tmp_path / "missing.wav", "--out", out, "--plot",
               "--threshold", "0.45", "Speech=0.6", "--batch_size", "3") == 1
    printed = capsys.readouterr().out
    assert "2 file(s) processed, 3 skipped" in printed and "x real time" in printed
    skipped = pd.read_csv(out / "skipped.tsv", sep="\t")
    assert sorted(Path(p).name for p in skipped["path"]) == ["empty.wav", "missing.wav", "notes.txt"]
    assert skipped["reason"].str.contains("empty audio file").any()
    for clip in ("long", "short"):
        assert (out / "scores" / f"{clip}.tsv").is_file() and (out / "plots" / f"{clip}.png").is_file()
    assert not list(out.rglob("*.tmp"))
    summary = json.loads((out / "summary.json").read_text())
    assert summary["files"] == 2 and summary["thresholds"]["Speech"] == 0.6 and summary["thresholds"]["Dog"] == 0.45
    detections = pd.read_csv(out / "detections.tsv", sep="\t")
    assert list(detections.columns) == ["filename", "onset", "offset", "event_label"]
    assert set(detections["filename"]) <= {"long.flac", "short.wav"} and len(detections) > 0
    evaluation = subprocess.run([sys.executable, "-m", "desed_task.evaluation", "--ground_truth", out / "detections.tsv",
                                 "--durations", out / "durations.tsv", "--detections", out / "detections.tsv",
                                 "--out", tmp_path / "report.json"], capture_output=True, text=True, timeout=120)
    assert evaluation.returncode == 0, evaluation.stderr[-2000:]
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["event_f1_macro"] == pytest.approx(1.0)  # the detections scored against themselves


def test_atst_sed_checkpoint_uses_its_two_frontends(tmp_path, make_checkpoint, make_audio):
    from desed_task.training.atst_sed import ATSTSEDTask
    from desed_task.utils.config import load_config
    torch.manual_seed(0)
    task = ATSTSEDTask(load_config(REPO / "confs/atst_sed/demo.yaml")).eval()
    path = make_checkpoint(task, tmp_path / "atst.ckpt")
    loaded = load_task(path)
    assert isinstance(loaded, ATSTSEDTask)
    assert cli("--checkpoint", path, make_audio(tmp_path / "a.wav", 12.5, sample_rate=22050), "--out", tmp_path / "out") == 0
    scores = pd.read_csv(tmp_path / "out/scores/a.tsv", sep="\t")
    frame = float(loaded.encoder.frame_to_time(1))
    assert len(scores) == int(np.ceil(12.5 / frame - 1e-9)) and scores["offset"].iloc[-1] == pytest.approx(12.5)


def test_score_tsv_keeps_float32_scores_exactly(tmp_path):
    rng = np.random.default_rng(0)
    frames = 1000
    table = pd.DataFrame({"onset": np.arange(frames) * 0.064, "offset": np.arange(1, frames + 1) * 0.064,
                          "Dog": rng.random(frames).astype(np.float32).astype(np.float64),
                          "Speech": rng.random(frames) * 1e-6})
    write_score_tsv(table, tmp_path / "scores" / "clip.tsv")
    (loaded,) = load_score_tables(tmp_path / "scores").values()
    assert list(loaded.columns) == list(table.columns) and not list((tmp_path / "scores").glob(".*"))
    np.testing.assert_array_equal(loaded["Dog"].to_numpy(np.float32), table["Dog"].to_numpy(np.float32))
    np.testing.assert_allclose(loaded.to_numpy(), table.to_numpy(), rtol=1e-8, atol=0)


def test_files_with_the_same_stem_get_their_own_outputs(tmp_path):
    for name in ("a.wav", "a.ogg", "b.wav"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "b.wav").write_bytes(b"")
    paths, names, skipped = expand_inputs([tmp_path, tmp_path / "other"])
    assert {path.relative_to(tmp_path).as_posix(): name for path, name in names.items()} == {
        "a.ogg": "a.ogg", "a.wav": "a.wav", "b.wav": "b.wav"}
    assert [s.path.relative_to(tmp_path).as_posix() for s in skipped] == ["other/b.wav"]


def test_a_late_fusion_checkpoint_without_its_embedding_weights_is_one_line(tmp_path, capsys):
    config = run.load_config(REPO / "confs/dcase2023_task4_baseline/pretrained_beats.yaml")
    path = tmp_path / "fusion.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": config}, path)
    assert main(["--checkpoint", str(path), str(tmp_path), "--out", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert "late-fusion checkpoint" in error and "--embedding_checkpoint" in error and "beats" in error
    assert not (tmp_path / "out").exists()
