"""Classifier-free guidance wrapper."""
import pytest
import torch

from deblurdiff.diffusion import cfg_denoiser, make_schedule, sample
from deblurdiff.errors import ConfigError


class ToyConditionalModel(torch.nn.Module):
    """A non-linear model of (x, t, cond) that records the batch sizes it was called with."""

    def __init__(self):
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(4 + 4 + 1, 16), torch.nn.Tanh(), torch.nn.Linear(16, 4))
        self.batches = []

    def forward(self, x, t, cond):
        self.batches.append(x.shape[0])
        c = cond["emb"] if isinstance(cond, dict) else cond
        return self.net(torch.cat([x, c, t.float().unsqueeze(1) / 1000], dim=1))


@pytest.fixture
def setup():
    torch.manual_seed(0)
    model = ToyConditionalModel()
    x, t = torch.randn(3, 4), torch.tensor([10, 500, 900])
    cond, uncond = torch.randn(3, 4), torch.zeros(3, 4)
    return model, x, t, cond, uncond


@torch.no_grad()
def test_scale_one_is_the_conditional_prediction(setup):
    model, x, t, cond, uncond = setup
    reference = model(x, t, cond)
    assert torch.equal(cfg_denoiser(model, cond, uncond, 1.0)(x, t), reference)
    # Through the batched [cond; uncond] path too (equal up to rounding of u + 1 * (c - u)).
    torch.testing.assert_close(cfg_denoiser(model, cond, uncond, 1.0, short_circuit=False)(x, t), reference,
                               rtol=0, atol=1e-6)


@torch.no_grad()
def test_guidance_formula_and_single_batched_forward(setup):
    model, x, t, cond, uncond = setup
    c, u = model(x, t, cond), model(x, t, uncond)
    model.batches.clear()
    guided = cfg_denoiser(model, cond, uncond, 3.5)(x, t)
    assert model.batches == [6]  # one forward over the doubled batch
    torch.testing.assert_close(guided, u + 3.5 * (c - u), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(cfg_denoiser(model, cond, uncond, 0.0)(x, t), u, rtol=1e-5, atol=1e-6)
    per_sample = torch.tensor([[1.0], [2.0], [0.0]])
    torch.testing.assert_close(cfg_denoiser(model, cond, uncond, per_sample)(x, t), u + per_sample * (c - u),
                               rtol=1e-5, atol=1e-6)


@torch.no_grad()
def test_dict_conditioning_and_structure_errors(setup):
    model, x, t, cond, uncond = setup
    guided = cfg_denoiser(model, {"emb": cond}, {"emb": uncond}, 2.0)(x, t)
    torch.testing.assert_close(guided, cfg_denoiser(model, cond, uncond, 2.0)(x, t))
    with pytest.raises(ConfigError, match="same structure"):
        cfg_denoiser(model, {"emb": cond}, uncond, 2.0)(x, t)
    with pytest.raises(ConfigError, match="matching shapes"):
        cfg_denoiser(model, cond, torch.zeros(3, 5), 2.0)(x, t)


@torch.no_grad()
def test_cfg_denoiser_drives_a_sampler(setup):
    model, _, _, cond, uncond = setup
    schedule = make_schedule(num_train_timesteps=100, prediction_type="v")
    out = sample(cfg_denoiser(model, cond, uncond, 2.0), (3, 4), schedule, 5, sampler="dpmpp",
                 generator=torch.Generator().manual_seed(0))
    assert out.shape == (3, 4) and bool(torch.isfinite(out).all())
    assert model.batches == [6] * 5
