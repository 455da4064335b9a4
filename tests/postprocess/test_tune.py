import numpy as np
import pandas as pd
import pytest

from desed_task.evaluation import threshold_independent_psds
from desed_task.postprocess import apply_postprocessing, csebbs_grid, median_grid, tune
from desed_task.postprocess.tune import class_pieces, combined_value, tuning_request
from desed_task.utils.errors import BadInput

FRAME = 0.1


def table(columns: dict) -> pd.DataFrame:
    n = len(next(iter(columns.values())))
    frame = pd.DataFrame(columns)
    frame.insert(0, "offset", np.arange(1, n + 1) * FRAME)
    frame.insert(0, "onset", np.arange(n) * FRAME)
    return frame


def hand_made():
    """Cat: one 4 s event whose scores drop for one frame in the middle, and a 2-frame false alarm (a median
    window of 5 mends the first and removes the second).
    Dog: two 0.2 s events (a window of 5 wipes them out). Bird: scored but never in the ground truth."""
    cat = np.full(100, 0.05)
    cat[20:60] = 0.9
    cat[40] = 0.1
    cat[80:82] = 0.95
    dog = np.full(100, 0.05)
    dog[70:72] = dog[85:87] = 0.9
    bird = np.full(100, 0.2)
    scores = {"clip": table({"Cat": cat, "Dog": dog, "Bird": bird})}
    ground_truth = pd.DataFrame({"filename": ["clip.wav"] * 3, "onset": [2.0, 7.0, 8.5], "offset": [6.0, 7.2, 8.7],
                                 "event_label": ["Cat", "Dog", "Dog"]})
    return scores, ground_truth, {"clip.wav": 10.0}


@pytest.mark.parametrize("objective", ["psds1", "collar_f1"])
def test_classwise_picks_the_best_window_per_class(objective):
    scores, ground_truth, durations = hand_made()
    params = tune("classwise_median", scores, ground_truth, durations, objective,
                  candidates=median_grid([1, 5]), default={"window": 3})
    assert params.params["Cat"] == {"window": 5}
    assert params.params["Dog"] == {"window": 1}
    assert params.params["Bird"] == {"window": 3}  # no ground truth: the default
    assert params.tuning["defaults_kept"] == ["Bird"]
    assert params.tuning["candidates"] == 3
    # the recorded objective is the one the chosen parameters reach, and no single window does better
    value = combined_value(class_pieces(apply_postprocessing(scores, params), ground_truth, durations, objective),
                           objective)
    assert params.tuning["value"] == pytest.approx(value)
    for window in (1, 3, 5):
        shared = tune("median", scores, ground_truth, durations, objective, candidates=median_grid([window]))
        assert shared.tuning["value"] <= value + 1e-12
    assert value > tune("median", scores, ground_truth, durations, objective,
                        candidates=median_grid([1, 5])).tuning["value"]


def test_tuned_psds_is_reached_and_beats_every_shared_candidate(beats):
    pytest.importorskip("sebbs")
    _, scores, ground_truth, durations = beats
    params = tune("csebbs", scores, ground_truth, durations, "psds2")
    psds2 = threshold_independent_psds(apply_postprocessing(scores, params), ground_truth, durations)[1].value
    assert params.tuning["value"] == pytest.approx(psds2, abs=1e-12)
    for candidate in csebbs_grid():
        shared = tune("csebbs", scores, ground_truth, durations, "psds2", candidates=[candidate],
                      default=candidate)
        assert shared.tuning["value"] <= params.tuning["value"] + 1e-12
    assert "defaults_kept" not in params.tuning


def test_bad_method_and_objective():
    scores, ground_truth, durations = hand_made()
    with pytest.raises(ValueError, match="unknown objective 'psds3'"):
        tune("median", scores, ground_truth, durations, "psds3")
    with pytest.raises(ValueError, match="unknown tuning method"):
        tune("wiener", scores, ground_truth, durations)


def test_tuning_request_reads_training_postprocess():
    assert tuning_request(None) is None and tuning_request("params.yaml") is None
    assert tuning_request({"tune": "csebbs"}) == {"method": "csebbs", "objective": "psds1"}
    assert tuning_request({"tune": "median", "objective": "collar_f1"}) == {"method": "median",
                                                                           "objective": "collar_f1"}
    for bad in ({"tune": "mean"}, {"tune": "median", "objective": "psds3"}, {"tune": "median", "window": 3}, {}):
        with pytest.raises(BadInput, match="training.postprocess: give a parameter file or"):
            tuning_request(bad)
