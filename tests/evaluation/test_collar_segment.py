"""The vectorised collar-based (event) and segment-based metrics against sed_eval itself: identical counts and figures.

The reference feeds sed_eval file by file as the DCASE 2022 baseline does (`get_event_list_current_file`:
a file whose single row has no label is `[{"filename": name}]`, a file without detections is `[]`).
"""
import math

import numpy as np
import pandas as pd
import pytest
import sed_eval

from desed_task.evaluation import load_ground_truth, sed_report
from desed_task.evaluation.collar_segment import _optimal_matching
from desed_task.evaluation.f1 import _summary, sed_eval_counts, sed_eval_metrics


def baseline_style_sed_eval(detections, ground_truth):
    """sed_eval's metric objects evaluated as the DCASE baseline does, with the labels sorted."""
    labels = sorted(set(ground_truth["event_label"].dropna()) | set(detections["event_label"].dropna()))
    event = sed_eval.sound_event.EventBasedMetrics(
        event_label_list=labels, t_collar=0.2, percentage_of_length=0.2, empty_system_output_handling="zero_score")
    segment = sed_eval.sound_event.SegmentBasedMetrics(event_label_list=labels, time_resolution=1.0)

    def events_by_file(table):
        files = {name: rows.to_dict("records") for name, rows in table.groupby("filename", sort=False)}
        return {name: [{"filename": name}] if len(rows) == 1 and pd.isna(rows[0]["event_label"]) else rows
                for name, rows in files.items()}

    references, estimates = events_by_file(ground_truth), events_by_file(detections)
    for name in ground_truth["filename"].unique():
        reference, estimated = references[name], estimates.get(name, [])
        event.evaluate(reference_event_list=reference, estimated_event_list=estimated)
        segment.evaluate(reference_event_list=reference, estimated_event_list=estimated)
    return labels, event, segment


def identical(ours, theirs):
    """Same keys and exactly equal values (no tolerance), NaN equal to NaN."""
    if isinstance(ours, dict):
        assert ours.keys() == theirs.keys()
        return all(identical(ours[key], theirs[key]) for key in ours)
    if isinstance(theirs, float) and math.isnan(theirs):
        return isinstance(ours, float) and math.isnan(ours)
    return ours == theirs


def assert_identical_to_sed_eval(detections, ground_truth):
    labels, event_metric, segment_metric = baseline_style_sed_eval(detections, ground_truth)
    counts = sed_eval_counts(detections, ground_truth)
    for ours, metric in zip(counts, (event_metric, segment_metric)):
        assert ours["overall"] == {key: float(value) for key, value in metric.overall.items()}
        assert ours["class_wise"] == {
            label: {key: float(value) for key, value in metric.class_wise[label].items()} for label in labels}
    summaries = sed_eval_metrics(detections, ground_truth)
    reference = [_summary(metric.results(), labels) for metric in (event_metric, segment_metric)]
    for ours, theirs in zip(summaries, reference):
        assert identical(ours, theirs), (ours, theirs)
    return counts


@pytest.fixture(scope="module")
def desed(anchors):
    return anchors / "desed"


@pytest.mark.parametrize("name", [  # the official 0.5 detections and the densest and sparsest operating points
    "predictions0.5.csv", "predictions_operating_points/predictions_th_0.01.tsv",
    "predictions_operating_points/predictions_th_0.97.tsv",
])
def test_real_detections_identical_to_sed_eval(desed, name):
    ground_truth = load_ground_truth(desed / "validation.tsv", "legacy")
    path = desed / "baseline_student" / name
    detections = pd.read_csv(path, sep="," if name.endswith(".csv") else "\t", float_precision="legacy")
    counts = assert_identical_to_sed_eval(detections, ground_truth)
    event, segment = counts
    assert event["overall"]["Nref"] == 4224 and event["overall"]["Nsys"] == len(detections)
    assert event["overall"]["Nsubs"] > 0 and event["overall"]["Ntp"] > 0
    assert segment["overall"]["S"] > 0 and segment["overall"]["Ntn"] > 0


def test_sed_eval_backend_equals_numpy_backend(desed):
    ground_truth = load_ground_truth(desed / "validation.tsv")
    detections = pd.read_csv(desed / "baseline_student" / "predictions0.5.csv", index_col=0)
    assert sed_eval_counts(detections, ground_truth) == sed_eval_counts(detections, ground_truth, backend="sed_eval")
    ours = sed_eval_metrics(detections, ground_truth)
    theirs = sed_eval_metrics(detections, ground_truth, backend="sed_eval")
    assert all(identical(a, b) for a, b in zip(ours, theirs))
    with pytest.raises(ValueError, match="unknown F1 backend"):
        sed_eval_counts(detections, ground_truth, backend="loops")


