"""The per-frame autoencoder trained on its own (method ``autoencoder``, kind "image").

One trained part that the latent methods reuse frozen: VDM-MD and VDD take ``pretrained_autoencoder: PATH``
(a checkpoint folder of this method, e.g. ``runs/autoencoder-f4/final``) and copy its architecture,
weights and ``latent_std`` instead of training an autoencoder of their own. Both load it through
``load_trained_autoencoder`` and record the folder with ``record_autoencoder_source`` when saved.
The long run is ``configs/autoencoder-f4.yaml``; ``configs/autoencoder-tiny.yaml`` is for tests.

Training (``training_loss``) reconstructs the ``sharp`` images of an image-mode batch (the
``shake`` / ``scenes`` sources: photos of the pool and moving scenes; the blurred input is not
used) with L1 + ``lpips_weight`` x LPIPS(``lpips_net``). Without installed LPIPS weights a
warning is printed once and L1 alone is used. ``crop`` (a multiple of the downsample factor,
0 = whole images) trains on a random crop of each batch to save compute.

``latent_std`` (a buffer, saved with the weights) is the std of the training latents, kept as an
exponential moving average (``latent_std_decay``) over training batches; the first batch sets it.
The latent diffusion priors divide latents by it. It follows the live weights (not the EMA copy
the trainer also saves), which differ little late in a run.

``restore(x) = decode(encode(x))``: ``deblurdiff deblur --method autoencoder`` and the API
return the reconstruction of the input, the check of what the latent space can represent.
Validation during training (``validation_input = "sharp"``) scores the reconstruction of the
sharp image against itself.
"""
from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import register_to_config

import json
from pathlib import Path

from ..errors import CheckpointError, ConfigError, InputError, MissingWeightsError
from ..nn.autoencoder import FrameAutoencoder
from ..tensors import to_image, to_model
from .base import DeblurMethod


