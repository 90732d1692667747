"""BlurDM's dual noise-and-blur diffusion (METHODS.md §4), and the plain-DDPM latent prior ablation.

Blur formation: a blurred image is the exposure average ``B = (1/a_T) * int_0^{a_T} H(tau) dtau``.
The forward process grows the exposure from ``a_0`` to ``a_T`` while adding noise. With
``B_t = (1/a_t) int_0^{a_t} H`` (``B_0`` = sharp, ``B_T`` = blur) and the blur residual
``e_t = int_{a_{t-1}}^{a_t} H = a_t B_t - a_{t-1} B_{t-1}``, one Markov step is::

    I_t = (a_{t-1}/a_t) * (I_{t-1} + sqrt(beta_t) * eps_t) + e_t / a_t

i.e. the step's noise (variance ``beta_t``) is added at the previous exposure's scale, so that it
is attenuated by ``a_{t-1}/a_t`` exactly like the image content. Unrolling gives the closed form
``I_t = B_t + beta_bar_t * eps`` with ``beta_bar_t = sqrt(sum_{i<=t} (a_{i-1}/a_t)^2 beta_i)`` (the
official code's formula) and the unit-variance combination
``eps = sum_{i<=t} (a_{i-1} sqrt(beta_i) / a_t) eps_i / beta_bar_t``.

The reverse step is deterministic (DDIM-like): given estimates of ``e_t`` and ``eps``::

    I_{t-1} = (a_t I_t - e_hat) / a_{t-1} - (a_t beta_bar_t / a_{t-1} - beta_bar_{t-1}) * eps_hat

which exactly inverts the shared-noise forward step ``ddim_forward_step`` (same ``eps`` on every
level). Hand-written because no library has a blur-plus-noise process; the DDPM ablation uses
diffusers' ``DDPMScheduler`` for its schedule.
"""
from __future__ import annotations

import torch
from torch import nn

from ..errors import ConfigError


class BlurSchedule(nn.Module):
    """Exposure lengths ``a_0..a_T``, step variances ``beta_1..beta_T`` and ``beta_bar_0..beta_bar_T``.

    Official defaults: T = 5, ``betas = linspace(0, 0.02, T)`` (variances), ``a = linspace(1, 2, T+1)``,
    giving ``beta_bar_{1..5} = [0, .0606, .1023, .1419, .1803]``. Kept as buffers so that they
    follow the module's device and dtype.
    """

    def __init__(self, timesteps: int = 5, beta_start: float = 0.0, beta_end: float = 0.02,
                 a_start: float = 1.0, a_end: float = 2.0):
        super().__init__()
        if timesteps < 1:
            raise ConfigError(f"blur diffusion needs timesteps >= 1, got {timesteps}")
        if a_start <= 0 or a_end <= a_start:
            raise ConfigError(f"exposure lengths need 0 < a_start < a_end (the reverse step divides by a_t), "
                              f"got a_start={a_start}, a_end={a_end}")
        if beta_start < 0 or beta_end < beta_start:
            raise ConfigError(f"noise variances need 0 <= beta_start <= beta_end, got {beta_start}, {beta_end}")
        self.timesteps = timesteps
        a = torch.linspace(a_start, a_end, timesteps + 1, dtype=torch.float64)
        betas = torch.cat([torch.zeros(1, dtype=torch.float64),
                           torch.linspace(beta_start, beta_end, timesteps, dtype=torch.float64)])  # betas[0] unused
        beta_bar = torch.zeros(timesteps + 1, dtype=torch.float64)
        for t in range(1, timesteps + 1):  # T is tiny (5): a loop over steps, not pixels
            beta_bar[t] = torch.sqrt(((a[:t] / a[t]) ** 2 * betas[1:t + 1]).sum())
        self.register_buffer("a", a.float(), persistent=False)
        self.register_buffer("betas", betas.float(), persistent=False)
        self.register_buffer("beta_bar", beta_bar.float(), persistent=False)

    def exposure_fraction(self, t: int) -> float:
        """How much of the extra exposure ``[a_0, a_T]`` level ``t`` has accumulated (0 .. 1)."""
        a = self.a.double()
        return float((a[t] - a[0]) / (a[-1] - a[0]))


def closed_form_blur(sharp: torch.Tensor, blur: torch.Tensor, schedule: BlurSchedule, t: int) -> torch.Tensor:
    """``B_t`` when only the two ends are known: the residual ``a_T B - a_0 S`` spread evenly in time.

    This is the exposure average if ``H`` is constant at ``S`` on ``[0, a_0]`` and constant at the
    remaining mean on ``(a_0, a_T]``; real sub-frames (``progressive_blur``) replace it when present.
    """
    a = schedule.a
    total = a[-1] * blur - a[0] * sharp
    return (a[0] * sharp + schedule.exposure_fraction(t) * total) / a[t]


def blur_residual(b_prev: torch.Tensor, b_t: torch.Tensor, schedule: BlurSchedule, t: int) -> torch.Tensor:
    """``e_t = a_t B_t - a_{t-1} B_{t-1}``: the light collected during step t."""
    return schedule.a[t] * b_t - schedule.a[t - 1] * b_prev


