"""VDM-MD on the embedded benchmark's exposure part (64x64 blurred images, 10 true sharp frames).

    python benchmarks/bench_vdm_md.py [--bench DIR] [--checkpoint DIR] [--cases N] [--fast-steps 250]

``--bench``: the folder of ``deblurdiff synth --benchmark --out DIR`` (absent: the cases are
generated in memory by the same code and rounded to 8 bits like the PNGs). ``--checkpoint``:
default the shipped ``src/deblurdiff/weights/vdm-md``.

Figures (RGB, [0, 255], no crop, as ``deblurdiff.metrics``):
* re-blur consistency: PSNR(mean of the recovered frames, blurred input), raw DPS output;
* middle frame: PSNR/SSIM of the middle recovered frame (index 4 = the 5th of 10) against the true
  middle frame, after putting each sample in the better of the two time orders (chosen by the
  clip MSE against the true frames: the blur cannot tell the direction, the paper does the same);
  compared with the blurred input itself scored against the same middle frame;
* the same with the final blur-consistent projection (``project=True``), which is exact in
  re-blur by construction (so its re-blur figure is not a result and is not reported);
* a fast schedule (``--fast-steps`` strided ancestral steps) against the full 1000, on the same
  cases with the same initial noise: PSNR loss and speed ratio (same run, same machine);
* memory: on CUDA the peak allocated bytes of one sampling run; on CPU the bytes autograd keeps
  for the backward pass of one DPS step (the part checkpointing changes), without and with
  activation checkpointing, and the process's peak resident memory.
"""
from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import report, timed  # noqa: E402

from deblurdiff.blur.formation import middle_index  # noqa: E402
from deblurdiff.methods import shipped_checkpoint  # noqa: E402
from deblurdiff.methods.vdm_md import VDMMD  # noqa: E402
from deblurdiff.metrics import psnr, ssim  # noqa: E402


def load_cases(bench: Path | None, count: int) -> dict:
    if bench is not None and (bench / "exposure").is_dir():
        from deblurdiff.data.benchmark import read_exposure_part

        part = read_exposure_part(bench)
        return {k: v[:count] for k, v in part.items()}
    from deblurdiff.blur.benchmark import EXPOSURE_COUNT, exposure_case

    cases = [exposure_case(i) for i in range(min(count, EXPOSURE_COUNT))]
    q = lambda x: (x.clamp(0, 1) * 255).round() / 255
    out = {k: torch.stack([q(c[k]) for c in cases]) for k in ("blur", "frames")}
    return dict(out, sharp=out["frames"][:, middle_index(out["frames"].shape[1])].clone())


def activation_bytes(model: VDMMD, blurred: torch.Tensor) -> int:
    """Bytes autograd saves for backward in one DPS step (prior + x0 estimate + decoder + mean)."""
    from deblurdiff.diffusion import DecodedTemporalAverage
    from deblurdiff.tensors import to_model

    total = 0

    def pack(t):
        nonlocal total
        total += t.numel() * t.element_size()
        return t

    down = model.autoencoder.downsample
    size = model.config.image_size // down
    z = torch.randn(blurred.shape[0], model.config.frames, model.config.latent_channels, size, size,
                    requires_grad=True)
    t = torch.full((blurred.shape[0],), 500, dtype=torch.long)
    operator = DecodedTemporalAverage(model.autoencoder.decode, latent_std=float(model.latent_std))
    with torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        x0 = model.schedule.to_x0(model.denoiser(z, t), z, t)
        loss = (to_model(blurred) - operator(x0)).flatten(1).norm(dim=1).sum()
    torch.autograd.grad(loss, z)
    return total


