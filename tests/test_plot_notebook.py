"""plot.ipynb executes headless on the paper's score file, on our own misc/scores.txt and on a partial file."""

import os
import subprocess
import sys
from pathlib import Path

import nbclient
import nbformat

from desed_task.utils.scores import PSDS2_METRIC, load_score_file, write_scores


def execute_notebook(repo_root, scores_file, monkeypatch):
    monkeypatch.setenv("SCORES_FILE", str(scores_file))
    notebook = nbformat.read(repo_root / "plot.ipynb", as_version=4)
    client = nbclient.NotebookClient(
        notebook, kernel_name="python3", timeout=120, resources={"metadata": {"path": str(repo_root)}}
    )
    client.execute()
    outputs = [output for cell in notebook.cells for output in cell.get("outputs", [])]
    text = "".join(output.get("text", "") for output in outputs if output.output_type == "stream")
    images = [output for output in outputs if "image/png" in output.get("data", {})]
    return text, images


def test_notebook_on_paper_scores(repo_root, anchors, monkeypatch):
    scores_file = anchors / "irct" / "score.txt"
    text, images = execute_notebook(repo_root, scores_file, monkeypatch)
    frame = load_score_file(scores_file)
    assert len(images) == 2
    for group in ["default", "irct_t1_l3", "irct_t2_l8", "irct_t2_l9"]:
        seeds = frame.loc[[f"{group}_{seed}" for seed in (1, 2, 3)], PSDS2_METRIC]
        assert f"{seeds.mean():.4f}" in text
        assert f"{seeds.std():.4f}" in text
    assert f"{frame.loc['probe_h32_l8_3', PSDS2_METRIC]:.4f}" in text


def readme_notebook_command(repo_root) -> str:
    """The documented command (docs/irct.md) that executes plot.ipynb headless."""
    lines = [line for line in (repo_root / "docs" / "irct.md").read_text().splitlines() if "nbconvert" in line]
    commands = [line.strip() for line in lines if line.strip().startswith("SCORES_FILE=")]
    assert len(commands) == 1, lines
    return commands[0]


def test_issue13_item17_the_readme_notebook_command_runs_on_a_partial_score_file(repo_root, tmp_path):
    scores_file = tmp_path / "scores.txt"
    write_scores(scores_file, "default_1", {PSDS2_METRIC: 0.41234})
    write_scores(scores_file, "default_2", {PSDS2_METRIC: 0.43456})
    command = readme_notebook_command(repo_root)
    assert command.startswith("SCORES_FILE=misc/scores.txt .venv/bin/jupyter nbconvert ") and "--output-dir exp" in command
    argv = command.split()[1:]
    argv[0] = str(Path(sys.executable).with_name("jupyter"))
    argv[argv.index("--output-dir") + 1] = str(tmp_path)
    completed = subprocess.run(argv, cwd=repo_root, env={**os.environ, "SCORES_FILE": str(scores_file)},
                               capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr[-3000:]
    notebook = nbformat.read(tmp_path / "plot.ipynb", as_version=4)
    outputs = [output for cell in notebook.cells for output in cell.get("outputs", [])]
    text = "".join(output.get("text", "") for output in outputs if output.output_type == "stream")
    assert f"{(0.41234 + 0.43456) / 2:.4f}" in text
    assert len([output for output in outputs if "image/png" in output.get("data", {})]) == 2


def test_notebook_on_the_repository_score_file(repo_root, monkeypatch):
    """misc/scores.txt holds the blocks written by our own `default_N` runs (see ckpt/default/README.md)."""
    scores_file = repo_root / "misc" / "scores.txt"
    frame = load_score_file(scores_file)
    defaults = frame.loc[[name for name in frame.index if name.startswith("default_")], PSDS2_METRIC]
    assert len(defaults) == 3
    text, images = execute_notebook(repo_root, scores_file, monkeypatch)
    assert f"{defaults.mean():.4f}" in text
    assert len(images) == 2
