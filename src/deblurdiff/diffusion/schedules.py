"""DDPM noise schedules, the three parameterisations (eps / x0 / v) and training targets.

One ``NoiseSchedule`` object is shared by training (``add_noise``, ``target``, ``loss_weight``,
``sample_timesteps``) and sampling (``samplers.make_scheduler`` configures diffusers' step rules
from its betas), so both always agree on the same ``alpha_bar_t``.

Notation: ``a_t = sqrt(alpha_bar_t)`` (signal scale), ``s_t = sqrt(1 - alpha_bar_t)`` (noise
scale), ``x_t = a_t x0 + s_t eps`` and ``v = a_t eps - s_t x0`` (Salimans & Ho 2022).
The conversions are written once below as standalone functions of ``(a, s)``; the schedule's
methods only look up ``a_t, s_t`` for integer timesteps and broadcast them.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from diffusers.schedulers.scheduling_ddim import betas_for_alpha_bar, rescale_zero_terminal_snr

from deblurdiff.errors import ConfigError

SCHEDULE_KINDS = ("linear", "scaled_linear", "cosine")
PREDICTION_TYPES = ("eps", "v", "x0")
# diffusers' spelling of our prediction types.
DIFFUSERS_PREDICTION = {"eps": "epsilon", "v": "v_prediction", "x0": "sample"}


# --- conversions between parameterisations, written once -------------------------------------
def x0_from_eps(eps: torch.Tensor, x_t: torch.Tensor, a, s) -> torch.Tensor:
    """x0 = (x_t - s eps) / a; undefined where a = 0 (zero terminal SNR), hence v/x0 there."""
    return (x_t - s * eps) / a


def eps_from_x0(x0: torch.Tensor, x_t: torch.Tensor, a, s) -> torch.Tensor:
    """eps = (x_t - a x0) / s."""
    return (x_t - a * x0) / s


def x0_from_v(v: torch.Tensor, x_t: torch.Tensor, a, s) -> torch.Tensor:
    """x0 = a x_t - s v (uses a^2 + s^2 = 1)."""
    return a * x_t - s * v


def eps_from_v(v: torch.Tensor, x_t: torch.Tensor, a, s) -> torch.Tensor:
    """eps = s x_t + a v (uses a^2 + s^2 = 1)."""
    return s * x_t + a * v


def v_from_x0_eps(x0: torch.Tensor, eps: torch.Tensor, a, s) -> torch.Tensor:
    """v = a eps - s x0."""
    return a * eps - s * x0


def _check_prediction_type(prediction_type: str) -> str:
    if prediction_type not in PREDICTION_TYPES:
        raise ConfigError(f"unknown prediction_type {prediction_type!r}; use one of {PREDICTION_TYPES}")
    return prediction_type


@dataclass
class NoiseSchedule:
    """Betas and cumulative products of a discrete DDPM forward process (float64 tensors, CPU).

    ``t`` arguments are integer train timesteps in ``[0, num_train_timesteps)``: a Python int,
    or an int64 tensor of shape ``(B,)`` (one timestep per sample, broadcast over the rest).
    """

    betas: torch.Tensor
    prediction_type: str = "eps"
    kind: str = "linear"
    zero_terminal_snr: bool = False

    def __post_init__(self):
        _check_prediction_type(self.prediction_type)
        self.betas = torch.as_tensor(self.betas, dtype=torch.float64).cpu()
        if self.betas.ndim != 1 or len(self.betas) < 1:
            raise ConfigError("betas must be a non-empty 1-D sequence")
        if bool((self.betas < 0).any()) or bool((self.betas > 1).any()):
            raise ConfigError("betas must lie in [0, 1]; check beta_start / beta_end")
        self.alphas = 1.0 - self.betas
        self.alphas_cumprod = torch.cumprod(self.alphas, dim=0)
        self.num_train_timesteps = len(self.betas)

    # --- per-timestep coefficients ---
    def _tables(self, device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """sqrt(alpha_bar) and sqrt(1 - alpha_bar) computed in float64, cached per device/dtype so
        indexing by an on-device ``t`` needs no host synchronisation."""
        key = (device, dtype)
        cache = self.__dict__.setdefault("_table_cache", {})
        if key not in cache:
            abar = self.alphas_cumprod
            cache[key] = (abar.sqrt().to(device=device, dtype=dtype), (1.0 - abar).sqrt().to(device=device, dtype=dtype))
        return cache[key]

    def _coefficients(self, t, like: torch.Tensor):
        """(a_t, s_t) as tensors of like's dtype/device, shaped to broadcast over like.
        Timesteps are range-checked when they live on the CPU (a check of device tensors would
        force a synchronisation on every call)."""
        t = torch.as_tensor(t, dtype=torch.long)
        if t.device.type == "cpu" and (bool((t < 0).any()) or bool((t >= self.num_train_timesteps).any())):
            raise ConfigError(f"timestep out of range [0, {self.num_train_timesteps}): {t.tolist()}")
        sqrt_abar, sqrt_one_minus = self._tables(like.device, like.dtype)
        t = t.to(like.device)
        a, s = sqrt_abar[t], sqrt_one_minus[t]
        if t.ndim == 1:
            shape = (-1,) + (1,) * (like.ndim - 1)
            a, s = a.reshape(shape), s.reshape(shape)
        return a, s

    def snr(self, t) -> torch.Tensor:
        """Signal-to-noise ratio alpha_bar / (1 - alpha_bar) (float64); inf at alpha_bar = 1."""
        abar = self.alphas_cumprod[torch.as_tensor(t, dtype=torch.long).cpu()]
        return abar / (1.0 - abar)

    # --- forward process and training ---
    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor, t) -> torch.Tensor:
        """x_t = a_t x0 + s_t noise."""
        a, s = self._coefficients(t, x0)
        return a * x0 + s * noise

    def target(self, x0: torch.Tensor, noise: torch.Tensor, t) -> torch.Tensor:
        """What a network trained with this schedule's prediction_type should output."""
        if self.prediction_type == "eps":
            return noise
        if self.prediction_type == "x0":
            return x0
        a, s = self._coefficients(t, x0)
        return v_from_x0_eps(x0, noise, a, s)

    def sample_timesteps(self, batch: int, generator: torch.Generator | None = None,
                         device: torch.device | str | None = None, terminal_share: float = 0.0) -> torch.Tensor:
        """Training timesteps, int64 ``(batch,)``, drawn on the generator's device: uniform, except
        that a ``terminal_share`` of them (drawn per sample) is the last timestep, where a one-step
        sampler evaluates the network (one-step fine-tuning, as Garcia et al. 2024 "Fine-tuning
        image-conditional diffusion models is easier than you think"). 0 draws exactly as before."""
        if not 0.0 <= terminal_share <= 1.0:
            raise ConfigError(f"terminal_share must be in [0, 1], got {terminal_share}")
        gen_device = generator.device if generator is not None else torch.device("cpu")
        t = torch.randint(0, self.num_train_timesteps, (batch,), generator=generator, device=gen_device)
        if terminal_share > 0:
            last = torch.rand(batch, generator=generator, device=gen_device) < terminal_share
            t = torch.where(last, torch.full_like(t, self.num_train_timesteps - 1), t)
        return t.to(device) if device is not None else t

    def loss_weight(self, t, kind: str = "min_snr", gamma: float = 5.0) -> torch.Tensor:
        """Per-sample weight of the MSE on this schedule's target, float32 ``(B,)``.

        ``"min_snr"`` (Hang et al. 2023) weights the *x0-space* error by min(SNR, gamma), which
        for an eps target is min(SNR, gamma) / SNR, for v min(SNR, gamma) / (SNR + 1) and for x0
        min(SNR, gamma) itself. Written with ``where`` so SNR = 0 (zero terminal SNR) and
        SNR = inf give finite weights. ``"uniform"``: all ones.
        """
        weight = self._loss_weight(t, kind, gamma)
        return weight.to(t.device) if isinstance(t, torch.Tensor) else weight

    def _loss_weight(self, t, kind: str, gamma: float) -> torch.Tensor:
        snr = self.snr(t)
        if kind == "uniform":
            return torch.ones_like(snr, dtype=torch.float32)
        if kind != "min_snr":
            raise ConfigError(f"unknown loss weighting {kind!r}; use 'min_snr' or 'uniform'")
        clipped = torch.clamp(snr, max=gamma)
        if self.prediction_type == "eps":
            weight = torch.where(snr > gamma, gamma / snr, torch.ones_like(snr))
        elif self.prediction_type == "v":
            weight = clipped / (snr + 1)
        else:
            weight = clipped
        return weight.float()

    # --- conversions of a network's prediction ---
    def to_x0(self, pred: torch.Tensor, x_t: torch.Tensor, t) -> torch.Tensor:
        """The clean-sample estimate implied by a prediction of this schedule's type."""
        if self.prediction_type == "x0":
            return pred
        a, s = self._coefficients(t, x_t)
        if self.prediction_type == "eps":
            return x0_from_eps(pred, x_t, a, s)
        return x0_from_v(pred, x_t, a, s)

    def to_eps(self, pred: torch.Tensor, x_t: torch.Tensor, t) -> torch.Tensor:
        """The noise estimate implied by a prediction of this schedule's type."""
        if self.prediction_type == "eps":
            return pred
        a, s = self._coefficients(t, x_t)
        if self.prediction_type == "x0":
            return eps_from_x0(pred, x_t, a, s)
        return eps_from_v(pred, x_t, a, s)

    def to_v(self, pred: torch.Tensor, x_t: torch.Tensor, t) -> torch.Tensor:
        """The v estimate implied by a prediction of this schedule's type."""
        if self.prediction_type == "v":
            return pred
        a, s = self._coefficients(t, x_t)
        x0, eps = self.to_x0(pred, x_t, t), self.to_eps(pred, x_t, t)
        return v_from_x0_eps(x0, eps, a, s)

    def from_x0(self, x0: torch.Tensor, x_t: torch.Tensor, t) -> torch.Tensor:
        """The prediction of this schedule's type that corresponds to a clean-sample estimate
        (used by analytic denoisers and by methods that predict x0 internally)."""
        if self.prediction_type == "x0":
            return x0
        a, s = self._coefficients(t, x_t)
        # Where alpha_bar = 1 (a schedule starting at beta = 0, as BlurDM's) x_t is x0 and any
        # eps is consistent with it: take 0 instead of 0/0.
        eps = torch.where(s > 0, eps_from_x0(x0, x_t, a, s.clamp_min(torch.finfo(s.dtype).tiny)),
                          torch.zeros((), dtype=x_t.dtype, device=x_t.device))
        return eps if self.prediction_type == "eps" else v_from_x0_eps(x0, eps, a, s)

    def from_eps(self, eps: torch.Tensor, x_t: torch.Tensor, t) -> torch.Tensor:
        """The prediction of this schedule's type that corresponds to a noise estimate."""
        if self.prediction_type == "eps":
            return eps
        a, s = self._coefficients(t, x_t)
        x0 = x0_from_eps(eps, x_t, a, s)
        return x0 if self.prediction_type == "x0" else v_from_x0_eps(x0, eps, a, s)

    def diffusers_config(self) -> dict:
        """Keyword arguments that make a diffusers scheduler use exactly these betas."""
        return {"num_train_timesteps": self.num_train_timesteps,
                "trained_betas": self.betas.numpy(),
                "prediction_type": DIFFUSERS_PREDICTION[self.prediction_type],
                "rescale_betas_zero_snr": self.zero_terminal_snr}


