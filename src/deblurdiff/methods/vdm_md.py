"""VDM-MD: the sharp frames of one blurred exposure, by posterior sampling with a video prior.

Pang et al., "Image Motion Blur Removal in the Temporal Dimension with Video Diffusion Models"
(arXiv 2501.12604; METHODS.md §1). A blurred image is the temporal mean of the K sharp frames
seen during the exposure. An *unconditional* latent video diffusion transformer
(``nn.video_dit.VideoDiT``) is the prior over those frames; DPS (``diffusion.dps_sample``)
steers its ancestral sampler so that the decoded frames average back to the input:
``A(z) = mean_t D(z * latent_scale)_t`` in pixel space ([-1, 1]), and each step subtracts
``zeta * grad_{z_t} ||y - A(x0_hat(z_t))||_2`` (the gradient flows through decoder and prior).

Training (two stages of one config, ``configs/vdm-md-tiny.yaml``), switched on ``batch["stage"]``:

* ``"autoencoder"``: the per-frame autoencoder (``nn.autoencoder.FrameAutoencoder``) learns to
  reconstruct sharp frames with L1 (+ ``lpips`` x LPIPS(alex) when the LPIPS weights are
  installed; without them a warning is printed once and L1 alone is used). Stage options:
  ``frames_per_clip`` (random frames of each clip used per step, default 4), ``crop`` (random
  square crop, a multiple of 4; 0 = whole frames), ``lpips`` (0).
* ``"prior"``: sharp clips are encoded (no grad) and the prior learns eps (``prediction: eps``,
  the paper's) or v (``prediction: v``) on ``z / latent_scale``. DPS reads the prior through its
  one-step x0 estimate at every t; an eps net's x0 is ``(z_t - s eps) / a``, which multiplies the
  eps error by s/a (about 100 at t 950 of the linear schedule), while a v net's is ``a z_t - s v``,
  which does not amplify it: measured on the eps run, x0 at t >= 800 was worse than predicting 0.
  ``latent_scale`` (the official configs divide by a per-dataset latent std, 1.1186 BAIR) is computed from data: if the config gives none, the std of the latents of
  the first prior-stage batch is stored in the ``latent_std`` buffer *and* as ``latent_scale`` in the config,
  and never changes afterwards (it is saved with the weights, so resumes and the shipped
  checkpoint use the same value). The autoencoder must therefore be trained before the prior.
  Stage option ``weighting``: ``"uniform"`` (default, DDPM's L_simple) or ``"min_snr"``.

A separately trained autoencoder (method ``autoencoder``, ``deblurdiff.methods.autoencoder``)
replaces the first stage: ``model.pretrained_autoencoder: PATH`` (its checkpoint folder) copies its
architecture, weights and ``latent_std`` (as ``latent_scale``) into this model, and the config's
stages should then hold only "prior" (an "autoencoder" stage is refused). Saved checkpoints record
the folder as ``autoencoder_from`` and carry the weights themselves, so they load without it.

Unconditional samples: ``sample_prior`` draws clips from the prior alone (DPS's chain without the
guidance), which shows whether it learned motion; the benchmark writes them as a GIF.

Inference: ``restore`` returns one sample of the K frames ``(B, K, C, H, W)``; ``recover`` returns
several samples with their mean, re-blur PSNR and, when ground truth is given, the time order:
the mean is the same forwards and backwards, so a sample can come out reversed; evaluation
(as in the paper) scores the better of both orders against the truth, and says so.

Sampling options (model config, all validated when the model is built):

* ``zeta`` and ``zeta_schedule`` (``diffusion.dps.ZETA_SCHEDULES``: ``"constant"``, the reference
  code's, tuned for 1000 steps; ``"stride"`` scales zeta by 1000 / steps so a strided chain keeps
  the summed guidance; ``"stride_ramp"`` moves it towards the low-noise end), ``dps_norm``
  (``"l2"``: grad ||y - A(x0_hat)||, the reference code's; ``"normalized"``; ``"l2_squared"``),
  and ``dc_steps`` / ``dc_zeta``: extra data-consistency gradient steps on the final latents.
* ``guidance``: ``"dps"`` (default, the paper's, above) or ``"latent_projection"``: DDNM
  (``diffusion.projection``) in the latent space. Each step's x0 estimate is moved to the nearest
  clip whose frame mean equals the blurred image's latent, ``x0 + (E(y) / latent_scale - mean_t x0)``,
  and the same ancestral chain continues from it. That takes the encoder as linear over a clip's
  frames: on the benchmark's exposures the mean of the frames' latents is 1.0% (relative) from
  the blurred image's latent, and decoding it re-blurs at 37.4 dB against 38.0 for E(y). A step
  is one prior forward, no gradient, no step size; the measurement is met exactly in the latent
  space (``bench_vdm_md``, 4 exposure cases, shipped prior, 50 steps: re-blur 37.96 against 32.27
  for tuned DPS, middle frame 27.29 against 26.33). ``zeta``, ``zeta_schedule``, ``dps_norm`` and ``dc_steps``
  are DPS's and play no part in it.
* ``default_steps``: the chain ``restore`` runs (the CLI's default); ``fast_steps``: the short chain
  the benchmark compares with 1000 steps. Chains are strided over the 1000 train timesteps as the
  reference code's respacing does (diffusers' ``"linspace"``: from t = 999 down to t = 0).
* ``precision``: ``"fp32"`` or ``"bf16"``: the decoder and the prior run under bf16 autocast
  (the decoder holds most of the cost of a DPS step, the prior all of a latent_projection step;
  the DiT M prior's forward is 1.5x cheaper in bf16 on this CPU, the tiny one's was slower).
  Sampling never builds gradients for the weights (they are frozen for its duration, the
  gradient is taken w.r.t. the latents only) and the final decode runs without autograd.

Measured (``benchmarks/bench_vdm_md.py``, the shipped DiT M prior, 4 exposure cases, one thread):
latent projection at 50 steps re-blurs at 37.96 dB (DPS at its tuned zeta: 32.27) in 4.4 CPU s
an image (DPS: 27.7); 1000 steps change it by 0.03 dB at 30x the time; bf16 by 0.001 dB at 1/1.36
of the time. The decoder reconstructs the true frames at 34.8 dB and is no longer the cap.

``checkpointing=True`` switches on activation checkpointing of the DiT blocks and of the
decoder's blocks for sampling: DPS back-propagates through both at every step, and at paper
scale (1.3 B-parameter prior) the saved activations dominate memory; the benchmark prints the
saved-activation bytes of one DPS step with and without it.

Inputs whose size differs from the trained ``image_size`` (``large_input="resize"``, default):
the blurred image is resized to the model size, solved there, the frames resized back (bicubic),
and the blur-consistent residual ``y - resize(mean_t x_t)`` added to every frame, so the output
frames average back to the input exactly and keep the input's fine detail. Tiling would be
wrong here: independent tiles can pick opposite time directions. ``large_input="native"``
instead runs the prior at the input's own size (padded to a multiple of 8), which works
because the DiT has no learned spatial size, but leaves the trained resolution.
"""
from __future__ import annotations

