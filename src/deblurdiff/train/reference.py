"""A reference workload for the trainer: a small residual conv net and a synthetic blur set.

Not a deblurring method to ship: it exists so the trainer's tests and throughput benchmark run
on a real (tiny) image-to-image training problem with no other part of the package involved.
Use it from a config as ``method: deblurdiff.train.reference:TinyConvDeblur`` and
``data: {source: deblurdiff.train.reference:synthetic_pairs}``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import register_to_config
from torch.utils.data import Dataset

from ..methods.base import DeblurMethod
from ..tensors import to_image, to_model


class TinyConvDeblur(DeblurMethod):
    """``head`` -> ``body`` (residual conv blocks) -> ``tail``, predicting a residual on the blurred input."""

    method_name = "tiny-conv"
    kind = "image"

    @register_to_config
    def __init__(self, channels: int = 16, blocks: int = 2, in_channels: int = 3):
        super().__init__()
        self.head = torch.nn.Conv2d(in_channels, channels, 3, padding=1)
        self.body = torch.nn.ModuleList(
            torch.nn.Sequential(torch.nn.Conv2d(channels, channels, 3, padding=1), torch.nn.SiLU(),
                                torch.nn.Conv2d(channels, channels, 3, padding=1)) for _ in range(blocks))
        self.tail = torch.nn.Conv2d(channels, in_channels, 3, padding=1)

    def forward(self, blurred_model_range: torch.Tensor) -> torch.Tensor:
        h = F.silu(self.head(blurred_model_range))
        for block in self.body:
            h = h + block(h)
        return blurred_model_range + self.tail(h)

    def training_loss(self, batch: dict) -> dict:
        """L1 (default) or MSE (``stage_options: {loss: mse}``) in the model range."""
        pred = self(to_model(batch["blur"]))
        target = to_model(batch["sharp"])
        kind = batch.get("stage_options", {}).get("loss", "l1")
        loss = F.mse_loss(pred, target) if kind == "mse" else F.l1_loss(pred, target)
        return {"loss": loss, "mse": F.mse_loss(pred.detach(), target)}

    @torch.no_grad()
    def restore(self, blurred, *, steps=None, sampler=None, generator=None, progress=False):
        return to_image(self(to_model(blurred)))

    @torch.no_grad()
    def sample_images(self, batch: dict) -> dict:
        return {"blur": batch["blur"][:4], "restored": self.restore(batch["blur"][:4]), "sharp": batch["sharp"][:4]}


class SyntheticBlurPairs(Dataset):
    """Smooth random images and their horizontal box blur; item ``i`` is fixed by ``(seed, i)``.

    With ``augment`` a random flip is drawn from the *global* torch RNG, like common augmentation
    code does, which is what the trainer's per-item seeding has to make reproducible.
    """

    def __init__(self, length: int = 256, size: int = 32, seed: int = 0, augment: bool = True):
        self.length, self.size, self.seed, self.augment = length, size, seed, augment

    def __len__(self):
        return self.length

    def __getitem__(self, index: int) -> dict:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + int(index))
        coarse = torch.rand(1, 3, self.size // 4, self.size // 4, generator=generator)
        sharp = F.interpolate(coarse, size=(self.size, self.size), mode="bicubic", align_corners=False).clamp(0, 1)
        length = 2 * int(torch.randint(1, 4, (1,), generator=generator)) + 1
        kernel = torch.full((3, 1, 1, length), 1.0 / length)
        blur = F.conv2d(F.pad(sharp, (length // 2, length // 2, 0, 0), mode="replicate"), kernel, groups=3)
        sharp, blur = sharp[0], blur[0]
        if self.augment and torch.rand(()) < 0.5:
            sharp, blur = sharp.flip(-1), blur.flip(-1)
        return {"blur": blur.contiguous(), "sharp": sharp.contiguous(), "index": torch.tensor(int(index))}


def synthetic_pairs(data_cfg) -> SyntheticBlurPairs:
    """Data-source factory (``data.source: deblurdiff.train.reference:synthetic_pairs``)."""
    return SyntheticBlurPairs(length=data_cfg.length, size=data_cfg.crop, seed=data_cfg.seed, augment=data_cfg.augment)
