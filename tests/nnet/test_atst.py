"""ATST-Frame and ATST-SED: official names, sizes, outputs and checkpoint layouts; chunking past 10 s;
activation checkpointing."""
from pathlib import Path

import pytest
import torch

from desed_task.nnet import ATSTSED, ATSTFrame
from desed_task.utils.config import load_config

DATA = Path(__file__).parent / "data"
REPO = Path(__file__).resolve().parents[2]


def official_keys(name: str = "atst_frame_keys.tsv") -> list[tuple[str, tuple[int, ...]]]:
    rows = [line.split("\t") for line in (DATA / name).read_text().splitlines() if not line.startswith("#")]
    return [(key, tuple(int(n) for n in shape.split(",") if n)) for key, shape in rows]


def tiny(**kwargs) -> ATSTFrame:
    return ATSTFrame(embed_dim=64, depth=2, num_heads=4, **kwargs)


@pytest.fixture(scope="module")
def full_sed() -> ATSTSED:
    """The published model, built from stage2.yaml's `net:` section (built once: 86.6 M parameters)."""
    torch.manual_seed(0)
    return ATSTSED(**load_config(REPO / "confs/atst_sed/stage2.yaml")["net"]).eval()


@pytest.fixture(scope="module")
def full_model(full_sed) -> ATSTFrame:
    return full_sed.atst_frame.atst


def test_full_model_has_official_size_and_names(full_model):
    state = full_model.state_dict()
    assert [(key, tuple(value.shape)) for key, value in state.items()] == official_keys()
    assert len(state) == 138
    assert sum(p.numel() for p in full_model.parameters()) == 85_419_264
    assert len(list(full_model.buffers())) == 0


@pytest.mark.parametrize("frames, tokens", [(1001, 250), (1003, 250), (626, 156), (51, 12)])
def test_output_shape(frames, tokens):
    model = tiny().eval()
    with torch.no_grad():
        assert model(torch.randn(2, 64, frames)).shape == (2, 64, tokens)


def test_patch_flatten_is_mel_major():
    """Element [mel m, frame t] of a patch goes to input index m * 4 + t of the patch Linear."""
    model = tiny()
    features = torch.arange(64 * 8, dtype=torch.float32).reshape(1, 64, 8)
    captured = {}
    model.patch_embed.patch_embed.register_forward_pre_hook(lambda module, inputs: captured.update(x=inputs[0]))
    model(features)
    patches = captured["x"]
    assert patches.shape == (1, 2, 256)
    for token in range(2):
        for mel in (0, 5, 63):
            for frame in range(4):
                assert patches[0, token, mel * 4 + frame] == features[0, mel, token * 4 + frame]


def test_positional_slot_zero_is_unused():
    model = tiny().eval()
    x = torch.randn(1, 64, 400)
    with torch.no_grad():
        before = model(x)
        model.pos_embed[:, 0] += 100.0
        assert torch.equal(model(x), before)
        model.pos_embed[:, 1] += 1.0
        assert not torch.equal(model(x), before)


