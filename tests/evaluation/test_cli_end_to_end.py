"""The CLI end to end: score folders as the trainer writes them, operating-point folders and detection files."""
import json
import math
import re
import shutil

import numpy as np
import pandas as pd
import pytest
from sed_scores_eval.base_modules.io import write_sed_scores

from desed_task.evaluation import (
    PSDS1, PSDS2, load_detections, load_durations, load_ground_truth, load_operating_points, load_score_tables,
    psds_from_operating_points, scores_to_detections, sed_report,
)
from desed_task.evaluation.__main__ import main
from desed_task.evaluation.synthetic import synthetic_score_tables

LABELS = ["Cat", "Dog", "Speech"]


def small_dataset(tmp_path):
    """24 clips (every fourth without events) with synthetic score tables written as the trainer writes them."""
    rng = np.random.default_rng(0)
    rows = []
    for index in range(24):
        name = f"clip{index:02d}.wav"
        if index % 4 == 0:
            rows.append((name, np.nan, np.nan, np.nan))
        for _ in range(0 if index % 4 == 0 else int(rng.integers(1, 3))):
            onset = round(float(rng.uniform(0, 7)), 3)
            rows.append((name, onset, round(onset + float(rng.uniform(0.3, 3)), 3), str(rng.choice(LABELS))))
    ground_truth = pd.DataFrame(rows, columns=["filename", "onset", "offset", "event_label"])
    durations = {f"clip{index:02d}.wav": 10.0 for index in range(24)}
    ground_truth.to_csv(tmp_path / "gt.tsv", sep="\t", index=False)
    pd.DataFrame({"filename": list(durations), "duration": list(durations.values())}).to_csv(
        tmp_path / "dur.tsv", sep="\t", index=False)
    write_sed_scores(synthetic_score_tables(ground_truth, durations, LABELS, seed=2), tmp_path / "scores")
    return tmp_path / "gt.tsv", tmp_path / "dur.tsv", tmp_path / "scores"


def read_report(path):
    report = json.loads(path.read_text())
    report.pop("seconds")
    return report


def assert_same_report(cli, api):
    assert set(cli) == set(api)
    for key, value in api.items():
        if isinstance(value, float) and math.isnan(value):
            assert cli[key] is None, key
        elif isinstance(value, float):
            assert cli[key] == pytest.approx(value, abs=1e-12), key
        else:
            assert cli[key] == value, key


