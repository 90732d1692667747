"""VDM-MD on the embedded benchmark's exposure part (64x64 blurred images, 10 true sharp frames).

    python benchmarks/bench_vdm_md.py [--full] [--bench DIR] [--checkpoint DIR] [--cases N]
    python benchmarks/bench_vdm_md.py --only prior [--prior-samples N] [--checkpoint runs/X/checkpoints/step-N]

Default run (a few minutes on 2 busy cores): 4 cases, the 1000-step reference and today's
(pre-issue-16) sampling path on the first case only, the latter timed over ``--old-steps`` steps
and scaled to its 1000 (a DPS step costs the same at every t). ``--full``: all 32 cases, the
1000-step reference on all of them and the old path over its whole 1000 steps (hours on CPU).

``--bench``: the folder of ``deblurdiff synth --benchmark --out DIR`` (absent: the cases are
generated in memory by the same code and rounded to 8 bits like the PNGs). ``--checkpoint``:
default the shipped ``src/deblurdiff/weights/vdm-md``; a training checkpoint folder
(``runs/X/checkpoints/step-N``) means its EMA weights.

Figures (RGB, [0, 255], no crop, as ``deblurdiff.metrics``):
* decoder limit: PSNR of the autoencoder's reconstruction of the true frames, and the re-blur
  PSNR of those reconstructions (mean against the input): DPS can only meet the measurement as
  well as the decoder can draw frames whose mean is the input;
* sampler study: re-blur PSNR (what DPS optimises: PSNR(mean of the recovered frames, input)) and
  middle-frame PSNR for several DPS step-size schedules / norms / final data-consistency steps,
  and for DDNM's latent projection (``guidance="latent_projection"``), at the short chain
  (``fast_steps``), same cases and initial noise, with the process CPU seconds of each;
* middle frame: PSNR/SSIM of the middle recovered frame (index 4 = the 5th of 10) against the true
  middle frame, each sample put in the better of the two time orders (chosen by clip MSE against
  the true frames: the blur cannot tell the direction; the paper does the same); compared with the
  blurred input scored against the same frame; and with the final blur-consistent projection
  (``project=True``, exact in re-blur by construction, so its re-blur is not reported);
* the short chain against the full 1000 steps (same cases, same initial noise): PSNR loss and
  speed ratio; bf16 decoder against fp32 (re-blur difference, speed ratio);
* seconds per image, today's path (fp32, 1000 steps, weights carrying gradients) against the
  shipped defaults, measured in the same run: the ratio is the figure (shared, busy CPUs);
* ``--only cli``: wall seconds of ``deblurdiff deblur --method vdm-md`` on the first
  ``--cli-images`` blurred images (default 8; start-up and loading included), reported to
  ``vdm_md_cli.json``/``.md``. Run it on otherwise idle cores: the CLI uses every core, and
  two threads on cores that training runs keep busy spend most of their time waiting (measured:
  6x the CPU time of one thread);
* memory: the bytes autograd keeps for one DPS step (what checkpointing changes), without and
  with activation checkpointing; on CUDA the peak allocated bytes;
* the prior alone (``VDMMD.sample_prior``: DPS's chain without guidance, ``--prior-steps``, default
  the checkpoint's ``default_steps``): ``--prior-samples`` clips (default 4, seed ``--seed``) written
  side by side as one looping GIF, ``benchmarks/results/vdm_md_prior.gif``, and measured against
  ``--real-clips`` clips (default 8) drawn from the training data of ``--data-config`` (default
  ``configs/vdm-md-cpu.yaml``'s ``data``: moving scenes and shaky pans over photos), raw and through
  the model's own autoencoder (what its decoder can draw at best). Per set, in 8-bit levels:
  consecutive-frame MAD (mean |x_{t+1} - x_t|: about 0 for a frozen clip); first-to-last-frame MAD
  (motion that accumulates makes it larger than the consecutive MAD; flicker does not);
  consecutive over cross-clip MAD, the cross-clip MAD taken between each frame and a random frame of
  another clip of the same set (0: frames are copies of each other, 1: frames are unrelated); mean
  gradient magnitude per frame (sharpness). ``--skip-prior`` leaves the section out; ``--only prior``
  runs only it and reports to ``vdm_md_prior.json``/``.md`` (the other figures stay untouched).
"""
from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import RESULTS, report, timed  # noqa: E402

