"""Diffusion Posterior Sampling (Chung et al. 2023) with an unconditional prior.

Each step (ancestral DDPM over the chosen, possibly strided, timesteps):

1. ``pred = denoiser(x_t, t)`` with the graph kept, ``x0_hat = schedule.to_x0(pred, x_t, t)``;
2. ``x'_{t-1} ~ p(x_{t-1} | x_t)``: diffusers' DDPM step on the detached prediction;
3. ``r = y - A(x0_hat)`` and, per sample b, the data-consistency gradient ``g_b``:
   - ``norm="l2"`` (VDM-MD / DPS reference code): ``g = grad_{x_t} ||r_b||_2``, the un-squared
     Euclidean norm over the whole sample;
   - ``norm="normalized"`` (DPS paper, Algorithm 1, with its step ``zeta_t = zeta / ||r||``):
     ``g = grad_{x_t} ||r_b||_2^2 / ||r_b||_2`` (norm in the denominator detached), which equals
     ``2 * grad ||r_b||``: the same direction as "l2" at twice the step for the same zeta;
   - ``norm="l2_squared"``: ``g = grad ||r_b||_2^2`` (the un-normalised Gaussian log-likelihood
     gradient up to 1/(2 sigma^2); its size scales with the residual).
4. ``x_{t-1} = x'_{t-1} - zeta_t * g``, with ``zeta_t`` from ``zeta_schedule`` (below);
5. optionally, after the last step, ``dc_steps`` plain data-consistency steps on the sample
   itself, ``x <- x - dc_zeta * grad_x loss(y - A(x))`` with the same norm: no prior call, so
   they only move the result towards the measurement (a final projection for non-linear A).

Step-size schedules (``zeta_schedule``), for a chain of ``steps`` out of T train timesteps:

- ``"constant"``: ``zeta_t = zeta`` (the DPS / VDM-MD reference code, tuned for 1000 steps);
- ``"stride"``: ``zeta_t = zeta * T / steps``: a strided chain takes T/steps times fewer steps,
  so each carries T/steps times the step, and the summed guidance of a 1000-step chain is kept;
- ``"stride_ramp"``: ``"stride"`` times ``2 * (1 - t / T)``, the same summed guidance moved
  towards the low-noise end, where ``x0_hat`` is sharp and its residual is worth following.

Per-sample norms: the loss summed over the batch is ``sum_b ||r_b||``, whose gradient with respect
to sample b's x_t is that sample's own gradient, because the denoiser and A act per sample.
"""
from __future__ import annotations

from typing import Callable

import torch
from tqdm.auto import tqdm

from deblurdiff.diffusion.samplers import initial_noise, make_scheduler, timestep_batch
from deblurdiff.diffusion.schedules import NoiseSchedule
from deblurdiff.errors import ConfigError, InputError

DPS_NORMS = ("l2", "normalized", "l2_squared")
ZETA_SCHEDULES = ("constant", "stride", "stride_ramp")


def zeta_schedule(kind: str, zeta: float, steps: int, num_train_timesteps: int) -> Callable[[int], float]:
    """The step size ``zeta_t`` as a function of the train timestep t (module docstring)."""
    if kind not in ZETA_SCHEDULES:
        raise ConfigError(f"unknown zeta_schedule {kind!r}; use one of {ZETA_SCHEDULES}")
    if zeta < 0:
        raise ConfigError(f"zeta must be >= 0, got {zeta}")
    base = float(zeta) * (1.0 if kind == "constant" else num_train_timesteps / int(steps))
    if kind == "stride_ramp":
        return lambda t: base * 2.0 * (1.0 - t / num_train_timesteps)
    return lambda _t: base


def residual_norms(residual: torch.Tensor) -> torch.Tensor:
    """Per-sample Euclidean norm over all non-batch dimensions, ``(B,)``."""
    return residual.flatten(1).norm(dim=1)


