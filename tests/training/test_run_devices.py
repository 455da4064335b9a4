"""Device flags of the recipes: `--gpus` as in the DCASE baseline, `--accelerator/--devices/--num_nodes` for CPU
processes and multi-node runs."""
import pytest

from desed_task.training.run import build_parser, trainer_devices


@pytest.mark.parametrize("gpus, expected", [
    ("0", {"accelerator": "cpu", "devices": 1, "num_nodes": 1, "strategy": "auto"}),
    ("1", {"accelerator": "gpu", "devices": 1, "num_nodes": 1, "strategy": "auto"}),
    ("2", {"accelerator": "gpu", "devices": 2, "num_nodes": 1, "strategy": "ddp"}),
    ("0,1", {"accelerator": "gpu", "devices": [0, 1], "num_nodes": 1, "strategy": "ddp"}),
    ("1,", {"accelerator": "gpu", "devices": [1], "num_nodes": 1, "strategy": "auto"}),
])
def test_gpus_flag_keeps_the_baseline_meaning(gpus, expected):
    assert trainer_devices(gpus) == expected


def test_cpu_processes_and_nodes():
    assert trainer_devices("1", "cpu", "2") == {"accelerator": "cpu", "devices": 2, "num_nodes": 1, "strategy": "ddp"}
    assert trainer_devices("0", "cpu", None) == {"accelerator": "cpu", "devices": 1, "num_nodes": 1, "strategy": "auto"}
    assert trainer_devices("0", "cpu", "1", num_nodes=2)["strategy"] == "ddp"
    assert trainer_devices("1", "gpu", "4", num_nodes=2) == {"accelerator": "gpu", "devices": 4, "num_nodes": 2,
                                                             "strategy": "ddp"}


@pytest.mark.parametrize("args, message", [
    (("1", None, "2"), "--devices needs --accelerator"),
    (("1", "cpu", "0,1"), "number of processes"),
    (("1", "cpu", "0"), "positive"),
])
def test_bad_device_flags_are_clear_errors(args, message):
    with pytest.raises(ValueError, match=message):
        trainer_devices(*args)
    with pytest.raises(ValueError, match="num_nodes"):
        trainer_devices("1", num_nodes=0)


def test_parser_accepts_the_device_flags():
    args = build_parser().parse_args(["--accelerator", "cpu", "--devices", "2", "--num_nodes", "3"])
    assert trainer_devices(args.gpus, args.accelerator, args.devices, args.num_nodes)["devices"] == 2
    assert args.num_nodes == 3
