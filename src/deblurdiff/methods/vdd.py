"""VDD: video deblurring with a latent 3D-UNet diffusion model adapted from text-to-video.

Structure (METHODS.md section 2; the seed leaves the conditioning path unpublished, so this
follows diffusers' image/video-conditioned models and keeps both paths):

* ``vae``: diffusers ``AutoencoderKL``, or the project's separately trained per-frame
  autoencoder (``pretrained_autoencoder: DIR``, a checkpoint folder of the ``autoencoder``
  method, e.g. ``runs/autoencoder-f4/final``; loaded frozen by the helper VDM-MD also uses,
  which copies its architecture into ``autoencoder_config``, its weights, and ``1 / latent_std``
  as the latent scale; saved checkpoints record the folder as ``autoencoder_from``). Clips are
  diffused in its latent space; the UNet's input/output channels follow its latent channels.
* ``unet``: diffusers ``UNet3DConditionModel`` (the ModelScope T2V architecture) whose input is
  the noisy latents concatenated on channels with the blurred clip's latents.
* ``image_encoder_1`` (frozen) and ``image_encoder_2`` (trained, initialised from encoder 1)
  each embed the blurred clip's centre frame; their tokens, concatenated, are the UNet's
  cross-attention context (where a T2V model has its text embedding).
* v-prediction with a temporal coherence term on frame differences, condition dropout so that
  classifier-free guidance works at inference, DDIM 50 steps by default.

``residual=True`` (an option, not in the paper) diffuses the difference between the sharp and
the blurred latents instead of the sharp latents, as residual diffusion deblurrers do: a model
that has learnt little still returns about the blurred input rather than an arbitrary clip,
which is what makes the CPU-budget tiny model usable. The residual is about 20x smaller than
the latents (std 0.06 in the shipped tiny model), so it is diffused divided by its own RMS
(``residual_scale``, pooled over the first ``residual_calibration`` training clips, then fixed;
one batch is not enough: the residual grows with the motion, and 2 clips of a CPU batch once set
a scale that left clips with more motion at 3x the unit std, the loss spikes of that run; with
several processes the clips of all of them are pooled): diffused at
its raw size, its signal-to-noise ratio sits ~300x below the schedule's at every t, the network
never learns to remove noise at small t, and the noise it leaves is decoded as speckle (the
shipped tiny model predates the fix: it has no residual scale and keeps 1).
``decode_residual=True`` (also not in the paper) adds the decoded change
``D(z_blur + r) - D(z_blur)`` to the blurred frames instead of decoding ``z_blur + r``, so a
briefly trained autoencoder's reconstruction error does not cap the output quality.

Training stages are named in the config (``batch["stage"]``); a stage's ``loss`` options may
set ``objective`` to ``autoencoder`` or ``diffusion`` (default: ``autoencoder`` for a stage
named so, ``diffusion`` otherwise), override ``coherence_weight`` and set ``terminal_share``: the
share of clips trained at the last timestep, where the one-step sampler (from pure noise on the
zero-terminal-SNR schedule, the v-prediction there is the posterior-mean x0) reads the network.
With a pretrained autoencoder the ``autoencoder`` stage is refused.

Inference (``restore``): DDIM (diffusers' ``DDIMScheduler``, eta 0: no noise is added; trailing
timesteps, zero-terminal-SNR betas when ``zero_terminal_snr``) for ``steps`` steps with CFG
``guidance_scale``. ``precision`` "auto" runs the UNet under bf16 autocast where the CPU/GPU has
bf16 kernels (the autoencoder and the sampler stay float32), all under ``inference_mode``;
"reference" is the plain float32 path. ``window_batch`` sliding windows of a long clip go through
one call (``infer.sliding_windows``), so each step runs the UNet once over all of them.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL, UNet3DConditionModel
from diffusers.configuration_utils import register_to_config

from ..diffusion import cfg_denoiser, make_schedule, sample
from ..errors import CheckpointError, ConfigError, InputError
from ..nn.autoencoder import FrameAutoencoder
from ..nn.image_encoder import ConvImageEncoder
from ..nn.layout import INFERENCE_PRECISIONS, bf16_is_fast
from ..nn.vdd_unet import (
    decode_clip,
    encode_clip,
    tiny_unet_config,
    tiny_vae_config,
    unet_downsample_factor,
    vae_downsample_factor,
    widen_conv_in,
)
from ..tensors import to_image, to_model
from .autoencoder import autoencoder_kwargs, load_trained_autoencoder, record_autoencoder_source, refuse_autoencoder_stage
from .base import DeblurMethod

DROPOUT_TARGETS = ("embedding", "all")


def temporal_coherence_loss(pred: torch.Tensor, target: torch.Tensor, frame_dim: int = 2) -> torch.Tensor:
    """``sum_j mean((pred_{j+1} - pred_j) - (target_{j+1} - target_j))^2``.

    The squared norm of each consecutive-frame difference error is averaged over its elements
    (batch, channels, pixels) so the term is on the same per-element scale as the base MSE, and
    summed over the F-1 frame pairs as in the paper's equation (5).
    """
    error = torch.diff(pred, dim=frame_dim) - torch.diff(target, dim=frame_dim)
    other = [d for d in range(error.ndim) if d != frame_dim % error.ndim]
    return error.pow(2).mean(dim=other).sum()


class _OnlyResidualScaleMissing(logging.Filter):
    """Drops diffusers' "newly initialized" warning when only the residual-scale buffers are new."""
    known = ("'residual_scale_value'", "'residual_calibration_clips'")

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "newly initialized: [" not in message:
            return True
        names = message.split("newly initialized: [", 1)[1].split("]", 1)[0].split(", ")
        return not all(name.strip() in self.known for name in names)


