"""NeSsi/torchinfo-convention complexity of CP-Mobile: the published figures, exactly."""
import torch
from torch import nn

from desed_task.nnet import CPMobile, complexity
from desed_task.nnet.complexity import complexity_report, format_complexity_report


def test_cp_mobile_figures_unfused_and_folded():
    model = CPMobile().eval()
    assert complexity(model, (1, 1, 256, 64)) == {"params": 126_952, "macs": 28_893_268, "macs_conv": 28_889_088}
    model.fuse_model()
    assert complexity(model, (1, 1, 256, 64)) == {"params": 124_862, "macs": 29_561_088, "macs_conv": 28_889_088}


def test_conventions_on_a_small_model():
    """conv weight and bias x output positions, BN and linear parameters x batch, batch scales all."""
    model = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.BatchNorm2d(2), nn.Flatten(), nn.Linear(2 * 4 * 5, 3))
    figures = complexity(model.eval(), (2, 1, 4, 5))
    conv = (2 * 9 + 2) * 4 * 5 * 2
    assert figures == {"params": 20 + 4 + 123, "macs": conv + 4 * 2 + 123 * 2, "macs_conv": 2 * 9 * 20 * 2}


def test_training_mode_statistics_untouched_in_eval():
    model = CPMobile().eval()
    before = model.in_c[0][1].running_mean.clone()
    complexity(model)
    assert torch.equal(before, model.in_c[0][1].running_mean)


def test_report_with_int8_memory():
    report = complexity_report(CPMobile())
    assert report["bn_folded"]["params"] == 124_862
    # int8: 1 byte per folded parameter (DCASE); as stored: 122,760 int8 weights + 2,090 float32 biases + 12 GRN
    assert report["int8"] == {"param_bytes": 124_862, "stored_param_bytes": 122_760 + 4 * 2_090 + 4 * 12}
    assert "29,561,088" in format_complexity_report(report)
