"""``deblurdiff synth``: make blurred/sharp training data, or the embedded benchmark.

Sources (exactly one): ``--from PATH`` (a folder of sharp high-frame-rate frames or a video:
blur = average of ``--window`` consecutive frames, sharp = the window's middle frame, as GoPro
was made), ``--photos DIR`` (camera shake over each photo), ``--scenes N`` (procedural moving
scenes) or ``--benchmark``. Output is the GoPro layout ``OUT/<split>/<sequence>/{blur,sharp}/``
(plus ``blur_gamma`` with ``--linear``), written to a temporary folder and renamed when complete.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from .argtypes import float_in, folder_name, int_at_least, positive_int, seed

HELP = "synthesise blurred/sharp pairs (GoPro layout) from frames, photos or scenes; or the benchmark"


def add_arguments(parser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--from", dest="source", metavar="PATH",
                        help="folder of sharp high-frame-rate frames, or a video file")
    source.add_argument("--photos", metavar="DIR", help="folder of sharp photos to shake")
    source.add_argument("--scenes", type=positive_int, metavar="N", help="number of procedural scene sequences")
    source.add_argument("--benchmark", action="store_true", help="write the embedded benchmark")
    parser.add_argument("--out", required=True, help="output folder (must not exist or be empty unless --overwrite)")
    parser.add_argument("--overwrite", action="store_true", help="replace a non-empty --out folder")
    parser.add_argument("--window", type=positive_int, default=7, help="--from: frames averaged per blurred frame (GoPro: 7-13)")
    parser.add_argument("--stride", type=positive_int, default=None, help="--from: frames between window starts (default: --window)")
    parser.add_argument("--linear", action="store_true",
                        help="also write blur_gamma/: the average taken in linear light (GoPro's blur_gamma)")
    parser.add_argument("--gamma", type=_gamma, default=2.2,
                        help="camera response for --linear: an exponent (default 2.2) or 'srgb'")
    parser.add_argument("--split", type=folder_name, default="train", help="split folder name (default train)")
    parser.add_argument("--seed", type=seed, default=0, help="random seed (--photos, --scenes)")
    parser.add_argument("--size", type=int_at_least(8), default=128, help="--scenes: frame size in pixels (default 128)")
    parser.add_argument("--frames", type=positive_int, default=16, help="--scenes: frames per sequence (default 16)")
    parser.add_argument("--subframes", type=positive_int, default=10, help="--scenes/--photos: sub-frames per exposure")
    parser.add_argument("--duty-cycle", type=float_in(0.0, 1.0), default=1.0, help="--scenes: shutter-open fraction of a frame interval")
    parser.add_argument("--per-photo", type=positive_int, default=1, help="--photos: shaken versions of each photo")
    parser.add_argument("--max-shift", type=float_in(0.0), default=None,
                        help="--photos: longest camera path in pixels (default 3%% of the short side)")


def _gamma(text: str):
    import argparse

    if text.lower() == "srgb":
        return "srgb"
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number or 'srgb', got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"gamma must be positive, got {value}")
    return value


def run(args) -> int:
    from ..errors import InputError

    out = Path(args.out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not args.overwrite:
        raise InputError(f"{out} exists and is not empty; choose a new --out or pass --overwrite")
    # The work is many small tensor ops: one thread does it with a third of the CPU time that two
    # spinning threads use (bench_synth.py), and leaves the other core free.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        _dispatch(args, out)
    finally:
        torch.set_num_threads(threads)
    return 0


def _dispatch(args, out: Path) -> str:
    start = time.perf_counter()
    if args.benchmark:
        from ..blur.benchmark import write_benchmark

        info = write_benchmark(out)
        summary = (f"benchmark v{info['version']}: {info['image']['count']} image pairs, "
                   f"{info['video']['count']} clips, {info['exposure']['count']} exposure cases; "
                   f"preview: {out / 'preview.png'}")
    elif args.source is not None:
        summary = _from_frames(args, out)
    elif args.photos is not None:
        summary = _from_photos(args, out)
    else:
        summary = _from_scenes(args, out)
    print(f"{summary} -> {out} ({time.perf_counter() - start:.1f} s)")
    return summary


def _check_positive(**values) -> None:
    from ..errors import InputError

    for name, value in values.items():
        if value is not None and value < 1:
            raise InputError(f"--{name.replace('_', '-')} must be >= 1, got {value}")


def _write_sequence(folder: Path, blur, sharp, blur_gamma=None, first: int = 0) -> None:
    """Write pairs numbered from ``first`` in GoPro naming (``000047.png``)."""
    from ..data.io import write_image

    for index in range(len(blur)):
        name = f"{first + index:06d}.png"
        write_image(folder / "blur" / name, blur[index])
        write_image(folder / "sharp" / name, sharp[index])
        if blur_gamma is not None:
            write_image(folder / "blur_gamma" / name, blur_gamma[index])


def _from_frames(args, out: Path) -> str:
    """Stream the input, one exposure window at a time, so long captures need little memory."""
    from ..atomic import atomic_dir
    from ..blur.formation import middle_index, temporal_average
    from ..data.io import open_clip
    from ..errors import InputError

    _check_positive(window=args.window, stride=args.stride)
    source = Path(args.source)
    fps, frames = open_clip(source)
    window, stride = args.window, args.stride or args.window
    sequence = source.stem if source.is_file() else source.name
    pairs = seen = 0
    buffer = []                       # frames of the current window, oldest first
    with atomic_dir(out) as tmp:
        folder = tmp / args.split / sequence
        for position, frame in enumerate(frames):
            seen = position + 1
            if position < pairs * stride:        # stride > window: frames between exposures
                continue
            buffer.append(frame)
            if len(buffer) == window:
                stack = torch.stack(buffer)
                gamma = temporal_average(stack, args.gamma, dim=0)[None] if args.linear else None
                _write_sequence(folder, temporal_average(stack, dim=0)[None], stack[middle_index(window)][None],
                                gamma, first=pairs)
                pairs += 1
                buffer = buffer[stride:] if stride < window else []
        if pairs == 0:
            raise InputError(f"{source}: a blur window of {window} frames needs at least {window} frames; "
                             f"it has {seen}")
        _manifest(tmp, args, {"source": str(source), "input_frames": seen, "fps": fps,
                              "window": window, "stride": stride, "pairs": pairs})
    return f"{pairs} pairs from {seen} frames (window {window}, stride {stride})"


def _from_photos(args, out: Path) -> str:
    from ..atomic import atomic_dir
    from ..blur.formation import temporal_average
    from ..blur.shake import camera_shake
    from ..blur.sources import training_seed
    from ..data.io import list_images, read_image

    _check_positive(per_photo=args.per_photo, subframes=args.subframes)
    photos = list_images(args.photos)
    count = 0
    with atomic_dir(out) as tmp:
        blurs, sharps, gammas = [], [], []
        for p, path in enumerate(photos):
            image = read_image(path)
            shift = args.max_shift if args.max_shift is not None else max(2.0, 0.03 * min(image.shape[-2:]))
            margin = int(shift) + 4
            for copy in range(args.per_photo):
                shaken = camera_shake(image, args.subframes, max_shift=shift, margin=margin,
                                      seed=training_seed(args.seed, p * args.per_photo + copy))
                blurs.append(shaken.blurred)
                sharps.append(shaken.sharp)
                if args.linear:
                    gammas.append(temporal_average(shaken.subframes, args.gamma, dim=0))
                count += 1
            # One sequence per photo keeps photos of different sizes apart.
            _write_sequence(tmp / args.split / path.stem, blurs, sharps, gammas or None)
            blurs, sharps, gammas = [], [], []
        _manifest(tmp, args, {"photos": [p.name for p in photos], "per_photo": args.per_photo})
    return f"{count} pairs from {len(photos)} photos"


def _from_scenes(args, out: Path) -> str:
    from ..atomic import atomic_dir
    from ..blur.formation import temporal_average
    from ..blur.scenes import SceneOptions, random_scene, render_clip
    from ..blur.sources import training_seed

    _check_positive(scenes=args.scenes, frames=args.frames, subframes=args.subframes, size=args.size)
    from ..errors import InputError

    if not 0 < args.duty_cycle <= 1:
        raise InputError(f"--duty-cycle must be in (0, 1], got {args.duty_cycle}")
    with atomic_dir(out) as tmp:
        for index in range(args.scenes):
            generator = torch.Generator().manual_seed(training_seed(args.seed, index))
            scene = random_scene(generator, args.size, args.size, duration=float(args.frames), options=SceneOptions())
            clip = render_clip(scene, args.frames, args.subframes, args.duty_cycle)
            gamma = temporal_average(clip["subframes"], args.gamma, dim=1) if args.linear else None
            _write_sequence(tmp / args.split / f"scene{index:04d}", clip["blur"], clip["sharp"], gamma)
        _manifest(tmp, args, {"scenes": args.scenes, "frames": args.frames, "size": args.size,
                              "subframes": args.subframes, "duty_cycle": args.duty_cycle})
    return f"{args.scenes} scene sequences of {args.frames} frames"


def _manifest(folder: Path, args, details: dict) -> None:
    info = {"generator": "deblurdiff synth", "seed": args.seed, "split": args.split,
            "blur": "average of gamma-encoded frames",
            "blur_gamma": f"average in linear light, gamma {args.gamma}" if args.linear else None, **details}
    (folder / "synth.json").write_text(json.dumps(info, indent=2) + "\n")