def random_case(rng, n_clips=30, labels=("Cat", "Dog", "Speech")):
    """Clips with events on a 50 ms grid (so differences fall exactly on the 200 ms collar), overlapping
    same-class events, zero-length events, clips without events, detections beyond 10 s, on clips absent from
    the ground truth and with a label the ground truth lacks."""
    gt_rows, det_rows = [], []
    for clip in range(n_clips):
        name = f"clip{clip}.wav"
        n_ref = rng.integers(0, 5)
        if n_ref == 0:
            gt_rows.append((name, np.nan, np.nan, np.nan))
        for _ in range(n_ref):
            onset = rng.integers(0, 180) * 0.05
            gt_rows.append((name, onset, onset + rng.integers(0, 40) * 0.05, rng.choice(labels)))
            for _ in range(rng.integers(0, 4)):
                shift_on, shift_off = rng.integers(-6, 7, size=2) * 0.05
                det_onset = max(0.0, onset + shift_on)
                det_rows.append((name, det_onset, max(det_onset, gt_rows[-1][2] + shift_off), rng.choice(labels)))
        for _ in range(rng.integers(0, 3)):
            onset = rng.integers(0, 200) * 0.05
            det_rows.append((name, onset, onset + rng.integers(1, 30) * 0.05, rng.choice(labels + ("Blender",))))
    det_rows.append(("not_in_ground_truth.wav", 1.0, 2.0, "Cat"))
    columns = ["filename", "onset", "offset", "event_label"]
    return pd.DataFrame(det_rows, columns=columns), pd.DataFrame(gt_rows, columns=columns)


@pytest.mark.parametrize("seed", range(12))
def test_random_cases_identical_to_sed_eval(seed):
    detections, ground_truth = random_case(np.random.default_rng(seed))
    assert_identical_to_sed_eval(detections, ground_truth)


def test_no_detections_and_no_events():
    detections, ground_truth = random_case(np.random.default_rng(0))
    event, segment = assert_identical_to_sed_eval(detections.iloc[:0], ground_truth)
    assert event["overall"]["Ntp"] == 0 and segment["overall"]["Nsys"] == 0
    empty_truth = ground_truth.assign(onset=np.nan, offset=np.nan, event_label=np.nan).drop_duplicates("filename")
    event, _ = assert_identical_to_sed_eval(detections, empty_truth)
    assert event["overall"]["Nref"] == 0 and event["overall"]["Nsys"] > 0


def test_optimal_matching_beats_greedy_and_counts_substitutions():
    """r0 hits e0 and e1, r1 only e0: greedy (r0 takes e0) finds 1, sed_eval's optimal matching 2. A Dog
    estimate on a Cat reference is one substitution, not a deletion plus an insertion."""
    ground_truth = pd.DataFrame({
        "filename": ["a.wav", "a.wav", "b.wav"], "onset": [0.0, 0.25, 1.0], "offset": [1.0, 1.25, 2.0],
        "event_label": ["Cat", "Cat", "Cat"]})
    detections = pd.DataFrame({
        "filename": ["a.wav", "a.wav", "b.wav"], "onset": [0.1, 0.0, 1.1], "offset": [1.1, 0.9, 2.1],
        "event_label": ["Cat", "Cat", "Dog"]})
    event, segment = assert_identical_to_sed_eval(detections, ground_truth)
    assert event["overall"] == {"Nref": 3.0, "Nsys": 3.0, "Nsubs": 1.0, "Ntp": 2.0, "Nfp": 0.0, "Nfn": 0.0}
    assert event["class_wise"]["Cat"]["Ntp"] == 2 and event["class_wise"]["Dog"]["Nfp"] == 1
    summary, _ = sed_eval_metrics(detections, ground_truth)
    assert summary["substitution_rate_micro"] == pytest.approx(1 / 3) and summary["f1_micro"] == pytest.approx(2 / 3)
    # b.wav spans 3 segments (offset 2.1): the Dog estimate covers segments 1-2; Cat is annotated in a.wav's two
    # segments and in b.wav's segment 1.
    assert segment["class_wise"]["Dog"]["Nsys"] == 2 and segment["class_wise"]["Cat"]["Nref"] == 3


def test_matching_without_shared_events_takes_every_hit():
    matched = _optimal_matching(np.array([0, 1, 2]), np.array([5, 3, 4]), np.array([0, 0, 1]))
    assert matched.all()
    matched = _optimal_matching(np.array([0, 0, 1]), np.array([0, 1, 0]), np.array([0, 0, 0]))
    assert matched.sum() == 2 and not matched[0]


def test_sed_report_uses_the_vectorised_backend_with_identical_values(desed):
    ground_truth = load_ground_truth(desed / "validation.tsv")
    detections = pd.read_csv(desed / "baseline_student" / "predictions_operating_points" / "predictions_th_0.51.tsv",
                             sep="\t")
    durations = desed / "validation_durations.tsv"
    fast = sed_report(ground_truth, durations, detections=detections)
    slow = sed_report(ground_truth, durations, detections=detections, f1_backend="sed_eval")
    assert identical(fast, slow)
    assert 0.3 < fast["event_f1_macro"] < 0.5 and fast["segment_f1_micro"] > fast["event_f1_micro"]
