"""Several posterior samples -> their mean and per-pixel standard deviation."""
from __future__ import annotations

from typing import Callable

import torch


def sample_statistics(draw: Callable[[], torch.Tensor], samples: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Call ``draw()`` ``samples`` times; return (mean, std) with a running (Welford) update,
    so memory stays at two outputs however many samples are drawn."""
    mean = m2 = None
    for i in range(1, samples + 1):
        x = draw().double()
        if mean is None:
            mean, m2 = x.clone(), torch.zeros_like(x)
            continue
        delta = x - mean
        mean += delta / i
        m2 += delta * (x - mean)
    std = (m2 / max(samples - 1, 1)).sqrt() if samples > 1 else torch.zeros_like(mean)
    return mean.float(), std.float()
