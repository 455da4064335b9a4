"""PretrainedSEDTask: embeddings mixed like the features (or not, as the official recipes), the frozen
end-to-end model (eval mode, no graph), the trained one (gradient, own learning rate), config checks."""
import pytest
import torch

from desed_task.nnet import BEATs
from desed_task.training.pretrained import PretrainedSEDTask
from desed_task.training.sed import TrainBatch, batch_masks
from desed_task.utils.config import load_config

CONF = "confs/dcase2023_task4_baseline/pretrained_beats.yaml"
BEATS_CFG = {"encoder_layers": 1, "embed_dim": 8, "encoder_embed_dim": 16, "encoder_ffn_embed_dim": 32,
             "encoder_attention_heads": 2, "conv_pos": 16, "conv_pos_groups": 4}


@pytest.fixture(scope="module")
def beats_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("beats") / "BEATs_iter3_plus_AS2M.pt"
    torch.save({"cfg": BEATS_CFG, "model": BEATs(BEATS_CFG).state_dict()}, path)
    return path


def task(beats_file, *overrides):
    config = load_config(CONF, ["training.batch_size=[2,3,3]", "net.nb_filters=[4,8,8,8,8,8,8]", "net.n_RNN_cell=8",
                                "net.embedding_size=16", "pretrained.e2e=True", f"pretrained.checkpoint={beats_file}",
                                *overrides])
    return PretrainedSEDTask(config)


def mixed_batch(task_, embeddings):
    """A training batch through `augment` with the mixup draw forced on (seed searched for p < 0.5)."""
    strong, weak, unlabeled = batch_masks([2, 3, 3])
    labels = torch.zeros(8, 10, 156)
    for i in range(5):
        labels[i, i] = 1.0
    batch = TrainBatch(audio=torch.zeros(8, 10), features=None, labels=labels, weak_labels=labels[weak].amax(-1),
                       strong_mask=strong, weak_mask=weak, unlabeled_mask=unlabeled, embeddings=embeddings.clone())
    seed = next(s for s in range(100) if float(torch.rand((), generator=torch.Generator().manual_seed(s))) < 0.5)
    task_.batch_generator.manual_seed(seed)  # the mixup decision is the global batch's
    return task_.augment(batch, torch.rand(8, 128, 626) + 0.1)


def test_embeddings_mixed_with_the_labels_weight_and_permutation(beats_file):
    net_task = task(beats_file)
    embeddings = torch.cat([torch.eye(10)[:5], torch.full((3, 10), 7.0)])[:, :, None].expand(8, 10, 4)
    batch = mixed_batch(net_task, embeddings)
    weak = batch.weak_mask
    assert not torch.equal(batch.weak_labels, torch.eye(10)[2:5])  # mixup happened
    torch.testing.assert_close(batch.embeddings[weak, :, 0], batch.weak_labels)  # same weight and permutation
    torch.testing.assert_close(batch.embeddings[batch.strong_mask, :, 0], batch.labels[batch.strong_mask, :, 0])
    torch.testing.assert_close(batch.embeddings[batch.unlabeled_mask], embeddings[batch.unlabeled_mask])


def test_official_switch_keeps_embeddings_unmixed(beats_file):
    embeddings = torch.randn(8, 16, 4)
    batch = mixed_batch(task(beats_file, "pretrained.mix_embeddings=False"), embeddings)
    assert not torch.equal(batch.weak_labels, torch.eye(10)[2:5])
    torch.testing.assert_close(batch.embeddings, embeddings)


def test_frozen_model_runs_in_eval_without_graph(beats_file):
    frozen = task(beats_file).train()
    assert frozen.sed_student.training and not frozen.pretrained_model.training
    embeddings = frozen.batch_embeddings((torch.randn(2, 16000), None, None, None))
    assert embeddings.shape == (2, 16, 48)  # 98 fbank frames: 6 x 8 patches and embeddings.grad_fn is None
    assert all(id(p) not in {id(q) for q in frozen.pretrained_model.parameters()} for p in frozen.trainable_parameters())


def test_trained_model_gets_gradients_and_its_own_learning_rate(beats_file):
    trained = task(beats_file, "pretrained.freezed=False", "pretrained.lr=1e-5").train()
    embeddings = trained.batch_embeddings((torch.randn(2, 16000), None, None, None))
    assert trained.pretrained_model.training and embeddings.grad_fn is not None
    trained.rampup_length = 10
    optimizer = trained.configure_optimizers()["optimizer"]
    lrs = [group["lr"] for group in optimizer.param_groups]
    assert len(lrs) == 2 and lrs[1] / lrs[0] == pytest.approx(1e-5 / 1e-3)  # both warmed up by the same factor


def test_config_checks(beats_file):
    with pytest.raises(ValueError, match="needs pretrained.e2e: true"):
        task(beats_file, "pretrained.e2e=False", "pretrained.freezed=False")
    with pytest.raises(ValueError, match="use_embeddings"):
        task(beats_file, "net.use_embeddings=False")
    config = load_config(CONF, ["net.embedding_size=16"])
    config["pretrained"]["extracted_embedding_dir"] = "x"
    with pytest.raises(ValueError, match="unknown pretrained"):
        PretrainedSEDTask(config)
