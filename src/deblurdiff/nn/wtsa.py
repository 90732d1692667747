"""Window-based temporal self-attention (WTSA) with multi-frame relative positional encoding (MRPE).

DIVD (arXiv 2412.00773) fuses the F frames of a clip inside a 2-D UNet whose batch holds
``B*F`` frames. At chosen levels the feature maps of all frames are cut into non-overlapping
``M x M`` windows and self-attention runs over the ``F*M*M`` tokens of one window position
across all frames, so a feature that moved by less than a window between frames can still find
its match (implicit alignment without optical flow)::

    (B*F, C, H, W) -> (B * H/M * W/M, F*M*M, C)      token order inside a window: (frame, dy, dx)

MRPE gives the attention (a) a learnable frame embedding added to the tokens and (b) a Swin-style
relative position bias looked up in a table of ``(2F-1)(2M-1)^2`` entries per head, indexed by
(frame offset, dy offset, dx offset). No library ships a 3-D (time x window) relative bias, so
the index is built here; the attention itself is ``F.scaled_dot_product_attention`` with the bias
passed as ``attn_mask``.

Ablations: ``temporal=False`` keeps the same windows but lets tokens attend only within their own
frame (frames processed independently, same parameter shapes apart from the bias table);
``mrpe=False`` drops both the frame embedding and the bias.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from .layout import PointwiseConv2d, inference_path
from .nafnet import LayerNorm2d


def relative_position_index(frames: int, window: int) -> torch.Tensor:
    """``(L, L)`` long tensor, ``L = frames*window**2``: the bias-table row for each token pair.

    Token ``i = (f, y, x)`` (frame slowest); the row of pair ``(i, j)`` is
    ``((f_i - f_j + F - 1) * (2M - 1) + (y_i - y_j + M - 1)) * (2M - 1) + (x_i - x_j + M - 1)``.
    """
    f, y, x = torch.meshgrid(torch.arange(frames), torch.arange(window), torch.arange(window), indexing="ij")
    coords = torch.stack([f.flatten(), y.flatten(), x.flatten()])            # (3, L)
    rel = coords[:, :, None] - coords[:, None, :]                            # (3, L, L)
    span = 2 * window - 1
    return ((rel[0] + frames - 1) * span + (rel[1] + window - 1)) * span + (rel[2] + window - 1)


class WindowTemporalAttention(nn.Module):
    """Multi-head self-attention over ``F x M x M`` space-time windows of a ``(B*F, C, H, W)`` map.

    ``frames`` is the largest clip length the module accepts (the size of the MRPE tables); a
    shorter clip uses the first rows of the frame embedding and the matching offsets.
    H and W are zero-padded to multiples of ``window``; padded tokens are masked out as keys, so
    the output at real pixels does not depend on the padding.
    """

    def __init__(self, channels: int, window: int, frames: int = 4, heads: int = 1, temporal: bool = True,
                 mrpe: bool = True, max_windows_per_chunk: int = 8192):
        super().__init__()
        if channels % heads:
            raise ValueError(f"channels ({channels}) must be divisible by heads ({heads})")
        self.channels, self.window, self.frames, self.heads = channels, window, frames, heads
        self.temporal, self.mrpe = temporal, mrpe
        self.max_windows_per_chunk = max_windows_per_chunk
        self.qkv = nn.Linear(channels, 3 * channels)
        self.proj = nn.Linear(channels, channels)
        span_frames = frames if temporal else 1
        if mrpe:
            self.frame_embedding = nn.Parameter(torch.zeros(frames, channels))
            self.bias_table = nn.Parameter(torch.zeros((2 * span_frames - 1) * (2 * window - 1) ** 2, heads))
            nn.init.trunc_normal_(self.frame_embedding, std=0.02)
            nn.init.trunc_normal_(self.bias_table, std=0.02)
            self.register_buffer("bias_index", relative_position_index(span_frames, window), persistent=False)

    def relative_bias(self, frames: int) -> torch.Tensor:
        """``(heads, L, L)`` bias for a clip of ``frames`` frames (``L = frames*M*M``)."""
        tokens = frames * self.window ** 2
        full = self.bias_index.shape[0]
        if tokens == full:
            index = self.bias_index
        else:
            # The first ``tokens`` tokens of the full layout are the first ``frames`` frames; their
            # offsets are a subset of the full table's, so the same rows apply.
            index = self.bias_index[:tokens, :tokens]
        return rearrange(self.bias_table[index], "i j h -> h i j")

    def forward(self, x: torch.Tensor, frames: int) -> torch.Tensor:
        """``x``: ``(B*F, C, H, W)`` normalised features -> attention output of the same shape."""
        bf, c, h, w = x.shape
        if bf % frames:
            raise ValueError(f"batch {bf} is not a multiple of the clip length {frames}")
        if frames > self.frames:
            raise ValueError(f"clip of {frames} frames exceeds the module's {self.frames}")
        m = self.window
        pad_h, pad_w = (-h) % m, (-w) % m
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h))
        group = frames if self.temporal else 1
        tokens = rearrange(x, "(b f) c (nh m1) (nw m2) -> (b nh nw) (f m1 m2) c", f=group, m1=m, m2=m)
        n_h, n_w = (h + pad_h) // m, (w + pad_w) // m
        if self.mrpe:
            emb = self.frame_embedding[:frames]
            if self.temporal:
                tokens = tokens + emb.repeat_interleave(m * m, dim=0)
            else:
                # Frames are separate windows here: add each frame's vector to its own windows.
                per_frame = rearrange(tokens, "(b f n) l c -> b f n l c", f=frames, n=n_h * n_w)
                tokens = (per_frame + emb[None, :, None, None, :]).flatten(0, 2)
        mask = self.relative_bias(group).to(tokens.dtype)[None] if self.mrpe else None
        if pad_h or pad_w:
            valid = torch.zeros(h + pad_h, w + pad_w, dtype=torch.bool, device=x.device)
            valid[:h, :w] = True
            valid = rearrange(valid, "(nh m1) (nw m2) -> (nh nw) (m1 m2)", m1=m, m2=m).repeat(1, group)
            key_bias = torch.zeros(valid.shape, dtype=tokens.dtype, device=x.device)
            key_bias = key_bias.masked_fill(~valid, float("-inf"))[:, None, None, :]   # (nW, 1, 1, L)
            key_bias = key_bias.repeat(tokens.shape[0] // (n_h * n_w), 1, 1, 1)
            mask = key_bias if mask is None else mask + key_bias
        # The inference path on a CPU: explicit attention for small windows (works in place: no autograd).
        explicit = inference_path(self) and tokens.device.type == "cpu" and tokens.shape[1] <= 64
        out = self._attend(tokens, mask, explicit=explicit)
        if inference_path(self):  # back to the map in channels_last (pixel-major), the layout of the residual
            out = rearrange(out, "(b nh nw) (f m1 m2) c -> (b f) (nh m1) (nw m2) c", nh=n_h, nw=n_w, f=group, m1=m, m2=m)
            out = out[:, :h, :w].permute(0, 3, 1, 2)
            return out.contiguous(memory_format=torch.channels_last) if pad_h or pad_w else out
        out = rearrange(out, "(b nh nw) (f m1 m2) c -> (b f) c (nh m1) (nw m2)", nh=n_h, nw=n_w, f=group, m1=m, m2=m)
        return out[:, :, :h, :w]

    def _attend(self, tokens: torch.Tensor, mask: torch.Tensor | None, explicit: bool = False) -> torch.Tensor:
        """Attention over windows, in chunks of windows so a 4K frame does not need one huge buffer.

        ``explicit``: the same arithmetic as ``scaled_dot_product_attention`` written as two batched
        matmuls (:func:`small_window_attention`); on a CPU, for windows of a few dozen tokens (DIVD's
        36 at 3x3x4), it costs about half of SDPA's kernels, so the inference path uses it there."""
        outs = []
        step = self.max_windows_per_chunk
        for start in range(0, tokens.shape[0], step):
            chunk = tokens[start:start + step]
            chunk_mask = mask
            if mask is not None and mask.shape[0] > 1:
                chunk_mask = mask[start:start + step]
            if explicit:
                q, k, v = rearrange(self.qkv(chunk), "n l (three h d) -> three (n h) l d", three=3, h=self.heads)
                n, l = chunk.shape[:2]
                bias = None
                if chunk_mask is not None:
                    bias = chunk_mask.expand(n, self.heads, l, l).reshape(n * self.heads, l, l) \
                        if chunk_mask.shape[1] > 1 or chunk_mask.shape[0] > 1 else chunk_mask[0]
                out = rearrange(small_window_attention(q, k, v, bias), "(n h) l d -> n l (h d)", h=self.heads)
            else:
                q, k, v = rearrange(self.qkv(chunk), "n l (three h d) -> three n h l d", three=3, h=self.heads)
                out = rearrange(F.scaled_dot_product_attention(q, k, v, attn_mask=chunk_mask), "n h l d -> n l (h d)")
            outs.append(self.proj(out))
        return torch.cat(outs) if len(outs) > 1 else outs[0]


