"""The real DESED validation set: our metrics against the published sed_eval reports, psds_eval and sed_scores_eval."""
import json
import re

import numpy as np
import pandas as pd
import pytest
import sed_scores_eval
from psds_eval import PSDSEval

from desed_task.evaluation import (
    PSDS1, PSDS2, intersection_f1_macro, load_durations, load_ground_truth, load_operating_points, psds_from_operating_points,
    psds_from_scores, sed_eval_metrics, sed_report,
)
from desed_task.evaluation.__main__ import main
from desed_task.evaluation.synthetic import synthetic_score_tables


@pytest.fixture(scope="module")
def desed(anchors):
    return anchors / "desed"


def parse_sed_eval_report(path):
    """Overall (micro/macro) and class-wise figures of a sed_eval text report, in percent / raw ER."""
    text = path.read_text()
    micro, macro = text.split("Class-wise average metrics")[0], text.split("Class-wise average metrics")[1].split("Class-wise metrics")[0]

    def grab(block, name):
        return float(re.search(rf"{name}\s*:\s*([\d.]+)", block).group(1))

    overall = {}
    for prefix, block in (("micro", micro), ("macro", macro)):
        overall[f"f1_{prefix}"] = grab(block, r"F-measure \(F1\)")
        overall[f"precision_{prefix}"] = grab(block, "Precision")
        overall[f"recall_{prefix}"] = grab(block, "Recall")
        overall[f"error_rate_{prefix}"] = grab(block, r"Error rate \(ER\)")
    classes = {}
    for line in text.split("Class-wise metrics")[1].splitlines():
        cells = [c for c in re.split(r"[|\s%]+", line) if c]
        if len(cells) >= 9 and re.match(r"^\d+$", cells[1]):
            classes[cells[0].rstrip(".")] = [float(c) for c in cells[1:9]]
    return overall, classes


def test_cli_reproduces_published_event_and_segment_f1(desed, tmp_path):
    out = tmp_path / "report.json"
    rc = main([
        "--ground_truth", str(desed / "validation.tsv"), "--durations", str(desed / "validation_durations.tsv"),
        "--detections", str(desed / "baseline_student" / "predictions0.5.csv"), "--float_precision", "legacy",
        "--allow_events_past_duration", "--out", str(out),
    ])
    assert rc == 0
    report = json.loads(out.read_text())
    for kind in ("event", "segment"):
        overall, classes = parse_sed_eval_report(desed / "baseline_student" / f"{kind}_f1.txt")
        for key, value in overall.items():
            ours = report[f"{kind}_{key}"] * (1 if key.startswith("error") else 100)
            assert abs(ours - value) <= 0.005 + 1e-9, (kind, key, ours, value)
        assert len(classes) == 10
        for short, (n_ref, n_sys, f, pre, rec, er, dele, ins) in classes.items():
            (name,) = [k.split(":")[1] for k in report if k.startswith(f"{kind}_f1_classwise:") and k.split(":")[1].startswith(short)]
            assert report[f"{kind}_n_ref_classwise:{name}"] == n_ref and report[f"{kind}_n_sys_classwise:{name}"] == n_sys
            for stat, value in (("f1", f), ("precision", pre), ("recall", rec)):
                assert abs(report[f"{kind}_{stat}_classwise:{name}"] * 100 - value) <= 0.05 + 1e-9, (kind, name, stat)
            for stat, value in (("error_rate", er), ("deletion_rate", dele), ("insertion_rate", ins)):
                assert abs(report[f"{kind}_{stat}_classwise:{name}"] - value) <= 0.005 + 1e-9, (kind, name, stat)
    assert report["event_f1_macro"] == pytest.approx(0.3983, abs=5e-5)


def test_operating_point_psds_equals_psds_eval(desed):
    ground_truth = load_ground_truth(desed / "validation.tsv")
    durations = load_durations(desed / "validation_durations.tsv")
    operating_points = load_operating_points(desed / "baseline_student" / "predictions_operating_points")
    assert len(operating_points) == 50
    subset = {threshold: operating_points[threshold] for threshold in sorted(operating_points)[::5]}  # 10 of them
    gt_raw = pd.read_csv(desed / "validation.tsv", sep="\t")
    meta_raw = pd.read_csv(desed / "validation_durations.tsv", sep="\t")
    for scenario in (PSDS1, PSDS2):
        ours = psds_from_operating_points(subset, ground_truth, durations, scenario)
        reference = PSDSEval(
            dtc_threshold=scenario.dtc_threshold, gtc_threshold=scenario.gtc_threshold,
            cttc_threshold=scenario.cttc_threshold or 0.3, ground_truth=gt_raw, metadata=meta_raw,
        )
        for threshold in sorted(subset):
            det = pd.read_csv(
                desed / "baseline_student" / "predictions_operating_points" / f"predictions_th_{threshold:.2f}.tsv", sep="\t"
            ).set_index("index")
            reference.add_operating_point(det)
        expected = reference.psds(alpha_ct=scenario.alpha_ct, alpha_st=scenario.alpha_st, max_efpr=100).value
        assert ours.value == pytest.approx(expected, abs=1e-12)
        assert 0.05 < ours.value < 0.9
        assert set(ours.per_class) == set(ground_truth["event_label"].dropna())


