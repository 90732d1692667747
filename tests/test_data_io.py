"""Image/video IO: bit depths, channel layouts, round trips, errors that name the file."""
import numpy as np
import pytest
import torch
from PIL import Image

from deblurdiff.data.io import (natural_sorted, read_clip, read_frames, read_image, read_video, write_image,
                                write_video)
from deblurdiff.errors import InputError


def test_png_8bit_round_trip_is_exact(tmp_path):
    image = torch.randint(0, 256, (3, 7, 9)).float() / 255
    write_image(tmp_path / "a.png", image)
    assert torch.equal(read_image(tmp_path / "a.png"), image)


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_16bit_colour_round_trip_keeps_precision(tmp_path, suffix):
    image = torch.randint(0, 65536, (3, 5, 6)).float() / 65535
    write_image(tmp_path / f"a{suffix}", image, bits=16)
    back = read_image(tmp_path / f"a{suffix}")
    assert torch.allclose(back, image, atol=0.5 / 65535)


def test_16bit_grayscale_png(tmp_path):
    values = np.array([[0, 1000], [40000, 65535]], dtype=np.uint16)
    Image.fromarray(values).save(tmp_path / "g.png")
    back = read_image(tmp_path / "g.png")
    assert back.shape == (3, 2, 2)
    assert torch.allclose(back[1], torch.from_numpy(values.astype(np.float32) / 65535))


def test_grayscale_palette_and_rgba(tmp_path):
    Image.fromarray(np.full((4, 4), 128, np.uint8)).save(tmp_path / "l.png")
    assert torch.allclose(read_image(tmp_path / "l.png"), torch.full((3, 4, 4), 128 / 255))
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 200, 51          # red at 20 % opacity
    Image.fromarray(rgba).save(tmp_path / "a.png")
    assert read_image(tmp_path / "a.png")[0, 0, 0].item() == pytest.approx(200 / 255)
    assert read_image(tmp_path / "a.png", alpha="black")[0, 0, 0].item() == pytest.approx(200 / 255 * 0.2, abs=1e-6)
    white = read_image(tmp_path / "a.png", alpha="white")[:, 0, 0]
    assert torch.allclose(white, torch.tensor([200 / 255 * 0.2 + 0.8, 0.8, 0.8]), atol=1e-6)
    palette = Image.fromarray(np.array([[0, 1], [1, 0]], np.uint8), mode="P")
    palette.putpalette([10, 20, 30, 200, 100, 0] + [0] * 762)
    palette.save(tmp_path / "p.png")
    assert torch.allclose(read_image(tmp_path / "p.png")[:, 0, 1], torch.tensor([200, 100, 0]) / 255)


def test_jpeg_reads_close_to_source(tmp_path):
    image = torch.full((3, 16, 16), 0.5)
    write_image(tmp_path / "a.jpg", image)
    assert torch.allclose(read_image(tmp_path / "a.jpg"), image, atol=3 / 255)


def test_bad_files_raise_input_error_naming_them(tmp_path):
    with pytest.raises(InputError, match="missing.png: file not found"):
        read_image(tmp_path / "missing.png")
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(InputError, match="empty.png: the file is empty"):
        read_image(tmp_path / "empty.png")
    (tmp_path / "notes.png").write_text("hello, not an image")
    with pytest.raises(InputError, match="notes.png: not an image"):
        read_image(tmp_path / "notes.png")
    write_image(tmp_path / "cut.png", torch.rand(3, 64, 64))
    data = (tmp_path / "cut.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="cut.png"):
        read_image(tmp_path / "cut.png")
    with pytest.raises(InputError, match="not a file"):
        read_image(tmp_path)


def test_natural_sort_and_mixed_sizes(tmp_path):
    assert [p.name for p in natural_sorted([tmp_path / "f10.png", tmp_path / "f2.png", tmp_path / "f1.png"])] == \
        ["f1.png", "f2.png", "f10.png"]
    for i in (1, 2, 10):
        write_image(tmp_path / f"f{i}.png", torch.full((3, 4, 4), i / 10))
    clip = read_frames(tmp_path)
    assert torch.allclose(clip[:, 0, 0, 0], torch.tensor([0.1, 0.2, 1.0]), atol=1 / 255)
    write_image(tmp_path / "f11.png", torch.zeros(3, 5, 4))
    with pytest.raises(InputError, match="f11.png: frame size 4x5 differs"):
        read_frames(tmp_path)


@pytest.mark.parametrize("suffix", [".mp4", ".avi"])
def test_video_round_trip_keeps_fps_and_content(tmp_path, suffix):
    frames = torch.zeros(5, 3, 32, 48)
    frames[:, 0, :, :24] = torch.linspace(0.2, 0.8, 5)[:, None, None]
    write_video(tmp_path / f"v{suffix}", frames, fps=30)
    back, fps = read_video(tmp_path / f"v{suffix}")
    assert back.shape == frames.shape and fps == pytest.approx(30)
    tolerance = 1 / 255 if suffix == ".avi" else 0.05
    assert (back - frames).abs().mean() < tolerance
    again, _ = read_clip(tmp_path / f"v{suffix}", max_frames=2)
    assert again.shape[0] == 2


def test_corrupt_video_is_input_error(tmp_path):
    (tmp_path / "bad.mp4").write_bytes(b"\x00" * 100)
    with pytest.raises(InputError, match="bad.mp4"):
        read_video(tmp_path / "bad.mp4")


def test_gopro_reference_pair_psnr(shared_data):
    """The DeepDeblur release pair reads as the field sees it: 24.05 dB (RGB, [0, 255], no crop)."""
    folder = shared_data / "real" / "gopro_pairs_DeepDeblur_release"
    blur = read_image(folder / "Istanbul_blur1.png").numpy().astype(np.float64) * 255
    sharp = read_image(folder / "Istanbul_sharp1.png").numpy().astype(np.float64) * 255
    assert blur.shape == (3, 720, 1280)
    mse = np.mean((blur - sharp) ** 2)
    assert 10 * np.log10(255 ** 2 / mse) == pytest.approx(24.05, abs=0.005)


def test_real_files_of_other_kinds(shared_data):
    """LZW TIFF (decoded by Pillow when tifffile lacks the codec), grayscale PNG, JPEG."""
    real = shared_data / "real"
    tiff = read_image(real / "selfdeblur_fastec" / "000000000.tif")
    assert tiff.shape == (3, 480, 640) and 0.05 < tiff.mean() < 0.95
    gray = read_image(next((real / "selfdeblur_real_gray").glob("*.png")))
    assert torch.equal(gray[0], gray[1]) and torch.equal(gray[1], gray[2])
    jpeg = read_image(real / "misc_blur_only" / "NAFNet_demo_blurry.jpg")
    assert jpeg.shape == (3, 720, 1280)


def test_exif_orientation_is_applied(tmp_path):
    pixels = np.zeros((10, 20, 3), np.uint8)
    pixels[:, :5] = 255                         # a white band on the left of the stored image
    image = Image.fromarray(pixels)
    exif = image.getexif()
    exif[0x0112] = 6                            # "rotate 90 degrees clockwise to display"
    image.save(tmp_path / "phone.jpg", exif=exif, quality=95)
    upright = read_image(tmp_path / "phone.jpg")
    assert upright.shape == (3, 20, 10)
    assert upright[:, :5].mean() > 0.9 and upright[:, -5:].mean() < 0.1   # the band is now on top
