"""``deblurdiff bench``: speed and peak memory of one method on a synthetic input.

Run it in a fresh process per setting: peak memory is the process's peak resident set
(CPU) or ``torch.cuda.max_memory_allocated`` (GPU).
"""
from __future__ import annotations

import json
import resource
import sys

import torch

from .argtypes import frame_size, int_at_least, positive_int

HELP = "measure a method's time per megapixel and peak memory on a synthetic input"


def add_arguments(p):
    p.add_argument("--method", required=True)
    p.add_argument("--checkpoint", default=None)
    p.add_argument("--backbone", default=None)
    p.add_argument("--size", type=frame_size, default=(256, 256), help="WIDTHxHEIGHT of the input (default 256x256)")
    p.add_argument("--frames", type=positive_int, default=1, help="clip length for video methods")
    p.add_argument("--steps", type=positive_int, default=None)
    p.add_argument("--sampler", choices=["ddim", "dpmpp", "ddpm"], default=None)
    p.add_argument("--tile", type=int_at_least(8), default=None)
    p.add_argument("--device", default="auto")
    p.add_argument("--repeats", type=positive_int, default=1)


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**20


def run(args) -> int:
    from ..api import load

    width, height = args.size
    model = load(args.method, args.checkpoint, args.device, backbone=args.backbone)
    g = torch.Generator().manual_seed(0)
    shape = (args.frames, 3, height, width) if model.kind == "video" else (3, height, width)
    x = torch.rand(shape, generator=g)
    times = []
    for _ in range(args.repeats):
        model.deblur(x, steps=args.steps, sampler=args.sampler, tile=args.tile, max_pixels=10**12)
        times.append(model.last_run["seconds"])
    frames = args.frames if model.kind == "video" else 1
    megapixels = width * height * frames / 1e6
    result = {"method": args.method, "size": f"{width}x{height}", "frames": frames, "tile": model.last_run["tile"],
              "steps": args.steps, "seconds": min(times), "seconds_per_megapixel": min(times) / megapixels,
              "peak_memory_mb": peak_memory_mb(model.device), "device": str(model.device)}
    print(json.dumps(result))
    return 0
