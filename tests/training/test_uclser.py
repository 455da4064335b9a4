"""UCLSER training pieces: NT-Xent, the kNN monitor, patch-averaged evaluation, linear-evaluation BN modes."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from desed_task.data.fsdnoisy18k import FSD_CLASSES
from desed_task.training.uclser import (ContrastiveTask, UCLSERTask, balanced_accuracy, knn_predict, majority_vote,
                                        nt_xent)

TINY_VGG = {"channels": [2, 2, 2, 4, 4, 4], "embed_dim": 8}


def config(**learn):
    return {"model": {"network": "vgg_relu", "pretrained_path": None, "options": TINY_VGG},
            "learn": {"method": "CE", **learn}, "head": {"hidden_dim": 16, "out_dim": 8},
            "training": {"batch_size": 4, "n_epochs": 1, "seed": 0},
            "opt": {"name": "sgd", "lr": 0.1, "momentum": 0.9, "weight_decay": 1e-4},
            "scheduler": {"name": "multistep", "milestones": [80, 160], "gamma": 0.1}}


def test_nt_xent_equals_the_official_formula():
    torch.manual_seed(0)
    z = F.normalize(torch.randn(8, 5, dtype=torch.float64), dim=1)
    n, t = 4, 0.2
    expected = 0.0
    for anchor in range(2 * n):
        positive = (anchor + n) % (2 * n)
        similarities = torch.exp(z[anchor] @ z.t() / t)
        expected += -math.log(float(similarities[positive] / (similarities.sum() - similarities[anchor])))
    assert float(nt_xent(z, t)) == pytest.approx(expected / (2 * n), rel=1e-10)
    with pytest.raises(ValueError, match="even"):
        nt_xent(z[:3])


def naive_knn(z, labels, clips, k, n_classes):
    """Per-patch loop as the official eval_model_contrastive."""
    votes = []
    for p in range(len(z)):
        others = np.flatnonzero(clips != clips[p])
        similarity = z[others] @ z[p]
        top = others[np.argsort(-similarity, kind="stable")[:k]]
        votes.append(np.bincount(labels[top], minlength=n_classes).argmax())
    votes = np.array(votes)
    predictions = [np.bincount(votes[clips == c], minlength=n_classes).argmax() for c in range(clips.max() + 1)]
    truth = [labels[clips == c][0] for c in range(clips.max() + 1)]
    return np.array(predictions), np.array(truth)


def test_knn_predict_equals_a_per_patch_loop():
    rng = np.random.default_rng(0)
    n_clips, n_classes = 30, 4
    clip_labels = rng.integers(0, n_classes, n_clips)
    patches = rng.integers(1, 4, n_clips)
    clips = np.repeat(np.arange(n_clips), patches)
    centres = rng.standard_normal((n_classes, 6))
    z = centres[clip_labels[clips]] + 0.8 * rng.standard_normal((len(clips), 6))
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    labels = clip_labels[clips]
    predictions, truth = knn_predict(torch.from_numpy(z), torch.from_numpy(labels), torch.from_numpy(clips), k=5,
                                     n_classes=n_classes, chunk=7)
    expected, expected_truth = naive_knn(z, labels, clips, 5, n_classes)
    np.testing.assert_array_equal(truth.numpy(), expected_truth)
    np.testing.assert_array_equal(predictions.numpy(), expected)
    assert (predictions.numpy() == truth.numpy()).mean() > 0.5
    big_k, _ = knn_predict(torch.from_numpy(z), torch.from_numpy(labels), torch.from_numpy(clips), k=10_000,
                           n_classes=n_classes)
    assert big_k.shape == (n_clips,)  # k is clamped to the patches of other clips


def test_majority_vote_ties_go_to_the_lowest_class_and_balanced_accuracy():
    votes = torch.tensor([2, 1, 1, 2, 0, 3])
    groups = torch.tensor([0, 0, 0, 0, 1, 1])
    assert majority_vote(votes, groups, 2, 4).tolist() == [1, 0]
    accuracy, per_class = balanced_accuracy(torch.tensor([0, 0, 1, 1, 1]), torch.tensor([0, 1, 1, 1, 1]), 3)
    assert per_class[:2] == [1.0, 0.75] and math.isnan(per_class[2]) and accuracy == pytest.approx(0.875)


def test_evaluation_averages_patch_softmax_per_clip():
    task = UCLSERTask(config(), FSD_CLASSES)
    task.model.eval()
    x = torch.randn(5, 1, 101, 96)
    batch = {"input": x, "patch_clip": torch.tensor([0, 0, 0, 1, 1]), "label": torch.tensor([3, 7])}
    with torch.no_grad():
        clip_log_probs = task.evaluate_batch(batch)
        probabilities = task.model(x).softmax(dim=1)
    expected = torch.stack([probabilities[:3].mean(0), probabilities[3:].mean(0)]).log()
    torch.testing.assert_close(clip_log_probs, expected)


def train_one_step(task):
    optimizer = task.build_optimizer()
    task.train()
    batch = {"input": torch.randn(6, 1, 101, 96), "label": torch.randint(0, 20, (6,))}
    loss, _ = task.training_loss(task.model(batch["input"]), batch)
    loss.backward()
    optimizer.step()


@pytest.mark.parametrize("bn_mode", ["train", "eval"])
def test_linear_evaluation_freezes_the_encoder_and_bn_mode(tmp_path, bn_mode):
    pretrained = UCLSERTask(config(), FSD_CLASSES).model
    torch.save(pretrained.state_dict(), tmp_path / "VGG_best.pth")
    cfg = config(lin_eval=1, bn_mode=bn_mode)
    cfg["model"]["pretrained_path"] = str(tmp_path / "VGG_best.pth")
    task = UCLSERTask(cfg, FSD_CLASSES)
    assert [name for name, p in task.model.named_parameters() if p.requires_grad] == ["dense_out.weight",
                                                                                     "dense_out.bias"]
    before = {k: v.clone() for k, v in task.model.state_dict().items()}
    train_one_step(task)
    after = task.model.state_dict()
    assert torch.equal(before["conv3.conv.weight"], after["conv3.conv.weight"])
    assert torch.equal(before["dense1.weight"], after["dense1.weight"])
    assert not torch.equal(before["dense_out.weight"], after["dense_out.weight"])
    stats_changed = not torch.equal(before["conv0.bn.running_mean"], after["conv0.bn.running_mean"])
    assert stats_changed == (bn_mode == "train")
    assert task.model.conv0.bn.training == (bn_mode == "train")
    with pytest.raises(ValueError, match="bn_mode"):
        UCLSERTask(config(lin_eval=1, bn_mode="frozen"), FSD_CLASSES).train()


def test_fine_tuning_loads_weights_and_trains_everything(tmp_path):
    pretrained = UCLSERTask(config(), FSD_CLASSES).model
    torch.save(pretrained.state_dict(), tmp_path / "VGG_best.pth")
    cfg = config()
    cfg["model"]["pretrained_path"] = str(tmp_path / "VGG_best.pth")
    model = UCLSERTask(cfg, FSD_CLASSES).model
    torch.testing.assert_close(model.conv2.conv.weight, pretrained.conv2.conv.weight)
    assert not torch.equal(model.dense_out.weight, pretrained.dense_out.weight)  # a new head
    assert all(p.requires_grad for p in model.parameters())
    scheduler = UCLSERTask(cfg, FSD_CLASSES).build_scheduler(torch.optim.SGD(model.parameters(), lr=0.01))
    assert isinstance(scheduler, torch.optim.lr_scheduler.MultiStepLR) and list(scheduler.milestones) == [80, 160]


def test_contrastive_model_and_parameters():
    task = ContrastiveTask({**config(), "learn": {"method": "Contrastive", "temp": 0.2}}, FSD_CLASSES)
    views = torch.randn(3, 2, 1, 101, 96)
    task.model.eval()
    z = task.model(views)
    assert z.shape == (6, 8)
    torch.testing.assert_close(z[:3], task.model.project(views[:, 0]))
    torch.testing.assert_close(z[3:], task.model.project(views[:, 1]))
    trainable = {id(p) for p in task.trainable_parameters()}
    assert id(task.model.encoder.dense_out.weight) not in trainable
    assert id(task.model.encoder.dense1.weight) in trainable and id(task.model.head.net1[0].weight) in trainable
    loss, parts = task.training_loss(z, {"label": torch.zeros(3)})
    assert torch.isfinite(loss) and "loss_nt_xent" in parts
