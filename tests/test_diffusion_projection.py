"""DDNM projection sampling on problems whose posterior is known.

Prior x ~ N(m, sigma^2 I) over F frames of D numbers, measurement y = mean over frames (no
noise). For an isotropic prior the measured part (each coordinate's frame mean) and the unseen
part (the deviations from it) are independent, so the exact posterior is: frame mean = y, and
deviations distributed as under the prior, variance sigma^2 (1 - 1/F) per number around
m - mean_f(m). DDNM with the exact denoiser must reproduce that.
"""
import pytest
import torch

from deblurdiff.diffusion import gaussian_denoiser, make_schedule, mean_projection, projected_denoiser, sample

FRAMES, DIM, SIGMA = 4, 3, 0.7


@pytest.mark.parametrize("prediction", ["eps", "v"])
def test_identity_projection_returns_the_prediction(prediction):
    schedule = make_schedule("linear", prediction_type=prediction)
    gen = torch.Generator().manual_seed(0)
    x_t = torch.randn(5, FRAMES, DIM, generator=gen, dtype=torch.float64)
    pred = torch.randn(5, FRAMES, DIM, generator=gen, dtype=torch.float64)
    t = torch.tensor([0, 10, 300, 700, 999])
    wrapped = projected_denoiser(lambda x, _t: pred, schedule, lambda x0: x0)
    torch.testing.assert_close(wrapped(x_t, t), pred)


def test_mean_projection_is_the_nearest_point_that_meets_y():
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(2, FRAMES, DIM, generator=gen, dtype=torch.float64)
    y = torch.randn(2, DIM, generator=gen, dtype=torch.float64)
    project = mean_projection(y)
    p = project(x)
    torch.testing.assert_close(p.mean(dim=1), y)
    torch.testing.assert_close(project(p), p)  # idempotent
    # the change is the same on every frame: orthogonal to every x' with the same frame mean
    change = p - x
    torch.testing.assert_close(change, change[:, :1].expand_as(change))


@pytest.mark.parametrize("prediction, steps", [("eps", 1000), ("v", 50)])
def test_ddnm_samples_the_posterior_of_an_isotropic_prior(prediction, steps):
    """Frame mean exactly y per sample; the deviations are the prior sampler's own: for the same
    noise they equal those of the unguided chain (the two parts decouple), and with 1000 steps
    (a strided chain's ancestral steps lose variance: 17% at 50) their spread is the posterior's."""
    schedule = make_schedule("linear", prediction_type=prediction)
    gen = torch.Generator().manual_seed(2)
    n = FRAMES * DIM
    prior_mean = torch.randn(n, generator=gen, dtype=torch.float64)
    denoiser = gaussian_denoiser(schedule, prior_mean, SIGMA ** 2 * torch.eye(n, dtype=torch.float64))
    y = torch.randn(DIM, generator=gen, dtype=torch.float64)
    count = 1000
    wrapped = projected_denoiser(denoiser, schedule, mean_projection(y.expand(count, DIM).float()))
    draw = lambda d, steps: sample(d, (count, FRAMES, DIM), schedule, steps, sampler="ddpm",
                                   generator=torch.Generator().manual_seed(3), timestep_spacing="linspace").double()
    deviation = lambda x: x - x.mean(dim=1, keepdim=True)
    x = draw(wrapped, steps)
    torch.testing.assert_close(x.mean(dim=1), y.expand(count, DIM), atol=1e-5, rtol=0)  # exact, per sample
    torch.testing.assert_close(deviation(x), deviation(draw(denoiser, steps)), atol=1e-5, rtol=0)
    if steps < 1000:
        return
    m = prior_mean.view(FRAMES, DIM)
    assert (deviation(x).mean(dim=0) - (m - m.mean(dim=0, keepdim=True))).abs().max() < 0.085  # 4 sigma
    variance = deviation(x).var(dim=0).mean()
    assert abs(float(variance) / (SIGMA ** 2 * (1 - 1 / FRAMES)) - 1) < 0.06
