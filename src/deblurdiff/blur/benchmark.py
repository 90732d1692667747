"""The embedded benchmark: fixed, seeded test data that ships as code (``deblurdiff synth --benchmark``).

Layout (docs/architecture.md)::

    DIR/image/{blur,sharp}/000.png ... 023.png        24 pairs, 256x256, camera shake over photos
    DIR/video/clip00/{blur,sharp}/00.png ... 11.png   8 clips x 12 frames, 128x128, moving scenes
    DIR/exposure/case00/blur.png, frames/00..09.png   32 cases, 64x64, 10 sharp sub-frames
    DIR/manifest.json                                 seeds, photos, sizes, version
    DIR/preview.png                                   a contact sheet of all three parts

Its photos (:data:`BENCHMARK_PHOTOS`) and seeds (:data:`IMAGE_SEEDS`, :data:`VIDEO_SEEDS`,
:data:`EXPOSURE_SEEDS`, all at or above ``BENCHMARK_SEED_BASE``) are never used by a training
source: ``scenes`` and ``shake`` draw from ``TRAIN_PHOTOS`` and seeds below
``TRAIN_SEED_LIMIT`` (``deblurdiff.blur.sources``).
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn.functional as F
from einops import rearrange

from ..atomic import atomic_dir
from .formation import middle_index
from .scenes import generate_clip, generate_exposure
from .shake import camera_shake
from .sources import BENCHMARK_PHOTOS, BENCHMARK_SEED_BASE, load_photo, random_crop_resized

# 2: the image part's sharp reference is the photo at the shake path's centre of mass (was: the
#    pose at mid-exposure, which a bent path leaves off the centroid the blur pins down).
VERSION = 2

#: Distinct pictures used by the image part (``cat`` is the same picture as ``chelsea``).
IMAGE_PHOTOS = ("astronaut", "coffee", "chelsea", "rocket")
IMAGE_COUNT, IMAGE_SIZE, IMAGE_SUBFRAMES, IMAGE_MAX_SHIFT = 24, 256, 24, 20.0
VIDEO_COUNT, VIDEO_FRAMES, VIDEO_SIZE, VIDEO_SUBFRAMES, VIDEO_DUTY = 8, 12, 128, 10, 0.9
EXPOSURE_COUNT, EXPOSURE_SIZE, EXPOSURE_FRAMES = 32, 64, 10

IMAGE_SEEDS = tuple(BENCHMARK_SEED_BASE + i for i in range(IMAGE_COUNT))
VIDEO_SEEDS = tuple(BENCHMARK_SEED_BASE + 1000 + i for i in range(VIDEO_COUNT))
EXPOSURE_SEEDS = tuple(BENCHMARK_SEED_BASE + 2000 + i for i in range(EXPOSURE_COUNT))
ALL_SEEDS = IMAGE_SEEDS + VIDEO_SEEDS + EXPOSURE_SEEDS

__all__ = ["BENCHMARK_PHOTOS", "IMAGE_PHOTOS", "IMAGE_SEEDS", "VIDEO_SEEDS", "EXPOSURE_SEEDS", "ALL_SEEDS",
           "image_pair", "video_clip", "exposure_case", "write_benchmark"]


def image_pair(index: int) -> dict:
    """Image pair ``index``: camera shake over a crop of a benchmark photo (``blur``, ``sharp`` (3,256,256))."""
    seed = IMAGE_SEEDS[index]
    photo_name = IMAGE_PHOTOS[index % len(IMAGE_PHOTOS)]
    generator = torch.Generator().manual_seed(seed)
    margin = int(IMAGE_MAX_SHIFT) + 4
    side = IMAGE_SIZE + 2 * margin
    photo = random_crop_resized(load_photo(photo_name), side, side, generator, min_scale=0.6)
    shaken = camera_shake(photo, IMAGE_SUBFRAMES, max_shift=IMAGE_MAX_SHIFT, max_rotation=0.01,
                          margin=margin, generator=generator)
    return {"blur": shaken.blurred, "sharp": shaken.sharp, "photo": photo_name, "seed": seed,
            "trajectory": shaken.trajectory}


def video_clip(index: int) -> dict:
    """Video clip ``index``: a procedural scene (``blur``, ``sharp`` (12,3,128,128))."""
    clip = generate_clip(VIDEO_SEEDS[index], VIDEO_SIZE, VIDEO_FRAMES, VIDEO_SUBFRAMES, VIDEO_DUTY,
                         photos=BENCHMARK_PHOTOS)
    return {"blur": clip["blur"], "sharp": clip["sharp"], "seed": VIDEO_SEEDS[index]}


def exposure_case(index: int) -> dict:
    """Exposure case ``index``: ``blur`` (3,64,64) and its 10 sharp sub-frames ``frames``."""
    case = generate_exposure(EXPOSURE_SEEDS[index], EXPOSURE_SIZE, EXPOSURE_FRAMES, photos=BENCHMARK_PHOTOS)
    return {"blur": case["blur"], "frames": case["frames"], "seed": EXPOSURE_SEEDS[index]}


def manifest() -> dict:
    return {
        "name": "deblurdiff embedded benchmark",
        "version": VERSION,
        "blur_convention": "average of gamma-encoded sub-frames (GoPro 'blur')",
        "image": {"count": IMAGE_COUNT, "size": IMAGE_SIZE, "subframes": IMAGE_SUBFRAMES,
                  "max_shift_px": IMAGE_MAX_SHIFT, "seeds": list(IMAGE_SEEDS),
                  "photos": [IMAGE_PHOTOS[i % len(IMAGE_PHOTOS)] for i in range(IMAGE_COUNT)],
                  "source": "camera shake over scikit-image photos",
                  "reference": "the photo at the shake path's centre of mass (mean pose)"},
        "video": {"count": VIDEO_COUNT, "frames": VIDEO_FRAMES, "size": VIDEO_SIZE,
                  "subframes": VIDEO_SUBFRAMES, "duty_cycle": VIDEO_DUTY, "seeds": list(VIDEO_SEEDS),
                  "photos": list(BENCHMARK_PHOTOS), "source": "procedural moving scenes"},
        "exposure": {"count": EXPOSURE_COUNT, "size": EXPOSURE_SIZE, "frames": EXPOSURE_FRAMES,
                     "middle_frame": middle_index(EXPOSURE_FRAMES), "seeds": list(EXPOSURE_SEEDS),
                     "photos": list(BENCHMARK_PHOTOS), "source": "procedural moving scenes, one exposure"},
    }


def write_benchmark(out, preview: bool = True) -> dict:
    """Generate the whole benchmark into ``out`` (atomically: a crash leaves no partial folder)."""
    from ..data.io import write_image

    out = Path(out)
    info = manifest()
    with atomic_dir(out) as tmp:
        images = [image_pair(i) for i in range(IMAGE_COUNT)]
        for i, pair in enumerate(images):
            write_image(tmp / "image" / "blur" / f"{i:03d}.png", pair["blur"])
            write_image(tmp / "image" / "sharp" / f"{i:03d}.png", pair["sharp"])
        info["image"]["trajectory_extent_px"] = [
            round(float((p["trajectory"][:, None, :2] - p["trajectory"][None, :, :2]).norm(dim=-1).max()), 2)
            for p in images]
        clips = [video_clip(i) for i in range(VIDEO_COUNT)]
        for c, clip in enumerate(clips):
            for f in range(VIDEO_FRAMES):
                write_image(tmp / "video" / f"clip{c:02d}" / "blur" / f"{f:02d}.png", clip["blur"][f])
                write_image(tmp / "video" / f"clip{c:02d}" / "sharp" / f"{f:02d}.png", clip["sharp"][f])
        cases = [exposure_case(i) for i in range(EXPOSURE_COUNT)]
        for c, case in enumerate(cases):
            write_image(tmp / "exposure" / f"case{c:02d}" / "blur.png", case["blur"])
            for f in range(EXPOSURE_FRAMES):
                write_image(tmp / "exposure" / f"case{c:02d}" / "frames" / f"{f:02d}.png", case["frames"][f])
        (tmp / "manifest.json").write_text(json.dumps(info, indent=2) + "\n")
        if preview:
            write_image(tmp / "preview.png", contact_sheet(images, clips, cases))
    return info


def contact_sheet(images: list, clips: list, cases: list, tile: int = 128, columns: int = 8) -> torch.Tensor:
    """A preview grid: row 1 image pairs (sharp | blur), row 2 video frames (sharp | blur),
    row 3 exposure cases (middle sharp frame | blur); 2-px white gutters."""
    def fit(x):
        return F.interpolate(x[None], size=(tile, tile), mode="bilinear", antialias=True, align_corners=False)[0] \
            if x.shape[-1] > tile else F.interpolate(x[None], size=(tile, tile), mode="nearest")[0]

    pairs = columns // 2
    rows = [
        [fit(t) for p in images[:pairs] for t in (p["sharp"], p["blur"])],
        [fit(t) for i in range(pairs) for t in (clips[i % len(clips)]["sharp"][(i * 3) % VIDEO_FRAMES],
                                                 clips[i % len(clips)]["blur"][(i * 3) % VIDEO_FRAMES])],
        [fit(t) for c in cases[:pairs] for t in (c["frames"][middle_index(EXPOSURE_FRAMES)], c["blur"])],
    ]
    grid = torch.stack([torch.stack(r) for r in rows])                      # (rows, cols, 3, tile, tile)
    grid = F.pad(grid, (1, 1, 1, 1), value=1.0)
    return rearrange(grid, "r c ch h w -> ch (r h) (c w)").clamp(0, 1)
