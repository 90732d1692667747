"""Several posterior samples -> their mean and per-pixel standard deviation."""
from __future__ import annotations

from typing import Callable

import torch


def time_order_like(frames: torch.Tensor, reference: torch.Tensor, dim: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Each clip of ``frames`` (batch first, time along ``dim``) in the time order, as given or
    reversed, whose MSE against ``reference`` is lower; returns (ordered, reversed (B,) bool).

    A blurred exposure is the mean of its frames, the same forwards and backwards, so each
    posterior sample picks a direction at random: samples are put in one order before they are
    averaged, and scored against the truth in the better order (as the VDM-MD paper does)."""
    flipped = frames.flip(dim)
    mse = lambda x: (x - reference).square().flatten(1).mean(dim=1)  # noqa: E731
    rev = mse(flipped) < mse(frames)
    mask = rev.view(-1, *([1] * (frames.dim() - 1)))
    return torch.where(mask, flipped, frames), rev


def sample_statistics(draw: Callable[[], torch.Tensor], samples: int,
                      align: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """Call ``draw()`` ``samples`` times; return (mean, std) with a running (Welford) update,
    so memory stays at two outputs however many samples are drawn (three with ``align``).
    ``align(first, x)``, when given, maps each later draw before it is counted (e.g. into the
    first draw's time order)."""
    mean = m2 = first = None
    for i in range(1, samples + 1):
        x = draw().double()
        if mean is None:
            first = x
            mean, m2 = x.clone(), torch.zeros_like(x)
            continue
        if align is not None:
            x = align(first, x)
        delta = x - mean
        mean += delta / i
        m2 += delta * (x - mean)
    std = (m2 / max(samples - 1, 1)).sqrt() if samples > 1 else torch.zeros_like(mean)
    return mean.float(), std.float()
