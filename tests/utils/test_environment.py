import json
import os
from pathlib import Path

import torch

from desed_task.utils.environment import write_environment


def test_environment_record_has_threads_versions_and_commit(tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    record = write_environment(tmp_path / "env" / "environment.json", world_size=2, accelerator="CPUAccelerator")
    assert json.loads((tmp_path / "env/environment.json").read_text()) == record
    assert record["torch_num_threads"] == torch.get_num_threads() and record["cpu_count"] == os.cpu_count()
    assert record["thread_variables"]["OMP_NUM_THREADS"] == "3"
    assert record["world_size"] == 2 and record["accelerator"] == "CPUAccelerator"
    assert record["packages"]["torch"] == torch.__version__
    assert record["packages"]["pytorch-lightning"] and record["packages"]["numpy"]
    if (Path(__file__).resolve().parents[2] / ".git").exists():
        assert record["git_commit"]
    assert not list((tmp_path / "env").glob("*.tmp"))
