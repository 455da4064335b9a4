"""End to end on a tiny generated mini FSDnoisy18k: extraction, contrastive pre-training (--fast_dev_run),
then linear evaluation of the encoder it wrote."""
import json
import runpy
import sys
import tempfile
from pathlib import Path

from desed_task.nnet import VGGLike

TINY = ["model.network=vgg_relu", "model.options={channels: [4, 4, 4, 8, 8, 8], embed_dim: 16}",
        "training.batch_size=8", "training.batch_size_val=32", "training.num_workers=0",
        "training.enable_progress_bar=false"]


def run_recipe(monkeypatch, script: Path, args: list[str]) -> None:
    """Run a recipe script as ``python script args`` in this process (saves the interpreter start-ups)."""
    monkeypatch.setattr(sys, "argv", [str(script), *args])
    runpy.run_path(str(script), run_name="__main__")


def test_pretrain_then_linear_evaluation(repo_root, tmp_path, monkeypatch):
    mini = Path(tempfile.gettempdir()) / "desed_task_tests" / "mini_fsdnoisy18k_1"
    data = [f"data.mini={{out_dir: {mini}, seed: 0, n_noisy: 1, n_clean: 1, n_test: 1}}",
            f"data.hdf5_dir={tmp_path / 'hdf5'}", "data.progress=false"]
    run_recipe(monkeypatch, repo_root / "recipes/uclser20/extract.py",
               ["-p", str(repo_root / "confs/uclser20/params_unsupervised_cl.yaml"), "--report_dir", str(tmp_path / "reports"),
                *data])
    assert sorted(p.name for p in (tmp_path / "hdf5").iterdir()) == [
        "FSDnoisy18k_clean.hdf5", "FSDnoisy18k_noisy.hdf5", "FSDnoisy18k_test.hdf5"]
    pretrain = tmp_path / "pretrain"
    run_recipe(monkeypatch, repo_root / "recipes/uclser20/main_train.py",
               ["-p", str(repo_root / "confs/uclser20/params_unsupervised_cl.yaml"), "--log_dir", str(pretrain),
                "--gpus", "0", "--fast_dev_run", *data, *TINY])
    results = json.loads((pretrain / "test_metrics.json").read_text())
    assert 0.0 <= results["test/knn_macro_acc"] <= 1.0
    encoder = VGGLike.load_official(pretrain / "VGG_best.pth", channels=[4, 4, 4, 8, 8, 8], embed_dim=16)
    assert json.loads((pretrain / "best_encoder.json").read_text())["epoch"] in (0, 1, 2)
    lineval = tmp_path / "lineval"
    run_recipe(monkeypatch, repo_root / "recipes/uclser20/main_train.py",
               ["-p", str(repo_root / "confs/uclser20/params_supervised_lineval.yaml"), "--log_dir", str(lineval),
                "--fast_dev_run", *data, *TINY, f"model.pretrained_path={pretrain / 'VGG_best.pth'}"])
    summary = json.loads((lineval / "summary.json").read_text())
    assert summary["lin_eval"] and summary["pretrained_path"].endswith("VGG_best.pth")
    assert 0.0 <= summary["test"]["test/macro_acc"] <= 1.0 and "test/acc_class.Writing" in summary["test"]
    assert list((lineval).glob("events.out.tfevents*"))
    assert encoder.dense_out.weight.shape == (20, 16)
