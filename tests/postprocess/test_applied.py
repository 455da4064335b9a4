"""The post-processing where it is applied: the any-length detector and the SED test report."""
import importlib.util

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch

from desed_task.evaluation import sed_report
from desed_task.inference import Detector, detect_file
from desed_task.postprocess import PostprocessParams, apply_postprocessing, csebbs_grid, save_params
from desed_task.postprocess.report import postprocessed_metrics
from desed_task.training.sed import SEDTask
from desed_task.utils.config import load_config


@pytest.fixture(scope="module")
def tiny_task(repo_root):
    torch.manual_seed(0)
    config = load_config(repo_root / "confs/dcase2022_task4_baseline/demo.yaml",
                         ["net.nb_filters=[4,8,8,8,8,8,8]", "net.n_RNN_cell=8"])
    return SEDTask(config).eval()


def test_detector_applies_the_parameters_to_its_raw_scores(tmp_path, tiny_task):
    path = tmp_path / "clip.wav"
    sf.write(path, 0.1 * np.random.default_rng(0).standard_normal(16000 * 13).astype(np.float32), 16000)
    labels = list(tiny_task.encoder.labels)
    detector = Detector(tiny_task, median_window=1)
    raw, _ = detect_file(detector, path)
    grids = {"median": [{"window": w} for w in (1, 3, 5, 9)]}
    if importlib.util.find_spec("sebbs") is not None:
        grids["csebbs"] = csebbs_grid()
    for method, grid in grids.items():
        params = PostprocessParams(method, labels, {c: grid[i % len(grid)] for i, c in enumerate(labels)})
        detector.postprocess = params
        scores, detections = detect_file(detector, path)
        pd.testing.assert_frame_equal(scores, apply_postprocessing({"clip": raw}, params)["clip"])
        assert (detections["offset"] <= 13.0 + 1e-6).all()


def test_test_report_side_by_side(beats, tmp_path, caplog):
    _, scores, ground_truth, durations = beats
    labels = list(next(iter(scores.values())).columns[2:])
    params = PostprocessParams("median", labels, {c: {"window": 5 + 2 * (i % 3)} for i, c in enumerate(labels)})
    path = save_params(params, tmp_path / "params.yaml")
    assert postprocessed_metrics(scores, ground_truth, durations, None, "test/teacher") == {}
    plain = {f"test/teacher/{k}": v for k, v in sed_report(ground_truth, durations, scores=scores).items()
             if isinstance(v, float)}
    with caplog.at_level("INFO"):
        results = postprocessed_metrics(scores, ground_truth, durations, path, "test/teacher", plain=plain)
    expected = sed_report(ground_truth, durations, scores=apply_postprocessing(scores, params))
    assert results["test/teacher/psds1_sed_scores_eval_postprocessed"] == expected["psds1_sed_scores_eval"]
    assert results["test/teacher/event_f1_macro_postprocessed"] == expected["event_f1_macro"]
    assert results["test/teacher/psds1_sed_scores_eval_postprocessed"] != plain["test/teacher/psds1_sed_scores_eval"]
    table = caplog.text
    assert "psds1_sed_scores_eval" in table and f"{plain['test/teacher/psds1_sed_scores_eval']:.4f}" in table
    assert f"{expected['psds1_sed_scores_eval']:.4f}" in table and str(path) in table
