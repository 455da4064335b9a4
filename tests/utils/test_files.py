"""Atomic writes, generate-once folders and the torch-file reader."""
import json

import pandas as pd
import pytest
import torch

from desed_task.utils.errors import BadInput, MissingInput
from desed_task.utils.files import (atomic_path, ensure_generated, load_torch_file, read_json, write_bytes, write_json,
                                    write_tsv)


def test_atomic_path_renames_on_success_and_keeps_the_old_file_on_failure(tmp_path):
    path = tmp_path / "sub" / "model.pt"
    with atomic_path(path) as tmp:
        assert tmp.parent == path.parent and tmp.name.startswith(".model.pt.") and not path.exists()
        torch.save({"a": torch.ones(2)}, tmp)
    assert torch.equal(torch.load(path)["a"], torch.ones(2))
    with pytest.raises(RuntimeError, match="disk full"):
        with atomic_path(path) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("disk full")
    assert torch.equal(torch.load(path)["a"], torch.ones(2))  # the previous file is intact
    assert sorted(p.name for p in path.parent.iterdir()) == ["model.pt"]  # no temporary file left


def test_write_and_read_json_and_tsv(tmp_path):
    path = write_json(tmp_path / "m.json", {"b": 1, "a": [1.5]}, indent=2, sort_keys=True)
    assert path.read_text() == json.dumps({"a": [1.5], "b": 1}, indent=2)
    assert read_json(path) == {"a": [1.5], "b": 1}
    assert read_json(tmp_path / "absent.json") is None
    assert read_json(write_bytes(tmp_path / "cut.json", b'{"a": ')) is None
    table = pd.DataFrame({"filename": ["a.wav"], "duration": [1.23456]})
    assert write_tsv(table, tmp_path / "d.tsv", "%.3f").read_text() == "filename\tduration\na.wav\t1.235\n"


def test_ensure_generated_builds_once_per_recipe_and_redoes_an_interrupted_build(tmp_path):
    calls = []

    def generate(root):
        calls.append(root)
        (root / "data.txt").write_text(str(len(calls)))

    ensure_generated(tmp_path, "demo", {"seed": 0}, generate)
    ensure_generated(tmp_path, "demo", {"seed": 0}, generate)
    assert len(calls) == 1 and read_json(tmp_path / ".demo_complete.json") == {"seed": 0}
    ensure_generated(tmp_path, "demo", {"seed": 1}, generate)
    assert len(calls) == 2

    def interrupted(root):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        ensure_generated(tmp_path, "demo", {"seed": 2}, interrupted)
    assert not (tmp_path / ".demo_complete.json").exists()  # the marker of the old recipe is gone
    ensure_generated(tmp_path, "demo", {"seed": 2}, generate)
    assert len(calls) == 3


def test_load_torch_file_errors_name_the_file(tmp_path):
    torch.save({"w": torch.zeros(1)}, tmp_path / "ok.pt")
    assert set(load_torch_file(tmp_path / "ok.pt", weights_only=True)) == {"w"}
    with pytest.raises(MissingInput, match="state dict .*absent.pt not found"):
        load_torch_file(tmp_path / "absent.pt", weights_only=True, what="state dict")
    (tmp_path / "text.pt").write_text("not a checkpoint")
    with pytest.raises(BadInput, match="text.pt: not a readable PyTorch checkpoint"):
        load_torch_file(tmp_path / "text.pt", weights_only=True)
    torch.save(torch.zeros(3), tmp_path / "tensor.pt")
    with pytest.raises(BadInput, match="tensor.pt: a checkpoint must hold a dict, found Tensor"):
        load_torch_file(tmp_path / "tensor.pt", weights_only=True)
    tensor = load_torch_file(tmp_path / "tensor.pt", weights_only=True, expected=torch.Tensor)
    assert torch.equal(tensor, torch.zeros(3))