class FrameAutoencoderMethod(DeblurMethod):
    method_name = "autoencoder"
    kind = "image"
    stochastic = False
    validation_input = "sharp"  # train/logging.validate: reconstruct the sharp image, not the blurred one
    _supports_gradient_checkpointing = True

    @register_to_config
    def __init__(self, channels: int = 3, latent_channels: int = 8, ch: int = 64, ch_mult: tuple = (1, 2, 4),
                 num_res_blocks: int = 2, norm_num_groups: int = 32, mid_attention: bool = False,
                 shortcut: bool = False, lpips_weight: float = 0.1, lpips_net: str = "vgg", crop: int = 0,
                 latent_std_decay: float = 0.99):
        super().__init__()
        if lpips_net not in ("vgg", "alex"):
            raise ConfigError(f"lpips_net must be 'vgg' or 'alex', got {lpips_net!r}")
        if lpips_weight < 0:
            raise ConfigError(f"lpips_weight must be >= 0, got {lpips_weight}")
        if not 0 <= latent_std_decay < 1:
            raise ConfigError(f"latent_std_decay must lie in [0, 1), got {latent_std_decay}")
        self.autoencoder = FrameAutoencoder(in_channels=channels, latent_channels=latent_channels, ch=ch,
                                            ch_mult=tuple(ch_mult), num_res_blocks=num_res_blocks,
                                            norm_num_groups=norm_num_groups, mid_attention=mid_attention,
                                            shortcut=shortcut)
        self.multiple = self.autoencoder.downsample
        if crop % self.multiple:
            raise ConfigError(f"crop={crop} must be a multiple of the downsample factor {self.multiple} (0: no crop)")
        self.register_buffer("latent_std", torch.tensor(0.0))
        object.__setattr__(self, "_lpips", None)  # plain attribute, never a submodule: not in the state dict

    # ------------------------------------------------------------------ training
    def _lpips_model(self, device):
        if self._lpips is None:
            try:
                from ..metrics.lpips import LPIPS

                object.__setattr__(self, "_lpips", LPIPS(self.config.lpips_net).to(device).eval().requires_grad_(False))
            except MissingWeightsError as exc:
                warnings.warn(f"LPIPS term skipped, training the autoencoder with L1 only: {exc}")
                object.__setattr__(self, "_lpips", False)
        return self._lpips or None

    def _crop(self, x: torch.Tensor) -> torch.Tensor:
        crop, m = int(self.config.crop), self.multiple
        if 0 < crop < min(x.shape[-2:]):
            top = int(torch.randint(0, (x.shape[-2] - crop) // m + 1, ())) * m
            left = int(torch.randint(0, (x.shape[-1] - crop) // m + 1, ())) * m
            x = x[..., top:top + crop, left:left + crop]
        return x

    @torch.no_grad()
    def _track_latent_std(self, z: torch.Tensor) -> None:
        """Follow the latents' std while the encoder trains. With the encoder frozen (a decoder-only
        stage) the latent space is fixed, and so is its scale: priors trained on it stay valid."""
        ae = self.autoencoder
        encoding = [ae.encoder, ae.quant_conv] + ([ae.to_latent] if getattr(ae, "to_latent", None) is not None else [])
        if not any(p.requires_grad for part in encoding for p in part.parameters()):
            return
        std = z.detach().float().std()
        if float(self.latent_std) <= 0:
            self.latent_std.copy_(std)
        else:
            self.latent_std.lerp_(std.to(self.latent_std.dtype), 1 - self.config.latent_std_decay)

    def training_loss(self, batch: dict) -> dict:
        if "sharp" not in batch:
            raise InputError("the autoencoder trains on the 'sharp' images of an image-mode batch; "
                             "use data.mode: image (sources shake, scenes, gopro, ...)")
        sharp = batch["sharp"]
        if sharp.dim() == 5:  # video / exposure batches: every frame is an image
            sharp = sharp.flatten(0, 1)
        if sharp.dim() != 4 or sharp.shape[1] != self.config.channels:
            raise InputError(f"the autoencoder trains on (B,{self.config.channels},H,W) images, got "
                             f"{tuple(sharp.shape)}; use data.mode: image")
        x = self._crop(to_model(sharp))
        h, w = x.shape[-2:]
        if h % self.multiple or w % self.multiple:
            raise InputError(f"training images of size {(h, w)} must be multiples of {self.multiple}; "
                             "set data.crop or the model's crop to a multiple of it")
        z = self.autoencoder.encode(x)
        self._track_latent_std(z)
        recon = self.autoencoder.decode(z)
        l1 = (recon.float() - x.float()).abs().mean()
        out = {"loss": l1, "l1": l1.detach(), "latent_std": self.latent_std.detach().clone()}
        weight = float(self.config.lpips_weight)
        lpips = self._lpips_model(x.device) if weight > 0 else None
        if lpips is not None:
            perceptual = lpips((recon.float() + 1) / 2, (x.float() + 1) / 2, quantize=False).mean()
            out.update(loss=l1 + weight * perceptual, lpips=perceptual.detach())
        return out

    # ------------------------------------------------------------------ inference
    def encode(self, images01: torch.Tensor) -> torch.Tensor:
        """Images or clips in [0, 1] -> unscaled latents (divide by ``latent_std`` for a prior)."""
        return self.autoencoder.encode(to_model(images01))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Unscaled latents -> images or clips in [0, 1]."""
        return to_image(self.autoencoder.decode(z))

    @torch.no_grad()
    def restore(self, blurred: torch.Tensor, *, steps=None, sampler=None, generator=None, progress=False):
        """The reconstruction decode(encode(x)) of (B, C, H, W) images in [0, 1], any size
        (padded to a multiple of the downsample factor by reflection, then cropped back)."""
        if blurred.dim() != 4 or blurred.shape[1] != self.config.channels:
            raise InputError(f"the autoencoder takes images (B, {self.config.channels}, H, W) in [0, 1], got "
                             f"{tuple(blurred.shape)}")
        h, w = blurred.shape[-2:]
        ph, pw = -h % self.multiple, -w % self.multiple
        x = F.pad(blurred, (0, pw, 0, ph), mode="replicate") if ph or pw else blurred
        return self.decode(self.encode(x))[..., :h, :w].clamp(0, 1)


# ---------------------------------------------------------------------- reuse by the latent methods
def load_trained_autoencoder(path, channels: int) -> FrameAutoencoderMethod:
    """The ``autoencoder`` method's checkpoint at ``path`` (``model.pretrained_autoencoder``), checked to
    code ``channels``-channel images and to carry a measured ``latent_std``.

    ``path`` is a run's ``final/`` folder, a ``checkpoints/step-N/`` folder (its EMA weights, as
    ``train.init`` reads it), or the name of a shipped checkpoint (``autoencoder``), so a config can
    name the shipped autoencoder on any machine.
    """
    from . import checkpoint_folder, shipped_checkpoint

    folder = Path(path)
    if not folder.exists() and "/" not in str(path) and shipped_checkpoint(str(path)).is_dir():
        folder = shipped_checkpoint(str(path))
    folder = checkpoint_folder(folder)
    config_file = folder / "config.json"
    if not config_file.is_file():
        raise CheckpointError(f"model.pretrained_autoencoder: {folder} is not a checkpoint folder of the "
                              "'autoencoder' method (no config.json); pass the shipped 'autoencoder', or the "
                              "OUT/final (or OUT/checkpoints/step-N) folder written by "
                              "`deblurdiff train configs/autoencoder-f4.yaml --out OUT`")
    class_name = json.loads(config_file.read_text()).get("_class_name")
    if class_name != FrameAutoencoderMethod.__name__:
        raise ConfigError(f"model.pretrained_autoencoder: {folder} holds a {class_name} checkpoint, not one of the "
                          "'autoencoder' method; pass the OUT/final folder of an autoencoder run")
    trained = FrameAutoencoderMethod.from_pretrained(folder, low_cpu_mem_usage=False)
    if trained.config.channels != channels:
        raise ConfigError(f"model.pretrained_autoencoder: {folder} codes {trained.config.channels}-channel "
                          f"images, this model {channels}")
    if float(trained.latent_std) <= 0:
        raise CheckpointError(f"model.pretrained_autoencoder: {folder} has no latent_std yet (never trained); "
                              "train it first")
    return trained


def autoencoder_kwargs(trained: FrameAutoencoderMethod) -> dict:
    """The ``FrameAutoencoder`` constructor arguments of a trained autoencoder (JSON-friendly)."""
    c = trained.config
    return {"in_channels": c.channels, "latent_channels": c.latent_channels, "ch": c.ch, "ch_mult": list(c.ch_mult),
            "num_res_blocks": c.num_res_blocks, "norm_num_groups": c.norm_num_groups,
            "mid_attention": c.mid_attention, "shortcut": c.shortcut}


def refuse_autoencoder_stage(model, stage: str) -> None:
    """A model on a separately trained autoencoder has no autoencoder stage to run."""
    source = model.config.pretrained_autoencoder or model.config.autoencoder_from
    if source:
        raise ConfigError(f"stage {stage!r}: this {type(model).__name__} uses the trained autoencoder {source} "
                          "(model.pretrained_autoencoder), so its 'autoencoder' stage is already done: "
                          "remove that stage from the config's stages")


def record_autoencoder_source(model) -> None:
    """Before saving: the weights now live in the checkpoint, so it loads without the folder; the
    folder is kept as ``autoencoder_from``."""
    source = model.config.pretrained_autoencoder
    if source:
        model.register_to_config(pretrained_autoencoder=None, autoencoder_from=str(source))
