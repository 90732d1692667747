"""VDM-MD method: staged training losses, latent scale, DPS sampling, large inputs, time order."""
import pytest
import torch

from deblurdiff.errors import ConfigError, InputError
from deblurdiff.methods import method_class
from deblurdiff.methods.vdm_md import VDMMD


def tiny(**kw):
    torch.manual_seed(0)
    args = dict(frames=4, image_size=16, ae_ch=4, ae_ch_mult=(1, 2, 4), ae_num_res_blocks=1, ae_norm_groups=2,
                hidden_size=32, depth=1, num_heads=2, num_train_timesteps=100, default_steps=10, fast_steps=5)
    args.update(kw)
    return VDMMD(**args)


def randomise_prior(model):
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for name, p in model.prior.named_parameters():
            if "adaln" in name or "proj_out" in name:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.1)
    return model


def batch(stage, b=2, k=4, size=16):
    gen = torch.Generator().manual_seed(1)
    frames = torch.rand(b, k, 3, size, size, generator=gen)
    return {"frames": frames, "blur": frames.mean(1), "sharp": frames[:, 1], "stage": stage, "stage_options": {}}


def test_registered_as_stochastic_exposure_method():
    assert method_class("vdm-md") is VDMMD
    assert VDMMD.kind == "exposure" and VDMMD.stochastic and VDMMD.method_name == "vdm-md"


def test_stage_losses_and_latent_scale_fixed_once():
    model = tiny()
    assert float(model.latent_std) == 0
    ae = model.training_loss(batch("autoencoder"))
    ae["loss"].backward()
    assert all(p.grad is None for p in model.prior.parameters())  # the AE stage leaves the prior alone
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.autoencoder.parameters())
    model.zero_grad()
    first = model.training_loss(batch("prior"))
    scale = float(model.latent_std)
    assert scale > 0 and model.config.latent_scale == pytest.approx(scale)
    first["loss"].backward()
    assert all(p.grad is None for p in model.autoencoder.parameters())  # latents are encoded without grad
    other = batch("prior")
    other["frames"] = other["frames"] * 0.5
    model.training_loss(other)
    assert float(model.latent_std) == scale  # never recomputed


def test_latent_scale_is_the_std_of_first_batch_latents():
    model = tiny()
    b = batch("prior")
    with torch.no_grad():
        expected = model.autoencoder.encode(b["frames"] * 2 - 1).std()
    model.training_loss(b)
    assert float(model.latent_std) == pytest.approx(float(expected), rel=1e-5)
    scaled = model.encode_clip(b["frames"])
    assert float(scaled.std()) == pytest.approx(1.0, rel=1e-4)


def test_training_errors_name_the_fix():
    model = tiny()
    with pytest.raises(ConfigError, match="autoencoder"):
        model.training_loss(batch("main"))
    with pytest.raises(InputError, match="subframes"):
        model.training_loss(batch("prior", k=3))
    with pytest.raises(ConfigError, match="latent scale"):
        model.restore(torch.rand(1, 3, 16, 16))


def test_restore_shape_range_determinism_and_sampler_check():
    model = randomise_prior(tiny(latent_scale=1.0))
    blurred = torch.rand(2, 3, 16, 16)
    a = model.restore(blurred, steps=4, generator=torch.Generator().manual_seed(5))
    b = model.restore(blurred, steps=4, generator=torch.Generator().manual_seed(5))
    assert a.shape == (2, 4, 3, 16, 16)
    assert a.min() >= 0 and a.max() <= 1
    assert torch.equal(a, b)
    with pytest.raises(ConfigError, match="ddpm"):
        model.restore(blurred, steps=4, sampler="ddim")
    with pytest.raises(InputError):
        model.restore(torch.rand(2, 16, 16), steps=2)


