"""`deblurdiff score`: published outputs' PSNR, folder matching, JSON, unavailable metrics."""
import json

import numpy as np
import pytest
from PIL import Image

from deblurdiff.cli import main


def _json_last_line(capsys):
    out = capsys.readouterr().out.strip().splitlines()
    assert out[0].startswith("convention: ")
    return json.loads(out[-1])


@pytest.mark.parametrize("method, expected, metrics", [("HINet_output", 33.19, "psnr,ssim,lpips"),
                                                       ("DMPHN_1_2_4_8_output", 30.82, "psnr,lpips")])
def test_published_gopro_outputs(method, expected, metrics, shared_data, capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("DEBLURDIFF_CACHE", str(tmp_path))  # no LPIPS weights: reported, never a number
    real = shared_data / "real"
    # Istanbul_blur1 of the DeepDeblur release is byte-identical to GOPR0384_11_00/000001 (SHA256SUMS),
    # so Istanbul_sharp1 is that frame's GoPro ground truth.
    gt = real / "gopro_pairs_DeepDeblur_release" / "Istanbul_sharp1.png"
    pred = real / "reference_outputs" / f"{method}_GOPR0384_11_00-000001.png"
    assert main(["score", str(pred), str(gt), "--metrics", metrics, "--json"]) == 0
    result = _json_last_line(capsys)
    assert result["psnr"] == pytest.approx(expected, abs=0.005)
    if "ssim" in metrics:
        assert 0.85 < result["ssim"] < 0.95
    assert result["lpips"] is None


def _save(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def test_folders_matched_by_name_with_options(tmp_path, capsys):
    rng = np.random.default_rng(0)
    gts = [rng.integers(0, 256, (24, 20, 3), dtype=np.uint8) for _ in range(2)]
    noisy = [np.clip(g.astype(int) + rng.integers(-9, 10, g.shape), 0, 255).astype(np.uint8) for g in gts]
    for i in range(2):
        _save(tmp_path / "gt" / f"{i}.png", gts[i])
        _save(tmp_path / "pred" / f"{i}.png", noisy[i])
    assert main(["score", str(tmp_path / "pred"), str(tmp_path / "gt"), "--metrics", "psnr", "--crop-border", "2",
                 "--y-channel", "--json"]) == 0
    result = _json_last_line(capsys)
    w = np.array([65.481, 128.553, 24.966]) / 255
    mses = [np.mean(((n.astype(float) @ w) - (g.astype(float) @ w))[2:-2, 2:-2] ** 2) for n, g in zip(noisy, gts)]
    assert result["psnr"] == pytest.approx(np.mean([10 * np.log10(255 ** 2 / m) for m in mses]), abs=1e-3)
    _save(tmp_path / "gt" / "2.png", gts[0])
    assert main(["score", str(tmp_path / "pred"), str(tmp_path / "gt")]) == 2
    assert "do not match" in capsys.readouterr().err
