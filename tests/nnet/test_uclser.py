"""UCLSER encoders: parameter counts, official key names, reference outputs with the released weights."""
import numpy as np
import pytest
import torch

from desed_task.nnet import ResNet18Audio, UCLSERCRNN, VGGLike
from desed_task.nnet.uclser import ProjectionHead, build_uclser_encoder, read_state_dict


def n_params(model):
    return sum(p.numel() for p in model.parameters())


def reference_input():
    """x[b,0,t,f] = 1e4 sin(0.05 (b+1) t + 0.1 f) + 3e3 cos(0.013 t f + b), float64 then float32."""
    b, t, f = np.arange(2)[:, None, None], np.arange(101)[None, :, None], np.arange(96)[None, None, :]
    x = 1e4 * np.sin(0.05 * (b + 1) * t + 0.1 * f) + 3e3 * np.cos(0.013 * t * f + b)
    return torch.from_numpy(x[:, None].astype(np.float32))


@pytest.mark.parametrize("cls, total, head", [(VGGLike, 290_292, 10_260), (UCLSERCRNN, 948_116, 1_300),
                                              (ResNet18Audio, 11_180_500, 10_260)])
def test_parameter_counts_and_shapes(cls, total, head):
    model = cls()
    assert n_params(model) == total
    assert n_params(model.classifier) == head
    assert sum(p.numel() for p in model.encoder_parameters()) == total - head
    x = torch.randn(3, 1, 101, 96)
    assert model(x).shape == (3, 20)
    assert model.embed(x).shape == (3, model.embed_dim)


@pytest.mark.parametrize("cls, name, n_keys", [(UCLSERCRNN, "CRNN", 28), (VGGLike, "VGG", 40)])
def test_key_names_and_shapes_equal_released_files(anchors, cls, name, n_keys):
    released = read_state_dict(anchors / "uclser20" / f"{name}_best.pth")
    ours = cls().state_dict()
    assert len(released) == n_keys
    assert list(ours) == list(released)
    assert all(ours[key].shape == released[key].shape for key in ours)


def test_resnet_uses_torchvision_key_names():
    keys = list(ResNet18Audio().state_dict())
    assert len(keys) == 122
    assert keys[:6] == ["conv1.weight", "bn1.weight", "bn1.bias", "bn1.running_mean", "bn1.running_var",
                        "bn1.num_batches_tracked"]
    assert keys[-2:] == ["fc.weight", "fc.bias"]
    for layer in (2, 3, 4):
        assert f"layer{layer}.0.downsample.0.weight" in keys and f"layer{layer}.0.downsample.1.running_var" in keys
    assert "layer1.0.downsample.0.weight" not in keys
    assert {k.split(".")[0] for k in keys} == {"conv1", "bn1", "layer1", "layer2", "layer3", "layer4", "fc"}
    assert "layer4.1.bn2.num_batches_tracked" in keys and "layer3.1.conv2.weight" in keys


def test_crnn_reference_output(anchors):
    model = UCLSERCRNN.load_official(anchors / "uclser20" / "CRNN_best.pth").eval()
    with torch.no_grad():
        h = model.embed(reference_input())
    np.testing.assert_allclose(h[0, :6].numpy(), [-0.0073189, -0.4003878, -0.0989914, -0.0158428, 0.0781282,
                                                  0.0668939], rtol=1e-4)
    np.testing.assert_allclose(float(h.double().sum()), 0.502580, rtol=1e-4)


def test_vgg_reference_output(anchors):
    model = VGGLike.load_official(anchors / "uclser20" / "VGG_best.pth").eval()
    with torch.no_grad():
        h = model.embed(reference_input())
        logits = model(reference_input())
    np.testing.assert_allclose(float(h.double().sum()), 222.65103, rtol=1e-4)
    np.testing.assert_allclose(float(h[0, 16]), 1.674432, rtol=1e-4)
    torch.testing.assert_close(logits, model.dense_out(h))


