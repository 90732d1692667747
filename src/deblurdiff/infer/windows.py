"""Clips of any length through a model that sees ``frames`` at a time.

Overlapping windows of ``frames`` consecutive frames; each output frame is the average over
the windows that hold it. Clips shorter than the window are padded by repeating edge frames
(symmetric reflection in time) and the padding is dropped from the result.
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
                    overlap: int | None = None, progress: bool = False) -> torch.Tensor:
    """Apply ``fn`` (B, frames, C, H, W) -> same shape over a clip (B, N, C, H, W)."""
    n = clip.shape[1]
    if frames <= 1:
        windows = [clip[:, i:i + 1] for i in range(n)]
        outs = [fn(w) for w in tqdm(windows, desc="frames", disable=not progress, leave=False)]
        return torch.cat(outs, dim=1)
    if n < frames:
        idx = torch.arange(frames) % (2 * n)
        idx = torch.where(idx < n, idx, 2 * n - 1 - idx).clamp(0, n - 1)
        return sliding_windows(fn, clip[:, idx], frames, overlap, progress)[:, :n]
    overlap = frames // 2 if overlap is None else overlap
    starts = _window_starts(n, frames, overlap)
    out, count = None, torch.zeros(n, device=clip.device)
    for s in tqdm(starts, desc="windows", disable=not progress or len(starts) == 1, leave=False):
        result = fn(clip[:, s:s + frames])
        if out is None:
            out = result.new_zeros(result.shape[0], n, *result.shape[2:])
        out[:, s:s + frames] += result
        count[s:s + frames] += 1
    return out / count.view(1, n, *([1] * (out.dim() - 2))).to(out.dtype)
