"""Classical baselines: deconvolution with a known kernel helps, the blind estimate finds the motion."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from deblurdiff.errors import InputError
from deblurdiff.methods import method_class
from deblurdiff.methods.classical import (BlindDeconvolution, Identity, RichardsonLucy, Wiener, estimate_kernel,
                                          normalise_kernel, psf_to_otf)
from deblurdiff.metrics.image import Convention, psnr

EXACT = Convention(quantize=False)


def line_kernel(length: float, angle: float, size: int) -> torch.Tensor:
    """A linear motion kernel drawn with 4x supersampling."""
    k = torch.zeros(size * 4, size * 4)
    c = size * 2
    for t in np.linspace(-length / 2, length / 2, 400):
        k[int(round(c + 4 * t * math.sin(angle))), int(round(c + 4 * t * math.cos(angle)))] += 1
    k = F.avg_pool2d(k[None, None], 4)[0, 0]
    return k / k.sum()


@pytest.fixture(scope="module")
def scene():
    from skimage import data
    from skimage.transform import resize
    img = resize(data.astronaut()[30:330, 100:400], (120, 120), anti_aliasing=True).astype(np.float32)
    big = torch.from_numpy(img).permute(2, 0, 1)[None]
    kernel = line_kernel(9, 0.5, 13)
    blurred = F.conv2d(F.pad(big, (6,) * 4, mode="reflect"), kernel.flip(0, 1).expand(3, 1, -1, -1), groups=3)
    g = torch.Generator().manual_seed(0)
    crop = lambda x: x[..., 12:-12, 12:-12]
    noisy = (crop(blurred) + 0.003 * torch.randn(crop(blurred).shape, generator=g)).clamp(0, 1)
    return {"sharp": crop(big), "blur": noisy, "kernel": kernel}


def test_registry_names_resolve_to_image_methods():
    for name, cls in [("identity", Identity), ("wiener", Wiener), ("richardson-lucy", RichardsonLucy),
                      ("blind", BlindDeconvolution)]:
        assert method_class(name) is cls and cls.kind == "image" and cls.method_name == name


def test_identity_returns_the_input():
    x = torch.rand(2, 3, 16, 16)
    assert torch.equal(Identity().restore(x), x)


def test_non_blind_deconvolution_with_the_true_kernel_helps(scene):
    base = psnr(scene["blur"], scene["sharp"], EXACT).item()
    wiener = Wiener().restore(scene["blur"], kernel=scene["kernel"])
    rl = RichardsonLucy(iterations=20).restore(scene["blur"], kernel=scene["kernel"])
    assert psnr(wiener, scene["sharp"], EXACT).item() > base + 0.6
    assert psnr(rl, scene["sharp"], EXACT).item() > base + 1.5
    # the kernel given in the config is used the same way
    configured = Wiener(kernel=scene["kernel"].tolist()).restore(scene["blur"])
    assert torch.allclose(configured, wiener, atol=1e-5)


def test_wiener_inverts_a_noise_free_circular_blur():
    g = torch.Generator().manual_seed(1)
    x = torch.rand(1, 3, 32, 32, generator=g)
    k = normalise_kernel(torch.rand(5, 5, generator=g) + 0.2, 1, "cpu")
    otf = psf_to_otf(k, (32, 32))
    y = torch.fft.irfft2(torch.fft.rfft2(x) * otf, s=(32, 32))
    # undo the blur in the Fourier domain exactly as Wiener does without padding
    back = torch.fft.irfft2(otf.conj() * torch.fft.rfft2(y) / (otf.abs() ** 2 + 1e-9), s=(32, 32))
    assert torch.allclose(back, x, atol=1e-3)
    # and the kernel is applied as a convolution (flipped correlation), like F.conv2d on a flipped kernel
    direct = F.conv2d(F.pad(x, (2,) * 4, mode="circular"), k[0].flip(0, 1).expand(3, 1, 5, 5), groups=3)
    assert torch.allclose(direct, y, atol=1e-5)


def test_kernel_normalisation_and_errors():
    k = normalise_kernel(torch.ones(4, 6), 2, "cpu")
    assert k.shape == (2, 5, 7) and torch.allclose(k.sum(dim=(1, 2)), torch.ones(2))
    with pytest.raises(InputError, match="positive"):
        normalise_kernel(torch.zeros(3, 3), 1, "cpu")
    with pytest.raises(InputError, match="kh, kw"):
        normalise_kernel(torch.ones(3, 3, 3, 3), 1, "cpu")
    with pytest.raises(InputError, match="restores images"):
        Wiener().restore(torch.rand(1, 2, 3, 16, 16), kernel=torch.ones(3, 3))


def _alignment(estimate: torch.Tensor, truth: torch.Tensor) -> float:
    """Best normalised cross-correlation over small shifts (a kernel is known up to translation)."""
    size = estimate.shape[-1]
    t = F.pad(truth, ((size - truth.shape[-1]) // 2,) * 4)
    best = 0.0
    for dy in range(-3, 4):
        for dx in range(-3, 4):
            s = torch.roll(estimate, (dy, dx), dims=(0, 1))
            best = max(best, float((s * t).sum() / (s.norm() * t.norm())))
    return best


def test_blind_estimate_finds_the_motion_direction(scene):
    est = estimate_kernel(scene["blur"], kernel_size=15, iterations=3)[0]
    assert est.shape == (15, 15) and est.min() >= 0 and abs(float(est.sum()) - 1) < 1e-5
    delta = torch.zeros(15, 15)
    delta[7, 7] = 1
    # the estimate matches the true stroke far better than "no blur" or the perpendicular stroke
    assert _alignment(est, scene["kernel"]) > 0.5
    assert _alignment(est, scene["kernel"]) > _alignment(est, line_kernel(9, 0.5 + math.pi / 2, 13)) + 0.2
    assert _alignment(est, scene["kernel"]) > _alignment(delta, scene["kernel"]) + 0.2


@pytest.mark.slow
def test_blind_restoration_beats_the_blurred_input(scene):
    out = BlindDeconvolution(kernel_size=15).restore(scene["blur"])
    assert psnr(out, scene["sharp"], EXACT).item() > psnr(scene["blur"], scene["sharp"], EXACT).item() + 0.2


def test_api_runs_a_baseline_without_checkpoint():
    from deblurdiff import api
    assert isinstance(api.load("wiener", device="cpu").model, Wiener)
    x = np.random.default_rng(0).random((24, 24, 3)).astype(np.float32)
    out = api.load("identity", device="cpu").deblur(x)
    assert out.shape == x.shape and np.allclose(out, x)
