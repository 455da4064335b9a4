"""Probe head and frozen-encoder probe: shapes as the reference probes, frozen encoder, eval-mode switch."""
import pytest
import torch

from desed_task.nnet.crnn import CRNN
from desed_task.nnet.probe import PROBE_LAYERS, ProbedCRNN, ProbeHead, representation_to_sequence


@pytest.fixture(scope="module")
def crnn():
    torch.manual_seed(0)
    return CRNN()


@pytest.mark.parametrize("layer, expected", [
    ("l1", (16 * 64, 313)), ("l2", (32 * 32, 156)), ("l3", (64 * 16, 156)), ("l7", (128 * 1, 156)), ("l8", (256, 156)),
])
def test_representation_shapes_of_the_default_crnn_match_the_reference_probe_inputs(crnn, layer, expected):
    """The reference sizes its probe from the layer output: channels x frequency bins (conv) or 2 x 128
    (BiGRU) features per frame, and the layer's frames, for a 626-frame input."""
    assert ProbedCRNN.representation_shape(crnn, layer, 128, 626) == expected


def test_representation_to_sequence_keeps_each_frame_features_together():
    conv = torch.arange(2 * 3 * 5 * 4, dtype=torch.float32).reshape(2, 3, 5, 4)  # (B, C, T, F)
    sequence = representation_to_sequence(conv)
    assert sequence.shape == (2, 12, 5)
    assert torch.equal(sequence[1, :, 2], conv[1, :, 2, :].reshape(-1))
    rnn = torch.randn(2, 7, 6)  # (B, T, D)
    assert torch.equal(representation_to_sequence(rnn), rnn.transpose(1, 2))


@pytest.mark.parametrize("hidden_size", [8, 16, 32])
def test_head_outputs_strong_and_weak_probabilities(hidden_size):
    head = ProbeHead(in_channels=24, in_frames=40, hidden_size=hidden_size, nclass=10, out_frames=156)
    strong, weak = head(torch.randn(3, 6, 40, 4))
    assert strong.shape == (3, 10, 156) and weak.shape == (3, 10)
    assert 0 <= strong.min() and strong.max() <= 1 and 0 <= weak.min() and weak.max() <= 1
    assert head.rnn.rnn.hidden_size == hidden_size and head.rnn.rnn.num_layers == 2
    assert head.rnn.rnn.bidirectional and head.dense.in_features == 2 * hidden_size


def test_weak_output_is_the_attention_weighted_mean_of_the_strong_output():
    head = ProbeHead(in_channels=5, in_frames=9, hidden_size=8, out_frames=9).eval()
    h = torch.randn(2, 9, 5)
    strong, weak = head(h)
    features = head.rnn(head.time_projection(h.transpose(1, 2)).transpose(1, 2))
    weights = torch.softmax(head.dense_softmax(features), dim=-1).clamp(1e-7, 1)
    assert torch.allclose(weak, (strong.transpose(1, 2) * weights).sum(1) / weights.sum(1))


def make_probe(layer="l3", frozen_eval_mode=True):
    torch.manual_seed(0)
    encoder = CRNN(nb_filters=[4, 8, 8, 8, 8, 8, 8], n_RNN_cell=8)
    channels, frames = ProbedCRNN.representation_shape(encoder, layer, 128, 64)
    return ProbedCRNN(encoder, layer, ProbeHead(channels, frames, 8, out_frames=16), frozen_eval_mode)


@pytest.mark.parametrize("layer", PROBE_LAYERS)
def test_only_the_head_gets_gradients(layer):
    probe = make_probe(layer)
    strong, weak = probe(torch.randn(2, 128, 64))
    assert strong.shape == (2, 10, 16)
    (strong.sum() + weak.sum()).backward()
    assert all(not p.requires_grad and p.grad is None for p in probe.encoder.parameters())
    assert all(p.grad is not None for p in probe.head.parameters())


def test_frozen_eval_mode_keeps_the_encoder_in_eval_mode_and_its_statistics_fixed():
    probe = make_probe().train()
    assert probe.training and probe.head.training and not probe.encoder.training
    assert not any(m.training for m in probe.encoder.modules())
    before = {k: v.clone() for k, v in probe.encoder.state_dict().items()}
    probe(torch.randn(2, 128, 64))
    assert all(torch.equal(v, probe.encoder.state_dict()[k]) for k, v in before.items())


def test_without_frozen_eval_mode_the_encoder_follows_the_training_mode_as_the_reference():
    probe = make_probe(frozen_eval_mode=False).train()
    assert probe.encoder.training
    before = {k: v.clone() for k, v in probe.encoder.state_dict().items()}
    probe(torch.randn(2, 128, 64))
    after = probe.encoder.state_dict()
    changed = {k for k, v in before.items() if not torch.equal(v, after[k])}
    assert changed and all("batchnorm" in k for k in changed)  # running statistics only, never weights
    assert not probe.eval().encoder.training


def test_unknown_layer_is_rejected():
    encoder = CRNN(nb_filters=[4, 8, 8, 8, 8, 8, 8], n_RNN_cell=8)
    with pytest.raises(ValueError, match="probe layer"):
        ProbedCRNN(encoder, "l9", ProbeHead(16, 16, 8))
