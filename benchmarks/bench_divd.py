"""DIVD on the embedded benchmark's video part.

    python benchmarks/bench_divd.py [--bench DIR] [--checkpoint DIR] [--nowtsa DIR] [--nomrpe DIR] [--samples N] [--full]
                                    [--real DIR] [--real-frames N] [--real-crop N|WxH|full] [--skip-real]

The default run is short (2 clips, 64 px centre crops, no memory runs: about a minute of one CPU
thread for the tiny model); ``--full`` scores all 8 clips at their full 128 px and adds the memory
runs (1280x720 clip, 3840x2160 frame). Figures of a near-identity checkpoint say little: they matter
once a trained one ships.

Figures (PSNR/SSIM: RGB, [0, 255], no border crop, averaged over frames and clips; temporal error:
mean |d output/dt - d truth/dt| on [0, 255], lower is better):

* the shipped checkpoint, sampled as it ships (its ``default_sampler`` / ``default_steps``; one
  step for the CPU run: from pure noise the EDM output is the posterior-mean estimate), vs the
  blurry input (issue 15 asks for >= +1.5 dB);
* the no-WTSA ablation (attention kept inside each frame; same budget) and, when given, the
  no-MRPE ablation, on PSNR and temporal consistency;
* 20 DPM-Solver++ steps vs 50 DDIM steps (PSNR gap, and the speed ratio measured in this run);
* the mean of ``--samples`` posterior samples vs one sample (PSNR, SSIM, LPIPS (AlexNet) where its
  weights are installed), and the per-pixel standard deviation over the samples, written as an image
  (``benchmarks/results/divd_std.png``, ``divd_short_std.png`` for the short run, whose figures
  go to ``divd_short.*``: the first clip's frames, blurred input | mean | std map,
  the std scaled so that 0.1 is white);
* real blur (``benchmarks/real_clip.py``; ``../shared/data/real``, evaluation only, skipped when
  absent or with ``--skip-real``): the first ``--real-frames`` (default all 20) blurred 1280x720
  frames of GoPro GOPR0384_11_00, the same centred ``--real-crop`` of each (default 320x320;
  ``full`` for whole frames; ``--full`` does not change it), deblurred as one clip through
  ``deblurdiff.load("divd").deblur`` (sliding windows, 256 px tiles, ``--steps`` DPM-Solver++ steps,
  seed 0). Output frame 1 is scored against the real sharp frame (the GoPro Istanbul pair, whose
  blurred frame is the clip's frame 1) by PSNR / SSIM / LPIPS beside the blurry frame and the
  published DMPHN and HINet outputs of that frame, same crop:
  ``real_crop320x320_{psnr,ssim,lpips}_{blurry,divd,dmphn_published,hinet_published}``,
  ``..._gain_db_divd``, ``..._temporal_error_divd_vs_blurry`` (the output clip's frame-to-frame
  change against the blurry clip's, [0, 255]: the flicker DIVD adds; there is no sharp clip) and
  ``..._seconds_per_frame_divd`` (wall time through the API);
* with ``--full``: peak memory of a 1280x720 4-frame clip through ``deblurdiff.api`` (tiles of 256
  px, blended), measured in a fresh process by ``deblurdiff bench``, and a 3840x2160 frame.

Every model and sampler gets the same seeded noise per clip, so differences are paired. By default
the first ``--frames 4`` frames of each of the 8 clips form one DIVD window; ``--frames 12`` runs
whole clips through the API's sliding windows.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import lpips_scorer, report  # noqa: E402
from real_clip import add_arguments as add_real_arguments, run_section as real_section  # noqa: E402

from deblurdiff.data.io import read_frames  # noqa: E402
from deblurdiff.infer import sample_statistics, sliding_windows  # noqa: E402
from deblurdiff.methods import shipped_checkpoint  # noqa: E402
from deblurdiff.methods.divd import DIVD  # noqa: E402
from deblurdiff.metrics import psnr, ssim, temporal_error  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


def load_clips(bench: Path | None, count: int, frames: int, crop: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(blur, sharp) ``(1, F, C, H, W)`` from the benchmark folder, or generated in memory by the
    same code and rounded to 8 bits as the folder's PNGs are; ``crop`` > 0 keeps a centre crop."""
    pairs = []
    if bench is not None and (bench / "video").is_dir():
        for folder in sorted((bench / "video").glob("clip*"))[:count]:
            pairs.append((read_frames(folder / "blur"), read_frames(folder / "sharp")))
    else:
        from deblurdiff.blur.benchmark import VIDEO_COUNT, video_clip

        for index in range(min(count, VIDEO_COUNT)):
            clip = video_clip(index)
            pairs.append(tuple((clip[k].clamp(0, 1) * 255).round() / 255 for k in ("blur", "sharp")))
    def centre(x):
        if crop <= 0 or crop >= min(x.shape[-2:]):
            return x
        top, left = (x.shape[-2] - crop) // 2, (x.shape[-1] - crop) // 2
        return x[..., top:top + crop, left:left + crop]

    return [(centre(b[:frames])[None], centre(s[:frames])[None]) for b, s in pairs]