from deblurdiff.blur.formation import middle_index  # noqa: E402
from deblurdiff.diffusion import DecodedTemporalAverage, dps_sample  # noqa: E402
from deblurdiff.errors import ConfigError  # noqa: E402
from deblurdiff.infer import time_order_like  # noqa: E402
from deblurdiff.methods import checkpoint_folder, shipped_checkpoint  # noqa: E402
from deblurdiff.methods.vdm_md import VDMMD  # noqa: E402
from deblurdiff.metrics import psnr, ssim  # noqa: E402
from deblurdiff.report import write_gif  # noqa: E402
from deblurdiff.tensors import to_image, to_model  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
PRIOR_GIF = RESULTS / "vdm_md_prior.gif"

# (label, config overrides) of the sampler study: DPS's step sizes and norms (zeta 1.5 is the
# reference code's, BAIR), then DDNM's latent projection, which has none
DPS = {"guidance": "dps", "dc_steps": 0}
ZETA_STUDY = [
    ("l2, constant 1.5 (reference code)", {**DPS, "dps_norm": "l2", "zeta_schedule": "constant", "zeta": 1.5}),
    ("l2, constant 15", {**DPS, "dps_norm": "l2", "zeta_schedule": "constant", "zeta": 15.0}),
    ("l2, stride 1.5", {**DPS, "dps_norm": "l2", "zeta_schedule": "stride", "zeta": 1.5}),
    ("l2, stride 0.5", {**DPS, "dps_norm": "l2", "zeta_schedule": "stride", "zeta": 0.5}),
    ("l2, stride 0.25", {**DPS, "dps_norm": "l2", "zeta_schedule": "stride", "zeta": 0.25}),
    ("l2, stride_ramp 1.5", {**DPS, "dps_norm": "l2", "zeta_schedule": "stride_ramp", "zeta": 1.5}),
    # the squared norm's step grows with the residual: measured on these 4 cases at 50 steps, zeta 0.5 and
    # 0.05 diverge, 0.01 re-blurs at 4.7 dB, 0.002 at 12.2, 0.0005 at 11.3: no step size that works
    ("l2_squared, constant 0.002", {**DPS, "dps_norm": "l2_squared", "zeta_schedule": "constant", "zeta": 0.002}),
    ("l2, stride 1.5 + 10 dc steps", {**DPS, "dps_norm": "l2", "zeta_schedule": "stride", "zeta": 1.5,
                                      "dc_steps": 10}),
    ("latent projection (DDNM, no step size)", {"guidance": "latent_projection", "dc_steps": 0}),
]


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
    operator = DecodedTemporalAverage(model.decoder(), latent_std=float(model.latent_std))
    with torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        x0 = model.schedule.to_x0(model.denoiser(z, t), z, t)
        loss = (to_model(blurred) - operator(x0)).flatten(1).norm(dim=1).sum()
    torch.autograd.grad(loss, z)
    return total


def old_path(model: VDMMD, blurred: torch.Tensor, steps: int, x_T: torch.Tensor, seed: int) -> torch.Tensor:
    """VDM-MD sampling as it was before issue 16: fp32 decoder, weights requiring grad (autograd
    keeps what their gradients would need), constant zeta, ``trailing`` spacing."""
    assert all(p.requires_grad for p in model.parameters())
    operator = DecodedTemporalAverage(model.autoencoder.decode, latent_std=float(model.latent_std))
    z = dps_sample(model.denoiser, operator, to_model(blurred), x_T.shape, model.schedule, steps=steps,
                   zeta=float(model.config.zeta), norm="l2", generator=torch.Generator().manual_seed(seed), x_T=x_T)
    with torch.no_grad():
        return to_image(operator.decode_frames(z))


def evaluate(frames: torch.Tensor, cases: dict) -> dict:
    """frames (N, K, C, H, W) of one sample per case -> per-case figures."""
    truth = cases["frames"][:frames.shape[0]]
    mid = middle_index(truth.shape[1])
    ordered, rev = time_order_like(frames, truth)
    blur = cases["blur"][:frames.shape[0]]
    proj = (frames + blur[:, None] - frames.mean(dim=1, keepdim=True)).clamp(0, 1)
    proj = torch.where(rev.view(-1, 1, 1, 1, 1), proj.flip(1), proj)
    return {"reblur_psnr": psnr(frames.mean(dim=1), blur), "middle_psnr": psnr(ordered[:, mid], truth[:, mid]),
            "middle_ssim": ssim(ordered[:, mid], truth[:, mid]), "reversed": rev,
            "middle_psnr_projected": psnr(proj[:, mid], truth[:, mid])}


