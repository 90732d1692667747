"""WTSA + MRPE checked against naive loop-based reference implementations."""
import itertools
import math

import pytest
import torch

from deblurdiff.nn.wtsa import WindowTemporalAttention, WTSABlock, relative_position_index


def reference_index(frames, window):
    """Bias-table row of every token pair, by explicit loops over (f, y, x)."""
    coords = list(itertools.product(range(frames), range(window), range(window)))
    span = 2 * window - 1
    idx = torch.empty(len(coords), len(coords), dtype=torch.long)
    for i, (fi, yi, xi) in enumerate(coords):
        for j, (fj, yj, xj) in enumerate(coords):
            idx[i, j] = ((fi - fj + frames - 1) * span + (yi - yj + window - 1)) * span + (xi - xj + window - 1)
    return idx


def reference_attention(module, x, frames):
    """Per-window softmax attention written with loops over windows and explicit token gathering."""
    bf, c, h, w = x.shape
    m, heads = module.window, module.heads
    d = c // heads
    out = torch.zeros_like(x)
    group = frames if module.temporal else 1
    clips = bf // group
    table = module.bias_table if module.mrpe else None
    span = 2 * m - 1
    for clip in range(clips):
        for wy in range(math.ceil(h / m)):
            for wx in range(math.ceil(w / m)):
                coords, feats = [], []
                for f in range(group):
                    for y in range(m):
                        for xx in range(m):
                            py, px = wy * m + y, wx * m + xx
                            if py >= h or px >= w:
                                continue  # padded token: not a key, no output
                            frame = clip * group + f
                            tok = x[frame, :, py, px]
                            if module.mrpe:
                                tok = tok + module.frame_embedding[frame % frames]
                            coords.append((frame, f, y, xx, py, px))
                            feats.append(tok)
                tokens = torch.stack(feats)
                q, k, v = module.qkv(tokens).chunk(3, dim=-1)
                result = torch.zeros(len(coords), c)
                for head in range(heads):
                    sl = slice(head * d, (head + 1) * d)
                    logits = q[:, sl] @ k[:, sl].T / math.sqrt(d)
                    if module.mrpe:
                        for i, ci in enumerate(coords):
                            for j, cj in enumerate(coords):
                                row = ((ci[1] - cj[1] + group - 1) * span + (ci[2] - cj[2] + m - 1)) * span \
                                    + (ci[3] - cj[3] + m - 1)
                                logits[i, j] += table[row, head]
                    result[:, sl] = torch.softmax(logits, dim=-1) @ v[:, sl]
                result = module.proj(result)
                for i, (frame, _, _, _, py, px) in enumerate(coords):
                    out[frame, :, py, px] = result[i]
    return out


@pytest.mark.parametrize("frames,window", [(1, 1), (4, 1), (2, 3), (4, 2), (3, 4)])
def test_relative_position_index_matches_loops(frames, window):
    idx = relative_position_index(frames, window)
    assert torch.equal(idx, reference_index(frames, window))
    assert idx.min() == 0 and idx.max() == (2 * frames - 1) * (2 * window - 1) ** 2 - 1


