"""The per-frame autoencoder trained on its own (method ``autoencoder``) and its use by VDM-MD."""
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from deblurdiff.errors import CheckpointError, ConfigError
from deblurdiff.methods import method_class
from deblurdiff.methods.autoencoder import FrameAutoencoderMethod

ROOT = Path(__file__).resolve().parent.parent
TINY = dict(latent_channels=4, ch=8, ch_mult=(1, 2, 4), num_res_blocks=1, norm_num_groups=4, lpips_weight=0.0)


def tiny(**kw):
    torch.manual_seed(0)
    return FrameAutoencoderMethod(**{**TINY, **kw})


def images(b=4, size=16, seed=1):
    gen = torch.Generator().manual_seed(seed)
    base = torch.rand(b, 3, size // 4, size // 4, generator=gen)  # smooth images an f4 model can learn fast
    return torch.nn.functional.interpolate(base, size=(size, size), mode="bilinear", align_corners=False)


def test_registered_image_method():
    assert method_class("autoencoder") is FrameAutoencoderMethod
    assert FrameAutoencoderMethod.kind == "image" and not FrameAutoencoderMethod.stochastic


def train(model, batch, steps):
    """``steps`` AdamW steps on the trainable parameters; the losses and the last loss dict."""
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    losses = []
    for _ in range(steps):
        out = model.training_loss(batch)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        losses.append(float(out["loss"].detach()))
    return losses, out


def test_reconstruction_loss_drops_and_latent_std_is_tracked():
    model = tiny()
    losses, out = train(model, {"blur": images(), "sharp": images()}, 30)
    assert losses[-1] < 0.6 * losses[0]
    assert float(model.latent_std) > 0 and "latent_std" in out


def test_decoder_only_training_keeps_the_latent_space():
    """With the encoder frozen (a decoder-only stage) the decoder learns, while the encoder's
    weights and latent_std, i.e. the latent space a prior was trained on, stay put."""
    model = tiny()
    batch = {"sharp": images()}
    model.training_loss(batch)  # sets latent_std
    std, encoder = float(model.latent_std), {k: v.clone() for k, v in model.autoencoder.encoder.state_dict().items()}
    for part in (model.autoencoder.encoder, model.autoencoder.quant_conv):
        part.requires_grad_(False)
    losses, _ = train(model, batch, 20)
    assert losses[-1] < losses[0]
    assert float(model.latent_std) == std
    assert all(torch.equal(v, encoder[k]) for k, v in model.autoencoder.encoder.state_dict().items())


def test_restore_is_the_reconstruction_of_any_size():
    model = tiny().eval()
    x = torch.rand(2, 3, 18, 21)
    y = model.restore(x)
    assert y.shape == x.shape and 0 <= float(y.min()) and float(y.max()) <= 1
    z = model.encode(x[..., :16, :20])
    assert z.shape == (2, 4, 4, 5)


def test_save_load_keeps_latent_std(tmp_path):
    model = tiny()
    model.training_loss({"sharp": images()})
    model.save_pretrained(tmp_path)
    loaded = FrameAutoencoderMethod.from_pretrained(tmp_path)
    assert float(loaded.latent_std) == pytest.approx(float(model.latent_std))
    for (n, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), n


def test_bad_options_name_the_fix():
    with pytest.raises(ConfigError, match="lpips_net"):
        tiny(lpips_net="squeeze")
    with pytest.raises(ConfigError, match="multiple"):
        tiny(crop=18)


def test_tiny_config_trains_and_deblur_cli_reconstructs(tmp_path):
    from deblurdiff.cli import main
    from deblurdiff.train import load_config, run

    cfg = load_config(ROOT / "configs" / "autoencoder-tiny.yaml", ["train.max_steps=6", "train.log_every=3",
                                                                   "train.ckpt_every=6"])
    final = run(cfg, tmp_path / "run")
    assert float(FrameAutoencoderMethod.from_pretrained(final).latent_std) > 0
    Image.fromarray((np.random.default_rng(0).random((20, 24, 3)) * 255).astype(np.uint8)).save(tmp_path / "in.png")
    rc = main(["deblur", str(tmp_path / "in.png"), "--method", "autoencoder", "--checkpoint", str(final),
               "-o", str(tmp_path / "out.png"), "--device", "cpu"])
    assert rc == 0
    assert Image.open(tmp_path / "out.png").size == (24, 20)


def test_f4_config_builds_the_intended_model():
    from deblurdiff.train import load_config

    cfg = load_config(ROOT / "configs" / "autoencoder-f4.yaml")
    model = method_class(cfg.method)(**cfg.model)
    assert model.autoencoder.downsample == 4 and model.config.latent_channels >= 8 and model.config.ch >= 32
    # GroupNorm's backward on channels_last tensors is the slow path on CPUs: the long run stays NCHW
    assert cfg.train.mixed_precision == "bf16" and not cfg.train.channels_last and cfg.train.batch_size == 8
    assert cfg.data.options["scene_share"] == 0.2 and cfg.val_data.split == "val"


def test_vdm_md_uses_the_trained_autoencoder_frozen(tmp_path):
    from deblurdiff.methods.vdm_md import VDMMD

    ae = tiny()
    ae.training_loss({"sharp": images()})
    ae.save_pretrained(tmp_path / "ae")
    model = VDMMD(frames=4, image_size=16, ae_ch=4, ae_norm_groups=2, hidden_size=32, depth=1, num_heads=2,
                  num_train_timesteps=100, pretrained_autoencoder=str(tmp_path / "ae"))
    assert model.config.latent_channels == 4 and model.config.ae_ch == 8
    assert float(model.latent_std) == pytest.approx(float(ae.latent_std))
    for name, value in ae.autoencoder.state_dict().items():
        assert torch.equal(model.autoencoder.state_dict()[name], value), name
    frames = torch.rand(2, 4, 3, 16, 16)
    with pytest.raises(ConfigError, match="remove that stage"):
        model.training_loss({"frames": frames, "stage": "autoencoder", "stage_options": {}})
    model.training_loss({"frames": frames, "stage": "prior", "stage_options": {}})
    assert float(model.latent_std) == pytest.approx(float(ae.latent_std))  # not recomputed
    model.save_pretrained(tmp_path / "vdm")
    loaded = VDMMD.from_pretrained(tmp_path / "vdm")  # loads without the autoencoder folder
    assert loaded.config.pretrained_autoencoder is None and loaded.config.autoencoder_from == str(tmp_path / "ae")
    assert torch.equal(loaded.autoencoder.encoder.conv_in.weight, ae.autoencoder.encoder.conv_in.weight)
    with pytest.raises(CheckpointError, match="not a checkpoint folder"):
        VDMMD(frames=4, image_size=16, pretrained_autoencoder=str(tmp_path / "missing"))


def test_pretrained_autoencoder_takes_a_step_folder_or_a_shipped_name(tmp_path, monkeypatch):
    from deblurdiff import methods
    from deblurdiff.methods.autoencoder import load_trained_autoencoder

    ae = tiny()
    ae.training_loss({"sharp": images()})
    ae.save_pretrained(tmp_path / "run" / "checkpoints" / "step-000010" / "ema")
    step = load_trained_autoencoder(tmp_path / "run" / "checkpoints" / "step-000010", channels=3)
    assert float(step.latent_std) == pytest.approx(float(ae.latent_std))
    ae.save_pretrained(tmp_path / "weights" / "my-ae")
    monkeypatch.setattr(methods, "shipped_checkpoint", lambda name: tmp_path / "weights" / name)
    monkeypatch.chdir(tmp_path)  # a bare name that is no folder here is a shipped checkpoint's
    shipped = load_trained_autoencoder("my-ae", channels=3)
    assert torch.equal(shipped.autoencoder.encoder.conv_in.weight, ae.autoencoder.encoder.conv_in.weight)
    with pytest.raises(CheckpointError, match="shipped 'autoencoder'"):
        load_trained_autoencoder("no-such-ae", channels=3)


def test_validation_reconstructs_the_sharp_image():
    from deblurdiff.train.logging import validate

    class Spy(FrameAutoencoderMethod):
        def restore(self, x, **kw):
            self.seen = x
            return x

    model = Spy(**TINY)
    batch = {"blur": torch.zeros(2, 3, 16, 16), "sharp": images(2)}
    metrics = validate(model, [batch], "cpu")
    assert torch.equal(model.seen, batch["sharp"]) and metrics["val/psnr"] == 100.0


def test_shortcut_is_space_to_depth_and_back():
    """With the deep paths silenced and the 1x1 shortcut convs set to the identity, an f2 autoencoder
    whose latent holds every 2x2x3 patch value reconstructs its input exactly; plain, it does not."""
    from deblurdiff.nn.autoencoder import FrameAutoencoder

    x = torch.rand(2, 3, 8, 12) * 2 - 1
    ae = FrameAutoencoder(in_channels=3, latent_channels=12, ch=8, ch_mult=(1, 2), num_res_blocks=1, norm_num_groups=4,
                          shortcut=True)
    with torch.no_grad():
        for conv in (ae.quant_conv, ae.decoder.conv_out):
            conv.weight.zero_(), conv.bias.zero_()
        for conv in (ae.to_latent, ae.from_latent):
            conv.weight.copy_(torch.eye(12)[:, :, None, None]), conv.bias.zero_()
        assert ae.encode(x).shape == (2, 12, 4, 6)
        torch.testing.assert_close(ae.decode(ae.encode(x)), x)
        clip = x.reshape(1, 2, 3, 8, 12)
        torch.testing.assert_close(ae.decode(ae.encode(clip)), clip)


def test_vdm_md_takes_a_shortcut_autoencoder(tmp_path):
    from deblurdiff.methods.vdm_md import VDMMD

    ae = tiny(shortcut=True)
    ae.training_loss({"sharp": images()})
    ae.save_pretrained(tmp_path / "ae")
    model = VDMMD(frames=4, image_size=16, hidden_size=32, depth=1, num_heads=2, num_train_timesteps=100,
                  pretrained_autoencoder=str(tmp_path / "ae"))
    assert model.config.ae_shortcut
    x = images() * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(model.autoencoder.decode(model.autoencoder.encode(x)),
                                   ae.autoencoder.decode(ae.autoencoder.encode(x)))
