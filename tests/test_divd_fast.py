"""DIVD's fast inference path (channels_last, bf16 copy, explicit small-window attention) against
the reference float32 NCHW path."""
import copy

import pytest
import torch

from deblurdiff.errors import ConfigError
from deblurdiff.methods.divd import DIVD, bf16_is_fast
from deblurdiff.nn.layout import PointwiseConv2d, channels_last, set_inference_path
from deblurdiff.nn.unet2d import DIVDUNet
from deblurdiff.nn.wtsa import WindowTemporalAttention

TINY = dict(width=8, channel_mult=(1, 2), blocks=(1, 1), windows=(3, 1), heads=(1, 2), frames=4)


def randomise(module, std=0.2):
    torch.manual_seed(0)
    for p in module.parameters():  # make the zero-initialised gates and heads active
        torch.nn.init.normal_(p, std=std)
    return module


@pytest.mark.parametrize("size", [(12, 12), (13, 10)])  # the second needs padded (masked) windows
def test_explicit_window_attention_equals_sdpa(size):
    attn = randomise(WindowTemporalAttention(16, 3, frames=4, heads=2)).eval()
    x = torch.randn(8, 16, *size)
    with torch.no_grad():
        ref = attn(x, 4)
        fast = set_inference_path(attn)(x.contiguous(memory_format=torch.channels_last), 4)
        assert channels_last(fast)  # the layout of the residual it is added to (a mixed-layout add is slow)
        set_inference_path(attn, False)
        assert torch.equal(attn(x.contiguous(memory_format=torch.channels_last), 4), ref)  # unmarked: SDPA
    torch.testing.assert_close(fast, ref, atol=1e-5, rtol=1e-5)


def test_pointwise_conv_is_a_conv_with_the_same_state_dict():
    torch.manual_seed(6)
    conv, plain = PointwiseConv2d(16, 24), torch.nn.Conv2d(16, 24, 1)
    plain.load_state_dict(conv.state_dict())
    x = torch.randn(2, 16, 9, 7).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        fast = set_inference_path(conv)(x)
        assert channels_last(fast)  # the view trick keeps the layout, no copy
        torch.testing.assert_close(fast, plain(x), atol=1e-5, rtol=1e-5)


def test_unet_channels_last_keeps_its_layout_and_values():
    ref_net = randomise(DIVDUNet(**{k: v for k, v in TINY.items()})).eval()
    net = set_inference_path(copy.deepcopy(ref_net))
    x, c = torch.randn(2, 4, 3, 12, 12), torch.randn(2, 4, 3, 12, 12)
    seen = []
    hook = lambda mod, inp, out: seen.append(channels_last(out))
    handles = [b.register_forward_hook(hook) for blocks in net.dec_blocks for b in blocks]
    cl = lambda y: y.flatten(0, 1).contiguous(memory_format=torch.channels_last).unflatten(0, y.shape[:2])
    with torch.no_grad():
        ref = ref_net.forward_clip(x, c, torch.tensor([3, 700]))
        fast = net.forward_clip(cl(x), cl(c), torch.tensor([3, 700]))
        assert seen and all(seen)  # the decoder stayed channels_last after PixelShuffle
        torch.testing.assert_close(fast, ref, atol=1e-5, rtol=1e-5)
        # one timestep for the batch: the time modulation is folded into the norm (another code path)
        torch.testing.assert_close(net.forward_clip(cl(x), cl(c), 250), ref_net.forward_clip(x, c, 250),
                                   atol=1e-5, rtol=1e-5)
    for h in handles:
        h.remove()


@pytest.mark.parametrize("prediction", ["x0", "edm"])
def test_restore_precisions_agree(prediction):
    model = randomise(DIVD(**TINY, prediction=prediction), std=0.1).eval()
    clip = torch.rand(1, 4, 3, 14, 11)
    run = lambda p: model.restore(clip, steps=3, precision=p, generator=torch.Generator().manual_seed(1))
    ref = run("reference")
    torch.testing.assert_close(run("fp32"), ref, atol=1e-5, rtol=0)
    bf16 = run("bf16")
    assert bf16.dtype == torch.float32 and bf16.shape == ref.shape
    mse = (bf16 - ref).square().mean()
    assert 10 * torch.log10(1 / mse) > 35  # bf16 weights: close, not equal
    assert (run("auto") - (bf16 if bf16_is_fast(torch.device("cpu")) else run("fp32"))).abs().max() == 0
    with pytest.raises(ConfigError, match="precision"):
        run("fp8")


def test_bf16_copy_is_cached_and_follows_the_weights():
    model = randomise(DIVD(**TINY), std=0.1).eval()
    first = model._inference_net(torch.bfloat16)
    assert model._inference_net(torch.bfloat16) is first
    assert first.intro.weight.dtype == torch.bfloat16 and model.net.intro.weight.dtype == torch.float32
    assert "_inference_copy" not in "".join(model.state_dict())  # never saved
    with torch.no_grad():
        model.net.intro.weight.add_(1.0)  # a training step / load changes a version counter
    second = model._inference_net(torch.bfloat16)
    assert second is not first
    torch.testing.assert_close(second.intro.weight.float(), model.net.intro.weight, atol=0.02, rtol=0.01)


def test_small_window_attention_matches_softmax_even_when_a_row_underflows():
    from deblurdiff.nn.wtsa import small_window_attention

    torch.manual_seed(5)
    q, k, v = torch.randn(6, 36, 16), torch.randn(6, 36, 16), torch.randn(6, 36, 16)
    bias = torch.randn(36, 36)
    ref = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=bias)
    torch.testing.assert_close(small_window_attention(q, k, v, bias), ref, atol=1e-5, rtol=1e-5)
    far = bias.clone()
    far[3] -= 200.0  # query 3's logits all sit 200 below the rest: exp underflows after a global shift
    ref = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=far)
    out = small_window_attention(q, k, v, far)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
