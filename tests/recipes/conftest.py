"""A tiny generated mini DESED (16 clips per set) and a tiny-model config, shared by the recipe tests."""
import sys
import tempfile
from pathlib import Path

import pytest

from desed_task.data.mini import ensure_mini_dataset

sys.path.insert(0, str(Path(__file__).parent))  # cheap_metrics, shared with the ddp_worker.py script
from cheap_metrics import use_cheap_test_metrics  # noqa: E402

MINI_SIZES = {"n_synth": 16, "n_weak": 16, "n_unlabeled": 16, "n_synth_val": 16, "n_test": 16}


@pytest.fixture(scope="session")
def mini_dir() -> Path:
    """Generated once per machine (ensure_mini_dataset is idempotent and locked), outside pytest's
    numbered temporary folders, which concurrent pytest sessions prune."""
    root = Path(tempfile.gettempdir()) / "desed_task_tests" / "mini_desed_16"
    ensure_mini_dataset(root, seed=0, **MINI_SIZES)
    return root


@pytest.fixture(scope="session")
def tiny_overrides(mini_dir) -> list[str]:
    """Overrides of demo.yaml: the 16-clip dataset, small batches, a narrow CRNN, one epoch, no workers."""
    mini = "{" + f"out_dir: {mini_dir}, seed: 0, " + ", ".join(f"{k}: {v}" for k, v in MINI_SIZES.items()) + "}"
    return [
        f"data.mini={mini}",
        "training.batch_size=[2,2,4]",
        "training.batch_size_val=8",
        "training.num_workers=0",
        "training.n_epochs=1",
        "training.n_epochs_warmup=1",
        "training.validation_interval=1",
        "training.n_test_thresholds=10",
        "training.enable_progress_bar=False",
        "net.nb_filters=[4,8,8,8,8,8,8]",
        "net.n_RNN_cell=8",
    ]


@pytest.fixture(autouse=True)
def cheap_test_metrics(monkeypatch):
    """Every in-process run here, and the DDP workers, skip psds_eval and the plots (cheap_metrics.py)."""
    use_cheap_test_metrics(monkeypatch.setattr)
