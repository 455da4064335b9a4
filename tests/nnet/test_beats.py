"""BEATs: official size and names, outputs, attention with gated relative position bias against the
formula, weight-norm positional convolution against torch's weight_norm, {"cfg", "model"} files."""
import math

import pytest
import torch

from desed_task.nnet import BEATs, BEATsConfig


def small_cfg(**changes):
    return {"encoder_layers": 2, "encoder_embed_dim": 64, "encoder_ffn_embed_dim": 128, "encoder_attention_heads": 4,
            "embed_dim": 32, "conv_pos": 16, "conv_pos_groups": 4, **changes}


def test_parameter_count_and_official_keys():
    net = BEATs()
    state = net.state_dict()
    assert sum(p.numel() for p in net.parameters()) == 90_311_792 and len(state) == 250
    assert state["encoder.pos_conv.0.weight_v"].shape == (768, 48, 128)
    assert state["encoder.pos_conv.0.weight_g"].shape == (1, 1, 128)
    assert state["encoder.layers.5.self_attn.relative_attention_bias.weight"].shape == (320, 12)
    assert state["encoder.layers.0.self_attn.grep_linear.weight"].shape == (8, 64)
    assert state["encoder.layers.0.self_attn.grep_a"].shape == (1, 12, 1, 1)
    assert not any(key.startswith("predictor") for key in state)
    layers = net.encoder.layers
    assert layers[7].self_attn.relative_attention_bias is layers[0].self_attn.relative_attention_bias


def test_ten_second_shapes():
    torch.manual_seed(0)
    net = BEATs(BEATsConfig(encoder_layers=1)).eval()
    with torch.no_grad():
        out = net(torch.randn(2, 160000) * 0.1)
    assert out["frame"].shape == (2, 768, 496) and out["global"].shape == (2, 768)
    torch.testing.assert_close(out["global"], out["frame"].mean(-1))


def test_attention_equals_gated_relative_bias_formula():
    torch.manual_seed(2)
    net = BEATs(small_cfg())
    attention = net.encoder.layers[0].self_attn
    torch.nn.init.normal_(attention.grep_a)
    x = torch.randn(7, 2, 64)  # (T, B, C)
    out, bias = attention(x, None)
    heads, d = 4, 16
    q = attention.q_proj(x).reshape(7, 2, heads, d).permute(1, 2, 0, 3)
    k = attention.k_proj(x).reshape(7, 2, heads, d).permute(1, 2, 0, 3)
    v = attention.v_proj(x).reshape(7, 2, heads, d).permute(1, 2, 0, 3)
    gates = torch.sigmoid(attention.grep_linear(q).reshape(2, heads, 7, 2, 4).sum(-1))
    gate = gates[..., :1] * (gates[..., 1:] * attention.grep_a - 1.0) + 2.0
    position = attention.compute_bias(7).unsqueeze(0)
    scores = q @ k.transpose(-1, -2) / math.sqrt(d) + gate * position
    ref = (scores.softmax(-1) @ v).permute(2, 0, 1, 3).reshape(7, 2, 64)
    torch.testing.assert_close(out, attention.out_proj(ref), atol=1e-5, rtol=1e-4)
    assert bias.shape == (8, 7, 7)
    torch.testing.assert_close(bias[1], position[0, 1])  # ungated bias is handed to the next layers


def test_relative_position_buckets():
    net = BEATs(small_cfg(num_buckets=32, max_distance=64))
    buckets = net.encoder.layers[0].self_attn._buckets(torch.arange(-100, 101))
    assert buckets[100] == 0 and buckets[101] == 17 and buckets[99] == 1  # exact near, +half for keys ahead
    assert buckets.max() == 31 and buckets[:100].max() == 15  # far distances share the last bucket per side
    assert torch.all(buckets[101:].diff() >= 0)


def test_weight_norm_conv_equals_torch_weight_norm():
    torch.manual_seed(3)
    net = BEATs(small_cfg())
    conv = net.encoder.pos_conv[0]
    reference = torch.nn.Conv1d(64, 64, 16, padding=8, groups=4)
    reference = torch.nn.utils.parametrizations.weight_norm(reference, dim=2)
    with torch.no_grad():
        reference.parametrizations.weight.original0.copy_(conv.weight_g * 1.5)
        reference.parametrizations.weight.original1.copy_(conv.weight_v)
        reference.bias.copy_(torch.randn(64))
        conv.weight_g.mul_(1.5)
        conv.bias.copy_(reference.bias)
    x = torch.randn(2, 64, 20)
    torch.testing.assert_close(conv(x), reference(x))


def test_official_file_round_trip_and_errors(tmp_path):
    torch.manual_seed(4)
    source = BEATs(small_cfg()).eval()
    cfg = {**small_cfg(), "layer_wise_gradient_decay_ratio": 0.6, "some_training_only_key": 1}
    torch.save({"cfg": cfg, "model": source.state_dict()}, tmp_path / "BEATs_iter3_plus_AS2M.pt")
    net = BEATs.load_official(tmp_path / "BEATs_iter3_plus_AS2M.pt").eval()
    audio = torch.randn(1, 8000) * 0.1
    with torch.no_grad():
        torch.testing.assert_close(net(audio)["frame"], source(audio)["frame"])
    torch.save({"cfg": cfg, "model": {**source.state_dict(), "predictor.weight": torch.zeros(1)}}, tmp_path / "ft.pt")
    with pytest.raises(KeyError, match="ft.pt.*predictor.weight"):
        BEATs.load_official(tmp_path / "ft.pt")
    with pytest.raises(FileNotFoundError, match="BEATs_iter3_plus_AS2M.pt.*by hand"):
        BEATs.load_official(tmp_path / "missing.pt")


def test_layer_wise_gradient_decay_scales_gradients_only():
    torch.manual_seed(5)
    plain = BEATs(small_cfg(layer_wise_gradient_decay_ratio=1.0)).eval()  # eval: no layer drop
    decayed = BEATs(small_cfg()).eval()
    decayed.load_state_dict(plain.state_dict())
    audio = torch.randn(1, 8000) * 0.1
    out_plain, out_decayed = plain(audio)["global"], decayed(audio)["global"]
    torch.testing.assert_close(out_plain, out_decayed)
    direction = torch.randn(out_plain.shape)  # not .sum(): a sum over LayerNorm outputs has no gradient
    (out_plain * direction).sum().backward()
    (out_decayed * direction).sum().backward()
    ratio = decayed.patch_embedding.weight.grad.norm() / plain.patch_embedding.weight.grad.norm()
    assert float(ratio) == pytest.approx(0.6 ** 2, rel=1e-3)  # two layers
