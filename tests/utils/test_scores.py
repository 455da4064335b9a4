"""Score file (IRCT misc/scores.txt format): write/load round trip, replacement, the paper's real file."""
import math

import pandas as pd
import pytest

from desed_task.utils.scores import (
    PSDS2_METRIC,
    load_score_file,
    parse_run_name,
    run_groups,
    summarise_over_seeds,
    write_scores,
)


def test_round_trip_and_format(tmp_path):
    path = tmp_path / "misc" / "scores.txt"
    first = {PSDS2_METRIC: 0.1234567890123, "test/teacher/intersection_f1_macro": 0.5}
    write_scores(path, "default_1", first)
    write_scores(path, "irct_t2_l8_3", {PSDS2_METRIC: 0.25})
    lines = path.read_text().splitlines()
    assert lines[:4] == ["default_1", "", f"{PSDS2_METRIC}\t0.1234567890123", "test/teacher/intersection_f1_macro\t0.5"]
    frame = load_score_file(path)
    assert list(frame.index) == ["default_1", "irct_t2_l8_3"]
    assert frame.loc["default_1", PSDS2_METRIC] == 0.1234567890123
    assert math.isnan(frame.loc["irct_t2_l8_3", "test/teacher/intersection_f1_macro"])
    assert all(dtype == float for dtype in frame.dtypes)


def test_rewriting_a_run_replaces_its_block(tmp_path):
    path = tmp_path / "scores.txt"
    write_scores(path, "default_1", {PSDS2_METRIC: 0.1})
    write_scores(path, "default_2", {PSDS2_METRIC: 0.2})
    write_scores(path, "default_1", {PSDS2_METRIC: 0.3})
    assert path.read_text().count("default_1\n") == 1
    frame = load_score_file(path)
    assert frame[PSDS2_METRIC].to_dict() == {"default_2": 0.2, "default_1": 0.3}
    assert not list(tmp_path.glob(".*tmp"))


def test_parse_run_names():
    assert parse_run_name("default_2") == {"kind": "default", "aug_set": None, "layer": None, "probe_size": None, "seed": 2}
    assert parse_run_name("irct_t1_l9_3") == {"kind": "irct", "aug_set": "tau1", "layer": 9, "probe_size": None, "seed": 3}
    assert parse_run_name("probe_h32_l4_3") == {"kind": "probe", "aug_set": None, "layer": 4, "probe_size": 32, "seed": 3}
    assert parse_run_name("something")["kind"] == "other"


def test_paper_score_file(anchors):
    frame = load_score_file(anchors / "irct" / "score.txt")
    assert len(frame) == 81
    assert frame.loc["irct_t1_l1_1", PSDS2_METRIC] == 0.5540429859213366
    assert frame.loc["irct_t1_l1_1", "test/student/intersection_f1_classwise:Dishes"] == 0.2805049088359046
    assert frame.loc["probe_h8_l1_3", PSDS2_METRIC] == 0.12496660627563799
    assert frame.loc["default_1", "hp_metric"] == 0.5203591293984827
    groups = run_groups(frame)
    assert groups["kind"].value_counts().to_dict() == {"irct": 54, "probe": 24, "default": 3}
    summary = summarise_over_seeds(frame)
    assert len(summary) == 1 + 18 + 24
    default = summary[summary["kind"] == "default"].iloc[0]
    seeds = frame.loc[["default_1", "default_2", "default_3"], PSDS2_METRIC]
    assert default["mean"] == pytest.approx(seeds.mean()) and default["n"] == 3
    assert default["std"] == pytest.approx(seeds.std(ddof=1))
    t2_l8 = summary[(summary["aug_set"] == "tau2") & (summary["layer"] == 8)].iloc[0]
    assert t2_l8["mean"] == pytest.approx(frame.loc[[f"irct_t2_l8_{s}" for s in (1, 2, 3)], PSDS2_METRIC].mean())


def test_summary_of_a_partial_file(tmp_path):
    path = tmp_path / "scores.txt"
    write_scores(path, "default_1", {PSDS2_METRIC: 0.4})
    summary = summarise_over_seeds(load_score_file(path))
    assert summary[["kind", "mean", "n"]].to_dict("records") == [{"kind": "default", "mean": 0.4, "n": 1}]
    assert summarise_over_seeds(pd.DataFrame()).empty