def small_window_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """``softmax(q k^T / sqrt(d) + bias) v`` for ``(N, L, d)`` batches of short sequences.

    PyTorch's CPU softmax normalises one row at a time, which for rows of a few dozen logits costs
    several times an elementwise pass. Here the logits are shifted by their overall maximum
    (instead of each row's), exponentiated in place, and the row sums come out of the second
    matmul as an extra column of ones appended to ``v``. A row whose terms all underflow after the
    shift (its maximum ~87 below the overall one) would divide 0 by 0: then the row-wise softmax is
    used instead, so the result is the same as SDPA's up to rounding in every case.
    """
    scale = q.shape[-1] ** -0.5
    kt = k.transpose(-1, -2)
    logits = torch.bmm(q, kt).mul_(scale) if bias is None else torch.baddbmm(bias.to(q.dtype), q, kt, alpha=scale)
    weights = logits.sub_(logits.amax()).exp_()
    ones = torch.ones(*v.shape[:-1], 1, dtype=v.dtype, device=v.device)
    total = torch.bmm(weights, torch.cat([v, ones], dim=-1))
    out, norm = total[..., :-1], total[..., -1:]
    if not bool((norm > 1e-30).all()):
        logits = torch.bmm(q, kt).mul_(scale) if bias is None else torch.baddbmm(bias.to(q.dtype), q, kt, alpha=scale)
        return torch.bmm(logits.softmax(dim=-1), v)
    return out / norm


