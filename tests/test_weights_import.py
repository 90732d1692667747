"""`deblurdiff weights import`: official checkpoints, written here in the official layouts (names,
nesting and containers as the official code saves them, tiny widths), imported, loaded and run
through the CLI and the API, with reference forwards that follow the official code's semantics."""
import json
import os
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import deblurdiff
from deblurdiff.cli import main
from deblurdiff.data.io import read_image, write_image
from deblurdiff.errors import CheckpointError, InputError
from deblurdiff.nn.mimo_unet import MIMOUNet
from deblurdiff.nn.nafnet import LocalAvgPool2d, NAFNet
from deblurdiff.weights_import import import_weights


def _randomise(module, std=0.1, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * std)
    return module


def _image(h=20, w=28, seed=0):
    return torch.rand(3, h, w, generator=torch.Generator().manual_seed(seed))


# --------------------------------------------------------------------------- NAFNet (BasicSR .pth)
def _official_nafnet_file(path, width=8):
    """``{"params": state_dict}``, as BasicSR's save_network writes NAFNet-GoPro-width*.pth."""
    net = _randomise(NAFNet(width=width, enc_blk_nums=(1, 2), middle_blk_num=1, dec_blk_nums=(1, 1)))
    sd = {k: v.clone() for k, v in net.state_dict().items()}
    torch.save({"params": sd}, path)
    return sd


def _nafnet_reference(sd, x):
    """The official NAFNet forward written from the state dict: [0, 1] input, zero padding to
    2**levels, global-average SCA, ``ending(x) + input`` residual, crop."""
    levels = sum(1 for k in sd if k.startswith("downs.") and k.endswith(".weight"))
    h, w = x.shape[-2:]
    m = 2 ** levels
    inp = F.pad(x, (0, (-w) % m, 0, (-h) % m))

    def ln(t, p):
        mu = t.mean(1, keepdim=True)
        var = (t - mu).pow(2).mean(1, keepdim=True)
        return sd[p + ".weight"].view(1, -1, 1, 1) * (t - mu) / (var + 1e-6).sqrt() + sd[p + ".bias"].view(1, -1, 1, 1)

    def conv(t, p, **kw):
        return F.conv2d(t, sd[p + ".weight"], sd.get(p + ".bias"), **kw)

    def blk(t, p):  # NAFBlock: norm1 -> conv1 -> dw conv2 -> gate -> SCA -> conv3, then the FFN
        y = conv(ln(t, p + ".norm1"), p + ".conv1")
        y = conv(y, p + ".conv2", padding=1, groups=y.shape[1])
        a, b = y.chunk(2, 1)
        y = a * b
        y = y * conv(y.mean((2, 3), keepdim=True), p + ".sca.1")
        t = t + conv(y, p + ".conv3") * sd[p + ".beta"]
        a, b = conv(ln(t, p + ".norm2"), p + ".conv4").chunk(2, 1)
        return t + conv(a * b, p + ".conv5") * sd[p + ".gamma"]

    def stage(t, prefix):
        n = len({k.split(".")[2] for k in sd if k.startswith(prefix + ".")})
        for j in range(n):
            t = blk(t, f"{prefix}.{j}")
        return t

    t = conv(inp, "intro", padding=1)
    skips = []
    for i in range(levels):
        t = stage(t, f"encoders.{i}")
        skips.append(t)
        t = conv(t, f"downs.{i}", stride=2)
    for j in range(len({k.split(".")[1] for k in sd if k.startswith("middle_blks.")})):
        t = blk(t, f"middle_blks.{j}")
    for i in range(levels):
        t = F.pixel_shuffle(F.conv2d(t, sd[f"ups.{i}.0.weight"]), 2) + skips[levels - 1 - i]
        t = stage(t, f"decoders.{i}")
    return (conv(t, "ending", padding=1) + inp)[..., :h, :w]


