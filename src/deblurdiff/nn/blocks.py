"""Time-conditioned NAFNet-style convolution blocks for diffusion UNets.

NAFNet (Chen et al., 2022) blocks -- LayerNorm, 1x1 expand, 3x3 depth-wise conv, SimpleGate
(split channels, multiply), simplified channel attention, 1x1 project, then a gated 1x1 FFN --
give the best restoration quality per FLOP of the common CNN blocks and have no nonlinearity
beyond the gates, which makes them train quickly on a CPU. A diffusion denoiser also needs the
noise level: it enters as a per-channel scale and shift of the first normalised activation
(adaptive group/layer norm, as in diffusers' ResnetBlock2D "scale_shift" mode). diffusers has no
NAFNet block, hence this file (the BlurDM backbone's plain NAFNet lives in ``nn/nafnet.py``).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .layout import PointwiseConv2d, inference_path
from .wtsa import LayerNorm2d


class SimpleGate(nn.Module):
    """Split the channels in two halves and multiply them (NAFNet's activation)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = x.chunk(2, dim=1)
        return a * b


class TimeNAFBlock(nn.Module):
    """NAFNet block whose first norm is modulated by the timestep embedding (``(1+scale)*x + shift``)."""

    def __init__(self, channels: int, time_dim: int, expand: int = 2, ffn_expand: int = 2):
        super().__init__()
        dw = channels * expand
        self.norm1 = LayerNorm2d(channels)
        self.time_proj = nn.Linear(time_dim, 2 * channels)
        nn.init.zeros_(self.time_proj.weight)
        nn.init.zeros_(self.time_proj.bias)
        self.conv1 = PointwiseConv2d(channels, dw)
        self.dwconv = nn.Conv2d(dw, dw, 3, padding=1, groups=dw)
        self.gate = SimpleGate()
        self.sca = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(dw // 2, dw // 2, 1))
        self.conv2 = PointwiseConv2d(dw // 2, channels)
        self.norm2 = LayerNorm2d(channels)
        ffn = channels * ffn_expand
        self.ffn_in = PointwiseConv2d(channels, ffn)
        self.ffn_out = PointwiseConv2d(ffn // 2, channels)
        self.beta = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.gamma = nn.Parameter(torch.zeros(1, channels, 1, 1))

    def forward(self, x: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        """``x``: (N, C, H, W); ``temb``: (N, time_dim) (one row per image of the batch)."""
        scale, shift = self.time_proj(temb)[:, :, None, None].chunk(2, dim=1)
        if inference_path(self) and x.device.type == "cpu" and bool((temb[1:] == temb[:1]).all()):
            # Inference (one timestep for the whole batch): the modulation folded into
            # the norm's affine, (LN(x) w + b)(1 + s) + h = LN(x) [w (1 + s)] + [b (1 + s) + h],
            # which saves two full passes over the map.
            gain = 1 + scale[0, :, 0, 0]
            y = F.layer_norm(x.permute(0, 2, 3, 1), x.shape[1:2], self.norm1.weight * gain,
                             self.norm1.bias * gain + shift[0, :, 0, 0], self.norm1.eps).permute(0, 3, 1, 2)
        else:
            y = self.norm1(x) * (1 + scale) + shift
        y = self.gate(self.dwconv(self.conv1(y)))
        y = self.conv2(y * self.sca(y))
        x = x + self.beta * y
        y = self.ffn_out(self.gate(self.ffn_in(self.norm2(x))))
        return x + self.gamma * y