import contextlib
import dataclasses
import warnings

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import register_to_config

from ..blur.formation import middle_index
from ..diffusion import (DPS_NORMS, ZETA_SCHEDULES, DecodedTemporalAverage, dps_sample, make_schedule,
                         mean_projection, projected_denoiser, sample, zeta_schedule)
from ..errors import ConfigError, InputError, MissingWeightsError
from ..infer import time_order_like
from ..nn.autoencoder import FrameAutoencoder
from ..nn.video_dit import VideoDiT
from ..tensors import to_image, to_model
from .autoencoder import load_trained_autoencoder, record_autoencoder_source, refuse_autoencoder_stage
from .base import DeblurMethod

STAGES = ("autoencoder", "prior")
PRECISIONS = ("fp32", "bf16")
GUIDANCES = ("dps", "latent_projection")
SPACING = "linspace"  # the reference code's respacing: strided chains run from t = T-1 down to t = 0


@dataclasses.dataclass
class ExposureResult:
    """What ``VDMMD.recover`` returns for a batch of B blurred images and S samples.

    frames: (B, S, K, C, H, W) in [0, 1]; mean: (B, K, C, H, W) mean over samples, each put in
    the first sample's time order (``infer.time_order_like``) before averaging;
    reblur_psnr: (B, S) PSNR(mean_t frames, input) in dB; when ground truth was given:
    reversed: (B, S) bool, True where the reversed order matched the truth better;
    ordered: the frames put in that better order; middle_psnr: (B, S) PSNR of the middle frame
    (index ``middle_index(K)``, the 5th of 10) of ``ordered`` against the true middle frame.
    """

    frames: torch.Tensor
    mean: torch.Tensor
    reblur_psnr: torch.Tensor
    reversed: torch.Tensor | None = None
    ordered: torch.Tensor | None = None
    middle_psnr: torch.Tensor | None = None


