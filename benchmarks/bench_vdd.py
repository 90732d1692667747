"""VDD on the embedded benchmark's video part: shipped checkpoint vs the blurry input, the
temporal coherence loss vs its ablation (lambda = 0, same training budget), a table of
classifier-free guidance scales, and the speed of sampling a 12-frame 192 px clip with the
previous code path against the current one; then real camera blur (the GoPro clip below).

    python benchmarks/bench_vdd.py [--bench DIR] [--checkpoint DIR] [--ablation DIR] [--no-speed]
                                   [--real DIR] [--real-frames N] [--real-crop N|WxH|full] [--skip-real]

Speed (same process, same seed, old then new): "old" is the path before issue 17 (one
``restore`` per sliding window, float32 with autograd bookkeeping, 50 DDIM steps, the shipped
default then); "new" is what ``deblurdiff deblur`` runs now (``window_batch`` windows per call,
``inference_mode``, bf16 autocast on the UNet where the CPU has bf16 kernels, ``--new-steps``).
Both are timed at two small step counts and the cost is fitted as fixed + steps x per-step (the
sampler's cost is exactly linear in steps), so a contended CPU measures them in minutes; the
figures are the projected seconds at the full step counts and their ratio, plus the ratio at
equal steps. The bf16 error is the max / mean absolute difference of the new path's output
against the same path in float32 (same noise), in [0, 1] units.

``--bench``: the folder written by ``deblurdiff synth --benchmark --out DIR`` (when absent, the
clips are generated in memory by the same code). Figures: PSNR/SSIM (RGB, [0, 255], no crop; averaged over frames
and clips) and the temporal-consistency error (mean |d output/dt - d truth/dt| on [0, 255],
lower is better). Every model and scale uses the same seeded noise per clip, so differences are
paired. ``--crop``/``--frames``/``--steps`` bound the cost of diffusion sampling on a CPU; the
settings used are printed with the figures.

Real blur (``benchmarks/real_clip.py``; ``../shared/data/real``, evaluation only, skipped when
absent or with ``--skip-real``): the first ``--real-frames`` of the 20 blurred 1280x720 frames of
GoPro GOPR0384_11_00, the same centred ``--real-crop`` of each (default 320x320; ``full`` for whole
frames), deblurred as one clip through ``deblurdiff.load("vdd").deblur`` (its sliding windows,
``--steps`` DDIM steps, ``--seed``). Output frame 1 is scored against the real sharp frame (the
GoPro Istanbul pair, whose blurred frame is the clip's frame 1) by PSNR / SSIM / LPIPS (alex, when
installed) beside the blurry frame and the published DMPHN and HINet outputs of that frame, same
crop: figures ``real_crop320x320_{psnr,ssim,lpips}_{blurry,vdd,dmphn_published,hinet_published}``,
``..._gain_db_vdd``, ``..._temporal_error_vdd_vs_blurry`` (the output clip's frame-to-frame change
against the blurry clip's, [0, 255]: the flicker VDD adds; there is no sharp clip) and
``..._seconds_per_frame_vdd`` (wall time through the API).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import report, timed  # noqa: E402
from real_clip import add_arguments as add_real_arguments, run_section as real_section  # noqa: E402

from deblurdiff.data.io import read_frames  # noqa: E402
from deblurdiff.infer.windows import sliding_windows  # noqa: E402
from deblurdiff.methods import shipped_checkpoint  # noqa: E402
from deblurdiff.methods.vdd import VDD  # noqa: E402
from deblurdiff.metrics import psnr, ssim, temporal_error  # noqa: E402


def _benchmark_pairs(bench: Path | None, count: int):
    """(blur, sharp) (F, C, H, W) from the folder, or generated in memory by the same code and
    rounded to 8 bits as the folder's PNGs are."""
    if bench is not None and (bench / "video").is_dir():
        for folder in sorted((bench / "video").glob("clip*"))[:count]:
            yield read_frames(folder / "blur"), read_frames(folder / "sharp")
        return
    from deblurdiff.blur.benchmark import VIDEO_COUNT, video_clip

    for index in range(min(count, VIDEO_COUNT)):
        clip = video_clip(index)
        yield tuple((clip[key].clamp(0, 1) * 255).round() / 255 for key in ("blur", "sharp"))


