"""Diffusion core shared by the four methods: schedules and parameterisations, samplers,
classifier-free guidance, diffusion posterior sampling and its measurement operators, and
range-null-space (DDNM) projection for linear measurements.

A denoiser is ``denoise(x_t, t) -> prediction`` (``t``: int64 ``(B,)`` train timesteps; the
prediction in the schedule's ``prediction_type``); conditioning lives in a closure.
"""
from deblurdiff.diffusion.dps import DPS_NORMS, ZETA_SCHEDULES, dps_sample, residual_norms, zeta_schedule
from deblurdiff.diffusion.guidance import cfg_denoiser
from deblurdiff.diffusion.operators import DecodedTemporalAverage, KernelBlur, TemporalAverage
from deblurdiff.diffusion.projection import mean_projection, projected_denoiser
from deblurdiff.diffusion.samplers import (
    SAMPLERS,
    gaussian_denoiser,
    initial_noise,
    make_scheduler,
    sample,
    scheduler_step,
)
from deblurdiff.diffusion.schedules import (
    PREDICTION_TYPES,
    SCHEDULE_KINDS,
    NoiseSchedule,
    eps_from_v,
    eps_from_x0,
    make_schedule,
    v_from_x0_eps,
    x0_from_eps,
    x0_from_v,
)

__all__ = [
    "DPS_NORMS", "PREDICTION_TYPES", "SAMPLERS", "SCHEDULE_KINDS", "DecodedTemporalAverage", "KernelBlur",
    "NoiseSchedule", "TemporalAverage", "cfg_denoiser", "dps_sample", "eps_from_v", "eps_from_x0", "gaussian_denoiser",
    "initial_noise", "make_schedule", "make_scheduler", "mean_projection", "projected_denoiser", "residual_norms",
    "sample", "scheduler_step",
    "v_from_x0_eps", "x0_from_eps", "x0_from_v", "ZETA_SCHEDULES", "zeta_schedule",
]
