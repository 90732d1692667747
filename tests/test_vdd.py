"""VDD: two-stage training freezes what it should, zero-init adaptation, v-target and coherence
loss known answers, classifier-free guidance, save/load, T2V folder loading."""
import json
from pathlib import Path

import pytest
import torch
from diffusers import AutoencoderKL, UNet3DConditionModel

from deblurdiff.errors import CheckpointError, InputError
from deblurdiff.methods import method_class
from deblurdiff.methods.vdd import VDD, temporal_coherence_loss
from deblurdiff.nn.image_encoder import ConvImageEncoder
from deblurdiff.nn.vdd_unet import encode_clip, tiny_unet_config, tiny_vae_config, widen_conv_in
from deblurdiff.tensors import to_model
from deblurdiff.train.schedule import select_trainable

LATENT = 4
CONFIGS = Path(__file__).resolve().parent.parent / "configs"


def tiny_vdd(**kwargs) -> VDD:
    torch.manual_seed(0)
    return VDD(vae_config=tiny_vae_config(latent_channels=LATENT, channels=(8, 16), sample_size=32),
               unet_config=tiny_unet_config(latent_channels=LATENT, channels=(16, 32), cross_attention_dim=16),
               encoder_config={"channels": [8, 16], "embed_dim": 16, "grid": 2}, frames=3, **kwargs)


def clip_batch(batch=2, frames=3, size=16, seed=1):
    g = torch.Generator().manual_seed(seed)
    sharp = torch.rand(batch, frames, 3, size, size, generator=g)
    blur = (sharp + torch.roll(sharp, 1, dims=-1)) / 2
    return {"blur": blur, "sharp": sharp}


def test_registered_as_stochastic_video_method():
    assert method_class("vdd") is VDD
    assert VDD.kind == "video" and VDD.stochastic and VDD.method_name == "vdd"


def _train_step(model, batch, patterns, stage):
    select_trainable(model, patterns, stage)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-2, weight_decay=0.01)
    loss = model.training_loss(dict(batch, stage=stage, stage_options={}))["loss"]
    loss.backward()
    optimizer.step()


def test_stage1_step_changes_only_encoder2():
    model = tiny_vdd(condition_dropout=0.0, latent_scale=1.0)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    torch.manual_seed(3)
    _train_step(model, clip_batch(), [r"image_encoder_2\..*"], "stage1")
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert changed, "a stage-1 step must move encoder 2"
    assert all(n.startswith("image_encoder_2.") for n in changed), sorted(changed)[:5]
    assert len(changed) > len(before) // 50 or len(changed) >= 5


def test_stage2_trains_unet_but_encoder1_stays_frozen():
    model = tiny_vdd(condition_dropout=0.0, latent_scale=1.0)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    torch.manual_seed(3)
    _train_step(model, clip_batch(), [".*"], "stage2")
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert any(n.startswith("unet.") for n in changed)
    assert any(n.startswith("image_encoder_2.") for n in changed)
    assert not any(n.startswith("image_encoder_1.") for n in changed)
    assert not any(n.startswith("vae.") for n in changed), "the diffusion objective must not move the autoencoder"


def test_autoencoder_stage_trains_the_vae_only():
    model = tiny_vdd()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    torch.manual_seed(3)
    _train_step(model, clip_batch(), [r"vae\..*"], "autoencoder")
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert changed and all(n.startswith("vae.") for n in changed)


def test_encoder2_starts_as_a_copy_of_encoder1():
    model = tiny_vdd()
    for (n1, p1), (n2, p2) in zip(model.image_encoder_1.named_parameters(), model.image_encoder_2.named_parameters()):
        assert n1 == n2 and torch.equal(p1, p2)


