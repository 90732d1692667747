"""Sampling loops around diffusers' step rules.

The step rules themselves (DDIM, DPM-Solver++ 2M, DDPM ancestral, UniPC) are diffusers'
schedulers, configured from a ``NoiseSchedule``'s exact betas and prediction type by
``make_scheduler``; this module only owns the loop, the seeding and the denoiser convention:
``denoiser(x_t, t) -> prediction`` with ``t`` an int64 tensor ``(B,)`` of train timesteps and the
prediction in ``schedule.prediction_type``.

Timesteps use diffusers' ``"trailing"`` spacing by default: the first step is always at
t = T-1 (required for zero-terminal-SNR schedules, Lin et al. 2024, and harmless otherwise).
"""
from __future__ import annotations

from typing import Callable

import torch
from diffusers import DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler, UniPCMultistepScheduler
from diffusers.utils.torch_utils import randn_tensor
from tqdm.auto import tqdm

from deblurdiff.diffusion.schedules import NoiseSchedule
from deblurdiff.errors import ConfigError, InputError

Denoiser = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
SAMPLERS = ("ddim", "dpmpp", "ddpm", "unipc")


def make_scheduler(schedule: NoiseSchedule, sampler: str, steps: int, device=None,
                   timestep_spacing: str = "trailing", clip_sample: float | None = None):
    """A diffusers scheduler with ``schedule``'s betas, ready for ``steps`` inference steps.

    ``clip_sample``: clamp the predicted x0 to [-c, c] at each step (DDIM/DDPM only; off by
    default because latents are not bounded).
    """
    if sampler not in SAMPLERS:
        raise ConfigError(f"unknown sampler {sampler!r}; use one of {SAMPLERS}")
    if not 1 <= int(steps) <= schedule.num_train_timesteps:
        raise ConfigError(f"steps must be in [1, {schedule.num_train_timesteps}] for this schedule, got {steps}")
    config = dict(schedule.diffusers_config(), timestep_spacing=timestep_spacing)
    clip = {"clip_sample": clip_sample is not None, "clip_sample_range": float(clip_sample or 1.0)}
    if sampler == "ddim":
        # set_alpha_to_one: the last step lands on the clean sample (alpha_bar_prev = 1).
        scheduler = DDIMScheduler(**config, **clip, set_alpha_to_one=True)
    elif sampler == "ddpm":
        scheduler = DDPMScheduler(**config, **clip, variance_type="fixed_small")
    elif sampler == "dpmpp":
        scheduler = DPMSolverMultistepScheduler(**config, algorithm_type="dpmsolver++", solver_order=2,
                                                final_sigmas_type="zero", lower_order_final=True)
    else:
        scheduler = UniPCMultistepScheduler(**config, solver_order=2, final_sigmas_type="zero",
                                            lower_order_final=True)
    scheduler.set_timesteps(int(steps), device=device)
    noiseless = [int(t) for t in scheduler.timesteps if schedule.alphas_cumprod[int(t)] >= 1.0]
    if noiseless:
        # diffusers' step rules divide by sqrt(1 - alpha_bar_t); at alpha_bar_t = 1 that is 0/0.
        raise ConfigError(f"timesteps {noiseless} carry no noise (alpha_bar = 1, a schedule with beta_start = 0), "
                          f"which the {sampler} step cannot take; sample with fewer steps than "
                          f"num_train_timesteps ({schedule.num_train_timesteps}) or use beta_start > 0")
    return scheduler


def scheduler_step(scheduler, pred: torch.Tensor, t, x: torch.Tensor, generator=None, eta: float = 0.0):
    """One step of any supported scheduler; passes the generator to every random draw."""
    if isinstance(scheduler, DDIMScheduler):
        return scheduler.step(pred, t, x, eta=eta, generator=generator).prev_sample
    if isinstance(scheduler, (DDPMScheduler, DPMSolverMultistepScheduler)):
        return scheduler.step(pred, t, x, generator=generator).prev_sample
    return scheduler.step(pred, t, x).prev_sample


