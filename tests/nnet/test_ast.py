"""AST: official size and names, tokens and outputs, front end, the one key mapping (original and Hugging Face)."""
import pytest
import torch

from desed_task.nnet import AST
from desed_task.nnet.ast import FBANK_MEAN, FBANK_STD, ast_official_state_dict


def test_parameter_count_and_official_keys():
    state = AST().state_dict()
    assert sum(v.numel() for v in state.values()) == 88_132_063 and len(state) == 159
    assert state["v.pos_embed"].shape == (1, 1214, 768)
    assert state["v.patch_embed.proj.weight"].shape == (768, 1, 16, 16)
    assert state["v.blocks.11.attn.qkv.weight"].shape == (2304, 768)
    assert state["mlp_head.1.weight"].shape == (527, 768)


def test_ten_second_shapes_and_padded_frontend():
    torch.manual_seed(0)
    net = AST(depth=1).eval()
    audio = torch.randn(2, 160000)
    fbank = net.fbank(audio)
    assert fbank.shape == (2, 1024, 128)
    torch.testing.assert_close(fbank[:, 998:], torch.full((2, 26, 128), -FBANK_MEAN / (2 * FBANK_STD)))
    torch.testing.assert_close(net.fbank(audio + 3.0), fbank, atol=2e-4, rtol=0)  # waveform mean removed
    with torch.no_grad():
        out = net(audio)
    assert out["frame"].shape == (2, 768, 1214) and out["global"].shape == (2, 527)


TINY = {"dim": 32, "depth": 2, "heads": 4, "n_classes": 5, "target_frames": 128, "n_mels": 32}


def tiny():
    torch.manual_seed(1)
    return AST(**TINY).eval()


def to_hugging_face(state):
    """Our names -> ASTForAudioClassification names (written from the HF conversion table)."""
    hf = {}
    for key, value in state.items():
        if key.startswith("v.head"):
            continue
        if ".attn.qkv." in key:
            layer, kind = key.split(".")[2], key.split(".")[-1]
            for name, part in zip(("query", "key", "value"), value.chunk(3, dim=0)):
                hf[f"audio_spectrogram_transformer.encoder.layer.{layer}.attention.attention.{name}.{kind}"] = part
            continue
        new = (key.replace("v.cls_token", "embeddings.cls_token").replace("v.dist_token", "embeddings.distillation_token")
               .replace("v.pos_embed", "embeddings.position_embeddings")
               .replace("v.patch_embed.proj", "embeddings.patch_embeddings.projection")
               .replace("v.blocks.", "encoder.layer.").replace(".norm1.", ".layernorm_before.")
               .replace(".norm2.", ".layernorm_after.").replace(".attn.proj.", ".attention.output.dense.")
               .replace(".mlp.fc1.", ".intermediate.dense.").replace(".mlp.fc2.", ".output.dense.")
               .replace("v.norm.", "layernorm.").replace("mlp_head.0.", "classifier.layernorm.")
               .replace("mlp_head.1.", "classifier.dense."))
        hf[new if new.startswith("classifier.") else "audio_spectrogram_transformer." + new] = value
    return hf


def test_official_and_hugging_face_files_load_to_the_same_model(tmp_path):
    source = tiny()
    audio = torch.randn(1, 16000)
    with torch.no_grad():
        expected = source(audio)
    torch.save({f"module.{k}": v for k, v in source.state_dict().items()}, tmp_path / "audioset_10_10_0.4593.pth")
    torch.save(to_hugging_face(source.state_dict()), tmp_path / "hf.pth")
    for name in ("audioset_10_10_0.4593.pth", "hf.pth"):
        torch.manual_seed(2)  # initial weights other than the source's
        with torch.no_grad():
            out = AST.load_official(tmp_path / name, **TINY).eval()(audio)
        torch.testing.assert_close(out["frame"], expected["frame"])
        torch.testing.assert_close(out["global"], expected["global"])
    assert set(ast_official_state_dict(to_hugging_face(source.state_dict()))) == {
        k for k in source.state_dict() if not k.startswith("v.head")}


def test_random_head_as_the_2022_wrapper_and_errors(tmp_path):
    source = tiny()
    torch.save({f"module.{k}": v for k, v in source.state_dict().items()}, tmp_path / "ast.pth")
    net = AST.load_official(tmp_path / "ast.pth", audioset_head=False, **TINY)
    torch.testing.assert_close(net.v.blocks[1].mlp.fc2.weight, source.v.blocks[1].mlp.fc2.weight)
    assert not torch.allclose(net.mlp_head[1].weight, source.mlp_head[1].weight)
    torch.save({"module.v.cls_tok": torch.zeros(1)}, tmp_path / "bad.pth")
    with pytest.raises(KeyError, match="bad.pth"):
        AST.load_official(tmp_path / "bad.pth", **TINY)
    with pytest.raises(FileNotFoundError, match="audioset_10_10_0.4593.pth"):
        AST.load_official(tmp_path / "nothing.pth", **TINY)