def test_token_layout_matches_loops():
    from einops import rearrange
    b, f, c, h, w, m = 2, 3, 5, 6, 4, 2
    x = torch.randn(b * f, c, h, w)
    tokens = rearrange(x, "(b f) c (nh m1) (nw m2) -> (b nh nw) (f m1 m2) c", f=f, m1=m, m2=m)
    assert tokens.shape == (b * (h // m) * (w // m), f * m * m, c)
    for bi, wy, wx in itertools.product(range(b), range(h // m), range(w // m)):
        win = (bi * (h // m) + wy) * (w // m) + wx
        for fi, y, xx in itertools.product(range(f), range(m), range(m)):
            assert torch.equal(tokens[win, (fi * m + y) * m + xx], x[bi * f + fi, :, wy * m + y, wx * m + xx])


def test_mrpe_bias_shape_and_indexing():
    torch.manual_seed(0)
    frames, m, heads = 3, 2, 2
    attn = WindowTemporalAttention(8, m, frames, heads)
    assert attn.bias_table.shape == ((2 * frames - 1) * (2 * m - 1) ** 2, heads)
    assert attn.frame_embedding.shape == (frames, 8)
    bias = attn.relative_bias(frames)
    assert bias.shape == (heads, frames * m * m, frames * m * m)
    ref = reference_index(frames, m)
    for i, j in [(0, 0), (1, 5), (11, 2), (7, 7)]:
        assert torch.equal(bias[:, i, j], attn.bias_table[ref[i, j]])
    # pairs with the same (frame, dy, dx) offset share a bias; token 0=(0,0,0), 5=(1,0,1); 6=(1,1,0), 11=(2,1,1)
    assert torch.equal(bias[:, 5, 0], bias[:, 11, 6])
    # a shorter clip uses the top-left block of the full bias
    assert torch.equal(attn.relative_bias(2), bias[:, :8, :8])


@pytest.mark.parametrize("temporal,mrpe,h,w", [(True, True, 4, 6), (True, True, 5, 7), (False, True, 5, 4),
                                              (True, False, 3, 5), (False, False, 4, 4)])
def test_attention_equals_naive_per_window_softmax(temporal, mrpe, h, w):
    torch.manual_seed(1)
    frames, m, heads, c = 3, 2, 2, 8
    attn = WindowTemporalAttention(c, m, frames, heads, temporal=temporal, mrpe=mrpe).eval()
    if mrpe:  # larger values than the init so the bias visibly matters
        torch.nn.init.normal_(attn.bias_table, std=1.0)
        torch.nn.init.normal_(attn.frame_embedding, std=1.0)
    x = torch.randn(2 * frames, c, h, w)
    with torch.no_grad():
        out = attn(x, frames)
        ref = reference_attention(attn, x, frames)
    assert out.shape == x.shape
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)


def test_window_chunking_does_not_change_output():
    torch.manual_seed(2)
    attn = WindowTemporalAttention(8, 2, 4, 2).eval()
    x = torch.randn(4, 8, 10, 6)
    with torch.no_grad():
        full = attn(x, 4)
        attn.max_windows_per_chunk = 4
        torch.testing.assert_close(attn(x, 4), full)


def test_padding_does_not_leak_into_real_pixels():
    """Output at real pixels equals the output computed on the explicitly cropped valid region
    when the crop is itself a multiple of the window (padding masked, not attended)."""
    torch.manual_seed(3)
    attn = WindowTemporalAttention(8, 3, 2, 1).eval()
    x = torch.randn(2, 8, 7, 6)
    with torch.no_grad():
        out = attn(x, 2)
        top = attn(x[:, :, :6, :6], 2)
    torch.testing.assert_close(out[:, :, :6, :6], top)


def test_temporal_flag_controls_cross_frame_flow():
    torch.manual_seed(4)
    x = torch.randn(4, 8, 6, 6)
    x2 = x.clone()
    x2[1] += 1.0  # change frame 1 only
    for temporal in (True, False):
        attn = WindowTemporalAttention(8, 3, 4, 2, temporal=temporal).eval()
        with torch.no_grad():
            changed = (attn(x, 4)[0] - attn(x2, 4)[0]).abs().max()
        assert (changed > 1e-4) if temporal else (changed < 1e-6)


def test_without_mrpe_frames_are_exchangeable_and_with_mrpe_they_are_not():
    torch.manual_seed(5)
    x = torch.randn(4, 8, 4, 4)
    perm = torch.tensor([2, 0, 3, 1])
    for mrpe in (False, True):
        attn = WindowTemporalAttention(8, 2, 4, 2, mrpe=mrpe).eval()
        if mrpe:
            torch.nn.init.normal_(attn.frame_embedding, std=1.0)
        with torch.no_grad():
            diff = (attn(x[perm], 4) - attn(x, 4)[perm]).abs().max()
        assert (diff > 1e-4) if mrpe else (diff < 1e-5)
    assert not hasattr(WindowTemporalAttention(8, 2, 4, 2, mrpe=False), "bias_table")


def test_shorter_clip_and_block_identity_at_init():
    torch.manual_seed(6)
    block = WTSABlock(8, 2, frames=4, heads=2)
    x = torch.randn(2 * 3, 8, 5, 5)
    assert torch.equal(block(x, 3), x)  # residual scales start at zero
    with pytest.raises(ValueError):
        block(torch.randn(5, 8, 4, 4), 3)
    with pytest.raises(ValueError):
        block(torch.randn(10, 8, 4, 4), 5)
