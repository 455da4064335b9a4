"""Test metrics with a tuned post-processing, beside the plain ones (one call from the SED test step)."""
from __future__ import annotations

import logging

import pandas as pd

from desed_task.evaluation.report import MAIN_KEYS, sed_report
from desed_task.postprocess.methods import apply_postprocessing, score_classes
from desed_task.postprocess.params import load_params

log = logging.getLogger(__name__)
SUFFIX = "_postprocessed"


def postprocessed_metrics(raw_scores: dict[str, pd.DataFrame], ground_truth: pd.DataFrame, durations: dict,
                          params_path, prefix: str, plain: dict[str, float] | None = None) -> dict[str, float]:
    """`{prefix}/<metric>_postprocessed` for every score metric of `sed_report` on the raw (unfiltered) score
    tables post-processed with the parameter file `params_path` (over the classes with ground-truth events in
    the evaluated clips, as the plain test metrics); {} when it is None. With `plain` (the
    `{prefix}/<metric>` values without it), the headline metrics are logged side by side."""
    if not params_path:
        return {}
    params = load_params(params_path, score_classes(raw_scores))
    scores = apply_postprocessing(raw_scores, params)
    absent = [label for label in params.classes if label not in set(ground_truth["event_label"])]
    if absent:  # as the plain test metrics: over the classes present in the evaluated clips
        scores = {clip: table.drop(columns=absent) for clip, table in scores.items()}
    report = sed_report(ground_truth, durations, scores=scores)
    results = {f"{prefix}/{name}{SUFFIX}": float(value) for name, value in report.items()
               if isinstance(value, (int, float)) and name != "threshold"}
    if plain is not None:
        log.info("%s", side_by_side(plain, results, prefix, f"{params.method} ({params_path})"))
    return results


def side_by_side(plain: dict[str, float], postprocessed: dict[str, float], prefix: str, label: str) -> str:
    """The headline metrics of `prefix` without and with the post-processing, as a table."""
    lines = [f"{prefix}: {'metric':<30}{'default':>10}{'tuned':>10}   tuned = {label}"]
    for key in MAIN_KEYS:
        tuned = postprocessed.get(f"{prefix}/{key}{SUFFIX}")
        if tuned is not None:
            lines.append(f"{'':{len(prefix) + 2}}{key:<30}{plain.get(f'{prefix}/{key}', float('nan')):>10.4f}{tuned:>10.4f}")
    return "\n".join(lines)
