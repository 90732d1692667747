"""DPS on a linear-Gaussian problem whose posterior is known in closed form.

Prior x ~ N(mu, Sigma) over F=3 "frames" of 2-vectors; measurement y = mean over frames + noise
(sigma_n = 0.05). With the exact prior denoiser, DPS samples should centre near the analytic
posterior mean and re-measure to y within the noise level.
"""
import pytest
import torch

from deblurdiff.diffusion import TemporalAverage, dps_sample, gaussian_denoiser, make_schedule, residual_norms
from deblurdiff.errors import ConfigError, InputError

FRAMES, DIM, NOISE = 3, 2, 0.05


@pytest.fixture(scope="module")
def problem():
    gen = torch.Generator().manual_seed(0)
    n = FRAMES * DIM
    root = torch.randn(n, n, generator=gen, dtype=torch.float64)
    cov = root @ root.T / n + 0.05 * torch.eye(n, dtype=torch.float64)
    mean = torch.randn(n, generator=gen, dtype=torch.float64) * 0.3
    avg = torch.cat([torch.eye(DIM, dtype=torch.float64) / FRAMES] * FRAMES, dim=1)  # (DIM, n): mean of frames
    x_true = mean + torch.linalg.cholesky(cov) @ torch.randn(n, generator=gen, dtype=torch.float64)
    y = avg @ x_true + NOISE * torch.randn(DIM, generator=gen, dtype=torch.float64)
    gain = cov @ avg.T @ torch.linalg.inv(avg @ cov @ avg.T + NOISE ** 2 * torch.eye(DIM, dtype=torch.float64))
    post_mean = mean + gain @ (y - avg @ mean)
    schedule = make_schedule("linear")
    return dict(mean=mean, cov=cov, y=y, post_mean=post_mean, schedule=schedule,
                denoiser=gaussian_denoiser(schedule, mean, cov))


def run(problem, n, zeta, norm="l2", steps=100, seed=0, y=None):
    y = problem["y"].float().expand(n, DIM) if y is None else y
    return dps_sample(problem["denoiser"], TemporalAverage(dim=1), y, (n, FRAMES, DIM), problem["schedule"],
                      steps=steps, zeta=zeta, norm=norm, generator=torch.Generator().manual_seed(seed))


def test_dps_approaches_posterior_mean_and_fits_measurement(problem):
    samples = run(problem, 256, zeta=0.3).double()
    flat = samples.flatten(1)
    prior_gap = (problem["mean"] - problem["post_mean"]).norm().item()
    # Measured: 0.076 against a prior-to-posterior distance of 2.85 (MC error of the mean ~0.1).
    assert (flat.mean(0) - problem["post_mean"]).norm().item() < 0.1 * prior_gap
    remeasured = residual_norms(problem["y"] - samples.mean(dim=1))
    noise_level = NOISE * DIM ** 0.5
    assert remeasured.mean().item() < 1.5 * noise_level  # measured 0.047 vs noise level 0.071
    # Without guidance (zeta = 0) the same sampler just draws the prior: far from y.
    unguided = run(problem, 256, zeta=0.0).double()
    assert residual_norms(problem["y"] - unguided.mean(dim=1)).mean().item() > 10 * noise_level


def test_normalized_norm_is_twice_the_l2_step(problem):
    """zeta/||r|| * grad ||r||^2 == 2 zeta grad ||r||: the two options agree at doubled zeta."""
    a = run(problem, 8, zeta=0.2, norm="normalized", steps=20)
    b = run(problem, 8, zeta=0.4, norm="l2", steps=20)
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    c = run(problem, 8, zeta=0.02, norm="l2_squared", steps=20)
    assert not torch.allclose(c, b)


def test_per_sample_norms(problem):
    """Changing sample 1's measurement leaves sample 0 untouched (a batch-global norm would not)."""
    y = problem["y"].float()
    base = run(problem, 2, zeta=0.5, steps=30, y=torch.stack([y, y]))
    moved = run(problem, 2, zeta=0.5, steps=30, y=torch.stack([y, y + 3.0]))
    torch.testing.assert_close(moved[0], base[0], rtol=0, atol=1e-6)
    assert (moved[1] - base[1]).abs().max().item() > 0.1