def test_dps_reduces_reblur_error_against_unguided_sampling():
    """With zeta = 0 DPS is plain ancestral sampling of the prior; the guidance must bring the
    mean of the decoded frames much closer to a measurement the decoder can actually produce."""
    model = randomise_prior(tiny(latent_scale=1.0))
    gen = torch.Generator().manual_seed(11)
    with torch.no_grad():
        target_frames = (model.autoencoder.decode(torch.randn(1, 4, 3, 4, 4, generator=gen)) + 1) / 2
    y = target_frames.clamp(0, 1).mean(dim=1)
    errors = {}
    for zeta in (0.0, 20.0):
        out = model.sample_frames(y, steps=15, zeta=zeta, generator=torch.Generator().manual_seed(2))
        errors[zeta] = float((out[:, 0].mean(dim=1) - y).square().mean().sqrt())
    assert errors[20.0] < 0.6 * errors[0.0], errors


def test_large_input_resized_and_blur_consistent():
    model = randomise_prior(tiny(latent_scale=1.0))
    blurred = torch.rand(1, 3, 24, 40) * 0.6 + 0.2
    frames = model.restore(blurred, steps=3, generator=torch.Generator().manual_seed(0))
    assert frames.shape == (1, 4, 3, 24, 40)
    # the residual step makes the frames average back to the input wherever the [0, 1] clamp
    # did not cut a frame (a random decoder's frames are extreme, so check only those pixels)
    unclamped = ((frames > 0) & (frames < 1)).all(dim=1)
    assert unclamped.float().mean() > 0.3
    assert torch.allclose(frames.mean(dim=1)[unclamped], blurred[unclamped], atol=1e-5)
    native = tiny(latent_scale=1.0, large_input="native").restore(blurred[..., :20, :36], steps=2)
    assert native.shape == (1, 4, 3, 20, 36)


def test_recover_reports_order_and_reblur(tmp_path):
    model = randomise_prior(tiny(latent_scale=1.0))
    blurred = torch.rand(1, 3, 16, 16)
    first = model.recover(blurred, samples=2, steps=3, generator=torch.Generator().manual_seed(4))
    assert first.frames.shape == (1, 2, 4, 3, 16, 16) and first.mean.shape == (1, 4, 3, 16, 16)
    assert first.reblur_psnr.shape == (1, 2) and first.reversed is None
    truth = first.frames[:, 0].flip(1)  # the first sample, time-reversed, as "ground truth"
    again = model.recover(blurred, samples=2, steps=3, generator=torch.Generator().manual_seed(4),
                          ground_truth=truth)
    assert torch.equal(again.frames, first.frames)
    assert bool(again.reversed[0, 0])
    assert torch.isinf(again.middle_psnr[0, 0])  # exactly the truth once put in the right order
    assert torch.equal(again.ordered[0, 0], truth[0])


def test_save_load_round_trip_keeps_latent_scale(tmp_path):
    model = tiny()
    model.training_loss(batch("prior"))
    model.save_pretrained(tmp_path)
    loaded = VDMMD.from_pretrained(tmp_path)
    assert float(loaded.latent_std) == float(model.latent_std) > 0
    blurred = torch.rand(1, 3, 16, 16)
    run = lambda m: m.restore(blurred, steps=2, generator=torch.Generator().manual_seed(9))
    assert torch.equal(run(model), run(loaded))


def test_resumed_model_saves_its_latent_scale_in_the_config(tmp_path):
    """The trainer rebuilds a model from the YAML (latent_scale unset) and loads the weights."""
    trained = tiny()
    trained.training_loss(batch("prior"))
    rebuilt = tiny()
    rebuilt.load_state_dict(trained.state_dict())
    assert rebuilt.config.latent_scale is None
    rebuilt.save_pretrained(tmp_path)
    assert VDMMD.from_pretrained(tmp_path).config.latent_scale == pytest.approx(float(trained.latent_std))


def test_configs_build_the_intended_models():
    from deblurdiff.train.config import load_config

    tiny_cfg = load_config("configs/vdm-md-tiny.yaml")
    assert [s.name for s in tiny_cfg.stages] == ["autoencoder", "prior"]
    assert tiny_cfg.data.mode == "exposure" and tiny_cfg.data.subframes == tiny_cfg.model["frames"] == 10
    paper = load_config("configs/vdm-md.yaml").model
    assert (paper["depth"], paper["hidden_size"], paper["num_heads"], paper["ae_ch_mult"]) == (28, 1152, 16, [1, 2, 4])