def _check_sampling_options(*, zeta, zeta_schedule, dps_norm, dc_steps, dc_zeta, precision, default_steps,
                            fast_steps, guidance):
    """ConfigErrors naming the model option and its fix, raised when the model is built."""
    choices = {"zeta_schedule": (zeta_schedule, ZETA_SCHEDULES), "dps_norm": (dps_norm, DPS_NORMS),
               "precision": (precision, PRECISIONS), "guidance": (guidance, GUIDANCES)}
    for name, (value, allowed) in choices.items():
        if value not in allowed:
            raise ConfigError(f"model.{name} must be one of {', '.join(allowed)}; got {value!r}")
    for name, value in (("zeta", zeta), ("dc_zeta", dc_zeta), ("dc_steps", dc_steps)):
        if value is not None and not float(value) >= 0:
            raise ConfigError(f"model.{name} must be >= 0, got {value}; set it to 0 to switch it off")
    for name, value in (("default_steps", default_steps), ("fast_steps", fast_steps)):
        if int(value) < 1:  # the upper bound, num_train_timesteps, is checked by the sampler
            raise ConfigError(f"model.{name} must be a number of sampling steps >= 1, got {value}")
    if guidance == "latent_projection" and int(dc_steps or 0):
        raise ConfigError("model.dc_steps are DPS's final gradient steps; latent_projection meets the measurement "
                          "without them: set dc_steps to 0 or guidance to 'dps'")


@contextlib.contextmanager
def _frozen(module: torch.nn.Module):
    """Weights without ``requires_grad`` for the duration: DPS needs the gradient w.r.t. the
    latents only, so autograd keeps nothing for weight gradients; restored afterwards."""
    flags = [(p, p.requires_grad) for p in module.parameters()]
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)