def test_dps_seeded_and_validated(problem):
    assert torch.equal(run(problem, 4, 0.3, steps=10, seed=3), run(problem, 4, 0.3, steps=10, seed=3))
    seen = []
    dps_sample(problem["denoiser"], TemporalAverage(1), problem["y"].float().expand(2, DIM), (2, FRAMES, DIM),
               problem["schedule"], steps=5, zeta=lambda t: 0.1 * (t > 500),
               callback=lambda i, t, x, norms: seen.append((t, norms.shape)))
    assert [t for t, _ in seen] == [999, 799, 599, 399, 199] and seen[0][1] == (2,)
    with pytest.raises(InputError, match="batch"):
        run(problem, 3, 0.3, steps=5, y=problem["y"].float().expand(2, DIM))
    with pytest.raises(InputError, match="x_T"):
        dps_sample(problem["denoiser"], TemporalAverage(1), problem["y"].float().expand(2, DIM), (2, FRAMES, DIM),
                   problem["schedule"], steps=5, x_T=torch.zeros(2, DIM))
    with pytest.raises(ConfigError, match="norm"):
        run(problem, 2, 0.3, norm="l1", steps=5)
    # A step that overshoots grows the sample geometrically: refused with the fix, not returned as NaN.
    with pytest.raises(ConfigError, match="diverged.*lower zeta"):
        run(problem, 2, 1e6, norm="l2_squared", steps=50)


def test_dps_through_a_decoder(problem):
    """Gradients flow through DecodedTemporalAverage: an affine per-frame decoder (x2 + 0.1 after
    the latent_std rescale) on latent clips (B, F, 1, 1, DIM); the decoded average must fit y."""
    from deblurdiff.diffusion import DecodedTemporalAverage

    class AffineDecoder(torch.nn.Module):  # a 1x1 "conv" as einsum: Conv2d is slow on 1x2 images on CPU
        def __init__(self):
            super().__init__()
            self.weight = torch.nn.Parameter(torch.full((1, 1), 2.0))

        def forward(self, z):
            return torch.einsum("oc,bchw->bohw", self.weight, z) + 0.1

    decoder = AffineDecoder()
    operator = DecodedTemporalAverage(decoder, frames_dim=1, latent_std=0.5)
    latent_denoiser = problem["denoiser"]  # prior over the 6 latent numbers of a clip
    y = problem["y"].float().view(1, 1, 1, DIM).expand(64, 1, 1, DIM)
    z = dps_sample(latent_denoiser, operator, y, (64, FRAMES, 1, 1, DIM), problem["schedule"], steps=100,
                   zeta=0.3, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        remeasured = residual_norms(y - operator(z))
    assert remeasured.mean().item() < 1.5 * NOISE * DIM ** 0.5


def test_zeta_schedules_at_known_timesteps():
    from deblurdiff.diffusion import zeta_schedule

    const = zeta_schedule("constant", 1.5, 50, 1000)
    assert const(999) == const(0) == 1.5
    stride = zeta_schedule("stride", 1.5, 50, 1000)
    assert stride(999) == stride(0) == pytest.approx(30.0)  # 1.5 * 1000 / 50
    ramp = zeta_schedule("stride_ramp", 1.5, 50, 1000)
    assert ramp(0) == pytest.approx(60.0) and ramp(500) == pytest.approx(30.0) and ramp(999) == pytest.approx(0.06)
    # both strided schedules keep the summed guidance of the 1000-step constant chain
    from deblurdiff.diffusion import make_scheduler

    ts = [int(t) for t in make_scheduler(make_schedule("linear"), "ddpm", 50, timestep_spacing="linspace").timesteps]
    assert sum(stride(t) for t in ts) == pytest.approx(1.5 * 1000)
    assert sum(ramp(t) for t in ts) == pytest.approx(1.5 * 1000, rel=0.01)
    with pytest.raises(ConfigError, match="zeta_schedule"):
        zeta_schedule("cosine", 1.5, 50, 1000)
    with pytest.raises(ConfigError, match="zeta"):
        zeta_schedule("constant", -1.0, 50, 1000)


def test_final_data_consistency_steps_fit_the_measurement(problem):
    """dc_steps move the result towards y without the prior; dc_steps=0 is the plain chain."""
    y = problem["y"].float().expand(16, DIM)
    common = dict(steps=10, zeta=0.05, generator=None)

    def sample(**kw):
        return dps_sample(problem["denoiser"], TemporalAverage(dim=1), y, (16, FRAMES, DIM), problem["schedule"],
                          **dict(common, generator=torch.Generator().manual_seed(0), **kw))

    plain, zero = sample(), sample(dc_steps=0)
    assert torch.equal(plain, zero)
    fitted = sample(dc_steps=20, dc_zeta=0.5)
    before = residual_norms(y - plain.mean(dim=1)).mean().item()
    after = residual_norms(y - fitted.mean(dim=1)).mean().item()
    assert after < 0.2 * before, (before, after)
    with pytest.raises(ConfigError, match="dc_steps"):
        sample(dc_steps=-1)
