"""NAFNet, MIMO-UNet, latent encoder and PFM: shapes, official sizes, identity PFM, overfitting."""
import pytest
import torch

from deblurdiff.errors import ConfigError
from deblurdiff.methods.regression import MIMOUNetDeblur, NAFNetDeblur, fft_charbonnier
from deblurdiff.nn.latent_encoder import LatentEncoder
from deblurdiff.nn.mimo_unet import MIMOUNet
from deblurdiff.nn.nafnet import NAFNet
from deblurdiff.nn.prior_fusion import PriorFusion


def test_paper_sizes():
    """Parameter counts of the official configurations (MIMO-UNet 6.8 M, NAFNet-GoPro-width32 17.1 M)."""
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert abs(count(MIMOUNet()) - 6_807_171) < 1000
    assert abs(count(NAFNet()) / 1e6 - 17.11) < 0.01
    assert 1.0e6 < count(LatentEncoder()) < 1.3e6


def test_official_parameter_names():
    names = {n.split(".")[0] for n, _ in NAFNet(width=8, enc_blk_nums=(1,), dec_blk_nums=(1,)).named_parameters()}
    assert names == {"intro", "encoders", "downs", "middle_blks", "ups", "decoders", "ending"}
    names = {n.split(".")[0] for n, _ in MIMOUNet(base_channel=8, num_res=1).named_parameters()}
    assert names == {"Encoder", "Decoder", "feat_extract", "FAM1", "FAM2", "SCM1", "SCM2", "AFFs", "Convs", "ConvsOut"}


@pytest.mark.parametrize("h,w", [(16, 16), (21, 35)])
def test_shapes_any_size(h, w):
    x = torch.randn(2, 3, h, w)
    assert NAFNet(width=8, enc_blk_nums=(1, 1, 1), dec_blk_nums=(1, 1, 1), prior_dim=16)(x, torch.randn(2, 16)).shape == x.shape
    outs = MIMOUNet(base_channel=8, num_res=1, prior_dim=16)(x, torch.randn(2, 16))
    assert [o.shape[-2:] for o in outs] == [((h + 3) // 4, (w + 3) // 4), ((h + 1) // 2, (w + 1) // 2), (h, w)]
    assert LatentEncoder(width=8, dim=16, resblocks=1)(x, x).shape == (2, 16)


def test_latent_encoder_output_has_unit_scale():
    """Each latent is centred with unit RMS whatever the input's contrast, so BlurDM's start noise
    (beta_bar_T = 0.18) stays small against it."""
    torch.manual_seed(0)
    encoder = LatentEncoder(width=8, dim=32, resblocks=1)
    for scale in (0.01, 1.0):
        x = scale * torch.randn(3, 3, 24, 24)
        z = encoder(x, x)
        torch.testing.assert_close(z.mean(dim=1), torch.zeros(3), atol=1e-5, rtol=0)
        torch.testing.assert_close(z.square().mean(dim=1), torch.ones(3), atol=1e-2, rtol=0)


def test_prior_fusion_identity_at_init_and_affine_after():
    pfm = PriorFusion(16, 4)
    x, z = torch.randn(2, 4, 5, 5), torch.randn(2, 16)
    torch.testing.assert_close(pfm(x, z), x)
    assert pfm(x, None) is x
    with torch.no_grad():
        pfm.kernel.weight.normal_()
    k, v = (pfm.kernel.weight @ z.T / 16 ** 0.5).T.chunk(2, dim=1)   # the prior enters at fan-in scale
    torch.testing.assert_close(pfm(x, z), x * (1 + k[..., None, None]) + v[..., None, None])
    # an untrained fused backbone equals the plain backbone with the same weights
    torch.manual_seed(0)
    plain = NAFNet(width=8, enc_blk_nums=(1, 1), dec_blk_nums=(1, 1))
    fused = NAFNet(width=8, enc_blk_nums=(1, 1), dec_blk_nums=(1, 1), prior_dim=16)
    fused.load_state_dict(plain.state_dict(), strict=False)
    torch.testing.assert_close(fused(x[:, :3], z), plain(x[:, :3]))


def test_fft_charbonnier_zero_iff_equal():
    x = torch.rand(1, 3, 8, 8)
    assert fft_charbonnier(x, x) < 2e-3
    assert fft_charbonnier(x, x.roll(1, -1)) > 1e-2


@pytest.mark.parametrize("cls,kw", [(NAFNetDeblur, dict(width=8, enc_blk_nums=[1, 1], dec_blk_nums=[1, 1])),
                                    (MIMOUNetDeblur, dict(base_channel=8, num_res=1))])
def test_regression_overfits_and_round_trips(tmp_path, cls, kw):
    torch.manual_seed(0)
    m = cls(**kw)
    sharp = torch.rand(1, 3, 16, 16)
    blur = (sharp + sharp.roll(1, -1) + sharp.roll(2, -1)) / 3
    batch = {"blur": blur, "sharp": sharp}
    opt = torch.optim.Adam(m.parameters(), lr=3e-3)
    first = m.training_loss(batch)["loss"].item()
    for _ in range(30):
        loss = m.training_loss(batch)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert m.training_loss(batch)["loss"].item() < first - (1.0 if cls is NAFNetDeblur else 0.3 * abs(first))
    m.eval()
    err = lambda out: ((out - sharp) ** 2).mean().item()  # noqa: E731
    assert err(m.restore(blur)) < err(blur)
    m.save_pretrained(tmp_path / "c")
    torch.testing.assert_close(cls.from_pretrained(tmp_path / "c").eval().restore(blur), m.restore(blur))


def test_mimo_unet_stage_loss_psnr_is_minus_psnr_summed_over_scales():
    torch.manual_seed(0)
    model = MIMOUNetDeblur(base_channel=8, num_res=1)
    blur, sharp = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    batch = {"blur": blur, "sharp": sharp, "stage_options": {"loss": "psnr"}}
    torch.manual_seed(1)
    loss = float(model.training_loss(batch)["loss"])
    with torch.no_grad():
        outputs = model.backbone(blur * 2 - 1)
    expected = 0.0
    for out in outputs:
        target = torch.nn.functional.interpolate(sharp * 2 - 1, size=out.shape[-2:], mode="bilinear",
                                                 align_corners=False)
        mse = ((out - target) ** 2).flatten(1).mean(1)
        expected += float((10 * torch.log10(mse + 1e-8)).mean())
    assert loss == pytest.approx(expected, rel=1e-4)
    paper = float(model.training_loss({"blur": blur, "sharp": sharp})["loss"])
    assert paper > 0 and paper != pytest.approx(loss)  # Charbonnier + FFT by default
    with pytest.raises(ConfigError, match="paper, psnr"):
        model.training_loss({**batch, "stage_options": {"loss": "l1"}})
