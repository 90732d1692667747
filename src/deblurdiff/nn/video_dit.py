"""Latent video diffusion transformer (STDiT style), the prior of VDM-MD.

Design (METHODS.md §1, after Open-Sora STDiT): a clip of latents ``(B, F, C, H, W)`` is cut into
``(1, 2, 2)`` patches by a strided Conv3d; tokens carry a fixed 2D sin-cos position embedding
in space and no learned time embedding: time position enters only through rotary embeddings
(RoPE) on queries and keys of the *temporal* attention, so attention between frames depends
on their offset, not their absolute index, and the model runs on any clip length.

Blocks alternate: a spatial block (attention over the tokens of one frame) then a temporal
block (attention over the frames at one spatial position); each has its own MLP and is
conditioned on the timestep by adaLN-zero (shift/scale/gate regressed from the timestep
embedding, initialised to zero so every block starts as the identity, as in DiT). ``depth``
counts spatial/temporal *pairs*; ``depth=28, hidden_size=1152, num_heads=16`` is XL/2.

The output is eps (``learn_sigma=True`` adds C channels for the interpolated log-variance of
Improved DDPM). Attention uses ``F.scaled_dot_product_attention``; activation checkpointing
over blocks is switched on with diffusers' ``enable_gradient_checkpointing()``, which pays when
DPS back-propagates through the whole prior at large sizes.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from diffusers import ConfigMixin, ModelMixin
from diffusers.configuration_utils import register_to_config
from diffusers.models.embeddings import (TimestepEmbedding, Timesteps, apply_rotary_emb,
                                         get_1d_rotary_pos_embed, get_2d_sincos_pos_embed)
from einops import rearrange
from torch import nn

from ..errors import ConfigError, InputError


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return x * (1 + scale) + shift


class SelfAttention(nn.Module):
    """Multi-head self-attention over the middle axis of ``(N, L, D)``, optional RoPE and QK-norm."""

    def __init__(self, dim: int, num_heads: int, qk_norm: bool = True):
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, 3 * dim)
        head_dim = dim // num_heads
        self.q_norm = nn.RMSNorm(head_dim, eps=1e-6) if qk_norm else nn.Identity()
        self.k_norm = nn.RMSNorm(head_dim, eps=1e-6) if qk_norm else nn.Identity()
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, rope: tuple | None = None) -> torch.Tensor:
        q, k, v = rearrange(self.qkv(x), "n l (three h d) -> three n h l d", three=3, h=self.num_heads)
        q, k = self.q_norm(q), self.k_norm(k)
        if rope is not None:
            q = apply_rotary_emb(q, rope, use_real=True, use_real_unbind_dim=-1)
            k = apply_rotary_emb(k, rope, use_real=True, use_real_unbind_dim=-1)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(rearrange(out, "n h l d -> n l (h d)"))


class STBlock(nn.Module):
    """One adaLN-zero transformer block attending over space (within a frame) or over time."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, temporal: bool, qk_norm: bool):
        super().__init__()
        self.temporal = temporal
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.attn = SelfAttention(dim, num_heads, qk_norm)
        self.norm2 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(approximate="tanh"), nn.Linear(hidden, dim))
        self.adaln = nn.Sequential(nn.SiLU(), nn.Linear(dim, 6 * dim))

    def forward(self, x: torch.Tensor, c: torch.Tensor, rope: tuple) -> torch.Tensor:
        """x: tokens (B, F, S, D); c: timestep embedding (B, D); rope: (cos, sin) over frames."""
        frames = x.shape[1]
        shift1, scale1, gate1, shift2, scale2, gate2 = rearrange(self.adaln(c), "b d -> b 1 1 d").chunk(6, dim=-1)
        h = modulate(self.norm1(x), shift1, scale1)
        if self.temporal:
            h = rearrange(h, "b f s d -> (b s) f d")
            h = rearrange(self.attn(h, rope), "(b s) f d -> b f s d", b=x.shape[0])
        else:
            h = rearrange(h, "b f s d -> (b f) s d")
            h = rearrange(self.attn(h), "(b f) s d -> b f s d", f=frames)
        x = x + gate1 * h
        return x + gate2 * self.mlp(modulate(self.norm2(x), shift2, scale2))


