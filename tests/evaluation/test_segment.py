"""Segment-based MAESTRO metrics: mpAUC / mAUC against an independent ROC computation and sed_scores_eval,
window-to-segment scores and the overlap-add over windows."""
import json

import numpy as np
import pandas as pd
import pytest
from sed_scores_eval import segment_based
from sed_scores_eval.base_modules.scores import create_score_dataframe
from sklearn.metrics import roc_auc_score, roc_curve

from desed_task.evaluation.segment import ground_truth_dict, overlap_add, segment_metrics, window_segment_scores

CLASSES = ["car", "footsteps", "birds_singing"]


def generated(seed=0):
    """Random events on 1 s segments of three recordings and scores correlated with them."""
    rng = np.random.default_rng(seed)
    durations = {"rec_a": 60.0, "rec_b": 45.0, "rec_c": 30.0}
    rows, scores, targets = [], {}, {c: [] for c in CLASSES}
    for name, duration in durations.items():
        n = int(duration)
        active = rng.random((n, len(CLASSES))) < 0.25
        for c, label in enumerate(CLASSES):
            rows += [(f"{name}.wav", float(k), float(k + 1), label) for k in np.flatnonzero(active[:, c])]
            targets[label].append(active[:, c])
        values = np.clip(0.35 * active + rng.random(active.shape) * 0.8, 0, 1)
        scores[name] = create_score_dataframe(values, np.arange(n + 1.0), CLASSES)
    truth = pd.DataFrame(rows, columns=["filename", "onset", "offset", "event_label"])
    return scores, truth, durations, {label: np.concatenate(t) for label, t in targets.items()}


def partial_auc(target, score, max_fpr):
    """Area of the ROC curve over fpr in [0, max_fpr], divided by max_fpr (no McClish correction)."""
    fpr, tpr, _ = roc_curve(target, score, drop_intermediate=False)
    keep = fpr <= max_fpr
    fpr_cut = np.concatenate([fpr[keep], [max_fpr]])
    tpr_cut = np.concatenate([tpr[keep], [np.interp(max_fpr, fpr, tpr)]])
    return np.trapezoid(tpr_cut, fpr_cut) / max_fpr


def test_mpauc_and_mauc_match_an_independent_roc_and_sed_scores_eval():
    scores, truth, durations, targets = generated()
    metrics = segment_metrics(scores, truth, durations, CLASSES)
    flat = {label: np.concatenate([scores[name][label].to_numpy() for name in durations]) for label in CLASSES}
    expected_p = np.mean([partial_auc(targets[c], flat[c], 0.1) for c in CLASSES])
    expected = np.mean([roc_auc_score(targets[c], flat[c]) for c in CLASSES])
    assert metrics["mpauc"] == pytest.approx(expected_p, abs=1e-9)
    assert metrics["mauc"] == pytest.approx(expected, abs=1e-9)
    assert 0.5 < metrics["mpauc"] < metrics["mauc"] < 1
    truth_dict = ground_truth_dict(truth, CLASSES)
    assert truth_dict["rec_a"] != [(r.onset, r.offset, r.event_label) for r in truth.itertuples()
                                   if r.filename == "rec_a.wav"]  # adjacent segments were merged
    library, _ = segment_based.auroc(scores, truth_dict, durations, segment_length=1.0, max_fpr=0.1)
    assert metrics["mpauc"] == pytest.approx(library["mean"], abs=1e-12)
    f1 = segment_based.best_fscore(scores, truth_dict, durations, segment_length=1.0)[0]
    assert metrics["segment_f1_best"] == pytest.approx(f1["macro_average"])


def test_perfect_scores_give_one():
    scores, truth, durations, targets = generated(1)
    perfect = {name: create_score_dataframe(
        np.stack([targets[c][sum(int(d) for d in list(durations.values())[:i]):][:int(durations[name])] for c in CLASSES],
                 1).astype(float), np.arange(int(durations[name]) + 1.0), CLASSES) for i, name in enumerate(durations)}
    metrics = segment_metrics(perfect, truth, durations, CLASSES)
    assert metrics == pytest.approx({"mpauc": 1.0, "mauc": 1.0, "segment_f1_best": 1.0})


def test_window_segment_scores_weights_frames_by_overlap():
    frame_hop = 0.064
    frames = np.zeros((156, 1))
    frames[:16, 0] = 1.0  # 0 .. 1.024 s
    segments = window_segment_scores(frames, frame_hop, 10.0)
    assert segments.shape == (10, 1)
    assert segments[0, 0] == pytest.approx(1.0) and segments[1, 0] == pytest.approx(0.024)
    assert segments[2:].max() == 0
    short = window_segment_scores(np.ones((156, 2)), frame_hop, 6.5)  # a padded 6.5 s tail chunk
    assert short.shape == (7, 2) and np.allclose(short, 1.0)


def test_overlap_add_averages_covering_windows():
    windows = [("rec", 0.0, np.full((10, 1), 0.2)), ("rec", 5.0, np.full((10, 1), 0.6)),
               ("rec", 10.0, np.full((2, 1), 1.0))]
    tables = overlap_add(windows, {"rec": 12.0}, ["car"])
    values = tables["rec"]["car"].to_numpy()
    assert np.allclose(values, [0.2] * 5 + [0.4] * 5 + [0.8] * 2)
    assert tables["rec"]["offset"].iloc[-1] == 12.0
    with pytest.raises(ValueError, match="no window covers the segment at 10 s"):
        overlap_add(windows[:1], {"rec": 12.0}, ["car"])


def test_cli_segment_metrics(tmp_path, capsys):
    from desed_task.evaluation.__main__ import main

    scores, truth, durations, _ = generated(2)
    folder = tmp_path / "scores"
    folder.mkdir()
    for name, table in scores.items():
        table.to_csv(folder / f"{name}.tsv", sep="\t", index=False)
    truth.to_csv(tmp_path / "gt.tsv", sep="\t", index=False)
    pd.DataFrame({"filename": [f"{n}.wav" for n in durations], "duration": list(durations.values())}).to_csv(
        tmp_path / "dur.tsv", sep="\t", index=False)
    out = tmp_path / "report.json"
    code = main(["--ground_truth", str(tmp_path / "gt.tsv"), "--durations", str(tmp_path / "dur.tsv"),
                 "--scores", str(folder), "--classes", ",".join(CLASSES), "--segment_length", "1",
                 "--out", str(out)])
    assert code == 0
    report = json.loads(out.read_text())
    expected = segment_metrics(scores, truth, durations, CLASSES)
    assert report["mpauc"] == pytest.approx(expected["mpauc"]) and report["mauc"] == pytest.approx(expected["mauc"])
    assert "mpauc" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["--ground_truth", str(tmp_path / "gt.tsv"), "--durations", str(tmp_path / "dur.tsv"),
              "--detections", str(tmp_path / "gt.tsv"), "--segment_length", "1"])


def test_classes_without_events_are_left_out():
    scores, truth, durations, _ = generated(3)
    only_car = truth[truth["event_label"] == "car"]
    assert segment_metrics(scores, only_car, durations, CLASSES) == pytest.approx(
        segment_metrics(scores, only_car, durations, ["car"]))
    assert np.isnan(segment_metrics(scores, truth.iloc[:0], durations, CLASSES)["mpauc"])
