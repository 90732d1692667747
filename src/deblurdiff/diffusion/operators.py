"""Measurement operators ``A`` for posterior sampling (DPS): deterministic, batched, differentiable.

Unlike the DPS reference code, whose motion-blur operator draws a new random kernel on every
call, each operator here is a pure function of its parameters, so ``A(x)`` is reproducible and
the gradient through it is the gradient of one fixed forward model. Linear operators also offer
``transpose`` (the exact adjoint, tested with <A x, y> = <x, A^T y>).
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from einops import rearrange

from deblurdiff.errors import InputError


class TemporalAverage(torch.nn.Module):
    """A blurred image as the mean of the sharp frames: ``(B, F, C, H, W) -> (B, C, H, W)``
    (any shape: the mean is taken over ``dim``)."""

    def __init__(self, dim: int = 1):
        super().__init__()
        self.dim = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=self.dim)

    def transpose(self, y: torch.Tensor, num_frames: int) -> torch.Tensor:
        """Adjoint of the mean: each frame receives y / F."""
        y = y.unsqueeze(self.dim)
        shape = list(y.shape)
        shape[self.dim] = num_frames
        return y.expand(shape) / num_frames


class DecodedTemporalAverage(torch.nn.Module):
    """VDM-MD's measurement: a latent clip is decoded frame by frame and averaged in pixel space.

    ``z`` is ``(B, F, c, h, w)`` (frames along ``frames_dim``); the frames are folded into the
    batch so the decoder runs once on ``(B*F, c, h, w)``; the result ``(B, C, H, W)`` is the mean
    of the decoded frames. Latents are multiplied by ``latent_std`` before decoding: the prior
    works on ``z_vae / latent_std`` (VDM-MD: 1.1186 BAIR, 0.2185 CLEVRER), the decoder on z_vae.
    """

    def __init__(self, decoder: Callable[[torch.Tensor], torch.Tensor], frames_dim: int = 1,
                 latent_std: float = 1.0):
        super().__init__()
        self.decoder = decoder
        self.frames_dim = frames_dim
        self.latent_std = float(latent_std)

    def decode_frames(self, z: torch.Tensor) -> torch.Tensor:
        """``(B, F, c, h, w)`` latents (frames on ``frames_dim``) -> ``(B, F, C, H, W)`` pixels."""
        if z.ndim != 5:
            raise InputError(f"DecodedTemporalAverage expects a 5-D latent clip, got shape {tuple(z.shape)}")
        z = z.movedim(self.frames_dim, 1)
        batch = z.shape[0]
        frames = self.decoder(rearrange(z, "b f c h w -> (b f) c h w") * self.latent_std)
        return rearrange(frames, "(b f) c h w -> b f c h w", b=batch)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.decode_frames(z).mean(dim=1)


def _centre_padding(kernel_shape) -> tuple[int, int, int, int]:
    """F.pad widths (left, right, top, bottom) that keep the image size when *correlating* with
    a kernel whose centre is at index size // 2 (scipy.ndimage's convention, also for even
    sizes). Convolution correlates with the flipped kernel, whose centre is mirrored, so it
    uses the same widths with the sides swapped."""
    kh, kw = kernel_shape
    return kw // 2, (kw - 1) // 2, kh // 2, (kh - 1) // 2


class KernelBlur(torch.nn.Module):
    """Convolution with a known blur kernel, per channel, same size output.

    ``kernel``: ``(kh, kw)`` shared by the batch, or ``(B, kh, kw)`` one per sample. ``padding``:
    ``"reflect"`` (mirror without repeating the edge, scipy's ``mode="mirror"``) or
    ``"circular"`` (periodic, the FFT model). This is true convolution (the kernel is flipped
    before torch's cross-correlation), so it matches ``scipy.ndimage.convolve``.

    ``transpose``: for circular padding, correlation with the kernel under circular padding; for
    reflect padding the adjoint must fold the mirrored border back, which is computed exactly as
    the vector-Jacobian product of ``forward`` (the operator is linear, so this is A^T y).
    """

    def __init__(self, kernel: torch.Tensor, padding: str = "reflect"):
        super().__init__()
        if padding not in ("reflect", "circular"):
            raise InputError(f"KernelBlur padding must be 'reflect' or 'circular', got {padding!r}")
        kernel = torch.as_tensor(kernel)
        if kernel.ndim not in (2, 3):
            raise InputError(f"blur kernel must be (kh, kw) or (B, kh, kw), got shape {tuple(kernel.shape)}")
        self.register_buffer("kernel", kernel.float())
        self.padding = padding

    def _filter(self, x: torch.Tensor, weight2d: torch.Tensor, pad: tuple[int, int, int, int]) -> torch.Tensor:
        """Depthwise cross-correlation of (B, C, H, W) with weight2d (kh, kw) or (B, kh, kw);
        per-sample kernels fold the batch into the channels so one grouped conv does all."""
        if x.ndim != 4:
            raise InputError(f"KernelBlur expects images (B, C, H, W), got shape {tuple(x.shape)}")
        b, c, h, w = x.shape
        padded = F.pad(x, pad, mode=self.padding)
        weight2d = weight2d.to(x.dtype)
        if weight2d.ndim == 2:
            weight = weight2d.expand(c, 1, *weight2d.shape)
            return F.conv2d(padded, weight, groups=c)
        if weight2d.shape[0] != b:
            raise InputError(f"{weight2d.shape[0]} kernels for a batch of {b}; give one kernel or one per sample")
        weight = rearrange(weight2d.unsqueeze(1).expand(b, c, *weight2d.shape[1:]), "b c kh kw -> (b c) 1 kh kw")
        out = F.conv2d(rearrange(padded, "b c h w -> 1 (b c) h w"), weight, groups=b * c)
        return rearrange(out, "1 (b c) h w -> b c h w", b=b)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        left, right, top, bottom = _centre_padding(self.kernel.shape[-2:])
        return self._filter(x, self.kernel.flip(-1, -2), (right, left, bottom, top))

    def transpose(self, y: torch.Tensor) -> torch.Tensor:
        if self.padding == "circular":
            # Correlation with the kernel is the adjoint of convolution under periodic boundaries.
            return self._filter(y, self.kernel, _centre_padding(self.kernel.shape[-2:]))
        probe = torch.zeros_like(y, requires_grad=True)
        with torch.enable_grad():
            (adjoint,) = torch.autograd.grad(self.forward(probe), probe, grad_outputs=y, create_graph=y.requires_grad)
        return adjoint
