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


@pytest.mark.parametrize("method, expected, metrics", [("HINet_output", 33.19, None),
                                                       ("DMPHN_1_2_4_8_output", 30.82, "psnr")])
def test_published_gopro_outputs(method, expected, metrics, shared_data, capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("DEBLURDIFF_CACHE", str(tmp_path))  # no LPIPS weights: the default set skips it
    real = shared_data / "real"
    # Istanbul_blur1 of the DeepDeblur release is byte-identical to GOPR0384_11_00/000001 (SHA256SUMS),
    # so Istanbul_sharp1 is that frame's GoPro ground truth.
    gt = real / "gopro_pairs_DeepDeblur_release" / "Istanbul_sharp1.png"
    pred = real / "reference_outputs" / f"{method}_GOPR0384_11_00-000001.png"
    assert main(["score", str(pred), str(gt), *(["--metrics", metrics] if metrics else []), "--json"]) == 0
    result = _json_last_line(capsys)
    assert result["psnr"] == pytest.approx(expected, abs=0.005)
    if metrics is None:  # default psnr,ssim,lpips: LPIPS reported unavailable, never a number
        assert 0.85 < result["ssim"] < 0.95
        assert "lpips" in result and result["lpips"] is None


@pytest.mark.parametrize("metric, fix", [("lpips", "deblurdiff weights lpips"), ("fid", "deblurdiff weights inception"),
                                         ("kid", "deblurdiff weights inception")])
def test_named_metric_without_weights_is_an_error(metric, fix, tmp_path, capsys, monkeypatch):
    """A metric the user asked for by name is computed or refused (exit 2, the install command), never skipped."""
    monkeypatch.setenv("DEBLURDIFF_CACHE", str(tmp_path))
    image = tmp_path / "a.png"
    _save(image, np.zeros((16, 16, 3), dtype=np.uint8))
    assert main(["score", str(image), str(image), "--metrics", f"psnr,{metric}"]) == 2
    captured = capsys.readouterr()
    assert f"--metrics {metric}" in captured.err and fix in captured.err and "Traceback" not in captured.err
    assert "psnr" not in captured.out  # refused before scoring anything


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
