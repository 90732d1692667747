"""Range-null-space projection sampling (DDNM, Wang et al., ICLR 2023) for a linear measurement.

For ``y = A x0`` with A linear, every x0 splits into a part A fixes (its range, ``A^+ A x0``) and a
part A cannot see (its null space, ``(I - A^+ A) x0``). DDNM keeps the prior's null-space part
and takes the range part from the measurement: at each step the denoiser's x0 estimate becomes

    x0' = x0_hat + A^+ (y - A x0_hat),

the point of ``{x : A x = y}`` nearest to it, and the sampler steps from x0' (the prediction handed
to the step rule is re-expressed from x0' in the schedule's parameterisation). Unlike DPS there is
no gradient and no step size: a step costs one denoiser forward, and the result meets the
measurement exactly (DPS only approaches it).

Why hand-written: diffusers' schedulers take a prediction and step; DDNM's x0 replacement sits
between the two and no library provides it as a denoiser wrapper.
"""
from __future__ import annotations

from typing import Callable

import torch

from deblurdiff.diffusion.schedules import NoiseSchedule

Denoiser = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def projected_denoiser(denoiser: Denoiser, schedule: NoiseSchedule,
                       project: Callable[[torch.Tensor], torch.Tensor]) -> Denoiser:
    """``denoiser`` whose x0 estimate is replaced by ``project(x0_hat)`` at every call; the
    returned prediction is in ``schedule.prediction_type``, so any sampler can run on it."""

    def denoise(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        pred = denoiser(x_t, t)
        x0 = project(schedule.to_x0(pred.to(x_t.dtype), x_t, t))
        return schedule.from_x0(x0, x_t, t)

    return denoise


def mean_projection(y: torch.Tensor, dim: int = 1) -> Callable[[torch.Tensor], torch.Tensor]:
    """The projection onto ``{x : x.mean(dim) = y}``: ``x + (y - mean_dim x)`` on every slice.

    For the mean over F slices ``A A^T = I / F``, so ``A^+ = F A^T`` puts the residual, unscaled,
    on each slice (``TemporalAverage`` is this A)."""
    target = y.unsqueeze(dim)

    def project(x: torch.Tensor) -> torch.Tensor:
        return x + (target - x.mean(dim=dim, keepdim=True))

    return project
