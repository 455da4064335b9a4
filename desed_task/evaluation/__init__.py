"""Sound event detection evaluation: decoding, PSDS, F-scores, reports, plots and a CLI (DCASE task 4)."""
from desed_task.evaluation.bootstrap import bootstrap_confidence_interval, bootstrap_intervals
from desed_task.evaluation.decode import decode_strong_scores, median_filter_scores, scores_to_detections
from desed_task.evaluation.f1 import intersection_f1_macro, sed_eval_metrics, weak_f1
from desed_task.evaluation.io import (
    EvaluationInputError, load_detections, load_durations, load_ground_truth, load_operating_points, load_score_tables,
)
from desed_task.evaluation.plots import save_psd_roc_plot
from desed_task.evaluation.psds import (
    PSDS1, PSDS2, PSDSResult, PSDSScenario, psds_from_operating_points, psds_from_scores, threshold_independent_psds,
)
from desed_task.evaluation.report import format_report, sed_report

__all__ = [
    "PSDS1", "PSDS2", "EvaluationInputError", "PSDSResult", "PSDSScenario", "bootstrap_confidence_interval", "bootstrap_intervals",
    "decode_strong_scores", "format_report", "intersection_f1_macro", "load_detections", "load_durations",
    "load_ground_truth", "load_operating_points", "load_score_tables", "median_filter_scores",
    "psds_from_operating_points", "psds_from_scores", "save_psd_roc_plot", "scores_to_detections", "sed_eval_metrics",
    "sed_report", "threshold_independent_psds", "weak_f1",
]