def test_released_heads_look_untrained(anchors):
    """The 20-class heads of the released files are nn.Linear's uniform(+-1/sqrt(fan_in)) initialisation."""
    for name, key, fan_in in (("CRNN", "dense.weight", 64), ("VGG", "dense_out.weight", 512)):
        weight = read_state_dict(anchors / "uclser20" / f"{name}_best.pth")[key]
        bound = 1 / np.sqrt(fan_in)
        assert weight.abs().max() <= bound
        np.testing.assert_allclose(float(weight.std()), bound / np.sqrt(3), rtol=0.03)


def test_wrong_or_partial_file_lists_the_keys(anchors, tmp_path):
    expected = (r"VGG_best\.pth.*missing keys \['dense\.bias'.*unexpected keys \['conv0\.bn\.bias'.*"
                r"shape mismatches \['conv1\.conv\.weight: file \(32, 32, 3, 3\)")
    with pytest.raises(KeyError, match=expected):
        UCLSERCRNN.load_official(anchors / "uclser20" / "VGG_best.pth")
    partial = read_state_dict(anchors / "uclser20" / "CRNN_best.pth")
    del partial["rnn1.bias_hh_l0"]
    torch.save(partial, tmp_path / "partial.pth")
    with pytest.raises(KeyError, match=r"partial\.pth.*missing keys \['rnn1\.bias_hh_l0'\]"):
        UCLSERCRNN.load_official(tmp_path / "partial.pth")
    with pytest.raises(KeyError, match=r"shape mismatches.*conv0\.conv\.weight"):
        VGGLike.load_official(anchors / "uclser20" / "VGG_best.pth", channels=(16, 32, 32, 64, 64, 128))
    (tmp_path / "garbage.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="garbage.pth"):
        VGGLike.load_official(tmp_path / "garbage.pth")
    with pytest.raises(FileNotFoundError):
        VGGLike.load_official(tmp_path / "absent.pth")


def test_crnn_embedding_is_last_step_product_frequency_major():
    """h = fwd(last) * bwd(last), with GRU features ordered f * C + c (checked against a manual GRU run)."""
    torch.manual_seed(0)
    model = UCLSERCRNN(channels=4, hidden=3).eval()
    x = torch.randn(2, 1, 101, 96)
    with torch.no_grad():
        maps = model.conv3(model.conv2(model.conv1(x)))  # (B, C, T, F)
        sequence = torch.stack([maps[:, :, :, f] for f in range(maps.shape[3])], dim=2)  # (B, C, F, T)
        sequence = sequence.permute(0, 3, 2, 1).reshape(2, maps.shape[2], -1)  # (B, T, F*C): f-major
        out, _ = model.rnn1(sequence)
        expected = out[:, -1, :3] * out[:, -1, 3:]
        torch.testing.assert_close(model.embed(x), expected)


def test_vgg_pools_max_before_average():
    torch.manual_seed(0)
    model = VGGLike(channels=(2, 2, 2, 2, 2, 3), embed_dim=4).eval()
    x = torch.randn(1, 1, 101, 96)
    with torch.no_grad():
        maps = x
        for index in range(6):
            maps = getattr(model, f"conv{index}")(maps)
        pooled = torch.cat([maps.flatten(2).max(-1).values, maps.flatten(2).mean(-1)], dim=1)
        torch.testing.assert_close(model.embed(x), torch.relu(model.dense1(pooled)))


def test_reset_classifier_and_factory():
    model = build_uclser_encoder("vgg_relu", n_classes=5)
    assert model(torch.randn(2, 1, 101, 96)).shape == (2, 5)
    head = model.reset_classifier(7)
    assert model.dense_out is head and model(torch.randn(2, 1, 101, 96)).shape == (2, 7)
    with pytest.raises(ValueError, match="unknown UCLSER network"):
        build_uclser_encoder("res50")


def test_projection_head_is_unit_norm():
    head = ProjectionHead(64)
    assert n_params(head) == 296_960 and n_params(ProjectionHead(512)) == 526_336
    z = head(torch.randn(5, 64))
    torch.testing.assert_close(z.norm(dim=1), torch.ones(5))
    assert list(head.state_dict())[:2] == ["net1.0.weight", "net1.0.bias"]
