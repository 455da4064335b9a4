"""The IRCT grid: 81 valid configs (generated, up to date) and a training script line per run."""
import re
import shlex
import sys

import pytest

from desed_task.utils.config import load_config


@pytest.fixture(scope="module")
def generator(repo_root):
    sys.path.insert(0, str(repo_root / "confs" / "irct"))
    import generate

    yield generate
    sys.path.remove(str(repo_root / "confs" / "irct"))


def test_grid_configs_exist_and_have_required_keys(repo_root):
    confs = sorted((repo_root / "confs" / "irct").glob("*.yaml"))
    names = [path.stem for path in confs]
    assert len([n for n in names if re.fullmatch(r"default_[123]", n)]) == 3
    assert len([n for n in names if re.fullmatch(r"irct_t[12]_l[1-9]_[123]", n)]) == 54
    assert len([n for n in names if re.fullmatch(r"probe_h(8|16|32)_l[1-8]_3", n)]) == 24
    assert len(confs) == 81
    for path in confs:
        config = load_config(path)
        assert config["run_name"] == path.stem
        for section in ("training", "scaler", "data", "opt", "feats", "net"):
            assert isinstance(config[section], dict), (path, section)
        if path.stem.startswith("irct"):
            irct = config["irct"]
            assert irct["placement"] == f"l{path.stem.split('_')[2][1:]}"
            assert irct["aug_set"] == f"tau{path.stem.split('_')[1][1:]}"
            assert irct["cost_i"] == 0.1 and irct["mix_extra"] == [1, 2]
            assert irct["roll_bug_compatible"] is False
        if path.stem.startswith("probe"):
            probe = config["probe"]
            assert probe["encoder_checkpoint"] == "ckpt/default/default_3.ckpt"
            assert probe["frozen_eval_mode"] is True
            assert probe["hidden_size"] in (8, 16, 32)


def test_configs_are_up_to_date_with_the_baseline(repo_root, generator):
    base_path = repo_root / "confs" / "dcase2022_task4_baseline" / "default.yaml"
    if not base_path.is_file():
        pytest.skip("baseline config not written yet")
    import yaml

    for run_name, config in generator.grid_configs(yaml.safe_load(base_path.read_text())).items():
        assert (repo_root / "confs" / "irct" / f"{run_name}.yaml").read_text() == generator.render(config)


def test_training_script_has_one_valid_command_per_run(repo_root):
    lines = [
        line for line in (repo_root / "training_script.sh").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert len(lines) == 81
    for line in lines:
        words = shlex.split(line)
        assert words[0] == "python"
        conf = words[words.index("--conf_file") + 1]
        assert (repo_root / conf).is_file()
        run_name = conf.split("/")[-1].removesuffix(".yaml")
        assert words[words.index("--log_dir") + 1] == f"exp/{run_name}"
        expected = "probe_train_sed.py" if run_name.startswith("probe") else (
            "irct_train_sed.py" if run_name.startswith("irct") else "train_sed.py")
        assert words[1].endswith(expected)
