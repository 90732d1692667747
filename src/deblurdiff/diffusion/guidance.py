"""Classifier-free guidance (Ho & Salimans 2022) as a denoiser wrapper.

``pred = uncond + scale * (cond - uncond)``, computed from one batched forward over the
concatenation ``[cond; uncond]`` so the model runs once per step. Applied in whatever
parameterisation the model predicts (eps or v; linear in both, as VDD uses for v).
"""
from __future__ import annotations

from typing import Any, Callable

import torch

from deblurdiff.errors import ConfigError


def _concat(a: Any, b: Any) -> Any:
    """Concatenate two conditioning structures along the batch dimension (tensors, dicts,
    lists/tuples of them; None stays None, so unconditional models work too)."""
    if a is None and b is None:
        return None
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        if a.shape[1:] != b.shape[1:]:
            raise ConfigError(f"cond and uncond must have matching shapes past the batch dim: "
                              f"{tuple(a.shape)} vs {tuple(b.shape)}")
        return torch.cat([a, b], dim=0)
    if isinstance(a, dict) and isinstance(b, dict) and a.keys() == b.keys():
        return {k: _concat(a[k], b[k]) for k in a}
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)) and len(a) == len(b):
        return type(a)(_concat(x, y) for x, y in zip(a, b))
    raise ConfigError(f"cond and uncond must have the same structure, got {type(a).__name__} and {type(b).__name__}")


def cfg_denoiser(model_fn: Callable, cond: Any, uncond: Any, scale: float | torch.Tensor,
                 short_circuit: bool = True) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """A denoiser ``(x_t, t) -> prediction`` applying guidance ``scale`` to ``model_fn(x, t, cond)``.

    ``scale == 1`` returns the conditional prediction itself (one half-size forward) unless
    ``short_circuit=False``; ``scale == 0`` is the unconditional model. ``scale`` may also be a
    tensor broadcastable against the prediction (e.g. ``(B, 1, 1, 1)`` for per-sample scales). The batch of ``cond``
    must match x_t's batch (or be broadcastable by the model).
    """

    def denoise(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if short_circuit and isinstance(scale, (int, float)) and scale == 1.0:
            return model_fn(x_t, t, cond)
        both = model_fn(torch.cat([x_t, x_t], dim=0), torch.cat([t, t], dim=0), _concat(cond, uncond))
        pred_cond, pred_uncond = both.chunk(2, dim=0)
        return pred_uncond + scale * (pred_cond - pred_uncond)

    return denoise