@pytest.mark.parametrize("frames", [1004, 2500, 6500])
def test_long_inputs_are_encoded_in_aligned_chunks(frames):
    model = tiny().eval()
    x = torch.randn(1, 64, frames)
    with torch.no_grad():
        out = model(x)
        expected = torch.cat([model(x[..., s:s + 1000]) for s in range(0, frames, 1000) if frames - s >= 4], dim=-1)
    assert out.shape == (1, 64, frames // 4)
    torch.testing.assert_close(out, expected, rtol=0, atol=0)


def test_audiossl_chunking_drops_the_last_frame_of_each_chunk():
    model = tiny(chunk_frames=1001).eval()
    x = torch.randn(1, 64, 2002)
    with torch.no_grad():
        out = model(x)
        torch.testing.assert_close(out[..., 250:], model(x[..., 1001:]), rtol=0, atol=0)
    assert out.shape[-1] == 500


def test_invalid_chunk_length_and_input_rank():
    with pytest.raises(ValueError, match="chunk_frames"):
        tiny(chunk_frames=1010)
    with pytest.raises(ValueError, match="n_mels, frames"):
        tiny()(torch.randn(64, 100))


def test_activation_checkpointing_gives_identical_gradients():
    torch.manual_seed(1)
    plain = tiny()
    checkpointed = tiny(checkpointing=True)
    checkpointed.load_state_dict(plain.state_dict())
    x = torch.randn(2, 64, 200)
    grads = []
    for model in (plain, checkpointed):
        model.zero_grad()
        (model(x) ** 2).mean().backward()
        grads.append({name: p.grad for name, p in model.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys() and "blocks.0.attn.qkv.weight" in grads[0]
    for name in grads[0]:
        torch.testing.assert_close(grads[1][name], grads[0][name], rtol=0, atol=0, msg=name)


def _layout(state: dict, layout: str) -> dict:
    if layout == "frame":
        weights = {f"encoder.encoder.{k}": v for k, v in state.items()}
        weights["head.linear.weight"] = torch.zeros(3)
    elif layout == "c2f":
        weights = {f"encoder.encoder.frame_encoder.{k}": v for k, v in state.items()}
        weights["encoder.encoder.teacher_module.blocks.0.norm1.weight"] = torch.zeros(3)
    else:
        weights = {f"model.teacher.encoder.{k.replace('norm_frame.', 'norm.')}": v for k, v in state.items()}
        weights["model.teacher.encoder.cls_token"] = torch.zeros(1, 1, 64)
        weights["model.student.encoder.pos_embed"] = torch.zeros(3)
    return {"state_dict": weights, "epoch": 3}


@pytest.mark.parametrize("layout", ["frame", "c2f", "pretraining"])
def test_load_official_layouts_strictly(tmp_path, layout):
    source = tiny()
    path = tmp_path / "atst.ckpt"
    torch.save(_layout(source.state_dict(), layout), path)
    loaded = ATSTFrame.load_official(path, embed_dim=64, depth=2, num_heads=4)
    for key, value in source.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key


def test_full_size_checkpoint_loads(full_model):
    state = dict(full_model.state_dict())
    state["blocks.11.mlp.fc2.bias"] = torch.full((768,), 0.5)
    full_model.load_official_state_dict(_layout(state, "frame"))
    assert torch.equal(full_model.blocks[11].mlp.fc2.bias, torch.full((768,), 0.5))


def test_mismatched_checkpoints_list_the_keys(tmp_path):
    state = tiny().state_dict()
    del state["blocks.1.attn.qkv.weight"]
    state["blocks.0.norm1.weight"] = torch.zeros(7)
    state["blocks.0.extra"] = torch.zeros(1)
    path = tmp_path / "bad.ckpt"
    torch.save(_layout(state, "frame"), path)
    with pytest.raises(KeyError) as error:
        ATSTFrame.load_official(path, embed_dim=64, depth=2, num_heads=4)
    message = str(error.value)
    assert "bad.ckpt" in message and "blocks.1.attn.qkv.weight" in message
    assert "blocks.0.extra" in message and "blocks.0.norm1.weight (7,)" in message


def test_wrong_family_and_unreadable_files(tmp_path):
    path = tmp_path / "crnn.ckpt"
    torch.save({"state_dict": {"sed_student.cnn.cnn.conv0.weight": torch.zeros(1)}}, path)
    with pytest.raises(KeyError, match="no ATST-Frame encoder weights.*sed_student.cnn"):
        ATSTFrame.load_official(path, embed_dim=64, depth=2, num_heads=4)
    with pytest.raises(FileNotFoundError, match="missing.ckpt"):
        ATSTFrame.load_official(tmp_path / "missing.ckpt")


def synthetic_weights(shapes: list[tuple[str, tuple[int, ...]]]) -> dict[str, torch.Tensor]:
    """Deterministic weights by key position (tensor i from a generator seeded with i): the recipe with
    which `atst_sed_official_outputs.pt` was computed by the official model (ATST-SED CRNN_e2e.CRNN, stage2.yaml)."""
    weights = {}
    for index, (key, shape) in enumerate(shapes):
        if key.endswith("num_batches_tracked"):
            weights[key] = torch.zeros(shape, dtype=torch.long)
            continue
        values = torch.rand(shape, generator=torch.Generator().manual_seed(index))
        if key.endswith("running_var"):
            weights[key] = values + 0.5
        elif "norm" in key and key.endswith("weight"):
            weights[key] = 1 + (values - 0.5) * 0.2
        else:
            weights[key] = (values - 0.5) * 0.1
    return weights


def test_fused_model_has_official_names_and_sizes(full_sed):
    state = full_sed.state_dict()
    assert [(key, tuple(value.shape)) for key, value in state.items()] == official_keys("atst_sed_keys.tsv")
    assert len(state) == 223
    total = sum(p.numel() for p in full_sed.parameters())
    outside = sum(p.numel() for n, p in full_sed.named_parameters() if not n.startswith("atst_frame."))
    assert (total, outside) == (86_646_500, 1_227_236)
    assert full_sed.cat_tf.in_features == 896 and hasattr(full_sed.cnn.cnn, "cg0")


def test_fused_model_equals_the_official_outputs(full_sed):
    """Outputs of the official model (run outside the project) for the same weights and inputs, to 1e-5."""
    reference = torch.load(DATA / "atst_sed_official_outputs.pt")
    full_sed.load_state_dict(synthetic_weights(official_keys("atst_sed_keys.tsv")))
    crnn_in = torch.rand((2, 128, 626), generator=torch.Generator().manual_seed(1000))
    atst_in = torch.randn((2, 64, 1001), generator=torch.Generator().manual_seed(1001)) * 0.5
    with torch.no_grad():
        strong, weak = full_sed(crnn_in, atst_in)
    assert strong.shape == (2, 10, 156) and weak.shape == (2, 10)
    torch.testing.assert_close(strong, reference["strong"], rtol=0, atol=1e-5)
    torch.testing.assert_close(weak, reference["weak"], rtol=0, atol=1e-5)


def tiny_sed(**kwargs) -> ATSTSED:
    return ATSTSED(atst={"embed_dim": 32, "depth": 2, "num_heads": 4}, nb_filters=[4, 8, 8, 8, 8, 8, 8], n_RNN_cell=8,
                   **kwargs)


@pytest.mark.parametrize("seconds", [0.5, 10.01, 10.5, 65.0])
def test_any_clip_length_runs(seconds):
    model = tiny_sed().eval()
    crnn_frames, atst_frames = int(seconds * 16000) // 256 + 1, int(seconds * 16000) // 160 + 1
    with torch.no_grad():
        strong, weak = model(torch.rand(1, 128, crnn_frames), torch.randn(1, 64, atst_frames))
    assert strong.shape == (1, 10, crnn_frames // 4) and weak.shape == (1, 10)
    assert torch.isfinite(strong).all()


def test_frozen_atst_stays_in_eval_mode_without_gradients():
    model = tiny_sed(freeze_atst=True).train()
    assert not model.atst_frame.atst.training and model.cnn.training
    assert not any(p.requires_grad for p in model.atst_frame.parameters())
    strong, _ = model(torch.rand(2, 128, 200), torch.randn(2, 64, 313))
    strong.mean().backward()
    assert model.cat_tf.weight.grad is not None and model.atst_frame.atst.pos_embed.grad is None


def test_atst_init_loads_the_official_encoder(tmp_path):
    source = ATSTFrame(embed_dim=32, depth=2, num_heads=4)
    path = tmp_path / "atst_as2M.ckpt"
    torch.save(_layout(source.state_dict(), "frame"), path)
    model = tiny_sed(atst_init=str(path))
    assert torch.equal(model.atst_frame.atst.blocks[1].attn.qkv.weight, source.blocks[1].attn.qkv.weight)