def test_coherence_loss_known_answers():
    pred = torch.tensor([0.0, 1.0, 3.0]).reshape(1, 1, 3, 1, 1)
    zero = torch.zeros_like(pred)
    # frame differences 1 and 2 against 0 and 0: 1^2 + 2^2
    assert temporal_coherence_loss(pred, zero).item() == pytest.approx(5.0)
    assert temporal_coherence_loss(pred, pred).item() == 0.0
    # a constant offset on every frame leaves the frame differences unchanged
    assert temporal_coherence_loss(pred + 7.0, pred).item() == 0.0
    # elementwise mean inside a pair: two pixels with errors 1 and 3 in one pair -> (1 + 9) / 2
    two = torch.tensor([[0.0, 0.0], [1.0, 3.0]]).reshape(1, 1, 2, 1, 2)
    assert temporal_coherence_loss(two, torch.zeros_like(two)).item() == pytest.approx(5.0)


def test_v_prediction_oracle_has_zero_loss():
    """A denoiser that returns the exact v = (a x_t - x0) / s of the sharp latents gets zero base
    and coherence loss; so the loss really targets v of the sharp clip's latents."""
    model = tiny_vdd(condition_dropout=0.0, latent_scale=0.7)
    batch = clip_batch()
    x0 = encode_clip(model.vae, to_model(batch["sharp"]), model.latent_scale).detach()
    abar = model.schedule.alphas_cumprod.float()

    def oracle(x_t, t, cond):
        a = abar[t].sqrt().reshape(-1, 1, 1, 1, 1)
        s = (1 - abar[t]).sqrt().reshape(-1, 1, 1, 1, 1)
        return (a * x_t - x0) / s

    model._denoise = oracle
    out = model.training_loss(dict(batch, stage="stage2"))
    assert out["base"].item() < 1e-8 and out["coherence"].item() < 1e-8
    # ... and an eps-oracle (the wrong parameterisation) does not.
    model._denoise = lambda x_t, t, cond: (x_t - abar[t].sqrt().reshape(-1, 1, 1, 1, 1) * x0) / (
        1 - abar[t]).sqrt().reshape(-1, 1, 1, 1, 1)
    assert model.training_loss(dict(batch, stage="stage2"))["base"].item() > 1e-3


def test_terminal_share_stage_option_trains_the_one_step_output():
    """loss: {terminal_share: 1} trains every clip at the last timestep, where the one-step
    sampler reads the network; without it the timesteps are uniform."""
    model = tiny_vdd(condition_dropout=0.0)
    seen = []
    denoise = model._denoise
    model._denoise = lambda x_t, t, cond: seen.append(t.clone()) or denoise(x_t, t, cond)
    batch = clip_batch()
    for _ in range(4):
        model.training_loss(dict(batch, stage="stage2", stage_options={"terminal_share": 1.0}))
    last = model.schedule.num_train_timesteps - 1
    assert all(bool((t == last).all()) for t in seen)
    seen.clear()
    for _ in range(4):
        model.training_loss(dict(batch, stage="stage2"))
    assert not all(bool((t == last).all()) for t in seen)


def test_residual_option_targets_v_of_the_latent_difference():
    model = tiny_vdd(condition_dropout=0.0, latent_scale=0.7, residual=True)
    batch = clip_batch()
    sharp = encode_clip(model.vae, to_model(batch["sharp"]), model.latent_scale).detach()
    blur = encode_clip(model.vae, to_model(batch["blur"]), model.latent_scale).detach()
    abar = model.schedule.alphas_cumprod.float()

    def oracle_for(x0):
        def oracle(x_t, t, cond):
            a = abar[t].sqrt().reshape(-1, 1, 1, 1, 1)
            s = (1 - abar[t]).sqrt().reshape(-1, 1, 1, 1, 1)
            return (a * x_t - x0) / s
        return oracle

    # the residual is diffused at unit RMS: after one batch its scale is 1 / that batch's RMS
    rms = (sharp - blur).pow(2).mean().sqrt()
    model._denoise = oracle_for((sharp - blur) / rms)
    assert model.training_loss(dict(batch, stage="stage2"))["base"].item() < 1e-8
    assert float(model.residual_scale_value) == pytest.approx(1.0 / float(rms), rel=1e-5)
    for wrong in (sharp - blur, sharp):
        model._denoise = oracle_for(wrong)
        assert model.training_loss(dict(batch, stage="stage2"))["base"].item() > 1e-4


