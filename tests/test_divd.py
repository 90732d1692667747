"""DIVD: the UNet, the method surface (restore / training_loss), save/load, configs."""
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from deblurdiff.errors import ConfigError, InputError
from deblurdiff.methods import method_class
from deblurdiff.methods.divd import DIVD
from deblurdiff.nn.unet2d import DIVDUNet, required_multiple

REPO = Path(__file__).resolve().parent.parent
TINY = dict(width=8, channel_mult=(1, 2), blocks=(1, 1), windows=(2, 1), heads=(1, 1), frames=4)


def box_blur(x):
    """A fixed horizontal blur of (B, F, C, H, W) clips: learnable structure for the overfit test."""
    b, f, c, h, w = x.shape
    flat = x.reshape(b * f * c, 1, h, w)
    kernel = torch.full((1, 1, 1, 5), 0.2)
    return F.conv2d(F.pad(flat, (2, 2, 0, 0), mode="replicate"), kernel).reshape(x.shape)


def test_required_multiple_of_the_paper_presets():
    assert required_multiple([3, 2, 1, 1], 4) == 24
    assert required_multiple([4, 3, 2, 1], 4) == 24
    assert required_multiple([6, 4, 3, 2], 4) == 48
    assert required_multiple([0, 0, 0, 0], 4) == 8


def test_unet_shapes_and_timestep_forms():
    torch.manual_seed(0)
    net = DIVDUNet(width=8, channel_mult=(1, 2, 4), blocks=(1, 1, 1), windows=(3, 2, 1), frames=2, heads=1)
    for p in net.parameters():  # zero-initialised gates and time projections would hide the timestep
        if p.abs().sum() == 0:
            torch.nn.init.normal_(p, std=0.3)
    x, c = torch.randn(2, 2, 3, 24, 24), torch.randn(2, 2, 3, 24, 24)
    out = net.forward_clip(x, c, torch.tensor([10, 500]))
    assert out.shape == x.shape
    # per-clip timesteps equal the same timesteps given per frame
    same = net.forward_clip(x, c, torch.tensor([10, 10, 500, 500]))
    torch.testing.assert_close(out, same)
    assert not torch.allclose(out, net.forward_clip(x, c, torch.tensor([999, 999])))


def test_frames_only_meet_in_wtsa():
    """With temporal=False no layer mixes frames: changing frame 2 leaves frame 0 unchanged."""
    torch.manual_seed(1)
    x, c = torch.randn(1, 3, 3, 16, 16), torch.randn(1, 3, 3, 16, 16)
    c2 = c.clone()
    c2[:, 2] += 1
    for temporal in (True, False):
        net = DIVDUNet(width=8, channel_mult=(1, 2), blocks=(1, 1), windows=(2, 1), frames=3, temporal=temporal)
        for p in net.parameters():  # leave the zero-initialised residual gates: make every path active
            if p.ndim == 4 and p.shape[0] == 1 or p.shape == (1,) or p.abs().sum() == 0:
                torch.nn.init.normal_(p, std=0.5)
        with torch.no_grad():
            delta = (net.forward_clip(x, c, 5)[:, 0] - net.forward_clip(x, c2, 5)[:, 0]).abs().max()
        assert (delta > 1e-4) if temporal else (delta < 1e-6)


def test_untrained_model_returns_its_input():
    """Zero-initialised residual head: x0_hat = blur at every step, so any sampler returns the input."""
    torch.manual_seed(2)
    model = DIVD(**TINY).eval()
    clip = torch.rand(1, 4, 3, 20, 18)
    for sampler in ("ddim", "dpmpp"):
        out = model.restore(clip, steps=4, sampler=sampler, generator=torch.Generator().manual_seed(0))
        torch.testing.assert_close(out, clip, atol=1e-5, rtol=0)


def test_restore_is_seeded_stochastic_and_in_range():
    torch.manual_seed(3)
    model = DIVD(**TINY).eval()
    torch.nn.init.normal_(model.net.outro.weight, std=0.05)
    clip = torch.rand(1, 4, 3, 16, 16)
    run = lambda seed: model.restore(clip, steps=3, generator=torch.Generator().manual_seed(seed))
    a, b, c = run(0), run(0), run(1)
    assert a.shape == clip.shape and a.min() >= 0 and a.max() <= 1
    torch.testing.assert_close(a, b)
    assert (a - c).abs().max() > 1e-4
    # a single image (B, C, H, W) is a one-frame clip; fewer frames than F are accepted
    assert model.restore(clip[:, 0], steps=2).shape == (1, 3, 16, 16)
    assert model.restore(clip[:, :2], steps=2).shape == (1, 2, 3, 16, 16)


def test_input_errors():
    model = DIVD(**TINY)
    with pytest.raises(InputError, match="sliding windows"):
        model.restore(torch.rand(1, 5, 3, 8, 8), steps=2)
    with pytest.raises(InputError, match="channel"):
        model.restore(torch.rand(1, 4, 1, 8, 8), steps=2)
    with pytest.raises(InputError, match="NaN"):
        model.restore(torch.full((1, 4, 3, 8, 8), float("nan")), steps=2)
    with pytest.raises(ConfigError, match="residual"):
        DIVD(**TINY, prediction="eps", residual=True)


