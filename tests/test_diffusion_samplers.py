"""Samplers against the analytically optimal denoiser of a Gaussian, seeding, options.

For x0 ~ N(mu, Sigma) the optimal denoiser is affine in x_t, so every deterministic sampler is an
affine map x_T -> M x_T + b and its output law is exactly N(b, M M^T): running it on the d+1
starting points {0, e_1, ..., e_d} measures its covariance without Monte-Carlo error. Stochastic
samplers (DDPM) are checked by Monte Carlo with a tolerance that covers its sampling error.
"""
import pytest
import torch

from deblurdiff.diffusion import gaussian_denoiser, make_schedule, make_scheduler, sample
from deblurdiff.errors import ConfigError, InputError

DIM = 3


@pytest.fixture(scope="module")
def gaussian():
    gen = torch.Generator().manual_seed(0)
    root = torch.randn(DIM, DIM, generator=gen, dtype=torch.float64)
    cov = root @ root.T * 0.3 + 0.1 * torch.eye(DIM, dtype=torch.float64)  # eigenvalues ~0.12 .. 3.2
    mean = torch.tensor([0.5, -0.3, 0.2], dtype=torch.float64)
    return mean, cov


def exact_law(denoiser, schedule, steps, sampler):
    """(mean, covariance) of a deterministic sampler's output, from the affine map it implements."""
    starts = torch.cat([torch.zeros(1, DIM), torch.eye(DIM)]).double()
    out = sample(denoiser, starts.shape, schedule, steps, sampler=sampler, x_T=starts, dtype=torch.float64)
    offset, linear = out[0], (out[1:] - out[0]).T
    return offset, linear @ linear.T


def rel_err(cov, ref):
    return ((cov - ref).norm() / ref.norm()).item()


# Tolerances: the discretisation errors measured for these settings are DDIM-50 0.061,
# DPM-Solver++-20 0.013, UniPC-20 0.010 (linear schedule); about 1.3x headroom each. The mean is
# off by sqrt(alpha_bar_T) * mu ~ 0.004 without zero terminal SNR (x_T is not quite N(0, I)).
@pytest.mark.parametrize("sampler,steps,cov_tol", [("ddim", 50, 0.08), ("dpmpp", 20, 0.02), ("unipc", 20, 0.015)])
@pytest.mark.parametrize("prediction_type,zero_snr", [("eps", False), ("v", True), ("x0", False)])
def test_deterministic_samplers_reproduce_gaussian(gaussian, sampler, steps, cov_tol, prediction_type, zero_snr):
    mean, cov = gaussian
    schedule = make_schedule("linear", prediction_type=prediction_type, zero_terminal_snr=zero_snr)
    out_mean, out_cov = exact_law(gaussian_denoiser(schedule, mean, cov), schedule, steps, sampler)
    assert (out_mean - mean).norm().item() < 0.01
    assert rel_err(out_cov, cov) < cov_tol


def test_more_steps_converge(gaussian):
    """DDIM is first order (error ~ 1/steps); DPM-Solver++ 2M second order."""
    mean, cov = gaussian
    schedule = make_schedule("cosine")
    den = gaussian_denoiser(schedule, mean, cov)
    ddim = [rel_err(exact_law(den, schedule, n, "ddim")[1], cov) for n in (10, 20, 40)]
    assert ddim[0] > ddim[1] > ddim[2] and ddim[0] / ddim[2] > 3.0
    dpm = [rel_err(exact_law(den, schedule, n, "dpmpp")[1], cov) for n in (10, 40)]
    assert dpm[0] / dpm[1] > 8.0


def test_ddpm_monte_carlo(gaussian):
    """Ancestral DDPM (100 strided steps): measured bias 0.066, MC error ~0.03 at N=3000."""
    mean, cov = gaussian
    schedule = make_schedule("linear")
    x = sample(gaussian_denoiser(schedule, mean, cov), (3000, DIM), schedule, 100, sampler="ddpm",
               generator=torch.Generator().manual_seed(0)).double()
    assert (x.mean(0) - mean).norm().item() < 0.1
    assert rel_err(torch.cov(x.T), cov) < 0.15
    # Without the ancestral noise the samples would collapse towards the mean.
    assert torch.linalg.eigvalsh(torch.cov(x.T)).min().item() > 0.5 * torch.linalg.eigvalsh(cov).min().item()