def test_short_chain_is_a_strided_subset_from_t_max_to_zero():
    """The default chain (<= 100 steps) visits T-1 ... 0 in near-equal strides, like the
    reference code's respacing; 1000 steps of 1000 would visit every timestep."""
    model = randomise_prior(tiny(latent_scale=1.0))  # T = 100, default_steps = 10
    seen = []
    model.prior.register_forward_pre_hook(lambda mod, args: seen.append(int(args[1][0])))
    model.restore(torch.rand(1, 3, 16, 16), generator=torch.Generator().manual_seed(0))
    assert len(seen) == 10 and seen[0] == 99 and seen[-1] == 0
    strides = [a - b for a, b in zip(seen, seen[1:])]
    assert all(s > 0 for s in strides) and max(strides) - min(strides) <= 1
    assert set(seen) <= set(range(100))


def test_sampling_takes_no_gradient_for_the_weights():
    """DPS differentiates w.r.t. the latents only: during sampling no weight requires grad (so
    autograd keeps nothing for weight gradients), afterwards training state is restored."""
    model = randomise_prior(tiny(latent_scale=1.0))
    flags = []
    model.autoencoder.decoder.register_forward_pre_hook(
        lambda mod, args: flags.append((args[0].requires_grad, any(p.requires_grad for p in model.parameters()))))
    model.restore(torch.rand(1, 3, 16, 16), steps=3, generator=torch.Generator().manual_seed(0))
    assert flags and all(not weights for _, weights in flags)
    assert any(latents for latents, _ in flags)  # the guided steps do differentiate w.r.t. the latents
    assert all(p.requires_grad and p.grad is None for p in model.parameters())