def q_sample(b_t: torch.Tensor, eps: torch.Tensor, schedule: BlurSchedule, t: int) -> torch.Tensor:
    """Closed-form marginal ``I_t = B_t + beta_bar_t * eps``."""
    return b_t + schedule.beta_bar[t] * eps


def forward_step(i_prev: torch.Tensor, e_t: torch.Tensor, eps_t: torch.Tensor, schedule: BlurSchedule,
                 t: int) -> torch.Tensor:
    """One Markov step with fresh noise ``eps_t`` (see the module docstring)."""
    a = schedule.a
    return (a[t - 1] / a[t]) * (i_prev + schedule.betas[t].sqrt() * eps_t) + e_t / a[t]


def combined_noise(eps_steps: torch.Tensor, schedule: BlurSchedule, t: int) -> torch.Tensor:
    """The unit-variance ``eps`` of the closed form, from per-step noises ``eps_steps[i-1] = eps_i``.

    ``beta_bar_t * eps = sum_{i<=t} (a_{i-1}/a_t) sqrt(beta_i) eps_i``; returns zeros when
    ``beta_bar_t = 0`` (no noise yet: with the official schedule, ``beta_1 = 0``).
    """
    a = schedule.a
    coef = (a[:t] / a[t]) * schedule.betas[1:t + 1].sqrt()
    noise = torch.einsum("s,s...->...", coef.to(eps_steps.dtype), eps_steps[:t])
    bb = schedule.beta_bar[t]
    return noise / bb if bb > 0 else torch.zeros_like(noise)


def ddim_forward_step(i_prev: torch.Tensor, e_t: torch.Tensor, eps: torch.Tensor, schedule: BlurSchedule,
                      t: int) -> torch.Tensor:
    """Deterministic step that keeps one shared ``eps``: ``I_{t-1} = B_{t-1} + bb_{t-1} eps -> I_t = B_t + bb_t eps``."""
    a, bb = schedule.a, schedule.beta_bar
    return (a[t - 1] * i_prev + e_t) / a[t] + (bb[t] - a[t - 1] * bb[t - 1] / a[t]) * eps


def reverse_step(i_t: torch.Tensor, e_hat: torch.Tensor, eps_hat: torch.Tensor, schedule: BlurSchedule,
                 t: int) -> torch.Tensor:
    """``I_{t-1} = (a_t I_t - e_hat)/a_{t-1} - (a_t bb_t / a_{t-1} - bb_{t-1}) eps_hat`` (deblur and denoise)."""
    a, bb = schedule.a, schedule.beta_bar
    return (a[t] * i_t - e_hat) / a[t - 1] - (a[t] * bb[t] / a[t - 1] - bb[t - 1]) * eps_hat


def progressive_blur(subframes: torch.Tensor, schedule: BlurSchedule) -> torch.Tensor:
    """Real partial exposures ``B_0..B_T`` from sub-frames ``(B, K, C, H, W)`` -> ``(T+1, B, C, H, W)``.

    The sharp image is the middle sub-frame; level t averages a window centred on it covering the
    fraction ``(a_t - a_0)/(a_T - a_0)`` of the K sub-frames (at least one), so ``B_T`` is the whole
    exposure. Windows are prefix sums: one cumsum, no loop over pixels.
    """
    k = subframes.shape[1]
    csum = torch.cat([torch.zeros_like(subframes[:, :1]), subframes.cumsum(1)], dim=1)
    levels = []
    for t in range(schedule.timesteps + 1):
        n = max(1, round(schedule.exposure_fraction(t) * k))
        start = (k - n) // 2
        levels.append((csum[:, start + n] - csum[:, start]) / n)
    return torch.stack(levels)


class LatentEstimator(nn.Module):
    """MLP estimator ``f(concat[z_cond, t/T, z_t])``: (2D+1) -> D, then ``depth`` x (D -> D), LeakyReLU.

    The last layer is linear (an estimate may be negative). Official sizes: D = 256, depth = 5.
    ``final_activation=True`` is the official ``denoise`` module (LatentBlurDM.py), whose every
    ``ResMLP`` ends in LeakyReLU(0.1), the last one included: imported checkpoints use it.
    """

    def __init__(self, dim: int = 256, depth: int = 5, final_activation: bool = False):
        super().__init__()
        layers = [nn.Linear(2 * dim + 1, dim), nn.LeakyReLU(0.1, inplace=True)]
        for i in range(depth):
            layers.append(nn.Linear(dim, dim))
            if i < depth - 1 or final_activation:
                layers.append(nn.LeakyReLU(0.1, inplace=True))
        self.mlp = nn.Sequential(*layers)

    def forward(self, z_cond: torch.Tensor, t_frac: torch.Tensor, z_t: torch.Tensor) -> torch.Tensor:
        return self.mlp(torch.cat([z_cond, t_frac.reshape(-1, 1).to(z_t.dtype), z_t], dim=1))


