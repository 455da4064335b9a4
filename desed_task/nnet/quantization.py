"""Eager-mode int8 quantisation-aware training (torch.ao) of models with a ``fuse_model`` method.

The CP-JKU recipe: fold batch norms into convs in eval mode, attach the x86/fbgemm QAT config
(per-channel symmetric int8 weights, reduced-range quint8 activations with moving-average observers),
train with fake quantisation, then convert a CPU copy to a real int8 model.
"""
from __future__ import annotations

import copy

import torch
from torch import nn
from torch.ao.quantization import convert, get_default_qat_qconfig, prepare_qat

QAT_BACKEND = "fbgemm"


def prepare_qat_model(model: nn.Module, backend: str = QAT_BACKEND) -> nn.Module:
    """Fold the model's norms (in eval mode, in place), attach the backend's QAT config, insert fake quant.

    Returns the model in training mode, ready for QAT; its folded biases stay trainable.
    """
    model.eval()
    model.fuse_model()
    model.train()
    model.qconfig = get_default_qat_qconfig(backend)
    return prepare_qat(model, inplace=True)


@torch.no_grad()
def convert_to_int8(qat_model: nn.Module, backend: str = QAT_BACKEND) -> nn.Module:
    """A real int8 CPU copy of a QAT-prepared model (the QAT model itself is untouched)."""
    torch.backends.quantized.engine = "x86" if backend == "fbgemm" and "x86" in \
        torch.backends.quantized.supported_engines else backend
    float_copy = copy.deepcopy(qat_model).cpu().eval()
    return convert(float_copy, inplace=False)


def set_observers_frozen(qat_model: nn.Module, frozen: bool) -> None:
    """Freeze (or release) the scales and zero points of every fake-quant observer."""
    qat_model.apply(torch.ao.quantization.disable_observer if frozen else torch.ao.quantization.enable_observer)
