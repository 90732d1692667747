"""Per-frame continuous VQGAN autoencoder of VDM-MD."""
import pytest
import torch

from deblurdiff.errors import ConfigError, InputError
from deblurdiff.nn.autoencoder import FrameAutoencoder


def tiny():
    torch.manual_seed(0)
    return FrameAutoencoder(ch=8, ch_mult=(1, 2, 4), num_res_blocks=1, norm_num_groups=4)


def test_fourfold_downsample_to_three_channels():
    ae = tiny()
    assert ae.downsample == 4
    clip = torch.rand(2, 5, 3, 32, 48) * 2 - 1
    z = ae.encode(clip)
    assert z.shape == (2, 5, 3, 8, 12)
    assert ae.decode(z).shape == clip.shape
    assert ae.encode(clip[0]).shape == (5, 3, 8, 12)


def test_frames_are_coded_independently():
    ae = tiny().eval()
    clip = torch.rand(1, 4, 3, 16, 16)
    changed = clip.clone()
    changed[:, 1] = torch.rand(3, 16, 16)
    delta = (ae(changed) - ae(clip)).abs().amax(dim=(2, 3, 4))[0]
    assert delta[1] > 0 and delta[[0, 2, 3]].max() == 0


def test_no_attention_anywhere():
    from diffusers.models.attention_processor import Attention

    ae = tiny()
    assert not any(isinstance(m, Attention) for m in ae.modules())
    assert not any("attention" in n for n, _ in ae.named_parameters())


def test_invalid_inputs():
    ae = tiny()
    with pytest.raises(InputError):
        ae.encode(torch.rand(1, 3, 30, 32))
    with pytest.raises(InputError):
        ae.encode(torch.rand(1, 4, 32, 32))
    with pytest.raises(ConfigError):
        FrameAutoencoder(ch=10, norm_num_groups=4)


def test_learns_to_reconstruct():
    """A few Adam steps must cut the L1 error on a fixed smooth batch: the gradient path is sound."""
    ae = tiny()
    x = torch.nn.functional.interpolate(torch.rand(4, 3, 4, 4) * 2 - 1, size=16, mode="bilinear")
    opt = torch.optim.Adam(ae.parameters(), lr=3e-3)
    first = None
    for _ in range(40):
        loss = (ae(x) - x).abs().mean()
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.6 * first


def test_save_load_round_trip(tmp_path):
    ae = tiny()
    ae.save_pretrained(tmp_path)
    loaded = FrameAutoencoder.from_pretrained(tmp_path)
    x = torch.rand(2, 3, 16, 16)
    assert loaded.config.ch == 8 and list(loaded.config.ch_mult) == [1, 2, 4]
    assert torch.equal(ae(x), loaded(x))
