import pytest
import torch

from deblurdiff.errors import InputError
from deblurdiff.metrics.consistency import best_order, reblur_psnr, temporal_error
from deblurdiff.metrics.image import Convention, psnr


def test_reblur_is_infinite_for_frames_that_average_to_the_input():
    g = torch.Generator().manual_seed(0)
    frames = (torch.rand(2, 4, 3, 16, 16, generator=g) * 255).round() / 255
    blurred = frames.mean(dim=1)
    exact = Convention(quantize=False)
    assert (reblur_psnr(frames, blurred, exact) > 100).all()
    shuffled = frames[:, torch.randperm(4, generator=g)]
    assert (reblur_psnr(shuffled, blurred, exact) > 100).all()  # order-free
    wrong = reblur_psnr(frames.roll(3, dims=-1), blurred)
    assert torch.isfinite(wrong).all()


def test_temporal_error_ignores_constant_offset_but_sees_flicker():
    g = torch.Generator().manual_seed(1)
    gt = torch.rand(1, 6, 3, 12, 12, generator=g) * 0.5 + 0.25
    offset = gt + 20 / 255
    assert temporal_error(offset, gt).item() == pytest.approx(0.0, abs=1e-9)
    flicker = gt + torch.tensor([0, 10, 0, 10, 0, 10]).view(1, 6, 1, 1, 1) / 255
    assert temporal_error(flicker, gt).item() == pytest.approx(10.0, abs=1e-6)
    # per-frame PSNR of the two outputs is similar, the temporal figure separates them
    assert psnr(offset[0], gt[0]).mean() < psnr(flicker[0], gt[0]).mean() + 10
    with pytest.raises(InputError):
        temporal_error(gt[:, :1], gt[:, :1])


def test_best_order_picks_reversed_sequences():
    g = torch.Generator().manual_seed(2)
    gt = torch.rand(2, 5, 3, 16, 16, generator=g)
    pred = torch.stack([gt[0], gt[1].flip(0)])
    out = best_order(pred, gt)
    assert out["reversed"].tolist() == [False, True]
    assert torch.isinf(out["psnr"]).all() and torch.allclose(out["ssim"], torch.ones(2))