def _plain_config(config) -> dict:
    """A diffusers model config as JSON-friendly kwargs (no private ``_`` keys, lists not tuples)."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dict(config).items() if not k.startswith("_")}


class VDD(DeblurMethod):
    method_name = "vdd"
    kind = "video"
    stochastic = True
    #: sliding windows per ``restore`` call (``api.Deblurrer.deblur``): one UNet pass per step over all of them.
    window_batch = 8
    #: ``restore``'s default numerics (``nn.layout.INFERENCE_PRECISIONS``).
    inference_precision = "auto"

    @register_to_config
    def __init__(self, vae_config: dict | None = None, unet_config: dict | None = None,
                 encoder_config: dict | None = None, frames: int = 4, schedule: str = "linear",
                 num_train_timesteps: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02,
                 zero_terminal_snr: bool = False, coherence_weight: float = 0.1, condition_dropout: float = 0.1,
                 dropout_target: str = "embedding", guidance_scale: float = 1.0, steps: int = 50,
                 sampler: str = "ddim", latent_scale: float = 0.0, kl_weight: float = 1e-6,
                 vae_tile_size: int = 256, residual: bool = False, decode_residual: bool = False,
                 autoencoder_config: dict | None = None, pretrained_autoencoder: str | None = None,
                 autoencoder_from: str | None = None, residual_calibration: int = 64):
        super().__init__()
        if dropout_target not in DROPOUT_TARGETS:
            raise ConfigError(f"dropout_target must be one of {DROPOUT_TARGETS}, got {dropout_target!r}")
        if decode_residual and not residual:
            raise ConfigError("decode_residual needs residual: true (it decodes the predicted latent residual)")
        if not 0.0 <= condition_dropout < 1.0:
            raise ConfigError(f"condition_dropout must be in [0, 1), got {condition_dropout}")
        if pretrained_autoencoder:
            if vae_config:
                raise ConfigError("model.vae_config and model.pretrained_autoencoder both set: the pretrained "
                                  "autoencoder is the latent space; remove vae_config")
            trained = load_trained_autoencoder(pretrained_autoencoder, int((autoencoder_config or {}).get("in_channels", 3)))
            autoencoder_config, latent_scale = autoencoder_kwargs(trained), 1.0 / float(trained.latent_std)
            self.register_to_config(autoencoder_config=autoencoder_config, latent_scale=latent_scale)
        if autoencoder_config is not None:
            if vae_config:
                raise ConfigError("model.vae_config and model.autoencoder_config both set; keep one latent space")
            ae = dict(autoencoder_config, ch_mult=tuple(autoencoder_config.get("ch_mult", (1, 2, 4))))
            self.vae = FrameAutoencoder(**ae)
        else:
            self.vae = AutoencoderKL(**dict(vae_config or tiny_vae_config()))
        latent_channels = self.vae.config.latent_channels
        unet_config = self._unet_config(unet_config, latent_channels)
        encoder_config = dict(encoder_config or {"embed_dim": unet_config.get("cross_attention_dim", 32)})
        self.unet = UNet3DConditionModel(**unet_config)
        self.image_encoder_1 = ConvImageEncoder(**encoder_config)
        self.image_encoder_2 = ConvImageEncoder(**encoder_config)
        if self.image_encoder_1.config.embed_dim != self.unet.config.cross_attention_dim:
            raise ConfigError(f"encoder_config.embed_dim ({self.image_encoder_1.config.embed_dim}) must equal "
                              f"unet_config.cross_attention_dim ({self.unet.config.cross_attention_dim})")
        self.image_encoder_2.load_state_dict(self.image_encoder_1.state_dict())
        self.image_encoder_1.requires_grad_(False)
        # Latent scale: 0 = not calibrated yet; the first diffusion batch sets it to 1 / std of
        # the sharp latents (Stable Diffusion's scaling_factor, measured instead of hard-coded).
        self.register_buffer("latent_scale_value", torch.tensor(float(latent_scale)))
        # Residual scale (residual=True): 0 = not calibrated; 1 / RMS of the scaled latent residual,
        # pooled over the first `residual_calibration` clips (module docstring), then fixed.
        # Checkpoints without it keep 1; those without the clip count keep their scale.
        self.register_buffer("residual_scale_value", torch.tensor(0.0))
        self.register_buffer("residual_calibration_clips", torch.tensor(0.0))
        if pretrained_autoencoder:
            self.vae.load_state_dict(trained.autoencoder.state_dict())
        self.frames = frames
        self.multiple = vae_downsample_factor(self.vae) * unet_downsample_factor(self.unet)
        self.schedule = make_schedule(schedule, num_train_timesteps, beta_start=beta_start, beta_end=beta_end,
                                      zero_terminal_snr=zero_terminal_snr, prediction_type="v")

    @staticmethod
    def _unet_config(unet_config: dict | None, latent_channels: int) -> dict:
        """The UNet's config with in/out channels set from the latent space (noisy + blurred
        latents in, latents out); explicit values that do not fit are refused."""
        if unet_config is None:
            return tiny_unet_config(latent_channels=latent_channels)
        config = dict(unet_config)
        for key, want in (("in_channels", 2 * latent_channels), ("out_channels", latent_channels)):
            if key in config and int(config[key]) != want:
                raise ConfigError(f"model.unet_config.{key} is {config[key]} but the autoencoder has {latent_channels} "
                                  f"latent channels, so it must be {want} (in: noisy + blurred latents); set it to "
                                  f"{want} or leave it out")
            config[key] = want
        return config

    # ------------------------------------------------------------------ conditioning
    @property
    def latent_scale(self) -> float:
        value = float(self.latent_scale_value)
        return value if value > 0 else 1.0

    @property
    def residual_scale(self) -> float:
        value = float(self.residual_scale_value)
        return value if value > 0 else 1.0

    @torch.no_grad()
    def _calibrate_residual_scale(self, residual: torch.Tensor) -> None:
        """Pool the residual's second moment into ``residual_scale`` until ``residual_calibration``
        clips (of all processes) have been seen; a scale without a clip count (an older
        checkpoint) is kept as it is."""
        seen = float(self.residual_calibration_clips)
        if seen >= self.config.residual_calibration or (seen == 0 and float(self.residual_scale_value) > 0):
            return
        stats = torch.stack([residual.float().pow(2).mean(dim=tuple(range(1, residual.ndim))).sum(),
                             torch.tensor(float(residual.shape[0]), device=residual.device)])
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.all_reduce(stats)
        total_square, clips = float(stats[0]), float(stats[1])
        previous = seen / float(self.residual_scale_value) ** 2 if seen else 0.0  # seen x the pooled mean square
        mean_square = (previous + total_square) / (seen + clips)
        self.residual_scale_value.fill_(1.0 / max(mean_square ** 0.5, 1e-4))
        self.residual_calibration_clips.fill_(seen + clips)

    def context(self, blurred_m: torch.Tensor) -> torch.Tensor:
        """Cross-attention tokens ``(B, 2L, D)`` from the blurred clip's centre frame (model range)."""
        centre = blurred_m[:, blurred_m.shape[1] // 2]
        with torch.no_grad():  # encoder 1 keeps its (pretrained) weights
            frozen = self.image_encoder_1(centre)
        return torch.cat([frozen, self.image_encoder_2(centre)], dim=1)

    def _denoise(self, x_t: torch.Tensor, t: torch.Tensor, cond: tuple) -> torch.Tensor:
        blur_latents, context = cond
        return self.unet(torch.cat([x_t, blur_latents], dim=1), t, encoder_hidden_states=context).sample

    def _check_clip(self, clip: torch.Tensor, name: str) -> None:
        if clip.ndim != 5 or clip.shape[2] != self.vae.config.in_channels:
            raise InputError(f"VDD expects {name} clips shaped (B, F, {self.vae.config.in_channels}, H, W) in "
                             f"[0, 1], got {tuple(clip.shape)}; pass a batch of clips (add a batch axis)")

    # ------------------------------------------------------------------ training
    def training_loss(self, batch: dict) -> dict:
        stage = batch.get("stage", "main")
        options = dict(batch.get("stage_options") or {})
        objective = options.pop("objective", "autoencoder" if stage == "autoencoder" else "diffusion")
        if objective == "autoencoder":
            refuse_autoencoder_stage(self, stage)
            if isinstance(self.vae, FrameAutoencoder):
                raise ConfigError(f"stage {stage!r}: model.autoencoder_config autoencoders are trained by the "
                                  "'autoencoder' method (configs/autoencoder-f4.yaml); remove this stage")
            return self._autoencoder_loss(batch, options)
        if objective == "diffusion":
            return self._diffusion_loss(batch, options)
        raise ConfigError(f"stage '{stage}': loss.objective must be 'autoencoder' or 'diffusion', got {objective!r}")

    def _autoencoder_loss(self, batch: dict, options: dict) -> dict:
        """L1 reconstruction of sharp and blurred frames + a small KL term (LDM's first stage,
        without the adversarial and perceptual terms).

        The decoder is trained on the posterior mean (the latent the diffusion model uses); a
        fresh KL autoencoder's posterior has unit variance, so decoding samples would feed the
        decoder mostly noise for the first hundreds of steps. ``loss.sample_posterior: true``
        decodes samples as LDM does, for long runs."""
        blurred, sharp = batch["blur"], batch["sharp"]
        self._check_clip(sharp, "sharp")
        frames = to_model(torch.cat([sharp, blurred], dim=0).flatten(0, 1))
        posterior = self.vae.encode(frames).latent_dist
        latents = posterior.sample() if options.get("sample_posterior", False) else posterior.mean
        recon = self.vae.decode(latents).sample
        l1 = F.l1_loss(recon, frames)
        kl = posterior.kl().mean() / posterior.mean[0].numel()
        loss = l1 + float(options.get("kl_weight", self.config.kl_weight)) * kl
        return {"loss": loss, "l1": l1.detach(), "kl": kl.detach()}

    def _diffusion_loss(self, batch: dict, options: dict) -> dict:
        blurred, sharp = batch["blur"], batch["sharp"]
        self._check_clip(blurred, "blurred")
        blurred_m, sharp_m = to_model(blurred), to_model(sharp)
        with torch.no_grad():
            if float(self.latent_scale_value) <= 0:
                self.latent_scale_value.fill_(1.0 / float(encode_clip(self.vae, sharp_m, 1.0).std().clamp_min(1e-3)))
            x0 = encode_clip(self.vae, sharp_m, self.latent_scale)
            blur_latents = encode_clip(self.vae, blurred_m, self.latent_scale)
            if self.config.residual:
                x0 = x0 - blur_latents
                self._calibrate_residual_scale(x0)
                x0 = x0 * self.residual_scale
        context = self.context(blurred_m)
        batch_size = x0.shape[0]
        drop = torch.rand(batch_size, device=x0.device) < self.config.condition_dropout
        if bool(drop.any()):
            keep = (~drop).to(x0.dtype)
            context = context * keep[:, None, None]
            if self.config.dropout_target == "all":
                blur_latents = blur_latents * keep[:, None, None, None, None]
        noise = torch.randn_like(x0)
        t = self.schedule.sample_timesteps(batch_size, device=x0.device,
                                           terminal_share=float(options.get("terminal_share", 0.0)))
        x_t = self.schedule.add_noise(x0, noise, t)
        target = self.schedule.target(x0, noise, t)
        pred = self._denoise(x_t, t, (blur_latents, context))
        base = F.mse_loss(pred, target)
        coherence = temporal_coherence_loss(pred, target, frame_dim=2)
        weight = float(options.get("coherence_weight", self.config.coherence_weight))
        return {"loss": base + weight * coherence, "base": base.detach(), "coherence": coherence.detach()}

    # ------------------------------------------------------------------ inference
    def _pad(self, clip: torch.Tensor) -> tuple[torch.Tensor, int, int]:
        height, width = clip.shape[-2:]
        pad_h, pad_w = (-height) % self.multiple, (-width) % self.multiple
        if pad_h or pad_w:
            mode = "reflect" if pad_h < height and pad_w < width else "replicate"
            flat = F.pad(clip.flatten(0, 1), (0, pad_w, 0, pad_h), mode=mode)
            clip = flat.unflatten(0, clip.shape[:2])
        return clip, height, width

    def _set_tiling(self, height: int, width: int) -> None:
        """Tiled (blended) VAE encode/decode for frames larger than ``vae_tile_size`` (KL
        autoencoder; the frame autoencoder is convolutional and runs whole frames)."""
        if isinstance(self.vae, FrameAutoencoder):
            return
        tile = int(self.config.vae_tile_size)
        if max(height, width) > tile:
            self.vae.tile_sample_min_size = tile
            self.vae.tile_latent_min_size = tile // vae_downsample_factor(self.vae)
            self.vae.enable_tiling()
        else:
            self.vae.disable_tiling()

    def _precision(self, precision: str | None, device: torch.device) -> torch.dtype | None:
        """The UNet's autocast dtype for ``restore`` (None: float32), or "reference"."""
        precision = precision or self.inference_precision
        if precision not in INFERENCE_PRECISIONS:
            raise ConfigError(f"unknown precision {precision!r}; use one of {INFERENCE_PRECISIONS}")
        if precision == "auto":
            precision = "bf16" if bf16_is_fast(device) and self.dtype == torch.float32 else "fp32"
        return torch.bfloat16 if precision == "bf16" else None

    @torch.no_grad()
    def restore(self, blurred: torch.Tensor, *, steps: int | None = None, sampler: str | None = None,
                generator: torch.Generator | None = None, progress: bool = False,
                guidance_scale: float | None = None, precision: str | None = None) -> torch.Tensor:
        """Deblur clips ``(B, F, C, H, W)`` in [0, 1]: DDIM (by default) from noise in latent space,
        conditioned on the blurred latents and the centre-frame embedding, with CFG.

        ``precision`` (default :attr:`inference_precision`): "auto" (bf16 autocast on the UNet where
        the device has bf16 kernels), "bf16", "fp32", or "reference" (the plain float32 path with
        autograd bookkeeping, as before the fast path)."""
        self._check_clip(blurred, "blurred")
        if (precision or self.inference_precision) == "reference":
            return self._restore(blurred, steps, sampler, generator, progress, guidance_scale, None)
        autocast = self._precision(precision, self.device)
        with torch.inference_mode():
            out = self._restore(blurred, steps, sampler, generator, progress, guidance_scale, autocast)
        return out.clone()  # an ordinary tensor: callers may update it in place

    def _restore(self, blurred, steps, sampler, generator, progress, guidance_scale, autocast):
        scale = self.config.guidance_scale if guidance_scale is None else float(guidance_scale)
        device, dtype = self.device, self.dtype
        padded, height, width = self._pad(blurred.to(device, dtype))
        self._set_tiling(*padded.shape[-2:])
        blurred_m = to_model(padded)
        blur_latents = encode_clip(self.vae, blurred_m, self.latent_scale)
        context = self.context(blurred_m)
        cond = (blur_latents, context)
        null_latents = torch.zeros_like(blur_latents) if self.config.dropout_target == "all" else blur_latents
        uncond = (null_latents, torch.zeros_like(context))
        model_fn = self._denoise
        if autocast is not None:
            def model_fn(x_t, t, c):
                with torch.autocast(device.type, dtype=autocast):
                    return self._denoise(x_t, t, c).to(x_t.dtype)
        denoiser = cfg_denoiser(model_fn, cond, uncond, scale)
        latents = sample(denoiser, blur_latents.shape, self.schedule, int(steps or self.config.steps),
                         sampler=sampler or self.config.sampler, generator=generator, progress=progress,
                         device=device, dtype=dtype)
        if self.config.residual:
            latents = latents / self.residual_scale
        if self.config.decode_residual:
            # blurred + D(z_blur + r) - D(z_blur): the autoencoder's reconstruction error cancels
            # to first order, so r = 0 returns the input exactly.
            change = decode_clip(self.vae, blur_latents + latents, self.latent_scale) - \
                decode_clip(self.vae, blur_latents, self.latent_scale)
            restored = blurred_m + change
        elif self.config.residual:
            restored = decode_clip(self.vae, latents + blur_latents, self.latent_scale)
        else:
            restored = decode_clip(self.vae, latents, self.latent_scale)
        return to_image(restored[..., :height, :width]).float()

    @classmethod
    def from_pretrained(cls, *args, **kwargs):
        """Checkpoints saved before the residual scale existed lack its buffer; they load with 0
        (used as 1, the scale they were trained with) without diffusers' "newly initialized" warning."""
        logger = logging.getLogger("diffusers.models.modeling_utils")
        quiet = _OnlyResidualScaleMissing()
        logger.addFilter(quiet)
        try:
            return super().from_pretrained(*args, **kwargs)
        finally:
            logger.removeFilter(quiet)

    def save_pretrained(self, save_directory, *args, **kwargs):
        """Checkpoints carry the autoencoder's weights and name its folder as ``autoencoder_from``."""
        record_autoencoder_source(self)
        return super().save_pretrained(save_directory, *args, **kwargs)

    # ------------------------------------------------------------------ adaptation
    @classmethod
    def from_t2v(cls, path, image_encoder=None, **kwargs) -> "VDD":
        """Initialise from a diffusers text-to-video folder (``damo-vilab/text-to-video-ms-1.7b``
        layout: ``model_index.json``, ``unet/``, ``vae/``, ``scheduler/`` ...).

        The UNet's ``conv_in`` is widened with zero weights for the blurred latents, so the
        adapted model starts out computing exactly what the T2V UNet computes. Betas come from
        the folder's scheduler config; the objective is v-prediction regardless (an eps-trained
        UNet is re-targeted by stage-2 fine-tuning). Image encoder: ``image_encoder`` (a saved
        ``ConvImageEncoder`` folder), else ``path/image_encoder`` if it holds one, else a new one
        of the UNet's cross-attention width. ``kwargs`` override VDD's other settings.
        """
        root = Path(path)
        if not (root / "model_index.json").is_file():
            raise CheckpointError(f"{root} is not a diffusers text-to-video folder (no model_index.json); download "
                                  f"e.g. damo-vilab/text-to-video-ms-1.7b and pass its folder")
        for part in ("unet", "vae"):
            if not (root / part / "config.json").is_file():
                raise CheckpointError(f"{root / part} is missing; a text-to-video folder needs unet/ and vae/")
        unet = UNet3DConditionModel.from_pretrained(root, subfolder="unet")
        vae = AutoencoderKL.from_pretrained(root, subfolder="vae")
        widen_conv_in(unet, vae.config.latent_channels)
        encoder_dir = Path(image_encoder) if image_encoder is not None else root / "image_encoder"
        encoder = None
        if (encoder_dir / "config.json").is_file():
            if json.loads((encoder_dir / "config.json").read_text()).get("_class_name") != "ConvImageEncoder":
                if image_encoder is not None:
                    raise CheckpointError(f"{encoder_dir} is not a ConvImageEncoder folder; save one with "
                                          f"ConvImageEncoder.save_pretrained")
            else:
                encoder = ConvImageEncoder.from_pretrained(encoder_dir)
        elif image_encoder is not None:
            raise CheckpointError(f"image encoder folder {encoder_dir} has no config.json")
        if encoder is None:
            encoder = ConvImageEncoder(embed_dim=unet.config.cross_attention_dim)
        settings = {}
        scheduler_file = root / "scheduler" / "scheduler_config.json"
        if scheduler_file.is_file():
            sched = json.loads(scheduler_file.read_text())
            settings = {"num_train_timesteps": sched.get("num_train_timesteps", 1000),
                        "beta_start": sched.get("beta_start", 1e-4), "beta_end": sched.get("beta_end", 0.02),
                        "schedule": sched.get("beta_schedule", "linear")}
        settings.update(latent_scale=float(vae.config.scaling_factor))
        settings.update(kwargs)
        model = cls(vae_config=_plain_config(vae.config), unet_config=_plain_config(unet.config),
                    encoder_config=_plain_config(encoder.config), **settings)
        model.vae.load_state_dict(vae.state_dict())
        model.unet.load_state_dict(unet.state_dict())
        model.image_encoder_1.load_state_dict(encoder.state_dict())
        model.image_encoder_2.load_state_dict(encoder.state_dict())
        return model


def adapt_t2v(t2v_path: str, image_encoder: str | None = None, **settings) -> VDD:
    """``VDD.from_t2v`` as a plain callable, so a training config can start from a text-to-video
    checkpoint: ``method: deblurdiff.methods.vdd:adapt_t2v`` with ``model: {t2v_path: ...}``
    (the trainer calls the method spec with the ``model`` mapping)."""
    if not t2v_path:
        raise ConfigError("model.t2v_path is not set: pass the text-to-video folder, e.g. "
                          "--set model.t2v_path=/path/to/text-to-video-ms-1.7b")
    return VDD.from_t2v(t2v_path, image_encoder=image_encoder, **settings)
