"""Image and video IO with validation: every user file problem is an ``InputError`` naming the file.

Images load as RGB float32 tensors ``(3, H, W)`` in [0, 1], whatever is stored:

* 8-bit and 16-bit (PNG, TIFF) integer images are divided by 255 / 65535;
* grayscale is repeated to three channels, palette images are expanded;
* an EXIF orientation tag (phone and camera JPEGs) is applied, so photos come out upright;
* an alpha channel is handled by ``alpha=``: ``"drop"`` (default: keep the stored colour),
  ``"white"`` or ``"black"`` (composite over that background).

Pillow narrows 16-bit *colour* PNG and TIFF to 8 bits, so those are decoded by FFmpeg's PNG
decoder through PyAV and by imageio respectively. Videos (mp4, avi, mov, mkv, ...) are read and
written with PyAV, keeping the frame rate. Writes are atomic (``deblurdiff.atomic``).
"""
from __future__ import annotations

import re
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch

from ..atomic import atomic_file
from ..errors import InputError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp")
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v")


def natural_key(path) -> list:
    """Sort key that orders ``frame2`` before ``frame10`` (digits compared as numbers)."""
    name = Path(path).name
    return [(0, int(part), "") if part.isdigit() else (1, 0, part.lower()) for part in re.split(r"(\d+)", name) if part]


def natural_sorted(paths) -> list:
    return sorted(paths, key=natural_key)


def is_image(path) -> bool:
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def is_video(path) -> bool:
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS


def _check_file(path) -> Path:
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: file not found; check the path")
    if not path.is_file():
        raise InputError(f"{path}: is not a file (a folder?); give an image or video file")
    if path.stat().st_size == 0:
        raise InputError(f"{path}: the file is empty (0 bytes); re-export or re-copy it")
    return path


