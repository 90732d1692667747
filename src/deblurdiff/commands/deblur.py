"""``deblurdiff deblur INPUT -o OUTPUT --method NAME``: images, videos and folders.

OUTPUT mirrors INPUT: an image file -> an image file, a video -> a video of the same container
and frame rate, a folder -> a folder with the same file names. Video methods treat a folder as
the frames of one video (natural sort order) unless ``--images``. ``vdm-md`` writes, per input
image, a folder named after it holding ``00.png``, ``01.png``, ..., ``mean.png``, ``frames.gif``.
Everything is read and checked before anything is written, and outputs are renamed into place
only when complete, so a failure leaves nothing behind and inputs are never touched.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from tqdm.auto import tqdm

from .argtypes import int_at_least, positive_int, seed

HELP = "deblur an image, a video or a folder of images with a trained method"
VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v"}


def add_arguments(p):
    p.add_argument("input", help="an image file, a video file, or a folder of images")
    p.add_argument("-o", "--output", required=True, help="output file or folder (mirrors the input)")
    p.add_argument("--method", required=True, help="divd, vdd, vdm-md, blurdm, nafnet, mimo-unet, or a baseline")
    p.add_argument("--checkpoint", default=None, help="checkpoint folder (default: the shipped one)")
    p.add_argument("--backbone", default=None, help="blurdm only: nafnet (default) or mimo-unet")
    p.add_argument("--steps", type=positive_int, default=None, help="sampling steps (diffusion methods)")
    p.add_argument("--sampler", choices=["ddim", "dpmpp", "ddpm"], default=None)
    p.add_argument("--samples", type=positive_int, default=1, help="draws averaged; >1 also writes a std map with --std")
    p.add_argument("--std", action="store_true", help="also write the per-pixel std over samples (NAME.std.png)")
    p.add_argument("--seed", type=seed, default=0)
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--tile", type=int_at_least(8), default=None, help="process frames in overlapping tiles of this size")
    p.add_argument("--max-pixels", type=positive_int, default=None, help="pixel limit per frame without --tile")
    p.add_argument("--images", action="store_true", help="treat a folder as independent images, not one video")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--json", action="store_true", help="print timings and settings as one JSON object last")


def _plan(args, kind):
    """Decide what the input is and check the output can be written, before any work is done;
    returns ('image'|'video'|'frames'|'images', items)."""
    what, items = _input_kind(args, kind)
    _check_output(Path(args.output), what, kind)
    return what, items


def _check_output(out: Path, what: str, kind: str) -> None:
    """An output file name must have a suffix we can write, and its place must be writable."""
    from ..atomic import check_writable
    from ..data.io import IMAGE_EXTENSIONS, is_image
    from ..errors import InputError

    single = out.suffix and not out.is_dir()
    if single and what == "image" and kind != "exposure" and not is_image(out):
        raise InputError(f"-o {out}: cannot write an image with extension {out.suffix!r}; "
                         f"use one of {', '.join(IMAGE_EXTENSIONS)} (or a folder name)")
    if single and what == "video" and out.suffix.lower() not in VIDEO_SUFFIXES:
        raise InputError(f"-o {out}: cannot write a video with extension {out.suffix!r}; "
                         f"use one of {', '.join(sorted(VIDEO_SUFFIXES))} (or a folder name)")
    check_writable(out, "-o")


def _input_kind(args, kind):
    from ..data.io import list_images
    from ..errors import InputError

    src = Path(args.input)
    if not src.exists():
        raise InputError(f"input {src} does not exist")
    out = Path(args.output)
    if out.resolve() == src.resolve():
        raise InputError(f"-o {out} is the input itself; choose another output path (inputs are never overwritten)")
    if src.is_dir():
        if out.resolve().is_relative_to(src.resolve()):
            raise InputError(f"-o {out} lies inside the input folder {src}; choose a path outside it")
        files = list_images(src)
        if kind == "video" and not args.images:
            return "frames", files
        return "images", files
    if src.suffix.lower() in VIDEO_SUFFIXES:
        if kind == "exposure":
            raise InputError(f"{args.method} restores single images, not videos; extract frames from {src} first")
        return "video", [src]
    return "image", [src]


def run(args) -> int:
    import torch

    from ..api import DEFAULT_MAX_PIXELS, load
    from ..atomic import staged_into
    from ..data.io import read_image, read_video
    from ..errors import InputError

    if args.steps is not None and args.steps < 1:
        raise InputError(f"--steps must be at least 1, got {args.steps}")
    if args.samples < 1:
        raise InputError(f"--samples must be at least 1, got {args.samples}")
    model = load(args.method, args.checkpoint, args.device, backbone=args.backbone)
    what, items = _plan(args, model.kind)
    src, out = Path(args.input), Path(args.output)

    # Read and validate everything first: a bad file fails before any output exists.
    fps = None
    if what == "video":
        clip, fps = read_video(src)
        inputs = {src.name: clip}
    elif what == "frames":
        frames = [read_image(f) for f in items]
        sizes = sorted({tuple(f.shape[-2:]) for f in frames})
        if len(sizes) > 1:
            raise InputError(f"frames in {src} have different sizes {sizes}; pass --images to deblur them one by one")
        inputs = {"clip": torch.stack(frames)}
    else:
        inputs = {f.name: read_image(f) for f in items}

    options = dict(steps=args.steps, sampler=args.sampler, samples=args.samples, seed=args.seed, tile=args.tile,
                   max_pixels=args.max_pixels or DEFAULT_MAX_PIXELS, progress=not args.quiet, return_std=True)
    results, seconds = {}, 0.0
    for name, x in tqdm(list(inputs.items()), desc="inputs", disable=args.quiet or len(inputs) < 2):
        try:
            results[name] = model.deblur(x, **options)
        except InputError as exc:  # the API does not know file names: say which input it was
            raise InputError(f"{src if what in ('image', 'video', 'frames') else src / name}: {exc}") from None
        seconds += model.last_run["seconds"]

    root, files = _outputs(what, model.kind, src, out, items, results, fps, args.std)
    with staged_into(root) as staging:
        for rel, write in files.items():
            write(staging / rel)
    written = sorted({str(root / Path(rel).parts[0]) for rel in files})
    if not args.quiet:
        print(f"wrote {len(files)} file(s) under {root} ({seconds:.2f} s)", file=sys.stderr)
    if args.json:
        print(json.dumps({"method": args.method, "input": str(src), "input_kind": what, "outputs": written,
                          "seconds": round(seconds, 4), "seconds_per_frame": round(seconds / _count(inputs, model.kind), 4),
                          "steps": args.steps, "sampler": args.sampler, "samples": args.samples, "seed": args.seed,
                          "tile": args.tile, "device": str(model.device)}))
    return 0


def _count(inputs, kind):
    return sum(x.shape[0] if x.dim() == 4 else 1 for x in inputs.values())


def _outputs(what, kind, src, out, items, results, fps, with_std):
    """(root folder, {relative path: writer(path)}) mirroring the input's layout."""
    from ..data.io import write_image, write_video
    from ..report import write_gif

    files = {}
    if what == "video":
        root, rel = (out.parent, out.name) if out.suffix else (out, src.name)
        result, _ = results[src.name]
        files[rel] = lambda path: write_video(path, result, fps)
        return root, files
    if what == "frames":
        clip, std = results["clip"]
        for f, frame, s in zip(items, clip, std):
            files[f.name] = lambda path, frame=frame: write_image(path, frame)
            if with_std:
                files[f.stem + ".std.png"] = lambda path, s=s: write_image(path, _std_map(s))
        return out, files
    single_file = what == "image" and kind != "exposure" and bool(out.suffix) and not out.is_dir()
    root = out.parent if single_file else out
    for name, (result, std) in results.items():
        if kind == "exposure":  # one folder per image: 00.png ... mean.png frames.gif
            stem = Path(name).stem
            for i, frame in enumerate(result):
                files[f"{stem}/{i:02d}.png"] = lambda path, frame=frame: write_image(path, frame)
            files[f"{stem}/mean.png"] = lambda path, r=result: write_image(path, r.mean(0))
            files[f"{stem}/frames.gif"] = lambda path, r=result: write_gif(path, r)
            if with_std:
                files[f"{stem}/std.png"] = lambda path, s=std: write_image(path, _std_map(s.mean(0)))
            continue
        rel = out.name if single_file else name
        files[rel] = lambda path, r=result: write_image(path, r)
        if with_std:
            files[str(Path(rel).with_suffix("")) + ".std.png"] = lambda path, s=std: write_image(path, _std_map(s))
    return root, files


def _std_map(std):
    """Per-pixel std (C,H,W) -> a gray image scaled so the largest spread is white."""
    gray = std.mean(dim=-3, keepdim=True)
    return (gray / gray.max().clamp_min(1e-8)).expand(3, *gray.shape[-2:])
