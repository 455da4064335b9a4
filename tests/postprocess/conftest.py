"""Fixtures: the real DCASE 2023 BEATs scores of ../shared/anchors/dcase2023_beats_scores (skip when absent)."""
import pytest

from desed_task.evaluation import load_durations, load_ground_truth, load_score_tables


@pytest.fixture(scope="session")
def beats(anchors):
    """(folder, scores, ground truth, durations) of the 20 real clips."""
    root = anchors / "dcase2023_beats_scores"
    if not root.is_dir():
        pytest.skip("anchors/dcase2023_beats_scores is absent")
    return (root, load_score_tables(root / "scores"), load_ground_truth(root / "ground_truth.tsv"),
            load_durations(root / "durations.tsv"))
