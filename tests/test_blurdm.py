"""BlurDM: the blur-diffusion process (known answers, closed form, exact inversion), the method's stages."""
import re

import pytest
import torch

from deblurdiff.diffusion.blur_process import (BlurSchedule, blur_residual, closed_form_blur, combined_noise,
                                               ddim_forward_step, forward_step, progressive_blur, q_sample,
                                               reverse_step)
from deblurdiff.errors import ConfigError
from deblurdiff.methods.blurdm import BlurDM
from deblurdiff.train.schedule import select_trainable

OFFICIAL_BETA_BAR = [0.0, 0.0606, 0.1023, 0.1419, 0.1803]  # official code, t = 1..5


def tiny(**kw):
    opts = dict(backbone_options={"width": 8, "enc_blk_nums": [1, 1], "middle_blk_num": 1, "dec_blk_nums": [1, 1]},
                latent_width=8, latent_dim=16, latent_resblocks=1, estimator_depth=2)
    if kw.get("backbone") == "mimo-unet":
        opts["backbone_options"] = {"base_channel": 8, "num_res": 1}
    opts.update(kw)
    return BlurDM(**opts)


def test_beta_bar_matches_official_schedule():
    s = BlurSchedule()
    assert torch.allclose(s.a, torch.linspace(1, 2, 6))
    assert torch.allclose(s.beta_bar[1:], torch.tensor(OFFICIAL_BETA_BAR), atol=6e-5)
    assert s.beta_bar[0] == 0


def test_schedule_rejects_zero_exposure():
    with pytest.raises(ConfigError, match="a_start"):
        BlurSchedule(a_start=0.0)


def _levels(generator, shape=(2, 3, 8, 8), T=5):
    """Random partial exposures B_0..B_T of some H(tau), piecewise constant per step."""
    s = BlurSchedule(timesteps=T)
    h = torch.randn((T + 1,) + shape, generator=generator)  # H on [0, a_0] then on each step interval
    integral = [s.a[0] * h[0]]
    for t in range(1, T + 1):
        integral.append(integral[-1] + (s.a[t] - s.a[t - 1]) * h[t])
    return s, [integral[t] / s.a[t] for t in range(T + 1)]


def test_markov_chain_equals_closed_form():
    """Unrolled steps with fresh noises == B_T + beta_bar_T * eps, eps the documented combination."""
    g = torch.Generator().manual_seed(0)
    s, b = _levels(g)
    eps_steps = torch.randn((5,) + b[0].shape, generator=g)
    x = b[0]
    for t in range(1, 6):
        x = forward_step(x, blur_residual(b[t - 1], b[t], s, t), eps_steps[t - 1], s, t)
        eps = combined_noise(eps_steps, s, t)
        torch.testing.assert_close(x, q_sample(b[t], eps, s, t), atol=1e-5, rtol=1e-5)
    # the combination has unit variance: its coefficients' squares sum to one
    many = torch.randn(5, 200000, generator=g)
    assert abs(combined_noise(many, s, 5).std().item() - 1) < 0.01
    # noise only: the chain's std is beta_bar_T
    zero = torch.zeros(200000)
    x = zero
    for t in range(1, 6):
        x = forward_step(x, zero, many[t - 1], s, t)
    assert abs(x.std().item() - OFFICIAL_BETA_BAR[-1]) < 2e-3