def test_nafnet_import_matches_the_official_forward_through_api_and_cli(tmp_path):
    sd = _official_nafnet_file(tmp_path / "NAFNet-GoPro-width8.pth")
    out = tmp_path / "nafnet"
    assert main(["weights", "import", "nafnet", str(tmp_path / "NAFNet-GoPro-width8.pth"), "--out", str(out)]) == 0
    cfg = json.loads((out / "config.json").read_text())
    assert (cfg["width"], cfg["enc_blk_nums"], cfg["middle_blk_num"], cfg["dec_blk_nums"]) == (8, [1, 2], 1, [1, 1])
    assert (cfg["value_range"], cfg["pad_mode"], cfg["pad_multiple"]) == ("unit", "zeros", 4)

    x = _image(21, 30)  # not a multiple of 4: exercises the zero padding
    expected = _nafnet_reference(sd, x[None])[0].clamp(0, 1)
    model = deblurdiff.load("nafnet", checkpoint=str(out), device="cpu")
    torch.testing.assert_close(model.deblur(x), expected, atol=1e-5, rtol=1e-5)
    # tiled path: overlapping tiles of an imported model still give an image of the input's size
    assert model.deblur(_image(40, 52), tile=24, overlap=8).shape == (3, 40, 52)

    write_image(tmp_path / "in.png", x)
    assert main(["deblur", str(tmp_path / "in.png"), "-o", str(tmp_path / "out.png"), "--method", "nafnet",
                 "--checkpoint", str(out), "--quiet"]) == 0
    assert read_image(tmp_path / "out.png").shape == (3, 21, 30)


