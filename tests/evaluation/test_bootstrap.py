"""Bootstrap intervals: the vectorised F1 and PSDS resampling against a plain recomputation on every draw."""
import json

import numpy as np
import pandas as pd
import pytest

from desed_task.evaluation import (
    intersection_f1_macro, load_durations, load_ground_truth, sed_eval_metrics, sed_report, threshold_independent_psds,
)
from desed_task.evaluation import bootstrap
from desed_task.evaluation.__main__ import main
from desed_task.evaluation.bootstrap import (
    bootstrap_indices, f1_bootstrap_values, percentile_interval, psds_bootstrap_values,
    resampled_metric_values,
)
from desed_task.evaluation.io import audio_id
from desed_task.evaluation.synthetic import synthetic_score_tables

F1_METRICS = {
    "intersection_f1_macro": lambda gt, det, durations: intersection_f1_macro(det, gt, durations)[0],
    "event_f1_macro": lambda gt, det, durations: sed_eval_metrics(det, gt)[0]["f1_macro"],
    "segment_f1_macro": lambda gt, det, durations: sed_eval_metrics(det, gt)[1]["f1_macro"],
    "segment_f1_macro_nan_as_zero": lambda gt, det, durations: sed_eval_metrics(det, gt)[1]["f1_macro_nan_as_zero"],
}


@pytest.fixture(scope="module")
def real_subset(anchors):
    """The first 60 real DESED validation clips with the baseline's real detections and synthetic score tables."""
    desed = anchors / "desed"
    durations = load_durations(desed / "validation_durations.tsv")
    clips = sorted(durations)[:60]
    ground_truth = load_ground_truth(desed / "validation.tsv")
    ground_truth = ground_truth[ground_truth["filename"].isin(clips)].reset_index(drop=True)
    detections = pd.read_csv(desed / "baseline_student" / "predictions0.5.csv", index_col=0)
    detections = detections[detections["filename"].isin(clips)].reset_index(drop=True)
    durations = {clip: durations[clip] for clip in clips}
    labels = sorted(ground_truth["event_label"].dropna().unique())
    return ground_truth, detections, durations, synthetic_score_tables(ground_truth, durations, labels, seed=1)


def plain_psds(scores):
    """PSDS1 and PSDS2 recomputed on a draw's ground truth (clip copies named `b<i>_<clip>`)."""
    def metric(ground_truth, detections, durations, index):
        copies = {audio_id(name): scores[audio_id(name.split("_", 1)[1])] for name in ground_truth["filename"].unique()}
        return threshold_independent_psds(copies, ground_truth, durations)[index].value
    return {f"psds{n}_sed_scores_eval": lambda g, d, dur, i=n - 1: metric(g, d, dur, i) for n in (1, 2)}


def test_issue13_item13_vectorised_bootstrap_equals_per_draw_recomputation(real_subset, monkeypatch):
    ground_truth, detections, durations, scores = real_subset
    indices = bootstrap_indices(ground_truth["filename"].nunique(), 8, seed=4)
    fast = f1_bootstrap_values(detections, ground_truth, durations, indices)
    pruned_draws = []
    layout_psds = bootstrap._StepLayout.psds

    def record(layout, *args):
        pruned_draws.append(bool(layout.first.any()))
        return layout_psds(layout, *args)

    monkeypatch.setattr(bootstrap._StepLayout, "psds", record)
    fast.update(psds_bootstrap_values(scores, ground_truth, durations, indices[:4]))
    monkeypatch.setattr(bootstrap, "PRUNE_MARGIN", 0.0)  # no safe pruning: every draw on all thresholds
    all_thresholds = psds_bootstrap_values(scores, ground_truth, durations, indices[:4])
    assert pruned_draws == [True] * 8 + [False] * 8
    for name, metric in {**F1_METRICS, **plain_psds(scores)}.items():
        draws = indices[:4] if name.startswith("psds") else indices
        plain = resampled_metric_values(metric, ground_truth, detections, durations, indices=draws)
        assert len(np.unique(plain)) > 1, name
        np.testing.assert_allclose(fast[name], plain, rtol=0, atol=1e-12, err_msg=name)
        assert percentile_interval(fast[name]) == pytest.approx(percentile_interval(plain), abs=1e-12)
        if name.startswith("psds"):
            np.testing.assert_allclose(all_thresholds[name], plain, rtol=0, atol=1e-12, err_msg=name)


def test_issue13_item13_identity_resampling_gives_the_plain_metrics(real_subset):
    ground_truth, detections, durations, scores = real_subset
    identity = np.arange(ground_truth["filename"].nunique())[None]
    report = sed_report(ground_truth, durations, scores=scores)
    values = f1_bootstrap_values(detections, ground_truth, durations, identity)
    values.update(psds_bootstrap_values(scores, ground_truth, durations, identity))
    plain = sed_report(ground_truth, durations, detections=detections)
    for name in F1_METRICS:
        assert values[name][0] == pytest.approx(plain[name], abs=1e-12), name
    for name in ("psds1_sed_scores_eval", "psds2_sed_scores_eval"):
        assert values[name][0] == pytest.approx(report[name], abs=1e-12), name
        assert 0.05 < report[name] < 0.95


def test_issue13_item13_cli_bootstrap_intervals_with_progress(real_subset, tmp_path, capsys):
    ground_truth, detections, durations, scores = real_subset
    labels = list(next(iter(scores.values())).columns[2:])
    (tmp_path / "scores").mkdir()
    for clip, table in scores.items():
        table.to_csv(tmp_path / "scores" / f"{clip}.tsv", sep="\t", index=False)
    ground_truth.to_csv(tmp_path / "gt.tsv", sep="\t", index=False)
    pd.Series(durations, name="duration").rename_axis("filename").reset_index().to_csv(
        tmp_path / "dur.tsv", sep="\t", index=False)
    rc = main(["--ground_truth", str(tmp_path / "gt.tsv"), "--durations", str(tmp_path / "dur.tsv"),
               "--scores", str(tmp_path / "scores"), "--classes", ",".join(labels), "--allow_events_past_duration",
               "--bootstrap", "200", "--psds_bootstrap", "6", "--seed", "1", "--out", str(tmp_path / "r.json")])
    assert rc == 0
    assert "bootstrap PSDS" in capsys.readouterr().err
    report = json.loads((tmp_path / "r.json").read_text())
    for name in ("intersection_f1_macro", "event_f1_macro", "segment_f1_macro"):
        assert report[f"{name}_ci_low"] < report[name] < report[f"{name}_ci_high"], name
    draws = bootstrap_indices(ground_truth["filename"].nunique(), 200, seed=1)[:6]
    for name, values in psds_bootstrap_values(scores, ground_truth, durations, draws).items():
        assert (report[f"{name}_ci_low"], report[f"{name}_ci_high"]) == pytest.approx(percentile_interval(values))
        assert report[f"{name}_ci_low"] < report[f"{name}_ci_high"]
