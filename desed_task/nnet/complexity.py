"""Model complexity as the DCASE low-complexity tasks count it (NeSsi tool, i.e. torchinfo's conventions).

NeSsi calls ``torchinfo.summary(model, input_size)`` and reports ``total_params`` and
``total_mult_adds``. torchinfo counts, for every module that owns parameters:
- parameters named ``weight``/``bias`` of a module whose class name contains ``Conv``:
  ``parameters x batch x output spatial positions`` (the bias counts one MAC per output value);
- ``weight``/``bias`` of any other module (batch norm, linear): ``parameters x batch``;
- other parameter names containing ``weight``/``bias`` (recurrent layers): ``parameters x batch x
  output dim 1``; anything else (e.g. GRN ``gamma``/``beta``): parameters only, no MACs.
``macs_conv`` is the plain analytic convolution count (weights x output positions), without biases or
norms. One deliberate difference to torchinfo: QAT convs (whose fake-quant children make torchinfo
skip them) are counted like any conv here.
"""
from __future__ import annotations

import copy
import math

import torch
from torch import nn


def _owned_parameters(module: nn.Module):
    return list(module.named_parameters(recurse=False))


@torch.no_grad()
def complexity(model: nn.Module, input_shape=(1, 1, 256, 64)) -> dict[str, int]:
    """``params``, ``macs`` (NeSsi/torchinfo) and ``macs_conv`` of one forward of a zero input.

    The model runs once in its current mode on ``torch.zeros(input_shape)`` (eval mode leaves batch-norm
    statistics untouched). MACs are for the whole input batch, so use batch 1 for per-clip figures.
    """
    counts = {"macs": 0, "macs_conv": 0}

    def hook(module: nn.Module, inputs, output):
        out_shape = tuple(output.shape)
        batch, spatial = out_shape[0], math.prod(out_shape[2:])
        is_conv = "Conv" in type(module).__name__
        for name, param in _owned_parameters(module):
            if name in ("weight", "bias"):
                if is_conv:
                    counts["macs"] += param.numel() * batch * spatial
                    if name == "weight":
                        counts["macs_conv"] += param.numel() * batch * spatial
                else:
                    counts["macs"] += param.numel() * batch
            elif "weight" in name or "bias" in name:
                counts["macs"] += param.numel() * math.prod(out_shape[:2])

    handles = [module.register_forward_hook(hook) for module in model.modules() if _owned_parameters(module)]
    try:
        parameter = next(model.parameters(), None)
        device = parameter.device if parameter is not None else torch.device("cpu")
        model(torch.zeros(input_shape, device=device))
    finally:
        for handle in handles:
            handle.remove()
    params = sum(param.numel() for param in model.parameters())
    return {"params": params, "macs": counts["macs"], "macs_conv": counts["macs_conv"]}


def quantized_parameter_bytes(model: nn.Module) -> int:
    """Bytes of the parameters of a converted (int8) eager-mode model, as stored.

    Quantised convs/linears contribute their int8 weights and float32 biases (their per-channel scales and
    zero points are not counted); remaining float parameters (e.g. GRN gains) count at their own width.
    """
    total = 0
    for module in model.modules():
        if hasattr(module, "_weight_bias"):
            weight, bias = module._weight_bias()
            total += weight.numel() * weight.element_size()
            if bias is not None:
                total += bias.numel() * bias.element_size()
        for _, param in _owned_parameters(module):
            total += param.numel() * param.element_size()
    return total


def complexity_report(model: nn.Module, input_shape=(1, 1, 256, 64)) -> dict[str, dict[str, int]]:
    """Complexity of a model with ``fuse_model`` (e.g. CP-Mobile), as the DCASE 2023 Task 1 rules count it.

    ``unfused`` and ``bn_folded``: ``complexity`` of the model and of a BN-folded eval copy;
    ``int8``: ``param_bytes`` at one byte per parameter of the folded model (the DCASE convention) and
    ``stored_param_bytes`` of the actually converted int8 model (float32 biases and GRN gains included).
    """
    from desed_task.nnet.quantization import convert_to_int8, prepare_qat_model

    original = copy.deepcopy(model).cpu().eval()
    unfused = complexity(original, input_shape)
    folded = complexity(copy.deepcopy(original).fuse_model(), input_shape)
    qat = prepare_qat_model(copy.deepcopy(original))
    with torch.no_grad():
        qat(torch.zeros(input_shape))
    int8 = {"param_bytes": folded["params"], "stored_param_bytes": quantized_parameter_bytes(convert_to_int8(qat))}
    return {"unfused": unfused, "bn_folded": folded, "int8": int8}


def format_complexity_report(report: dict[str, dict[str, int]]) -> str:
    """The report as an aligned text table."""
    lines = [f"{'model':<10} {'params':>9} {'MACs (NeSsi)':>13} {'conv MACs':>11}"]
    for name in ("unfused", "bn_folded"):
        row = report[name]
        lines.append(f"{name:<10} {row['params']:>9,} {row['macs']:>13,} {row['macs_conv']:>11,}")
    int8 = report["int8"]
    lines.append(f"int8 parameter memory: {int8['param_bytes']:,} bytes at 1 byte/parameter "
                 f"({int8['stored_param_bytes']:,} bytes as stored, float32 biases included)")
    return "\n".join(lines)
