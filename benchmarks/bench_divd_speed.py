"""DIVD inference speed: the reference path against the fast path, side by side in one process.

    python benchmarks/bench_divd_speed.py [--checkpoint DIR] [--size 128] [--frames 4] [--repeats 3] [--api-size 512]

``restore(precision="reference")`` is the float32 NCHW computation DIVD inference used before the
fast path (and training still uses); the fast path runs the UNet in ``channels_last`` (oneDNN
convolutions without reorders, copy-free LayerNorm, the WTSA output written back pixel-major), as a
bf16 copy where the CPU has bf16 kernels (``precision="auto"``), with explicit attention for the
small WTSA windows. Both paths restore the same clip with the same seed, interleaved, ``--repeats``
times each (best time kept, one thread). Printed: seconds per megapixel per step of each path (wall
and process CPU time: on a loaded machine the CPU time is the steadier figure), their ratio, the
PSNR between the two outputs and each output's PSNR against the ground truth (the fast path must
stay within 0.05 dB).

The input is the embedded benchmark's first video clip (first ``--frames`` frames, cropped to
``--size``). The shipped checkpoint is nearly the identity, which would make the PSNR check
trivial, so by default its output conv is re-drawn (seeded, std 0.05) to give a non-trivial output;
``--checkpoint`` with a trained model measures that model as it is.

Through the API (``--api-size``): one frame through ``deblurdiff.api`` with 256 px tiles, the
issue's definition of s/MP/step, for the code before this change (reference network, previous tile
layout: :func:`previous_tiled`), the fast network with the previous tiles, and today's API (fast
network, tiles laid out by ``deblurdiff.infer.tiles.tile_spans``); see :func:`api_comparison`.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import report  # noqa: E402

from deblurdiff.blur.benchmark import video_clip  # noqa: E402
from deblurdiff.methods import shipped_checkpoint  # noqa: E402
from deblurdiff.methods.divd import DIVD, bf16_is_fast  # noqa: E402
from deblurdiff.metrics import psnr  # noqa: E402


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--checkpoint", type=Path, default=None, help="a DIVD folder (default: the shipped one, "
                                                                  "with a re-drawn output conv)")
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--frames", type=int, default=4)
    ap.add_argument("--steps", type=int, default=1, help="sampler steps per timed restore")
    ap.add_argument("--psnr-steps", type=int, default=10, help="DPM-Solver++ steps of the PSNR comparison")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--paths", default="reference,fp32,auto")
    ap.add_argument("--api-size", type=int, default=512, help="also time one SIZExSIZE frame through "
                                                                  "deblurdiff.api with 256-px tiles (0: skip)")
    ap.add_argument("--api-repeats", type=int, default=2)
    ap.add_argument("--api-psnr-steps", type=int, default=4, help="DPM-Solver++ steps of the API's PSNR comparison")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    model = DIVD.from_pretrained(args.checkpoint or shipped_checkpoint("divd")).eval()
    if args.checkpoint is None:
        torch.nn.init.normal_(model.net.outro.weight, std=0.05, generator=torch.Generator().manual_seed(0))
    clip = video_clip(0)
    blur = clip["blur"][:args.frames, :, :args.size, :args.size].clamp(0, 1)[None]
    sharp = clip["sharp"][:args.frames, :, :args.size, :args.size].clamp(0, 1)[None]
    paths = args.paths.split(",")
    run = lambda path, steps: model.restore(blur, steps=steps, sampler="dpmpp", precision=path,
                                            generator=torch.Generator().manual_seed(0))
    for path in paths:  # warm-up (and the bf16 copy of the weights)
        run(path, 1)
    times = {path: [] for path in paths}
    cpu_times = {path: [] for path in paths}
    for _ in range(args.repeats):
        for path in paths:
            start, cpu = time.perf_counter(), time.process_time()
            run(path, args.steps)
            times[path].append(time.perf_counter() - start)
            cpu_times[path].append(time.process_time() - cpu)
    megapixels = blur.shape[1] * blur.shape[-2] * blur.shape[-1] / 1e6
    per_mp = {path: min(ts) / megapixels / args.steps for path, ts in times.items()}
    cpu_per_mp = {path: min(ts) / megapixels / args.steps for path, ts in cpu_times.items()}
    outs = {path: run(path, args.psnr_steps) for path in paths}
    ref = paths[0]
    rows, figures = [], {}
    for path in paths:
        gt = psnr(outs[path][0], sharp[0]).mean().item()
        vs_ref = psnr(outs[path][0], outs[ref][0]).mean().item()  # 8-bit convention: inf = same 8-bit image
        diff = (outs[path] - outs[ref]).abs().max().item()
        rows.append({"path": path, "s_per_MP_per_step": per_mp[path], "speed_ratio_vs_" + ref: per_mp[ref] / per_mp[path],
                     "cpu_s_per_MP_per_step": cpu_per_mp[path], "cpu_speed_ratio": cpu_per_mp[ref] / cpu_per_mp[path],
                     "psnr_vs_truth": gt, "psnr_vs_" + ref + "_output": vs_ref if vs_ref != float("inf") else "same 8-bit",
                     "max_abs_diff_vs_" + ref: diff})
        figures[f"max_abs_diff_{path}"] = diff
        figures[f"s_per_mp_per_step_{path}"] = per_mp[path]
        figures[f"speed_ratio_{path}"] = per_mp[ref] / per_mp[path]
        figures[f"cpu_speed_ratio_{path}"] = cpu_per_mp[ref] / cpu_per_mp[path]
        figures[f"psnr_{path}"] = gt
        figures[f"psnr_change_db_{path}"] = gt - psnr(outs[ref][0], sharp[0]).mean().item()
    figures["psnr_blurry"] = psnr(blur[0], sharp[0]).mean().item()
    if args.api_size:
        api_rows, api_figures = api_comparison(model, args.api_size, args.api_repeats, args.api_psnr_steps)
        rows += api_rows
        figures.update(api_figures)
    settings = {"checkpoint": str(args.checkpoint) if args.checkpoint else "shipped, output conv re-drawn (seed 0)",
                "size": args.size, "frames": args.frames, "steps": args.steps, "psnr_steps": args.psnr_steps,
                "repeats": args.repeats, "api_size": args.api_size, "api_repeats": args.api_repeats,
                "api_psnr_steps": args.api_psnr_steps, "threads": args.threads, "bf16_kernels": bf16_is_fast(torch.device("cpu")),
                "note": "best of repeats, interleaved, on a shared CPU: the ratio is the figure, not the seconds; "
                        "cpu_s = process CPU time (one thread), steadier than wall time on a loaded machine"}
    return report("divd_speed", figures, settings, table=rows)


def previous_tiled(fn, x, tile, overlap=32, progress=False, multiple=1):
    """``deblurdiff.infer.tiled`` before the tile layout of ``tile_spans`` (commit 52bf014): tiles of
    ``tile`` px at stride ``tile - overlap`` plus a last one flush with the edge, each padded to the
    model's multiple inside ``restore``. Kept here only as the baseline of the API comparison."""
    from deblurdiff.infer.tiles import blend_window

    h, w = x.shape[-2:]
    if tile <= 0 or (h <= tile and w <= tile):
        return fn(x)
    overlap = max(0, min(overlap, tile // 2))
    th, tw = min(tile, h), min(tile, w)
    starts = lambda n, t: [0] if n <= t else list(range(0, n - t, t - overlap)) + [n - t]
    ys, xs = starts(h, th), starts(w, tw)
    wy, wx = blend_window(th, overlap if len(ys) > 1 else 0), blend_window(tw, overlap if len(xs) > 1 else 0)
    weight = wy[:, None] * wx[None, :]
    out = norm = None
    for y in ys:
        for x0 in xs:
            result = fn(x[..., y:y + th, x0:x0 + tw])
            if out is None:
                out, norm = result.new_zeros(*result.shape[:-2], h, w), result.new_zeros(h, w)
            out[..., y:y + th, x0:x0 + tw] += result * weight
            norm[y:y + th, x0:x0 + tw] += weight
    return out / norm


def api_comparison(model, size: int, repeats: int, psnr_steps: int) -> tuple[list, dict]:
    """One ``size`` x ``size`` frame through ``deblurdiff.api`` with 256-px tiles (one step), the way
    behind the issue's 38 s/MP/step: the API pads the frame to a 4-frame window and tiles it.

    Rows: ``reference`` = the code before this change (float32 NCHW network, previous tile layout);
    ``auto, previous tiles`` isolates the network's gain; ``auto`` = today's API; ``auto, untiled``
    (one 512 px tile) is the layout-neutral PSNR reference: every tile draws its own noise, so where
    tiles overlap the blend averages independent samples, and a layout with wider overlaps scores
    higher for a model whose samples differ (the previous layout overlapped 192 px of 512). Interleaved,
    best of ``repeats``; the PSNR is against the sharp frame of a camera shake over a 512 px photo
    (``psnr_steps`` DPM-Solver++ steps, same seed)."""
    from unittest import mock

    from deblurdiff import api as api_module
    from deblurdiff.blur.shake import camera_shake
    from deblurdiff.blur.sources import load_photo

    deblurrer = api_module.Deblurrer(model, "divd", torch.device("cpu"))
    photo = torch.nn.functional.interpolate(load_photo("astronaut")[None], size=(size, size), mode="bilinear",
                                            antialias=True, align_corners=False)[0].clamp(0, 1)
    shaken = camera_shake(photo, subframes=16, max_shift=8.0, seed=0)
    variants = {"reference": ("reference", previous_tiled, 256), "auto, previous tiles": ("auto", previous_tiled, 256),
                "auto": ("auto", api_module.tiled, 256), "auto, untiled": ("auto", api_module.tiled, 0)}

    def run(name, image, steps):
        precision, tiler, tile = variants[name]
        model.inference_precision = precision
        try:
            with mock.patch.object(api_module, "tiled", tiler):
                return deblurrer.deblur(image, steps=steps, tile=tile)
        finally:
            model.inference_precision = "auto"

    wall, cpu = {name: [] for name in variants}, {name: [] for name in variants}
    for name in variants:  # warm-up
        run(name, shaken.blurred, 1)
    for _ in range(repeats):
        for name in variants:
            start = time.process_time()
            run(name, shaken.blurred, 1)
            cpu[name].append(time.process_time() - start)
            wall[name].append(deblurrer.last_run["seconds"])
    mp = size * size / 1e6
    out = {name: run(name, shaken.blurred, psnr_steps) for name in variants}
    gt = {name: psnr(out[name][None], shaken.sharp[None]).item() for name in variants}
    rows, figures = [], {"api_psnr_blurry": psnr(shaken.blurred[None], shaken.sharp[None]).item()}
    for name in variants:
        key = name.replace(", ", "_").replace(" ", "_")
        per_mp, cpu_per_mp = min(wall[name]) / mp, min(cpu[name]) / mp
        ratio, cpu_ratio = min(wall["reference"]) / min(wall[name]), min(cpu["reference"]) / min(cpu[name])
        rows.append({"path": f"{name}: API {size}x{size} frame, tile {variants[name][2]}", "s_per_MP_per_step": per_mp,
                     "speed_ratio_vs_reference": ratio, "cpu_s_per_MP_per_step": cpu_per_mp, "cpu_speed_ratio": cpu_ratio,
                     "psnr_vs_truth": gt[name], "psnr_change_db": gt[name] - gt["reference"],
                     "max_abs_diff_vs_reference": (out[name] - out["reference"]).abs().max().item()})
        figures.update({f"api_s_per_mp_per_step_{key}": per_mp, f"api_speed_ratio_{key}": ratio,
                        f"api_cpu_s_per_mp_per_step_{key}": cpu_per_mp, f"api_cpu_speed_ratio_{key}": cpu_ratio,
                        f"api_psnr_{key}": gt[name], f"api_psnr_change_db_{key}": gt[name] - gt["reference"]})
    return rows, figures


if __name__ == "__main__":
    main()
