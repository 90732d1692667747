"""Per-frame autoencoder of VDM-MD: a VQGAN encoder/decoder with the quantiser removed.

The official VDM-MD latent space (METHODS.md §1) is a VQGAN conv encoder/decoder (ch_mult
[1, 2, 4]: a 4x spatial downsample, 3 latent channels, no attention) used *without* its vector
quantiser, so the latent is continuous and the DPS gradient can flow through the decoder.
diffusers' ``Encoder`` / ``Decoder`` are exactly the taming-transformers VQGAN blocks
(ResNet blocks, GroupNorm, SiLU, strided-conv downsampling, nearest upsampling), so they are
reused here with ``mid_block_add_attention=False``; the 1x1 ``quant_conv`` / ``post_quant_conv``
of VQGAN are kept. Frames of a clip are folded into the batch: the autoencoder never mixes time.
``mid_attention=True`` adds the single-head attention block that taming's ``Encoder`` / ``Decoder``
always place between the two middle ResNet blocks (``mid.attn_1``, whatever ``attn_resolutions``
says): the official VDM-MD VQGAN (configs/vqgan/vqgan_no_quant.yaml) has it, so imported
checkpoints use it.
``shortcut=True`` (this project's addition, off for the official layout) adds a linear path beside
each deep one: space-to-depth then a 1x1 conv into the latent, and a 1x1 conv then depth-to-space
out of it. A linear f4 code is already a good one (PCA of 4x4x3 patches keeping 12 of 48
components reconstructs the benchmark's exposure frames at 27 dB), so the deep paths only learn
the residual; from scratch it reached 19.5 dB in 300 steps where the plain network had 15.2.

Latents are divided by ``latent_scale`` (the std of training latents, computed from data by the
method, see ``deblurdiff.methods.vdm_md``) before the diffusion prior sees them.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers import ConfigMixin, ModelMixin
from diffusers.configuration_utils import register_to_config
from diffusers.models.autoencoders.vae import Decoder, Encoder
from einops import rearrange
from torch import nn

from ..errors import ConfigError, InputError


class FrameAutoencoder(ModelMixin, ConfigMixin):
    """Continuous VQGAN-style autoencoder applied frame by frame; inputs/outputs in [-1, 1].

    ``encode`` / ``decode`` accept images ``(N, C, H, W)`` or clips ``(B, F, C, H, W)`` and keep
    that layout. Spatial size must be a multiple of ``downsample`` (= 2 ** (len(ch_mult) - 1)).
    """

    _supports_gradient_checkpointing = True

    @register_to_config
    def __init__(self, in_channels: int = 3, latent_channels: int = 3, ch: int = 128,
                 ch_mult: tuple = (1, 2, 4), num_res_blocks: int = 2, norm_num_groups: int = 32,
                 mid_attention: bool = False, shortcut: bool = False):
        super().__init__()
        widths = [ch * m for m in ch_mult]
        if any(w % norm_num_groups for w in widths):
            raise ConfigError(f"autoencoder widths {widths} must be multiples of norm_num_groups="
                              f"{norm_num_groups}; change 'ch' or 'norm_num_groups'")
        self.encoder = Encoder(in_channels=in_channels, out_channels=latent_channels,
                               down_block_types=("DownEncoderBlock2D",) * len(widths),
                               block_out_channels=tuple(widths), layers_per_block=num_res_blocks,
                               norm_num_groups=norm_num_groups, double_z=False, mid_block_add_attention=mid_attention)
        self.decoder = Decoder(in_channels=latent_channels, out_channels=in_channels,
                               up_block_types=("UpDecoderBlock2D",) * len(widths),
                               block_out_channels=tuple(widths), layers_per_block=num_res_blocks,
                               norm_num_groups=norm_num_groups, mid_block_add_attention=mid_attention)
        self.quant_conv = nn.Conv2d(latent_channels, latent_channels, 1)
        self.post_quant_conv = nn.Conv2d(latent_channels, latent_channels, 1)
        if shortcut:
            patch = in_channels * self.downsample ** 2
            self.to_latent = nn.Conv2d(patch, latent_channels, 1)
            self.from_latent = nn.Conv2d(latent_channels, patch, 1)

    @property
    def downsample(self) -> int:
        return 2 ** (len(self.config.ch_mult) - 1)

    def _fold(self, x: torch.Tensor, channels: int, what: str):
        if x.dim() not in (4, 5) or x.shape[-3] != channels:
            raise InputError(f"{what} expects (N,{channels},H,W) or (B,F,{channels},H,W), got shape {tuple(x.shape)}")
        if x.dim() == 5:
            return rearrange(x, "b f c h w -> (b f) c h w"), x.shape[0]
        return x, None

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Pixels [-1, 1] -> unscaled latents, frame by frame."""
        flat, batch = self._fold(x, self.config.in_channels, "encode")
        if flat.shape[-1] % self.downsample or flat.shape[-2] % self.downsample:
            raise InputError(f"frame size {tuple(flat.shape[-2:])} must be a multiple of {self.downsample}; "
                             "pad or resize the input")
        z = self.quant_conv(self.encoder(flat))
        if self.config.shortcut:
            z = z + self.to_latent(F.pixel_unshuffle(flat, self.downsample))
        return z if batch is None else rearrange(z, "(b f) c h w -> b f c h w", b=batch)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Unscaled latents -> pixels (about [-1, 1], not clamped so gradients stay informative)."""
        flat, batch = self._fold(z, self.config.latent_channels, "decode")
        x = self.decoder(self.post_quant_conv(flat))
        if self.config.shortcut:
            x = x + F.pixel_shuffle(self.from_latent(flat), self.downsample)
        return x if batch is None else rearrange(x, "(b f) c h w -> b f c h w", b=batch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Reconstruction of ``x`` (the training path)."""
        return self.decode(self.encode(x))