def initial_noise(shape, generator=None, device=None, dtype=torch.float32) -> torch.Tensor:
    """x_T ~ N(0, I) drawn on the generator's device and moved to ``device``, so a CPU generator
    gives the same start on any device."""
    return randn_tensor(tuple(shape), generator=generator, device=torch.device(device or "cpu"), dtype=dtype)


def timestep_batch(t, batch: int, device) -> torch.Tensor:
    """A scheduler timestep as the int64 ``(B,)`` tensor the denoiser convention expects."""
    return torch.full((batch,), int(t), dtype=torch.long, device=device)


@torch.no_grad()
def sample(denoiser: Denoiser, shape, schedule: NoiseSchedule, steps: int, sampler: str = "ddim",
           generator: torch.Generator | None = None, eta: float = 0.0, x_T: torch.Tensor | None = None,
           progress: bool = False, device=None, dtype=torch.float32, timestep_spacing: str = "trailing",
           clip_sample: float | None = None, callback: Callable | None = None) -> torch.Tensor:
    """Draw x0 by running ``sampler`` for ``steps`` steps from x_T (drawn with ``generator`` when
    not given). ``eta`` is DDIM's stochasticity (0 = deterministic ODE, 1 = DDPM-like).
    ``callback(i, t, x)`` is called after each step (e.g. for intermediate previews). Runs
    without autograd; for gradients through the denoiser (guidance) see ``dps_sample``."""
    device = torch.device(device) if device is not None else (x_T.device if x_T is not None else torch.device("cpu"))
    if x_T is None:
        x = initial_noise(shape, generator=generator, device=device, dtype=dtype)
    else:
        if tuple(x_T.shape) != tuple(shape):
            raise InputError(f"x_T has shape {tuple(x_T.shape)} but shape={tuple(shape)} was asked for")
        x = x_T.to(device=device, dtype=dtype)
    scheduler = make_scheduler(schedule, sampler, steps, device=device, timestep_spacing=timestep_spacing,
                               clip_sample=clip_sample)
    x = x * scheduler.init_noise_sigma
    for i, t in enumerate(tqdm(scheduler.timesteps, desc=f"{sampler} sampling", disable=not progress)):
        pred = denoiser(x, timestep_batch(t, x.shape[0], device))
        x = scheduler_step(scheduler, pred.to(x.dtype), t, x, generator=generator, eta=eta)
        if callback is not None:
            callback(i, int(t), x)
    return x


def gaussian_denoiser(schedule: NoiseSchedule, mean: torch.Tensor, cov: torch.Tensor) -> Denoiser:
    """The exact optimal denoiser for data x0 ~ N(mean, cov) over the flattened sample: x_t may
    have any shape ``(B, ...)`` whose trailing dimensions hold ``d = len(mean)`` numbers.

    E[x0 | x_t] = mean + a cov (a^2 cov + s^2 I)^-1 (x_t - a mean), returned in the schedule's
    prediction type. A sampler driven by it must reproduce N(mean, cov) up to its discretisation
    error, which makes it the reference for sampler tests and benchmarks. Computed in float64,
    once per distinct timestep in the batch; differentiable in x_t (used by DPS tests).
    """
    mean = torch.as_tensor(mean, dtype=torch.float64)
    cov = torch.as_tensor(cov, dtype=torch.float64)
    eye = torch.eye(len(mean), dtype=torch.float64)
    abar = schedule.alphas_cumprod

    def denoise(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        x = x_t.double().flatten(1)
        x0 = torch.empty_like(x)
        for tt in torch.unique(t).tolist():
            rows = t == tt
            a, s2 = abar[tt].sqrt(), 1.0 - abar[tt]
            gain = a * cov @ torch.linalg.inv(a * a * cov + s2 * eye)
            x0[rows] = mean.to(x.device) + (x[rows] - a * mean.to(x.device)) @ gain.T.to(x.device)
        return schedule.from_x0(x0.view_as(x_t), x_t.double(), t).to(x_t.dtype)

    return denoise