@pytest.mark.parametrize("sampler,eta", [("ddim", 0.0), ("ddim", 1.0), ("dpmpp", 0.0), ("ddpm", 0.0), ("unipc", 0.0)])
def test_same_seed_bit_identical(sampler, eta):
    schedule = make_schedule("scaled_linear", beta_start=8.5e-4, beta_end=0.012, prediction_type="v")
    den = gaussian_denoiser(schedule, torch.zeros(16), torch.eye(16) * 0.5)
    run = lambda seed: sample(den, (2, 1, 4, 4), schedule, 8, sampler=sampler, eta=eta,
                              generator=torch.Generator().manual_seed(seed))
    first, second, other = run(5), run(5), run(6)
    assert torch.equal(first, second)
    assert not torch.equal(first, other)
    assert first.shape == (2, 1, 4, 4) and first.dtype == torch.float32


def test_image_shaped_isotropic_prior_variance():
    """Per-pixel N(0, 1) data on (B, C, H, W) tensors: DPM-Solver++ keeps the variance (its
    exact 20-step output variance is 1.0027; MC error at 8192 values ~1.6%)."""
    schedule = make_schedule("linear")
    den = gaussian_denoiser(schedule, torch.zeros(2 * 8 * 8), torch.eye(128))
    x = sample(den, (64, 2, 8, 8), schedule, 20, sampler="dpmpp", generator=torch.Generator().manual_seed(1))
    assert x.var().item() == pytest.approx(1.0, rel=0.05)
    assert abs(x.mean().item()) < 0.02


def test_progress_bar_and_callback(capsys):
    schedule = make_schedule("linear", num_train_timesteps=100)
    den = gaussian_denoiser(schedule, torch.zeros(2), torch.eye(2))
    seen = []
    sample(den, (3, 2), schedule, 4, progress=True, generator=torch.Generator().manual_seed(0),
           callback=lambda i, t, x: seen.append((i, t)))
    assert [t for _, t in seen] == [99, 74, 49, 24]  # trailing spacing starts at T-1
    assert "ddim sampling" in capsys.readouterr().err


def test_scheduler_uses_schedule_betas():
    schedule = make_schedule("cosine", num_train_timesteps=200, prediction_type="v", zero_terminal_snr=True)
    for name in ("ddim", "ddpm", "dpmpp", "unipc"):
        scheduler = make_scheduler(schedule, name, 10)
        assert scheduler.config.prediction_type == "v_prediction"
        n = 199 if name in ("dpmpp", "unipc") else 200  # those clamp the terminal alpha_bar to 2**-24
        torch.testing.assert_close(scheduler.alphas_cumprod[:n].double(), schedule.alphas_cumprod[:n], atol=1e-6, rtol=1e-4)
        assert int(scheduler.timesteps[0]) == 199


def test_bad_arguments():
    schedule = make_schedule(num_train_timesteps=50)
    den = gaussian_denoiser(schedule, torch.zeros(2), torch.eye(2))
    with pytest.raises(ConfigError, match="sampler"):
        sample(den, (1, 2), schedule, 5, sampler="euler_a")
    with pytest.raises(ConfigError, match="steps"):
        sample(den, (1, 2), schedule, 51)
    with pytest.raises(InputError, match="x_T"):
        sample(den, (1, 2), schedule, 5, x_T=torch.zeros(2, 2))


def test_schedule_starting_without_noise():
    """BlurDM-style betas linspace(0, 0.02, 5): alpha_bar_0 = 1. Strided sampling works and
    stays finite; visiting t = 0 is refused with an explanation instead of returning NaNs."""
    for prediction_type in ("eps", "v", "x0"):
        schedule = make_schedule("linear", num_train_timesteps=5, beta_start=0.0, beta_end=0.02,
                                 prediction_type=prediction_type)
        den = gaussian_denoiser(schedule, torch.zeros(2), torch.eye(2))
        for name in ("ddim", "dpmpp", "ddpm", "unipc"):
            out = sample(den, (4, 2), schedule, 3, sampler=name, generator=torch.Generator().manual_seed(0))
            assert bool(torch.isfinite(out).all())
    with pytest.raises(ConfigError, match="no noise"):
        sample(den, (4, 2), schedule, 5)


def test_zero_terminal_snr_ancestral_sampling_is_finite():
    schedule = make_schedule("linear", prediction_type="v", zero_terminal_snr=True)
    den = gaussian_denoiser(schedule, torch.ones(2), torch.eye(2) * 0.5)
    for name, eta in (("ddpm", 0.0), ("ddim", 1.0)):
        out = sample(den, (512, 2), schedule, 20, sampler=name, eta=eta, generator=torch.Generator().manual_seed(0))
        assert bool(torch.isfinite(out).all())
        assert (out.mean(0) - 1.0).abs().max().item() < 0.15
