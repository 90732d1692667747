"""Glue for VDD's latent video networks: diffusers' 3D UNet and KL autoencoder.

The networks themselves are diffusers' ``UNet3DConditionModel`` (the ModelScope / TF-T2V
text-to-video UNet: a 2D UNet with temporal convolutions and temporal attention inserted) and
``AutoencoderKL``. What diffusers does not provide, and lives here:

* small configurations of both that train on a CPU in minutes,
* ``widen_conv_in``: adds input channels for the blurred clip's latents to a (pretrained) UNet
  with zero weights, so the adapted UNet computes exactly what the pretrained one did until
  training moves those weights,
* clip <-> latent conversion: the autoencoder is 2D, so frames are folded into the batch, and
  large frames go through diffusers' tiled encode/decode. The latent space is either a KL
  autoencoder (``AutoencoderKL``: its posterior mean) or the project's separately trained
  per-frame autoencoder (``nn.autoencoder.FrameAutoencoder``, deterministic).
"""
from __future__ import annotations

import torch
from diffusers import AutoencoderKL, UNet3DConditionModel
from einops import rearrange
from torch import nn

from .autoencoder import FrameAutoencoder


def tiny_vae_config(latent_channels: int = 4, channels: tuple = (32, 64), sample_size: int = 64) -> dict:
    """A KL autoencoder with ``2 ** (len(channels) - 1)`` downsampling; ``sample_size`` is also
    the tile size used by tiled decoding."""
    return dict(in_channels=3, out_channels=3, down_block_types=["DownEncoderBlock2D"] * len(channels),
                up_block_types=["UpDecoderBlock2D"] * len(channels), block_out_channels=list(channels),
                layers_per_block=1, latent_channels=latent_channels, norm_num_groups=8,
                sample_size=sample_size, scaling_factor=1.0)


def tiny_unet_config(latent_channels: int = 4, channels: tuple = (32, 64), cross_attention_dim: int = 32,
                     attention_head_dim: int = 8, condition_channels: int | None = None) -> dict:
    """A two-level 3D UNet whose spatial attention sits at the lower resolution only.

    Full-resolution spatial attention dominates the cost on a CPU (it is quadratic in the
    number of latent pixels), so the first level is a plain ResNet + temporal-conv block.
    ``in_channels`` = noisy latents + the blurred clip's latents.
    """
    condition_channels = latent_channels if condition_channels is None else condition_channels
    levels = len(channels)
    down = ["DownBlock3D"] + ["CrossAttnDownBlock3D"] * (levels - 1)
    return dict(in_channels=latent_channels + condition_channels, out_channels=latent_channels,
                down_block_types=down, up_block_types=["CrossAttnUpBlock3D"] * (levels - 1) + ["UpBlock3D"],
                block_out_channels=list(channels), layers_per_block=1, norm_num_groups=8,
                cross_attention_dim=cross_attention_dim, attention_head_dim=attention_head_dim)


def unet_downsample_factor(unet: UNet3DConditionModel) -> int:
    return 2 ** (len(unet.config.block_out_channels) - 1)


def vae_downsample_factor(vae: AutoencoderKL | FrameAutoencoder) -> int:
    if isinstance(vae, FrameAutoencoder):
        return vae.downsample
    return 2 ** (len(vae.config.block_out_channels) - 1)


@torch.no_grad()
def widen_conv_in(unet: UNet3DConditionModel, extra_channels: int) -> UNet3DConditionModel:
    """Give ``unet.conv_in`` ``extra_channels`` more input channels whose weights are zero.

    The old kernel is copied into the first channels, so for any value of the new inputs the
    widened UNet's output equals the original UNet's output on the old inputs.
    """
    old = unet.conv_in
    new = nn.Conv2d(old.in_channels + extra_channels, old.out_channels, kernel_size=old.kernel_size,
                    padding=old.padding, stride=old.stride, dtype=old.weight.dtype, device=old.weight.device)
    new.weight.zero_()
    new.weight[:, : old.in_channels] = old.weight
    new.bias.copy_(old.bias)
    unet.conv_in = new
    unet.register_to_config(in_channels=new.in_channels)
    return unet


def encode_clip(vae: AutoencoderKL | FrameAutoencoder, clip: torch.Tensor, scale: float, *, sample: bool = False,
                generator: torch.Generator | None = None) -> torch.Tensor:
    """Clip ``(B, F, C, H, W)`` in [-1, 1] -> latents ``(B, c, F, h, w)`` (the UNet's layout)
    multiplied by ``scale`` (which brings them to about unit variance).

    ``sample`` draws from a KL posterior; otherwise its mean is used.
    """
    frames = clip.shape[1]
    flat = rearrange(clip, "b f c h w -> (b f) c h w")
    if isinstance(vae, FrameAutoencoder):
        latents = vae.encode(flat)
    else:
        posterior = vae.encode(flat).latent_dist
        latents = posterior.sample(generator) if sample else posterior.mean
    latents = latents * scale
    return rearrange(latents, "(b f) c h w -> b c f h w", f=frames)


def decode_clip(vae: AutoencoderKL | FrameAutoencoder, latents: torch.Tensor, scale: float) -> torch.Tensor:
    """Latents ``(B, c, F, h, w)`` scaled by ``scale`` -> clip ``(B, F, C, H, W)`` in [-1, 1] (unclamped)."""
    frames = latents.shape[2]
    flat = rearrange(latents, "b c f h w -> (b f) c h w") / scale
    images = vae.decode(flat) if isinstance(vae, FrameAutoencoder) else vae.decode(flat).sample
    return rearrange(images, "(b f) c h w -> b f c h w", f=frames)
