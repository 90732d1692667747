"""NAFNet (Chen et al. 2022), "simple baselines": a UNet of nonlinear-activation-free blocks.

Parameter names follow the official code (``intro``, ``encoders``, ``downs``, ``middle_blks``,
``ups``, ``decoders``, ``ending``; blocks ``conv1..conv5``, ``sca``, ``norm1/2``, ``beta``,
``gamma``). Added for BlurDM: one ``PriorFusion`` per decoder level (``fusions``), applied at the
start of that decoder block; with ``prior_dim=0`` there are none and this is plain NAFNet.
Inputs are padded internally (replicate) to a multiple of ``max(8, 2**levels)`` and cropped back.

Official-code behaviour, for imported checkpoints (``deblurdiff.weights_import``):
``pad_mode="zeros", pad_multiple=2**levels`` is the official ``check_image_size`` (``F.pad`` with
zeros up to ``padder_size = 2 ** len(enc_blk_nums)``, basicsr/models/archs/NAFNet_arch.py), and
``tlc_base_size=384`` is ``NAFNetLocal`` (basicsr/models/archs/local_arch.py, the test-time local
converter used by options/test/GoPro/NAFNet-width*.yml: train size 256, base size 1.5 x 256): the
channel attention's global average becomes a local box average whose window is the training
crop's feature size x 1.5 at each level, replicate-padded back to the feature size.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .prior_fusion import PriorFusion


class LayerNorm2d(nn.Module):
    """LayerNorm over channels at every pixel (the official one is a custom autograd function)."""

    def __init__(self, channels: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x):
        x = F.layer_norm(x.permute(0, 2, 3, 1), x.shape[1:2], self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


class SimpleGate(nn.Module):
    """Split channels in two halves and multiply them: the nonlinearity without an activation."""

    def forward(self, x):
        a, b = x.chunk(2, dim=1)
        return a * b


class LocalAvgPool2d(nn.Module):
    """Box average over a ``kernel`` x ``kernel`` window at every valid position (integral image),
    replicate-padded back to the input size; the global average when the window covers the input.
    Test-time local statistics (TLC, Chu et al. 2021) as NAFNetLocal applies them."""

    def __init__(self, kernel: int):
        super().__init__()
        self.kernel = int(kernel)

    def forward(self, x):
        h, w = x.shape[-2:]
        if self.kernel >= h and self.kernel >= w:
            return x.mean(dim=(-2, -1), keepdim=True)
        k1, k2 = min(h, self.kernel), min(w, self.kernel)
        s = F.pad(x.cumsum(dim=-1).cumsum(dim=-2), (1, 0, 1, 0))
        out = (s[..., k1:, k2:] + s[..., :-k1, :-k2] - s[..., :-k1, k2:] - s[..., k1:, :-k2]) / (k1 * k2)
        oh, ow = out.shape[-2:]
        return F.pad(out, ((w - ow) // 2, (w - ow + 1) // 2, (h - oh) // 2, (h - oh + 1) // 2), mode="replicate")


class NAFBlock(nn.Module):
    def __init__(self, c: int, dw_expand: int = 2, ffn_expand: int = 2):
        super().__init__()
        dw = c * dw_expand
        self.conv1 = nn.Conv2d(c, dw, 1)
        self.conv2 = nn.Conv2d(dw, dw, 3, padding=1, groups=dw)
        self.conv3 = nn.Conv2d(dw // 2, c, 1)
        self.sca = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(dw // 2, dw // 2, 1))
        self.sg = SimpleGate()
        ffn = c * ffn_expand
        self.conv4 = nn.Conv2d(c, ffn, 1)
        self.conv5 = nn.Conv2d(ffn // 2, c, 1)
        self.norm1 = LayerNorm2d(c)
        self.norm2 = LayerNorm2d(c)
        self.beta = nn.Parameter(torch.zeros(1, c, 1, 1))
        self.gamma = nn.Parameter(torch.zeros(1, c, 1, 1))

    def forward(self, inp):
        x = self.sg(self.conv2(self.conv1(self.norm1(inp))))
        x = self.conv3(x * self.sca(x))
        y = inp + x * self.beta
        x = self.conv5(self.sg(self.conv4(self.norm2(y))))
        return y + x * self.gamma


def pad_to_multiple(x: torch.Tensor, multiple: int, mode: str = "replicate") -> tuple[torch.Tensor, tuple[int, int]]:
    """Pad H and W (bottom/right) up to a multiple; ``mode`` "replicate" or "zeros".
    Returns the padded tensor and the original size."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph or pw:
        x = F.pad(x, (0, pw, 0, ph), mode="constant" if mode == "zeros" else mode)
    return x, (h, w)


