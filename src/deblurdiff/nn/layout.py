"""The channels_last inference layout of DIVD's UNet and the 1x1 convolution that stays fast in it.

Training and the reference inference path run NCHW; ``DIVD.restore`` runs a copy of the UNet
marked by :func:`set_inference_path` on ``channels_last`` maps (pixel-major memory), where oneDNN
convolves without reordering and ``LayerNorm2d``'s permute is a view instead of a copy. The marked
modules take their inference variants (no autograd: some work in place); the training modules,
with the same weights and state-dict names, never do.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

#: ``restore(precision=)`` choices of the methods with a fast inference path (DIVD, VDD).
INFERENCE_PRECISIONS = ("auto", "bf16", "fp32", "reference")


def channels_last(x: torch.Tensor) -> bool:
    """A 4-D map stored pixel-major (``torch.channels_last``) and not also plain-contiguous: the
    layout of DIVD's inference path (oneDNN's convolutions take it without reordering)."""
    return x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last)


def set_inference_path(module: nn.Module, enabled: bool = True) -> nn.Module:
    """Mark every submodule of ``module`` to take its inference variant (``module.inference_path``)."""
    for sub in module.modules():
        sub.inference_path = enabled
    return module


def inference_path(module: nn.Module) -> bool:
    return bool(getattr(module, "inference_path", False))


class PointwiseConv2d(nn.Conv2d):
    """A 1x1 convolution (same parameters and state-dict names as ``nn.Conv2d(cin, cout, 1)``) that
    runs as a matrix product over the channels of a float32 ``channels_last`` map.

    For a batch below 16 PyTorch sends float32 1x1 convolutions to ``_slow_conv2d`` (im2col plus
    copies), which for a channels_last input costs several times the product itself; the
    ``(pixels, C)`` view of such a map is already the matrix ``F.linear`` wants, so no copy is made.
    Only in a module marked by :func:`set_inference_path`; other inputs (bf16, which oneDNN
    convolves fast) and unmarked modules (training, the reference path) take the convolution."""

    def __init__(self, in_channels: int, out_channels: int, bias: bool = True):
        super().__init__(in_channels, out_channels, 1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if inference_path(self) and x.dtype == torch.float32 and channels_last(x):
            weight = self.weight.view(self.out_channels, self.in_channels)
            return F.linear(x.permute(0, 2, 3, 1), weight, self.bias).permute(0, 3, 1, 2)
        return super().forward(x)


def bf16_is_fast(device: torch.device) -> bool:
    """Whether bf16 convolutions and matmuls run on native kernels (CPU: AVX512-BF16 or AMX via
    oneDNN; CUDA: compute capability 8+); elsewhere bf16 is emulated and slower than float32."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        try:
            return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
        except (AttributeError, RuntimeError):
            return False
    return False


def to_channels_last(module: nn.Module) -> nn.Module:
    """``module.to(memory_format=torch.channels_last)`` for its 4-D tensors only: a 3D UNet's 5-D
    temporal kernels (``Conv3d``), which that call refuses, keep their layout."""
    for tensor in list(module.parameters()) + list(module.buffers()):
        if tensor.dim() == 4:
            tensor.data = tensor.data.contiguous(memory_format=torch.channels_last)
    return module
