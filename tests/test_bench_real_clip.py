"""benchmarks/real_clip.py, the real-GoPro-clip section of bench_vdd / bench_divd, on a tiny
synthetic folder of the same layout (the real data are evaluation only and large)."""
import argparse
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import real_clip  # noqa: E402
from bench_image_models import PUBLISHED  # noqa: E402

import deblurdiff  # noqa: E402
from deblurdiff.data.io import write_image  # noqa: E402
from deblurdiff.errors import InputError  # noqa: E402
from deblurdiff.metrics.image import psnr  # noqa: E402

H, W, FRAMES = 64, 80, 5  # LPIPS (AlexNet) needs 32 px or more


@pytest.fixture
def real(tmp_path):
    """``real/`` laid out like ../shared/data/real: 5 blurred frames, the sharp first frame and the
    two published outputs, 8-bit PNGs of random content (so a shifted crop cannot match)."""
    gen = torch.Generator().manual_seed(0)
    to8 = lambda x: (x * 255).round() / 255  # noqa: E731
    frames = to8(torch.rand(FRAMES, 3, H, W, generator=gen))
    sharp = to8(torch.rand(3, H, W, generator=gen))
    for i, frame in enumerate(frames, 1):
        write_image(tmp_path / real_clip.SEQUENCE / f"{i:06d}.png", frame)
    write_image(tmp_path / real_clip.SHARP_FIRST, sharp)
    published = {}
    for label, file in PUBLISHED[real_clip.PAIR].items():
        published[label] = to8((sharp + frames[0]) / 2 + 0.05 * torch.rand(3, H, W, generator=gen)).clamp(0, 1)
        write_image(tmp_path / file, published[label])
    return tmp_path, frames, sharp, published


def test_identity_scores_the_blurry_first_frame_on_one_crop(real):
    folder, frames, sharp, published = real
    figures = real_clip.real_clip_figures(deblurdiff.load("identity", device="cpu"), folder, frames=4, crop=(40, 48))
    tag = "real_crop48x40"
    rows, cols = slice(12, 52), slice(16, 64)  # the centred 40x48 crop of 64x80 frames, by hand
    expected = float(psnr(frames[:1, :, rows, cols], sharp[None, :, rows, cols]))
    assert figures[f"{tag}_psnr_identity"] == pytest.approx(expected, abs=1e-6)
    assert figures[f"{tag}_psnr_blurry"] == pytest.approx(expected, abs=1e-6)
    assert figures[f"{tag}_ssim_identity"] == pytest.approx(figures[f"{tag}_ssim_blurry"], abs=1e-6)
    assert figures[f"{tag}_gain_db_identity"] == pytest.approx(0.0, abs=1e-6)
    assert figures[f"{tag}_temporal_error_identity_vs_blurry"] == 0.0
    assert figures[f"{tag}_frames"] == 4
    for label in ("DMPHN (published)", "HINet (published)"):
        key = f"{tag}_psnr_{label.split()[0].lower()}_published"
        want = float(psnr(published[label][None, :, rows, cols], sharp[None, :, rows, cols]))
        assert figures[key] == pytest.approx(want, abs=1e-6)
        assert figures[key] != pytest.approx(float(psnr(published[label][None], sharp[None])), abs=1e-3)


def test_the_clip_keeps_its_frames_and_crop(real, monkeypatch):
    """The model receives the first N frames, each cropped to the same region (compared to a manual crop)."""
    folder, frames, _, _ = real
    model = deblurdiff.load("identity", device="cpu")
    seen = []
    deblur = model.deblur
    monkeypatch.setattr(model, "deblur", lambda clip, **kw: seen.append(clip) or deblur(clip, **kw))
    real_clip.real_clip_figures(model, folder, frames=3, crop=(32, 40))
    assert torch.equal(seen[0], frames[:3, :, 16:48, 20:60])
    figures = real_clip.real_clip_figures(model, folder, frames=FRAMES, crop=None)
    assert torch.equal(seen[1], frames)
    assert f"real_full{W}x{H}_psnr_identity" in figures


def test_a_video_model_deblurs_the_clip(real):
    """The smallest shipped video model (DIVD) runs the clip through the API's windows, one step."""
    folder, _, _, _ = real
    figures = real_clip.real_clip_figures(deblurdiff.load("divd", device="cpu"), folder, frames=FRAMES,
                                          crop=(48, 48), steps=1)
    assert figures["real_crop48x48_frames"] == FRAMES
    assert figures["real_crop48x48_temporal_error_divd_vs_blurry"] >= 0
    assert all(torch.isfinite(torch.tensor(float(v))) for v in figures.values())


def test_missing_folder_skips(tmp_path, capsys):
    assert real_clip.real_clip_figures(deblurdiff.load("identity", device="cpu"), tmp_path / "absent") == {}
    assert "real clip skipped" in capsys.readouterr().out


def test_bad_requests_are_named(real):
    folder, _, _, _ = real
    model = deblurdiff.load("identity", device="cpu")
    with pytest.raises(InputError, match="larger than"):
        real_clip.real_clip_figures(model, folder, frames=2, crop=(96, 96))
    with pytest.raises(InputError, match="holds 5 frames"):
        real_clip.real_clip_figures(model, folder, frames=6)
    assert real_clip.parse_crop("320") == (320, 320)
    assert real_clip.parse_crop("480x320") == (320, 480)
    assert real_clip.parse_crop("full") is None
    with pytest.raises(argparse.ArgumentTypeError):
        real_clip.parse_crop("big")