def test_residual_scale_pools_the_calibration_clips_then_stays_fixed():
    model = tiny_vdd(condition_dropout=0.0, latent_scale=0.7, residual=True, residual_calibration=4)
    batches = [clip_batch(batch=2, seed=seed) for seed in range(3)]
    for batch in batches[:1]:
        batch["sharp"] = batch["sharp"] * 0.25 + batch["blur"] * 0.75  # a batch of small residuals
    with torch.no_grad():
        residuals = [encode_clip(model.vae, to_model(b["sharp"]), 0.7) - encode_clip(model.vae, to_model(b["blur"]), 0.7)
                     for b in batches]
    for batch in batches:
        model.training_loss(dict(batch, stage="stage2"))
    # the first two batches (4 clips) set it: the RMS over both, not the first batch's alone ...
    pooled = torch.cat(residuals[:2]).pow(2).mean().sqrt()
    assert float(model.residual_scale_value) == pytest.approx(1.0 / float(pooled), rel=1e-4)
    assert float(model.residual_calibration_clips) == 4
    assert abs(float(residuals[0].pow(2).mean().sqrt()) - float(pooled)) > 0.1 * float(pooled)
    # ... and the third batch, after the window, leaves it alone; so does a scale without a count
    model.residual_calibration_clips.zero_()
    model.residual_scale_value.fill_(3.0)
    model.training_loss(dict(batches[2], stage="stage2"))
    assert float(model.residual_scale_value) == 3.0


@torch.no_grad()
def test_residual_restore_adds_the_blurred_latents_back():
    """With a denoiser that predicts a zero residual, DDIM returns exactly x0 = 0, so the output
    is the autoencoder's reconstruction of the blurred clip."""
    from deblurdiff.nn.vdd_unet import decode_clip
    from deblurdiff.tensors import to_image

    model = tiny_vdd(latent_scale=1.0, residual=True).eval()
    model._denoise = lambda x_t, t, cond: model.schedule.from_x0(torch.zeros_like(x_t), x_t, t)
    blurred = clip_batch(batch=1)["blur"]
    out = model.restore(blurred, steps=3, generator=torch.Generator().manual_seed(0))
    recon = to_image(decode_clip(model.vae, encode_clip(model.vae, to_model(blurred), 1.0), 1.0))
    torch.testing.assert_close(out, recon, atol=1e-4, rtol=0)