class VideoDiT(ModelMixin, ConfigMixin):
    """eps-prediction video transformer: ``forward(x (B,F,C,H,W), t (B,)) -> (B,F,C_out,H,W)``."""

    _supports_gradient_checkpointing = True

    @register_to_config
    def __init__(self, in_channels: int = 3, sample_size: int = 16, num_frames: int = 10,
                 patch_size: tuple = (1, 2, 2), hidden_size: int = 1152, depth: int = 28, num_heads: int = 16,
                 mlp_ratio: float = 4.0, learn_sigma: bool = False, qk_norm: bool = True,
                 rope_theta: float = 10000.0, frequency_embedding_size: int = 256):
        super().__init__()
        if hidden_size % num_heads or (hidden_size // num_heads) % 2:
            raise ConfigError(f"hidden_size={hidden_size} must split into {num_heads} heads of even size")
        if hidden_size % 4:
            raise ConfigError(f"hidden_size={hidden_size} must be a multiple of 4 (2D sin-cos embedding)")
        self.patch_size = tuple(patch_size)
        self.out_channels = in_channels * (2 if learn_sigma else 1)
        self.patch_embed = nn.Conv3d(in_channels, hidden_size, kernel_size=self.patch_size, stride=self.patch_size)
        self.time_proj = Timesteps(frequency_embedding_size, flip_sin_to_cos=True, downscale_freq_shift=0)
        self.time_embed = TimestepEmbedding(frequency_embedding_size, hidden_size)
        self.blocks = nn.ModuleList([STBlock(hidden_size, num_heads, mlp_ratio, temporal=bool(i % 2), qk_norm=qk_norm)
                                     for i in range(2 * depth)])
        self.norm_out = nn.LayerNorm(hidden_size, elementwise_affine=False, eps=1e-6)
        self.adaln_out = nn.Sequential(nn.SiLU(), nn.Linear(hidden_size, 2 * hidden_size))
        self.proj_out = nn.Linear(hidden_size, math.prod(self.patch_size) * self.out_channels)
        self.gradient_checkpointing = False
        self._init_weights()

    def _init_weights(self):
        """DiT initialisation: Xavier linears, N(0, 0.02) timestep MLP, zero adaLN and output."""
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
        nn.init.xavier_uniform_(self.patch_embed.weight.view(self.patch_embed.weight.shape[0], -1))
        nn.init.zeros_(self.patch_embed.bias)
        nn.init.normal_(self.time_embed.linear_1.weight, std=0.02)
        nn.init.normal_(self.time_embed.linear_2.weight, std=0.02)
        for block in self.blocks:
            nn.init.zeros_(block.adaln[-1].weight)
            nn.init.zeros_(block.adaln[-1].bias)
        for layer in (self.adaln_out[-1], self.proj_out):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def rope(self, frames: int, device) -> tuple:
        """(cos, sin) of shape (frames, head_dim) for rotary embedding along time."""
        head_dim = self.config.hidden_size // self.config.num_heads
        return get_1d_rotary_pos_embed(head_dim, torch.arange(frames, device=device, dtype=torch.float32),
                                       theta=self.config.rope_theta, use_real=True, repeat_interleave_real=True)

    def embed(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple]:
        """Latents (B,F,C,H,W) -> tokens (B, F', S, D) with spatial position embedding."""
        if x.dim() != 5 or x.shape[2] != self.config.in_channels:
            raise InputError(f"VideoDiT expects (B, F, {self.config.in_channels}, H, W) latents, got {tuple(x.shape)}")
        pf, ph, pw = self.patch_size
        if x.shape[1] % pf or x.shape[3] % ph or x.shape[4] % pw:
            raise InputError(f"latent clip {tuple(x.shape)} must divide into patches of {self.patch_size}")
        tokens = self.patch_embed(rearrange(x, "b f c h w -> b c f h w"))
        grid = tokens.shape[-2:]
        tokens = rearrange(tokens, "b d f h w -> b f (h w) d")
        pos = get_2d_sincos_pos_embed(self.config.hidden_size, tuple(grid), base_size=grid[0],
                                      device=x.device, output_type="pt")
        return tokens + pos.to(tokens.dtype), grid

    def forward(self, x: torch.Tensor, timestep: torch.Tensor) -> torch.Tensor:
        batch, frames = x.shape[:2]
        tokens, (gh, gw) = self.embed(x)
        timestep = torch.as_tensor(timestep, device=x.device).reshape(-1).expand(batch)
        c = self.time_embed(self.time_proj(timestep).to(tokens.dtype))
        rope = self.rope(tokens.shape[1], x.device)
        for block in self.blocks:
            if torch.is_grad_enabled() and self.gradient_checkpointing:
                tokens = self._gradient_checkpointing_func(block, tokens, c, rope)
            else:
                tokens = block(tokens, c, rope)
        shift, scale = rearrange(self.adaln_out(c), "b d -> b 1 1 d").chunk(2, dim=-1)
        out = self.proj_out(modulate(self.norm_out(tokens), shift, scale))
        pf, ph, pw = self.patch_size
        return rearrange(out, "b f (h w) (pf ph pw c) -> b (f pf) c (h ph) (w pw)",
                         h=gh, w=gw, pf=pf, ph=ph, pw=pw, c=self.out_channels)