def cli_seconds(blurred: torch.Tensor, checkpoint: Path) -> float:
    """Wall seconds of ``deblurdiff deblur --method vdm-md --images`` on these images (written as
    PNGs to a temporary folder), start-up and model loading included: what a user waits."""
    import subprocess
    import tempfile

    from deblurdiff.data.io import write_image

    with tempfile.TemporaryDirectory() as tmp:
        src, out = Path(tmp) / "in", Path(tmp) / "out"
        for i, image in enumerate(blurred):
            write_image(src / f"{i:02d}.png", image)
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "deblurdiff", "deblur", str(src), "-o", str(out), "--method", "vdm-md",
                        "--checkpoint", str(checkpoint), "--images", "--quiet"], check=True)
        seconds = time.perf_counter() - start
        if len(list(out.iterdir())) != len(blurred):
            raise SystemExit(f"the CLI wrote {len(list(out.iterdir()))} results for {len(blurred)} images")
    return seconds


def real_clips(config: Path, count: int, seed: int, frames: int) -> torch.Tensor:
    """``count`` sharp clips (N, K, C, H, W) of the training data named by ``config``'s ``data``
    section, at random indices of its dataset (fixed by ``seed``): what the prior should imitate."""
    from deblurdiff.data import build_dataset
    from deblurdiff.train.config import load_config

    dataset = build_dataset(load_config(config).data)
    picks = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed))[:count]
    clips = torch.stack([dataset[int(i)]["frames"] for i in picks])
    if clips.shape[1] != frames:
        raise SystemExit(f"{config}: its data gives {clips.shape[1]}-frame clips, the prior makes {frames}; "
                         "give a --data-config whose data.subframes matches the model's frames")
    return clips


def motion_figures(clips: torch.Tensor, generator: torch.Generator) -> dict:
    """Whether clips (N, K, C, H, W) in [0, 1] move like videos: MADs in 8-bit levels and sharpness
    (module docstring). The cross-clip MAD needs N >= 2."""
    n, k = clips.shape[:2]
    mad = lambda a, b: 255 * float((a - b).abs().mean())  # noqa: E731
    consecutive = mad(clips[:, 1:], clips[:, :-1])
    other = (torch.arange(n)[:, None] + torch.randint(1, max(n, 2), (n, k), generator=generator)) % n
    cross = mad(clips, clips[other, torch.randint(0, k, (n, k), generator=generator)])
    dx, dy = clips.diff(dim=-1)[..., :-1, :], clips.diff(dim=-2)[..., :, :-1]
    return {"consecutive-frame MAD": consecutive,
            "first-to-last-frame MAD": mad(clips[:, -1], clips[:, 0]),
            "consecutive / cross-clip MAD (0 copies, 1 unrelated)": consecutive / cross if n > 1 else float("nan"),
            "sharpness (mean gradient magnitude)": 255 * float((dx.square() + dy.square()).sqrt().mean())}


