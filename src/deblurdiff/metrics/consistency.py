"""Figures that per-frame PSNR misses: re-blur consistency and temporal consistency.

* Re-blur consistency (VDM-MD): a set of recovered exposure frames should average back to the
  blurred input, so PSNR(mean of output frames, input) measures physical plausibility without
  ground truth.
* Temporal consistency: per-frame PSNR hides flicker, so we compare how the output changes from
  frame to frame with how the ground truth changes: the mean absolute error, on the [0, 255]
  scale, between ``pred[t+1] - pred[t]`` and ``gt[t+1] - gt[t]`` (lower is better; 0 when the
  output moves exactly like the truth, even if it is offset by a constant).
* Exposure order: a blurred image does not say which way time ran, so VDM-MD is scored on the
  better of the forward and reversed frame order (stated in its papers); ``best_order`` does it.
"""
from __future__ import annotations

import torch

from ..blur.formation import middle_index
from ..errors import InputError
from .image import Convention, psnr, ssim, to_255


def reblur_psnr(frames: torch.Tensor, blurred: torch.Tensor, convention: Convention = Convention()) -> torch.Tensor:
    """(B, K, C, H, W) recovered frames and (B, C, H, W) blurred input -> (B,) PSNR in dB."""
    if frames.dim() != 5:
        raise InputError(f"expected (B, K, C, H, W) frames, got shape {tuple(frames.shape)}")
    return psnr(frames.mean(dim=1), blurred, convention)


def temporal_error(pred: torch.Tensor, target: torch.Tensor, quantize: bool = True) -> torch.Tensor:
    """(B, F, C, H, W) clips -> (B,) mean |d pred/dt - d target/dt| on the [0, 255] scale."""
    if pred.shape != target.shape or pred.dim() != 5 or pred.shape[1] < 2:
        raise InputError(f"temporal consistency needs two clips (B, F>=2, C, H, W) of one shape, got "
                         f"{tuple(pred.shape)} and {tuple(target.shape)}")
    p, t = to_255(pred, quantize), to_255(target, quantize)
    return (p.diff(dim=1) - t.diff(dim=1)).abs().flatten(1).mean(dim=1).float()


def best_order(frames: torch.Tensor, target: torch.Tensor, convention: Convention = Convention()) -> dict:
    """Score (B, K, C, H, W) frames against the truth in the better of both time orders.

    Returns per-case tensors: ``psnr``/``ssim`` of the middle frame (``blur.formation.middle_index``: the 5th
    of 10, as in VDM-MD's protocol, after choosing the order), ``psnr_all`` (mean over
    frames) and ``reversed`` (True where the reversed order has the lower clip MSE).
    """
    if frames.shape != target.shape or frames.dim() != 5:
        raise InputError(f"expected two (B, K, C, H, W) frame sets of one shape, got {tuple(frames.shape)} "
                         f"and {tuple(target.shape)}")
    b, k = frames.shape[:2]
    flat = lambda x: x.flatten(0, 1)
    forward = psnr(flat(frames), flat(target), convention).view(b, k)
    backward = psnr(flat(frames.flip(1)), flat(target), convention).view(b, k)
    # choose by clip MSE, not mean PSNR: one perfect frame makes a mean of PSNRs infinite
    truth = to_255(target, convention.quantize)
    mse = lambda x: (to_255(x, convention.quantize) - truth).pow(2).flatten(1).mean(dim=1)
    rev = mse(frames.flip(1)) < mse(frames)
    ordered = torch.where(rev.view(b, 1, 1, 1, 1), frames.flip(1), frames)
    mid = middle_index(k)
    return {"psnr": psnr(ordered[:, mid], target[:, mid], convention),
            "ssim": ssim(ordered[:, mid], target[:, mid], convention),
            "psnr_all": torch.where(rev.view(b, 1), backward, forward).mean(dim=1), "reversed": rev}