class BlurDiffusionPrior(nn.Module):
    """BlurDM in latent space: blur encoder + noise and blur-residual estimators + the reverse chain.

    ``forward(blur_latent_input...)`` is the sampler: ``Z_T = Z_blur + beta_bar_T * eps``, then T
    reverse steps; it is differentiable end to end, so training unrolls the whole chain.
    """

    def __init__(self, blur_encoder: nn.Module, dim: int = 256, depth: int = 5, timesteps: int = 5,
                 beta_start: float = 0.0, beta_end: float = 0.02, a_start: float = 1.0, a_end: float = 2.0,
                 final_activation: bool = False):
        super().__init__()
        self.blur_encoder = blur_encoder
        self.noise_estimator = LatentEstimator(dim, depth, final_activation)
        self.residual_estimator = LatentEstimator(dim, depth, final_activation)
        self.schedule = BlurSchedule(timesteps, beta_start, beta_end, a_start, a_end)

    def forward(self, blur: torch.Tensor, generator: torch.Generator | None = None,
                return_chain: bool = False):
        """Latent prior ``Z_0`` for a blurred batch in [-1, 1].

        With ``return_chain``: ``(Z_0, [Z_T, ..., Z_0], eps)`` where ``eps`` is the starting noise.
        """
        z_blur = self.blur_encoder(blur, blur)
        sched = self.schedule
        eps = torch.randn(z_blur.shape, generator=generator, device=z_blur.device, dtype=z_blur.dtype) \
            if generator is not None else torch.randn_like(z_blur)
        z = q_sample(z_blur, eps, sched, sched.timesteps)
        chain = [z]
        for t in range(sched.timesteps, 0, -1):
            t_frac = torch.full((z.shape[0],), t / sched.timesteps, device=z.device)
            e_hat = self.residual_estimator(z_blur, t_frac, z)
            eps_hat = self.noise_estimator(z_blur, t_frac, z)
            z = reverse_step(z, e_hat, eps_hat, sched, t)
            chain.append(z)
        return (z, chain, eps) if return_chain else z


class GaussianDiffusionPrior(nn.Module):
    """Ablation: a plain DDPM latent prior (HI-Diff style) with the same size and step count.

    ``Z_T`` is pure Gaussian noise; an estimator conditioned on ``Z_blur`` runs deterministic DDIM
    steps (eta = 0) over a T-step linear schedule (HI-Diff's 0.1 -> 0.99) from diffusers'
    ``DDPMScheduler``. The estimator predicts ``Z_0`` and the noise is derived from it: with
    ``alpha_bar_T`` near 0, an eps-parameterisation divides by ``sqrt(alpha_bar_T)`` and an
    untrained or partly trained chain explodes.
    No blur-aware start, no residual: the comparison isolates the blur forward process.
    """

    def __init__(self, blur_encoder: nn.Module, dim: int = 256, depth: int = 5, timesteps: int = 5,
                 beta_start: float = 0.1, beta_end: float = 0.99):
        super().__init__()
        from diffusers import DDPMScheduler

        self.blur_encoder = blur_encoder
        self.noise_estimator = LatentEstimator(dim, depth)
        self.timesteps = timesteps
        sched = DDPMScheduler(num_train_timesteps=timesteps, beta_start=beta_start, beta_end=beta_end,
                              beta_schedule="linear")
        self.register_buffer("alphas_cumprod", sched.alphas_cumprod.float().clone(), persistent=False)

    def forward(self, blur: torch.Tensor, generator: torch.Generator | None = None,
                return_chain: bool = False):
        z_blur = self.blur_encoder(blur, blur)
        eps = torch.randn(z_blur.shape, generator=generator, device=z_blur.device, dtype=z_blur.dtype) \
            if generator is not None else torch.randn_like(z_blur)
        z = eps
        chain = [z]
        ac = self.alphas_cumprod
        for t in range(self.timesteps - 1, -1, -1):
            t_frac = torch.full((z.shape[0],), (t + 1) / self.timesteps, device=z.device)
            x0 = self.noise_estimator(z_blur, t_frac, z)
            eps_hat = (z - ac[t].sqrt() * x0) / (1 - ac[t]).sqrt()
            prev = ac[t - 1] if t > 0 else torch.ones((), device=z.device)
            z = prev.sqrt() * x0 + (1 - prev).sqrt() * eps_hat
            chain.append(z)
        return (z, chain, eps) if return_chain else z


def make_prior(kind: str, blur_encoder: nn.Module, dim: int, depth: int, timesteps: int, **schedule) -> nn.Module:
    """``blur`` (BlurDM) or ``ddpm`` (the ablation)."""
    if kind == "blur":
        return BlurDiffusionPrior(blur_encoder, dim, depth, timesteps, **schedule)
    if kind == "ddpm":
        return GaussianDiffusionPrior(blur_encoder, dim, depth, timesteps)
    raise ConfigError(f"unknown BlurDM prior {kind!r}; use 'blur' (blur diffusion) or 'ddpm' (plain DDPM ablation)")


__all__ = ["BlurSchedule", "closed_form_blur", "blur_residual", "q_sample", "forward_step", "combined_noise",
           "ddim_forward_step", "reverse_step", "progressive_blur", "LatentEstimator", "BlurDiffusionPrior",
           "GaussianDiffusionPrior", "make_prior"]
