"""EDM preconditioning (Karras et al. 2022) written for a variance-preserving DDPM schedule.

EDM's denoiser is ``D(y; sigma) = c_skip y + c_out F(c_in y, c_noise)`` on the variance-exploding
variable ``y = x0 + sigma n``. A DDPM step is the same process rescaled: with ``a = sqrt(abar)``,
``s = sqrt(1 - abar)``, ``x_t = a x0 + s eps`` gives ``y = x_t / a`` and ``sigma = s / a``. Putting
that into EDM's coefficients and multiplying through by ``a`` (``r = s^2 + a^2 sd^2``)::

    c_in   = 1 / sqrt(r)                     (multiplies x_t: unit-variance network input)
    c_skip = a sd^2 / r                      (multiplies x_t: x0_hat -> x_t / a as s -> 0)
    c_out  = s sd / sqrt(r)                  (the scale of the learned correction, -> 0 as s -> 0)

so ``x0_hat = c_skip x_t + c_out F(c_in x_t, ...)``. Every quantity stays finite at ``a = 0``
(zero terminal SNR: ``x0_hat = c_out F``) and at ``s = 0`` (``x0_hat = x_t``).

A ``centre`` (for deblurring: the blurred frame) moves the origin: the process is written for the
residual ``x0 - centre``, whose noisy version is ``x_t - a centre``. At high noise ``c_skip -> 0``
and the untrained (``F = 0``) estimate falls back to the centre; ``sd`` is then the std of the
residual, not of the images.

EDM's loss weight ``1 / c_out^2`` on the x0 error is the plain MSE between ``F`` and
:func:`edm_target`, which has unit variance at every noise level when the data (residual) has std
``sd``: every timestep gets a bounded, equally scaled target. The target is written in a closed form
that never divides by ``c_out`` (which is 0.01 at t = 0 of the linear schedule):
``F* = (s r0 - a sd^2 eps) / (sd sqrt(r))`` with ``r0 = x0 - centre``.
"""
from __future__ import annotations

import torch

from deblurdiff.diffusion.schedules import NoiseSchedule
from deblurdiff.errors import ConfigError


def _check_sigma_data(sigma_data: float) -> float:
    if not sigma_data > 0:
        raise ConfigError(f"sigma_data must be positive, got {sigma_data}")
    return float(sigma_data)


def edm_coefficients(a, s, sigma_data: float):
    """``(c_skip, c_out, c_in)`` for signal scale ``a`` and noise scale ``s`` (tensors or floats)."""
    sd = _check_sigma_data(sigma_data)
    r = s * s + a * a * sd * sd
    root = r ** 0.5
    return a * sd * sd / r, s * sd / root, 1.0 / root


def edm_scales(schedule: NoiseSchedule, t, like: torch.Tensor, sigma_data: float):
    """``(a, s, c_skip, c_out, c_in)`` at train timesteps ``t``, shaped to broadcast over ``like``
    (``t``: an int or an int64 ``(B,)`` tensor, one timestep per leading-batch entry)."""
    a, s = schedule._coefficients(t, like)
    return (a, s, *edm_coefficients(a, s, sigma_data))


def edm_denoise(net_out_fn, x_t: torch.Tensor, t, schedule: NoiseSchedule, sigma_data: float,
                centre: torch.Tensor | None = None) -> torch.Tensor:
    """``x0_hat = centre + c_skip (x_t - a centre) + c_out F(c_in (x_t - a centre))``.

    ``net_out_fn(net_input) -> F`` is the raw network with its conditioning captured."""
    a, _, c_skip, c_out, c_in = edm_scales(schedule, t, x_t, sigma_data)
    y = x_t if centre is None else x_t - a * centre
    out = c_skip * y + c_out * net_out_fn(c_in * y)
    return out if centre is None else centre + out


def edm_target(x0: torch.Tensor, noise: torch.Tensor, t, schedule: NoiseSchedule, sigma_data: float,
               centre: torch.Tensor | None = None) -> torch.Tensor:
    """What ``F`` should output for ``x_t = a x0 + s noise`` (see the module docstring)."""
    sd = _check_sigma_data(sigma_data)
    a, s = schedule._coefficients(t, x0)
    r0 = x0 if centre is None else x0 - centre
    return (s * r0 - a * sd * sd * noise) / (sd * (s * s + a * a * sd * sd).sqrt())
