"""MIMO-UNet (Cho et al. 2021): multi-input multi-output UNet with coarse-to-fine outputs.

Names follow the official code (``Encoder``, ``Decoder``, ``feat_extract``, ``FAM1/2``,
``SCM1/2``, ``AFFs``, ``Convs``, ``ConvsOut``). ``forward`` returns the three outputs at scales
1/4, 1/2, 1 (each the residual plus the correspondingly downscaled input). Added for BlurDM: a
``PriorFusion`` at the start of each decoder block (``fusions``), identity when untrained.
Inputs are padded internally (replicate) to a multiple of 8 and the outputs cropped back.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .nafnet import pad_to_multiple
from .prior_fusion import PriorFusion


class BasicConv(nn.Module):
    def __init__(self, in_channel, out_channel, kernel_size, stride=1, bias=True, relu=True, transpose=False):
        super().__init__()
        if transpose:
            layers = [nn.ConvTranspose2d(in_channel, out_channel, kernel_size, stride=stride,
                                         padding=kernel_size // 2 - 1, bias=bias)]
        else:
            layers = [nn.Conv2d(in_channel, out_channel, kernel_size, stride=stride, padding=kernel_size // 2,
                                bias=bias)]
        if relu:
            layers.append(nn.ReLU(inplace=True))
        self.main = nn.Sequential(*layers)

    def forward(self, x):
        return self.main(x)


class ResBlock(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.main = nn.Sequential(BasicConv(channels, channels, 3), BasicConv(channels, channels, 3, relu=False))

    def forward(self, x):
        return self.main(x) + x


class EBlock(nn.Module):
    def __init__(self, channels, num_res=8):
        super().__init__()
        self.layers = nn.Sequential(*[ResBlock(channels) for _ in range(num_res)])

    def forward(self, x):
        return self.layers(x)


DBlock = EBlock


class AFF(nn.Module):
    """Asymmetric feature fusion: all encoder scales -> one."""

    def __init__(self, in_channel, out_channel):
        super().__init__()
        self.conv = nn.Sequential(BasicConv(in_channel, out_channel, 1), BasicConv(out_channel, out_channel, 3,
                                                                                     relu=False))

    def forward(self, x1, x2, x4):
        return self.conv(torch.cat([x1, x2, x4], dim=1))


class SCM(nn.Module):
    """Shallow convolutional module: features of a downscaled input image."""

    def __init__(self, out_plane, img_channels=3):
        super().__init__()
        self.main = nn.Sequential(BasicConv(img_channels, out_plane // 4, 3), BasicConv(out_plane // 4, out_plane // 2, 1),
                                  BasicConv(out_plane // 2, out_plane // 2, 3),
                                  BasicConv(out_plane // 2, out_plane - img_channels, 1))
        self.conv = BasicConv(out_plane, out_plane, 1, relu=False)

    def forward(self, x):
        return self.conv(torch.cat([x, self.main(x)], dim=1))


class FAM(nn.Module):
    """Feature attention module: encoder features modulated by the SCM features."""

    def __init__(self, channel):
        super().__init__()
        self.merge = BasicConv(channel, channel, 3, relu=False)

    def forward(self, x1, x2):
        return x1 + self.merge(x1 * x2)


def _half(x):
    return F.interpolate(x, scale_factor=0.5)


def _double(x):
    return F.interpolate(x, scale_factor=2)


class MIMOUNet(nn.Module):
    """Image ``(B, C, H, W)`` -> ``[out_1/4, out_1/2, out_1]``."""

    def __init__(self, img_channels: int = 3, base_channel: int = 32, num_res: int = 8, prior_dim: int = 0,
                 fusion: str = "residual"):
        super().__init__()
        b = base_channel
        self.Encoder = nn.ModuleList([EBlock(b, num_res), EBlock(2 * b, num_res), EBlock(4 * b, num_res)])
        self.feat_extract = nn.ModuleList([
            BasicConv(img_channels, b, 3), BasicConv(b, 2 * b, 3, stride=2), BasicConv(2 * b, 4 * b, 3, stride=2),
            BasicConv(4 * b, 2 * b, 4, stride=2, transpose=True), BasicConv(2 * b, b, 4, stride=2, transpose=True),
            BasicConv(b, img_channels, 3, relu=False)])
        self.Decoder = nn.ModuleList([DBlock(4 * b, num_res), DBlock(2 * b, num_res), DBlock(b, num_res)])
        self.Convs = nn.ModuleList([BasicConv(4 * b, 2 * b, 1), BasicConv(2 * b, b, 1)])
        self.ConvsOut = nn.ModuleList([BasicConv(4 * b, img_channels, 3, relu=False),
                                       BasicConv(2 * b, img_channels, 3, relu=False)])
        self.AFFs = nn.ModuleList([AFF(7 * b, b), AFF(7 * b, 2 * b)])
        self.FAM1 = FAM(4 * b)
        self.SCM1 = SCM(4 * b, img_channels)
        self.FAM2 = FAM(2 * b)
        self.SCM2 = SCM(2 * b, img_channels)
        self.fusions = nn.ModuleList([PriorFusion(prior_dim, c, fusion) for c in (4 * b, 2 * b, b)]) if prior_dim else None
        self.multiple = 8

    def _fuse(self, i, x, prior):
        return x if self.fusions is None else self.fusions[i](x, prior)

    def forward(self, inp: torch.Tensor, prior: torch.Tensor | None = None) -> list[torch.Tensor]:
        x, (h, w) = pad_to_multiple(inp, self.multiple)
        x_2 = _half(x)
        x_4 = _half(x_2)
        z2 = self.SCM2(x_2)
        z4 = self.SCM1(x_4)
        res1 = self.Encoder[0](self.feat_extract[0](x))
        z = self.FAM2(self.feat_extract[1](res1), z2)
        res2 = self.Encoder[1](z)
        z = self.FAM1(self.feat_extract[2](res2), z4)
        z = self.Encoder[2](z)
        z12, z21, z42 = _half(res1), _double(res2), _double(z)
        z41 = _double(z42)
        res2 = self.AFFs[1](z12, res2, z42)
        res1 = self.AFFs[0](res1, z21, z41)

        z = self.Decoder[0](self._fuse(0, z, prior))
        out4 = self.ConvsOut[0](z) + x_4
        z = self.feat_extract[3](z)
        z = self.Convs[0](torch.cat([z, res2], dim=1))
        z = self.Decoder[1](self._fuse(1, z, prior))
        out2 = self.ConvsOut[1](z) + x_2
        z = self.feat_extract[4](z)
        z = self.Convs[1](torch.cat([z, res1], dim=1))
        z = self.Decoder[2](self._fuse(2, z, prior))
        out1 = self.feat_extract[5](z) + x
        return [out4[..., :(h + 3) // 4, :(w + 3) // 4], out2[..., :(h + 1) // 2, :(w + 1) // 2], out1[..., :h, :w]]
