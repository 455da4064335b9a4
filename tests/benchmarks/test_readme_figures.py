"""benchmarks/readme_figures.py: every figure is found in its document, and a demo run is checked against the spread."""
import importlib.util
import json
import shutil
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("readme_figures", REPO / "benchmarks/readme_figures.py")
readme_figures = sys.modules["readme_figures"] = importlib.util.module_from_spec(spec)
spec.loader.exec_module(readme_figures)


def test_every_figure_is_found_in_its_document():
    for figure in readme_figures.FIGURES:
        matches = readme_figures.find(figure, (REPO / figure.document).read_text())
        assert matches, figure.name
        assert all(len(m.groups()) >= 1 for m in matches)


def test_parameter_counts_match_the_code():
    assert readme_figures.main(["--skip", "anchors", "demo"]) == 0


def test_a_changed_parameter_count_is_reported(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "benchmarks").mkdir()
    shutil.copy(REPO / "benchmarks/RESULTS.md", tmp_path / "benchmarks/RESULTS.md")
    page = (REPO / "docs/dcase2022_baseline.md").read_text()
    (tmp_path / "docs/dcase2022_baseline.md").write_text(page.replace("(81,660 parameters)", "(81,661 parameters)"))
    out = tmp_path / "report.json"
    assert readme_figures.main(["--root", str(tmp_path), "--skip", "anchors", "demo", "--out", str(out)]) == 1
    status = {r["figure"]: r["status"] for r in json.loads(out.read_text())["figures"]}
    assert status["demo CRNN parameters (baseline page)"] == "differs"
    assert status["baseline CRNN parameters (throughput)"] == "ok"


def test_every_demo_entry_names_an_existing_make_target_and_config():
    demos = readme_figures.DemoSpread.load_all(REPO / "benchmarks/demo_spread.json")
    makefile = (REPO / "Makefile").read_text()
    assert {demo.name for demo in demos} >= {"dcase2022_baseline", "atst_sed_stage2", "uclser20_lineval_pretrained",
                                             "cpjku_dcase23_qat"}
    for demo in demos:
        assert demo.command.startswith("make ") and f"\n{demo.command.split()[1]}:" in makefile, demo.name
        assert demo.config is None or (REPO / demo.config).is_file()
        assert demo.metrics and demo.tolerance >= 0
        target = makefile.split(f"\n{demo.command.split()[1]}:")[1].split("\n\n")[0]
        assert all(override in target for override in demo.overrides), demo.name


def test_a_demo_config_is_compared_with_its_overrides_and_without_run_specific_keys(tmp_path):
    import yaml

    from desed_task.utils.config import apply_overrides, load_config

    stage2 = next(d for d in readme_figures.DemoSpread.load_all(REPO / "benchmarks/demo_spread.json")
                  if d.name == "atst_sed_stage2")
    conf = REPO / stage2.config
    assert stage2.overrides and stage2.run_specific == ("init.model_init",)

    def saved(*extra):
        (tmp_path / "config.yaml").write_text(yaml.safe_dump(apply_overrides(load_config(str(conf)), extra)))

    saved(*stage2.overrides, "init.model_init=exp/demo_atst/stage1/epoch=7-step=176.ckpt")
    readme_figures.check_demo_config(tmp_path, conf, stage2.overrides, stage2.run_specific)
    with pytest.raises(ValueError, match=r"differs .* in \['init', 'opt', 'training'\]"):
        readme_figures.check_demo_config(tmp_path, conf)
    saved(*stage2.overrides, "training.const_max=60")
    with pytest.raises(ValueError, match=r"in \['training'\]"):
        readme_figures.check_demo_config(tmp_path, conf, stage2.overrides, stage2.run_specific)


@pytest.fixture
def baseline_demo(tmp_path):
    """A spread file with a recorded spread for the baseline demo, and a demo log directory."""
    spread = json.loads((REPO / "benchmarks/demo_spread.json").read_text())
    entry = next(demo for demo in spread["demos"] if demo["name"] == "dcase2022_baseline")
    entry["metrics"] = {"test/teacher/psds1_sed_scores_eval": {"median": 0.30, "min": 0.20, "max": 0.40},
                        "test/teacher/psds2_sed_scores_eval": {"median": 0.50, "min": 0.45, "max": 0.55}}
    entry["tolerance"] = 0.02
    path = tmp_path / "spread.json"
    path.write_text(json.dumps(spread))
    log_dir = tmp_path / "demo"
    log_dir.mkdir()
    (log_dir / "config.yaml").write_text(readme_figures.DEMO_CONF.read_text())
    return path, log_dir