def make_schedule(kind: str = "linear", num_train_timesteps: int = 1000, beta_start: float = 1e-4,
                  beta_end: float = 0.02, zero_terminal_snr: bool = False,
                  prediction_type: str = "eps") -> NoiseSchedule:
    """Build a schedule. ``kind``: ``linear`` (DDPM), ``scaled_linear`` (linear in sqrt(beta),
    Stable Diffusion), ``cosine`` (Nichol & Dhariwal, via diffusers' ``betas_for_alpha_bar``).

    ``zero_terminal_snr`` rescales the betas so alpha_bar at the last step is exactly 0
    (Lin et al. 2024, diffusers' ``rescale_zero_terminal_snr``); the model then sees pure noise
    at t = T-1, where an eps prediction cannot recover x0, so it requires v or x0 prediction.
    """
    _check_prediction_type(prediction_type)
    if num_train_timesteps < 1:
        raise ConfigError(f"num_train_timesteps must be >= 1, got {num_train_timesteps}")
    if kind == "linear":
        betas = torch.linspace(beta_start, beta_end, num_train_timesteps, dtype=torch.float64)
    elif kind == "scaled_linear":
        betas = torch.linspace(beta_start ** 0.5, beta_end ** 0.5, num_train_timesteps, dtype=torch.float64) ** 2
    elif kind == "cosine":
        betas = betas_for_alpha_bar(num_train_timesteps, alpha_transform_type="cosine").double()
    else:
        raise ConfigError(f"unknown schedule kind {kind!r}; use one of {SCHEDULE_KINDS}")
    if zero_terminal_snr:
        if prediction_type == "eps":
            raise ConfigError("zero_terminal_snr=True needs prediction_type 'v' or 'x0': at alpha_bar = 0 "
                              "an eps prediction carries no information about x0")
        betas = rescale_zero_terminal_snr(betas)
        betas[-1] = 1.0  # exact: the rescale leaves it at 1 up to rounding
    return NoiseSchedule(betas=betas, prediction_type=prediction_type, kind=kind,
                         zero_terminal_snr=zero_terminal_snr)
