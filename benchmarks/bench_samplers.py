"""Samplers: cost per step (as a ratio to DDIM) and quality against the number of steps.

Cost: a fixed toy convolutional denoiser on a (4, 4, 32, 32) batch, every sampler run for the same
number of steps; the per-step time includes the network and the scheduler's own arithmetic. DPS
is included because its step also back-propagates through the denoiser.

Quality: data x0 ~ N(mu, Sigma) in 3 dimensions with the exact optimal denoiser. Deterministic
samplers are affine maps x_T -> M x_T + b under that denoiser, so their output law N(b, M M^T) is
measured exactly from d+1 runs (no Monte-Carlo error); DDPM is measured by Monte Carlo (N below),
whose error floor is about sqrt(2/N) ~ 0.02. Error = ||Cov_out - Sigma||_F / ||Sigma||_F.
"""
from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import report, timed  # noqa: E402

from deblurdiff.diffusion import (  # noqa: E402
    TemporalAverage, dps_sample, gaussian_denoiser, make_schedule, sample,
)

SAMPLERS = ("ddim", "dpmpp", "unipc", "ddpm")
STEPS = (5, 10, 20, 50, 100)
DIM, MC_SAMPLES = 3, 4000


def toy_denoiser() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(4, 32, 3, padding=1), torch.nn.SiLU(),
                               torch.nn.Conv2d(32, 32, 3, padding=1), torch.nn.SiLU(),
                               torch.nn.Conv2d(32, 4, 3, padding=1)).eval()


def step_costs(steps: int = 40, repeats: int = 3) -> dict:
    net = toy_denoiser()
    schedule = make_schedule("linear")
    denoise = lambda x, t: net(x)
    shape = (4, 4, 32, 32)
    seconds = {}
    for name in SAMPLERS:
        sample(denoise, shape, schedule, 5, sampler=name)  # warm-up
        _, seconds[name] = timed(sample, denoise, shape, schedule, steps, sampler=name,
                                 generator=torch.Generator().manual_seed(0), repeats=repeats)
    op = TemporalAverage(dim=1)
    y = torch.zeros(1, 4, 32, 32)
    clip_denoise = lambda x, t: net(x.flatten(0, 1)).view_as(x)  # (1, 4 frames, 4, 32, 32)
    _, seconds["dps"] = timed(dps_sample, clip_denoise, op, y, (1, 4, 4, 32, 32), schedule, steps=steps,
                              generator=torch.Generator().manual_seed(0), repeats=repeats)
    return {name: value / seconds["ddim"] for name, value in seconds.items()}


def gaussian_problem():
    gen = torch.Generator().manual_seed(0)
    root = torch.randn(DIM, DIM, generator=gen, dtype=torch.float64)
    cov = root @ root.T * 0.3 + 0.1 * torch.eye(DIM, dtype=torch.float64)
    return torch.tensor([0.5, -0.3, 0.2], dtype=torch.float64), cov


def covariance_error(schedule, sampler: str, steps: int, mean, cov) -> tuple[float, float]:
    den = gaussian_denoiser(schedule, mean, cov)
    if sampler == "ddpm":
        x = sample(den, (MC_SAMPLES, DIM), schedule, steps, sampler="ddpm",
                   generator=torch.Generator().manual_seed(0)).double()
        out_mean, out_cov = x.mean(0), torch.cov(x.T)
    else:
        starts = torch.cat([torch.zeros(1, DIM), torch.eye(DIM)]).double()
        out = sample(den, starts.shape, schedule, steps, sampler=sampler, x_T=starts, dtype=torch.float64)
        out_mean, linear = out[0], (out[1:] - out[0]).T
        out_cov = linear @ linear.T
    return ((out_cov - cov).norm() / cov.norm()).item(), (out_mean - mean).norm().item()


def main():
    ratios = step_costs()
    mean, cov = gaussian_problem()
    rows, figures = [], {f"time_per_step_vs_ddim[{k}]": v for k, v in ratios.items()}
    for kind in ("linear", "cosine"):
        schedule = make_schedule(kind)
        for name in SAMPLERS:
            errors = {}
            for steps in STEPS:
                err, mean_err = covariance_error(schedule, name, steps, mean, cov)
                errors[steps] = err
                rows.append({"schedule": kind, "sampler": name, "steps": steps, "cov_rel_err": err,
                             "mean_err": mean_err})
            enough = [s for s in STEPS if errors[s] < 0.02]
            figures[f"min_steps_cov_err<2%[{kind},{name}]"] = enough[0] if enough else f">{STEPS[-1]}"
    report("samplers", figures,
           settings={"cost_batch": [4, 4, 32, 32], "cost_steps": 40, "gaussian_dim": DIM,
                     "ddpm_mc_samples": MC_SAMPLES, "steps": list(STEPS), "timestep_spacing": "trailing",
                     "prediction_type": "eps", "num_train_timesteps": 1000},
           table=rows)


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
