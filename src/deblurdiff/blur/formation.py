"""Blur formation: a blurred frame is the average of the sharp sub-frames seen during exposure.

Two conventions exist in the field and both are offered (CONVENTIONS.md):

* ``gamma=None`` — average the gamma-encoded values as stored (GoPro ``blur``; what papers
  after 2019 use).
* ``gamma=g`` — decode with the power-law camera response ``x ** g``, average in linear light,
  re-encode with ``x ** (1/g)`` (GoPro ``blur_gamma``; physically correct for a sensor).
  ``gamma="srgb"`` uses the exact piecewise sRGB transfer curve instead of a pure power law.

Frames are stacked on the frame axis ``dim`` (default ``-4``: ``(..., K, C, H, W)``). Everything
is a tensor expression, so batches of clips cost one call.
"""
from __future__ import annotations

import torch

from ..errors import InputError

#: The camera response GoPro's ``blur_gamma`` was made with (a plain 2.2 power law).
DEFAULT_GAMMA = 2.2


def to_linear(x: torch.Tensor, gamma: float | str = DEFAULT_GAMMA) -> torch.Tensor:
    """Gamma-encoded [0, 1] -> linear light (power law ``x ** gamma``, or ``"srgb"``)."""
    x = x.clamp(0.0, 1.0)
    if gamma == "srgb":
        return torch.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)
    return x ** _exponent(gamma)


def from_linear(x: torch.Tensor, gamma: float | str = DEFAULT_GAMMA) -> torch.Tensor:
    """Linear light -> gamma-encoded [0, 1] (inverse of :func:`to_linear`)."""
    x = x.clamp(0.0, 1.0)
    if gamma == "srgb":
        return torch.where(x <= 0.0031308, x * 12.92, 1.055 * x ** (1 / 2.4) - 0.055)
    return x ** (1.0 / _exponent(gamma))


def _exponent(gamma) -> float:
    if isinstance(gamma, str) or not gamma > 0:
        raise InputError(f"gamma must be a positive number or 'srgb', got {gamma!r}")
    return float(gamma)


def temporal_average(frames: torch.Tensor, gamma: float | str | None = None, dim: int = -4) -> torch.Tensor:
    """Average sharp sub-frames along ``dim``; in linear light when ``gamma`` is given."""
    if frames.shape[dim] == 0:
        raise InputError("temporal_average needs at least one frame; got an empty frame axis")
    if gamma is None:
        return frames.mean(dim=dim)
    return from_linear(to_linear(frames, gamma).mean(dim=dim), gamma)


def window_average(frames: torch.Tensor, window: int, stride: int | None = None,
                   gamma: float | str | None = None) -> torch.Tensor:
    """Blur a high-frame-rate clip ``(N, C, H, W)`` into ``(M, C, H, W)``.

    Output frame ``m`` is the average of frames ``m*stride ... m*stride+window-1`` (stride
    defaults to ``window``: back-to-back exposures, as GoPro was made). ``unfold`` makes the
    windows a view, so no frame is copied per window.
    """
    n = frames.shape[0]
    stride = window if stride is None else stride
    if window < 1 or stride < 1:
        raise InputError(f"window and stride must be >= 1 (got window={window}, stride={stride})")
    if n < window:
        raise InputError(f"a blur window of {window} frames needs at least {window} frames; the clip has {n}")
    values = frames if gamma is None else to_linear(frames, gamma)
    windows = values.unfold(0, window, stride)          # (M, C, H, W, window)
    mean = windows.mean(dim=-1)
    return mean if gamma is None else from_linear(mean, gamma)


def middle_index(count: int) -> int:
    """Index of the reference sharp frame among ``count`` sub-frames (5th of 10, as VDM-MD)."""
    return (count - 1) // 2


def progressive_blur(frames: torch.Tensor, fractions, gamma: float | str | None = None) -> torch.Tensor:
    """Partial exposures for BlurDM: the average over the first ``f`` of the exposure, per ``f``.

    ``frames`` ``(..., K, C, H, W)`` are K sub-frames, each standing for an equal slice of one
    exposure; the exposure is treated as piecewise constant, so a fraction ending mid-slice
    takes that slice partially (continuous in ``f``). ``f = 0`` gives the first sub-frame (the
    limit of an infinitely short exposure), ``f = 1`` the full blur. Returns
    ``(..., len(fractions), C, H, W)``. BlurDM's ``B_t = (1/a_t) * integral_0^{a_t} H`` is
    ``fractions = a_t / a_T``.
    """
    fractions = torch.as_tensor(fractions, dtype=frames.dtype, device=frames.device).flatten()
    if fractions.numel() == 0 or (fractions < 0).any() or (fractions > 1).any():
        raise InputError("progressive_blur fractions must be a non-empty list of values in [0, 1]")
    k = frames.shape[-4]
    values = frames if gamma is None else to_linear(frames, gamma)
    # Integral of the piecewise-constant exposure from 0 to f*K, in units of sub-frames:
    # full slices via a cumulative sum, plus the covered part of the next slice.
    position = fractions * k                                            # (T,)
    full = position.floor().clamp(max=k - 1).long()                     # slices fully covered
    partial = position - full.to(position.dtype)                        # covered part of slice `full`
    zeros = torch.zeros_like(values.narrow(-4, 0, 1))
    cumulative = torch.cat([zeros, values.cumsum(dim=-4)], dim=-4)      # (..., K+1, C, H, W)
    integral = cumulative.index_select(-4, full) + \
        values.index_select(-4, full) * partial.view(-1, 1, 1, 1)
    length = position.clamp(min=1e-12).view(-1, 1, 1, 1)
    mean = torch.where((position > 0).view(-1, 1, 1, 1), integral / length,
                       values.narrow(-4, 0, 1).expand_as(integral))
    return mean if gamma is None else from_linear(mean, gamma)
