import pytest

from desed_task.utils.config import apply_overrides, get_nested, load_config, save_config


def test_overrides_parse_yaml_values_and_leave_original_untouched():
    config = {"training": {"n_epochs": 200, "batch_size": [12, 12, 24]}, "opt": {"lr": 1e-3}}
    new = apply_overrides(config, ["training.n_epochs=3", "training.batch_size=[1, 2, 3]", "opt.lr=0.01"])
    assert new["training"] == {"n_epochs": 3, "batch_size": [1, 2, 3]}
    assert new["opt"]["lr"] == 0.01
    assert config["training"]["n_epochs"] == 200


def test_unknown_override_key_is_an_error():
    with pytest.raises(KeyError, match="n_epoch"):
        apply_overrides({"training": {"n_epochs": 1}}, ["training.n_epoch=3"])
    with pytest.raises(ValueError):
        apply_overrides({"training": {}}, ["training.n_epochs"])


def test_save_and_load_round_trip(tmp_path):
    config = {"a": {"b": [1, 2]}, "c": "x"}
    save_config(config, tmp_path / "sub" / "c.yaml")
    assert load_config(tmp_path / "sub" / "c.yaml", ["c=y"]) == {"a": {"b": [1, 2]}, "c": "y"}
    assert get_nested(config, "a.b") == [1, 2]
    assert get_nested(config, "a.z", 5) == 5
