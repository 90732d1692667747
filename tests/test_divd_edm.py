"""EDM preconditioning on the VP schedule (diffusion/preconditioning.py) and DIVD's prediction='edm'."""
import math

import pytest
import torch

from deblurdiff.diffusion import make_schedule, sample
from deblurdiff.diffusion.preconditioning import edm_coefficients, edm_denoise, edm_target
from deblurdiff.errors import ConfigError
from deblurdiff.methods.divd import DIVD

TINY = dict(width=8, channel_mult=(1, 2), blocks=(1, 1), windows=(2, 1), heads=(1, 1), frames=4)
ZERO = lambda inp: torch.zeros_like(inp)  # F == 0


def test_coefficients_equal_edm_in_the_variance_exploding_variable():
    """x_t / a = x0 + sigma n with sigma = s / a: the VP coefficients are EDM's, rescaled by a."""
    sd = 0.5
    for abar in (0.9999, 0.5, 1e-4):
        a, s = math.sqrt(abar), math.sqrt(1 - abar)
        sigma = s / a
        c_skip, c_out, c_in = edm_coefficients(a, s, sd)
        assert c_skip * a == pytest.approx(sd ** 2 / (sigma ** 2 + sd ** 2))          # c_skip_VE, on y = x_t / a
        assert c_out == pytest.approx(sigma * sd / math.sqrt(sigma ** 2 + sd ** 2))   # same c_out
        assert c_in * a == pytest.approx(1 / math.sqrt(sigma ** 2 + sd ** 2))         # c_in_VE, on y
    # limits: no noise -> x0_hat = x_t exactly; pure noise (zero terminal SNR) -> only F
    assert edm_coefficients(1.0, 0.0, sd) == (1.0, 0.0, 1 / sd)
    assert edm_coefficients(0.0, 1.0, sd) == (0.0, sd, 1.0)
    with pytest.raises(ConfigError):
        edm_coefficients(0.5, 0.5, 0.0)


def test_zero_network_skips_x_t_at_low_noise_and_returns_the_centre_at_high_noise():
    torch.manual_seed(0)
    sd = 0.5
    blur, x0 = torch.rand(2, 4, 3, 8, 8) * 2 - 1, torch.rand(2, 4, 3, 8, 8) * 2 - 1
    linear = make_schedule("linear", prediction_type="x0")
    t0 = torch.tensor([0, 0])
    x_t = linear.add_noise(x0, torch.randn_like(x0), t0)
    a0 = linear.alphas_cumprod[0].sqrt().item()
    out = edm_denoise(ZERO, x_t, t0, linear, sd, centre=blur)
    # s^2 / (a^2 sd^2) = 4e-4 of the centred input is shrunk at t = 0; nothing else differs
    torch.testing.assert_close(out, x_t / a0, atol=1e-3, rtol=0)
    assert (out - blur).abs().max() > 0.1  # not the centre
    zsnr = make_schedule("linear", prediction_type="x0", zero_terminal_snr=True)
    last = torch.tensor([999, 999])
    x_T = zsnr.add_noise(x0, torch.randn_like(x0), last)
    torch.testing.assert_close(edm_denoise(ZERO, x_T, last, zsnr, sd, centre=blur), blur)
    torch.testing.assert_close(edm_denoise(ZERO, x_T, last, zsnr, sd), torch.zeros_like(x0))  # uncentred: 0
    # the linear schedule's last step keeps a = 0.0064: the estimate is within 1% of the noise of the centre
    x_T = linear.add_noise(x0, torch.randn_like(x0), last)
    assert (edm_denoise(ZERO, x_T, last, linear, sd, centre=blur) - blur).abs().max() < 0.03


@pytest.mark.parametrize("sd", [0.5, 0.12])
def test_target_has_unit_variance_at_every_t_and_matches_the_weighted_x0_error(sd):
    """Residual data of std sd: E[F*^2] = 1 at every t (F = 0 gives a loss of 1, never 1e4 nor 1e-4),
    and ||F - F*||^2 = ||x0_hat - x0||^2 / c_out^2 (EDM's weight)."""
    torch.manual_seed(1)
    sched = make_schedule("linear", prediction_type="x0")
    blur = torch.rand(4096, 3) * 2 - 1
    x0 = blur + sd * torch.randn(4096, 3)
    for t in (0, 5, 20, 150, 500, 999):
        tt = torch.full((4096,), t)
        noise = torch.randn_like(x0)
        target = edm_target(x0, noise, tt, sched, sd, centre=blur)
        assert torch.isfinite(target).all()
        assert 0.9 < target.square().mean().item() < 1.1, (t, target.square().mean().item())
        x_t = sched.add_noise(x0, noise, tt)
        f = torch.randn_like(x0)
        x0_hat = edm_denoise(lambda inp: f, x_t, tt, sched, sd, centre=blur)
        a, s = sched._coefficients(tt, x0)
        _, c_out, _ = edm_coefficients(a, s, sd)
        torch.testing.assert_close((f - target).square(), (x0_hat - x0).square() / c_out ** 2, rtol=2e-3, atol=1e-4)
        # the perfect F reproduces x0
        torch.testing.assert_close(edm_denoise(lambda inp: target, x_t, tt, sched, sd, centre=blur), x0,
                                   atol=1e-5, rtol=0)


