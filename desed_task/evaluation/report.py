"""One call that computes every DCASE SED metric from scores, operating points and/or detections."""
from __future__ import annotations

import numpy as np
import pandas as pd

from desed_task.evaluation.bootstrap import bootstrap_intervals
from desed_task.evaluation.decode import scores_to_detections
from desed_task.evaluation.f1 import intersection_f1_macro, sed_eval_metrics
from desed_task.evaluation.io import load_durations, load_ground_truth
from desed_task.evaluation.psds import PSDS1, PSDS2, PSDSResult, psds_from_operating_points, threshold_independent_psds


def sed_report(
    ground_truth, durations, scores: dict[str, pd.DataFrame] | None = None,
    operating_points: dict[float, pd.DataFrame] | None = None, detections: pd.DataFrame | None = None,
    threshold: float = 0.5, n_bootstrap: int = 0, seed: int = 0, num_jobs: int = 1,
    float_precision: str | None = None, curves: dict[str, PSDSResult] | None = None, psds_backend: str = "numpy",
    f1_backend: str = "numpy", n_psds_bootstrap: int | None = None, progress: bool = False,
) -> dict:
    """All metrics as a flat dict of floats (plus `psds_flavours` and `threshold`).

    PSDS: threshold-independent from `scores` (`psds{1,2}_sed_scores_eval`), psds_eval from
    `operating_points` (`psds{1,2}_psds_eval`). F1s from `detections`, else from the operating point at
    `threshold`, else from `scores` decoded at `threshold`. `ground_truth`/`durations` are paths or loaded
    objects. With `n_bootstrap > 0`, 95 % intervals over resampled clips are added as `<metric>_ci_low/_ci_high`
    for the macro F1s and, from `scores`, for PSDS1/PSDS2 (`n_psds_bootstrap` draws, default `n_bootstrap`;
    `progress` shows a bar for those on stderr).
    Pass a dict as `curves` to receive the PSDSResult objects (for plots). `psds_backend` selects the
    threshold-independent PSDS implementation ("numpy", vectorised, or "sed_scores_eval"; same values);
    `f1_backend` the collar/segment F1 implementation ("numpy", vectorised, or "sed_eval"; identical figures).
    """
    ground_truth = load_ground_truth(ground_truth, float_precision)
    durations = load_durations(durations, float_precision)
    report: dict = {"psds_flavours": []}
    curves = {} if curves is None else curves
    if scores is not None:
        results = threshold_independent_psds(scores, ground_truth, durations, (PSDS1, PSDS2), psds_backend, num_jobs)
        for result in results:
            curves[f"{result.scenario.name}_sed_scores_eval"] = result
    for scenario in (PSDS1, PSDS2):
        if operating_points is not None:
            result = psds_from_operating_points(operating_points, ground_truth, durations, scenario)
            curves[f"{scenario.name}_psds_eval"] = result
    for key, result in curves.items():
        report[key] = result.value
        report.update({f"{key}_classwise:{name}": value for name, value in result.per_class.items()})
        flavour = result.flavour
        if flavour not in report["psds_flavours"]:
            report["psds_flavours"].append(flavour)

    if detections is None and operating_points is not None and threshold in operating_points:
        detections = operating_points[threshold]
    if detections is None and scores is not None:
        detections = scores_to_detections(scores, [threshold])[threshold]
    if detections is None:
        return report
    report["threshold"] = threshold
    macro, per_class = intersection_f1_macro(detections, ground_truth, durations)
    report["intersection_f1_macro"] = macro
    report.update({f"intersection_f1_classwise:{name}": value for name, value in per_class.items()})
    event, segment = sed_eval_metrics(detections, ground_truth, backend=f1_backend)
    for prefix, summary in (("event", event), ("segment", segment)):
        for key, value in summary.items():
            if key == "class_wise":
                for name, values in value.items():
                    report.update({f"{prefix}_{stat}_classwise:{name}": v for stat, v in values.items()})
            else:
                report[f"{prefix}_{key}"] = value
    if n_bootstrap > 0 or n_psds_bootstrap:
        report.update(bootstrap_intervals(
            ground_truth, durations, detections=detections, scores=scores, n_draws=n_bootstrap,
            n_psds_draws=n_psds_bootstrap, seed=seed, progress=progress))
    return report


MAIN_KEYS = [
    "psds1_sed_scores_eval", "psds2_sed_scores_eval", "psds1_psds_eval", "psds2_psds_eval",
    "intersection_f1_macro", "event_f1_macro", "event_f1_micro", "segment_f1_macro", "segment_f1_macro_nan_as_zero",
    "segment_f1_micro",
]


def format_report(report: dict) -> str:
    """Readable table: the headline metrics, then per-class PSDS and F1 values."""
    lines = [f"{'metric':<30}{'value':>10}"]
    for key in MAIN_KEYS:
        if key in report:
            ci = ""
            if f"{key}_ci_low" in report:
                ci = f"  [{report[f'{key}_ci_low']:.4f}, {report[f'{key}_ci_high']:.4f}]"
            lines.append(f"{key:<30}{report[key]:>10.4f}{ci}")
    columns = [key for key in MAIN_KEYS if key.startswith("psds") and key in report]
    columns += [key for key in ("intersection_f1", "event_f1", "segment_f1") if f"{key}_classwise:Speech" in report
                or any(k.startswith(f"{key}_classwise:") for k in report)]
    names = sorted({k.split(":", 1)[1] for k in report if ":" in k and k.split(":", 1)[0] in {f"{c}_classwise" for c in columns}})
    if names:
        lines.append("")
        lines.append(f"{'class':<28}" + "".join(f"{c[:18]:>20}" for c in columns))
        for name in names:
            row = [report.get(f"{c}_classwise:{name}", np.nan) for c in columns]
            lines.append(f"{name:<28}" + "".join(f"{v:>20.4f}" for v in row))
    return "\n".join(lines)
