"""Measurement operators: reference values (scipy), adjoints, batching, decoder folding."""
import numpy as np
import pytest
import scipy.ndimage
import torch

from deblurdiff.diffusion import DecodedTemporalAverage, KernelBlur, TemporalAverage
from deblurdiff.errors import InputError


def adjoint_gap(op_forward, op_transpose, x, y):
    """| <A x, y> - <x, A^T y> | relative to the scale of the inner products."""
    lhs = (op_forward(x) * y).sum()
    rhs = (x * op_transpose(y)).sum()
    return (abs(lhs - rhs) / (abs(lhs) + 1e-12)).item()


def test_temporal_average_value_and_adjoint():
    gen = torch.Generator().manual_seed(0)
    clip = torch.randn(2, 5, 3, 4, 4, generator=gen, dtype=torch.float64)
    op = TemporalAverage(dim=1)
    y = op(clip)
    assert y.shape == (2, 3, 4, 4)
    torch.testing.assert_close(y, sum(clip[:, f] for f in range(5)) / 5)
    probe = torch.randn(2, 3, 4, 4, generator=gen, dtype=torch.float64)
    assert adjoint_gap(op, lambda v: op.transpose(v, 5), clip, probe) < 1e-12


@pytest.mark.parametrize("padding,scipy_mode", [("reflect", "mirror"), ("circular", "wrap")])
@pytest.mark.parametrize("ksize", [(5, 5), (4, 6), (3, 1)])
def test_kernel_blur_matches_scipy_convolve(padding, scipy_mode, ksize):
    gen = torch.Generator().manual_seed(1)
    image = torch.rand(2, 3, 12, 10, generator=gen, dtype=torch.float64)
    kernel = torch.rand(*ksize, generator=gen, dtype=torch.float64)
    kernel /= kernel.sum()
    out = KernelBlur(kernel, padding=padding)(image)
    ref = np.stack([np.stack([scipy.ndimage.convolve(image[b, c].numpy(), kernel.numpy(), mode=scipy_mode)
                              for c in range(3)]) for b in range(2)])
    np.testing.assert_allclose(out.numpy(), ref, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("padding", ["reflect", "circular"])
@pytest.mark.parametrize("ksize", [(5, 5), (4, 6)])
def test_kernel_blur_transpose_is_adjoint(padding, ksize):
    gen = torch.Generator().manual_seed(2)
    op = KernelBlur(torch.rand(*ksize, generator=gen), padding=padding).double()
    x = torch.randn(2, 3, 9, 11, generator=gen, dtype=torch.float64)
    y = torch.randn(2, 3, 9, 11, generator=gen, dtype=torch.float64)
    assert adjoint_gap(op, op.transpose, x, y) < 1e-10


def test_circular_transpose_is_correlation():
    gen = torch.Generator().manual_seed(3)
    kernel = torch.rand(4, 3, generator=gen, dtype=torch.float64)
    image = torch.rand(1, 1, 8, 8, generator=gen, dtype=torch.float64)
    out = KernelBlur(kernel, padding="circular").double().transpose(image)
    ref = scipy.ndimage.correlate(image[0, 0].numpy(), kernel.numpy(), mode="wrap")
    np.testing.assert_allclose(out[0, 0].numpy(), ref, rtol=1e-6, atol=1e-8)


def test_kernel_blur_per_sample_kernels_and_identity():
    gen = torch.Generator().manual_seed(4)
    images = torch.rand(3, 2, 8, 8, generator=gen)
    kernels = torch.rand(3, 5, 5, generator=gen)
    batched = KernelBlur(kernels)(images)
    for b in range(3):
        torch.testing.assert_close(batched[b:b + 1], KernelBlur(kernels[b])(images[b:b + 1]))
    delta = torch.zeros(5, 5)
    delta[2, 2] = 1.0
    torch.testing.assert_close(KernelBlur(delta)(images), images)
    # Deterministic: the same call twice gives the same answer (unlike a random-kernel operator).
    assert torch.equal(KernelBlur(kernels)(images), batched)
    with pytest.raises(InputError, match="per sample"):
        KernelBlur(kernels)(images[:2])
    with pytest.raises(InputError, match="padding"):
        KernelBlur(delta, padding="zeros")


class CountingDecoder(torch.nn.Module):
    """A tiny conv decoder (2x upsample, 4 -> 3 channels) that counts its calls."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(4, 3, 3, padding=1)
        self.calls = 0

    def forward(self, z):
        self.calls += 1
        return self.conv(torch.nn.functional.interpolate(z, scale_factor=2))


@pytest.mark.parametrize("frames_dim", [1, 2])
def test_decoded_temporal_average(frames_dim):
    torch.manual_seed(0)
    decoder = CountingDecoder()
    z = torch.randn(2, 5, 4, 6, 6)  # (B, F, c, h, w)
    latent = z.movedim(1, frames_dim)
    op = DecodedTemporalAverage(decoder, frames_dim=frames_dim, latent_std=0.5)
    out = op(latent)
    assert decoder.calls == 1  # frames folded into the batch: one decoder call
    ref = torch.stack([decoder(z[:, f] * 0.5) for f in range(5)], dim=1).mean(1)
    assert out.shape == (2, 3, 12, 12)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-6)
    latent.requires_grad_(True)
    op(latent).square().sum().backward()
    assert latent.grad is not None and latent.grad.abs().sum() > 0
    with pytest.raises(InputError, match="5-D"):
        op(torch.randn(2, 4, 6, 6))