def load_clips(bench: Path | None, count: int, frames: int, crop: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(blur, sharp) pairs (1, F, C, H, W), centre-cropped to ``crop`` (0 = full frames)."""
    clips = []
    for blur, sharp in _benchmark_pairs(bench, count):
        blur, sharp = blur[:frames], sharp[:frames]
        if crop:
            top, left = (blur.shape[-2] - crop) // 2, (blur.shape[-1] - crop) // 2
            blur, sharp = (x[..., top:top + crop, left:left + crop] for x in (blur, sharp))
        clips.append((blur[None], sharp[None]))
    return clips


def scores(outputs: list[torch.Tensor], clips) -> dict:
    p, s, t = [], [], []
    for out, (_, sharp) in zip(outputs, clips):
        p.append(psnr(out.flatten(0, 1), sharp.flatten(0, 1)).mean())
        s.append(ssim(out.flatten(0, 1), sharp.flatten(0, 1)).mean())
        t.append(temporal_error(out, sharp).mean())
    return {"psnr": float(torch.stack(p).mean()), "ssim": float(torch.stack(s).mean()),
            "temporal_error": float(torch.stack(t).mean())}


def restore_all(model: VDD, clips, steps: int, scale: float, seed: int) -> list[torch.Tensor]:
    outputs = []
    for index, (blur, _) in enumerate(clips):
        generator = torch.Generator().manual_seed(seed + index)
        fn = lambda window: model.restore(window, steps=steps, generator=generator, guidance_scale=scale)  # noqa: E731
        outputs.append(sliding_windows(fn, blur, frames=model.frames, overlap=0, batch_windows=model.window_batch))
    return outputs


def speed_clip(frames: int, size: int) -> torch.Tensor:
    """A benchmark clip (1, F, 3, size, size) resized to ``size`` (content only matters for the
    bf16 error; the cost depends on the size)."""
    from deblurdiff.blur.benchmark import video_clip

    blur = video_clip(0)["blur"].clamp(0, 1)
    blur = blur[torch.arange(frames) % blur.shape[0]]
    return F.interpolate(blur, size=(size, size), mode="bilinear", align_corners=False)[None]


def run_path(model: VDD, clip: torch.Tensor, path: str, steps: int, seed: int, precision: str | None = None):
    """The whole clip through the old or new path (sliding windows of ``model.frames``, API overlap)."""
    generator = torch.Generator().manual_seed(seed)
    if path == "old":
        fn = lambda w: model.restore(w, steps=steps, generator=generator, precision="reference")  # noqa: E731
        return sliding_windows(fn, clip, frames=model.frames)
    fn = lambda w: model.restore(w, steps=steps, generator=generator, precision=precision)  # noqa: E731
    return sliding_windows(fn, clip, frames=model.frames, batch_windows=model.window_batch)


def speed(model: VDD, args) -> tuple[dict, list[dict]]:
    clip = speed_clip(args.speed_frames, args.speed_size)
    low, high = args.measure_steps
    seconds = {}
    for _ in range(args.repeats):  # interleaved, so drifting load hits both paths alike; fastest kept
        for steps in (low, high):
            for path in ("old", "new"):
                _, took = timed(run_path, model, clip, path, steps, args.seed)
                seconds[path, steps] = min(took, seconds.get((path, steps), float("inf")))
    rows, fits = [], {}
    for path in ("old", "new"):
        rows += [{"path": path, "steps": steps, "seconds": round(seconds[path, steps], 2)} for steps in (low, high)]
        per_step = (seconds[path, high] - seconds[path, low]) / (high - low)
        fits[path] = (seconds[path, low] - low * per_step, per_step)
    project = lambda path, steps: fits[path][0] + steps * fits[path][1]  # noqa: E731
    old_steps = args.old_steps
    new = run_path(model, clip, "new", high, args.seed)
    fp32 = run_path(model, clip, "new", high, args.seed, precision="fp32")
    figures = {
        "speed_old_seconds": project("old", old_steps), "speed_new_seconds": project("new", args.new_steps),
        "speed_ratio_old_over_new": project("old", old_steps) / project("new", args.new_steps),
        "speed_ratio_equal_steps": project("old", args.new_steps) / project("new", args.new_steps),
        "speed_old_seconds_per_step": fits["old"][1], "speed_new_seconds_per_step": fits["new"][1],
        "bf16_vs_fp32_max_abs": float((new - fp32).abs().max()), "bf16_vs_fp32_mean_abs": float((new - fp32).abs().mean()),
        "bf16_used": model._precision(None, torch.device("cpu")) == torch.bfloat16,
    }
    return figures, rows


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bench", type=Path, default=None, help="embedded benchmark folder (default: generate)")
    parser.add_argument("--checkpoint", type=Path, default=shipped_checkpoint("vdd"))
    parser.add_argument("--ablation", type=Path, default=Path("runs/vdd-tiny-nocoherence/final"),
                        help="lambda = 0 model trained with the same budget (configs/vdd-tiny-nocoherence.yaml)")
    parser.add_argument("--clips", type=int, default=8)
    parser.add_argument("--frames", type=int, default=12, help="first N frames of each clip")
    parser.add_argument("--crop", type=int, default=0, help="centre crop side (0 = full 128x128 frames)")
    parser.add_argument("--steps", type=int, default=None, help="DDIM steps (default: the checkpoint's)")
    parser.add_argument("--step-counts", default="1,2,15", help="DDIM step counts of the sampling table")
    parser.add_argument("--scales", default="1,2,3,4,5", help="CFG scales of the table")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-speed", dest="speed", action="store_false", help="skip the old/new speed comparison")
    parser.add_argument("--speed-frames", type=int, default=12)
    parser.add_argument("--speed-size", type=int, default=192)
    parser.add_argument("--new-steps", type=int, default=None, help="DDIM steps of the new path's projection "
                        "(default: the checkpoint's)")
    parser.add_argument("--old-steps", type=int, default=50, help="DDIM steps of the old path (the shipped default before issue 17)")
    parser.add_argument("--measure-steps", type=lambda v: tuple(int(x) for x in v.split(",")), default=(1, 3),
                        help="the two step counts each path is timed at")
    parser.add_argument("--repeats", type=int, default=1, help="timings per path and step count (fastest kept)")
    # 8 real frames = one window of the shipped VDD (the tiny one had 4: 150 s of one CPU thread on the
    # 320x320 crop at 10 DDIM steps); all 20 frames are 4 windows.
    add_real_arguments(parser, frames=8)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    clips = load_clips(args.bench, args.clips, args.frames, args.crop)
    model = VDD.from_pretrained(args.checkpoint).eval()
    args.steps = args.steps or int(model.config.steps)
    args.new_steps = args.new_steps or int(model.config.steps)
    default_scale = float(model.config.guidance_scale)
    scales = [float(s) for s in args.scales.split(",")]

    blurry = scores([blur for blur, _ in clips], clips)
    table, by_scale = [], {}
    for scale in sorted(set(scales) | {default_scale}):
        result = scores(restore_all(model, clips, args.steps, scale, args.seed), clips)
        by_scale[scale] = result
        if scale in scales:
            table.append({"cfg_scale": scale, "psnr": round(result["psnr"], 3), "ssim": round(result["ssim"], 4),
                          "temporal_error": round(result["temporal_error"], 3)})
    shipped = by_scale[default_scale]
    for count in sorted({int(c) for c in args.step_counts.split(",")} | {args.steps}):
        # one step from pure noise returns the model's x0 estimate (the mean); more steps draw a sample
        result = shipped if count == args.steps else scores(restore_all(model, clips, count, default_scale,
                                                                           args.seed), clips)
        table.append({"steps": count, "psnr": round(result["psnr"], 3), "ssim": round(result["ssim"], 4),
                      "temporal_error": round(result["temporal_error"], 3)})
    figures = {
        "blurry_psnr": blurry["psnr"], "blurry_ssim": blurry["ssim"], "blurry_temporal_error": blurry["temporal_error"],
        "vdd_psnr": shipped["psnr"], "vdd_ssim": shipped["ssim"], "vdd_temporal_error": shipped["temporal_error"],
        "psnr_gain_db": shipped["psnr"] - blurry["psnr"], "default_cfg_scale": default_scale,
        "best_cfg_scale_by_psnr": max(by_scale, key=lambda s: by_scale[s]["psnr"]),
    }
    if args.ablation is not None and (args.ablation / "config.json").is_file():
        ablation = VDD.from_pretrained(args.ablation).eval()
        abl = scores(restore_all(ablation, clips, args.steps, default_scale, args.seed), clips)
        figures.update({"nocoherence_psnr": abl["psnr"], "nocoherence_ssim": abl["ssim"],
                        "nocoherence_temporal_error": abl["temporal_error"],
                        "coherence_temporal_error_reduction": abl["temporal_error"] - shipped["temporal_error"]})
    settings = {"checkpoint": str(args.checkpoint), "ablation": str(args.ablation), "clips": len(clips),
                "frames": args.frames, "crop": args.crop, "sampler": "ddim", "steps": args.steps,
                "seed": args.seed, "window": model.frames, "threads": args.threads,
                "metric": "RGB [0,255] rounded, no border crop"}
    if args.speed:
        speed_figures, rows = speed(model, args)
        figures.update(speed_figures)
        table += rows
        settings.update(speed_clip=f"{args.speed_frames} frames {args.speed_size}x{args.speed_size}",
                        old_steps=args.old_steps, new_steps=args.new_steps, measure_steps=args.measure_steps,
                        repeats=args.repeats,
                        window_batch=model.window_batch)
    real_figures, real_settings = real_section("vdd", args.checkpoint, args, steps=args.steps, seed=args.seed)
    figures.update(real_figures)
    settings.update(real_settings)
    return report("vdd", figures, settings, table)


if __name__ == "__main__":
    main()
