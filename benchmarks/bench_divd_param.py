"""DIVD parameterisations side by side after the same short training: one-step x0 PSNR against t.

    python benchmarks/bench_divd_param.py [--steps 300] [--variants x0-l1,x0-l2,edm] [--clips 4]

Each variant trains the tiny DIVD of ``configs/divd-tiny.yaml`` (same data stream, seed, optimiser
and number of steps) under one parameterisation:

* ``x0-l1``: the shipped one (x0 as a residual over the blurred frame, L1);
* ``x0-l2``: the same output with the plain L2 loss (the earlier notes' retrain);
* ``edm``: EDM preconditioning centred on the blurred frame (``prediction: edm``), MSE on F;
* ``edm-sd0.5``: the same with ``sigma_data = 0.5`` instead of the residual's measured std.

Then, on the embedded benchmark's video clips (first 4 frames, 128 px, never trained on), it
prints the PSNR of the one-step estimate ``x0_hat(x_t, t)`` at t = 5, 20, 150, 500, 999 beside
the PSNR of ``x_t / sqrt(abar_t)`` (the rescaled noisy truth) and of the blurred input, and the
PSNR of a 10-step DPM-Solver++ sample. Noise draws are seeded and shared by every variant.
Short budgets (a few hundred steps of a CPU thread) show where each parameterisation starts to
learn, not where it ends.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import report  # noqa: E402

from deblurdiff.data import build_dataset  # noqa: E402
from deblurdiff.methods.divd import DIVD  # noqa: E402
from deblurdiff.metrics import psnr  # noqa: E402
from deblurdiff.tensors import to_image, to_model  # noqa: E402
from deblurdiff.train.config import load_config  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
VARIANTS = {
    "x0-l1": {"prediction": "x0", "residual": True, "loss": "l1"},
    "x0-l2": {"prediction": "x0", "residual": True, "loss": "l2"},
    "edm": {"prediction": "edm", "residual": True, "loss": "l2"},  # sigma_data from the config
    "edm-sd0.5": {"prediction": "edm", "residual": True, "loss": "l2", "sigma_data": 0.5},
}
TIMESTEPS = (5, 20, 150, 500, 999)


def train(model_kwargs: dict, cfg, steps: int, lr: float, seed: int) -> tuple[DIVD, float, float]:
    """Adam with a linear warm-up over the first 10% of the steps; returns the model, its last
    mean loss (over the final 20 steps) and the CPU seconds spent."""
    torch.manual_seed(seed)
    model = DIVD(**model_kwargs)
    data = build_dataset(cfg.data)
    loader = torch.utils.data.DataLoader(data, batch_size=cfg.train.batch_size, shuffle=False, num_workers=0)
    opt = torch.optim.Adam(model.parameters(), lr=lr, betas=tuple(cfg.train.betas))
    warm = max(1, steps // 10)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: min(1.0, (i + 1) / warm))
    losses, start = [], time.process_time()
    for step, batch in zip(range(steps), loader):
        out = model.training_loss(batch)
        opt.zero_grad(set_to_none=True)
        out["loss"].backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.train.grad_clip or 1.0)
        opt.step()
        sched.step()
        losses.append(out["loss"].item())
    return model.eval(), sum(losses[-20:]) / len(losses[-20:]), time.process_time() - start


def clips(count: int):
    from deblurdiff.blur.benchmark import VIDEO_COUNT, video_clip

    pairs = []
    for index in range(min(count, VIDEO_COUNT)):
        clip = video_clip(index)
        pairs.append(tuple(((clip[k][:4].clamp(0, 1) * 255).round() / 255)[None] for k in ("blur", "sharp")))
    return pairs


def mean_psnr(outs, pairs) -> float:
    return torch.cat([psnr(o[0], s[0]) for o, (_, s) in zip(outs, pairs)]).mean().item()


@torch.no_grad()
def one_step_table(model: DIVD, pairs) -> dict:
    """PSNR of x0_hat(x_t, t) and of x_t / a at each t (same seeded noise for every model)."""
    from deblurdiff.methods.divd import _pad

    sched, res = model.noise_schedule, {}
    for t in TIMESTEPS:
        est, rescaled = [], []
        for index, (blur, sharp) in enumerate(pairs):
            h, w = blur.shape[-2:]
            cond, x0 = _pad(to_model(blur), model.multiple), _pad(to_model(sharp), model.multiple)
            noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(100 * index + t))
            tt = torch.tensor([t])
            x_t = sched.add_noise(x0, noise, tt)
            x0_hat = sched.to_x0(model.predict(x_t, cond, tt), x_t, tt).clamp(-1, 1)
            est.append(to_image(x0_hat[..., :h, :w]))
            rescaled.append(to_image((x_t / sched.alphas_cumprod[t].sqrt().float()).clamp(-1, 1)[..., :h, :w]))
        res[t] = (mean_psnr(est, pairs), mean_psnr(rescaled, pairs))
    return res


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", type=Path, default=REPO / "configs" / "divd-tiny.yaml")
    ap.add_argument("--steps", type=int, default=300, help="training steps per variant (same for all)")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--variants", default="x0-l1,x0-l2,edm")
    ap.add_argument("--clips", type=int, default=4)
    ap.add_argument("--sample-steps", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    cfg = load_config(args.config)
    pairs = clips(args.clips)
    blurry = mean_psnr([b for b, _ in pairs], pairs)
    rows, figures = [], {"psnr_blurry": blurry}
    rescaled = None
    for name in args.variants.split(","):
        kwargs = {**cfg.model, **{k: v for k, v in VARIANTS[name].items()}}
        if name == "edm" and cfg.model.get("prediction") != "edm":
            kwargs.setdefault("sigma_data", 0.125)
        model, loss, cpu_s = train(kwargs, cfg, args.steps, args.lr, args.seed)
        table = one_step_table(model, pairs)
        rescaled = {t: r for t, (_, r) in table.items()}
        outs = [model.restore(b, steps=args.sample_steps, sampler="dpmpp",
                              generator=torch.Generator().manual_seed(1000 + i)) for i, (b, _) in enumerate(pairs)]
        sampled = mean_psnr(outs, pairs)
        row = {"variant": name, **{f"t={t}": est for t, (est, _) in table.items()},
               f"dpmpp{args.sample_steps}": sampled, "final_loss": loss, "train_cpu_s": cpu_s}
        rows.append(row)
        for t, (est, _) in table.items():
            figures[f"{name}_x0_psnr_t{t}"] = est
        figures[f"{name}_dpmpp{args.sample_steps}_psnr"] = sampled
        print(row, flush=True)
    rows.append({"variant": "x_t / sqrt(abar)", **{f"t={t}": r for t, r in rescaled.items()}})
    rows.append({"variant": "blurred input", **{f"t={t}": blurry for t in TIMESTEPS}, f"dpmpp{args.sample_steps}": blurry})
    for t, r in rescaled.items():
        figures[f"rescaled_x_t_psnr_t{t}"] = r
    settings = {"config": str(args.config.relative_to(REPO)) if args.config.is_relative_to(REPO) else str(args.config),
                "steps": args.steps, "lr": args.lr, "batch_size": cfg.train.batch_size, "clips": len(pairs),
                "frames": 4, "size": list(pairs[0][0].shape[-2:]), "threads": args.threads,
                "note": "short CPU budget on a shared machine: where each parameterisation starts to learn"}
    return report("divd_param", figures, settings, table=rows)


if __name__ == "__main__":
    main()
