"""CP-Mobile: architecture, the authors' checkpoint loaded strictly by name, reference logits, fusion."""
import copy

import pytest
import torch

from desed_task.nnet import CPMobile
from desed_task.nnet.cp_mobile import make_divisible

REFERENCE_LOGITS = [-4.07035, 7.34540, -7.48780, 1.97125, -1.81613, -8.00855, -1.88756, 2.69885, -3.88534, -0.47476]
CHECKPOINT = "cpjku_dcase23/cp_mobile_c0a7nzin_epoch149.ckpt"


@pytest.fixture(scope="module")
def official(anchors):
    return CPMobile.load_official(anchors / CHECKPOINT).eval()


def test_make_divisible_widths():
    assert [make_divisible(32 * 2.3 ** s, 8) for s in range(3)] == [32, 72, 168]
    assert make_divisible(96) == 96 and make_divisible(216) == 216 and make_divisible(3) == 8


def test_published_configuration_shapes_and_parameters():
    model = CPMobile()
    assert sum(p.numel() for p in model.parameters()) == 126_952
    groups = {"in_c": 2_456, "stages.s1.b1": 7_458, "stages.s1.b2": 7_458, "stages.s1.b3": 7_458,
              "stages.s2.b4": 11_378, "stages.s2.b5": 34_058, "stages.s3.b6": 54_986, "feed_forward": 1_700}
    for prefix, count in groups.items():
        assert sum(p.numel() for n, p in model.named_parameters() if n.startswith(prefix + ".")) == count, prefix
    assert model(torch.randn(3, 1, 256, 64)).shape == (3, 10)
    assert model.stages.s1.b2.shortcut[0].stride == (2, 2) and model.stages.s2.b4.shortcut is None


def test_official_checkpoint_keys_and_reference_logits(official, anchors):
    state = torch.load(anchors / CHECKPOINT, map_location="cpu", weights_only=True)["state_dict"]
    assert list(official.state_dict()) == [key[len("model."):] for key in state]
    torch.manual_seed(0)
    x = torch.randn(2, 1, 256, 64)
    with torch.no_grad():
        logits = official(x)
    assert torch.allclose(logits[0], torch.tensor(REFERENCE_LOGITS), atol=1e-4)
    assert float(official.stages.s2.b5.after_block_norm.gamma) == pytest.approx(2.1011, abs=1e-4)


def test_load_official_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.ckpt"):
        CPMobile.load_official(tmp_path / "missing.ckpt")
    state = {f"model.{k}": v for k, v in CPMobile().state_dict().items()}
    state.pop("model.feed_forward.0.weight")
    torch.save({"state_dict": state}, tmp_path / "partial.ckpt")
    with pytest.raises(KeyError, match="feed_forward.0.weight"):
        CPMobile.load_official(tmp_path / "partial.ckpt")


def test_fused_model_matches_and_keeps_biases_trainable(official):
    fused = copy.deepcopy(official).fuse_model()
    assert sum(p.numel() for p in fused.parameters()) == 124_862
    assert fused.in_c[0][0][0].bias.requires_grad and fused.feed_forward[0].bias.requires_grad
    x = torch.randn(4, 1, 256, 64)
    with torch.no_grad():
        assert torch.allclose(fused(x), official(x), atol=1e-4)
