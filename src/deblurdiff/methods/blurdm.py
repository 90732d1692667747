"""BlurDM (arXiv 2512.03979): a blur-diffusion latent prior fused into a deblurring backbone.

Parts (parameter prefixes, used by the stage ``trainable`` regexes):
  ``sharp_encoder``  LE(blur, sharp): the target prior, available only in training;
  ``prior``          ``prior.blur_encoder`` = LE(blur, blur) plus the noise / blur-residual
                     estimators and the reverse chain (``diffusion.blur_process``);
                     with ``prior: ddpm`` a plain DDPM latent prior instead (the paper's ablation);
  ``backbone``       NAFNet or MIMO-UNet with a ``PriorFusion`` at each decoder block
                     (``backbone.fusions``).

Training has three phases, chosen per stage by ``loss: {phase: ...}`` or by the stage name:
  ``sharp``      (1) sharp encoder + backbone + PFM with the backbone's loss;
  ``diffusion``  (2) blur encoder + estimators with L1(Z0, Z_sharp) (sharp encoder frozen), plus
                 optionally ``progressive: w``: L1 on every intermediate level against the sharp
                 encoder's latents of real partial exposures (``subframes`` in the batch) or of
                 the closed-form ones otherwise;
  ``joint``      (3) backbone + prior end to end with the backbone's loss (also the single-stage default).

Official checkpoints (``deblurdiff weights import blurdm``) run with ``value_range="unit"`` (the
official loaders feed [0, 1], ``ZeroToOne=True`` in deblur_predict_ddp.py), ``fusion="official"``
(``x * k + v``), ``latent_norm=False`` and ``estimator_activation=True`` (LatentBlurDM.py's
``denoise`` ends in LeakyReLU).
"""
from __future__ import annotations

from contextlib import contextmanager

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import register_to_config

from ..diffusion.blur_process import closed_form_blur, make_prior, progressive_blur
from ..errors import ConfigError
from ..nn.latent_encoder import NORM_ALIASES, NORMS, LatentEncoder
from ..tensors import to_image, to_model
from .base import DeblurMethod
from .regression import backbone_loss, build_backbone, check_blurred, check_pair, check_value_range, final_output

PHASES = ("sharp", "diffusion", "joint")
STAGE_NAME_PHASES = {"stage1": "sharp", "stage2": "diffusion", "stage3": "joint", "main": "joint",
                     "sharp": "sharp", "diffusion": "diffusion", "joint": "joint"}


@contextmanager
def _eval_mode(module: torch.nn.Module):
    """The frozen sharp encoder gives stage 2 its targets with its running statistics (a
    ``latent_norm: batch`` encoder in train mode would normalise by the batch's and drift them)."""
    was_training = module.training
    module.eval()
    try:
        yield module
    finally:
        module.train(was_training)