@torch.no_grad()
def test_decode_residual_returns_the_input_for_a_zero_residual():
    model = tiny_vdd(latent_scale=1.0, residual=True, decode_residual=True).eval()
    model._denoise = lambda x_t, t, cond: model.schedule.from_x0(torch.zeros_like(x_t), x_t, t)
    blurred = clip_batch(batch=1)["blur"]
    out = model.restore(blurred, steps=3, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(out, blurred, atol=1e-5, rtol=0)
    # a non-zero residual changes the output by the decoder's response to it
    model._denoise = lambda x_t, t, cond: model.schedule.from_x0(torch.full_like(x_t, 0.5), x_t, t)
    assert (model.restore(blurred, steps=3, generator=torch.Generator().manual_seed(0)) - blurred).abs().max() > 1e-3


def test_latent_scale_is_calibrated_once_from_sharp_latents():
    model = tiny_vdd()
    batch = clip_batch()
    model.training_loss(dict(batch, stage="stage1"))
    std = encode_clip(model.vae, to_model(batch["sharp"]), 1.0).std()
    assert float(model.latent_scale_value) == pytest.approx(1.0 / float(std), rel=1e-5)
    model.training_loss(dict(clip_batch(seed=5), stage="stage1"))
    assert float(model.latent_scale_value) == pytest.approx(1.0 / float(std), rel=1e-5)


def _conditional_sample(model, blurred, steps, seed):
    from deblurdiff.diffusion import sample
    from deblurdiff.nn.vdd_unet import decode_clip
    from deblurdiff.tensors import to_image

    blurred_m = to_model(blurred)
    latents = encode_clip(model.vae, blurred_m, model.latent_scale)
    cond = (latents, model.context(blurred_m))
    x = sample(lambda x_t, t: model._denoise(x_t, t, cond), latents.shape, model.schedule, steps,
               generator=torch.Generator().manual_seed(seed))
    return to_image(decode_clip(model.vae, x, model.latent_scale))


@torch.no_grad()
def test_guidance_scale_one_is_the_conditional_model_and_others_differ():
    model = tiny_vdd(latent_scale=1.0).eval()
    torch.nn.init.normal_(model.unet.conv_out.weight, std=0.05)  # diffusers zero-inits nothing here, but be sure
    blurred = clip_batch(batch=1, size=16)["blur"]
    reference = _conditional_sample(model, blurred, 3, seed=4)
    one = model.restore(blurred, steps=3, generator=torch.Generator().manual_seed(4), guidance_scale=1.0,
                        precision="fp32")
    torch.testing.assert_close(one, reference, atol=1e-6, rtol=0)
    three = model.restore(blurred, steps=3, generator=torch.Generator().manual_seed(4), guidance_scale=3.0,
                          precision="fp32")
    assert (three - one).abs().max() > 1e-4


@torch.no_grad()
def test_restore_any_size_and_rejects_images():
    model = tiny_vdd(latent_scale=1.0).eval()
    out = model.restore(torch.rand(1, 2, 3, 13, 18), steps=2, generator=torch.Generator().manual_seed(0))
    assert out.shape == (1, 2, 3, 13, 18)
    assert 0.0 <= out.min() and out.max() <= 1.0
    with pytest.raises(InputError):
        model.restore(torch.rand(1, 3, 16, 16), steps=2)


@torch.no_grad()
def test_tiled_decoding_for_frames_larger_than_the_tile():
    model = tiny_vdd(latent_scale=1.0, vae_tile_size=16).eval()
    out = model.restore(torch.rand(1, 2, 3, 24, 40), steps=2, generator=torch.Generator().manual_seed(0))
    assert model.vae.use_tiling and out.shape == (1, 2, 3, 24, 40)
    model.restore(torch.rand(1, 2, 3, 16, 16), steps=1, generator=torch.Generator().manual_seed(0))
    assert not model.vae.use_tiling


@torch.no_grad()
def test_save_load_round_trip(tmp_path):
    model = tiny_vdd(guidance_scale=2.0)
    model.training_loss(dict(clip_batch(), stage="stage1"))  # calibrates the latent scale buffer
    with torch.no_grad():
        model.image_encoder_2.project.weight.add_(0.5)  # encoders now differ
    model.save_pretrained(tmp_path / "vdd")
    loaded = VDD.from_pretrained(tmp_path / "vdd")
    assert loaded.config.guidance_scale == 2.0
    original = model.state_dict()
    for name, tensor in loaded.state_dict().items():
        assert torch.equal(tensor, original[name]), name
    blurred = clip_batch(batch=1)["blur"]
    a = model.eval().restore(blurred, steps=2, generator=torch.Generator().manual_seed(1))
    b = loaded.eval().restore(blurred, steps=2, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b)


@torch.no_grad()
def test_widen_conv_in_keeps_the_pretrained_output():
    torch.manual_seed(0)
    unet = UNet3DConditionModel(**dict(tiny_unet_config(channels=(16, 32), cross_attention_dim=16), in_channels=4))
    x = torch.randn(1, 4, 3, 8, 8)
    t = torch.tensor([500])
    context = torch.randn(1, 5, 16)
    before = unet(x, t, encoder_hidden_states=context).sample
    widen_conv_in(unet, 4)
    assert unet.config.in_channels == 8 and unet.conv_in.in_channels == 8
    after = unet(torch.cat([x, 10 * torch.randn(1, 4, 3, 8, 8)], dim=1), t, encoder_hidden_states=context).sample
    torch.testing.assert_close(after, before, atol=1e-5, rtol=1e-5)


def _save_t2v_folder(root):
    """A tiny random text-to-video model in the damo-vilab/text-to-video-ms-1.7b layout."""
    torch.manual_seed(0)
    unet = UNet3DConditionModel(**dict(tiny_unet_config(channels=(16, 32), cross_attention_dim=16), in_channels=4))
    vae = AutoencoderKL(**dict(tiny_vae_config(channels=(8, 16), sample_size=32), scaling_factor=0.18215))
    unet.save_pretrained(root / "unet")
    vae.save_pretrained(root / "vae")
    (root / "scheduler").mkdir()
    (root / "scheduler" / "scheduler_config.json").write_text(json.dumps(
        {"_class_name": "DDIMScheduler", "beta_schedule": "scaled_linear", "beta_start": 0.00085,
         "beta_end": 0.012, "num_train_timesteps": 1000, "prediction_type": "epsilon"}))
    (root / "model_index.json").write_text(json.dumps(
        {"_class_name": "TextToVideoSDPipeline", "unet": ["diffusers", "UNet3DConditionModel"],
         "vae": ["diffusers", "AutoencoderKL"], "scheduler": ["diffusers", "DDIMScheduler"],
         "text_encoder": ["transformers", "CLIPTextModel"], "tokenizer": ["transformers", "CLIPTokenizer"]}))
    return unet, vae


@torch.no_grad()
def test_from_t2v_loads_weights_and_zero_init_keeps_pretrained_output(tmp_path):
    unet, vae = _save_t2v_folder(tmp_path / "t2v")
    model = VDD.from_t2v(tmp_path / "t2v", guidance_scale=3.0)
    assert model.config.guidance_scale == 3.0 and model.latent_scale == pytest.approx(0.18215)
    assert model.schedule.kind == "scaled_linear" and model.schedule.prediction_type == "v"
    for name, tensor in vae.state_dict().items():
        assert torch.equal(model.vae.state_dict()[name], tensor), name
    assert torch.count_nonzero(model.unet.conv_in.weight[:, 4:]) == 0
    x = torch.randn(1, 4, 3, 8, 8)
    t = torch.tensor([321])
    context = model.context(to_model(torch.rand(1, 3, 3, 32, 32)))
    pretrained = unet(x, t, encoder_hidden_states=context).sample
    adapted = model.unet(torch.cat([x, torch.randn_like(x)], dim=1), t, encoder_hidden_states=context).sample
    torch.testing.assert_close(adapted, pretrained, atol=1e-5, rtol=1e-5)
    # a saved image encoder is picked up as the pretrained encoder 1 and copied into encoder 2
    encoder = ConvImageEncoder(channels=(8, 16), embed_dim=16)
    encoder.save_pretrained(tmp_path / "encoder")
    model = VDD.from_t2v(tmp_path / "t2v", image_encoder=tmp_path / "encoder")
    for name, tensor in encoder.state_dict().items():
        assert torch.equal(model.image_encoder_1.state_dict()[name], tensor)
        assert torch.equal(model.image_encoder_2.state_dict()[name], tensor)


def test_from_t2v_errors_name_the_problem(tmp_path):
    with pytest.raises(CheckpointError, match="model_index.json"):
        VDD.from_t2v(tmp_path)
    (tmp_path / "model_index.json").write_text("{}")
    with pytest.raises(CheckpointError, match="unet"):
        VDD.from_t2v(tmp_path)


def test_adapt_t2v_is_the_config_entry_point(tmp_path):
    from deblurdiff.errors import ConfigError
    from deblurdiff.methods.vdd import adapt_t2v
    from deblurdiff.train import load_config
    from deblurdiff.train.trainer import resolve_method_class

    cfg = load_config(CONFIGS / "vdd.yaml")
    assert resolve_method_class(cfg.method) is adapt_t2v
    with pytest.raises(ConfigError, match="t2v_path"):
        adapt_t2v(**cfg.model)
    _save_t2v_folder(tmp_path / "t2v")
    model = adapt_t2v(**dict(cfg.model, t2v_path=str(tmp_path / "t2v")))
    assert isinstance(model, VDD) and model.frames == 16 and model.config.guidance_scale == 3.0


def test_tiny_configs_build_and_differ_only_in_lambda():
    from deblurdiff.train import load_config

    tiny, ablation = load_config(CONFIGS / "vdd-tiny.yaml"), load_config(CONFIGS / "vdd-tiny-nocoherence.yaml")
    assert tiny.model["coherence_weight"] == 0.1 and ablation.model["coherence_weight"] == 0.0
    assert dict(tiny.model, coherence_weight=0.0) == ablation.model
    assert tiny.stages == ablation.stages and tiny.data == ablation.data and tiny.train == ablation.train
    assert [s.name for s in tiny.stages] == ["autoencoder", "stage1", "stage2"]
    assert tiny.stages[1].trainable == [r"image_encoder_2\..*"]


@torch.no_grad()
def test_shipped_checkpoint_loads_and_restores():
    from deblurdiff.api import load_method
    from deblurdiff.methods import shipped_checkpoint

    if not (shipped_checkpoint("vdd") / "config.json").is_file():
        pytest.skip("no shipped VDD checkpoint in this tree")
    model = load_method("vdd")
    assert isinstance(model, VDD) and model.latent_scale > 0 and float(model.latent_scale_value) > 0
    blurred = clip_batch(batch=1, frames=4, size=20)["blur"]
    out = model.restore(blurred, steps=2, generator=torch.Generator().manual_seed(0))
    assert out.shape == blurred.shape and torch.isfinite(out).all()
    assert (out - blurred).abs().mean() < 0.1, "the shipped model should stay close to its input on a tiny clip"


# ---------------------------------------------------------------------- the shared autoencoder
def _trained_autoencoder(folder, latent=4):
    """A tiny f4 autoencoder of the 'autoencoder' method after two training steps, saved to ``folder``."""
    from deblurdiff.methods.autoencoder import FrameAutoencoderMethod

    torch.manual_seed(0)
    ae = FrameAutoencoderMethod(latent_channels=latent, ch=8, ch_mult=(1, 2, 4), num_res_blocks=1, norm_num_groups=4,
                                lpips_weight=0.0)
    optimizer = torch.optim.AdamW(ae.parameters(), lr=1e-3)
    with torch.enable_grad():
        for seed in (0, 1):
            sharp = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(seed))
            ae.training_loss({"sharp": sharp})["loss"].backward()
            optimizer.step()
            optimizer.zero_grad()
    ae.save_pretrained(folder)
    return ae.eval()


