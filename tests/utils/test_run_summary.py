import json
import os
import time

import pytest

from desed_task.utils.run_summary import main, run_summary

METRICS = {f"test/{model}/psds{n}_sed_scores_eval": value
           for model, values in (("student", (0.41254, 0.5311)), ("teacher", (0.40349, 0.55514)))
           for n, value in zip((1, 2), values)}


def test_one_line_with_wall_time_and_headline_metrics():
    assert run_summary(METRICS, 241.7, "m.json") == (
        "4 min 01 s wall; teacher PSDS1 0.4035 PSDS2 0.5551, student PSDS1 0.4125 PSDS2 0.5311 (m.json)")
    assert run_summary(METRICS).startswith("teacher PSDS1 0.4035")


def test_command_line_reads_the_newest_run_of_the_log_dir(tmp_path, capsys):
    (tmp_path / "test_metrics.json").write_text(json.dumps({key: 0.0 for key in METRICS}))
    newest = tmp_path / "version_1" / "test_metrics.json"
    newest.parent.mkdir()
    newest.write_text(json.dumps(METRICS))
    os.utime(newest, (time.time() + 10, time.time() + 10))
    main([str(tmp_path), "--seconds", "61", "--prefix", "demo:"])
    assert capsys.readouterr().out == (
        f"demo: 1 min 01 s wall; teacher PSDS1 0.4035 PSDS2 0.5551, student PSDS1 0.4125 PSDS2 0.5311 ({newest})\n")


def test_a_log_dir_without_metrics_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no test_metrics.json"):
        main([str(tmp_path)])
