"""Known answers of blur formation: identity, ramps, gamma formula, progressive partial averages."""
import pytest
import torch

from deblurdiff.blur.formation import progressive_blur, temporal_average, window_average
from deblurdiff.errors import InputError


@pytest.mark.parametrize("gamma", [None, 2.2])
def test_average_of_identical_frames_is_the_frame(gamma):
    frame = torch.rand(3, 8, 9)
    frames = frame.expand(7, -1, -1, -1)
    assert torch.allclose(temporal_average(frames, gamma, dim=0), frame, atol=1e-6)


def test_step_edge_at_constant_velocity_becomes_linear_ramp():
    k = 8
    columns = torch.arange(32)
    frames = torch.stack([(columns >= 12 + s).float().expand(1, 4, 32) for s in range(k)])  # 1 px per sub-frame
    profile = temporal_average(frames, dim=0)[0, 0]
    assert torch.all(profile[:12] == 0) and torch.all(profile[12 + k - 1:] == 1)
    ramp = profile[12:12 + k]
    assert torch.allclose(ramp, torch.arange(1, k + 1) / k)   # slope 1/width, width = travel


def test_linear_light_and_gamma_averages_follow_the_formula():
    a, b = torch.full((1, 1, 1), 0.2), torch.full((1, 1, 1), 0.9)
    frames = torch.stack([a, b, b])
    gamma = 2.2
    expected_linear = ((0.2 ** gamma + 2 * 0.9 ** gamma) / 3) ** (1 / gamma)
    expected_encoded = (0.2 + 2 * 0.9) / 3
    assert temporal_average(frames, gamma, dim=0).item() == pytest.approx(expected_linear, abs=1e-6)
    assert temporal_average(frames, None, dim=0).item() == pytest.approx(expected_encoded, abs=1e-7)
    # Black and white: linear light is brighter than the encoded mean, by exactly 0.5 ** (1/g).
    bw = torch.stack([torch.zeros(1, 1, 1), torch.ones(1, 1, 1)])
    assert temporal_average(bw, gamma, dim=0).item() == pytest.approx(0.5 ** (1 / gamma), abs=1e-6)


def test_window_average_matches_explicit_means():
    frames = torch.rand(11, 2, 3, 4)
    out = window_average(frames, window=3, stride=2)
    assert out.shape == (5, 2, 3, 4)
    for m in range(5):
        assert torch.allclose(out[m], frames[2 * m:2 * m + 3].mean(0), atol=1e-6)
    with pytest.raises(InputError, match="at least 12 frames"):
        window_average(frames, window=12)


def test_progressive_blur_partial_exposures():
    frames = torch.rand(2, 5, 3, 4, 4)   # batch of 2 exposures, K = 5
    fractions = [0.0, 0.2, 0.6, 0.7, 1.0]
    out = progressive_blur(frames, fractions)
    assert out.shape == (2, 5, 3, 4, 4)
    assert torch.allclose(out[:, 0], frames[:, 0])
    assert torch.allclose(out[:, 1], frames[:, 0], atol=1e-6)
    assert torch.allclose(out[:, 2], frames[:, :3].mean(1), atol=1e-6)
    # f = 0.7 covers 3.5 slices: three full ones and half of the fourth.
    assert torch.allclose(out[:, 3], (frames[:, :3].sum(1) + 0.5 * frames[:, 3]) / 3.5, atol=1e-6)
    assert torch.allclose(out[:, 4], temporal_average(frames, dim=1), atol=1e-6)
    linear = progressive_blur(frames, [1.0], gamma=2.2)[:, 0]
    assert torch.allclose(linear, temporal_average(frames, 2.2, dim=1), atol=1e-5)
    with pytest.raises(InputError):
        progressive_blur(frames, [1.5])


def test_srgb_curve_known_values_and_round_trip():
    from deblurdiff.blur.formation import from_linear, to_linear

    x = torch.linspace(0, 1, 101)
    assert torch.allclose(from_linear(to_linear(x, "srgb"), "srgb"), x, atol=1e-5)
    assert to_linear(torch.tensor(0.5), "srgb").item() == pytest.approx(0.21404, abs=1e-4)
    assert to_linear(torch.tensor(0.02), "srgb").item() == pytest.approx(0.02 / 12.92)
    bw = torch.stack([torch.zeros(1, 1, 1), torch.ones(1, 1, 1)])
    assert temporal_average(bw, "srgb", dim=0).item() == pytest.approx(1.055 * 0.5 ** (1 / 2.4) - 0.055, abs=1e-6)
    with pytest.raises(InputError, match="gamma"):
        to_linear(x, "rec709")
