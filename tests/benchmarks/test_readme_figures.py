"""benchmarks/readme_figures.py: every figure is found in README.md, and a changed figure is caught and rewritten."""
import importlib.util
import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("readme_figures", REPO / "benchmarks/readme_figures.py")
readme_figures = sys.modules["readme_figures"] = importlib.util.module_from_spec(spec)
spec.loader.exec_module(readme_figures)


def test_every_figure_is_found_in_the_readme():
    text = (REPO / "README.md").read_text()
    for figure in readme_figures.FIGURES:
        matches = readme_figures.find(figure, text)
        assert matches, figure.name
        assert all(len(m.groups()) >= 1 for m in matches)


def test_parameter_counts_match_the_code():
    assert readme_figures.main(["--skip", "anchors", "demo"]) == 0


@pytest.fixture
def demo_copy(tmp_path):
    """A README copy and a demo log directory whose metrics are the README's, but for one."""
    readme = tmp_path / "README.md"
    readme.write_text((REPO / "README.md").read_text())
    log_dir = tmp_path / "demo"
    log_dir.mkdir()
    (log_dir / "config.yaml").write_text(readme_figures.DEMO_CONF.read_text())
    metrics = {}
    for metric in readme_figures.SUMMARY_METRICS:
        figure = next(f for f in readme_figures.FIGURES if f.name == f"demo table: {metric}")
        student, teacher = readme_figures.find(figure, readme.read_text())[0].groups()
        metrics[f"test/student/{metric}"], metrics[f"test/teacher/{metric}"] = float(student), float(teacher)
    return readme, log_dir, metrics


def test_demo_drift_is_reported_then_written(demo_copy, tmp_path):
    readme, log_dir, metrics = demo_copy
    (log_dir / "test_metrics.json").write_text(json.dumps(metrics))
    args = ["--readme", str(readme), "--skip", "anchors", "parameters", "--demo_log_dir", str(log_dir)]
    assert readme_figures.main(args) == 0
    metrics["test/teacher/weak_f1_macro"] = 0.12345
    (log_dir / "test_metrics.json").write_text(json.dumps(metrics))
    out = tmp_path / "report.json"
    assert readme_figures.main([*args, "--out", str(out)]) == 1
    report = {r["figure"]: r for r in json.loads(out.read_text())["figures"]}
    assert report["demo table: weak_f1_macro"]["status"] == "differs"
    assert report["demo table: psds1_sed_scores_eval"]["status"] == "ok"
    assert readme_figures.main([*args, "--write"]) == 0
    assert "| weak_f1_macro |" in readme.read_text() and " 0.1235 " in readme.read_text()
    assert readme_figures.main(args) == 0


def test_a_demo_run_of_another_config_is_refused(demo_copy, capsys):
    readme, log_dir, metrics = demo_copy
    (log_dir / "test_metrics.json").write_text(json.dumps(metrics))
    (log_dir / "config.yaml").write_text(readme_figures.DEFAULT_CONF.read_text())
    args = ["--readme", str(readme), "--skip", "anchors", "parameters", "--demo_log_dir", str(log_dir)]
    assert readme_figures.main(args) == 1
    assert "differs from confs/dcase2022_task4_baseline/demo.yaml" in capsys.readouterr().out
