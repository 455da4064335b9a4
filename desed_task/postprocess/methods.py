"""The post-processing methods on sed_scores_eval score tables ({audio id: DataFrame(onset, offset, <classes>)}).

- `median`: the DCASE median filter (`evaluation.decode.median_filter_scores`), one window (frames) per class.
- `csebbs`: change-point sound event bounding boxes (Ebbers et al., Interspeech 2024) from the optional
  `sebbs` package (AGPL-3.0; `pip install .[sebbs]`). Each box becomes a constant score (its mean frame
  score) over its extent and -inf elsewhere, in sebbs' own score-table format, so every threshold-based
  metric scores the boxes.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from desed_task.evaluation.decode import median_filter_scores
from desed_task.postprocess.params import PostprocessParams, validate
from desed_task.utils.errors import InputError


class MissingExtra(InputError, ImportError):
    """An optional dependency needed by the chosen option is not installed."""


def require_sebbs():
    """The `sebbs` modules (csebbs, utils), or a one-line error naming the extra to install."""
    try:
        from sebbs import csebbs, utils
    except ImportError:
        raise MissingExtra("cSEBBs post-processing needs the optional 'sebbs' package (AGPL-3.0): "
                           "pip install '.[sebbs]' (or pip install sebbs)") from None
    return csebbs, utils


def score_classes(scores: dict[str, pd.DataFrame]) -> list[str]:
    """Class columns of the first score table."""
    if not scores:
        raise InputError("no score tables to post-process")
    return list(next(iter(scores.values())).columns[2:])


def median_filtered(scores: dict[str, pd.DataFrame], windows: dict[str, int]) -> dict[str, pd.DataFrame]:
    """Every table median-filtered along time, class c with `windows[c]` frames (columns kept in place)."""
    classes = score_classes(scores)
    per_class = [int(windows[label]) for label in classes]
    filtered = {}
    for clip, table in scores.items():
        values = median_filter_scores(table[classes].to_numpy(dtype=np.float64), per_class)
        out = pd.DataFrame(values, columns=classes)
        out.insert(0, "offset", table["offset"].to_numpy())
        out.insert(0, "onset", table["onset"].to_numpy())
        filtered[clip] = out
    return filtered


def csebbs_predictor(params: PostprocessParams, classes: list[str]):
    """sebbs' `CSEBBsPredictor` with the class-wise parameters of `params` for `classes` (score column order)."""
    csebbs, _ = require_sebbs()
    return csebbs.CSEBBsPredictor(
        step_filter_length={c: params.params[c]["step_filter_length"] for c in classes},
        merge_threshold_abs={c: params.params[c]["merge_threshold_abs"] for c in classes},
        merge_threshold_rel={c: params.params[c]["merge_threshold_rel"] for c in classes},
        sound_classes=classes,
    )


def apply_postprocessing(scores: dict[str, pd.DataFrame], params: PostprocessParams) -> dict[str, pd.DataFrame]:
    """Post-processed score tables; the classes of `params` must be those of the tables."""
    classes = score_classes(scores)
    validate(params, classes)
    if params.method == "median":
        return median_filtered(scores, {c: params.params[c]["window"] for c in classes})
    return csebbs_predictor(params, classes).predict(scores, return_sed_scores=True)
