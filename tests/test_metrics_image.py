"""PSNR/SSIM agree with scikit-image under the field's convention (CONVENTIONS.md)."""
import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from deblurdiff.errors import InputError
from deblurdiff.metrics.image import Convention, psnr, rgb_to_y, ssim


def _pair(seed=0, shape=(3, 3, 40, 52)):
    g = torch.Generator().manual_seed(seed)
    gt = torch.rand(shape, generator=g)
    # smooth structure plus noise, so SSIM is far from both 0 and 1
    gt = torch.nn.functional.avg_pool2d(gt, 5, 1, 2)
    pred = (gt + 0.08 * torch.randn(shape, generator=g)).clamp(0, 1)
    return pred, gt


def _u8(x):
    return (x.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


def test_psnr_matches_skimage_per_image():
    pred, gt = _pair()
    ours = psnr(pred, gt)
    p8, g8 = _u8(pred), _u8(gt)
    ref = [peak_signal_noise_ratio(g8[i], p8[i], data_range=255) for i in range(len(p8))]
    assert ours.shape == (3,)
    np.testing.assert_allclose(ours.numpy(), ref, atol=1e-4)


def test_ssim_matches_skimage_gaussian_convention():
    pred, gt = _pair(1)
    ours = ssim(pred, gt)
    p8, g8 = _u8(pred), _u8(gt)
    ref = [structural_similarity(g8[i], p8[i], channel_axis=-1, gaussian_weights=True, sigma=1.5,
                                 use_sample_covariance=False, data_range=255) for i in range(len(p8))]
    assert 0.2 < min(ref) < 0.99
    np.testing.assert_allclose(ours.numpy(), ref, atol=1e-4)


def test_y_channel_and_crop_match_skimage_on_basicsr_luma():
    pred, gt = _pair(2)
    conv = Convention(y_channel=True, crop_border=4)
    p8, g8 = _u8(pred).astype(np.float64), _u8(gt).astype(np.float64)
    w = np.array([65.481, 128.553, 24.966]) / 255.0
    py, gy = (p8 @ w + 16.0)[:, 4:-4, 4:-4], (g8 @ w + 16.0)[:, 4:-4, 4:-4]
    ref_p = [peak_signal_noise_ratio(gy[i], py[i], data_range=255) for i in range(3)]
    ref_s = [structural_similarity(gy[i], py[i], gaussian_weights=True, sigma=1.5,
                                   use_sample_covariance=False, data_range=255) for i in range(3)]
    np.testing.assert_allclose(psnr(pred, gt, conv).numpy(), ref_p, atol=1e-4)
    np.testing.assert_allclose(ssim(pred, gt, conv).numpy(), ref_s, atol=1e-4)


def test_quantisation_is_applied_by_default():
    gt = torch.full((1, 3, 16, 16), 0.5)
    tiny = gt + 0.001  # below half an 8-bit level: invisible once saved
    assert torch.isinf(psnr(tiny, gt)).all()
    assert torch.isfinite(psnr(tiny, gt, Convention(quantize=False))).all()
    assert ssim(gt, gt).item() == pytest.approx(1.0)


def test_luma_of_white_and_black():
    x = torch.stack([torch.zeros(3, 2, 2), torch.full((3, 2, 2), 255.0)]).double()
    y = rgb_to_y(x)
    assert y[0].max().item() == pytest.approx(16.0) and y[1].min().item() == pytest.approx(235.0)


def test_errors_for_mismatched_or_tiny_inputs():
    with pytest.raises(InputError, match="differ in shape"):
        psnr(torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 9))
    with pytest.raises(InputError, match="at least 11x11"):
        ssim(torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8))
    with pytest.raises(InputError, match="crop border"):
        psnr(torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8), Convention(crop_border=4))
