"""A small convolutional image encoder that turns one frame into cross-attention tokens.

VDD conditions its 3D UNet on an embedding of the blurred clip's centre frame. The paper uses
the image encoder of its text-to-video checkpoint (a CLIP vision tower); that needs
``transformers`` and downloaded weights, neither of which this package depends on. This encoder
is the stand-in trained here: strided convolutions, pooled to a ``grid x grid`` map whose cells
become tokens of width ``embed_dim`` (the UNet's ``cross_attention_dim``), plus a learned
position embedding. It is a diffusers ``ModelMixin`` so a trained one can be saved and reused as
the "pretrained image encoder" of another model (``save_pretrained`` / ``from_pretrained``).
"""
from __future__ import annotations

import torch
from diffusers import ConfigMixin, ModelMixin
from diffusers.configuration_utils import register_to_config
from einops import rearrange
from torch import nn


class ConvImageEncoder(ModelMixin, ConfigMixin):
    """Image ``(B, C, H, W)`` in [-1, 1] -> tokens ``(B, grid*grid, embed_dim)``."""

    @register_to_config
    def __init__(self, in_channels: int = 3, channels: tuple = (16, 32, 64), embed_dim: int = 32,
                 grid: int = 2, norm_groups: int = 8):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(in_channels, channels[0], 3, padding=1)]
        previous = channels[0]
        for width in channels:
            layers += [nn.GroupNorm(min(norm_groups, previous), previous), nn.SiLU(),
                       nn.Conv2d(previous, width, 3, stride=2, padding=1)]
            previous = width
        layers += [nn.GroupNorm(min(norm_groups, previous), previous), nn.SiLU()]
        self.features = nn.Sequential(*layers)
        # Adaptive pooling makes the token count independent of the frame size.
        self.pool = nn.AdaptiveAvgPool2d(grid)
        self.project = nn.Linear(previous, embed_dim)
        self.position = nn.Parameter(torch.zeros(1, grid * grid, embed_dim))
        self.norm = nn.LayerNorm(embed_dim)

    @property
    def num_tokens(self) -> int:
        return self.config.grid * self.config.grid

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        features = self.pool(self.features(image))
        tokens = rearrange(features, "b c h w -> b (h w) c")
        return self.norm(self.project(tokens) + self.position)