def run_model(model: DIVD, clips, steps: int, sampler: str, samples: int = 1) -> tuple[list, float]:
    """Restore every clip (sliding windows beyond the model's frames); returns outputs and seconds.

    ``samples`` > 1: each clip's output is ``(mean, std)`` over that many draws from one generator,
    whose first draw is the ``samples=1`` output (same seed), so mean and single sample are paired."""
    outs, start = [], time.perf_counter()
    for index, (blur, _) in enumerate(clips):
        generator = torch.Generator().manual_seed(1000 + index)
        fn = lambda window: model.restore(window, steps=steps, sampler=sampler, generator=generator)
        draw = lambda: sliding_windows(fn, blur, model.frames)
        outs.append(draw() if samples == 1 else sample_statistics(draw, samples))
    return outs, time.perf_counter() - start


def std_sheet(blur: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, white: float = 0.1) -> torch.Tensor:
    """One row per frame: blurred input | mean of the samples | per-pixel std (channel mean, ``white``
    maps to 1), as a ``(3, H', W')`` image."""
    rows = [torch.cat([b, m, (s.mean(dim=0, keepdim=True) / white).clamp(0, 1).expand(3, -1, -1)], dim=-1)
            for b, m, s in zip(blur[0], mean[0].clamp(0, 1), std[0])]
    return torch.cat(rows, dim=-2)


def scores(outputs, clips) -> dict:
    p = torch.cat([psnr(o[0], s[0]) for o, (_, s) in zip(outputs, clips)])
    q = torch.cat([ssim(o[0], s[0]) for o, (_, s) in zip(outputs, clips)])
    t = torch.cat([temporal_error(o, s) for o, (_, s) in zip(outputs, clips)])
    return {"psnr": p.mean().item(), "ssim": q.mean().item(), "temporal_err": t.mean().item()}


def start_memory_run(checkpoint: Path, size: str, frames: int, steps: int, tile: int) -> tuple[list, subprocess.Popen]:
    """Start ``deblurdiff bench`` in a fresh process (its peak RSS belongs to this job alone); it runs
    while this process scores the clips, and :func:`finish_memory_run` collects its JSON line."""
    cmd = [sys.executable, "-m", "deblurdiff", "bench", "--method", "divd", "--checkpoint", str(checkpoint),
           "--size", size, "--frames", str(frames), "--steps", str(steps), "--tile", str(tile), "--device", "cpu"]
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
    return cmd, subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)


