import math

import pytest

from desed_task.postprocess import PostprocessParams, load_params, save_params
from desed_task.utils.errors import InputError

CLASSES = ["Cat", "Dog"]


def csebbs_params():
    return PostprocessParams("csebbs", CLASSES, {
        "Cat": {"step_filter_length": 0.32, "merge_threshold_abs": 0.2, "merge_threshold_rel": math.inf},
        "Dog": {"step_filter_length": 0.64, "merge_threshold_abs": math.inf, "merge_threshold_rel": 1.5}},
        tuning={"objective": "psds1", "value": 0.4})


def test_round_trip(tmp_path):
    path = save_params(csebbs_params(), tmp_path / "run" / "params.yaml")
    loaded = load_params(path, ["Dog", "Cat"])
    assert loaded.to_dict() == csebbs_params().to_dict()
    assert loaded.params["Cat"]["merge_threshold_rel"] == math.inf
    assert [p.name for p in path.parent.iterdir()] == ["params.yaml"]  # no temporary file left


@pytest.mark.parametrize("text, score_classes, message", [
    ("method: wiener\nclasses: [Cat]\nparams: {Cat: {window: 3}}\n", None, "unknown post-processing method 'wiener'"),
    ("method: median\nclasses: [Cat, Dog]\nparams: {Cat: {window: 3}}\n", None, "no parameters for class 'Dog'"),
    ("method: median\nclasses: [Cat]\nparams: {Cat: {window: 3}}\n", CLASSES, "differ from the scores' (missing ['Dog']"),
    ("method: median\nclasses: [Cat, Bird]\nparams: {Cat: {window: 3}, Bird: {window: 3}}\n", ["Cat", "Dog"],
     "not in the scores ['Bird']"),
    ("method: median\nclasses: [Cat]\nparams: {Cat: {window: 2.5}}\n", None, "whole number of frames"),
    ("method: median\nclasses: [Cat]\nparams: {Cat: {step_filter_length: 3}}\n", None, "median needs ['window']"),
    ("just text", None, "expected the keys method, classes and params"),
])
def test_bad_files_name_the_file(tmp_path, text, score_classes, message):
    path = tmp_path / "params.yaml"
    path.write_text(text)
    with pytest.raises(InputError) as error:
        load_params(path, score_classes)
    assert str(path) in str(error.value) and message in str(error.value)
    assert "\n" not in str(error.value)


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="parameter file not found"):
        load_params(tmp_path / "absent.yaml")
