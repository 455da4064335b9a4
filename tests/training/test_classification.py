"""The clip-classification core: metrics by hand, hooks, optimiser/scheduler from config, a tiny fit."""
import json
import math

import pytest
import torch
from torch import nn

from desed_task.training.classification import ClassificationTask, classification_metrics
from desed_task.training.registry import System
from desed_task.training.run import single_run
from desed_task.training.schedulers import warmup_linear_decay_factor


def test_metrics_by_hand():
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [3.0, 0.0], [1.0, 0.0], [0.0, 5.0]])
    labels = torch.tensor([0, 1, 1, 1, 1])  # correct: yes, yes, no, no, yes
    groups = torch.tensor([0, 0, 1, 2, 2])
    metrics = classification_metrics(logits, labels, ["x", "y"], groups, ["a", "b", "c"],
                                     {"real": ["a"], "sim": ["b", "c"]}, prefix="val")
    assert metrics["val/acc"] == pytest.approx(3 / 5)
    assert metrics["val/acc_class.x"] == 1.0
    assert metrics["val/acc_class.y"] == pytest.approx(2 / 4)
    assert metrics["val/macro_acc"] == pytest.approx(0.75)
    assert metrics["val/acc_group.a"] == 1.0 and metrics["val/acc_group.b"] == 0.0
    assert metrics["val/acc_group.c"] == pytest.approx(0.5) and metrics["val/count_group.c"] == 2
    assert metrics["val/acc_set.real"] == 1.0 and metrics["val/acc_set.sim"] == pytest.approx(1 / 3)
    expected_loss = nn.functional.cross_entropy(logits, labels)
    assert metrics["val/loss"] == pytest.approx(float(expected_loss))
    assert metrics["val/loss_group.b"] == pytest.approx(float(nn.functional.cross_entropy(logits[2:3], labels[2:3])))
    with pytest.raises(ValueError, match="unknown groups"):
        classification_metrics(logits, labels, ["x", "y"], groups, ["a", "b", "c"], {"s": ["z"]})


def test_warmup_linear_decay_matches_official_values():
    lr = [9e-4 * warmup_linear_decay_factor(e, 14, 50, 84, 0.005) for e in range(150)]
    assert lr[0] == pytest.approx(9e-4 * math.exp(-5 * (1 - 0.5 / 14) ** 2))
    assert lr[0] == pytest.approx(8.61e-6, rel=1e-3)
    assert lr[10] == pytest.approx(5.98e-4, rel=1e-3)
    assert lr[14] == lr[50] == pytest.approx(9e-4)
    assert lr[51] == pytest.approx(8.89e-4, rel=1e-3)
    assert lr[92] == pytest.approx(4.52e-4, rel=1e-3)
    assert lr[133] == pytest.approx(1.52e-5, rel=1e-2)
    assert lr[134] == lr[149] == pytest.approx(4.5e-6)


class ToyItems(torch.utils.data.Dataset):
    """Two separable classes of 4-d features, two groups."""

    def __init__(self, n=32, seed=0):
        generator = torch.Generator().manual_seed(seed)
        self.labels = torch.arange(n) % 2
        self.inputs = torch.randn(n, 4, generator=generator) * 0.3 + self.labels[:, None].float() * 2 - 1

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, index):
        return {"input": self.inputs[index], "label": int(self.labels[index]), "group": index % 2, "index": index}


class LinearTask(ClassificationTask):
    def build_model(self):
        return nn.Linear(4, 2)


def toy_config(**opt):
    return {"training": {"batch_size": 8, "n_epochs": 3, "num_workers": 0, "seed": 1,
                         "enable_progress_bar": False},
            "opt": {"name": "adam", "lr": 0.05, "weight_decay": 1e-4, **opt},
            "scheduler": {"name": "warmup_linear_decay", "warm_up_len": 0, "ramp_down_start": 1,
                          "ramp_down_len": 2, "last_lr_value": 0.1},
            "evaluation": {"group_sets": {"all": ["g0", "g1"]}}}


def test_optimizer_and_scheduler_from_config():
    task = LinearTask(toy_config(), ["neg", "pos"])
    setup = task.configure_optimizers()
    optimizer, scheduler = setup["optimizer"], setup["lr_scheduler"]["scheduler"]
    assert type(optimizer) is torch.optim.Adam and optimizer.param_groups[0]["weight_decay"] == 1e-4
    assert setup["lr_scheduler"]["interval"] == "epoch"
    lrs = []
    for _ in range(4):
        lrs.append(optimizer.param_groups[0]["lr"])
        scheduler.step()
    assert lrs == pytest.approx([0.05, 0.05, 0.05 * 0.55, 0.005])
    with pytest.raises(ValueError, match="opt.name"):
        LinearTask(toy_config(name="lion"), ["neg", "pos"]).configure_optimizers()
    with pytest.raises(NotImplementedError):
        ClassificationTask(toy_config(), ["neg", "pos"])


def test_tiny_fit_learns_and_writes_results(tmp_path):
    """A toy system run by the common runner (a registry entry that is not registered)."""
    built = []

    def toy_data(config, log_dir):
        return {"class_names": ["neg", "pos"], "train_data": ToyItems(64), "valid_data": ToyItems(32, seed=1),
                "group_names": ["g0", "g1"]}

    toy = System("toy", "a linear classifier", LinearTask, "", "", (), data=toy_data, monitor=None,
                 finish=lambda task, results, config, log_dir: built.append(task))
    results = single_run(toy_config(), str(tmp_path), gpus="0", system=toy)
    assert results["test/acc"] >= 0.9
    assert results["test/count_group.g0"] == 16 and results["test/acc_set.all"] == results["test/acc"]
    assert json.loads((tmp_path / "test_metrics.json").read_text()) == pytest.approx(results)
    assert built[0].validation_results["val/acc"] == results["test/acc"]  # same data, same weights
    assert (tmp_path / "last.ckpt").is_file()
    assert list(tmp_path.glob("events.out.tfevents.*"))
