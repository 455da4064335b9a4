"""The registry recognises a checkpoint's system from its config (`marker`), as inference does."""
from pathlib import Path

import pytest

from desed_task.training.registry import SYSTEMS, system_of_config
from desed_task.utils.config import load_config

CONFS = Path(__file__).resolve().parents[2] / "confs"


@pytest.mark.parametrize("name", [name for name, system in SYSTEMS.items() if system.marker])
def test_every_shipped_config_of_a_marked_system_is_recognised(name):
    paths = sorted({path for pattern in SYSTEMS[name].configs for path in CONFS.glob(pattern)})
    assert paths
    for path in paths:
        assert system_of_config(load_config(path)) is SYSTEMS[name], path


def test_baseline_configs_belong_to_no_marked_system():
    for name in ("default.yaml", "default_strong_real.yaml", "demo.yaml"):
        assert system_of_config(load_config(CONFS / "dcase2022_task4_baseline" / name)) is None, name