class VDMMD(DeblurMethod):
    method_name = "vdm-md"
    kind = "exposure"
    stochastic = True
    tile = 0  # never tile: see the module docstring (time direction per tile)
    _supports_gradient_checkpointing = True

    @register_to_config
    def __init__(self, frames: int = 10, image_size: int = 64, channels: int = 3,
                 ae_ch: int = 128, ae_ch_mult: tuple = (1, 2, 4), ae_num_res_blocks: int = 2,
                 ae_norm_groups: int = 32, latent_channels: int = 3, ae_mid_attention: bool = False,
                 ae_shortcut: bool = False,
                 hidden_size: int = 1152, depth: int = 28, num_heads: int = 16, patch_size: tuple = (1, 2, 2),
                 mlp_ratio: float = 4.0, qk_norm: bool = True,
                 latent_scale: float | None = None, schedule: str = "linear", num_train_timesteps: int = 1000,
                 zeta: float = 1.5, dps_norm: str = "l2", default_steps: int = 1000, fast_steps: int = 50,
                 large_input: str = "resize", project: bool = False, checkpointing: bool = False,
                 pretrained_autoencoder: str | None = None, autoencoder_from: str | None = None,
                 zeta_schedule: str = "constant", dc_steps: int = 0, dc_zeta: float | None = None,
                 precision: str = "fp32", prediction: str = "eps", guidance: str = "dps"):
        super().__init__()
        if prediction not in ("eps", "v"):
            raise ConfigError(f"model.prediction must be 'eps' or 'v', got {prediction!r}")
        if large_input not in ("resize", "native"):
            raise ConfigError(f"large_input must be 'resize' or 'native', got {large_input!r}")
        _check_sampling_options(zeta=zeta, zeta_schedule=zeta_schedule, dps_norm=dps_norm, dc_steps=dc_steps,
                                dc_zeta=dc_zeta, precision=precision, default_steps=default_steps,
                                fast_steps=fast_steps, guidance=guidance)
        trained = load_trained_autoencoder(pretrained_autoencoder, channels) if pretrained_autoencoder else None
        if trained is not None:  # its architecture replaces the ae_* options (and is saved in this config)
            ae = trained.config
            ae_ch, ae_ch_mult, ae_num_res_blocks = ae.ch, tuple(ae.ch_mult), ae.num_res_blocks
            ae_norm_groups, latent_channels, ae_mid_attention = ae.norm_num_groups, ae.latent_channels, ae.mid_attention
            ae_shortcut = ae.shortcut
            latent_scale = float(trained.latent_std) or latent_scale
            self.register_to_config(ae_ch=ae_ch, ae_ch_mult=list(ae_ch_mult), ae_num_res_blocks=ae_num_res_blocks,
                                    ae_norm_groups=ae_norm_groups, latent_channels=latent_channels,
                                    ae_mid_attention=ae_mid_attention, ae_shortcut=ae_shortcut,
                                    latent_scale=latent_scale)
        self.frames = frames
        self.autoencoder = FrameAutoencoder(in_channels=channels, latent_channels=latent_channels, ch=ae_ch,
                                            ch_mult=tuple(ae_ch_mult), num_res_blocks=ae_num_res_blocks,
                                            norm_num_groups=ae_norm_groups, mid_attention=ae_mid_attention,
                                            shortcut=ae_shortcut)
        self.multiple = self.autoencoder.downsample * int(patch_size[-1])
        if image_size % self.multiple:
            raise ConfigError(f"image_size={image_size} must be a multiple of {self.multiple} "
                              "(autoencoder downsample x patch size)")
        self.prior = VideoDiT(in_channels=latent_channels, sample_size=image_size // self.autoencoder.downsample,
                              num_frames=frames, patch_size=tuple(patch_size), hidden_size=hidden_size, depth=depth,
                              num_heads=num_heads, mlp_ratio=mlp_ratio, learn_sigma=False, qk_norm=qk_norm)
        self.register_buffer("latent_std", torch.tensor(float(latent_scale or 0.0)))
        if trained is not None:
            self.autoencoder.load_state_dict(trained.autoencoder.state_dict())
        self.schedule = make_schedule(schedule, num_train_timesteps, prediction_type=prediction)
        object.__setattr__(self, "_lpips", None)  # plain attribute, never a submodule: not in the state dict

    # ------------------------------------------------------------------ training
    def training_loss(self, batch: dict) -> dict:
        stage = batch.get("stage", "")
        if stage not in STAGES:
            raise ConfigError(f"VDM-MD trains in stages named {STAGES} (autoencoder first, then prior); got "
                              f"stage {stage!r}: see configs/vdm-md-tiny.yaml")
        frames = batch["frames"]
        if frames.dim() != 5 or frames.shape[1] != self.config.frames:
            raise InputError(f"VDM-MD trains on (B, {self.config.frames}, C, H, W) exposure frames, got "
                             f"{tuple(frames.shape)}; use data.mode 'exposure' with data.subframes {self.config.frames}")
        options = batch.get("stage_options") or {}
        if stage == "autoencoder":
            refuse_autoencoder_stage(self, stage)
            return self._autoencoder_loss(frames, options)
        return self._prior_loss(frames, options)

    def _lpips_model(self, device):
        if self._lpips is None:
            try:
                from ..metrics.lpips import LPIPS

                object.__setattr__(self, "_lpips", LPIPS("alex").to(device))
            except MissingWeightsError as exc:
                warnings.warn(f"LPIPS term skipped, training the autoencoder with L1 only: {exc}")
                object.__setattr__(self, "_lpips", False)
        return self._lpips or None

    def _autoencoder_loss(self, frames: torch.Tensor, options: dict) -> dict:
        per_clip = min(int(options.get("frames_per_clip", 4)), frames.shape[1])
        pick = torch.rand(frames.shape[:2], device=frames.device).argsort(dim=1)[:, :per_clip]
        chosen = torch.gather(frames, 1, pick[:, :, None, None, None].expand(-1, -1, *frames.shape[2:]))
        x = to_model(chosen.flatten(0, 1))
        crop = int(options.get("crop", 0))
        if 0 < crop < min(x.shape[-2:]):  # the autoencoder is convolutional: train on crops to save compute
            top = int(torch.randint(0, (x.shape[-2] - crop) // 4 + 1, ())) * 4
            left = int(torch.randint(0, (x.shape[-1] - crop) // 4 + 1, ())) * 4
            x = x[..., top:top + crop, left:left + crop]
        recon = self.autoencoder(x)
        l1 = (recon - x).abs().mean()
        out = {"loss": l1, "l1": l1.detach()}
        weight = float(options.get("lpips", 0.0))
        lpips = self._lpips_model(x.device) if weight > 0 else None
        if lpips is not None:
            perceptual = lpips(((recon + 1) / 2), ((x + 1) / 2), quantize=False).mean()
            out.update(loss=l1 + weight * perceptual, lpips=perceptual.detach())
        return out

    @torch.no_grad()
    def encode_clip(self, frames01: torch.Tensor) -> torch.Tensor:
        """Sharp frames (B, K, C, H, W) in [0, 1] -> scaled latents the prior models."""
        return self.autoencoder.encode(to_model(frames01)) / self.latent_std

    def _fix_latent_scale(self, latents: torch.Tensor) -> None:
        """Set the latent scale once, from the std of the first prior-stage batch (module docstring)."""
        std = float(latents.float().std())
        self.latent_std.fill_(std)
        self.register_to_config(latent_scale=std)

    def _prior_loss(self, frames: torch.Tensor, options: dict) -> dict:
        with torch.no_grad():
            z = self.autoencoder.encode(to_model(frames))
            if float(self.latent_std) <= 0:
                self._fix_latent_scale(z)
            z = z / self.latent_std
        t = self.schedule.sample_timesteps(z.shape[0], device=z.device)
        noise = torch.randn_like(z)
        pred = self.prior(self.schedule.add_noise(z, noise, t), t)
        per_sample = (pred - self.schedule.target(z, noise, t)).square().flatten(1).mean(dim=1)
        weight = self.schedule.loss_weight(t, options.get("weighting", "uniform")).to(z.device)
        loss = (weight * per_sample).mean()
        return {"loss": loss, "mse": per_sample.mean().detach(), "latent_scale": self.latent_std.detach().clone()}

    def save_pretrained(self, save_directory, *args, **kwargs):
        """Keep the config's ``latent_scale`` equal to the buffer (a resumed run rebuilds the
        model from the YAML, whose ``latent_scale`` is unset, then loads the buffer)."""
        if float(self.latent_std) > 0:
            self.register_to_config(latent_scale=float(self.latent_std))
        record_autoencoder_source(self)
        return super().save_pretrained(save_directory, *args, **kwargs)

    # ------------------------------------------------------------------ inference
    def _check_ready(self):
        if float(self.latent_std) <= 0:
            raise ConfigError("this VDM-MD model has no latent scale yet: train its 'prior' stage (or set "
                              "model.latent_scale) before sampling")

    def _check_blurred(self, blurred: torch.Tensor):
        if blurred.dim() != 4 or blurred.shape[1] != self.config.channels:
            raise InputError(f"VDM-MD takes blurred images (B, {self.config.channels}, H, W) in [0, 1], got "
                             f"{tuple(blurred.shape)}")

    def denoiser(self, z_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.prior(z_t, t)

    def sampling_denoiser(self, precision: str | None = None):
        """``denoiser`` under bf16 autocast for ``precision="bf16"`` (float32 out, so the chain's
        arithmetic stays float32); the DiT M prior's forward is 1.5x cheaper so on this CPU."""
        if (precision or self.config.precision) == "fp32":
            return self.denoiser

        def denoise(z_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            with torch.autocast(z_t.device.type, dtype=torch.bfloat16):
                return self.denoiser(z_t, t).float()

        return denoise

    def decoder(self, precision: str | None = None):
        """The per-frame decoder DPS differentiates, under bf16 autocast for ``precision="bf16"``
        (float32 out, so residuals and norms stay float32)."""
        precision = precision or self.config.precision
        if precision not in PRECISIONS:
            raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}; got {precision!r}")
        if precision == "fp32":
            return self.autoencoder.decode

        def decode(z: torch.Tensor) -> torch.Tensor:
            with torch.autocast(z.device.type, dtype=torch.bfloat16):
                return self.autoencoder.decode(z).float()

        return decode

    def sample_prior(self, num_clips: int, steps: int | None = None, generator: torch.Generator | None = None, *,
                     x_T: torch.Tensor | None = None, precision: str | None = None,
                     progress: bool = False) -> torch.Tensor:
        """``num_clips`` unconditional clips from the prior: ``(N, K, C, H, W)`` in [0, 1] at ``image_size``.

        What the prior alone has learned (motion, sharpness), with nothing from a measurement: the
        same strided ancestral DDPM chain DPS runs (``steps``, default ``default_steps``), without its
        guidance, so ``diffusion.sample`` with the "ddpm" rule: for the same generator it is
        ``sample_frames`` at ``zeta=0``, but without autograd (``inference_mode``); the decoder runs
        under ``precision`` (default the config's) as in DPS. ``x_T``: the initial latent noise
        ``(N, K, c, h, w)``, drawn from ``generator`` when not given."""
        self._check_ready()
        down = self.autoencoder.downsample
        size = self.config.image_size // down
        shape = (int(num_clips), self.config.frames, self.config.latent_channels, size, size)
        operator = DecodedTemporalAverage(self.decoder(precision), latent_std=float(self.latent_std))
        with torch.inference_mode():
            z = sample(self.sampling_denoiser(precision), shape, self.schedule, int(steps or self.config.default_steps),
                       sampler="ddpm", generator=generator, x_T=x_T, progress=progress, device=self.device,
                       timestep_spacing=SPACING)
            frames = to_image(operator.decode_frames(z))
        return frames.clone()  # an ordinary tensor: callers may update it in place

    def _solve(self, y01: torch.Tensor, samples: int, steps: int, zeta: float, generator, progress: bool,
               x_T: torch.Tensor | None = None, precision: str | None = None) -> torch.Tensor:
        """Posterior sampling (``guidance``) at the model's working size: (B, C, h, w) -> (B, S, K, C, h, w)
        in [0, 1]."""
        b, _, h, w = y01.shape
        down = self.autoencoder.downsample
        y = to_model(y01).repeat_interleave(samples, dim=0)
        operator = DecodedTemporalAverage(self.decoder(precision), latent_std=float(self.latent_std))
        shape = (b * samples, self.config.frames, self.config.latent_channels, h // down, w // down)
        cfg = self.config
        with _frozen(self):
            if cfg.guidance == "latent_projection":
                with torch.no_grad():
                    # the blurred image's latent stands in for the mean of the frames' latents
                    y_latent = self.autoencoder.encode(y) / self.latent_std
                    denoiser = projected_denoiser(self.sampling_denoiser(precision), self.schedule, mean_projection(y_latent, dim=1))
                    z = sample(denoiser, shape, self.schedule, steps, sampler="ddpm", generator=generator, x_T=x_T,
                               progress=progress, device=y.device, timestep_spacing=SPACING)
            else:
                z = dps_sample(self.sampling_denoiser(precision), operator, y, shape, self.schedule, steps=steps,
                               zeta=zeta_schedule(cfg.zeta_schedule, zeta, steps, cfg.num_train_timesteps),
                               norm=cfg.dps_norm, generator=generator, progress=progress, x_T=x_T,
                               device=y.device, timestep_spacing=SPACING, dc_steps=cfg.dc_steps, dc_zeta=cfg.dc_zeta)
            with torch.no_grad():
                frames = to_image(operator.decode_frames(z))
        return frames.view(b, samples, *frames.shape[1:])

    def sample_frames(self, blurred: torch.Tensor, *, samples: int = 1, steps: int | None = None,
                      zeta: float | None = None, generator: torch.Generator | None = None,
                      progress: bool = False, x_T: torch.Tensor | None = None,
                      project: bool | None = None, precision: str | None = None) -> torch.Tensor:
        """(B, C, H, W) blurred in [0, 1] -> (B, S, K, C, H, W) frames in [0, 1], any input size.

        ``steps`` (default ``default_steps``), ``zeta`` and ``precision`` override the config's.

        ``project`` (default: the config's): finish with the orthogonal projection onto the
        frames that average exactly to the input, ``x_t + (y - mean_t x)`` (A = mean has
        A A^T = I / K, so that is the least change that makes the measurement exact); it also
        puts back detail the small autoencoder cannot code. Off by default (the paper's output).
        """
        self._check_blurred(blurred)
        project = self.config.project if project is None else project
        self._check_ready()
        steps = int(steps or self.config.default_steps)
        zeta = float(self.config.zeta if zeta is None else zeta)
        if self.config.checkpointing:
            self.enable_gradient_checkpointing()
        h, w = blurred.shape[-2:]
        size = self.config.image_size
        if self.config.large_input == "native" or (h, w) == (size, size):
            ph, pw = -h % self.multiple, -w % self.multiple
            padded = F.pad(blurred, (0, pw, 0, ph), mode="replicate") if ph or pw else blurred
            frames = self._solve(padded, samples, steps, zeta, generator, progress, x_T, precision)[..., :h, :w]
            if project:
                frames = (frames + blurred[:, None, None] - frames.mean(dim=2, keepdim=True)).clamp(0, 1)
            return frames
        small = F.interpolate(blurred, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        frames = self._solve(small, samples, steps, zeta, generator, progress, x_T, precision)
        b, s, k = frames.shape[:3]
        up = F.interpolate(frames.flatten(0, 2), size=(h, w), mode="bicubic", align_corners=False)
        up = up.view(b, s, k, *up.shape[1:])
        residual = blurred[:, None, None] - up.mean(dim=2, keepdim=True)
        return (up + residual).clamp(0, 1)

    @torch.no_grad()
    def restore(self, blurred: torch.Tensor, *, steps: int | None = None, sampler: str | None = None,
                generator: torch.Generator | None = None, progress: bool = False) -> torch.Tensor:
        """One DPS sample of the K sharp frames: (B, C, H, W) -> (B, K, C, H, W) in [0, 1].

        ``sampler``: only ``"ddpm"`` (ancestral, as DPS requires); ``steps`` strides it
        (default: the config's ``default_steps``; 1000 is the paper's chain)."""
        if sampler not in (None, "ddpm"):
            raise ConfigError(f"VDM-MD samples with DPS over the ancestral DDPM sampler; sampler {sampler!r} "
                              "is not supported (use 'ddpm' or leave it unset)")
        return self.sample_frames(blurred, samples=1, steps=steps, generator=generator, progress=progress)[:, 0]

    def recover(self, blurred: torch.Tensor, *, samples: int = 1, steps: int | None = None,
                zeta: float | None = None, generator: torch.Generator | None = None,
                ground_truth: torch.Tensor | None = None, progress: bool = False,
                project: bool | None = None, x_T: torch.Tensor | None = None,
                precision: str | None = None) -> ExposureResult:
        """Frames, their mean over samples, re-blur consistency, and (given the true frames
        (B, K, C, H, W)) the better time order and the middle-frame PSNR in it."""
        from ..metrics.consistency import reblur_psnr
        from ..metrics.image import psnr

        frames = self.sample_frames(blurred, samples=samples, steps=steps, zeta=zeta, generator=generator,
                                    progress=progress, project=project, x_T=x_T, precision=precision)
        b, s = frames.shape[:2]
        flat = frames.flatten(0, 1)
        aligned = time_order_like(flat, frames[:, :1].expand_as(frames).flatten(0, 1))[0].view_as(frames)
        reblur = reblur_psnr(flat, blurred.repeat_interleave(s, dim=0)).view(b, s)
        result = ExposureResult(frames=frames, mean=aligned.mean(dim=1), reblur_psnr=reblur)
        if ground_truth is not None:
            if ground_truth.shape != (b, *frames.shape[2:]):
                raise InputError(f"ground truth must be (B, K, C, H, W) = {(b, *frames.shape[2:])}, got "
                                 f"{tuple(ground_truth.shape)}")
            truth = ground_truth.repeat_interleave(s, dim=0)
            ordered, rev = time_order_like(flat, truth)
            mid = middle_index(frames.shape[2])
            result.reversed = rev.view(b, s)
            result.ordered = ordered.view_as(frames)
            result.middle_psnr = psnr(ordered[:, mid], truth[:, mid]).view(b, s)
        return result