def run(spread, log_dir, metrics, tmp_path):
    (log_dir / "test_metrics.json").write_text(json.dumps(metrics))
    out = tmp_path / "report.json"
    code = readme_figures.main(["--spread", str(spread), "--skip", "anchors", "parameters",
                                "--demo_log_dir", str(log_dir), "--out", str(out)])
    return code, json.loads(out.read_text())["figures"][0]


def test_a_run_inside_the_widened_spread_is_ok_outside_is_not(baseline_demo, tmp_path):
    spread, log_dir = baseline_demo
    code, result = run(spread, log_dir, {"test/teacher/psds1_sed_scores_eval": 0.415,
                                         "test/teacher/psds2_sed_scores_eval": 0.45}, tmp_path)
    assert code == 0 and result["status"] == "ok", "0.415 is within max 0.40 + tolerance 0.02"
    code, result = run(spread, log_dir, {"test/teacher/psds1_sed_scores_eval": 0.425,
                                         "test/teacher/psds2_sed_scores_eval": 0.45}, tmp_path)
    assert code == 1 and result["status"] == "outside [0.1800, 0.4200]"
    assert result["metrics"]["test/teacher/psds2_sed_scores_eval"]["status"] == "ok"
    code, result = run(spread, log_dir, {"test/teacher/psds1_sed_scores_eval": 0.3}, tmp_path)
    assert code == 1 and result["metrics"]["test/teacher/psds2_sed_scores_eval"]["status"] == "not in the run's metrics"


def test_an_unrecorded_spread_or_another_config_is_not_ok(baseline_demo, tmp_path):
    spread, log_dir = baseline_demo
    metrics = {"test/teacher/psds1_sed_scores_eval": 0.3, "test/teacher/psds2_sed_scores_eval": 0.5}
    data = json.loads(spread.read_text())
    next(d for d in data["demos"] if d["name"] == "dcase2022_baseline")["metrics"]["test/teacher/psds1_sed_scores_eval"] = None
    unrecorded = tmp_path / "unrecorded.json"
    unrecorded.write_text(json.dumps(data))
    code, result = run(unrecorded, log_dir, metrics, tmp_path)
    assert code == 1 and result["status"] == "no spread recorded"
    (log_dir / "config.yaml").write_text(readme_figures.DEFAULT_CONF.read_text())
    code, result = run(spread, log_dir, metrics, tmp_path)
    assert code == 1 and "differs from confs/dcase2022_task4_baseline/demo.yaml" in result["status"]


def test_the_readme_demo_table_shows_the_recorded_spread():
    """Each row of the README's "Demo results" is one metric's recorded spread (to its 4 printed decimals) and
    names the seeds it was recorded over, so the table cannot drift from `demo_spread.json`."""
    demos = readme_figures.DemoSpread.load_all(REPO / "benchmarks/demo_spread.json")
    rows = [line for line in (REPO / "README.md").read_text().splitlines() if line.startswith("| `make ")]
    assert len(rows) >= len(demos)
    shown = set()
    for row in rows:
        command, _, label, *printed, seeds = [cell.strip() for cell in row.strip("|").split("|")]
        values = [float(cell) for cell in printed]
        matches = [(demo.name, name) for demo in demos if demo.command == command.strip("`")
                   for name, spread in demo.metrics.items()
                   if spread and all(abs(spread[key] - value) <= 5.1e-5
                                     for key, value in zip(("median", "min", "max"), values))
                   and sorted(int(seed) for seed in seeds.split(",")) == sorted(demo.seeds)]
        assert matches, f"README row {label!r} of {command}: no recorded spread {values} over seeds {seeds}"
        shown.update(name for name, _ in matches)
    assert shown == {demo.name for demo in demos}, "every demo of demo_spread.json has a README row"
