"""Threshold-independent PSDS on hand-made clips whose value is derived by hand."""
import numpy as np
import pandas as pd
import pytest

from desed_task.evaluation import PSDS1, PSDSScenario, psds_from_scores

LABELS = ["A", "B"]


def table(a, b):
    """10 one-second frames with the given per-frame scores of classes A and B."""
    return pd.DataFrame({"onset": np.arange(10.0), "offset": np.arange(1.0, 11.0), "A": a, "B": b})


def clip_scores():
    low = np.full(10, 0.1)
    a = low.copy()
    a[2:4] = 0.9
    b = low.copy()
    b[6] = 0.8
    empty_a = low.copy()
    empty_a[0] = 0.95
    return {"x": table(a, b), "y": table(empty_a, low)}


GROUND_TRUTH = pd.DataFrame({
    "filename": ["x.wav", "x.wav", "y.wav"],
    "onset": [2.0, 6.0, np.nan], "offset": [4.0, 8.0, np.nan], "event_label": ["A", "B", np.nan],
})
DURATIONS = {"x.wav": 10.0, "y.wav": 10.0}


def test_hand_derived_values():
    # A: at threshold 0.9 the detection [2, 4] matches its event exactly -> TPR 1 with no false positive.
    #    At 0.1 the detection [0, 10] covers the event by 2/10 < DTC -> one FP in 10 s = 360/h, beyond max_efpr.
    #    Clip y has no events, so (as in DCASE) it is left out and its A detection [0, 1] does not count.
    #    -> A's ROC is 1 on [0, 100]: per-class PSDS 1.
    # B: the detection [6, 7] passes the DTC (fully inside) but covers only half of [6, 8] < GTC 0.7 -> TPR 0.
    scenario = PSDSScenario("no_st", 0.7, 0.7, None, alpha_ct=0.0, alpha_st=0.0)
    result = psds_from_scores(clip_scores(), GROUND_TRUTH, DURATIONS, scenario)
    assert result.per_class == {"A": 1.0, "B": 0.0}
    assert result.value == pytest.approx(0.5, abs=1e-12)
    # alpha_st = 1 subtracts the std of (1, 0) = 0.5 from the mean 0.5 -> 0.
    assert psds_from_scores(clip_scores(), GROUND_TRUTH, DURATIONS, PSDS1).value == pytest.approx(0.0, abs=1e-12)
    # With GTC 0.5, B's half-covered event counts as found -> B = 1 and PSDS = 1.
    relaxed = PSDSScenario("relaxed", 0.7, 0.5, None, alpha_ct=0.0, alpha_st=1.0)
    assert psds_from_scores(clip_scores(), GROUND_TRUTH, DURATIONS, relaxed).value == pytest.approx(1.0, abs=1e-12)


def test_overlapping_same_class_ground_truth_is_merged():
    overlapping = pd.concat([GROUND_TRUTH, pd.DataFrame({
        "filename": ["x.wav"], "onset": [2.5], "offset": [3.5], "event_label": ["A"]})], ignore_index=True)
    scenario = PSDSScenario("no_st", 0.7, 0.7, None, alpha_ct=0.0, alpha_st=0.0)
    assert psds_from_scores(clip_scores(), overlapping, DURATIONS, scenario).value == pytest.approx(0.5, abs=1e-12)


def test_psd_roc_plots_are_pngs(tmp_path):
    from desed_task.evaluation import save_psd_roc_plot

    scenario = PSDSScenario("no_st", 0.7, 0.7, None, alpha_ct=0.0, alpha_st=0.0)
    paths = save_psd_roc_plot(psds_from_scores(clip_scores(), GROUND_TRUTH, DURATIONS, scenario), tmp_path)
    assert [p.name for p in paths] == ["no_st_sed_scores_eval_psd_roc.png", "no_st_sed_scores_eval_psd_roc_per_class.png"]
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in paths)