def _vdd_on(folder, **kwargs):
    torch.manual_seed(0)
    unet = tiny_unet_config(channels=(16, 32), cross_attention_dim=16)
    del unet["in_channels"], unet["out_channels"]  # filled in from the autoencoder's latent channels
    return VDD(pretrained_autoencoder=str(folder), unet_config=unet,
               encoder_config={"channels": [8, 16], "embed_dim": 16, "grid": 2}, frames=3, **kwargs)


@torch.no_grad()
def test_pretrained_autoencoder_is_the_latent_space(tmp_path):
    from deblurdiff.errors import ConfigError
    from deblurdiff.nn.autoencoder import FrameAutoencoder
    from deblurdiff.nn.vdd_unet import decode_clip

    ae = _trained_autoencoder(tmp_path / "ae", latent=4)
    model = _vdd_on(tmp_path / "ae", residual=True, decode_residual=True).eval()
    assert isinstance(model.vae, FrameAutoencoder)
    assert model.unet.config.in_channels == 8 and model.unet.config.out_channels == 4
    assert model.multiple == 4 * 2  # f4 autoencoder x the UNet's one downsampling
    assert model.latent_scale == pytest.approx(1.0 / float(ae.latent_std))
    clip = clip_batch(batch=1, size=16)["sharp"]
    z = encode_clip(model.vae, to_model(clip), model.latent_scale)
    assert z.shape == (1, 4, 3, 4, 4)  # (B, latent channels, F, H/4, W/4)
    torch.testing.assert_close(z, ae.encode(clip).permute(0, 2, 1, 3, 4) / ae.latent_std, atol=1e-6, rtol=0)
    # identical decoded output: the VDD's decode of its latents is the autoencoder's reconstruction
    torch.testing.assert_close(decode_clip(model.vae, z, model.latent_scale), ae.autoencoder(to_model(clip)),
                               atol=1e-5, rtol=0)
    with pytest.raises(ConfigError, match="remove that stage"):
        model.training_loss(dict(clip_batch(size=16), stage="autoencoder"))
    out = model.restore(clip_batch(batch=1, size=12)["blur"], steps=2, generator=torch.Generator().manual_seed(0))
    assert out.shape == (1, 3, 3, 12, 12) and torch.isfinite(out).all()