class NAFNet(nn.Module):
    """Image ``(B, C, H, W)`` (any size) -> restored image, learned as a residual on the input."""

    def __init__(self, img_channels: int = 3, width: int = 32, enc_blk_nums=(1, 1, 1, 28), middle_blk_num: int = 1,
                 dec_blk_nums=(1, 1, 1, 1), prior_dim: int = 0, pad_mode: str = "replicate",
                 pad_multiple: int | None = None, tlc_base_size: int = 0, tlc_train_size: int = 256,
                 fusion: str = "residual"):
        super().__init__()
        if pad_mode not in ("replicate", "zeros"):
            raise ValueError(f"pad_mode must be 'replicate' or 'zeros', got {pad_mode!r}")
        if len(enc_blk_nums) != len(dec_blk_nums):
            raise ValueError("NAFNet needs as many decoder levels as encoder levels")
        self.intro = nn.Conv2d(img_channels, width, 3, padding=1)
        self.ending = nn.Conv2d(width, img_channels, 3, padding=1)
        self.encoders, self.decoders, self.downs, self.ups = (nn.ModuleList() for _ in range(4))
        chan = width
        for num in enc_blk_nums:
            self.encoders.append(nn.Sequential(*[NAFBlock(chan) for _ in range(num)]))
            self.downs.append(nn.Conv2d(chan, 2 * chan, 2, stride=2))
            chan *= 2
        self.middle_blks = nn.Sequential(*[NAFBlock(chan) for _ in range(middle_blk_num)])
        dec_channels = []
        for num in dec_blk_nums:
            self.ups.append(nn.Sequential(nn.Conv2d(chan, chan * 2, 1, bias=False), nn.PixelShuffle(2)))
            chan //= 2
            dec_channels.append(chan)
            self.decoders.append(nn.Sequential(*[NAFBlock(chan) for _ in range(num)]))
        self.fusions = nn.ModuleList([PriorFusion(prior_dim, c, fusion) for c in dec_channels]) if prior_dim else None
        self.multiple = int(pad_multiple) if pad_multiple else max(8, 2 ** len(enc_blk_nums))
        self.pad_mode = pad_mode
        if tlc_base_size:
            self._use_local_pooling(tlc_base_size, tlc_train_size)

    def _use_local_pooling(self, base_size: int, train_size: int) -> None:
        """NAFNetLocal: each block's SCA pool averages over ``train feature size * base/train``."""
        levels = len(self.encoders)
        groups = [(i, enc) for i, enc in enumerate(self.encoders)] + [(levels, self.middle_blks)] + \
            [(levels - 1 - i, dec) for i, dec in enumerate(self.decoders)]
        for level, blocks in groups:
            kernel = (train_size >> level) * base_size // train_size
            for block in blocks:
                block.sca[0] = LocalAvgPool2d(kernel)

    def forward(self, inp: torch.Tensor, prior: torch.Tensor | None = None) -> torch.Tensor:
        x_in, (h, w) = pad_to_multiple(inp, self.multiple, self.pad_mode)
        x = self.intro(x_in)
        skips = []
        for encoder, down in zip(self.encoders, self.downs):
            x = encoder(x)
            skips.append(x)
            x = down(x)
        x = self.middle_blks(x)
        for i, (decoder, up, skip) in enumerate(zip(self.decoders, self.ups, skips[::-1])):
            x = up(x) + skip
            if self.fusions is not None:
                x = self.fusions[i](x, prior)
            x = decoder(x)
        x = self.ending(x) + x_in
        return x[..., :h, :w]