def test_network_input_has_unit_variance():
    torch.manual_seed(2)
    sd = 0.2
    sched = make_schedule("linear", prediction_type="x0")
    blur = torch.rand(8192, 3) * 2 - 1
    x0 = blur + sd * torch.randn_like(blur)
    for t in (0, 150, 999):
        tt = torch.full((8192,), t)
        seen = {}
        edm_denoise(lambda inp: seen.setdefault("x", inp) * 0, sched.add_noise(x0, torch.randn_like(x0), tt), tt,
                    sched, sd, centre=blur)
        assert 0.95 < seen["x"].std().item() < 1.05


def test_divd_edm_trains_samples_and_round_trips(tmp_path):
    torch.manual_seed(3)
    model = DIVD(**TINY, prediction="edm", residual=True, loss="l2", sigma_data=0.25)
    assert model.noise_schedule.prediction_type == "x0"  # samplers see an x0 model
    sharp = torch.rand(2, 4, 3, 8, 8)
    blur = sharp + 0.125 * torch.randn_like(sharp)  # residual std 0.25 in [-1, 1] = sigma_data
    for _ in range(2):
        out = model.training_loss({"blur": blur, "sharp": sharp})
        assert torch.isfinite(out["loss"]) and 0.3 < out["loss"].item() < 3
        out["loss"].backward()
    assert model.net.outro.weight.grad.abs().sum() > 0
    model.eval()
    clip = torch.rand(1, 4, 3, 8, 8)
    # F == 0 at init: a DDIM step from t = 999 to the end equals the Gaussian posterior mean, a bounded image
    for sampler in ("ddim", "dpmpp", "unipc"):
        y = model.restore(clip, steps=3, sampler=sampler, generator=torch.Generator().manual_seed(0))
        assert y.shape == clip.shape and torch.isfinite(y).all()
    torch.nn.init.normal_(model.net.outro.weight, std=0.05)
    model.save_pretrained(tmp_path)
    loaded = DIVD.from_pretrained(tmp_path).eval()
    assert loaded.config.prediction == "edm" and loaded.config.sigma_data == 0.25
    run = lambda m: m.restore(clip, steps=2, generator=torch.Generator().manual_seed(7))
    torch.testing.assert_close(run(model), run(loaded))


def test_one_step_x0_of_a_zero_edm_net_beats_a_zero_residual_net_at_small_t():
    """The point of the change: untrained, the EDM net's one-step estimate at small t is x_t / a
    (near the truth); the residual-over-blur x0 net returns the blurred frame."""
    torch.manual_seed(4)
    sharp = torch.rand(1, 4, 3, 8, 8)
    blur = (sharp + sharp.roll(1, dims=-1) + sharp.roll(2, dims=-1)) / 3
    edm, old = DIVD(**TINY, prediction="edm"), DIVD(**TINY)
    x0, cond = sharp * 2 - 1, blur * 2 - 1
    t = torch.tensor([5])
    x_t = edm.noise_schedule.add_noise(x0, torch.randn_like(x0), t)
    with torch.no_grad():
        err = lambda m: (m.predict(x_t, cond, t) - x0).square().mean().item()
        assert err(edm) < 0.1 * err(old)


def test_terminal_share_stage_option_trains_the_last_timestep():
    """loss: {terminal_share: 1} trains every clip where a one-step sampler reads the net."""
    model = DIVD(**TINY, prediction="edm", loss="l2")
    seen, forward = [], model.net.forward_clip
    model.net.forward_clip = lambda x, cond, t: seen.append(t.clone()) or forward(x, cond, t)
    batch = {"blur": torch.rand(4, 4, 3, 8, 8), "sharp": torch.rand(4, 4, 3, 8, 8)}
    model.training_loss(dict(batch, stage_options={"terminal_share": 1.0}))
    model.training_loss(batch)
    last = model.noise_schedule.num_train_timesteps - 1
    assert bool((seen[0] == last).all()) and not bool((seen[1] == last).all())


def test_config_errors():
    with pytest.raises(ConfigError, match="prediction"):
        DIVD(**TINY, prediction="edm2")
    with pytest.raises(ConfigError, match="sigma_data"):
        DIVD(**TINY, prediction="edm", sigma_data=0)
