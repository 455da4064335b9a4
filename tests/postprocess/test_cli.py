import json

import pytest
import yaml

from desed_task.evaluation.__main__ import main as evaluate
from desed_task.postprocess.__main__ import main as postprocess


def test_tune_apply_evaluate(beats, tmp_path, capsys):
    root = beats[0]
    data = ["--ground_truth", str(root / "ground_truth.tsv"), "--durations", str(root / "durations.tsv")]
    params = tmp_path / "params.yaml"
    assert postprocess(["tune", "--method", "classwise_median", "--scores", str(root / "scores"), *data,
                        "--objective", "psds1", "--out", str(params)]) == 0
    stored = yaml.safe_load(params.read_text())
    assert stored["method"] == "median" and len(stored["params"]) == 10
    assert postprocess(["apply", "--params", str(params), "--scores", str(root / "scores"),
                        "--out", str(tmp_path / "applied")]) == 0
    assert len(list((tmp_path / "applied").glob("*.tsv"))) == 20
    assert evaluate(["--scores", str(tmp_path / "applied"), *data, "--out", str(tmp_path / "applied.json")]) == 0
    assert evaluate(["--scores", str(root / "scores"), *data, "--postprocess", str(params),
                     "--out", str(tmp_path / "direct.json")]) == 0
    assert evaluate(["--scores", str(root / "scores"), *data, "--out", str(tmp_path / "plain.json")]) == 0
    applied, direct, plain = (json.loads((tmp_path / f"{name}.json").read_text())
                              for name in ("applied", "direct", "plain"))
    assert applied["psds1_sed_scores_eval"] == pytest.approx(direct["psds1_sed_scores_eval"], abs=1e-9)
    assert applied["psds1_sed_scores_eval"] == pytest.approx(stored["tuning"]["value"], abs=1e-9)
    assert plain["psds1_sed_scores_eval"] == pytest.approx(0.2697, abs=1e-4)
    assert applied["psds1_sed_scores_eval"] > plain["psds1_sed_scores_eval"]


def test_errors_are_one_line_exit_2(beats, tmp_path, capsys):
    root = beats[0]
    bad = tmp_path / "bad.yaml"
    bad.write_text("method: median\nclasses: [Cat]\nparams: {Cat: {window: 3}}\n")
    assert postprocess(["apply", "--params", str(bad), "--scores", str(root / "scores"),
                        "--out", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("error: ") and str(bad) in error and "\n" not in error
    assert not (tmp_path / "out").exists()
    assert evaluate(["--scores", str(root / "scores"), "--ground_truth", str(root / "ground_truth.tsv"),
                     "--durations", str(root / "durations.tsv"), "--postprocess", str(bad)]) == 2
    assert str(bad) in capsys.readouterr().err
    assert postprocess(["tune", "--method", "median", "--scores", str(tmp_path), "--ground_truth",
                        str(root / "ground_truth.tsv"), "--durations", str(root / "durations.tsv"),
                        "--out", str(tmp_path / "p.yaml")]) == 2
    assert "no score .tsv files" in capsys.readouterr().err


def test_a_class_without_ground_truth_keeps_its_default_and_says_so(beats, tmp_path, capsys):
    root = beats[0]
    ground_truth = beats[2]
    no_cat = tmp_path / "no_cat.tsv"
    ground_truth[ground_truth["event_label"] != "Cat"].to_csv(no_cat, sep="\t", index=False)
    assert postprocess(["tune", "--method", "classwise_median", "--scores", str(root / "scores"), "--ground_truth",
                        str(no_cat), "--durations", str(root / "durations.tsv"), "--objective", "collar_f1",
                        "--out", str(tmp_path / "p.yaml")]) == 0
    assert f"notice: {no_cat}: no event of Cat; it keeps the default parameters" in capsys.readouterr().err
    stored = yaml.safe_load((tmp_path / "p.yaml").read_text())
    assert stored["params"]["Cat"] == {"window": 7} and stored["tuning"]["defaults_kept"] == ["Cat"]
