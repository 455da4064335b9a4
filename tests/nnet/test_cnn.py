import pytest
import torch

from desed_task.nnet.cnn import CNN, GLU, FastDropout, fold_for_inference


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


@pytest.mark.parametrize("activation", ["glu", "cg"])
def test_folded_for_inference_gives_the_same_outputs_without_batch_norms(activation):
    """Batch norms (with trained-looking statistics) folded into the convolutions: the eval-mode outputs are
    unchanged, the block names kept, the original model untouched, the folded maps channels-last."""
    torch.manual_seed(0)
    model = CNN(activation=activation, nb_filters=(4, 8, 8), kernel_size=(3,) * 3, padding=(1,) * 3,
                stride=(1,) * 3, pooling=((2, 2), (1, 2), (1, 2)))
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-1, 1)
            module.running_var.uniform_(0.5, 2)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.5, 0.5)
    model.eval()
    x = torch.randn(3, 1, 40, 64)
    folded = fold_for_inference(model)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    assert [name for name, _ in folded.cnn.named_children()] == [name for name, _ in model.cnn.named_children()]
    with torch.no_grad():
        output = folded(x)
        torch.testing.assert_close(output, model(x), atol=1e-5, rtol=1e-5)
    assert output.is_contiguous(memory_format=torch.channels_last)


def test_glu_without_gradients_equals_the_differentiable_path_and_leaves_its_input():
    torch.manual_seed(0)
    glu = GLU(6)
    x = torch.randn(2, 6, 5, 4, requires_grad=True)
    with_grad = glu(x)
    with_grad.sum().backward()
    assert x.grad is not None
    for layout in (torch.contiguous_format, torch.channels_last):
        copy = x.detach().clone().contiguous(memory_format=layout)
        before = copy.clone()
        with torch.no_grad():
            torch.testing.assert_close(glu(copy), with_grad.detach())
        assert torch.equal(copy, before)
