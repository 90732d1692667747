"""PSNR and SSIM in the convention of the deblurring literature, batched in torch.

Convention (docs: /work/shared/design/CONVENTIONS.md, the MATLAB ``psnr``/``ssim`` and BasicSR
``calculate_psnr/ssim(crop_border=0, test_y_channel=False)``): RGB, values in [0, 255], no border
crop, SSIM with an 11x11 Gaussian window (sigma 1.5), K1 0.01, K2 0.03, population covariance,
per channel then averaged. Papers score the *saved* 8-bit images, so inputs in [0, 1] are
**rounded to uint8 levels** first (``quantize=True``, the default); pass ``quantize=False`` to
score the raw floats. ``y_channel=True`` scores the BT.601 luma Y in [16, 235] the way BasicSR's
``to_y_channel`` does (RealBlur papers); ``crop_border=N`` drops N pixels on every side.

Written in torch rather than calling scikit-image per image because evaluation runs on batches
(and on the GPU next to the model); the tests check agreement with scikit-image to 1e-4.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..errors import InputError

SSIM_SIGMA = 1.5
SSIM_RADIUS = 5  # skimage: int(truncate * sigma + 0.5) with truncate 3.5 -> an 11x11 window
SSIM_K1, SSIM_K2 = 0.01, 0.03
DATA_RANGE = 255.0


@dataclass(frozen=True)
class Convention:
    """How images are scored; printed with every result so numbers are never ambiguous."""

    y_channel: bool = False
    crop_border: int = 0
    quantize: bool = True

    def describe(self) -> str:
        space = "Y (BT.601, BasicSR to_y_channel)" if self.y_channel else "RGB"
        crop = f"crop {self.crop_border} px" if self.crop_border else "no border crop"
        q = "rounded to uint8" if self.quantize else "unrounded floats"
        return (f"convention: {space}, range [0, 255] ({q}), {crop}; SSIM Gaussian 11x11 sigma 1.5, "
                f"K1 0.01 K2 0.03, population covariance, mean over channels")


def check_pair(pred: torch.Tensor, target: torch.Tensor) -> None:
    """Raise InputError unless both are (B, C, H, W) tensors of one shape."""
    if pred.shape != target.shape:
        raise InputError(f"prediction {tuple(pred.shape)} and ground truth {tuple(target.shape)} differ in shape; "
                         "score images of identical size (crop or resize the prediction first)")
    if pred.dim() != 4:
        raise InputError(f"expected (B, C, H, W) images, got shape {tuple(pred.shape)}")


def to_255(x01: torch.Tensor, quantize: bool = True) -> torch.Tensor:
    """[0, 1] floats -> float64 in [0, 255], rounded to 8-bit levels like a saved PNG."""
    x = x01.detach().to(torch.float64).clamp(0.0, 1.0) * DATA_RANGE
    return torch.round(x) if quantize else x


def rgb_to_y(x255: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) RGB in [0, 255] -> (B, 1, H, W) BT.601 luma in [16, 235] (BasicSR, MATLAB rgb2ycbcr)."""
    if x255.shape[1] != 3:
        raise InputError(f"y_channel needs RGB images, got {x255.shape[1]} channels")
    weights = x255.new_tensor([65.481, 128.553, 24.966]).view(1, 3, 1, 1) / DATA_RANGE
    return (x255 * weights).sum(dim=1, keepdim=True) + 16.0


def prepare(pred: torch.Tensor, target: torch.Tensor, convention: Convention = Convention()):
    """Apply the convention: [0, 255] (rounded), optional Y, optional border crop."""
    check_pair(pred, target)
    p, t = to_255(pred, convention.quantize), to_255(target, convention.quantize)
    if convention.y_channel:
        p, t = rgb_to_y(p), rgb_to_y(t)
    c = convention.crop_border
    if c:
        if 2 * c >= min(p.shape[-2:]):
            raise InputError(f"crop border {c} (--crop-border) removes the whole {p.shape[-2]}x{p.shape[-1]} image; use a smaller value")
        p, t = p[..., c:-c, c:-c], t[..., c:-c, c:-c]
    return p, t


def psnr(pred: torch.Tensor, target: torch.Tensor, convention: Convention = Convention()) -> torch.Tensor:
    """PSNR in dB per image, shape (B,); identical images give +inf (as scikit-image does)."""
    p, t = prepare(pred, target, convention)
    mse = (p - t).pow(2).flatten(1).mean(dim=1)
    return (10.0 * torch.log10(DATA_RANGE ** 2 / mse)).float()


def gaussian_window(sigma: float = SSIM_SIGMA, radius: int = SSIM_RADIUS, dtype=torch.float64, device=None):
    """The normalised 1-D Gaussian scipy.ndimage.gaussian_filter uses for this sigma and radius."""
    x = torch.arange(-radius, radius + 1, dtype=dtype, device=device)
    w = torch.exp(-0.5 * (x / sigma) ** 2)
    return w / w.sum()


def _blur_valid(x: torch.Tensor, window: torch.Tensor) -> torch.Tensor:
    """Separable Gaussian filter per channel, keeping only fully-covered pixels.

    scikit-image filters with reflected borders and then discards ``radius`` pixels on each side
    before averaging, so a 'valid' convolution gives exactly the pixels it keeps.
    """
    c, k = x.shape[1], window.numel()
    x = F.conv2d(x, window.view(1, 1, 1, k).expand(c, 1, 1, k), groups=c)
    return F.conv2d(x, window.view(1, 1, k, 1).expand(c, 1, k, 1), groups=c)


def ssim(pred: torch.Tensor, target: torch.Tensor, convention: Convention = Convention()) -> torch.Tensor:
    """Mean SSIM per image, shape (B,): per-channel mean SSIM map, averaged over channels."""
    p, t = prepare(pred, target, convention)
    if min(p.shape[-2:]) < 2 * SSIM_RADIUS + 1:
        raise InputError(f"SSIM needs images of at least 11x11 pixels, got {p.shape[-2]}x{p.shape[-1]}")
    # Filtering runs in float32 (float64 convolutions are ~20x slower on CPU). To keep the
    # variances E[x^2] - E[x]^2 accurate, values are centred on each image's channel mean first
    # (SSIM's covariance terms do not change, the means are shifted back); this agrees with
    # scikit-image's float64 result to ~1e-6.
    centre = torch.cat([p, t], dim=1).mean(dim=(2, 3), keepdim=True).view(p.shape[0], 2, -1, 1, 1).mean(1)
    pc, tc = (p - centre).float(), (t - centre).float()
    window = gaussian_window(dtype=torch.float32, device=p.device)
    stacked = torch.cat([pc, tc, pc * pc, tc * tc, pc * tc], dim=1)
    mu_pc, mu_tc, pp, tt, pt = _blur_valid(stacked, window).double().chunk(5, dim=1)
    var_p, var_t, cov = pp - mu_pc ** 2, tt - mu_tc ** 2, pt - mu_pc * mu_tc
    mu_p, mu_t = mu_pc + centre, mu_tc + centre
    c1, c2 = (SSIM_K1 * DATA_RANGE) ** 2, (SSIM_K2 * DATA_RANGE) ** 2
    ssim_map = ((2 * mu_p * mu_t + c1) * (2 * cov + c2)) / ((mu_p ** 2 + mu_t ** 2 + c1) * (var_p + var_t + c2))
    return ssim_map.flatten(2).mean(dim=2).mean(dim=1).float()