def test_local_average_pool_is_the_tlc_box_average():
    x = torch.randn(2, 3, 11, 14)
    pool = LocalAvgPool2d(5)
    box = F.avg_pool2d(x, 5, stride=1)  # valid positions only
    oh, ow = box.shape[-2:]
    expected = F.pad(box, ((14 - ow) // 2, (14 - ow + 1) // 2, (11 - oh) // 2, (11 - oh + 1) // 2), mode="replicate")
    torch.testing.assert_close(pool(x), expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(LocalAvgPool2d(20)(x), x.mean((2, 3), keepdim=True))


def test_nafnet_tlc_kernels_follow_the_training_size(tmp_path):
    _official_nafnet_file(tmp_path / "n.pth")
    out = import_weights("nafnet", [tmp_path / "n.pth"], tmp_path / "o")
    model = deblurdiff.load("nafnet", checkpoint=str(out), device="cpu").model.backbone
    assert model.encoders[0][0].sca[0].kernel == 384 and model.encoders[1][0].sca[0].kernel == 192
    assert model.middle_blks[0].sca[0].kernel == 96 and model.decoders[-1][0].sca[0].kernel == 384
    plain = import_weights("nafnet", [tmp_path / "n.pth"], tmp_path / "p", tlc=False)
    assert isinstance(deblurdiff.load("nafnet", checkpoint=str(plain)).model.backbone.encoders[0][0].sca[0],
                      nn.AdaptiveAvgPool2d)


# --------------------------------------------------------------------------- MIMO-UNet ({"model": ...})
def _official_mimo_file(path, num_res=2):
    net = _randomise(MIMOUNet(base_channel=8, num_res=num_res), std=0.05)
    sd = {k: v.clone() for k, v in net.state_dict().items()}
    opt = torch.optim.Adam(net.parameters()).state_dict()
    torch.save({"model": sd, "optimizer": opt, "scheduler": {"last_epoch": 3}, "epoch": 3}, path)  # train.py's
    return net


def test_mimo_unet_import_runs_like_the_official_eval(tmp_path):
    net = _official_mimo_file(tmp_path / "model.pkl", num_res=3)
    out = tmp_path / "mimo"
    assert main(["weights", "import", "mimo-unet", str(tmp_path / "model.pkl"), "--out", str(out)]) == 0
    cfg = json.loads((out / "config.json").read_text())
    assert (cfg["base_channel"], cfg["num_res"], cfg["value_range"]) == (8, 3, "unit")
    x = _image(24, 32)
    with torch.no_grad():  # eval.py: pred = model(input_img)[2]; clamp(pred, 0, 1), input in [0, 1]
        expected = net.eval()(x[None])[2].clamp(0, 1)[0]
    model = deblurdiff.load("mimo-unet", checkpoint=str(out), device="cpu")
    torch.testing.assert_close(model.deblur(x), expected, atol=1e-5, rtol=1e-5)
    write_image(tmp_path / "in.png", x)
    assert main(["deblur", str(tmp_path / "in.png"), "-o", str(tmp_path / "o.png"), "--method", "mimo-unet",
                 "--checkpoint", str(out), "--quiet"]) == 0


# --------------------------------------------------------------------------- BlurDM (model_state + model_dm_state)
class _OfficialResBlock(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(c, c, 3, padding=1), nn.LeakyReLU(0.1), nn.Conv2d(c, c, 3, padding=1))

    def forward(self, x):
        return self.body(x) + x


class _OfficialLE(nn.Module):
    """LE_arch's layout: E = [conv, act, ResBlock x n, conv, act, conv, act, conv, act, pool], mlp."""

    def __init__(self, f=8, n=2):
        super().__init__()
        act = lambda: nn.LeakyReLU(0.1)  # noqa: E731
        self.E = nn.Sequential(nn.Conv2d(96, f, 3, padding=1), act(), *[_OfficialResBlock(f) for _ in range(n)],
                               nn.Conv2d(f, 2 * f, 3, padding=1), act(), nn.Conv2d(2 * f, 2 * f, 3, padding=1), act(),
                               nn.Conv2d(2 * f, 4 * f, 3, padding=1), act(), nn.AdaptiveAvgPool2d(1))
        self.mlp = nn.Sequential(nn.Linear(4 * f, 4 * f), act(), nn.Linear(4 * f, 4 * f), act())

    def forward(self, x, gt):
        x = torch.cat([F.pixel_unshuffle(x, 4), F.pixel_unshuffle(gt, 4)], 1)
        return self.mlp(self.E(x).flatten(1))


class _OfficialResMLP(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.resmlp = nn.Sequential(nn.Linear(d, d), nn.LeakyReLU(0.1))

    def forward(self, x):
        return self.resmlp(x)


class _OfficialDenoise(nn.Module):
    def __init__(self, d, depth=5, timesteps=5):
        super().__init__()
        self.max_period = timesteps
        self.resmlp = nn.Sequential(nn.Linear(2 * d + 1, d), nn.LeakyReLU(0.1), *[_OfficialResMLP(d) for _ in range(depth)])

    def forward(self, x, t, c):
        return self.resmlp(torch.cat([c, (t.float() / self.max_period).view(-1, 1), x], 1))


class _OfficialDM(nn.Module):
    """LatentExposureDiffusion's layout and reverse chain."""

    def __init__(self, f=8, n=2, T=5):
        super().__init__()
        self.lcr_model, self.noise_model = _OfficialDenoise(4 * f, timesteps=T), _OfficialDenoise(4 * f, timesteps=T)
        self.condition_encoder = _OfficialLE(f, n)
        betas = torch.linspace(0.0, 0.02, T)
        alphas = torch.linspace(1.0, 2.0, T + 1)
        bb = torch.stack([torch.sqrt(sum((alphas[i - 1] / alphas[t]) ** 2 * betas[i - 1] for i in range(1, t + 1)))
                          for t in range(1, T + 1)])
        self.register_buffer("alphas", alphas)
        self.register_buffer("betas_bar", bb)
        self.register_buffer("time_stamps_list", torch.arange(T, 0, -1))

    def forward(self, blur, noise):
        c = self.condition_encoder(blur, blur)
        z = c + self.betas_bar[-1] * noise
        for i in self.time_stamps_list.tolist():
            t = torch.full((blur.shape[0],), i)
            eps, lcr = self.noise_model(z, t, c), self.lcr_model(z, t, c)
            cof = self.betas_bar[0] if i == 1 else self.alphas[i] * self.betas_bar[i - 1] / self.alphas[i - 1] - \
                self.betas_bar[i - 2]
            z = (self.alphas[i] * z - lcr) / self.alphas[i - 1] - cof * eps
        return z


def _official_blurdm_files(tmp_path, split=False):
    backbone = _randomise(MIMOUNet(base_channel=8, num_res=2, prior_dim=32, fusion="official"), std=0.05, seed=1)
    bsd = {}
    for k, v in backbone.state_dict().items():  # MIMOUNetPlusPrior names: Decoder.i.kv is the fusion
        if k.startswith("fusions."):
            k = f"Decoder.{k.split('.')[1]}.kv.weight"
        bsd["module." + k] = v.clone()  # accelerate/DataParallel prefix, removed by the official loader
    dm = _randomise(_OfficialDM(), std=0.1, seed=2)
    dmsd = {k: v.clone() for k, v in dm.state_dict().items()}
    if split:
        torch.save({"model": bsd}, tmp_path / "model.pth")
        torch.save({"model_dm_state": dmsd}, tmp_path / "model_dm.pth")
        return backbone, dm, [tmp_path / "model.pth", tmp_path / "model_dm.pth"]
    torch.save({"model_state": bsd, "model_dm_state": dmsd}, tmp_path / "MIMOUNet_GoPro_stage3.pth")
    return backbone, dm, [tmp_path / "MIMOUNet_GoPro_stage3.pth"]


@pytest.mark.parametrize("split", [False, True])
def test_blurdm_import_reproduces_the_official_chain_and_fusion(tmp_path, split):
    backbone, dm, files = _official_blurdm_files(tmp_path, split)
    out = tmp_path / "blurdm"
    assert main(["weights", "import", "blurdm", *map(str, files), "--out", str(out)]) == 0
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["backbone_options"] == {"base_channel": 8, "num_res": 2}
    assert (cfg["latent_width"], cfg["latent_dim"], cfg["latent_resblocks"], cfg["estimator_depth"]) == (8, 32, 2, 5)
    model = deblurdiff.load("blurdm", checkpoint=str(out), device="cpu").model
    x = _image(24, 32)[None]
    noise = torch.randn(1, 32, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        expected = backbone.eval()(x, dm.eval()(x, noise))[2].clamp(0, 1)
        got = model.restore(x, generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    write_image(tmp_path / "in.png", x[0])
    assert main(["deblur", str(tmp_path / "in.png"), "-o", str(tmp_path / "o.png"), "--method", "blurdm",
                 "--checkpoint", str(out), "--quiet"]) == 0


# --------------------------------------------------------------------------- VDM-MD (VQGAN, Lightning ckpt)
class _TResnet(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.norm1, self.conv1 = nn.GroupNorm(32, cin, eps=1e-6), nn.Conv2d(cin, cout, 3, padding=1)
        self.norm2, self.conv2 = nn.GroupNorm(32, cout, eps=1e-6), nn.Conv2d(cout, cout, 3, padding=1)
        self.nin_shortcut = nn.Conv2d(cin, cout, 1) if cin != cout else None

    def forward(self, x):
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        return (self.nin_shortcut(x) if self.nin_shortcut is not None else x) + h


class _TAttn(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.norm = nn.GroupNorm(32, c, eps=1e-6)
        self.q, self.k, self.v, self.proj_out = (nn.Conv2d(c, c, 1) for _ in range(4))

    def forward(self, x):
        h = self.norm(x)
        b, c, hh, ww = x.shape
        q, k, v = (m(h).flatten(2) for m in (self.q, self.k, self.v))
        w = torch.softmax(q.transpose(1, 2) @ k * c ** -0.5, dim=2)
        return x + self.proj_out((v @ w.transpose(1, 2)).view(b, c, hh, ww))


class _TEncoder(nn.Module):
    """taming's Encoder layout (attn_resolutions empty: attention only in the middle)."""

    def __init__(self, ch=32, mult=(1, 2), nres=1, z=3):
        super().__init__()
        self.conv_in = nn.Conv2d(3, ch, 3, padding=1)
        self.down = nn.ModuleList()
        cin = ch
        for i, m in enumerate(mult):
            level = nn.Module()
            level.block = nn.ModuleList([_TResnet(cin if j == 0 else ch * m, ch * m) for j in range(nres)])
            cin = ch * m
            if i != len(mult) - 1:
                level.downsample = nn.Module()
                level.downsample.conv = nn.Conv2d(cin, cin, 3, stride=2)
            self.down.append(level)
        self.mid = nn.Module()
        self.mid.block_1, self.mid.attn_1, self.mid.block_2 = _TResnet(cin, cin), _TAttn(cin), _TResnet(cin, cin)
        self.norm_out, self.conv_out = nn.GroupNorm(32, cin, eps=1e-6), nn.Conv2d(cin, z, 3, padding=1)

    def forward(self, x):
        h = self.conv_in(x)
        for level in self.down:
            for b in level.block:
                h = b(h)
            if hasattr(level, "downsample"):
                h = level.downsample.conv(F.pad(h, (0, 1, 0, 1)))
        h = self.mid.block_2(self.mid.attn_1(self.mid.block_1(h)))
        return self.conv_out(F.silu(self.norm_out(h)))


class _TDecoder(nn.Module):
    def __init__(self, ch=32, mult=(1, 2), nres=1, z=3):
        super().__init__()
        cin = ch * mult[-1]
        self.conv_in = nn.Conv2d(z, cin, 3, padding=1)
        self.mid = nn.Module()
        self.mid.block_1, self.mid.attn_1, self.mid.block_2 = _TResnet(cin, cin), _TAttn(cin), _TResnet(cin, cin)
        ups = []
        for i in reversed(range(len(mult))):
            level = nn.Module()
            level.block = nn.ModuleList([_TResnet(cin if j == 0 else ch * mult[i], ch * mult[i]) for j in range(nres + 1)])
            cin = ch * mult[i]
            if i != 0:
                level.upsample = nn.Module()
                level.upsample.conv = nn.Conv2d(cin, cin, 3, padding=1)
            ups.insert(0, level)
        self.up = nn.ModuleList(ups)  # indexed by resolution level, run from the last
        self.norm_out, self.conv_out = nn.GroupNorm(32, cin, eps=1e-6), nn.Conv2d(cin, 3, 3, padding=1)

    def forward(self, z):
        h = self.mid.block_2(self.mid.attn_1(self.mid.block_1(self.conv_in(z))))
        for i in reversed(range(len(self.up))):
            for b in self.up[i].block:
                h = b(h)
            if i != 0:
                h = self.up[i].upsample.conv(F.interpolate(h, scale_factor=2.0, mode="nearest"))
        return self.conv_out(F.silu(self.norm_out(h)))


class _VQModelNoQuant(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder, self.decoder = _TEncoder(), _TDecoder()
        self.quant_conv, self.post_quant_conv = nn.Conv2d(3, 3, 1), nn.Conv2d(3, 3, 1)
        self.quantize = nn.Module()
        self.quantize.embedding = nn.Embedding(16, 3)  # present in the file, unused without quantisation


TINY_PRIOR = ["--set", "depth=1", "--set", "hidden_size=24", "--set", "num_heads=2", "--set", "frames=2",
              "--set", "image_size=16", "--set", "default_steps=2"]


def test_vdm_md_vqgan_import_matches_taming_and_deblurs(tmp_path):
    vq = _randomise(_VQModelNoQuant(), std=0.05, seed=3).eval()
    sd = {k: v.clone() for k, v in vq.state_dict().items()}
    sd["loss.discriminator.main.0.weight"] = torch.zeros(4, 3, 4, 4)  # the training loss rides along in .ckpt
    torch.save({"state_dict": sd, "epoch": 7, "global_step": 100}, tmp_path / "vqgan.ckpt")
    out = tmp_path / "vdm"
    assert main(["weights", "import", "vdm-md", str(tmp_path / "vqgan.ckpt"), "--out", str(out), *TINY_PRIOR]) == 0
    cfg = json.loads((out / "config.json").read_text())
    assert (cfg["ae_ch"], cfg["ae_ch_mult"], cfg["ae_num_res_blocks"], cfg["ae_mid_attention"]) == (32, [1, 2], 1, True)
    assert cfg["latent_scale"] == pytest.approx(1.118574)
    model = deblurdiff.load("vdm-md", checkpoint=str(out), device="cpu").model
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    with torch.no_grad():
        z_ref = vq.quant_conv(vq.encoder(x))
        torch.testing.assert_close(model.autoencoder.encode(x), z_ref, atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(model.autoencoder.decode(z_ref), vq.decoder(vq.post_quant_conv(z_ref)),
                                   atol=1e-5, rtol=1e-4)
    write_image(tmp_path / "in.png", _image(16, 16))
    assert main(["deblur", str(tmp_path / "in.png"), "-o", str(tmp_path / "frames"), "--method", "vdm-md",
                 "--checkpoint", str(out), "--steps", "2", "--quiet"]) == 0
    assert any((tmp_path / "frames").rglob("*.png"))


def test_stdit2_prior_is_refused_naming_a_tensor(tmp_path, capsys):
    torch.save({"x_embedder.proj.weight": torch.zeros(8, 3, 1, 2, 2),
                "blocks.0.scale_shift_table": torch.zeros(6, 8)}, tmp_path / "ema.pt")
    vq = _VQModelNoQuant()
    torch.save({"state_dict": vq.state_dict()}, tmp_path / "vqgan.ckpt")
    code = main(["weights", "import", "vdm-md", str(tmp_path / "vqgan.ckpt"), str(tmp_path / "ema.pt"),
                 "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and "STDiT2" in err and ("x_embedder" in err or "scale_shift_table" in err)
    assert not (tmp_path / "o").exists()


# --------------------------------------------------------------------------- refusals
def _edit_nafnet(tmp_path, edit):
    sd = _official_nafnet_file(tmp_path / "n.pth")
    edit(sd)
    torch.save({"params": sd}, tmp_path / "bad.pth")
    return main(["weights", "import", "nafnet", str(tmp_path / "bad.pth"), "--out", str(tmp_path / "o")])


@pytest.mark.parametrize("edit, named", [
    (lambda sd: sd.__setitem__("encoders.0.0.conv9.weight", sd.pop("encoders.0.0.conv1.weight")), "conv9"),
    (lambda sd: sd.pop("decoders.1.0.gamma"), "decoders.1.0.gamma"),
    (lambda sd: sd.__setitem__("ending.weight", torch.zeros(3, 8, 5, 5)), "ending.weight"),
])
def test_renamed_missing_or_misshapen_tensor_is_refused_by_name(tmp_path, capsys, edit, named):
    assert _edit_nafnet(tmp_path, edit) == 2
    assert named in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_pickle_that_executes_code_is_refused_and_nothing_is_written(tmp_path, capsys):
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    torch.save({"params": {"intro.weight": torch.zeros(1)}, "hook": Payload()}, tmp_path / "evil.pth")
    assert main(["weights", "import", "nafnet", str(tmp_path / "evil.pth"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "refused" in err and "never runs code" in err
    assert not marker.exists() and not (tmp_path / "o").exists()
    assert list(tmp_path.iterdir()) == [tmp_path / "evil.pth"]  # no temporary folder left either


def test_wrong_container_and_unreadable_file_are_clear_errors(tmp_path):
    torch.save({"optimizer": {"lr": 1.0}}, tmp_path / "opt.pth")
    with pytest.raises(InputError, match="no state dict found"):
        import_weights("mimo-unet", [tmp_path / "opt.pth"], tmp_path / "o")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="not a readable"):
        import_weights("nafnet", [tmp_path / "junk.pth"], tmp_path / "o")


# --------------------------------------------------------------------------- hub ids, warm starts
def test_hub_id_offline_is_a_clear_checkpoint_error(monkeypatch, tmp_path):
    import huggingface_hub

    def offline(*args, **kwargs):
        raise huggingface_hub.errors.LocalEntryNotFoundError("outgoing traffic has been disabled")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", offline)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(CheckpointError, match="Hugging Face hub.*Offline"):
        deblurdiff.load("nafnet", checkpoint="someorg/nafnet-gopro", device="cpu")


def test_hub_id_resolves_to_the_downloaded_folder(monkeypatch, tmp_path):
    import huggingface_hub

    _official_nafnet_file(tmp_path / "n.pth")
    folder = import_weights("nafnet", [tmp_path / "n.pth"], tmp_path / "snapshot")
    monkeypatch.setattr(huggingface_hub, "snapshot_download", lambda repo_id, **kw: str(folder))
    monkeypatch.chdir(tmp_path)
    assert deblurdiff.load("nafnet", checkpoint="someorg/nafnet-gopro", device="cpu").model.config.width == 8


def test_training_warm_starts_from_an_imported_folder(tmp_path):
    from deblurdiff.train import parse_config, run
    from safetensors.torch import load_file

    _official_nafnet_file(tmp_path / "n.pth")
    folder = import_weights("nafnet", [tmp_path / "n.pth"], tmp_path / "imported", tlc=False)
    cfg = parse_config({"method": "nafnet", "model": {},
                        "data": {"source": "deblurdiff.train.reference:synthetic_pairs", "crop": 16, "length": 4},
                        "train": {"batch_size": 2, "lr": 0.0, "max_steps": 1, "ckpt_every": 100, "log_every": 1,
                                  "init": str(folder), "ema_decay": 0.0}})
    final = run(cfg, tmp_path / "run")
    assert json.loads((Path(final) / "config.json").read_text())["value_range"] == "unit"
    before, after = (load_file(str(next(Path(p).glob("*.safetensors")))) for p in (folder, final))
    assert before.keys() == after.keys()
    assert all(torch.allclose(before[k], after[k]) for k in before)  # lr 0: the imported weights, unchanged