def test_reverse_step_inverts_forward_step_exactly():
    g = torch.Generator().manual_seed(1)
    s, b = _levels(g)
    eps = torch.randn(b[0].shape, generator=g)
    for t in range(1, 6):
        e_t = blur_residual(b[t - 1], b[t], s, t)
        prev = q_sample(b[t - 1], eps, s, t - 1)
        cur = ddim_forward_step(prev, e_t, eps, s, t)
        torch.testing.assert_close(cur, q_sample(b[t], eps, s, t), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(reverse_step(cur, e_t, eps, s, t), prev, atol=1e-5, rtol=1e-5)
    # the whole reverse chain from I_T recovers the sharp image B_0 (beta_bar_0 = 0)
    x = q_sample(b[5], eps, s, 5)
    for t in range(5, 0, -1):
        x = reverse_step(x, blur_residual(b[t - 1], b[t], s, t), eps, s, t)
    torch.testing.assert_close(x, b[0], atol=1e-5, rtol=1e-5)
    # a wrong residual does not invert
    wrong = reverse_step(q_sample(b[1], eps, s, 1), torch.zeros_like(b[0]), eps, s, 1)
    assert (wrong - b[0]).abs().max() > 1e-2


def test_closed_form_blur_ends_and_progressive_blur():
    s = BlurSchedule()
    sharp, blur = torch.rand(1, 3, 4, 4), torch.rand(1, 3, 4, 4)
    torch.testing.assert_close(closed_form_blur(sharp, blur, s, 0), sharp)
    torch.testing.assert_close(closed_form_blur(sharp, blur, s, 5), blur)
    frames = torch.arange(9.0).reshape(1, 9, 1, 1, 1).expand(1, 9, 1, 2, 2)
    levels = progressive_blur(frames, s)
    assert levels.shape == (6, 1, 1, 2, 2)
    assert levels[0, 0, 0, 0, 0] == 4  # middle sub-frame = sharp
    assert levels[-1, 0, 0, 0, 0] == 4  # full exposure mean of 0..8
    # the window grows: level 1 (fraction 0.2 of 9 -> 2 frames: 3,4) mean 3.5
    assert levels[1, 0, 0, 0, 0] == 3.5


STAGES = {"stage1": ["sharp_encoder\\..*", "backbone\\..*"], "stage2": ["prior\\..*"],
          "stage3": ["backbone\\..*", "prior\\..*"]}


def test_stage_trainable_sets_and_gradients():
    torch.manual_seed(0)
    m = tiny()
    with torch.no_grad():  # zero-initialised PFMs pass no gradient to the prior: make them non-trivial
        for f in m.backbone.fusions:
            f.kernel.weight.normal_(0, 0.1)
    batch = {"blur": torch.rand(2, 3, 16, 16), "sharp": torch.rand(2, 3, 16, 16)}
    for name, patterns in STAGES.items():
        trainable = set(select_trainable(m, patterns, name))
        assert trainable == {n for n, _ in m.named_parameters() if any(re.fullmatch(p, n) for p in patterns)}
        m.zero_grad(set_to_none=True)
        m.training_loss({**batch, "stage": name, "stage_options": {}})["loss"].backward()
        got = {n for n, p in m.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
        if name == "stage1":
            assert any(n.startswith("sharp_encoder.") for n in got) and any(n.startswith("backbone.fusions") for n in got)
            assert not any(n.startswith("prior.") for n in got)
        if name == "stage2":  # sharp encoder frozen, backbone unused
            assert got and all(n.startswith("prior.") for n in got)
            assert any(n.startswith("prior.blur_encoder.") for n in got)
            assert any(n.startswith("prior.residual_estimator.") for n in got)
        if name == "stage3":
            assert not any(n.startswith("sharp_encoder.") for n in got)
            assert any(n.startswith("prior.") for n in got) and any(n.startswith("backbone.") for n in got)


def test_unknown_stage_is_config_error():
    with pytest.raises(ConfigError, match="phase"):
        tiny().training_loss({"blur": torch.rand(1, 3, 8, 8), "sharp": torch.rand(1, 3, 8, 8), "stage": "warmup"})


@pytest.mark.parametrize("backbone,prior", [("nafnet", "blur"), ("mimo-unet", "blur"), ("nafnet", "ddpm")])
def test_restore_shapes_and_save_load_round_trip(tmp_path, backbone, prior):
    torch.manual_seed(0)
    m = tiny(backbone=backbone, prior=prior).eval()
    with torch.no_grad():  # make the PFMs non-trivial so the round trip checks them too
        for p in m.parameters():
            p.add_(0.01 * torch.randn_like(p))
    x = torch.rand(1, 3, 21, 30)
    out = m.restore(x, generator=torch.Generator().manual_seed(3))
    assert out.shape == x.shape and 0 <= out.min() and out.max() <= 1
    m.save_pretrained(tmp_path / "ckpt")
    back = BlurDM.from_pretrained(tmp_path / "ckpt").eval()
    assert back.config.backbone == backbone and back.config.prior == prior
    torch.testing.assert_close(back.restore(x, generator=torch.Generator().manual_seed(3)), out)


def test_progressive_supervision_uses_subframes():
    torch.manual_seed(0)
    m = tiny()
    batch = {"blur": torch.rand(2, 3, 16, 16), "sharp": torch.rand(2, 3, 16, 16), "stage": "stage2"}
    plain = m.training_loss({**batch, "stage_options": {}})
    assert "progressive_l1" not in plain
    closed = m.training_loss({**batch, "stage_options": {"progressive": 1.0}})
    sub = m.training_loss({**batch, "subframes": torch.rand(2, 7, 3, 16, 16), "stage_options": {"progressive": 1.0}})
    assert closed["progressive_l1"] > 0 and sub["progressive_l1"] > 0
    assert not torch.isclose(closed["progressive_l1"], sub["progressive_l1"])


def test_stage2_loss_decreases():
    """The unrolled chain learns to map Z_blur to Z_sharp (fixed batch, a few Adam steps)."""
    torch.manual_seed(0)
    m = tiny()
    select_trainable(m, STAGES["stage2"], "stage2")
    opt = torch.optim.Adam([p for p in m.parameters() if p.requires_grad], lr=3e-3)
    batch = {"blur": torch.rand(2, 3, 16, 16), "sharp": torch.rand(2, 3, 16, 16), "stage": "stage2",
             "stage_options": {}}
    losses = []
    for _ in range(25):
        loss = m.training_loss(batch)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


@pytest.mark.parametrize("name", ["blurdm-tiny", "blurdm-mimo-unet-tiny", "blurdm-ddpm-tiny", "nafnet-tiny",
                                  "mimo-unet-tiny"])
def test_shipped_configs_build_and_stage_patterns_match(name):
    """Every tiny config parses, builds its model, and each stage's patterns select the documented parts."""
    from pathlib import Path

    from deblurdiff.methods import method_class
    from deblurdiff.train.config import load_config

    cfg = load_config(Path(__file__).resolve().parent.parent / "configs" / f"{name}.yaml")
    model = method_class(cfg.method)(**cfg.model)
    assert cfg.data.source == "shake" and cfg.data.mode == "image"
    if cfg.method != "blurdm":
        assert not cfg.stages
        return
    assert [s.name for s in cfg.stages] == ["stage1", "stage2", "stage3"]
    prefixes = {"stage1": {"sharp_encoder", "backbone"}, "stage2": {"prior"}, "stage3": {"backbone", "prior"}}
    for stage in cfg.stages:
        chosen = select_trainable(model, stage.trainable, stage.name)
        assert {n.split(".")[0] for n in chosen} == prefixes[stage.name]
        assert model._phase({"stage": stage.name, "stage_options": stage.loss}) == \
            {"stage1": "sharp", "stage2": "diffusion", "stage3": "joint"}[stage.name]
    # pairs share the backbone settings and the number of backbone steps
    partner = load_config(Path(__file__).resolve().parent.parent / "configs" /
                          ("mimo-unet-tiny.yaml" if cfg.model["backbone"] == "mimo-unet" else "nafnet-tiny.yaml"))
    assert cfg.stages[0].steps + cfg.stages[2].steps == partner.train.max_steps
    assert cfg.data == partner.data and cfg.train.batch_size == partner.train.batch_size
    for key, value in partner.model.items():
        if key != "fft_weight":
            assert cfg.model["backbone_options"][key] == value


def test_ddpm_prior_chain_returns_a_perfect_estimate():
    """The ablation's DDIM chain lands exactly on Z_0 when its estimator always predicts Z_0."""
    from deblurdiff.diffusion.blur_process import GaussianDiffusionPrior
    from deblurdiff.nn.latent_encoder import LatentEncoder

    prior = GaussianDiffusionPrior(LatentEncoder(width=8, dim=16, resblocks=1), dim=16, depth=2)
    target = torch.randn(2, 16)
    prior.noise_estimator.forward = lambda z_cond, t, z: target
    z0, chain, eps = prior(torch.rand(2, 3, 8, 8), return_chain=True)
    torch.testing.assert_close(z0, target)
    assert len(chain) == 6 and torch.equal(chain[0], eps)
    assert prior.alphas_cumprod[-1] < 0.05  # the chain starts from (almost) pure noise


def test_blur_prior_chain_with_oracle_estimators_recovers_sharp_latent():
    """BlurDM's sampler with oracle residual and noise estimates ends at the sharp latent exactly."""
    from deblurdiff.diffusion.blur_process import BlurDiffusionPrior
    from deblurdiff.nn.latent_encoder import LatentEncoder

    prior = BlurDiffusionPrior(LatentEncoder(width=8, dim=16, resblocks=1), dim=16, depth=2)
    s = prior.schedule
    blur = torch.rand(2, 3, 8, 8)
    z_blur = prior.blur_encoder(blur, blur).detach()
    z_sharp = torch.randn(2, 16)
    levels = [closed_form_blur(z_sharp, z_blur, s, t) for t in range(6)]

    def noise(z_cond, t_frac, z):  # the noise implied by the current state and level
        t = round(float(t_frac[0]) * 5)
        if s.beta_bar[t] == 0:  # official beta_1 = 0: level 1 is noise-free, eps_hat is not used
            return torch.zeros_like(z)
        return (z - levels[t]) / s.beta_bar[t]

    prior.noise_estimator.forward = noise
    prior.residual_estimator.forward = lambda z_cond, t_frac, z: blur_residual(
        levels[round(float(t_frac[0]) * 5) - 1], levels[round(float(t_frac[0]) * 5)], s, round(float(t_frac[0]) * 5))
    z0 = prior(blur)
    torch.testing.assert_close(z0, z_sharp, atol=1e-5, rtol=1e-5)


def test_batch_latent_norm_varies_across_images_and_stage2_keeps_the_frozen_statistics():
    """``latent_norm: batch``: every latent dimension varies between images at unit scale (a
    per-vector norm leaves a nearly constant vector: the reason for the option); the frozen sharp
    encoder gives stage 2 its targets with its running statistics and does not move them."""
    from deblurdiff.nn.latent_encoder import LatentEncoder

    torch.manual_seed(0)
    images = torch.rand(16, 3, 32, 32) * 2 - 1, torch.rand(16, 3, 32, 32) * 2 - 1
    spread = {}
    for norm in ("layer", "batch"):
        z = LatentEncoder(width=8, dim=16, resblocks=1, norm=norm)(*images).detach()
        spread[norm] = float(z.var(0).mean() / z.pow(2).mean())
    assert spread["layer"] < 0.05 and spread["batch"] > 0.9, spread
    m = tiny(latent_norm="batch")
    stats = m.sharp_encoder.norm.running_mean.clone(), m.sharp_encoder.norm.running_var.clone()
    batch = {"blur": torch.rand(4, 3, 16, 16), "sharp": torch.rand(4, 3, 16, 16), "stage": "stage2",
             "stage_options": {"progressive": 1.0}}
    m.train()
    m.training_loss(batch)
    assert torch.equal(m.sharp_encoder.norm.running_mean, stats[0])
    assert torch.equal(m.sharp_encoder.norm.running_var, stats[1])
    assert m.sharp_encoder.training  # the mode is restored
    m.training_loss({**batch, "stage": "stage1"})  # stage 1 trains it: its statistics move
    assert not torch.equal(m.sharp_encoder.norm.running_mean, stats[0])
    with pytest.raises(ConfigError, match="latent_norm"):
        tiny(latent_norm="group")
