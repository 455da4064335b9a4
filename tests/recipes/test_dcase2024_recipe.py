"""End to end (--fast_dev_run) of the DCASE 2024 recipe on a tiny mini DESED (with a strong real set) and mini
MAESTRO, with a small random BEATs run in the step: trains, validates (DESED + MAESTRO) and tests (PSDS on DESED,
mpAUC / mAUC / F1 on MAESTRO)."""
import json
import runpy
import tempfile
from pathlib import Path

import pandas as pd
import pytest
import soundfile as sf

from desed_task.inference.__main__ import main as detect

REPO = Path(__file__).resolve().parents[2]
ROOT = Path(tempfile.gettempdir()) / "desed_task_tests"


@pytest.fixture(scope="module")
def overrides():
    mini = "{" + f"out_dir: {ROOT / 'mini_desed_2024_16'}, seed: 0, n_synth: 16, n_weak: 16, n_unlabeled: 16, " \
                 "n_synth_val: 16, n_test: 16, n_strong: 16}"
    maestro = "{" + f"out_dir: {ROOT / 'mini_maestro_tiny'}, seed: 0, n_train_per_scene: 2, n_test_per_scene: 1, " \
                    "duration_range: [20.0, 30.0], n_annotators: 3}"
    return [f"data.mini={mini}", f"data.maestro_mini={maestro}", "training.batch_size=[2,2,2,2,2]",
            "training.batch_size_val=8", "training.num_workers=0", "training.n_test_thresholds=10", "net.nb_filters=[4,8,8,8,8,8,8]",
            "net.n_RNN_cell=8"]


def test_fast_dev_run_reports_desed_and_maestro_metrics(overrides, tmp_path):
    main = runpy.run_path(str(REPO / "recipes/dcase2024_task4_baseline/demo.py"))["main"]
    checkpoint = tmp_path / "beats.pt"
    results = main(["--conf_file", str(REPO / "confs/dcase2024_task4_baseline/demo.yaml"), "--log_dir",
                    str(tmp_path / "run"), "--fast_dev_run", "--scores_file", "",
                    "--set", f"pretrained.checkpoint={checkpoint}", *overrides])
    assert checkpoint.is_file()
    for model in ("student", "teacher"):
        assert 0 <= results[f"test/{model}/maestro/mpauc"] <= 1
        assert 0 <= results[f"test/{model}/maestro/mauc"] <= 1
        assert 0 <= results[f"test/{model}/maestro/segment_f1_best"] <= 1
        assert f"test/{model}/psds1_sed_scores_eval" in results
    written = json.loads((tmp_path / "run" / "test_metrics.json").read_text())
    assert written == pytest.approx(results, nan_ok=True)

    # the any-length inference CLI on a long mini MAESTRO recording: 27-class scores, BEATs run per window
    (recording,) = sorted((ROOT / "mini_maestro_tiny").rglob("*.wav"))[:1]
    out = tmp_path / "detect"
    assert detect(["--checkpoint", str(tmp_path / "run" / "last.ckpt"), str(recording), "--out", str(out),
                   "--embedding_checkpoint", str(checkpoint), "--no_progress"]) == 0
    table = pd.read_csv(out / "scores" / f"{recording.stem}.tsv", sep="\t")
    assert len(table.columns) == 2 + 27 and table["offset"].max() == pytest.approx(sf.info(recording).duration,
                                                                                    abs=0.2)
