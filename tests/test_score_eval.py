"""`deblurdiff eval` on a tiny benchmark-layout folder and `deblurdiff compare` of its results."""
import json

import numpy as np
import pytest
from PIL import Image

from deblurdiff.cli import main
from deblurdiff.metrics.image import psnr
from deblurdiff.metrics.consistency import temporal_error


def _png(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


@pytest.fixture
def tiny_benchmark(tmp_path):
    rng = np.random.default_rng(0)
    root = tmp_path / "bench"
    pairs = []
    for i in range(2):
        sharp = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
        blur = np.clip(sharp.astype(int) + rng.integers(-20, 21, sharp.shape), 0, 255).astype(np.uint8)
        _png(root / "image" / "sharp" / f"{i:03d}.png", sharp)
        _png(root / "image" / "blur" / f"{i:03d}.png", blur)
        pairs.append((blur, sharp))
    clip_sharp = rng.integers(0, 256, (3, 16, 16, 3), dtype=np.uint8)
    clip_blur = np.clip(clip_sharp.astype(int) + rng.integers(-9, 10, clip_sharp.shape), 0, 255).astype(np.uint8)
    for f in range(3):
        _png(root / "video" / "clip00" / "sharp" / f"{f:02d}.png", clip_sharp[f])
        _png(root / "video" / "clip00" / "blur" / f"{f:02d}.png", clip_blur[f])
    (root / "manifest.json").write_text(json.dumps({"image": {"count": 2}, "video": {"count": 1}}))
    return root, pairs, (clip_blur, clip_sharp)


def _t(a):
    import torch
    return torch.from_numpy(a).permute(*range(a.ndim - 3), -1, -3, -2).float() / 255


def test_eval_identity_matches_direct_scores_and_compare(tiny_benchmark, tmp_path, capsys):
    root, pairs, _ = tiny_benchmark
    out = tmp_path / "identity.json"
    assert main(["eval", "--method", "identity", "--data", str(root), "--out", str(out), "--metrics", "psnr,ssim",
                 "--device", "cpu", "--quiet"]) == 0
    result = json.loads(out.read_text())
    expected = [float(psnr(_t(b)[None], _t(s)[None])) for b, s in pairs]
    assert [c["psnr"] for c in result["cases"]] == pytest.approx(expected, abs=1e-4)
    assert result["mean"]["psnr"] == pytest.approx(np.mean(expected), abs=1e-4)
    assert result["layout"] == "benchmark" and result["seconds_per_frame"] >= 0
    assert result["convention"].startswith("convention: RGB")
    # a second "method": the same file with better numbers, to check the table marks the best
    better = dict(result, method="oracle", mean=dict(result["mean"], psnr=99.0, ssim=1.0))
    (tmp_path / "oracle.json").write_text(json.dumps(better))
    capsys.readouterr()
    assert main(["compare", str(out), str(tmp_path / "oracle.json"), "--out", str(tmp_path / "t.md")]) == 0
    table = capsys.readouterr().out
    assert "| Method | PSNR↑ | SSIM↑ | s/frame |" in table
    assert "| oracle | **99.00** | **1.0000** |" in table
    assert (tmp_path / "t.md").read_text().startswith("| Method |")
    other = dict(result, data="elsewhere")
    (tmp_path / "other.json").write_text(json.dumps(other))
    assert main(["compare", str(out), str(tmp_path / "other.json")]) == 2


def test_eval_video_part_adds_temporal_error(tiny_benchmark, tmp_path):
    root, _, (clip_blur, clip_sharp) = tiny_benchmark
    out = tmp_path / "video.json"
    assert main(["eval", "--method", "identity", "--data", str(root), "--part", "video", "--out", str(out),
                 "--metrics", "psnr", "--device", "cpu", "--quiet"]) == 0
    case = json.loads(out.read_text())["cases"][0]
    b, s = _t(clip_blur), _t(clip_sharp)
    assert case["psnr"] == pytest.approx(float(psnr(b, s).mean()), abs=1e-4)
    assert case["temporal_error"] == pytest.approx(float(temporal_error(b[None], s[None])), abs=1e-4)


def test_eval_errors_are_user_errors(tmp_path, capsys):
    assert main(["eval", "--method", "identity", "--data", str(tmp_path / "absent"), "--out", str(tmp_path / "r.json")]) == 2
    assert "not a folder" in capsys.readouterr().err
    assert not (tmp_path / "r.json").exists()


class _ReversedOracle:
    """An exposure 'method' that returns the true sub-frames in reversed time order."""

    kind, name, last_run = "exposure", "oracle", {"seconds_per_frame": 0.0}

    def __init__(self, frames):
        self.frames = frames

    def deblur(self, blur, steps=None, seed=0):
        return self.frames.flip(0)


def test_exposure_scoring_uses_better_order_middle_frame_and_reblur():
    import torch
    from deblurdiff.commands.evaluate import evaluate
    from deblurdiff.metrics import Scorer

    g = torch.Generator().manual_seed(0)
    frames = (torch.rand(10, 3, 16, 16, generator=g) * 255).round() / 255
    item = {"blur": frames.mean(0), "frames": frames, "sharp": frames[4]}
    scorer = Scorer("psnr,ssim")
    row = evaluate(_ReversedOracle(frames), [item], "exposure", scorer)[0]
    assert row["reversed"] is True and row["psnr"] == float("inf") and row["ssim"] == pytest.approx(1.0)
    assert row["reblur_psnr"] > 40
    # without reordering, the middle output frame (index 4) would be true frame 5: not a match
    assert float(psnr(frames.flip(0)[4:5], frames[4:5])) < 20