class WTSABlock(nn.Module):
    """Pre-norm residual block: ``x + gamma1 * WTSA(LN(x))``, then ``x + gamma2 * GatedFFN(LN(x))``.

    The residual scales start at zero (as NAFNet's beta/gamma) so an added block begins as the
    identity and does not disturb a network that is learning its convolutional path first.
    """

    def __init__(self, channels: int, window: int, frames: int = 4, heads: int = 1, temporal: bool = True,
                 mrpe: bool = True, ffn_expand: int = 2):
        super().__init__()
        self.norm1 = LayerNorm2d(channels)
        self.attn = WindowTemporalAttention(channels, window, frames, heads, temporal, mrpe)
        self.norm2 = LayerNorm2d(channels)
        hidden = channels * ffn_expand
        self.ffn_in = PointwiseConv2d(channels, 2 * hidden)
        self.ffn_out = PointwiseConv2d(hidden, channels)
        self.gamma1 = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.gamma2 = nn.Parameter(torch.zeros(1, channels, 1, 1))

    def forward(self, x: torch.Tensor, frames: int) -> torch.Tensor:
        x = x + self.gamma1 * self.attn(self.norm1(x), frames)
        a, b = self.ffn_in(self.norm2(x)).chunk(2, dim=1)
        return x + self.gamma2 * self.ffn_out(a * b)
