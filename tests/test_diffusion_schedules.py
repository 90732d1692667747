"""Schedules, parameterisation conversions, training targets and loss weights."""
import pytest
import torch
from diffusers import DDPMScheduler

from deblurdiff.diffusion import (
    eps_from_v, eps_from_x0, make_schedule, v_from_x0_eps, x0_from_eps, x0_from_v,
)
from deblurdiff.errors import ConfigError


@pytest.mark.parametrize("kind,diffusers_name", [("linear", "linear"), ("scaled_linear", "scaled_linear"),
                                                 ("cosine", "squaredcos_cap_v2")])
def test_betas_match_diffusers(kind, diffusers_name):
    sched = make_schedule(kind, num_train_timesteps=1000, beta_start=1e-4 if kind == "linear" else 8.5e-4,
                          beta_end=0.02 if kind == "linear" else 0.012)
    ref = DDPMScheduler(num_train_timesteps=1000, beta_schedule=diffusers_name,
                        beta_start=1e-4 if kind == "linear" else 8.5e-4, beta_end=0.02 if kind == "linear" else 0.012)
    assert sched.betas.dtype == torch.float64 and sched.num_train_timesteps == 1000
    torch.testing.assert_close(sched.betas.float(), ref.betas, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(sched.alphas_cumprod.float(), ref.alphas_cumprod, rtol=1e-4, atol=1e-7)
    assert bool((sched.alphas_cumprod[1:] < sched.alphas_cumprod[:-1]).all())  # monotone decreasing


def test_zero_terminal_snr():
    plain = make_schedule("linear", prediction_type="v")
    zsnr = make_schedule("linear", prediction_type="v", zero_terminal_snr=True)
    assert zsnr.alphas_cumprod[-1].item() == 0.0
    assert plain.alphas_cumprod[-1].item() > 0.0
    # Lin et al.: the rescale keeps the first step's signal level and keeps the schedule monotone.
    assert zsnr.alphas_cumprod[0].item() == pytest.approx(plain.alphas_cumprod[0].item(), rel=1e-12)
    assert bool((zsnr.alphas_cumprod[1:] < zsnr.alphas_cumprod[:-1]).all())
    assert zsnr.snr(999).item() == 0.0
    with pytest.raises(ConfigError, match="prediction_type"):
        make_schedule("linear", prediction_type="eps", zero_terminal_snr=True)


def test_bad_options_raise_config_errors():
    with pytest.raises(ConfigError, match="kind"):
        make_schedule("quadratic")
    with pytest.raises(ConfigError, match="prediction_type"):
        make_schedule(prediction_type="score")
    with pytest.raises(ConfigError, match="beta"):
        make_schedule(beta_start=0.5, beta_end=1.5)
    with pytest.raises(ConfigError, match="out of range"):
        make_schedule().add_noise(torch.zeros(1, 2), torch.zeros(1, 2), torch.tensor([1000]))


def test_add_noise_and_v_target_match_diffusers():
    gen = torch.Generator().manual_seed(0)
    x0, noise = torch.randn(6, 3, 4, 4, generator=gen), torch.randn(6, 3, 4, 4, generator=gen)
    t = torch.tensor([0, 1, 10, 500, 998, 999])
    ref = DDPMScheduler(num_train_timesteps=1000, prediction_type="v_prediction")
    sched = make_schedule("linear", prediction_type="v")
    torch.testing.assert_close(sched.add_noise(x0, noise, t), ref.add_noise(x0, noise, t), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(sched.target(x0, noise, t), ref.get_velocity(x0, noise, t), rtol=1e-4, atol=1e-5)
    assert torch.equal(make_schedule(prediction_type="eps").target(x0, noise, t), noise)
    assert torch.equal(make_schedule(prediction_type="x0").target(x0, noise, t), x0)


@pytest.mark.parametrize("prediction_type", ["eps", "v", "x0"])
@pytest.mark.parametrize("kind", ["linear", "cosine"])
def test_conversions_round_trip(prediction_type, kind):
    sched = make_schedule(kind, prediction_type=prediction_type)
    gen = torch.Generator().manual_seed(1)
    x0 = torch.randn(5, 2, 3, 3, generator=gen, dtype=torch.float64)
    eps = torch.randn(5, 2, 3, 3, generator=gen, dtype=torch.float64)
    t = torch.tensor([0, 3, 250, 700, 999])
    x_t = sched.add_noise(x0, eps, t)
    pred = sched.target(x0, eps, t)
    torch.testing.assert_close(sched.to_x0(pred, x_t, t), x0, rtol=0, atol=1e-6)
    torch.testing.assert_close(sched.to_eps(pred, x_t, t), eps, rtol=0, atol=1e-6)
    a, s = sched.alphas_cumprod[t].sqrt().view(-1, 1, 1, 1), (1 - sched.alphas_cumprod[t]).sqrt().view(-1, 1, 1, 1)
    torch.testing.assert_close(sched.to_v(pred, x_t, t), a * eps - s * x0, rtol=0, atol=1e-6)
    torch.testing.assert_close(sched.from_x0(sched.to_x0(pred, x_t, t), x_t, t), pred, rtol=0, atol=1e-6)
    torch.testing.assert_close(sched.from_eps(sched.to_eps(pred, x_t, t), x_t, t), pred, rtol=0, atol=1e-6)


def test_standalone_conversions_are_mutually_consistent():
    gen = torch.Generator().manual_seed(2)
    x0, eps = torch.randn(100, generator=gen, dtype=torch.float64), torch.randn(100, generator=gen, dtype=torch.float64)
    abar = torch.rand(100, generator=gen, dtype=torch.float64) * 0.98 + 0.01
    a, s = abar.sqrt(), (1 - abar).sqrt()
    x_t = a * x0 + s * eps
    v = v_from_x0_eps(x0, eps, a, s)
    torch.testing.assert_close(x0_from_v(v, x_t, a, s), x0, rtol=0, atol=1e-6)
    torch.testing.assert_close(eps_from_v(v, x_t, a, s), eps, rtol=0, atol=1e-6)
    torch.testing.assert_close(x0_from_eps(eps, x_t, a, s), x0, rtol=0, atol=1e-6)
    torch.testing.assert_close(eps_from_x0(x0, x_t, a, s), eps, rtol=0, atol=1e-6)


def test_v_conversions_finite_at_zero_terminal_snr():
    sched = make_schedule("linear", prediction_type="v", zero_terminal_snr=True)
    x0, eps = torch.randn(2, 4), torch.randn(2, 4)
    t = torch.tensor([999, 999])
    x_t = sched.add_noise(x0, eps, t)
    torch.testing.assert_close(x_t, eps)  # pure noise at the last step
    pred = sched.target(x0, eps, t)
    torch.testing.assert_close(sched.to_x0(pred, x_t, t), x0, atol=1e-6, rtol=0)


@pytest.mark.parametrize("prediction_type", ["eps", "v", "x0"])
def test_min_snr_weight_equals_clipped_snr_times_x0_error(prediction_type):
    """Min-SNR (Hang et al.): weight * ||pred error||^2 == min(SNR, gamma) * ||x0 error||^2."""
    sched = make_schedule("linear", prediction_type=prediction_type)
    gen = torch.Generator().manual_seed(3)
    x0, eps = torch.randn(4, 8, generator=gen, dtype=torch.float64), torch.randn(4, 8, generator=gen, dtype=torch.float64)
    t = torch.tensor([1, 40, 300, 900])
    x_t = sched.add_noise(x0, eps, t)
    target = sched.target(x0, eps, t)
    pred = target + 0.1 * torch.randn(4, 8, generator=gen, dtype=torch.float64)
    weight = sched.loss_weight(t, "min_snr", gamma=5.0).double()
    lhs = weight * (pred - target).square().sum(1)
    rhs = sched.snr(t).clamp(max=5.0) * (sched.to_x0(pred, x_t, t) - x0).square().sum(1)
    torch.testing.assert_close(lhs, rhs, rtol=1e-5, atol=1e-9)
    assert torch.equal(sched.loss_weight(t, "uniform"), torch.ones(4))
    with pytest.raises(ConfigError):
        sched.loss_weight(t, "p2")


def test_loss_weight_finite_at_extremes():
    zsnr = make_schedule("linear", prediction_type="v", zero_terminal_snr=True)
    assert bool(torch.isfinite(zsnr.loss_weight(torch.tensor([0, 999]))).all())
    clean_start = make_schedule("linear", num_train_timesteps=5, beta_start=0.0, beta_end=0.02)  # BlurDM-style
    assert torch.isinf(clean_start.snr(0))
    assert bool(torch.isfinite(clean_start.loss_weight(torch.arange(5))).all())


def test_sample_timesteps_seeded_and_in_range():
    sched = make_schedule(num_train_timesteps=50)
    t1 = sched.sample_timesteps(4096, torch.Generator().manual_seed(7))
    t2 = sched.sample_timesteps(4096, torch.Generator().manual_seed(7))
    assert t1.dtype == torch.int64 and t1.shape == (4096,)
    assert torch.equal(t1, t2)
    assert int(t1.min()) == 0 and int(t1.max()) == 49
    assert len(torch.unique(t1)) == 50


def test_sample_timesteps_terminal_share():
    """A terminal share puts that share of the draws at the last timestep; 0 draws exactly as before."""
    sched = make_schedule(num_train_timesteps=50)
    plain = sched.sample_timesteps(4096, torch.Generator().manual_seed(3))
    assert torch.equal(sched.sample_timesteps(4096, torch.Generator().manual_seed(3), terminal_share=0.0), plain)
    assert bool((sched.sample_timesteps(64, torch.Generator().manual_seed(3), terminal_share=1.0) == 49).all())
    half = sched.sample_timesteps(4096, torch.Generator().manual_seed(3), terminal_share=0.5)
    share = float((half == 49).float().mean())
    assert 0.47 < share < 0.54          # 0.5 + the uniform draws' own 1/50 of the other half
    assert int(half.min()) == 0 and len(torch.unique(half)) == 50
    with pytest.raises(ConfigError, match="terminal_share"):
        sched.sample_timesteps(4, terminal_share=1.5)


def test_from_x0_where_alpha_bar_is_one():
    """A schedule starting at beta = 0: x_t = x0 at t = 0, any eps fits; from_x0 must not give 0/0."""
    for prediction_type in ("eps", "v"):
        sched = make_schedule("linear", num_train_timesteps=5, beta_start=0.0, prediction_type=prediction_type)
        x0 = torch.randn(2, 3)
        pred = sched.from_x0(x0, x0, torch.tensor([0, 0]))
        assert bool(torch.isfinite(pred).all())
        torch.testing.assert_close(sched.to_x0(pred, x0, torch.tensor([0, 0])), x0)
