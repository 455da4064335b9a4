"""Post-processing of frame score tables: median filters and cSEBBs, per-class parameters, tuning, CLI."""
from desed_task.postprocess.methods import MissingExtra, apply_postprocessing, require_sebbs
from desed_task.postprocess.params import METHODS, PostprocessParams, load_params, save_params
from desed_task.postprocess.tune import OBJECTIVES, TUNING_METHODS, csebbs_grid, median_grid, tune

__all__ = [
    "METHODS", "OBJECTIVES", "TUNING_METHODS", "MissingExtra", "PostprocessParams", "apply_postprocessing",
    "csebbs_grid", "load_params", "median_grid", "require_sebbs", "save_params", "tune",
]
