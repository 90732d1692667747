"""deblurdiff synth: windows of real high-frame-rate frames, photos, scenes, atomic failure."""
import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from deblurdiff.cli import main
from deblurdiff.data.io import read_frames, read_image, write_image, write_video


def test_from_frames_matches_independent_mean(shared_data, tmp_path):
    source = shared_data / "real" / "vid2e_hfr_gray_240x180" / "images"
    frames = sorted(source.glob("image_*.png"))[:14]
    window = tmp_path / "window"
    window.mkdir()
    for path in frames:
        shutil.copy(path, window / path.name)
    out = tmp_path / "out"
    assert main(["synth", "--from", str(window), "--window", "7", "--linear", "--out", str(out)]) == 0
    pixels = np.stack([np.asarray(Image.open(p), dtype=np.float64) for p in frames])   # (14, 180, 240)
    sequence = out / "train" / "window"
    for index in range(2):
        chunk = pixels[7 * index: 7 * index + 7]
        blur = np.asarray(Image.open(sequence / "blur" / f"{index:06d}.png"), dtype=np.float64)
        assert blur.shape == (180, 240, 3)
        assert np.abs(blur[..., 1] - chunk.mean(0)).max() <= 0.5 + 1e-6
        linear = ((chunk / 255) ** 2.2).mean(0) ** (1 / 2.2) * 255
        blur_gamma = np.asarray(Image.open(sequence / "blur_gamma" / f"{index:06d}.png"), dtype=np.float64)
        assert np.abs(blur_gamma[..., 0] - linear).max() <= 0.5 + 1e-6
        sharp = np.asarray(Image.open(sequence / "sharp" / f"{index:06d}.png"), dtype=np.float64)
        assert np.array_equal(sharp[..., 2], chunk[3])       # the window's middle frame
    info = json.loads((out / "synth.json").read_text())
    assert info["pairs"] == 2 and info["window"] == 7


def test_from_video_with_stride_keeps_fps(tmp_path):
    frames = torch.linspace(0, 1, 6)[:, None, None, None].expand(6, 3, 16, 16).contiguous()
    write_video(tmp_path / "clip.avi", frames, fps=48)
    out = tmp_path / "out"
    assert main(["synth", "--from", str(tmp_path / "clip.avi"), "--window", "3", "--stride", "2", "--out", str(out)]) == 0
    blur = read_frames(out / "train" / "clip" / "blur")
    assert blur.shape == (2, 3, 16, 16)
    assert blur[1, 0, 0, 0].item() == pytest.approx(frames[2:5].mean().item(), abs=1.5 / 255)
    assert json.loads((out / "synth.json").read_text())["fps"] == pytest.approx(48)


def test_photos_and_scenes_layouts(tmp_path):
    photos = tmp_path / "photos"
    for name in ("a", "b"):
        write_image(photos / f"{name}.png", torch.rand(3, 40, 48))
    out = tmp_path / "shake"
    assert main(["synth", "--photos", str(photos), "--per-photo", "2", "--max-shift", "3", "--out", str(out)]) == 0
    assert read_frames(out / "train" / "a" / "blur").shape == (2, 3, 26, 34)   # margin 3 + 4 per side
    assert read_image(out / "train" / "b" / "sharp" / "000000.png").shape == (3, 26, 34)
    first, second = tmp_path / "s1", tmp_path / "s2"
    for folder in (first, second):
        assert main(["synth", "--scenes", "2", "--frames", "2", "--size", "24", "--seed", "3", "--out", str(folder)]) == 0
    assert sorted(p.name for p in (first / "train").iterdir()) == ["scene0000", "scene0001"]
    assert torch.equal(read_frames(first / "train" / "scene0001" / "blur"),
                       read_frames(second / "train" / "scene0001" / "blur"))


def test_bad_input_exits_2_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["synth", "--from", str(tmp_path / "missing"), "--out", str(out)]) == 2
    assert "missing" in capsys.readouterr().err and not out.exists()
    frames = tmp_path / "frames"
    for i in range(3):
        write_image(frames / f"{i}.png", torch.rand(3, 8, 8))
    assert main(["synth", "--from", str(frames), "--window", "5", "--out", str(out)]) == 2
    assert "at least 5 frames" in capsys.readouterr().err and not out.exists()
    (frames / "3.png").write_bytes(b"broken")
    assert main(["synth", "--from", str(frames), "--window", "2", "--out", str(out)]) == 2
    assert "3.png" in capsys.readouterr().err and not out.exists()
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert main(["synth", "--scenes", "1", "--out", str(out)]) == 2
    assert (out / "keep.txt").read_text() == "mine"
    assert main(["synth", "--scenes", "0", "--out", str(tmp_path / "zero")]) == 2
    assert not (tmp_path / "zero").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]   # no temporary leftovers


def test_from_frames_with_gaps_between_exposures(tmp_path):
    frames = tmp_path / "frames"
    for i in range(8):
        write_image(frames / f"f{i}.png", torch.full((3, 4, 4), i / 10))
    out = tmp_path / "out"
    assert main(["synth", "--from", str(frames), "--window", "2", "--stride", "3", "--out", str(out)]) == 0
    blur = read_frames(out / "train" / "frames" / "blur")
    sharp = read_frames(out / "train" / "frames" / "sharp")
    assert blur[:, 0, 0, 0].mul(10).tolist() == pytest.approx([0.5, 3.5, 6.5], abs=0.02)   # windows 0-1, 3-4, 6-7
    assert sharp[:, 0, 0, 0].mul(10).tolist() == pytest.approx([0, 3, 6], abs=0.02)


def test_synth_output_reads_back_through_the_gopro_reader(tmp_path):
    from deblurdiff.data import build_dataset
    from deblurdiff.train.config import DataConfig

    out = tmp_path / "scenes"
    assert main(["synth", "--scenes", "2", "--frames", "3", "--size", "24", "--linear", "--out", str(out)]) == 0
    pairs = build_dataset(DataConfig(source="gopro", root=str(out), crop=0, augment=False))
    assert len(pairs) == 6
    clips = build_dataset(DataConfig(source="gopro", mode="video", frames=3, root=str(out), crop=16,
                                     blur_folder="blur_gamma"))
    item = clips[1]
    assert len(clips) == 2 and item["blur"].shape == (3, 3, 16, 16)
    # Linear-light averages are never darker than gamma-encoded ones (power mean inequality).
    plain = build_dataset(DataConfig(source="gopro", root=str(out), crop=0, augment=False))[0]["blur"]
    linear = build_dataset(DataConfig(source="gopro", root=str(out), crop=0, augment=False,
                                      blur_folder="blur_gamma"))[0]["blur"]
    assert (linear - plain).min() >= -1.0 / 255
