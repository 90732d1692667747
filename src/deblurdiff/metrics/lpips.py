"""LPIPS v0.1 (Zhang et al. 2018) in plain PyTorch, AlexNet or VGG16 backbone.

Written here rather than imported because the ``lpips`` package needs torchvision (which this
project never depends on) and downloads weights at construction. The backbone is built with
torchvision's ``features`` indices so official weight files map one to one; weights come from
``deblurdiff.metrics.weights`` (``deblurdiff weights lpips``). Without them, construction raises
``MissingWeightsError``: LPIPS is reported as unavailable, never as a made-up number.
"""
from __future__ import annotations

import torch
from torch import nn

from ..tensors import to_model
from .image import check_pair
from .weights import CONV_INDICES, load_lpips_state

# (out_channels, kernel, stride, padding) per conv; "M" is a 3x3/2 (alex) or 2x2/2 (vgg) max-pool.
_ALEX = [(64, 11, 4, 2), "M", (192, 5, 1, 2), "M", (384, 3, 1, 1), (256, 3, 1, 1), (256, 3, 1, 1)]
_VGG = [(64, 3, 1, 1), (64, 3, 1, 1), "M", (128, 3, 1, 1), (128, 3, 1, 1), "M", (256, 3, 1, 1), (256, 3, 1, 1),
        (256, 3, 1, 1), "M", (512, 3, 1, 1), (512, 3, 1, 1), (512, 3, 1, 1), "M", (512, 3, 1, 1), (512, 3, 1, 1),
        (512, 3, 1, 1)]
# The ReLUs whose outputs LPIPS compares (alex relu1..5; vgg relu1_2, 2_2, 3_3, 4_3, 5_3).
_TAPS = {"alex": (1, 4, 7, 9, 11), "vgg": (3, 8, 15, 22, 29)}


def _backbone(net: str) -> nn.Sequential:
    layers, channels = [], 3
    for spec in _ALEX if net == "alex" else _VGG:
        if spec == "M":
            layers.append(nn.MaxPool2d(3, 2) if net == "alex" else nn.MaxPool2d(2, 2))
        else:
            out, k, s, p = spec
            layers += [nn.Conv2d(channels, out, k, s, p), nn.ReLU(inplace=False)]
            channels = out
    return nn.Sequential(*layers)


class LPIPS(nn.Module):
    """Learned perceptual distance; ``forward(pred, target)`` takes [0, 1] images, returns (B,)."""

    def __init__(self, net: str = "alex", state: dict | None = None):
        super().__init__()
        state = load_lpips_state(net) if state is None else state
        self.net = net
        self.features = _backbone(net)
        widths = [self.features[i].out_channels for i in CONV_INDICES[net]]
        tap_widths = [widths[j] for j in ((0, 1, 2, 3, 4) if net == "alex" else (1, 3, 6, 9, 12))]
        for k, c in enumerate(tap_widths):
            self.register_module(f"lin{k}", nn.Conv2d(c, 1, 1, bias=False))
        # ImageNet statistics expressed in [-1, 1] units (the ``ScalingLayer`` of LPIPS).
        self.register_buffer("shift", torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1), persistent=False)
        self.load_state_dict(state)
        self.eval().requires_grad_(False)

    def _taps(self, x: torch.Tensor) -> list[torch.Tensor]:
        out, taps = [], set(_TAPS[self.net])
        for i, layer in enumerate(self.features[: max(taps) + 1]):
            x = layer(x)
            if i in taps:
                out.append(x)
        return out

    def forward(self, pred: torch.Tensor, target: torch.Tensor, quantize: bool = True) -> torch.Tensor:
        check_pair(pred, target)
        both = torch.cat([pred, target]).clamp(0, 1)
        if quantize:  # same 8-bit rounding as PSNR/SSIM: score what a saved image holds
            both = torch.round(both * 255) / 255
        x = (to_model(both) - self.shift) / self.scale
        total = 0.0
        for k, f in enumerate(self._taps(x)):
            f = f / (f.pow(2).sum(dim=1, keepdim=True).sqrt() + 1e-10)
            fp, ft = f.chunk(2)
            total = total + getattr(self, f"lin{k}")((fp - ft) ** 2).mean(dim=(2, 3))
        return total.flatten()
