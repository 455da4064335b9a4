"""Cheap test metrics for in-process SED runs: without the PSD-ROC PNGs and psds_eval, the two slowest parts of
a tiny run's test step (about 8 of its 12 s); its `psds*_psds_eval` metrics become NaN. Both stay covered:
psds_eval equals the reference in tests/evaluation, and the recipe-script runs (subprocesses) write both."""
import numpy as np

from desed_task.evaluation import report
from desed_task.evaluation.psds import PSDSResult
from desed_task.training import sed_scoring


def no_psds_eval(operating_points, ground_truth, durations, scenario):
    return PSDSResult(float("nan"), {}, (np.zeros(0), np.zeros(0)), scenario=scenario, flavour="psds_eval")


def use_cheap_test_metrics(setattr_=setattr) -> None:
    """Replace psds_eval and the plots with `setattr_` (pytest's `monkeypatch.setattr`, or the builtin)."""
    setattr_(report, "psds_from_operating_points", no_psds_eval)
    setattr_(sed_scoring, "save_psd_roc_plot", lambda *args, **kwargs: None)