def test_scores_folder_report_and_plots(tmp_path):
    gt_path, dur_path, score_dir = small_dataset(tmp_path)
    args = ["--ground_truth", str(gt_path), "--durations", str(dur_path), "--scores", str(score_dir),
            "--classes", ",".join(LABELS)]
    assert main(args + ["--out", str(tmp_path / "report.json"), "--plot", str(tmp_path / "plots")]) == 0
    cli = read_report(tmp_path / "report.json")
    ground_truth, durations = load_ground_truth(gt_path), load_durations(dur_path)
    api = sed_report(ground_truth, durations, scores=load_score_tables(score_dir, LABELS, durations))
    assert_same_report(cli, api)
    for key in ("psds1_sed_scores_eval", "psds2_sed_scores_eval", "intersection_f1_macro", "event_f1_macro",
                "event_f1_micro", "segment_f1_macro", "segment_f1_micro"):
        assert 0.0 < cli[key] < 1.0, key
    for label in LABELS:
        assert f"psds1_sed_scores_eval_classwise:{label}" in cli and f"segment_f1_classwise:{label}" in cli
    assert cli["psds_flavours"] == ["sed_scores_eval"] and cli["threshold"] == 0.5
    names = sorted(path.name for path in (tmp_path / "plots").iterdir())
    assert names == sorted(f"psds{n}_sed_scores_eval_psd_roc{suffix}.png" for n in (1, 2) for suffix in ("", "_per_class"))
    assert all((tmp_path / "plots" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for name in names)

    assert main(args + ["--psds_backend", "sed_scores_eval", "--out", str(tmp_path / "loops.json")]) == 0
    assert_same_report(read_report(tmp_path / "loops.json"), api)


@pytest.fixture(scope="module")
def desed(anchors):
    return anchors / "desed"


def test_operating_points_folder(desed, tmp_path):
    folder = tmp_path / "operating_points"
    folder.mkdir()
    for threshold in ("0.09", "0.29", "0.49", "0.69", "0.89"):
        name = f"predictions_th_{threshold}.tsv"
        shutil.copy(desed / "baseline_student" / "predictions_operating_points" / name, folder / name)
    gt_path, dur_path = desed / "validation.tsv", desed / "validation_durations.tsv"
    args = ["--ground_truth", str(gt_path), "--durations", str(dur_path), "--operating_points", str(folder),
            "--threshold", "0.49", "--allow_events_past_duration"]
    assert main(args + ["--out", str(tmp_path / "report.json"), "--plot", str(tmp_path / "plots")]) == 0
    cli = read_report(tmp_path / "report.json")
    ground_truth, durations = load_ground_truth(gt_path), load_durations(dur_path)
    operating_points = load_operating_points(folder)
    for scenario in (PSDS1, PSDS2):
        expected = psds_from_operating_points(operating_points, ground_truth, durations, scenario)
        assert cli[f"{scenario.name}_psds_eval"] == pytest.approx(expected.value, abs=1e-12)
        assert 0.05 < expected.value < 0.9
    api = sed_report(ground_truth, durations, detections=operating_points[0.49])
    for key in ("intersection_f1_macro", "event_f1_macro", "segment_f1_micro"):
        assert cli[key] == pytest.approx(api[key], abs=1e-12)
    assert len(list((tmp_path / "plots").glob("*.png"))) == 4


def test_detection_file_tsv_and_csv(desed, tmp_path):
    csv_path = desed / "baseline_student" / "predictions0.5.csv"
    tsv_path = tmp_path / "predictions.tsv"
    pd.read_csv(csv_path, index_col=0).to_csv(tsv_path, sep="\t", index=False)
    gt_path, dur_path = desed / "validation.tsv", desed / "validation_durations.tsv"
    reports = []
    for path in (csv_path, tsv_path):
        out = tmp_path / f"{path.suffix[1:]}.json"
        assert main(["--ground_truth", str(gt_path), "--durations", str(dur_path), "--detections", str(path),
                     "--allow_events_past_duration", "--out", str(out)]) == 0
        reports.append(read_report(out))
    assert reports[0] == reports[1]
    api = sed_report(load_ground_truth(gt_path), load_durations(dur_path), detections=load_detections(csv_path))
    assert_same_report(reports[0], api)
    assert "psds1_sed_scores_eval" not in reports[0] and reports[0]["event_f1_macro"] > 0.3


def test_issue13_item18_docs_name_the_report_keys_and_the_legacy_figures(tmp_path, repo_root):
    readme = "\n\n".join(path.read_text() for path in (repo_root / "docs").glob("*.md"))
    section = (repo_root / "docs" / "evaluation.md").read_text().split("\n## ", 1)[0]
    json_bullet = section.split("writes the JSON", 1)[1].split("\n- ", 1)[0]
    named = set(re.findall(r"`([a-z0-9_]+)`", json_bullet))
    ground_truth = pd.DataFrame({"filename": [f"c{i}.wav" for i in range(9)], "onset": [1.0 + i / 2 for i in range(9)],
                                 "offset": [4.0 + i / 3 for i in range(9)], "event_label": LABELS * 3})
    durations = {name: 10.0 for name in ground_truth["filename"]}
    scores = synthetic_score_tables(ground_truth, durations, LABELS, seed=3)
    operating_points = scores_to_detections(scores, [0.25, 0.5, 0.75])
    report = sed_report(ground_truth, durations, scores=scores, operating_points=operating_points)
    report["seconds"] = 0.0
    assert len(named) >= 12 and named <= set(report), named - set(report)
    for paragraph in readme.split("\n\n"):
        for row in paragraph.splitlines() if paragraph.startswith("|") else [paragraph]:
            if "39.83" in row:
                assert "--float_precision legacy" in row, row
    assert "DESIGN.md" not in section