def test_save_load_round_trip(tmp_path):
    torch.manual_seed(4)
    model = DIVD(**TINY)
    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.05)
    model.save_pretrained(tmp_path)
    assert (tmp_path / "config.json").is_file() and (tmp_path / "diffusion_pytorch_model.safetensors").is_file()
    loaded = method_class("divd").from_pretrained(tmp_path).eval()
    model.eval()
    assert loaded.multiple == model.multiple and loaded.frames == 4
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, loaded.state_dict()[name]), name
    clip = torch.rand(1, 4, 3, 12, 12)
    run = lambda m: m.restore(clip, steps=3, generator=torch.Generator().manual_seed(7))
    torch.testing.assert_close(run(model), run(loaded))


def test_training_loss_decreases_on_a_tiny_batch():
    torch.manual_seed(5)
    model = DIVD(**TINY, loss="l2")
    sharp = (torch.rand(2, 4, 3, 8, 8) > 0.5).float()  # hard edges: blurring them is a large, learnable error
    batch = {"blur": box_blur(sharp), "sharp": sharp}

    def fixed_loss():
        torch.manual_seed(123)  # same timesteps and noise each evaluation
        return model.training_loss(batch)["loss"].item()

    before = fixed_loss()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for step in range(20):
        torch.manual_seed(step)
        out = model.training_loss(batch)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
    after = fixed_loss()
    assert after < 0.8 * before, (before, after)


@pytest.mark.parametrize("prediction", ["v", "eps"])
def test_eps_and_v_models_train_through_the_shared_schedule(prediction):
    """One gradient step on an eps / v model: finite loss, gradients reach the first conv."""
    model = DIVD(**TINY, prediction=prediction, residual=False)
    sharp = torch.rand(1, 4, 3, 8, 8)
    loss = model.training_loss({"blur": box_blur(sharp), "sharp": sharp})["loss"]
    loss.backward()
    assert torch.isfinite(loss) and model.net.intro.weight.grad.abs().sum() > 0 or model.net.outro.weight.grad.abs().sum() > 0


def test_training_loss_pads_odd_sizes_and_reports_psnr():
    model = DIVD(**TINY)
    sharp = torch.rand(2, 4, 3, 13, 11)
    out = model.training_loss({"blur": box_blur(sharp), "sharp": sharp})
    assert out["loss"].ndim == 0 and out["loss"].requires_grad
    assert 0 < out["psnr_x0"] < 100
    with pytest.raises(InputError):
        model.training_loss({"blur": sharp, "sharp": sharp[..., :10]})


@pytest.mark.parametrize("name", ["divd", "divd-tiny", "divd-tiny-nowtsa", "divd-tiny-nomrpe", "divd-cpu",
                                  "divd-cpu-nowtsa", "divd-cpu-nomrpe", "divd-cpu-onestep", "divd-cpu-wide"])
def test_configs_build(name):
    from deblurdiff.train.config import load_config
    cfg = load_config(REPO / "configs" / f"{name}.yaml")
    assert cfg.method == "divd" and cfg.data.mode == "video" and cfg.data.frames == cfg.model["frames"]
    if name != "divd":
        model = DIVD(**cfg.model)
        assert cfg.data.crop % model.multiple == 0
        assert sum(p.numel() for p in model.parameters()) < 2_000_000
        assert model.config.temporal == (not name.endswith("-nowtsa"))
        assert model.config.mrpe == (not name.endswith("-nomrpe"))
    else:
        assert cfg.data.crop == 144 and cfg.train.max_steps == 1_000_000 and cfg.train.warmup_steps > 0
    if name.startswith("divd-cpu"):
        assert cfg.model["prediction"] == "edm" and cfg.data.crop >= 96 and cfg.data.source == "shake"
        assert cfg.data.options["scene_share"] > 0 and cfg.train.mixed_precision == "bf16" and cfg.train.channels_last


def test_cpu_ablations_differ_from_the_long_run_only_in_their_flag():
    from dataclasses import asdict

    from deblurdiff.train.config import load_config
    base = asdict(load_config(REPO / "configs" / "divd-cpu.yaml"))
    for name, flag in (("divd-cpu-nowtsa", "temporal"), ("divd-cpu-nomrpe", "mrpe")):
        cfg = asdict(load_config(REPO / "configs" / f"{name}.yaml"))
        assert cfg["model"].pop(flag) is False and base["model"][flag] is True
        assert cfg == {**base, "model": {k: v for k, v in base["model"].items() if k != flag}}


def test_shipped_checkpoint_loads_and_beats_identity():
    folder = REPO / "src" / "deblurdiff" / "weights" / "divd"
    if not (folder / "config.json").is_file():
        pytest.skip("no shipped DIVD checkpoint yet")
    model = DIVD.from_pretrained(folder).eval()
    from deblurdiff.blur.scenes import generate_clip
    clip = generate_clip(987654, 48, 4)
    out = model.restore(clip["blur"][None], steps=5, generator=torch.Generator().manual_seed(0))[0]
    err = lambda x: (x - clip["sharp"]).square().mean()
    assert err(out) < err(clip["blur"])