def evaluate(result, cases) -> dict:
    mid = middle_index(cases["frames"].shape[1])
    ordered = result.ordered[:, 0]
    return {"reblur_psnr": result.reblur_psnr[:, 0], "middle_psnr": result.middle_psnr[:, 0],
            "middle_ssim": ssim(ordered[:, mid], cases["frames"][:, mid]),
            "reversed": result.reversed[:, 0]}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bench", type=Path, default=None)
    parser.add_argument("--checkpoint", type=Path, default=shipped_checkpoint("vdm-md"))
    parser.add_argument("--cases", type=int, default=32, help="first N of the 32 cases (CPU budget)")
    parser.add_argument("--full-cases", type=int, default=None,
                        help="first M <= N cases also run with the full schedule (default: all N)")
    parser.add_argument("--full-steps", type=int, default=1000)
    parser.add_argument("--fast-steps", type=int, default=250)
    parser.add_argument("--zeta", type=float, default=None, help="default: the checkpoint's")
    parser.add_argument("--batch", type=int, default=8, help="cases sampled together")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    model = VDMMD.from_pretrained(args.checkpoint).eval()
    cases = load_cases(args.bench, args.cases)
    n = cases["blur"].shape[0]
    mid = middle_index(cases["frames"].shape[1])
    blurry_psnr = psnr(cases["blur"], cases["sharp"])
    blurry_ssim = ssim(cases["blur"], cases["sharp"])
    down = model.autoencoder.downsample
    size = model.config.image_size // down
    noise = torch.randn(n, model.config.frames, model.config.latent_channels, size, size,
                        generator=torch.Generator().manual_seed(args.seed))

    def run(steps: int, project: bool, n: int = n):
        parts = []
        for start in range(0, n, args.batch):
            sl = slice(start, min(start + args.batch, n))
            gen = torch.Generator().manual_seed(args.seed + 1 + start)
            parts.append(model.recover(cases["blur"][sl], steps=steps, zeta=args.zeta, generator=gen,
                                       ground_truth=cases["frames"][sl], project=project, x_T=noise[sl]))
        return parts

    def merge(parts):
        from deblurdiff.methods.vdm_md import ExposureResult

        cat = lambda name: torch.cat([getattr(p, name) for p in parts])
        return ExposureResult(frames=cat("frames"), mean=cat("mean"), reblur_psnr=cat("reblur_psnr"),
                              reversed=cat("reversed"), ordered=cat("ordered"), middle_psnr=cat("middle_psnr"))

    cpu0 = time.process_time()
    fast_parts, fast_s = timed(run, args.fast_steps, False)
    fast_cpu = time.process_time() - cpu0
    fast = evaluate(merge(fast_parts), cases)
    print(f"[{args.fast_steps} steps] re-blur {float(fast['reblur_psnr'].mean()):.2f} dB, middle frame "
          f"{float(fast['middle_psnr'].mean()):.2f} dB (blurry input {float(blurry_psnr.mean()):.2f} dB), "
          f"{fast_s:.1f} s", flush=True)
    m = min(n, args.full_cases or n)
    sub = {k: v[:m] for k, v in cases.items()}
    fast_sub_s = fast_s * m / n  # cases are sampled in equal batches: time scales with the case count
    full_parts, full_s = timed(run, args.full_steps, False, m)
    full_cpu = time.process_time() - cpu0 - fast_cpu
    full = evaluate(merge(full_parts), sub)
    # the projection is a cheap post-step of the same samples: apply it to the raw frames
    projected = {}
    for name, parts in (("full", full_parts), ("fast", fast_parts)):
        result = merge(parts)
        frames, rev = result.frames[:, 0], result.reversed[:, 0]
        blur = cases["blur"][:frames.shape[0]]
        proj = (frames + blur[:, None] - frames.mean(dim=1, keepdim=True)).clamp(0, 1)
        ordered = torch.where(rev.view(-1, 1, 1, 1, 1), proj.flip(1), proj)
        projected[name] = psnr(ordered[:, mid], cases["sharp"][:frames.shape[0]])

    memory = {}
    probe = cases["blur"][:1]
    memory["activation_MB_per_DPS_step"] = activation_bytes(model, probe) / 2**20
    model.enable_gradient_checkpointing()
    memory["activation_MB_per_DPS_step_checkpointed"] = activation_bytes(model, probe) / 2**20
    model.disable_gradient_checkpointing()
    if torch.cuda.is_available():
        memory["cuda_peak_MB"] = torch.cuda.max_memory_allocated() / 2**20
    memory["process_peak_rss_MB"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    mean = lambda x: float(x.float().mean())
    figures = {
        "cases (fast schedule)": n,
        "cases (full schedule)": m,
        f"reblur_psnr_{args.fast_steps}_dB": mean(fast["reblur_psnr"]),
        "blurry_input_middle_psnr_dB": mean(blurry_psnr),
        "blurry_input_middle_ssim": mean(blurry_ssim),
        f"middle_psnr_{args.fast_steps}_dB (better order)": mean(fast["middle_psnr"]),
        f"middle_ssim_{args.fast_steps} (better order)": mean(fast["middle_ssim"]),
        f"gain_over_blurry_{args.fast_steps}_dB": mean(fast["middle_psnr"] - blurry_psnr),
        f"middle_psnr_{args.fast_steps}_projected_dB": mean(projected["fast"]),
        f"gain_over_blurry_{args.fast_steps}_projected_dB": mean(projected["fast"] - blurry_psnr),
        f"reblur_psnr_{args.full_steps}_dB (first {m})": mean(full["reblur_psnr"]),
        f"middle_psnr_{args.full_steps}_dB (better order, first {m})": mean(full["middle_psnr"]),
        f"middle_psnr_{args.fast_steps}_dB (same first {m})": mean(fast["middle_psnr"][:m]),
        f"gain_over_blurry_{args.full_steps}_dB (first {m})": mean(full["middle_psnr"] - blurry_psnr[:m]),
        f"middle_psnr_{args.full_steps}_projected_dB (first {m})": mean(projected["full"]),
        f"fast_minus_full_middle_psnr_dB (first {m})": mean(fast["middle_psnr"][:m] - full["middle_psnr"]),
        "speed_ratio_full_over_fast (wall, per case)": full_s / fast_sub_s,
        "speed_ratio_full_over_fast (process CPU time, per case)": full_cpu / (fast_cpu * m / n),
        "reversed_fraction_fast": mean(fast["reversed"]),
        **memory,
    }
    table = [{"case": i, "blurry": float(blurry_psnr[i]), "fast": float(fast["middle_psnr"][i]),
              "fast_projected": float(projected["fast"][i]), "reblur_fast": float(fast["reblur_psnr"][i]),
              "full": float(full["middle_psnr"][i]) if i < m else "",
              "reblur_full": float(full["reblur_psnr"][i]) if i < m else "",
              "reversed_fast": bool(fast["reversed"][i])}
             for i in range(n)]
    settings = {"checkpoint": str(args.checkpoint), "bench": str(args.bench or "generated in memory"),
                "cases": f"first {n} of 32 ({m} with the full schedule)", "full_steps": args.full_steps, "fast_steps": args.fast_steps,
                "zeta": args.zeta if args.zeta is not None else model.config.zeta, "samples": 1,
                "latent_scale": float(model.latent_std), "seed": args.seed, "threads": torch.get_num_threads(),
                "order": "better of forward/reversed by clip MSE vs the true frames (needs ground truth)",
                "middle_frame": f"index {mid} of {cases['frames'].shape[1]}"}
    return report("vdm_md", figures, settings, table)


if __name__ == "__main__":
    main()