def test_intersection_f1_equals_psds_eval(desed):
    ground_truth = load_ground_truth(desed / "validation.tsv")
    durations = load_durations(desed / "validation_durations.tsv")
    detections = pd.read_csv(desed / "baseline_student" / "predictions0.5.csv", index_col=0)
    macro, per_class = intersection_f1_macro(detections, ground_truth, durations)
    reference = PSDSEval(
        0.5, 0.5, 0.3, ground_truth=pd.read_csv(desed / "validation.tsv", sep="\t"),
        metadata=pd.read_csv(desed / "validation_durations.tsv", sep="\t"),
    )
    expected_macro, expected_per_class = reference.compute_macro_f_score(detections)
    assert macro == pytest.approx(expected_macro, abs=1e-12)
    for name, value in expected_per_class.items():
        assert per_class[name] == pytest.approx(value, abs=1e-12)


def test_threshold_independent_psds_equals_sed_scores_eval(desed):
    ground_truth = load_ground_truth(desed / "validation.tsv")
    durations = load_durations(desed / "validation_durations.tsv")
    labels = sorted(ground_truth["event_label"].dropna().unique())
    clips = sorted(durations)[:250]
    small_gt = ground_truth[ground_truth["filename"].isin(clips)]
    small_durations = {name: durations[name] for name in clips}
    scores = synthetic_score_tables(small_gt, small_durations, labels, seed=1)
    reference_gt = {k: v for k, v in sed_scores_eval.io.read_ground_truth_events(small_gt).items() if v}
    reference_scores = {k: scores[k] for k in reference_gt}
    reference_durations = {k: small_durations[k + ".wav"] for k in reference_gt}
    for scenario in (PSDS1, PSDS2):
        ours = psds_from_scores(scores, small_gt, small_durations, scenario)
        value, per_class, (etpr, efpr), _ = sed_scores_eval.intersection_based.psds(
            reference_scores, reference_gt, reference_durations, dtc_threshold=scenario.dtc_threshold,
            gtc_threshold=scenario.gtc_threshold, cttc_threshold=scenario.cttc_threshold, alpha_ct=scenario.alpha_ct,
            alpha_st=scenario.alpha_st, max_efpr=100,
        )
        assert abs(ours.value - value) < 1e-9
        assert all(abs(ours.per_class[name] - v) < 1e-9 for name, v in per_class.items())
        np.testing.assert_allclose(ours.roc[0], efpr, atol=1e-9)
        np.testing.assert_allclose(ours.roc[1], etpr, atol=1e-9)
        assert 0.0 < ours.value < 1.0


def test_issue13_item11_segment_f1_macro_leaves_out_undefined_classes_as_sed_eval(desed):
    ground_truth = load_ground_truth(desed / "validation.tsv")
    durations = load_durations(desed / "validation_durations.tsv")
    detections = pd.read_csv(desed / "baseline_student" / "predictions0.5.csv", index_col=0)
    full = sed_report(ground_truth, durations, detections=detections)
    without_dishes = detections[detections["event_label"] != "Dishes"]
    report = sed_report(ground_truth, durations, detections=without_dishes)
    assert full["segment_f1_macro"] == pytest.approx(0.6935, abs=5e-5)
    assert full["segment_f1_macro_nan_as_zero"] == full["segment_f1_macro"]
    # sed_eval's average: Dishes has no detection, its F1 is NaN and it leaves the average, which rises.
    assert np.isnan(report["segment_f1_classwise:Dishes"])
    assert report["segment_f1_macro"] == pytest.approx(0.7185, abs=5e-5)
    assert report["segment_f1_macro"] == sed_eval_metrics(without_dishes, ground_truth, backend="sed_eval")[1]["f1_macro"]
    classwise = [report[f"segment_f1_classwise:{label}"] for label in sorted(set(ground_truth["event_label"].dropna()))]
    assert report["segment_f1_macro_nan_as_zero"] == pytest.approx(np.nansum(classwise) / 10, abs=1e-12)
    assert report["segment_f1_macro_nan_as_zero"] < full["segment_f1_macro"]


def test_cli_scores_the_real_ground_truth_with_default_flags(desed, tmp_path, capsys):
    """16 events of DESED's validation ground truth end up to 0.115 s after their clip: clipped, with a notice."""
    ground_truth = pd.read_csv(desed / "validation.tsv", sep="\t")
    durations = pd.read_csv(desed / "validation_durations.tsv", sep="\t").set_index("filename")["duration"]
    events = ground_truth.dropna(subset=["event_label"]).copy()
    end = events["filename"].map(durations)
    assert ((events["offset"] - end) > 1e-3).sum() == 16
    events["offset"] = np.minimum(events["offset"], end)
    events.to_csv(tmp_path / "detections.tsv", sep="\t", index=False)
    out = tmp_path / "report.json"
    rc = main(["--ground_truth", str(desed / "validation.tsv"), "--durations", str(desed / "validation_durations.tsv"),
               "--detections", str(tmp_path / "detections.tsv"), "--out", str(out)])
    error = capsys.readouterr().err
    assert rc == 0
    assert "validation.tsv: 16 events end up to 0.115 s after their clip's duration (tolerance 0.2 s); clipped" in error
    report = json.loads(out.read_text())
    assert report["intersection_f1_macro"] == pytest.approx(1.0) and report["event_f1_micro"] == pytest.approx(1.0)
