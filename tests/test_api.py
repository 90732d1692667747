"""The API's contracts, on small in-test methods (the real methods have their own tests)."""
import numpy as np
import pytest
import torch
from diffusers.configuration_utils import register_to_config

import deblurdiff
from deblurdiff.errors import CheckpointError, InputError
from deblurdiff.methods import METHODS
from deblurdiff.methods.base import DeblurMethod


class ToyImage(DeblurMethod):
    """Sharpens by unsharp masking with a learnable gain; adds seeded noise (stochastic)."""
    method_name, kind, stochastic, multiple = "toy-image", "image", True, 4

    @register_to_config
    def __init__(self, strength: float = 0.5, noise: float = 0.01):
        super().__init__()
        self.gain = torch.nn.Parameter(torch.tensor(strength))

    def restore(self, blurred, *, steps=None, sampler=None, generator=None, progress=False):
        assert blurred.shape[-1] % 4 == 0 and blurred.shape[-2] % 4 == 0, "API must pad to the multiple"
        smooth = torch.nn.functional.avg_pool2d(blurred, 3, 1, 1, count_include_pad=False)
        noise = torch.randn(blurred.shape, generator=generator, device=blurred.device) * self.config.noise
        return (blurred + self.gain * (blurred - smooth) + noise).clamp(0, 1)


class ToyVideo(DeblurMethod):
    """Sees exactly 3 frames at a time and scales them (identity when untrained)."""
    method_name, kind, frames = "toy-video", "video", 3

    @register_to_config
    def __init__(self):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.tensor(1.0))

    def restore(self, blurred, *, steps=None, sampler=None, generator=None, progress=False):
        assert blurred.shape[1] == 3
        return blurred * self.scale


@pytest.fixture
def toy_methods(monkeypatch):
    monkeypatch.setitem(METHODS, "toy-image", "test_api:ToyImage")
    monkeypatch.setitem(METHODS, "toy-video", "test_api:ToyVideo")


def test_checkpoint_round_trip_and_wrong_method(tmp_path, toy_methods):
    ToyImage(strength=0.25).save_pretrained(tmp_path / "img")
    ToyVideo().save_pretrained(tmp_path / "vid")
    model = deblurdiff.load("toy-image", checkpoint=tmp_path / "img", device="cpu")
    assert model.model.gain.item() == pytest.approx(0.25)
    with pytest.raises(CheckpointError, match="toy-video"):
        deblurdiff.load("toy-image", checkpoint=tmp_path / "vid", device="cpu")
    with pytest.raises(CheckpointError, match="no config.json"):
        deblurdiff.load("toy-image", checkpoint=tmp_path, device="cpu")
    # a training checkpoint folder (OUT/checkpoints/step-N) loads its EMA weights
    ToyImage(strength=0.75).save_pretrained(tmp_path / "run" / "checkpoints" / "step-000010" / "ema")
    step = deblurdiff.load("toy-image", checkpoint=tmp_path / "run" / "checkpoints" / "step-000010", device="cpu")
    assert step.model.gain.item() == pytest.approx(0.75)


def test_corrupt_weights_are_refused(tmp_path, toy_methods):
    ToyImage().save_pretrained(tmp_path / "img")
    weights = next((tmp_path / "img").glob("*.safetensors"))
    weights.write_bytes(weights.read_bytes()[:20])
    with pytest.raises(CheckpointError):
        deblurdiff.load("toy-image", checkpoint=tmp_path / "img", device="cpu")


def test_layouts_seed_and_samples(tmp_path, toy_methods):
    ToyImage().save_pretrained(tmp_path / "img")
    model = deblurdiff.load("toy-image", checkpoint=tmp_path / "img", device="cpu")
    rng = np.random.default_rng(0)
    hwc = (rng.random((30, 22, 3)) * 255).astype(np.uint8)
    out = model.deblur(hwc, seed=3)
    assert isinstance(out, np.ndarray) and out.shape == (30, 22, 3)
    np.testing.assert_array_equal(out, model.deblur(hwc, seed=3))
    assert not np.array_equal(out, model.deblur(hwc, seed=4))
    chw = torch.from_numpy(hwc).permute(2, 0, 1).float() / 255
    torch.testing.assert_close(model.deblur(chw, seed=3), torch.from_numpy(out).permute(2, 0, 1))
    gray = model.deblur(hwc[..., 0], seed=3)
    assert gray.shape == (30, 22)
    mean, std = model.deblur(chw, samples=6, seed=1, return_std=True)
    assert mean.shape == std.shape == chw.shape and 0.003 < std.mean() < 0.02  # the toy's noise is 0.01


def test_tiling_matches_whole_image_for_a_local_operator(tmp_path, toy_methods):
    ToyImage(noise=0.0).save_pretrained(tmp_path / "img")
    model = deblurdiff.load("toy-image", checkpoint=tmp_path / "img", device="cpu")
    x = torch.rand(3, 64, 80)
    torch.testing.assert_close(model.deblur(x, tile=32, overlap=8), model.deblur(x), atol=2e-3, rtol=0)


def test_video_windows_any_length(tmp_path, toy_methods):
    ToyVideo().save_pretrained(tmp_path / "vid")
    model = deblurdiff.load("toy-video", checkpoint=tmp_path / "vid", device="cpu")
    for n in (1, 2, 7):
        clip = torch.rand(n, 3, 16, 16)
        torch.testing.assert_close(model.deblur(clip), clip)


def test_bad_inputs(tmp_path, toy_methods):
    ToyImage().save_pretrained(tmp_path / "img")
    model = deblurdiff.load("toy-image", checkpoint=tmp_path / "img", device="cpu")
    with pytest.raises(InputError, match="1x1"):
        model.deblur(torch.rand(3, 1, 1))
    with pytest.raises(InputError, match="tile"):
        model.deblur(torch.rand(3, 64, 64), max_pixels=1000)
    with pytest.raises(InputError, match="steps"):
        model.deblur(torch.rand(3, 16, 16), steps=0)
    with pytest.raises(InputError, match=r"\[0, 1\]"):
        model.deblur(torch.rand(3, 16, 16) * 255)
    with pytest.raises(InputError, match="channels"):
        model.deblur(torch.rand(4, 16, 16))