def test_pretrained_autoencoder_checkpoint_loads_without_the_folder(tmp_path):
    import shutil

    _trained_autoencoder(tmp_path / "ae")
    model = _vdd_on(tmp_path / "ae", residual=True)
    model.training_loss(dict(clip_batch(size=16), stage="stage2"))  # calibrates the residual scale only
    assert model.latent_scale == pytest.approx(float(model.config.latent_scale))
    model.save_pretrained(tmp_path / "vdd")
    shutil.rmtree(tmp_path / "ae")
    loaded = VDD.from_pretrained(tmp_path / "vdd")
    assert loaded.config.pretrained_autoencoder is None and loaded.config.autoencoder_from == str(tmp_path / "ae")
    for name, tensor in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor), name
    blurred = clip_batch(batch=1, size=16)["blur"]
    a = model.eval().restore(blurred, steps=2, generator=torch.Generator().manual_seed(1))
    b = loaded.eval().restore(blurred, steps=2, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(a, b, atol=1e-6, rtol=0)


def test_mismatched_autoencoder_folders_are_refused(tmp_path):
    from deblurdiff.errors import ConfigError

    _trained_autoencoder(tmp_path / "ae", latent=4)
    with pytest.raises(ConfigError, match="unet_config.in_channels.*must be 8"):
        VDD(pretrained_autoencoder=str(tmp_path / "ae"),
            unet_config=tiny_unet_config(latent_channels=8, channels=(16, 32), cross_attention_dim=16),
            encoder_config={"channels": [8, 16], "embed_dim": 16, "grid": 2})
    with pytest.raises(ConfigError, match="vae_config"):
        VDD(pretrained_autoencoder=str(tmp_path / "ae"), vae_config=tiny_vae_config())
    tiny_vdd().save_pretrained(tmp_path / "not-an-autoencoder")
    with pytest.raises(ConfigError, match="pretrained_autoencoder.*VDD checkpoint"):
        _vdd_on(tmp_path / "not-an-autoencoder")
    with pytest.raises(CheckpointError, match="not a checkpoint folder"):
        _vdd_on(tmp_path / "missing")


# ---------------------------------------------------------------------- fast inference
@torch.no_grad()
def test_precisions_agree_and_reference_is_the_float32_path():
    from deblurdiff.errors import ConfigError

    model = tiny_vdd(latent_scale=1.0).eval()
    torch.nn.init.normal_(model.unet.conv_out.weight, std=0.05)
    blurred = clip_batch(batch=1, size=16)["blur"]
    run = lambda p: model.restore(blurred, steps=3, generator=torch.Generator().manual_seed(2), precision=p)  # noqa: E731
    reference, fp32, bf16 = run("reference"), run("fp32"), run("bf16")
    torch.testing.assert_close(fp32, reference, atol=1e-6, rtol=0)
    assert 0 < (bf16 - fp32).abs().max() < 0.05
    assert not fp32.is_inference()  # callers may update it in place
    with pytest.raises(ConfigError, match="precision"):
        run("fp8")


@torch.no_grad()
def test_zero_terminal_snr_ddim_is_deterministic_and_noise_free():
    """Zero-terminal-SNR v-prediction DDIM starts at t = T-1 (alpha_bar = 0, trailing spacing) and
    adds no noise: two generators with different seeds differ only through x_T, and an oracle that
    predicts a fixed x0 returns it exactly whatever the start."""
    model = tiny_vdd(latent_scale=1.0, zero_terminal_snr=True, residual=True).eval()
    assert float(model.schedule.alphas_cumprod[-1]) == 0.0
    target = torch.full((1, LATENT, 3, 8, 8), 0.3)
    model._denoise = lambda x_t, t, cond: model.schedule.from_x0(target.expand_as(x_t), x_t, t)
    blurred = clip_batch(batch=1, size=16)["blur"]
    a = model.restore(blurred, steps=12, generator=torch.Generator().manual_seed(0), precision="fp32")
    b = model.restore(blurred, steps=12, generator=torch.Generator().manual_seed(5), precision="fp32")
    torch.testing.assert_close(a, b, atol=1e-5, rtol=0)


def test_cpu_configs_build_on_the_shared_autoencoder(tmp_path):
    """configs/vdd-cpu.yaml (and its ablation, which differs only in lambda) on a stand-in
    autoencoder folder: the UNet takes its latent channels, stage 1 trains only the blur path,
    and the trainer's channels_last conversion accepts the 3D UNet."""
    from deblurdiff.nn.layout import to_channels_last
    from deblurdiff.train import load_config

    cfg, ablation = load_config(CONFIGS / "vdd-cpu.yaml"), load_config(CONFIGS / "vdd-cpu-nocoherence.yaml")
    assert cfg.model["coherence_weight"] == 0.1 and ablation.model["coherence_weight"] == 0.0
    assert dict(cfg.model, coherence_weight=0.0) == ablation.model
    assert cfg.stages == ablation.stages and cfg.data == ablation.data and cfg.train == ablation.train
    assert cfg.model["pretrained_autoencoder"] == "autoencoder"  # the shipped one
    assert cfg.model["zero_terminal_snr"] and 10 <= cfg.model["steps"] <= 20 and cfg.model["sampler"] == "ddim"
    assert cfg.train.mixed_precision == "bf16" and not cfg.train.channels_last  # GroupNorm: NCHW on CPUs
    assert cfg.data.source == "shake" and cfg.data.mode == "video" and cfg.data.options["scene_share"] > 0
    assert [s.name for s in cfg.stages] == ["stage1", "stage2"]

    _trained_autoencoder(tmp_path / "ae", latent=4)
    model = VDD(**dict(cfg.model, pretrained_autoencoder=str(tmp_path / "ae")))
    assert model.unet.config.in_channels == 8 and model.unet.config.out_channels == 4
    assert model.schedule.prediction_type == "v" and float(model.schedule.alphas_cumprod[-1]) == 0.0
    stage1 = set(select_trainable(model, cfg.stages[0].trainable, "stage1"))
    unet1 = {n for n in stage1 if n.startswith("unet.")}
    assert any(n.startswith("image_encoder_2.") for n in stage1) and "unet.conv_in.weight" in unet1
    assert any(".attn2.to_k." in n for n in unet1)
    assert all(n.startswith("unet.conv_in.") or ".attn2.to_" in n for n in unet1)
    assert not any("temp_attentions" in n for n in unet1)
    stage2 = set(select_trainable(model, cfg.stages[1].trainable, "stage2"))
    assert not any(n.startswith(("vae.", "image_encoder_1.")) for n in stage2)
    to_channels_last(model)
    assert model.vae.encoder.conv_in.weight.is_contiguous(memory_format=torch.channels_last)
