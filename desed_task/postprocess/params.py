"""Post-processing parameters: a method, its classes and one parameter set per class, stored as a small YAML.

File layout (`method` is `median` or `csebbs`; a relative merge threshold of `.inf` means "not used"):

    method: csebbs
    classes: [Alarm_bell_ringing, Blender, ...]
    params:
      Alarm_bell_ringing: {step_filter_length: 0.48, merge_threshold_abs: 0.2, merge_threshold_rel: .inf}
      ...
    tuning: {objective: psds1, ...}   # optional: how the parameters were chosen

Loading checks the method, the parameter names and values of every class and, when the score classes are
given, that both name the same classes; each problem is one `InputError` line naming the file.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from desed_task.utils.errors import BadInput, MissingInput
from desed_task.utils.files import write_text

PARAMETER_NAMES = {
    "median": ("window",),
    "csebbs": ("step_filter_length", "merge_threshold_abs", "merge_threshold_rel"),
}
METHODS = tuple(PARAMETER_NAMES)


@dataclass
class PostprocessParams:
    """One method with per-class parameters (`params[class][name]`) and, optionally, how they were tuned."""

    method: str
    classes: list[str]
    params: dict[str, dict[str, float]]
    tuning: dict = field(default_factory=dict)
    source: str = "post-processing parameters"

    def __post_init__(self):
        validate(self)

    def column(self, name: str) -> list[float]:
        """Parameter `name` of every class, in `classes` order."""
        return [self.params[label][name] for label in self.classes]

    def to_dict(self) -> dict:
        data = {"method": self.method, "classes": list(self.classes),
                "params": {label: dict(self.params[label]) for label in self.classes}}
        if self.tuning:
            data["tuning"] = self.tuning
        return data


def _check_value(method: str, name: str, value, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise BadInput(f"{where}: {name} must be a number, got {value!r}")
    if method == "median" and (value != int(value) or value < 1):
        raise BadInput(f"{where}: window must be a whole number of frames >= 1, got {value!r}")
    if method == "csebbs" and value <= 0:
        raise BadInput(f"{where}: {name} must be > 0, got {value!r}")
    return int(value) if method == "median" else float(value)


def validate(params: PostprocessParams, score_classes=None) -> None:
    """Raise `BadInput` (naming `params.source`) for an unknown method, missing or unknown parameters,
    bad values, or classes that differ from `score_classes` (when given)."""
    source = params.source
    if params.method not in PARAMETER_NAMES:
        raise BadInput(f"{source}: unknown post-processing method {params.method!r}; choose from {list(METHODS)}")
    if not params.classes or len(set(params.classes)) != len(params.classes):
        raise BadInput(f"{source}: 'classes' must list each class once, got {params.classes!r}")
    names = PARAMETER_NAMES[params.method]
    for label in params.classes:
        values = params.params.get(label)
        if not isinstance(values, dict):
            raise BadInput(f"{source}: no parameters for class {label!r}")
        if set(values) != set(names):
            raise BadInput(f"{source}: class {label!r} has parameters {sorted(values)}; {params.method} needs {list(names)}")
        for name in names:
            values[name] = _check_value(params.method, name, values[name], f"{source}: {label}")
    extra = sorted(set(params.params) - set(params.classes))
    if extra:
        raise BadInput(f"{source}: parameters for classes not in 'classes': {extra}")
    if score_classes is not None and sorted(score_classes) != sorted(params.classes):
        missing = sorted(set(score_classes) - set(params.classes))
        unknown = sorted(set(params.classes) - set(score_classes))
        raise BadInput(f"{source}: its classes differ from the scores' (missing {missing}, not in the scores {unknown})")


def save_params(params: PostprocessParams, path) -> Path:
    """Write `params` as YAML at `path` (atomically)."""
    text = yaml.safe_dump(params.to_dict(), sort_keys=False, default_flow_style=None)
    return write_text(path, text)


def load_params(path, score_classes=None) -> PostprocessParams:
    """Read and validate a parameter file (see the module docstring); `score_classes` must match its classes."""
    path = Path(path)
    if not path.is_file():
        raise MissingInput(f"{path}: post-processing parameter file not found")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise BadInput(f"{path}: not valid YAML ({str(error).splitlines()[0]})") from None
    if not isinstance(data, dict) or not {"method", "classes", "params"} <= set(data):
        raise BadInput(f"{path}: expected the keys method, classes and params")
    if not isinstance(data["classes"], list) or not isinstance(data["params"], dict):
        raise BadInput(f"{path}: 'classes' must be a list and 'params' a mapping")
    params = PostprocessParams(
        method=str(data["method"]), classes=[str(c) for c in data["classes"]],
        params={str(k): dict(v) if isinstance(v, dict) else v for k, v in data["params"].items()},
        tuning=data.get("tuning") or {}, source=str(path),
    )
    validate(params, score_classes)
    return params
