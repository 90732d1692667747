"""DIVD's denoiser: a 2-D conv UNet over frames folded into the batch, with WTSA at chosen levels.

Layout: a clip batch ``(B, F, C, H, W)`` is folded to ``(B*F, C, H, W)``; convolutions see each
frame alone and the WTSA blocks (``nn/wtsa.py``) are the only place frames exchange information.
Conditioning (DIVD): the blurred frames are concatenated on channels with the noisy frames.

Levels: ``len(channel_mult)`` resolutions; the last one is the bottleneck. ``windows[i]`` is the
WTSA window at level ``i`` (0 = no attention there); presets from the paper's study are
``[3, 2, 1, 1]``, ``[4, 3, 2, 1]``, ``[6, 4, 3, 2]``. Down-sampling is a stride-2 2x2 conv,
up-sampling a 1x1 conv + PixelShuffle, skips are added (NAFNet's choices: cheap and fast to train).
"""
from __future__ import annotations

import math

import torch
from diffusers.models.embeddings import TimestepEmbedding, Timesteps
from einops import rearrange
from torch import nn

from .blocks import TimeNAFBlock
from .layout import PointwiseConv2d, inference_path
from .wtsa import WTSABlock


def required_multiple(windows: list[int], levels: int) -> int:
    """Smallest side length multiple that needs no padding anywhere: ``lcm(2^(L-1), M_i * 2^i)``."""
    multiple = 2 ** (levels - 1)
    for level, m in enumerate(windows):
        if m > 0:
            multiple = math.lcm(multiple, m * 2 ** level)
    return multiple


class DIVDUNet(nn.Module):
    """Conditional denoiser ``(x_t, blur, t) -> output`` on ``(B*F, C, H, W)`` tensors."""

    def __init__(self, in_channels: int = 3, cond_channels: int = 3, out_channels: int = 3, width: int = 32,
                 channel_mult: tuple = (1, 2, 4, 8), blocks: tuple = (1, 1, 1, 2), windows: tuple = (3, 2, 1, 1),
                 frames: int = 4, heads: tuple | int = 1, temporal: bool = True, mrpe: bool = True,
                 time_dim: int | None = None):
        super().__init__()
        levels = len(channel_mult)
        if len(blocks) != levels or len(windows) != levels:
            raise ValueError(f"channel_mult, blocks and windows need one entry per level ({levels}); "
                             f"got {len(blocks)} blocks and {len(windows)} windows")
        heads = [heads] * levels if isinstance(heads, int) else list(heads)
        self.frames, self.levels, self.windows = frames, levels, list(windows)
        self.multiple = required_multiple(self.windows, levels)
        time_dim = time_dim or 4 * width
        self.time_proj = Timesteps(width, flip_sin_to_cos=True, downscale_freq_shift=0)
        self.time_embed = TimestepEmbedding(width, time_dim)
        self.intro = nn.Conv2d(in_channels + cond_channels, width, 3, padding=1)
        chans = [width * m for m in channel_mult]

        def attention(level):
            if windows[level] <= 0:
                return None
            return WTSABlock(chans[level], windows[level], frames, heads[level], temporal, mrpe)

        self.enc_blocks, self.enc_attn, self.downs = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        for level in range(levels - 1):
            self.enc_blocks.append(nn.ModuleList(TimeNAFBlock(chans[level], time_dim) for _ in range(blocks[level])))
            self.enc_attn.append(attention(level) or nn.Identity())
            self.downs.append(nn.Conv2d(chans[level], chans[level + 1], 2, stride=2))
        self.mid_blocks = nn.ModuleList(TimeNAFBlock(chans[-1], time_dim) for _ in range(blocks[-1]))
        self.mid_attn = attention(levels - 1) or nn.Identity()
        self.ups, self.dec_blocks, self.dec_attn = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        for level in reversed(range(levels - 1)):
            self.ups.append(nn.Sequential(PointwiseConv2d(chans[level + 1], chans[level] * 4, bias=False),
                                          nn.PixelShuffle(2)))
            self.dec_blocks.append(nn.ModuleList(TimeNAFBlock(chans[level], time_dim) for _ in range(blocks[level])))
            self.dec_attn.append(attention(level) or nn.Identity())
        self.outro = nn.Conv2d(width, out_channels, 3, padding=1)
        # Zero output: the untrained net predicts a zero residual, i.e. "the blurred frame", which is
        # already a sensible deblurring estimate; training only has to learn the correction.
        nn.init.zeros_(self.outro.weight)
        nn.init.zeros_(self.outro.bias)

    @staticmethod
    def _attend(block, x, frames):
        return x if isinstance(block, nn.Identity) else block(x, frames)

    def forward(self, x_t: torch.Tensor, cond: torch.Tensor, timesteps: torch.Tensor, frames: int) -> torch.Tensor:
        """``x_t``, ``cond``: ``(B*F, C, H, W)`` with H, W multiples of ``self.multiple`` (or padded
        inside WTSA otherwise); ``timesteps``: ``(B,)`` or ``(B*F,)`` or a scalar."""
        n = x_t.shape[0]
        timesteps = torch.as_tensor(timesteps, device=x_t.device).reshape(-1)
        if timesteps.numel() == 1:
            timesteps = timesteps.expand(n)
        elif timesteps.numel() == n // frames:
            timesteps = timesteps.repeat_interleave(frames)
        temb = self.time_embed(self.time_proj(timesteps).to(x_t.dtype))
        x = self.intro(torch.cat([x_t, cond], dim=1))
        skips = []
        for blocks, attn, down in zip(self.enc_blocks, self.enc_attn, self.downs):
            for block in blocks:
                x = block(x, temb)
            x = self._attend(attn, x, frames)
            skips.append(x)
            x = down(x)
        for block in self.mid_blocks:
            x = block(x, temb)
        x = self._attend(self.mid_attn, x, frames)
        for up, blocks, attn in zip(self.ups, self.dec_blocks, self.dec_attn):
            skip = skips.pop()
            x = up(x)
            if inference_path(self):  # PixelShuffle returns NCHW whatever its input: back to channels_last
                x = x.contiguous(memory_format=torch.channels_last)
            x = x + skip
            for block in blocks:
                x = block(x, temb)
            x = self._attend(attn, x, frames)
        return self.outro(x)

    def forward_clip(self, x_t: torch.Tensor, cond: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        """Same on clips ``(B, F, C, H, W)``."""
        frames = x_t.shape[1]
        out = self.forward(rearrange(x_t, "b f c h w -> (b f) c h w"), rearrange(cond, "b f c h w -> (b f) c h w"),
                           timesteps, frames)
        return rearrange(out, "(b f) c h w -> b f c h w", f=frames)
