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

    def run(steps: int, project: bool):
        parts = []
        for start in range(0, n, args.batch):
            sl = slice(start, start + args.batch)
            gen = torch.Generator().manual_seed(args.seed + 1 + start)
            parts.append(model.recover(cases["blur"][sl], steps=steps, zeta=args.zeta, generator=gen,
                                       ground_truth=cases["frames"][sl], project=project, x_T=noise[sl]))
        return parts

    def merge(parts):
        from deblurdiff.methods.vdm_md import ExposureResult

        cat = lambda name: torch.cat([getattr(p, name) for p in parts])
        return ExposureResult(frames=cat("frames"), mean=cat("mean"), reblur_psnr=cat("reblur_psnr"),
                              reversed=cat("reversed"), ordered=cat("ordered"), middle_psnr=cat("middle_psnr"))

    fast_parts, fast_s = timed(run, args.fast_steps, False)
    full_parts, full_s = timed(run, args.full_steps, False)
    fast, full = evaluate(merge(fast_parts), cases), evaluate(merge(full_parts), cases)
    # the projection is a cheap post-step of the same samples: apply it to the raw frames
    projected = {}
    for name, parts in (("full", full_parts), ("fast", fast_parts)):
        frames = merge(parts).frames[:, 0]
        proj = (frames + cases["blur"][:, None] - frames.mean(dim=1, keepdim=True)).clamp(0, 1)
        rev = merge(parts).reversed[:, 0]
        ordered = torch.where(rev.view(-1, 1, 1, 1, 1), proj.flip(1), proj)
        projected[name] = psnr(ordered[:, mid], cases["sharp"])

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
        "cases": n,
        "reblur_psnr_full_dB": mean(full["reblur_psnr"]),
        "reblur_psnr_fast_dB": mean(fast["reblur_psnr"]),
        "blurry_input_middle_psnr_dB": mean(blurry_psnr),
        "blurry_input_middle_ssim": mean(blurry_ssim),
        "middle_psnr_full_dB (better order)": mean(full["middle_psnr"]),
        "middle_ssim_full (better order)": mean(full["middle_ssim"]),
        "middle_psnr_fast_dB (better order)": mean(fast["middle_psnr"]),
        "gain_over_blurry_full_dB": mean(full["middle_psnr"] - blurry_psnr),
        "middle_psnr_full_projected_dB": mean(projected["full"]),
        "middle_psnr_fast_projected_dB": mean(projected["fast"]),
        "gain_over_blurry_full_projected_dB": mean(projected["full"] - blurry_psnr),
        "fast_minus_full_middle_psnr_dB": mean(fast["middle_psnr"] - full["middle_psnr"]),
        "speed_ratio_full_over_fast": full_s / fast_s,
        "reversed_fraction_full": mean(full["reversed"]),
        **memory,
    }
    table = [{"case": i, "blurry": float(blurry_psnr[i]), "full": float(full["middle_psnr"][i]),
              "fast": float(fast["middle_psnr"][i]), "full_projected": float(projected["full"][i]),
              "reblur_full": float(full["reblur_psnr"][i]), "reversed": bool(full["reversed"][i])}
             for i in range(n)]
    settings = {"checkpoint": str(args.checkpoint), "bench": str(args.bench or "generated in memory"),
                "cases": f"first {n} of 32", "full_steps": args.full_steps, "fast_steps": args.fast_steps,
                "zeta": args.zeta if args.zeta is not None else model.config.zeta, "samples": 1,
                "latent_scale": float(model.latent_std), "seed": args.seed, "threads": torch.get_num_threads(),
                "order": "better of forward/reversed by clip MSE vs the true frames (needs ground truth)",
                "middle_frame": f"index {mid} of {cases['frames'].shape[1]}"}
    return report("vdm_md", figures, settings, table)


if __name__ == "__main__":
    main()
