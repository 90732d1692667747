"""VideoDiT (STDiT-style prior of VDM-MD): shapes, adaLN-zero identity, RoPE, axis separation."""
import pytest
import torch
from diffusers.models.embeddings import apply_rotary_emb

from deblurdiff.errors import ConfigError, InputError
from deblurdiff.nn.video_dit import VideoDiT


def tiny(**kw):
    torch.manual_seed(0)
    args = dict(in_channels=3, sample_size=8, num_frames=6, hidden_size=32, depth=2, num_heads=4)
    args.update(kw)
    return VideoDiT(**args)


def randomise_zero_inits(model):
    """adaLN-zero makes a fresh model the identity; give the zero layers weights to test mixing."""
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "adaln" in name or "proj_out" in name:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.2)
    return model


def test_output_shape_and_learned_sigma():
    x = torch.randn(2, 6, 3, 8, 8)
    t = torch.tensor([3, 900])
    assert tiny()(x, t).shape == (2, 6, 3, 8, 8)
    assert tiny(learn_sigma=True)(x, t).shape == (2, 6, 6, 8, 8)
    # temporal patches of 2 and a non-square latent still round-trip the layout
    assert tiny(patch_size=(2, 2, 2))(torch.randn(1, 6, 3, 8, 12), torch.tensor([5])).shape == (1, 6, 3, 8, 12)


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(InputError):
        tiny()(torch.randn(1, 6, 4, 8, 8), torch.tensor([1]))
    with pytest.raises(InputError):
        tiny()(torch.randn(1, 6, 3, 7, 8), torch.tensor([1]))
    with pytest.raises(ConfigError):
        VideoDiT(hidden_size=30, num_heads=4)


def test_adaln_zero_blocks_start_as_identity():
    model = tiny()
    tokens, _ = model.embed(torch.randn(2, 6, 3, 8, 8))
    c = model.time_embed(model.time_proj(torch.tensor([10, 500])))
    rope = model.rope(6, tokens.device)
    for block in model.blocks:
        assert torch.equal(block(tokens, c, rope), tokens)
    assert torch.count_nonzero(model(torch.randn(2, 6, 3, 8, 8), torch.tensor([1, 2]))) == 0
    # and the zero-initialised layers are the only reason: randomised, blocks change their input
    randomise_zero_inits(model)
    assert not torch.allclose(model.blocks[0](tokens, c, rope), tokens)


def test_rope_scores_depend_only_on_time_offset():
    model = tiny()
    frames = 7
    cos, sin = model.rope(frames, "cpu")
    gen = torch.Generator().manual_seed(0)
    q = torch.randn(1, 1, 1, 8, generator=gen).expand(1, 1, frames, 8)
    k = torch.randn(1, 1, 1, 8, generator=gen).expand(1, 1, frames, 8)
    qr = apply_rotary_emb(q, (cos, sin), use_real=True, use_real_unbind_dim=-1)
    kr = apply_rotary_emb(k, (cos, sin), use_real=True, use_real_unbind_dim=-1)
    scores = (qr[0, 0] @ kr[0, 0].T)
    # Toeplitz: every diagonal (fixed offset i - j) is constant ...
    assert torch.allclose(scores[1:, 1:], scores[:-1, :-1], atol=1e-5)
    # ... but different offsets give different scores (position is really encoded)
    assert scores.diagonal(0).mean().sub(scores.diagonal(2).mean()).abs() > 1e-3
    # rotation preserves norms
    assert torch.allclose(qr.norm(dim=-1), q.norm(dim=-1), atol=1e-5)


def test_spatial_blocks_keep_frames_independent_and_temporal_blocks_mix_them():
    model = randomise_zero_inits(tiny()).eval()
    x = torch.randn(1, 6, 3, 8, 8)
    x2 = x.clone()
    x2[:, 2] += torch.randn(3, 8, 8)
    t = torch.tensor([100])
    full = model(x2, t) - model(x, t)
    others = [0, 1, 3, 4, 5]
    assert full[:, others].abs().max() > 1e-4  # the full model mixes frames
    model.blocks = torch.nn.ModuleList([b for b in model.blocks if not b.temporal])
    spatial_only = model(x2, t) - model(x, t)
    assert spatial_only[:, 2].abs().max() > 1e-4
    assert spatial_only[:, others].abs().max() == 0


def test_temporal_blocks_keep_spatial_positions_independent():
    model = randomise_zero_inits(tiny())
    tokens, _ = model.embed(torch.randn(1, 6, 3, 8, 8))
    c = model.time_embed(model.time_proj(torch.tensor([100])))
    rope = model.rope(6, "cpu")
    temporal = [b for b in model.blocks if b.temporal][0]
    changed = tokens.clone()
    changed[:, 3, 5] += torch.randn(tokens.shape[-1])  # one token: frame 3, spatial position 5
    # (a random change: a constant shift would be removed by the LayerNorm)
    delta = (temporal(changed, c, rope) - temporal(tokens, c, rope)).abs().amax(dim=-1)[0]  # (F, S)
    assert delta[:, 5].min() > 1e-5  # all frames at that position see it
    delta[:, 5] = 0
    assert delta.max() == 0  # no other spatial position does


def test_gradient_checkpointing_matches_plain_backward():
    model = randomise_zero_inits(tiny())
    x = torch.randn(1, 6, 3, 8, 8, requires_grad=True)
    t = torch.tensor([50])
    (g_plain,) = torch.autograd.grad(model(x, t).square().sum(), x)
    model.enable_gradient_checkpointing()
    (g_ckpt,) = torch.autograd.grad(model(x, t).square().sum(), x)
    assert torch.allclose(g_plain, g_ckpt, atol=1e-5)


def test_save_load_round_trip(tmp_path):
    model = randomise_zero_inits(tiny(learn_sigma=True)).eval()  # from_pretrained returns eval mode
    model.save_pretrained(tmp_path)
    loaded = VideoDiT.from_pretrained(tmp_path)
    x, t = torch.randn(1, 6, 3, 8, 8), torch.tensor([7])
    assert loaded.config.learn_sigma and loaded.config.hidden_size == 32
    saved, back = model.state_dict(), loaded.state_dict()
    assert saved.keys() == back.keys() and all(torch.equal(saved[k], back[k]) for k in saved)
    # Bit-equal weights; the outputs may differ in the last bit because memory-mapped tensors are
    # aligned differently and the CPU kernels then sum in another order.
    assert torch.allclose(model(x, t), loaded(x, t), atol=1e-5)


def test_xl2_configuration_size():
    with torch.device("meta"):
        xl = VideoDiT(hidden_size=1152, depth=28, num_heads=16)
    assert len(xl.blocks) == 56
    assert 1.2e9 < sum(p.numel() for p in xl.parameters()) < 1.5e9
