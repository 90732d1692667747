"""What a run reports: tqdm bar, TensorBoard scalars and images, validation PSNR/SSIM.

Only the main process writes; the others get no-op objects, so callers never branch on rank.
"""
from __future__ import annotations

import math
import sys
from pathlib import Path

import torch
from einops import rearrange
from tqdm.auto import tqdm


class RunLog:
    """TensorBoard writer + progress bar of the main process (no-ops on the others)."""

    def __init__(self, out_dir: Path, total: int, initial: int, enabled: bool, tensorboard: bool = True):
        self.enabled = enabled
        self.writer = None
        self.bar = None
        if not enabled:
            return
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(log_dir=str(Path(out_dir) / "tensorboard"))
        self.bar = tqdm(total=total, initial=initial, desc="train", unit="step", dynamic_ncols=True,
                        file=sys.stderr, disable=None)

    def step(self, step: int, scalars: dict, show: dict | None = None) -> None:
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.update(1)
            if show:
                self.bar.set_postfix({k: f"{v:.4g}" for k, v in show.items()}, refresh=False)
        if self.writer is not None:
            for key, value in scalars.items():
                if value is not None and math.isfinite(value):
                    self.writer.add_scalar(key, value, step)

    def scalars(self, step: int, scalars: dict) -> None:
        if self.writer is not None:
            for key, value in scalars.items():
                self.writer.add_scalar(key, value, step)

    def images(self, step: int, images: dict) -> None:
        """``images``: name -> (N, C, H, W) in [0, 1] (clips are flattened to frames)."""
        if self.writer is None:
            return
        for name, batch in images.items():
            batch = batch.detach().float().cpu().clamp(0, 1)
            if batch.dim() == 5:
                batch = rearrange(batch, "b f c h w -> (b f) c h w")
            if batch.dim() == 3:
                batch = batch[None]
            self.writer.add_images(name, batch[:16], step, dataformats="NCHW")

    def progress(self, text: str) -> None:
        """A periodic progress line, printed only where the bar is hidden (logs, nohup, CI)."""
        if self.enabled and (self.bar is None or self.bar.disable):
            print(text, file=sys.stderr, flush=True)

    def message(self, text: str) -> None:
        if self.enabled:
            (self.bar.write if self.bar is not None else print)(text, file=sys.stderr)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        if self.writer is not None:
            self.writer.close()


def _frames(x: torch.Tensor) -> torch.Tensor:
    return rearrange(x, "b f c h w -> (b f) c h w") if x.dim() == 5 else x


@torch.no_grad()
def validate(method, batches, device, restore_kwargs: dict | None = None) -> dict:
    """Mean PSNR/SSIM (literature convention, ``deblurdiff.metrics``) of ``method.restore`` on ``batches``.

    The target is ``frames`` for exposure methods (restore returns the K sharp frames), else ``sharp``.
    The input is ``blur``, or the batch key a method names in ``validation_input`` (the autoencoder: ``sharp``).
    """
    from ..metrics.image import psnr, ssim

    psnrs, ssims = [], []
    was_training = method.training
    method.eval()
    generator = torch.Generator(device=device).manual_seed(0)
    try:
        for batch in batches:
            # reconstruction methods (the autoencoder) restore the sharp image itself
            blurred = batch[getattr(method, "validation_input", "blur")].to(device)
            target = batch["frames"] if getattr(method, "kind", "image") == "exposure" and "frames" in batch \
                else batch["sharp"]
            restored = method.restore(blurred, generator=generator, **(restore_kwargs or {}))
            pred, ref = _frames(restored.float().cpu()), _frames(target.float().cpu())
            psnrs.append(psnr(pred, ref))
            ssims.append(ssim(pred, ref))
    finally:
        method.train(was_training)
    if not psnrs:
        return {}
    return {"val/psnr": torch.cat(psnrs).clamp(max=100.0).mean().item(), "val/ssim": torch.cat(ssims).mean().item()}