def prior_section(model: VDMMD, args) -> tuple[dict, dict]:
    """Unconditional clips of the prior as a GIF, and figures that say whether it learned motion."""
    cfg = model.config
    steps = args.prior_steps or cfg.default_steps
    start = time.perf_counter()
    samples = model.sample_prior(args.prior_samples, steps=steps, generator=torch.Generator().manual_seed(args.seed))
    seconds = time.perf_counter() - start
    write_gif(PRIOR_GIF, samples)
    real = real_clips(args.data_config, args.real_clips, args.seed, cfg.frames)
    with torch.inference_mode():  # coded and decoded as the samples are (the decoder at the model's precision)
        coded = to_image(model.decoder()(model.autoencoder.encode(to_model(real))))
    sets = {"prior samples": samples, "real training clips": real,
            "real training clips through the autoencoder": coded}
    measured = {name: motion_figures(clips, torch.Generator().manual_seed(args.seed)) for name, clips in sets.items()}
    figures = {f"{name}: {key}": value for name, values in measured.items() for key, value in values.items()}
    for key in ("consecutive-frame MAD", "sharpness (mean gradient magnitude)"):
        figures[f"prior samples / real training clips: {key}"] = (measured["prior samples"][key]
                                                                  / measured["real training clips"][key])
    figures["prior samples: seconds per clip (wall)"] = seconds / args.prior_samples
    figures["prior samples: GIF"] = str(PRIOR_GIF.relative_to(ROOT))
    print(f"[prior] {args.prior_samples} clips, {steps} steps: GIF {PRIOR_GIF}", flush=True)
    settings = {"prior_samples": args.prior_samples, "prior_steps": steps,
                "real_clips": f"{args.real_clips} from {args.data_config}'s data (random indices, seed {args.seed})"}
    return figures, settings


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--full", action="store_true",
                        help="all 32 cases, 1000-step reference on all, old path over its whole chain")
    parser.add_argument("--bench", type=Path, default=None)
    parser.add_argument("--checkpoint", type=Path, default=shipped_checkpoint("vdm-md"))
    parser.add_argument("--cases", type=int, default=None, help="first N of the 32 cases (default 4; --full 32)")
    parser.add_argument("--ref-cases", type=int, default=None,
                        help="first M cases also run with the 1000-step chain (default 1; --full all)")
    parser.add_argument("--full-steps", type=int, default=1000)
    parser.add_argument("--fast-steps", type=int, default=None, help="default: the checkpoint's fast_steps")
    parser.add_argument("--old-steps", type=int, default=None,
                        help="steps the old path is timed over, scaled to --full-steps (default 100; --full all)")
    parser.add_argument("--no-study", action="store_true", help="skip the zeta study")
    parser.add_argument("--batch", type=int, default=4, help="cases sampled together")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--prior-samples", type=int, default=4, help="clips drawn from the prior alone (GIF)")
    parser.add_argument("--prior-steps", type=int, default=None, help="default: the checkpoint's default_steps")
    parser.add_argument("--real-clips", type=int, default=8,
                        help="training clips the prior's samples are measured against")
    parser.add_argument("--data-config", type=Path, default=ROOT / "configs" / "vdm-md-cpu.yaml",
                        help="config whose data section gives the real clips")
    parser.add_argument("--skip-prior", action="store_true", help="leave out the prior-samples section")
    parser.add_argument("--cli-images", type=int, default=8, help="--only cli: time the CLI on the first N images")
    parser.add_argument("--only", choices=("prior", "cli"), default=None,
                        help="run only this section (reported to vdm_md_prior.json/.md or vdm_md_cli.json/.md)")
    args = parser.parse_args(argv)
    if args.prior_samples < 1 or args.real_clips < 2:
        parser.error("--prior-samples must be >= 1 and --real-clips >= 2")
    n_cases = args.cases or (32 if args.full else 4)
    old_steps = args.old_steps or (args.full_steps if args.full else 100)

    model = VDMMD.from_pretrained(checkpoint_folder(args.checkpoint)).eval()
    cfg = model.config
    if args.only == "cli":
        images = load_cases(args.bench, args.cli_images)["blur"]
        key = f"cli_wall_s ({len(images)} images of {cfg.image_size} px, shipped defaults, start-up included)"
        figures = {key: cli_seconds(images, checkpoint_folder(args.checkpoint))}
        figures["cli_wall_s per image"] = figures[key] / len(images)
        settings = {"checkpoint": str(args.checkpoint), "guidance": cfg.guidance, "default_steps": cfg.default_steps,
                    "precision": cfg.precision, "cpu_count": os.cpu_count(),
                    "torch_threads (the CLI's)": torch.get_num_threads()}
        return report("vdm_md_cli", figures, settings)
    prior_figures, prior_settings = {}, {}
    if not args.skip_prior or args.only == "prior":
        prior_figures, prior_settings = prior_section(model, args)
    if args.only == "prior":
        settings = {"checkpoint": str(args.checkpoint), "latent_scale": float(model.latent_std), "seed": args.seed,
                    "precision": cfg.precision, "threads": torch.get_num_threads(), **prior_settings}
        return report("vdm_md_prior", prior_figures, settings)
    fast_steps = args.fast_steps or cfg.fast_steps
    cases = load_cases(args.bench, n_cases)
    n = cases["blur"].shape[0]
    m = min(n, args.ref_cases or (n if args.full else 1))
    mid = middle_index(cases["frames"].shape[1])
    blurry_psnr = psnr(cases["blur"], cases["sharp"])
    blurry_ssim = ssim(cases["blur"], cases["sharp"])
    down = model.autoencoder.downsample
    size = cfg.image_size // down
    noise = torch.randn(n, cfg.frames, cfg.latent_channels, size, size,
                        generator=torch.Generator().manual_seed(args.seed))
    mean = lambda x: float(x.float().mean())
    figures, rows = {"cases": n, "cases with the 1000-step chain": m}, {}

    # decoder limit
    with torch.no_grad():
        recon = to_image(model.autoencoder(to_model(cases["frames"].flatten(0, 1)))).view_as(cases["frames"])
    figures["decoder_reconstruction_psnr_dB (true frames)"] = mean(psnr(recon.flatten(0, 1),
                                                                        cases["frames"].flatten(0, 1)))
    figures["decoder_limit_reblur_psnr_dB (mean of reconstructed true frames vs input)"] = mean(
        psnr(recon.mean(dim=1), cases["blur"]))

    def variant(**overrides) -> VDMMD:
        """The same weights under other sampling options (a fresh model from the edited config)."""
        if not overrides:
            return model
        options = {k: v for k, v in dict(cfg).items() if k != "_use_default_values"}  # else diffusers drops them
        other = VDMMD.from_config({**options, **overrides}).eval()
        other.load_state_dict(model.state_dict())
        return other

    def run(steps: int, k: int = n, **overrides):
        """Sample the first k cases with config overrides; returns (frames (k, K, C, H, W), wall
        seconds, process CPU seconds: on a shared machine the CPU time is the steadier figure)."""
        sampler = variant(**overrides)
        parts = []
        start, cpu_start = time.perf_counter(), time.process_time()
        for lo in range(0, k, args.batch):
            sl = slice(lo, min(lo + args.batch, k))
            gen = torch.Generator().manual_seed(args.seed + 1 + lo)
            parts.append(sampler.sample_frames(cases["blur"][sl], steps=steps, generator=gen, x_T=noise[sl])[:, 0])
        return torch.cat(parts), time.perf_counter() - start, time.process_time() - cpu_start

    # zeta study at the short chain
    if not args.no_study:
        for label, overrides in ZETA_STUDY:
            try:
                frames, seconds, cpu = run(fast_steps, **overrides)
            except ConfigError as err:  # a step size that diverges is a result of the study, not a crash
                figures[f"study {fast_steps} steps: {label}"] = "diverged"
                print(f"[{label}] {err}", flush=True)
                continue
            r = evaluate(frames, cases)
            figures[f"study {fast_steps} steps: {label}: reblur_psnr_dB"] = mean(r["reblur_psnr"])
            figures[f"study {fast_steps} steps: {label}: middle_psnr_dB"] = mean(r["middle_psnr"])
            figures[f"study {fast_steps} steps: {label}: CPU s per image"] = cpu / n
            print(f"[{label}] re-blur {mean(r['reblur_psnr']):.2f} dB, middle {mean(r['middle_psnr']):.2f} dB, "
                  f"{seconds:.1f} s", flush=True)

    # the shipped defaults at the short chain, fp32 against bf16
    fast_frames, fast_s, fast_cpu = run(fast_steps)
    fast = evaluate(fast_frames, cases)
    other = "fp32" if cfg.precision == "bf16" else "bf16"
    other_frames, other_s, other_cpu = run(fast_steps, precision=other)
    other_r = evaluate(other_frames, cases)
    figures.update({
        f"reblur_psnr_{fast_steps}_dB": mean(fast["reblur_psnr"]),
        "blurry_input_middle_psnr_dB": mean(blurry_psnr),
        "blurry_input_middle_ssim": mean(blurry_ssim),
        f"middle_psnr_{fast_steps}_dB (better order)": mean(fast["middle_psnr"]),
        f"middle_ssim_{fast_steps} (better order)": mean(fast["middle_ssim"]),
        f"gain_over_blurry_{fast_steps}_dB": mean(fast["middle_psnr"] - blurry_psnr),
        f"middle_psnr_{fast_steps}_projected_dB": mean(fast["middle_psnr_projected"]),
        "reversed_fraction": mean(fast["reversed"]),
        f"{cfg.precision}_minus_{other}_reblur_psnr_dB": mean(fast["reblur_psnr"] - other_r["reblur_psnr"]),
        f"{cfg.precision}_minus_{other}_middle_psnr_dB": mean(fast["middle_psnr"] - other_r["middle_psnr"]),
        f"speed_ratio_{other}_over_{cfg.precision} (wall)": other_s / fast_s,
        f"speed_ratio_{other}_over_{cfg.precision} (process CPU time)": other_cpu / fast_cpu,
    })
    print(f"[defaults, {fast_steps} steps, {cfg.precision}] re-blur {mean(fast['reblur_psnr']):.2f} dB; {other}: "
          f"{mean(other_r['reblur_psnr']):.2f} dB; {other}/{cfg.precision} time {other_s / fast_s:.2f} (wall), {other_cpu / fast_cpu:.2f} (CPU)", flush=True)

    # the short chain against the full one
    sub = {k: v[:m] for k, v in cases.items()}
    full_frames, full_s, full_cpu = run(args.full_steps, m)
    full = evaluate(full_frames, sub)
    fast_sub_s = fast_s * m / n
    figures.update({
        f"reblur_psnr_{args.full_steps}_dB (first {m})": mean(full["reblur_psnr"]),
        f"reblur_psnr_{fast_steps}_dB (same first {m})": mean(fast["reblur_psnr"][:m]),
        f"middle_psnr_{args.full_steps}_dB (first {m})": mean(full["middle_psnr"]),
        f"middle_psnr_{fast_steps}_dB (same first {m})": mean(fast["middle_psnr"][:m]),
        f"fast_minus_full_reblur_psnr_dB (first {m})": mean(fast["reblur_psnr"][:m] - full["reblur_psnr"]),
        f"fast_minus_full_middle_psnr_dB (first {m})": mean(fast["middle_psnr"][:m] - full["middle_psnr"]),
        "speed_ratio_full_over_fast (wall, per case)": full_s / fast_sub_s,
        "speed_ratio_full_over_fast (process CPU time, per case)": full_cpu / (fast_cpu * m / n),
    })

    # seconds per image: today's path against the shipped defaults, one image at a time
    probe = cases["blur"][:1]
    _, old_s = timed(old_path, model, probe, old_steps, noise[:1], args.seed)
    old_per_image = old_s * args.full_steps / old_steps
    _, new_per_image = timed(model.sample_frames, probe, generator=torch.Generator().manual_seed(args.seed),
                             x_T=noise[:1])
    figures.update({
        f"old_path_s_per_image ({args.full_steps} steps fp32"
        + (f", timed over {old_steps} and scaled)" if old_steps != args.full_steps else ")"): old_per_image,
        f"new_path_s_per_image (defaults: {cfg.default_steps} steps, {cfg.precision})": new_per_image,
        "speed_ratio_old_over_new (per image)": old_per_image / new_per_image,
        f"speed_ratio_old_over_new_per_step (old at {old_steps} steps)":
            (old_s / old_steps) / (new_per_image / cfg.default_steps),
    })

    memory = {"activation_MB_per_DPS_step": activation_bytes(model, probe) / 2**20}
    model.enable_gradient_checkpointing()
    memory["activation_MB_per_DPS_step_checkpointed"] = activation_bytes(model, probe) / 2**20
    model.disable_gradient_checkpointing()
    if torch.cuda.is_available():
        memory["cuda_peak_MB"] = torch.cuda.max_memory_allocated() / 2**20
    memory["process_peak_rss_MB"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    figures.update(memory)
    figures.update(prior_figures)

    table = [{"case": i, "blurry": float(blurry_psnr[i]), "fast": float(fast["middle_psnr"][i]),
              "fast_projected": float(fast["middle_psnr_projected"][i]), "reblur_fast": float(fast["reblur_psnr"][i]),
              "full": float(full["middle_psnr"][i]) if i < m else "",
              "reblur_full": float(full["reblur_psnr"][i]) if i < m else "",
              "reversed_fast": bool(fast["reversed"][i])}
             for i in range(n)]
    settings = {"checkpoint": str(args.checkpoint), "bench": str(args.bench or "generated in memory"),
                "cases": f"first {n} of 32 ({m} with the full chain)", "full_steps": args.full_steps,
                "fast_steps": fast_steps, "default_steps": cfg.default_steps, "zeta": cfg.zeta,
                "guidance": cfg.guidance, "zeta_schedule": cfg.zeta_schedule, "dps_norm": cfg.dps_norm, "dc_steps": cfg.dc_steps,
                "precision": cfg.precision, "samples": 1, "latent_scale": float(model.latent_std), "seed": args.seed,
                "threads": torch.get_num_threads(),
                "order": "better of forward/reversed by clip MSE vs the true frames (needs ground truth)",
                "middle_frame": f"index {mid} of {cases['frames'].shape[1]}", **prior_settings}
    return report("vdm_md", figures, settings, table)


if __name__ == "__main__":
    main()