def test_stride_schedule_is_constant_zeta_times_the_stride():
    model = randomise_prior(tiny(latent_scale=1.0, zeta_schedule="stride", zeta=0.5))
    const = randomise_prior(tiny(latent_scale=1.0, zeta_schedule="constant", zeta=0.5 * 100 / 5))
    blurred = torch.rand(1, 3, 16, 16)
    run = lambda m: m.sample_frames(blurred, steps=5, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(run(model), run(const))


def test_bf16_decoder_keeps_float32_output_close_to_fp32():
    model = randomise_prior(tiny(latent_scale=1.0))
    z = torch.randn(2, 4, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    inner = []
    model.autoencoder.decoder.conv_out.register_forward_hook(lambda mod, args, out: inner.append(out.dtype))
    fp32, bf16 = model.decoder("fp32")(z), model.decoder("bf16")(z)
    assert inner == [torch.float32, torch.bfloat16] and bf16.dtype == torch.float32
    assert (bf16 - fp32).abs().max() < 0.05 * fp32.abs().max()
    frames = model.sample_frames(torch.rand(1, 3, 16, 16), steps=3, precision="bf16")
    assert frames.dtype == torch.float32


@pytest.mark.parametrize("option, value", [("zeta_schedule", "cosine"), ("dps_norm", "l1"), ("precision", "fp16"),
                                           ("dc_steps", -1), ("dc_zeta", -0.5), ("zeta", -1.0),
                                           ("default_steps", 0), ("fast_steps", -5)])
def test_bad_sampling_options_name_the_option(option, value):
    with pytest.raises(ConfigError, match=f"model.{option}"):
        tiny(**{option: value})


def test_cpu_config_loads_prior_only_on_the_shipped_autoencoder():
    """configs/vdm-md-cpu.yaml builds on the shipped autoencoder: the config loads, its data keeps
    10-frame exposures, and the model takes the autoencoder's latent space frozen."""
    import math

    from deblurdiff.methods import shipped_checkpoint
    from deblurdiff.methods.autoencoder import FrameAutoencoderMethod
    from deblurdiff.train.config import load_config

    cfg = load_config("configs/vdm-md-cpu.yaml")
    assert [s.name for s in cfg.stages] == ["prior"] and cfg.train.mixed_precision == "bf16"
    assert cfg.model["pretrained_autoencoder"] == "autoencoder"  # the shipped one
    assert not any(key.startswith("ae_") or key == "latent_scale" for key in cfg.model)
    assert cfg.data.mode == "exposure" and cfg.data.subframes == cfg.model["frames"] == 10 and cfg.data.size == 64
    # the shake source raises the sub-frame count to one per pixel of path: keep it at the 10 frames
    assert cfg.data.source == "shake" and math.ceil(cfg.data.options["max_shift"]) + 1 <= cfg.data.subframes
    shipped = FrameAutoencoderMethod.from_pretrained(shipped_checkpoint("autoencoder"))
    model = VDMMD(**cfg.model)
    assert model.config.latent_channels == shipped.config.latent_channels == 12
    assert float(model.latent_std) == pytest.approx(float(shipped.latent_std))
    assert torch.equal(model.autoencoder.decoder.conv_out.weight, shipped.autoencoder.decoder.conv_out.weight)
    assert cfg.model["default_steps"] <= 100


def test_sample_prior_shape_range_determinism_and_no_autograd():
    model = randomise_prior(tiny(latent_scale=1.0))
    run = lambda seed: model.sample_prior(3, steps=4, generator=torch.Generator().manual_seed(seed))  # noqa: E731
    a, b, other = run(7), run(7), run(8)
    assert a.shape == (3, 4, 3, 16, 16) and a.dtype == torch.float32
    assert a.min() >= 0 and a.max() <= 1
    assert torch.equal(a, b) and not torch.equal(a, other)
    assert not a.is_inference() and not a.requires_grad  # an ordinary tensor, no graph
    with pytest.raises(ConfigError, match="latent scale"):
        tiny().sample_prior(1, steps=2)


def test_sample_prior_is_dps_without_guidance():
    """The prior's chain is DPS's (same strided DDPM steps, same draws from the generator) with the
    guidance off: ``sample_frames`` at zeta = 0 from the same generator gives the same clips."""
    model = randomise_prior(tiny(latent_scale=1.0))
    prior = model.sample_prior(2, steps=5, generator=torch.Generator().manual_seed(3))
    dps = model.sample_frames(torch.rand(2, 3, 16, 16), steps=5, zeta=0.0, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(prior, dps[:, 0], atol=1e-6, rtol=0)


class OraclePrior(torch.nn.Module):
    """Predicts, in the schedule's parameterisation, the target for a known clean latent z0."""

    def __init__(self, schedule, z0):
        super().__init__()
        self.schedule, self.z0 = schedule, z0

    def forward(self, z_t, t):
        return self.schedule.from_x0(self.z0, z_t, t)


@pytest.mark.parametrize("prediction", ["eps", "v"])
def test_prior_loss_is_zero_for_the_oracle_of_its_own_parameterisation(prediction):
    """The prior learns the target its schedule samples with: an oracle that knows the clean
    latents scores 0 in its own parameterisation and clearly not 0 in the other one."""
    model = tiny(latent_scale=1.0, prediction=prediction)
    assert model.schedule.prediction_type == prediction
    b = batch("prior")
    with torch.no_grad():
        z0 = model.encode_clip(b["frames"])
    model.prior = OraclePrior(model.schedule, z0)
    assert float(model.training_loss(b)["loss"]) < 1e-8
    other = tiny(latent_scale=1.0, prediction="v" if prediction == "eps" else "eps")
    model.prior = OraclePrior(other.schedule, z0)
    assert float(model.training_loss(b)["loss"]) > 1e-3


def test_unknown_prediction_names_the_choices():
    with pytest.raises(ConfigError, match="'eps' or 'v'"):
        tiny(prediction="x0")


@pytest.mark.parametrize("prediction", ["eps", "v"])
def test_sample_prior_with_an_oracle_denoiser_returns_its_clip_decoded(prediction):
    """A denoiser that always predicts a known latent clip z0 (as eps or v for the schedule) must
    end the chain at z0 whatever the noise; the output is z0 decoded at the model's latent scale."""
    model = randomise_prior(tiny(latent_scale=2.5, prediction=prediction))
    z0 = torch.randn(2, 4, 3, 4, 4, generator=torch.Generator().manual_seed(1))
    model.denoiser = lambda z_t, t: model.schedule.from_x0(z0, z_t, t)
    with torch.no_grad():
        expected = ((model.autoencoder.decode(z0.flatten(0, 1) * 2.5) + 1) / 2).clamp(0, 1).view(2, 4, 3, 16, 16)
    for seed in (0, 1):
        out = model.sample_prior(2, steps=6, generator=torch.Generator().manual_seed(seed))
        torch.testing.assert_close(out, expected, atol=1e-5, rtol=0)


def test_write_gif_puts_clips_side_by_side(tmp_path):
    import imageio.v3 as iio

    from deblurdiff.report import write_gif

    clips = torch.rand(3, 5, 3, 8, 6, generator=torch.Generator().manual_seed(0))
    clips[1] = 0.0
    path = write_gif(tmp_path / "prior.gif", clips, gap=2)
    frames = iio.imread(path, index=None)
    assert frames.shape[:3] == (5, 8, 3 * 6 + 2 * 2)
    # clip 2 black, the gaps white (up to the GIF palette)
    assert (frames[:, :, 8:14, :3] < 8).all() and (frames[:, :, 6:8, :3] > 247).all()
    single = iio.imread(write_gif(tmp_path / "one.gif", clips[0]), index=None)
    assert single.shape[:3] == (5, 8, 6)


@pytest.mark.parametrize("prediction", ["eps", "v"])
def test_latent_projection_ends_at_the_oracle_clip_moved_onto_the_blurred_latent(prediction):
    """With a denoiser that always predicts z0, DDNM's last x0 is z0 projected onto the clips whose
    frame mean is the blurred image's latent, whatever the noise: z0 - mean_t z0 + E(y) / scale."""
    model = randomise_prior(tiny(latent_scale=2.5, prediction=prediction, guidance="latent_projection"))
    z0 = torch.randn(2, 4, 3, 4, 4, generator=torch.Generator().manual_seed(1))
    model.denoiser = lambda z_t, t: model.schedule.from_x0(z0, z_t, t)
    blurred = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        target = model.autoencoder.encode(blurred * 2 - 1) / 2.5
        z = z0 - z0.mean(dim=1, keepdim=True) + target[:, None]
        expected = ((model.autoencoder.decode(z.flatten(0, 1) * 2.5) + 1) / 2).clamp(0, 1).view(2, 4, 3, 16, 16)
    for seed in (0, 1):
        out = model.sample_frames(blurred, steps=6, generator=torch.Generator().manual_seed(seed))[:, 0]
        torch.testing.assert_close(out, expected, atol=1e-5, rtol=0)


def test_guidance_options_are_checked():
    with pytest.raises(ConfigError, match="guidance must be one of dps, latent_projection"):
        tiny(guidance="ddnm")
    with pytest.raises(ConfigError, match="set dc_steps to 0"):
        tiny(guidance="latent_projection", dc_steps=3)


def test_recover_averages_samples_in_one_time_order():
    """Samples of one blur may come out in either direction; their mean is taken after putting
    each in the first sample's order (else a forward and a reversed draw average to mush)."""
    model = tiny(latent_scale=1.0)
    clip = torch.rand(1, 4, 3, 16, 16, generator=torch.Generator().manual_seed(4))
    model.sample_frames = lambda blurred, **kw: torch.stack([clip, clip.flip(1)], dim=1)
    result = model.recover(clip.mean(1), samples=2, ground_truth=clip)
    torch.testing.assert_close(result.mean, clip)
    assert result.reversed.tolist() == [[False, True]]
    torch.testing.assert_close(result.ordered[0, 1], clip[0])
