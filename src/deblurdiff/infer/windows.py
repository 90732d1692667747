"""Clips of any length through a model that sees ``frames`` at a time.

Overlapping windows of ``frames`` consecutive frames; each output frame is the average over
the windows that hold it. Clips shorter than the window are padded by repeating edge frames
(symmetric reflection in time) and the padding is dropped from the result.
``batch_windows`` > 1 stacks that many windows along the batch axis per call of ``fn``, so a
model whose cost per call is dominated by per-step overhead (a diffusion sampler: one network
pass per step) runs once for several windows.
"""
from __future__ import annotations

from typing import Callable

import torch
from tqdm.auto import tqdm


def _window_starts(n: int, frames: int, overlap: int) -> list[int]:
    stride = max(1, frames - overlap)
    starts = list(range(0, max(1, n - frames + 1), stride))
    if starts[-1] + frames < n:
        starts.append(n - frames)
    return starts


def sliding_windows(fn: Callable[[torch.Tensor], torch.Tensor], clip: torch.Tensor, frames: int,
                    overlap: int | None = None, progress: bool = False, batch_windows: int = 1) -> torch.Tensor:
    """Apply ``fn`` (B, frames, C, H, W) -> same shape over a clip (B, N, C, H, W); with
    ``batch_windows`` > 1, ``fn`` receives up to that many windows stacked (window-major) on the batch."""
    n = clip.shape[1]
    if frames <= 1:
        windows = [clip[:, i:i + 1] for i in range(n)]
        outs = [fn(w) for w in tqdm(windows, desc="frames", disable=not progress, leave=False)]
        return torch.cat(outs, dim=1)
    if n < frames:
        idx = torch.arange(frames) % (2 * n)
        idx = torch.where(idx < n, idx, 2 * n - 1 - idx).clamp(0, n - 1)
        return sliding_windows(fn, clip[:, idx], frames, overlap, progress, batch_windows)[:, :n]
    overlap = frames // 2 if overlap is None else overlap
    starts = _window_starts(n, frames, overlap)
    per_call = max(1, int(batch_windows))
    groups = [starts[i:i + per_call] for i in range(0, len(starts), per_call)]
    out, count, b = None, torch.zeros(n, device=clip.device), clip.shape[0]
    for group in tqdm(groups, desc="windows", disable=not progress or len(groups) == 1, leave=False):
        stacked = torch.cat([clip[:, s:s + frames] for s in group], dim=0)
        results = fn(stacked).split(b, dim=0)
        for s, result in zip(group, results):
            if out is None:
                out = result.new_zeros(result.shape[0], n, *result.shape[2:])
            out[:, s:s + frames] += result
            count[s:s + frames] += 1
    return out / count.view(1, n, *([1] * (out.dim() - 2))).to(out.dtype)
