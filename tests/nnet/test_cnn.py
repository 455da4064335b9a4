import pytest
import torch

from desed_task.nnet.cnn import CNN, FastDropout


def test_fast_dropout_is_identity_in_eval_and_for_p_zero():
    x = torch.randn(4, 8, 16, 16)
    assert torch.equal(FastDropout(0.5).eval()(x), x)
    assert torch.equal(FastDropout(0.0).train()(x), x)
    assert torch.equal(FastDropout(1.0).train()(x), torch.zeros_like(x))


@pytest.mark.parametrize("p", [0.2, 0.5])
def test_fast_dropout_keeps_the_right_share_and_preserves_the_mean(p):
    torch.manual_seed(0)
    x = torch.ones(64, 8, 64, 64)
    out = FastDropout(p).train()(x)
    kept = out != 0
    assert kept.float().mean().item() == pytest.approx(1 - p, abs=0.005)
    assert torch.allclose(out[kept], torch.full_like(out[kept], 1 / (1 - p)))
    assert out.mean().item() == pytest.approx(1.0, abs=0.01)


def test_cnn_blocks_use_fast_dropout_under_the_official_names():
    cnn = CNN(conv_dropout=0.5)
    for i in range(7):
        assert isinstance(getattr(cnn.cnn, f"dropout{i}"), FastDropout)