class BlurDM(DeblurMethod):
    """Backbone + BlurDM latent prior. ``restore`` runs the T-step latent chain, then the backbone."""

    method_name = "blurdm"
    kind = "image"
    stochastic = True  # the chain starts from Z_blur + beta_bar_T * eps
    multiple = 1  # the backbone pads internally

    @register_to_config
    def __init__(self, backbone: str = "nafnet", backbone_options: dict | None = None, prior: str = "blur",
                 latent_width: int = 64, latent_dim: int = 256, latent_resblocks: int = 6,
                 estimator_depth: int = 5, timesteps: int = 5, beta_start: float = 0.0, beta_end: float = 0.02,
                 a_start: float = 1.0, a_end: float = 2.0, fft_weight: float = 0.1, value_range: str = "signed",
                 fusion: str = "residual", latent_norm: bool | str = True, estimator_activation: bool = False):
        super().__init__()
        check_value_range(value_range)
        if fusion not in ("residual", "official"):
            raise ConfigError(f"fusion must be 'residual' (ours) or 'official' (x * k + v), got {fusion!r}")
        if NORM_ALIASES.get(latent_norm, latent_norm) not in NORMS:
            raise ConfigError(f"latent_norm must be one of {NORMS} (or true / false), got {latent_norm!r}")
        self.backbone = build_backbone(backbone, backbone_options, prior_dim=latent_dim, fusion=fusion)
        encoder = lambda: LatentEncoder(width=latent_width, dim=latent_dim, resblocks=latent_resblocks,  # noqa: E731
                                        norm=latent_norm)
        self.sharp_encoder = encoder()
        schedule = {"beta_start": beta_start, "beta_end": beta_end, "a_start": a_start, "a_end": a_end,
                    "final_activation": estimator_activation} if prior == "blur" else {}
        self.prior = make_prior(prior, encoder(), latent_dim, estimator_depth, timesteps, **schedule)

    def __getattr__(self, name: str):
        """Sub-modules win over same-named config keys (``backbone``, ``prior``): diffusers would
        return the config string; read those through ``self.config``."""
        modules = self.__dict__.get("_modules", {})
        if name in modules:
            return modules[name]
        return super().__getattr__(name)

    def _phase(self, batch: dict) -> str:
        options = batch.get("stage_options") or {}
        phase = options.get("phase") or STAGE_NAME_PHASES.get(batch.get("stage", "main"))
        if phase not in PHASES:
            raise ConfigError(f"BlurDM stage {batch.get('stage')!r}: set loss: {{phase: sharp|diffusion|joint}} "
                              f"or name the stage stage1/stage2/stage3")
        return phase

    def training_loss(self, batch: dict) -> dict:
        blur, sharp = check_pair(batch, self.config.value_range)
        phase = self._phase(batch)
        if phase == "sharp":
            out = self.backbone(blur, self.sharp_encoder(blur, sharp))
            return {"loss": backbone_loss(self.config.backbone, out, sharp, self.config.fft_weight)}
        if phase == "joint":
            out = self.backbone(blur, self.prior(blur))
            return {"loss": backbone_loss(self.config.backbone, out, sharp, self.config.fft_weight)}
        return self._diffusion_loss(blur, sharp, batch)

    def _diffusion_loss(self, blur, sharp, batch) -> dict:
        with torch.no_grad(), _eval_mode(self.sharp_encoder):
            z_sharp = self.sharp_encoder(blur, sharp)
        z0, chain, eps = self.prior(blur, return_chain=True)
        prior_l1 = F.l1_loss(z0, z_sharp)
        result = {"loss": prior_l1, "prior_l1": prior_l1.detach()}
        weight = float((batch.get("stage_options") or {}).get("progressive", 0.0))
        if weight > 0 and self.config.prior == "blur":
            with _eval_mode(self.sharp_encoder):
                levels = self._level_targets(blur, sharp, z_sharp, batch.get("subframes"))
            sched = self.prior.schedule
            # chain[j] is level T - j; a deterministic chain keeps the start noise: Z_t = B_t + bb_t eps
            terms = [F.l1_loss(chain[sched.timesteps - t], levels[t] + sched.beta_bar[t] * eps)
                     for t in range(1, sched.timesteps)]
            progressive = torch.stack(terms).mean()
            result["loss"] = prior_l1 + weight * progressive
            result["progressive_l1"] = progressive.detach()
        return result

    @torch.no_grad()
    def _level_targets(self, blur, sharp, z_sharp, subframes) -> list[torch.Tensor]:
        """Latents of the partial exposures ``B_0..B_T`` under the (frozen) sharp encoder."""
        sched = self.prior.schedule
        if subframes is not None and subframes.ndim == 5:
            images = to_model(progressive_blur(subframes, sched), self.config.value_range)
            return [z_sharp] + [self.sharp_encoder(blur, images[t]) for t in range(1, sched.timesteps + 1)]
        z_blur = self.sharp_encoder(blur, blur)
        return [closed_form_blur(z_sharp, z_blur, sched, t) for t in range(sched.timesteps + 1)]

    @torch.no_grad()
    def restore(self, blurred, *, steps=None, sampler=None, generator=None, progress=False):
        """Deblur: sample the latent prior (the trained T steps; ``steps`` must be None or T), then the backbone."""
        check_blurred(blurred)
        if steps not in (None, self.config.timesteps):
            raise ConfigError(f"BlurDM's chain has exactly {self.config.timesteps} steps (it is trained unrolled); "
                              f"drop --steps or pass {self.config.timesteps}")
        vr = self.config.value_range
        blur = to_model(blurred, vr)
        return to_image(final_output(self.backbone(blur, self.prior(blur, generator=generator))), vr)
