"""Real camera blur for the video methods: the GoPro sequence GOPR0384_11_00 (20 blurred 1280x720
frames, ``../shared/data/real``, evaluation only) deblurred as one clip through the public API, and
its first frame scored against the real sharp frame (the GoPro Istanbul pair) beside the blurry input
and the published DMPHN and HINet outputs of that frame.

Frame 1 of the sequence (``000001.png``) is byte-identical to ``Istanbul_blur1.png`` (the same
SHA-256, 1f516e38..., in the folder's ``SHA256SUMS``), so ``Istanbul_sharp1.png`` is its truth.
The only truth is for frame 1, so the clip's temporal figure compares the output's frame-to-frame
change with the blurry clip's (``temporal_error(output, blurry)``, [0, 255], 0 for a method that
changes every frame alike): it says how much flicker the method adds, not how right it is.

One centred crop, the same region of every frame, of the sharp frame and of the published outputs,
keeps a CPU run to minutes; ``crop=None`` scores the full frames. The figure names state which
(``real_crop320x320_...`` or ``real_full1280x720_...``).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch

from bench_image_models import PUBLISHED, REAL_PAIRS, scores
from harness import REAL, lpips_scorer

import deblurdiff
from deblurdiff.data.io import list_images, read_image
from deblurdiff.errors import InputError
from deblurdiff.metrics import temporal_error

SEQUENCE = "gopro_GOPR0384_11_00_blur_seq_DMPHN"
SEQUENCE_LENGTH = 20
PAIR = "GoPro Istanbul"  # its blurred frame is the sequence's 000001.png (see the module docstring)
SHARP_FIRST = REAL_PAIRS[PAIR][1]
DEFAULT_CROP = (320, 320)  # (height, width)


def parse_crop(text: str) -> tuple[int, int] | None:
    """``--real-crop``: ``320`` (square), ``WxH`` (e.g. ``480x320``) or ``full`` / ``0`` (no crop)."""
    if text.strip().lower() in ("full", "none", "0"):
        return None
    try:
        sides = [int(v) for v in text.lower().split("x")]
    except ValueError:
        sides = []
    if len(sides) not in (1, 2) or min(sides) < 1:
        raise argparse.ArgumentTypeError(f"--real-crop {text!r}: give N (a square), WxH, or 'full'")
    return (sides[0], sides[0]) if len(sides) == 1 else (sides[1], sides[0])


def add_arguments(parser: argparse.ArgumentParser, frames: int, crop: tuple[int, int] | None = DEFAULT_CROP) -> None:
    """The real-clip options every video bench takes (defaults sized per method by the caller)."""
    crop_text = "full" if crop is None else f"{crop[1]}x{crop[0]}"
    parser.add_argument("--real", type=Path, default=REAL, help="real-data folder (default ../shared/data/real)")
    parser.add_argument("--real-frames", type=int, default=frames,
                        help=f"first N of the {SEQUENCE_LENGTH} real blurred frames deblurred as a clip")
    parser.add_argument("--real-crop", type=parse_crop, default=crop,
                        help=f"centred crop of every real frame, N, WxH or 'full' (default {crop_text})")
    parser.add_argument("--skip-real", action="store_true", help="skip the real GoPro clip")


def centre_box(crop: tuple[int, int] | None, height: int, width: int) -> tuple[slice, slice]:
    """Rows and columns of the centred ``(height, width)`` crop; whole frames for ``None``."""
    if crop is None:
        return slice(None), slice(None)
    h, w = crop
    if h > height or w > width:
        raise InputError(f"real crop {w}x{h} is larger than the {width}x{height} frames; pass a smaller one or 'full'")
    top, left = (height - h) // 2, (width - w) // 2
    return slice(top, top + h), slice(left, left + w)


def real_clip_figures(model, real: Path = REAL, frames: int = SEQUENCE_LENGTH,
                      crop: tuple[int, int] | None = DEFAULT_CROP, steps: int | None = None, seed: int = 0,
                      tile: int | None = None) -> dict:
    """Deblur the first ``frames`` real frames as one clip with ``model`` (a ``deblurdiff.load``
    result: sliding windows and tiles come from its ``deblur``; an image method restores each frame
    alone) and score output frame 1. Returns ``{}`` (and says why) when the data are absent."""
    real = Path(real)
    folder = real / SEQUENCE
    if not folder.is_dir() or not (real / SHARP_FIRST).is_file():
        print(f"real clip skipped: {folder} or {real / SHARP_FIRST} is not present")
        return {}
    paths = list_images(folder)
    if not 1 <= frames <= len(paths):
        raise InputError(f"--real-frames {frames}: {folder} holds {len(paths)} frames; pick 1 to {len(paths)}")
    sharp = read_image(real / SHARP_FIRST)
    rows, cols = centre_box(crop, *sharp.shape[-2:])

    def cropped(path: Path) -> torch.Tensor:
        image = read_image(path)
        if image.shape != sharp.shape:  # else the same crop would not be the same region
            raise InputError(f"{path} is {image.shape[-1]}x{image.shape[-2]}, the sharp frame "
                             f"{sharp.shape[-1]}x{sharp.shape[-2]}: real frames must share one size")
        return image[:, rows, cols]

    blur = torch.stack([cropped(p) for p in paths[:frames]])
    truth = sharp[None, :, rows, cols]
    out = model.deblur(blur, steps=steps, seed=seed, tile=tile)
    height, width = truth.shape[-2:]
    tag = f"real_{'full' if crop is None else 'crop'}{width}x{height}"
    name = model.name
    firsts = {"blurry": blur[:1], name: out[:1]}
    firsts.update({label.split()[0].lower() + "_published": cropped(real / file)[None]
                   for label, file in PUBLISHED[PAIR].items()})
    lpips = lpips_scorer("real clip")
    figures = {}
    for label, image in firsts.items():
        figures.update({f"{tag}_{metric.lower()}_{label}": value for metric, value in scores(image, truth, lpips).items()})
    figures[f"{tag}_gain_db_{name}"] = figures[f"{tag}_psnr_{name}"] - figures[f"{tag}_psnr_blurry"]
    if frames >= 2:
        figures[f"{tag}_temporal_error_{name}_vs_blurry"] = float(temporal_error(out[None], blur[None]).mean())
    figures[f"{tag}_frames"] = frames
    figures[f"{tag}_seconds_per_frame_{name}"] = model.last_run["seconds_per_frame"]
    return figures


def run_section(method: str, checkpoint: Path, args: argparse.Namespace, steps: int | None = None,
                seed: int = 0) -> tuple[dict, dict]:
    """The section as a bench runs it from the options of :func:`add_arguments`: (figures, settings)."""
    if args.skip_real:
        print("real clip skipped: --skip-real")
        return {}, {}
    model = deblurdiff.load(method, checkpoint=checkpoint, device="cpu")
    figures = real_clip_figures(model, args.real, args.real_frames, args.real_crop, steps=steps, seed=seed)
    crop = "full frames" if args.real_crop is None else f"centred {args.real_crop[1]}x{args.real_crop[0]}"
    return figures, {"real": str(args.real), "real_frames": args.real_frames, "real_crop": crop,
                     "real_steps": steps, "real_seed": seed} if figures else {}
