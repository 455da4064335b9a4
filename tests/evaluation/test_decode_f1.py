"""Decoding frame scores into score tables and detections; weak F1; bootstrap intervals."""
import numpy as np
import pandas as pd
import pytest
import scipy.ndimage

from desed_task.evaluation import (
    bootstrap_confidence_interval, decode_strong_scores, intersection_f1_macro, median_filter_scores,
    scores_to_detections, weak_f1,
)


class StandInEncoder:
    """The three attributes of ManyHotEncoder that decoding relies on."""

    labels = ["A", "B", "C"]
    n_frames = 8

    @staticmethod
    def frame_to_time(frames):
        return np.clip(np.asarray(frames, dtype=float) * 4 / (16000 / 256), 0, 10.0)


def test_decode_strong_scores_tables_and_median_filter():
    rng = np.random.default_rng(0)
    strong = rng.uniform(size=(2, 3, 8))
    raw, post = decode_strong_scores(strong, ["a.wav", "dir/b.wav"], StandInEncoder(), median_window=3)
    assert list(raw) == ["a", "b"]
    expected_times = np.arange(9) * 0.064
    np.testing.assert_allclose(raw["a"]["onset"], expected_times[:-1])
    np.testing.assert_allclose(raw["a"]["offset"], expected_times[1:])
    np.testing.assert_array_equal(raw["b"][["A", "B", "C"]].to_numpy(), strong[1].T)
    np.testing.assert_array_equal(post["a"][["A", "B", "C"]].to_numpy(), scipy.ndimage.median_filter(strong[0].T, (3, 1)))
    per_class = median_filter_scores(strong[0].T, [1, 3, 5])
    np.testing.assert_array_equal(per_class[:, 0], strong[0, 0])
    np.testing.assert_array_equal(per_class[:, 2], scipy.ndimage.median_filter(strong[0, 2], 5))
    _, cropped = decode_strong_scores(strong, ["a.wav", "b.wav"], StandInEncoder(), 1, durations={"a.wav": 0.3})
    assert len(cropped["a"]) == 5 and cropped["a"]["offset"].iloc[-1] == 0.3 and len(cropped["b"]) == 8


def test_scores_to_detections_matches_frame_runs():
    scores = np.array([[0.6, 0.7, 0.2, 0.9, 0.9, 0.5, 0.51, 0.51]]).T
    tables = {"c": pd.DataFrame({"onset": np.arange(8) * 0.5, "offset": np.arange(1, 9) * 0.5, "A": scores[:, 0]})}
    tables["d"] = tables["c"].assign(A=0.0)
    detections = scores_to_detections(tables, [0.5, 0.8])
    assert detections[0.5][["onset", "offset"]].values.tolist() == [[0.0, 1.0], [1.5, 2.5], [3.0, 4.0]]
    assert set(detections[0.5]["filename"]) == {"c.wav"} and set(detections[0.5]["event_label"]) == {"A"}
    assert detections[0.8][["onset", "offset"]].values.tolist() == [[1.5, 2.5]]


def test_weak_f1_hand_computed():
    probabilities = np.array([[0.9, 0.2], [0.6, 0.7], [0.1, 0.4], [0.5, 0.8]])
    targets = np.array([[1, 0], [0, 1], [1, 0], [0, 0]])
    macro, per_class = weak_f1(probabilities, targets, ["A", "B"])
    # A: tp 1, fp 1 (0.6), fn 1 -> 2/4; B: tp 1, fp 1 (0.8) -> 2/3; 0.5 is not above the threshold.
    assert per_class == pytest.approx({"A": 0.5, "B": 2 / 3})
    assert macro == pytest.approx((0.5 + 2 / 3) / 2)


def test_bootstrap_interval_is_seeded_and_brackets_the_value():
    gt = pd.DataFrame({"filename": [f"c{i}.wav" for i in range(20)], "onset": 1.0, "offset": 3.0, "event_label": "A"})
    det = gt[gt.index % 3 != 0].copy()
    durations = {name: 10.0 for name in gt["filename"]}
    metric = lambda g, d, dur: intersection_f1_macro(d, g, dur)[0]  # noqa: E731
    value = metric(gt, det, durations)
    low, high = bootstrap_confidence_interval(metric, gt, det, durations, n_draws=50, seed=3)
    assert low <= value <= high and low < high
    assert (low, high) == bootstrap_confidence_interval(metric, gt, det, durations, n_draws=50, seed=3)