def _consistency_loss(norms: torch.Tensor, norm: str) -> torch.Tensor:
    if norm == "l2":
        return norms.sum()
    if norm == "normalized":
        return (norms.square() / norms.detach().clamp_min(torch.finfo(norms.dtype).tiny)).sum()
    return norms.square().sum()


def dps_sample(denoiser: Callable, operator: Callable, y: torch.Tensor, shape, schedule: NoiseSchedule,
               steps: int = 1000, zeta: float | Callable[[int], float] = 1.0, norm: str = "l2",
               generator: torch.Generator | None = None, x_T: torch.Tensor | None = None,
               progress: bool = False, device=None, dtype=torch.float32,
               timestep_spacing: str = "trailing", callback: Callable | None = None,
               dc_steps: int = 0, dc_zeta: float | None = None) -> torch.Tensor:
    """Sample x0 ~ p(x0 | y) approximately, for ``y = operator(x0) + noise``.

    ``zeta``: step size, a float or a function of the train timestep. ``shape``: of x (its first
    dimension is the batch; ``y`` must have the same batch, one measurement per sample, e.g.
    several samples of one measurement via ``y.expand``). ``callback(i, t, x, residual_norms)``
    is called after each step. ``dc_steps`` final data-consistency steps of size ``dc_zeta``
    (default: the last step's zeta) follow the chain (module docstring, step 5). Returns the
    final sample (no grad).
    """
    if norm not in DPS_NORMS:
        raise ConfigError(f"unknown DPS norm {norm!r}; use one of {DPS_NORMS}")
    if int(dc_steps) < 0 or (dc_zeta is not None and dc_zeta < 0):
        raise ConfigError(f"dc_steps and dc_zeta must be >= 0, got {dc_steps} and {dc_zeta}")
    if y.shape[0] != shape[0]:
        raise InputError(f"y has batch {y.shape[0]} but {shape[0]} samples were asked for; repeat y per sample")
    device = torch.device(device) if device is not None else y.device
    if x_T is not None and tuple(x_T.shape) != tuple(shape):
        raise InputError(f"x_T has shape {tuple(x_T.shape)} but shape={tuple(shape)} was asked for")
    x = initial_noise(shape, generator, device, dtype) if x_T is None else x_T.to(device, dtype)
    y = y.to(device, dtype)
    scheduler = make_scheduler(schedule, "ddpm", steps, device=device, timestep_spacing=timestep_spacing)
    step_size = zeta if callable(zeta) else (lambda _t: float(zeta))
    for i, t in enumerate(tqdm(scheduler.timesteps, desc="DPS", disable=not progress)):
        x = x.detach().requires_grad_(True)
        t_batch = timestep_batch(t, x.shape[0], device)
        with torch.enable_grad():
            pred = denoiser(x, t_batch)
            x0_hat = schedule.to_x0(pred, x, t_batch)
            norms = residual_norms(y - operator(x0_hat))
            (grad,) = torch.autograd.grad(_consistency_loss(norms, norm), x)
        x_prev = scheduler.step(pred.detach(), t, x.detach(), generator=generator).prev_sample
        x = x_prev - step_size(int(t)) * grad
        if not torch.isfinite(x).all():
            raise ConfigError(f"DPS diverged at timestep {int(t)} (step {i + 1} of {len(scheduler.timesteps)}): "
                              f"the guidance step zeta={step_size(int(t)):g} is too large for norm {norm!r} on "
                              f"this measurement; lower zeta (norm 'l2_squared' grows with the residual, "
                              f"'l2' and 'normalized' do not)")
        if callback is not None:
            callback(i, int(t), x, norms.detach())
    dc_size = step_size(int(t)) if dc_zeta is None else float(dc_zeta)
    for _ in range(int(dc_steps)):
        x = x.detach().requires_grad_(True)
        with torch.enable_grad():
            norms = residual_norms(y - operator(x))
            (grad,) = torch.autograd.grad(_consistency_loss(norms, norm), x)
        x = x - dc_size * grad
    return x.detach()
