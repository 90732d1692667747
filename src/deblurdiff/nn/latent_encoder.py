"""BlurDM's latent encoder LE: a pair of images -> one compact prior vector.

``PixelUnshuffle(4)`` of each input -> concat -> conv to ``width`` -> ``resblocks`` ResBlocks ->
convs ``width -> 2 width -> 2 width -> dim`` -> global average pool -> MLP ``dim -> dim -> dim``
-> LayerNorm without affine parameters (official: width 64, dim 256, 6 ResBlocks, no norm).

The final norm is ours: it fixes the latent's scale at unit RMS. Without it the tiny encoders'
latents came out near 0.14 RMS, below BlurDM's start noise ``beta_bar_T = 0.18``, so the chain
began from noise rather than from ``Z_blur + small noise``. On PSNR alone it did not pay (tiny
NAFNet, 1000 backbone steps: 26.81 dB without it, 26.78 with it); with the fan-in-scaled fusion
of ``prior_fusion.py`` the model reaches 26.85, level with the backbone alone. It has no
parameters, so official weights still load; ``norm=False`` drops it (the official encoder,
which imported checkpoints use).

``norm="batch"`` standardises each latent dimension across the batch instead (``BatchNorm1d``
without affine parameters; running statistics at inference). Why: a globally pooled feature is
nearly the same vector for every image, and a per-vector norm keeps it so. Measured on 32
held-out 128 px crops: at initialisation the part of the latent that varies between images is
0.1% of its energy; in the shipped BlurDM, trained 200 stage-1 steps, 0.05%; after 6000 stage-1
steps still 0.14%. There the backbone scored the same with every image's own sharp prior, with
the priors shuffled between images and with their mean (31.21 dB each): the PFMs had learnt a
constant bias, not a prior. Standardised across images, every dimension varies at unit scale
from the first step. Measured, the same 2500 stage-1 steps later it did not help either: own,
shuffled and mean latents tied at 30.96 dB, and with the running statistics of inference the
latent's image-to-image part had fallen to 0.005%. Kept as an option for that comparison;
``layer`` stays the default.

The sharp encoder is ``LE(blur, sharp)``, the blur encoder ``LE(blur, blur)``: the same
architecture with separate weights.
"""
from __future__ import annotations

import torch
from einops import reduce
from torch import nn

from .nafnet import pad_to_multiple


NORMS = ("layer", "batch", "none")
NORM_ALIASES = {True: "layer", False: "none"}


class ResBlock(nn.Module):
    """conv - LeakyReLU - conv, plus the identity."""

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1), nn.LeakyReLU(0.1, inplace=True),
                                  nn.Conv2d(channels, channels, 3, padding=1))

    def forward(self, x):
        return x + self.body(x)


class LatentEncoder(nn.Module):
    """Two images ``(B, C, H, W)`` in [-1, 1] -> ``(B, dim)`` (replicate-padded to a multiple of ``downscale``)."""

    def __init__(self, in_channels: int = 3, inputs: int = 2, width: int = 64, dim: int = 256,
                 resblocks: int = 6, downscale: int = 4, norm: bool | str = True):
        super().__init__()
        norm = NORM_ALIASES.get(norm, norm)
        if norm not in NORMS:
            raise ValueError(f"latent norm must be one of {NORMS} (or True / False), got {norm!r}")
        self.downscale = downscale
        self.unshuffle = nn.PixelUnshuffle(downscale)
        act = lambda: nn.LeakyReLU(0.1, inplace=True)  # noqa: E731
        self.head = nn.Sequential(nn.Conv2d(in_channels * inputs * downscale ** 2, width, 3, padding=1), act())
        self.body = nn.Sequential(*[ResBlock(width) for _ in range(resblocks)])
        self.tail = nn.Sequential(nn.Conv2d(width, 2 * width, 3, padding=1), act(),
                                  nn.Conv2d(2 * width, 2 * width, 3, padding=1), act(),
                                  nn.Conv2d(2 * width, dim, 3, padding=1), act())
        self.mlp = nn.Sequential(nn.Linear(dim, dim), act(), nn.Linear(dim, dim), act())
        self.norm = {"layer": lambda: nn.LayerNorm(dim, elementwise_affine=False),
                     "batch": lambda: nn.BatchNorm1d(dim, affine=False),
                     "none": nn.Identity}[norm]()

    def forward(self, *images: torch.Tensor) -> torch.Tensor:
        x = torch.cat([self.unshuffle(pad_to_multiple(im, self.downscale)[0]) for im in images], dim=1)
        x = self.tail(self.body(self.head(x)))
        return self.norm(self.mlp(reduce(x, "b c h w -> b c", "mean")))