def list_images(folder) -> list[Path]:
    """The image files of ``folder`` in natural order; an ``InputError`` if there are none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: folder not found; check the path")
    images = natural_sorted(p for p in folder.iterdir() if p.is_file() and is_image(p) and not p.name.startswith("."))
    if not images:
        raise InputError(f"{folder}: no images ({', '.join(IMAGE_EXTENSIONS)}) in this folder")
    return images


def _png_is_16bit_colour(path: Path) -> bool:
    with open(path, "rb") as handle:
        header = handle.read(26)
    # PNG signature, then IHDR: bit depth at byte 24, colour type at 25 (2 RGB, 6 RGBA).
    return header[:8] == b"\x89PNG\r\n\x1a\n" and len(header) == 26 and header[24] == 16 and header[25] in (2, 6)


def _decode_with_av(path: Path) -> np.ndarray:
    import av

    try:
        with av.open(str(path)) as container:
            frame = next(container.decode(video=0))
            has_alpha = "a" in frame.format.name.replace("rgb48", "")
            return frame.to_ndarray(format="rgba64le" if has_alpha else "rgb48le")
    except (av.error.FFmpegError, StopIteration, ValueError) as exc:
        raise InputError(f"{path}: not a readable PNG ({exc}); the file may be truncated or corrupt") from None


def _decode_tiff(path: Path) -> np.ndarray | None:
    """imageio (tifffile) keeps 16-bit colour TIFFs at 16 bits, which Pillow's image narrows to
    8; it lacks some codecs (LZW without ``imagecodecs``), so ``None`` lets Pillow try next."""
    import imageio.v3 as iio

    try:
        array = np.asarray(iio.imread(path, index=0))
    except Exception:   # imageio raises many types; Pillow gets its turn and reports errors
        return None
    if array.ndim == 3 and array.shape[0] in (1, 3, 4) and array.shape[-1] not in (1, 2, 3, 4):
        array = array.transpose(1, 2, 0)
    return array


def _decode(path: Path) -> np.ndarray:
    """Decoded pixels as an (H, W) or (H, W, C) integer or float array."""
    if path.suffix.lower() == ".png" and _png_is_16bit_colour(path):
        return _decode_with_av(path)
    if path.suffix.lower() in (".tif", ".tiff"):
        array = _decode_tiff(path)
        if array is not None:
            return array
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image.load()
            if image.getexif().get(0x0112, 1) != 1:     # camera photos stored sideways
                from PIL import ImageOps

                image = ImageOps.exif_transpose(image)
            if image.mode == "P":
                image = image.convert("RGBA" if "transparency" in image.info else "RGB")
            elif image.mode in ("1", "CMYK", "YCbCr", "LAB", "HSV"):
                image = image.convert("L" if image.mode == "1" else "RGB")
            elif image.mode in ("I;16", "I;16B", "I;16L", "I;16N"):
                return np.asarray(image).astype(np.uint16)
            return np.asarray(image)
    except UnidentifiedImageError:
        raise InputError(f"{path}: not an image file (or an unsupported format); "
                         f"give PNG, JPEG, TIFF, BMP or WebP") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise InputError(f"{path}: the image is corrupt or truncated ({exc}); re-export it") from None


def _to_unit(array: np.ndarray, path) -> np.ndarray:
    if array.dtype == np.uint8:
        return array.astype(np.float32) / 255.0
    if array.dtype == np.uint16:
        return array.astype(np.float32) / 65535.0
    if array.dtype == bool:
        return array.astype(np.float32)
    if np.issubdtype(array.dtype, np.integer):   # Pillow's 32-bit "I" mode holding 16-bit data
        return array.astype(np.float32) / (65535.0 if array.max() > 255 else 255.0)
    if np.issubdtype(array.dtype, np.floating):
        return np.clip(array.astype(np.float32), 0.0, 1.0)
    raise InputError(f"{path}: unsupported pixel type {array.dtype}")


def read_image(path, alpha: str = "drop") -> torch.Tensor:
    """An image file -> RGB float32 tensor ``(3, H, W)`` in [0, 1]."""
    path = _check_file(path)
    if alpha not in ("drop", "white", "black"):
        raise InputError(f"alpha must be 'drop', 'white' or 'black', got {alpha!r}")
    array = _to_unit(_decode(path), path)
    if array.ndim == 2:
        array = array[..., None]
    channels = array.shape[-1]
    if channels in (2, 4):                       # LA or RGBA
        colour, opacity = array[..., :-1], array[..., -1:]
        if alpha == "white":
            colour = colour * opacity + (1.0 - opacity)
        elif alpha == "black":
            colour = colour * opacity
        array = colour
    if array.shape[-1] == 1:
        array = np.repeat(array, 3, axis=-1)
    if array.shape[-1] != 3:
        raise InputError(f"{path}: {channels} channels are not supported; give a grayscale, RGB or RGBA image")
    return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))


def _to_uint(image: torch.Tensor, bits: int) -> np.ndarray:
    if image.dim() != 3 or image.shape[0] not in (1, 3):
        raise InputError(f"write_image expects a (C, H, W) tensor with 1 or 3 channels, got {tuple(image.shape)}")
    scale = 255.0 if bits == 8 else 65535.0
    array = (image.detach().float().cpu().clamp(0, 1) * scale).round().numpy()
    array = array.astype(np.uint8 if bits == 8 else np.uint16).transpose(1, 2, 0)
    return array[..., 0] if array.shape[-1] == 1 else array


def write_image(path, image: torch.Tensor, bits: int = 8) -> Path:
    """Write a ``(C, H, W)`` [0, 1] tensor atomically (format from the extension).

    ``bits=16`` writes 16-bit PNG (colour via FFmpeg's encoder, which Pillow lacks) or TIFF.
    """
    path = Path(path)
    if not is_image(path):
        raise InputError(f"{path}: unknown image extension; use one of {', '.join(IMAGE_EXTENSIONS)}")
    if bits not in (8, 16):
        raise InputError(f"bits must be 8 or 16, got {bits}")
    array = _to_uint(image, bits)
    with atomic_file(path) as tmp:
        if bits == 16 and array.ndim == 3 and path.suffix.lower() == ".png":
            _write_png48(tmp, array)
        elif bits == 16 and array.ndim == 3 and path.suffix.lower() in (".tif", ".tiff"):
            import imageio.v3 as iio   # Pillow cannot build a 16-bit RGB image from an array

            iio.imwrite(tmp, array, extension=".tif")
        else:
            from PIL import Image

            if bits == 16 and path.suffix.lower() not in (".png", ".tif", ".tiff"):
                raise InputError(f"{path}: 16-bit output needs .png or .tif")
            fmt = {".jpg": "JPEG", ".jpeg": "JPEG", ".tif": "TIFF", ".tiff": "TIFF"}.get(path.suffix.lower(), None)
            fmt = fmt or path.suffix.lower().lstrip(".").upper()
            # Level 3 writes ~3x faster than the default 6 for a few % larger files.
            options = {"quality": 95} if fmt == "JPEG" else {"compress_level": 3} if fmt == "PNG" else {}
            Image.fromarray(array).save(tmp, format=fmt, **options)
    return path


def _write_png48(path: Path, array: np.ndarray) -> None:
    import av

    height, width = array.shape[:2]
    with av.open(str(path), "w", format="image2") as container:
        stream = container.add_stream("png")
        stream.width, stream.height, stream.pix_fmt = width, height, "rgb48be"
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(array), format="rgb48le")
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def stack_frames(frames: list, paths: list) -> torch.Tensor:
    """Frames read from ``paths`` -> ``(F, C, H, W)``; an error names the first frame of another size."""
    first = frames[0].shape
    for frame, path in zip(frames, paths):
        if frame.shape != first:
            raise InputError(f"{path}: frame size {frame.shape[2]}x{frame.shape[1]} differs from "
                             f"{Path(paths[0]).name} ({first[2]}x{first[1]}); all frames of a clip must match")
    return torch.stack(frames)


def read_frames(folder) -> torch.Tensor:
    """A folder of frames (natural order) -> ``(F, 3, H, W)``; all frames must share one size."""
    paths = list_images(folder)
    return stack_frames([read_image(p) for p in paths], paths)


def read_video(path, max_frames: int | None = None) -> tuple[torch.Tensor, float]:
    """A video file -> (frames ``(F, 3, H, W)`` in [0, 1], frames per second)."""
    import av

    path = _check_file(path)
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise InputError(f"{path}: has no video stream; give a video file")
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate or Fraction(25)
            frames = []
            for frame in container.decode(stream):
                frames.append(frame.to_ndarray(format="rgb24"))
                if max_frames is not None and len(frames) >= max_frames:
                    break
    except av.error.FFmpegError as exc:
        raise InputError(f"{path}: not a readable video ({exc}); the file may be corrupt or not a video") from None
    if not frames:
        raise InputError(f"{path}: the video has no frames")
    array = np.stack(frames).astype(np.float32) / 255.0
    return torch.from_numpy(array).permute(0, 3, 1, 2).contiguous(), float(rate)


def write_video(path, frames: torch.Tensor, fps: float = 25.0, quality: int = 17) -> Path:
    """Write ``(F, 3, H, W)`` [0, 1] frames atomically: ``.mp4``/``.mov``/``.mkv`` as H.264
    (``quality`` = CRF, lower is better; odd sizes use 4:4:4), ``.avi`` as lossless FFV1."""
    import av

    path = Path(path)
    if path.suffix.lower() not in VIDEO_EXTENSIONS:
        raise InputError(f"{path}: unknown video extension; use one of {', '.join(VIDEO_EXTENSIONS)}")
    if frames.dim() != 4 or frames.shape[1] != 3 or frames.shape[0] == 0:
        raise InputError(f"write_video expects (F, 3, H, W) frames, got {tuple(frames.shape)}")
    array = (frames.detach().float().cpu().clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    height, width = array.shape[1:3]
    rate = Fraction(fps).limit_denominator(1001)
    with atomic_file(path) as tmp:
        with av.open(str(tmp), "w", format={".avi": "avi", ".mkv": "matroska", ".webm": "webm",
                                            ".mov": "mov"}.get(path.suffix.lower(), "mp4")) as container:
            if path.suffix.lower() == ".avi":
                stream = container.add_stream("ffv1", rate=rate)
                stream.pix_fmt = "bgr0"
            else:
                stream = container.add_stream("libx264", rate=rate)
                stream.pix_fmt = "yuv420p" if height % 2 == 0 and width % 2 == 0 else "yuv444p"
                stream.options = {"crf": str(quality)}
            stream.width, stream.height = width, height
            for image in array:
                for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
    return path


def read_clip(path, max_frames: int | None = None) -> tuple[torch.Tensor, float | None]:
    """A folder of frames or a video file -> (``(F, 3, H, W)``, fps or None for folders)."""
    path = Path(path)
    if path.is_dir():
        return read_frames(path), None
    if is_video(path):
        return read_video(path, max_frames)
    if path.exists() and is_image(path):
        return read_image(path)[None], None
    _check_file(path)
    raise InputError(f"{path}: not a folder of frames or a video ({', '.join(VIDEO_EXTENSIONS)})")


def _video_frames(path: Path, stream_index: int = 0):
    import av

    try:
        with av.open(str(path)) as container:
            for frame in container.decode(video=stream_index):
                array = frame.to_ndarray(format="rgb24").astype(np.float32) / 255.0
                yield torch.from_numpy(array).permute(2, 0, 1).contiguous()
    except av.error.FFmpegError as exc:
        raise InputError(f"{path}: decoding failed ({exc}); the video may be corrupt") from None


def _folder_frames(paths: list[Path]):
    first = None
    for path in paths:
        frame = read_image(path)
        if first is None:
            first = (paths[0], frame.shape)
        elif frame.shape != first[1]:
            raise InputError(f"{path}: frame size {frame.shape[2]}x{frame.shape[1]} differs from "
                             f"{first[0].name} ({first[1][2]}x{first[1][1]}); all frames of a clip must match")
        yield frame


def open_clip(path):
    """Stream a folder of frames or a video: (fps or None, iterator of ``(3, H, W)`` frames).

    Long high-frame-rate captures do not fit in memory as one tensor; this reads one frame at
    a time, with the same checks as :func:`read_frames` / :func:`read_video`.
    """
    import av

    path = Path(path)
    if path.is_dir():
        return None, _folder_frames(list_images(path))
    _check_file(path)
    if not is_video(path):
        raise InputError(f"{path}: not a folder of frames or a video ({', '.join(VIDEO_EXTENSIONS)})")
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise InputError(f"{path}: has no video stream; give a video file")
            stream = container.streams.video[0]
            rate = float(stream.average_rate or stream.guessed_rate or 25)
    except av.error.FFmpegError as exc:
        raise InputError(f"{path}: not a readable video ({exc}); the file may be corrupt or not a video") from None
    return rate, _video_frames(path)
