"""Regression baselines: NAFNet and MIMO-UNet trained alone (kind "image"), and their losses.

They are also the backbones BlurDM plugs its prior into (``build_backbone``), so that
"backbone alone" and "backbone + BlurDM" share architecture, loss and parameter names
(``backbone.*``).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import register_to_config

from ..errors import ConfigError, InputError
from ..nn.mimo_unet import MIMOUNet
from ..nn.nafnet import NAFNet
from ..tensors import VALUE_RANGES, to_image, to_model
from .base import DeblurMethod

NAFNET_DEFAULTS = {"width": 32, "enc_blk_nums": [1, 1, 1, 28], "middle_blk_num": 1, "dec_blk_nums": [1, 1, 1, 1],
                   "pad_mode": "replicate", "pad_multiple": None, "tlc_base_size": 0}
MIMO_DEFAULTS = {"base_channel": 32, "num_res": 8}


def charbonnier(x: torch.Tensor, y: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    return torch.sqrt((x - y) ** 2 + eps ** 2).mean()


def fft_charbonnier(x: torch.Tensor, y: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    """Charbonnier between the real and imaginary parts of the 2-D spectra (MIMO-UNet's FFT loss)."""
    fx, fy = torch.fft.rfft2(x), torch.fft.rfft2(y)
    return charbonnier(torch.view_as_real(fx), torch.view_as_real(fy), eps)


def psnr_loss(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """NAFNet's training loss: minus the PSNR per image (in dB, [-1, 1] range), averaged."""
    mse = ((x - y) ** 2).flatten(1).mean(1)
    return (10.0 / math.log(10.0)) * torch.log(mse + 1e-8).mean()


def check_value_range(value_range: str) -> str:
    if value_range not in VALUE_RANGES:
        raise ConfigError(f"value_range must be 'signed' ([-1, 1], deblurdiff's own weights) or 'unit' "
                          f"([0, 1], official NAFNet / MIMO-UNet / BlurDM weights), got {value_range!r}")
    return value_range


def build_backbone(name: str, options: dict | None, prior_dim: int = 0, fusion: str = "residual"):
    """``nafnet`` or ``mimo-unet`` with paper-width defaults overridden by ``options``."""
    defaults = {"nafnet": NAFNET_DEFAULTS, "mimo-unet": MIMO_DEFAULTS}
    if name not in defaults:
        raise ConfigError(f"unknown backbone {name!r}; use 'nafnet' or 'mimo-unet'")
    options = dict(options or {})
    unknown = sorted(set(options) - set(defaults[name]))
    if unknown:
        raise ConfigError(f"unknown {name} option {unknown[0]!r}; valid options: {', '.join(defaults[name])}")
    kwargs = {**defaults[name], **options}
    if name == "nafnet":
        return NAFNet(width=kwargs["width"], enc_blk_nums=tuple(kwargs["enc_blk_nums"]),
                      middle_blk_num=kwargs["middle_blk_num"], dec_blk_nums=tuple(kwargs["dec_blk_nums"]),
                      prior_dim=prior_dim, pad_mode=kwargs["pad_mode"], pad_multiple=kwargs["pad_multiple"],
                      tlc_base_size=kwargs["tlc_base_size"], fusion=fusion)
    return MIMOUNet(base_channel=kwargs["base_channel"], num_res=kwargs["num_res"], prior_dim=prior_dim, fusion=fusion)


LOSSES = ("paper", "psnr")


def backbone_loss(name: str, output, sharp_m: torch.Tensor, fft_weight: float = 0.1,
                  kind: str = "paper") -> torch.Tensor:
    """``kind`` "paper": NAFNet's PSNR loss; MIMO-UNet's multi-scale Charbonnier + ``fft_weight`` x FFT
    Charbonnier. "psnr": the PSNR loss for either, at each of MIMO-UNet's scales (the metric the
    benchmark scores, set per stage: ``loss: {loss: psnr}``)."""
    if kind not in LOSSES:
        raise ConfigError(f"backbone loss must be one of {', '.join(LOSSES)} (stage option 'loss'), got {kind!r}")
    if name == "nafnet":
        return psnr_loss(output, sharp_m)
    loss = 0.0
    for out in output:
        target = sharp_m if out.shape[-2:] == sharp_m.shape[-2:] else \
            F.interpolate(sharp_m, size=out.shape[-2:], mode="bilinear", align_corners=False)
        if kind == "psnr":
            loss = loss + psnr_loss(out, target)
        else:
            loss = loss + charbonnier(out, target) + fft_weight * fft_charbonnier(out, target)
    return loss


def final_output(output) -> torch.Tensor:
    """The full-resolution output (MIMO-UNet returns three scales)."""
    return output[-1] if isinstance(output, (list, tuple)) else output


def check_pair(batch: dict, value_range: str = "signed") -> tuple[torch.Tensor, torch.Tensor]:
    """``blur`` and ``sharp`` of an image batch, converted to the model range, with a clear error."""
    for key in ("blur", "sharp"):
        if key not in batch:
            raise InputError(f"an image-mode batch needs '{key}' (B,C,H,W); use a dataset with mode: image")
    blur, sharp = batch["blur"], batch["sharp"]
    if blur.ndim != 4 or blur.shape != sharp.shape:
        raise InputError(f"image batches must be (B,C,H,W) blur/sharp pairs of one shape, got "
                         f"{tuple(blur.shape)} and {tuple(sharp.shape)}; use data.mode: image")
    return to_model(blur, value_range), to_model(sharp, value_range)


def check_blurred(blurred: torch.Tensor) -> None:
    if blurred.ndim != 4:
        raise InputError(f"this image method expects (B,C,H,W) input, got shape {tuple(blurred.shape)}")


class _Regression(DeblurMethod):
    kind = "image"
    stochastic = False
    multiple = 1  # the backbone pads internally
    backbone_name = ""

    def training_loss(self, batch: dict) -> dict:
        blur, sharp = check_pair(batch, self.config.value_range)
        kind = batch.get("stage_options", {}).get("loss", "paper")
        loss = backbone_loss(self.backbone_name, self.backbone(blur), sharp, self._fft_weight(), kind)
        return {"loss": loss}

    def _fft_weight(self) -> float:
        return 0.1

    @torch.no_grad()
    def restore(self, blurred, *, steps=None, sampler=None, generator=None, progress=False):
        check_blurred(blurred)
        vr = self.config.value_range
        return to_image(final_output(self.backbone(to_model(blurred, vr))), vr)


class NAFNetDeblur(_Regression):
    """NAFNet trained alone with its PSNR loss (official GoPro setting: width 32, 1-1-1-28 / 1 / 1-1-1-1).

    ``value_range``: "signed" ([-1, 1], deblurdiff's weights) or "unit" ([0, 1]: the official
    code feeds BasicSR's ``img2tensor`` output unnormalised). With the official options
    (``deblurdiff.weights_import.OFFICIAL_CONFIGS``) the model also pads like the official one
    (zeros to ``2**levels``) and tests like NAFNetLocal (``tlc_base_size=384``); see ``nn.nafnet``.
    """

    method_name = "nafnet"
    backbone_name = "nafnet"

    @register_to_config
    def __init__(self, width: int = 32, enc_blk_nums: list = (1, 1, 1, 28), middle_blk_num: int = 1,
                 dec_blk_nums: list = (1, 1, 1, 1), value_range: str = "signed", pad_mode: str = "replicate",
                 pad_multiple: int | None = None, tlc_base_size: int = 0):
        super().__init__()
        check_value_range(value_range)
        self.backbone = build_backbone("nafnet", {"width": width, "enc_blk_nums": list(enc_blk_nums),
                                                  "middle_blk_num": middle_blk_num,
                                                  "dec_blk_nums": list(dec_blk_nums), "pad_mode": pad_mode,
                                                  "pad_multiple": pad_multiple, "tlc_base_size": tlc_base_size})


class MIMOUNetDeblur(_Regression):
    """MIMO-UNet trained alone: multi-scale Charbonnier + ``fft_weight`` x FFT Charbonnier."""

    method_name = "mimo-unet"
    backbone_name = "mimo-unet"

    @register_to_config
    def __init__(self, base_channel: int = 32, num_res: int = 8, fft_weight: float = 0.1, value_range: str = "signed"):
        super().__init__()
        check_value_range(value_range)
        self.backbone = build_backbone("mimo-unet", {"base_channel": base_channel, "num_res": num_res})

    def _fft_weight(self) -> float:
        return self.config.fft_weight