def finish_memory_run(job) -> dict:
    cmd, proc = job
    stdout, stderr = proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{stderr[-2000:]}")
    return json.loads(stdout.strip().splitlines()[-1])


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bench", type=Path, default=REPO / "runs" / "benchmark")
    ap.add_argument("--checkpoint", type=Path, default=shipped_checkpoint("divd"))
    ap.add_argument("--nowtsa", type=Path, default=REPO / "runs" / "divd-tiny-nowtsa" / "final")
    ap.add_argument("--nomrpe", type=Path, default=REPO / "runs" / "divd-tiny-nomrpe" / "final")
    ap.add_argument("--clips", type=int, default=None, help="clips scored (default 2; --full: all 8)")
    ap.add_argument("--crop", type=int, default=None, help="centre crop in px (default 64; --full: none)")
    ap.add_argument("--frames", type=int, default=4)
    ap.add_argument("--samples", type=int, default=4, help="posterior samples averaged for the mean-vs-one figures")
    ap.add_argument("--steps", type=int, default=None, help="steps of the main run (default: the checkpoint's)")
    ap.add_argument("--sampler", default=None, help="sampler of the main run (default: the checkpoint's)")
    ap.add_argument("--dpmpp-steps", type=int, default=20, help="DPM-Solver++ steps of the sampler comparison")
    ap.add_argument("--ddim-steps", type=int, default=50)
    ap.add_argument("--memory-steps", type=int, default=1, help="steps for the 720p / 4K runs (memory does not "
                                                                 "depend on steps; time is per step)")
    ap.add_argument("--tile", type=int, default=256)
    ap.add_argument("--memory-size", default="1280x720", help="WIDTHxHEIGHT of the 4-frame memory run")
    ap.add_argument("--full", action="store_true", help="the full run: all clips at full size, the 1280x720 "
                                                          "memory run and one 3840x2160 frame")
    ap.add_argument("--threads", type=int, default=1)
    # All 20 real frames (9 windows of 4): measured 199 s of one CPU thread (10 s/frame; 4 frames, one
    # window: 26 s) for the shipped checkpoint on the 320x320 crop, 20 DPM-Solver++ steps.
    add_real_arguments(ap, frames=20)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    if args.samples < 2:
        ap.error("--samples must be at least 2 (the mean of N samples is compared with one)")
    clip_count = args.clips if args.clips is not None else (8 if args.full else 2)
    crop = args.crop if args.crop is not None else (0 if args.full else 64)
    memory_job = start_memory_run(args.checkpoint, args.memory_size, 4, args.memory_steps, args.tile) if args.full else None
    uhd_job = start_memory_run(args.checkpoint, "3840x2160", 1, args.memory_steps, args.tile) if args.full else None
    clips = load_clips(args.bench, clip_count, args.frames, crop)
    blurry = scores([b for b, _ in clips], clips)
    model = DIVD.from_pretrained(args.checkpoint).eval()
    args.steps = args.steps or model.config.default_steps
    args.sampler = args.sampler or model.config.default_sampler
    main_run = f"{args.sampler} {args.steps}"
    rows = [{"model": "blurry input", **blurry}]
    divd_out, divd_s = run_model(model, clips, args.steps, args.sampler)
    divd = scores(divd_out, clips)
    rows.append({"model": f"DIVD (shipped), {main_run}", **divd, "seconds": divd_s})
    figures = {"psnr_blurry": blurry["psnr"], "psnr_divd": divd["psnr"], "gain_db": divd["psnr"] - blurry["psnr"],
               "ssim_blurry": blurry["ssim"], "ssim_divd": divd["ssim"],
               "temporal_err_blurry": blurry["temporal_err"], "temporal_err_divd": divd["temporal_err"]}
    figures["gain_at_least_1.5db"] = bool(figures["gain_db"] >= 1.5)

    for name, folder in (("nowtsa", args.nowtsa), ("nomrpe", args.nomrpe)):
        if folder is None or not (folder / "config.json").is_file():
            print(f"[bench_divd] no {name} checkpoint at {folder}: skipped")
            continue
        ablation = DIVD.from_pretrained(folder).eval()
        out, seconds = run_model(ablation, clips, args.steps, args.sampler)
        sc = scores(out, clips)
        rows.append({"model": f"DIVD {name} ablation, {main_run}", **sc, "seconds": seconds})
        figures[f"psnr_{name}"], figures[f"temporal_err_{name}"] = sc["psnr"], sc["temporal_err"]
        figures[f"wtsa_gain_vs_{name}_db"] = divd["psnr"] - sc["psnr"]

    if (args.sampler, args.steps) == ("dpmpp", args.dpmpp_steps):
        dpmpp, dpmpp_s = divd, divd_s
    else:
        dpmpp_out, dpmpp_s = run_model(model, clips, args.dpmpp_steps, "dpmpp")
        dpmpp = scores(dpmpp_out, clips)
        rows.append({"model": f"DIVD (shipped), dpmpp {args.dpmpp_steps}", **dpmpp, "seconds": dpmpp_s})
        figures["psnr_dpmpp"] = dpmpp["psnr"]
        figures[f"{args.sampler}_{args.steps}_minus_dpmpp_{args.dpmpp_steps}_db"] = divd["psnr"] - dpmpp["psnr"]
    ddim_out, ddim_s = run_model(model, clips, args.ddim_steps, "ddim")
    ddim = scores(ddim_out, clips)
    rows.append({"model": f"DIVD (shipped), ddim {args.ddim_steps}", **ddim, "seconds": ddim_s})
    figures["psnr_ddim"] = ddim["psnr"]
    figures["dpmpp_minus_ddim_db"] = dpmpp["psnr"] - ddim["psnr"]
    figures["dpmpp_within_0.3db_of_ddim"] = bool(abs(dpmpp["psnr"] - ddim["psnr"]) <= 0.3)
    figures["speed_ratio_dpmpp_vs_ddim"] = ddim_s / dpmpp_s

    # The mean of N samples vs one: the first draw of each clip is the main output above (same seed).
    stats, _ = run_model(model, clips, args.steps, args.sampler, samples=args.samples)
    means = [mean for mean, _ in stats]
    mean_scores = scores(means, clips)
    rows.append({"model": f"DIVD (shipped), mean of {args.samples} {main_run} samples", **mean_scores})
    figures[f"psnr_mean_of_{args.samples}"] = mean_scores["psnr"]
    figures[f"mean_of_{args.samples}_minus_one_sample_db"] = mean_scores["psnr"] - divd["psnr"]
    figures["mean_pixel_std"] = torch.stack([std.mean() for _, std in stats]).mean().item()
    lpips = lpips_scorer("bench_divd")
    if lpips is not None:
        with torch.no_grad():
            lp = lambda outs: torch.cat([lpips(o[0], s[0]) for o, (_, s) in zip(outs, clips)]).mean().item()
            figures["lpips_blurry"] = lp([b for b, _ in clips])
            figures["lpips_one_sample"], figures[f"lpips_mean_of_{args.samples}"] = lp(divd_out), lp(means)
    from deblurdiff.data.io import write_image

    name = "divd" if args.full else "divd_short"  # the short run never overwrites the full run's results
    sheet = std_sheet(clips[0][0], *stats[0])
    figures["std_map"] = str(write_image(REPO / "benchmarks" / "results" / f"{name}_std.png", sheet).relative_to(REPO))

    if args.full:
        mem = finish_memory_run(memory_job)
        figures[f"peak_memory_mb_{args.memory_size}_4frames"] = mem["peak_memory_mb"]
        figures["peak_memory_below_4gb"] = bool(mem["peak_memory_mb"] < 4096)
        figures[f"seconds_per_megapixel_per_step_{args.memory_size}"] = mem["seconds_per_megapixel"] / args.memory_steps
        big = finish_memory_run(uhd_job)
        figures["uhd_frame_completed"] = True
        figures["peak_memory_mb_3840x2160"] = big["peak_memory_mb"]
        figures["seconds_per_megapixel_per_step_uhd"] = big["seconds_per_megapixel"] / args.memory_steps

    real_figures, real_settings = real_section("divd", args.checkpoint, args, steps=args.steps)  # the checkpoint's sampler
    figures.update(real_figures)

    settings = {"full": args.full, "clips": len(clips), "crop": crop, "samples": args.samples, "frames": args.frames, "size": list(clips[0][0].shape[-2:]), "steps": args.steps,
                "sampler": args.sampler, "dpmpp_steps": args.dpmpp_steps,
                "ddim_steps": args.ddim_steps, "memory_steps": args.memory_steps, "memory_size": args.memory_size, "tile": args.tile,
                "checkpoint": str(args.checkpoint), "threads": args.threads,
                "bench": str(args.bench) if args.bench and (args.bench / "video").is_dir() else "generated in memory",
                "metrics": "PSNR/SSIM RGB [0,255] no crop; temporal_err = mean |d out/dt - d gt/dt| [0,255]",
                "note": "seconds are CPU wall time on a shared machine; compare ratios within this run"}
    settings.update(real_settings)
    return report(name, figures, settings, table=rows)


if __name__ == "__main__":
    main()
