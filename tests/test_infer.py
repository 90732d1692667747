import pytest
import torch

from deblurdiff.infer import blend_window, sample_statistics, sliding_windows, tiled, time_order_like
from deblurdiff.infer.tiles import pad_to_multiple


def test_blend_window_is_positive_and_partitions_unity_for_half_overlap():
    w = blend_window(32, 8)
    assert (w > 0).all() and w[8:24].eq(1).all()
    # raised-cosine ramps of two neighbouring tiles sum to one across the overlap
    assert torch.allclose(w[-8:] + w[:8], torch.ones(8), atol=1e-6)


def test_tiled_pointwise_function_equals_untiled():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 3, 70, 45, generator=g)
    fn = lambda t: torch.sigmoid(3 * t - 1)  # pointwise: tiling must not change it
    out = tiled(fn, x, tile=32, overlap=8)
    assert out.shape == x.shape
    torch.testing.assert_close(out, fn(x), atol=1e-6, rtol=1e-6)


def test_tiled_with_extra_output_axis():
    x = torch.rand(1, 3, 50, 50)
    fn = lambda t: torch.stack([t, 2 * t], dim=1)  # (B, C, h, w) -> (B, 2, C, h, w)
    out = tiled(fn, x, tile=24, overlap=6)
    torch.testing.assert_close(out, fn(x), atol=1e-6, rtol=1e-6)


def test_tiled_calls_function_on_bounded_crops():
    sizes = []
    x = torch.rand(1, 3, 100, 130)
    tiled(lambda t: sizes.append(t.shape[-2:]) or t, x, tile=40, overlap=10)
    assert all(h <= 40 and w <= 40 for h, w in sizes) and len(sizes) == 3 * 4


def test_sliding_windows_average_over_windows():
    clip = torch.arange(7.0).view(1, 7, 1, 1, 1).expand(1, 7, 1, 2, 2).clone()
    seen = []

    def fn(w):
        seen.append(w.shape[1])
        return w - w.mean(dim=1, keepdim=True)  # depends on the window: checks the averaging
    out = sliding_windows(fn, clip, frames=4, overlap=2)
    assert set(seen) == {4}
    # windows start at 0, 2, 3: frame 3 is held by all three, with offsets -1.5, +0.5, -0.5 ... computed directly
    expect = torch.zeros(7)
    count = torch.zeros(7)
    for s in (0, 2, 3):
        vals = torch.arange(s, s + 4, dtype=torch.float32)
        expect[s:s + 4] += vals - vals.mean()
        count[s:s + 4] += 1
    torch.testing.assert_close(out[0, :, 0, 0, 0], expect / count)


@pytest.mark.parametrize("per_call", [2, 3, 8])
def test_batched_windows_give_the_loop_result_in_fewer_calls(per_call):
    """Windows stacked on the batch axis (window-major) come back to the right frames: the result
    equals the one-window-per-call loop, for a window-dependent fn and a batch of two clips."""
    clip = torch.rand(2, 11, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    calls = []

    def fn(w):
        calls.append(w.shape[0])
        return w.cumsum(dim=1) - w.mean(dim=(1, 2, 3, 4), keepdim=True)
    loop = sliding_windows(fn, clip, frames=4, overlap=2)
    windows = len(calls)
    calls.clear()
    batched = sliding_windows(fn, clip, frames=4, overlap=2, batch_windows=per_call)
    torch.testing.assert_close(batched, loop, atol=1e-6, rtol=0)
    assert len(calls) == -(-windows // per_call) and max(calls) == 2 * min(per_call, windows)


def test_sliding_windows_short_clip_is_padded_and_cropped():
    clip = torch.rand(2, 2, 3, 4, 4)
    out = sliding_windows(lambda w: w * 1.0, clip, frames=4)
    torch.testing.assert_close(out, clip)


def test_sample_statistics_matches_torch():
    g = torch.Generator().manual_seed(1)
    draws = [torch.randn(3, 4, generator=g) for _ in range(5)]
    it = iter(draws)
    mean, std = sample_statistics(lambda: next(it), 5)
    stack = torch.stack(draws)
    torch.testing.assert_close(mean, stack.mean(0), atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(std, stack.std(0), atol=1e-6, rtol=1e-6)


def test_time_order_like_flips_only_the_clips_closer_reversed():
    g = torch.Generator().manual_seed(2)
    reference = torch.rand(3, 5, 2, 4, 4, generator=g)
    frames = reference + 0.01 * torch.randn(reference.shape, generator=g)
    frames[1] = frames[1].flip(0)  # clip 1 came out backwards
    ordered, rev = time_order_like(frames, reference)
    assert rev.tolist() == [False, True, False]
    torch.testing.assert_close(ordered[1], frames[1].flip(0))
    torch.testing.assert_close(ordered[[0, 2]], frames[[0, 2]])


def test_sample_statistics_aligns_draws_before_averaging():
    """Two draws of one clip, the second reversed: aligned to the first they agree (std 0);
    averaged as drawn they blur into a time-symmetric clip."""
    clip = torch.rand(1, 4, 3, 2, 2, generator=torch.Generator().manual_seed(3))
    draws = lambda: iter([clip, clip.flip(1)])  # noqa: E731
    it = draws()
    mean, std = sample_statistics(lambda: next(it), 2, align=lambda first, x: time_order_like(x, first)[0])
    torch.testing.assert_close(mean, clip)
    assert float(std.max()) < 1e-6
    it = draws()
    mean, _ = sample_statistics(lambda: next(it), 2)
    torch.testing.assert_close(mean, mean.flip(1))


def test_pad_to_multiple_keeps_content():
    x = torch.rand(1, 2, 3, 10, 13)
    y, (h, w) = pad_to_multiple(x, 8)
    assert y.shape[-2:] == (16, 16) and (h, w) == (10, 13)
    torch.testing.assert_close(y[..., :10, :13], x)


def test_tile_spans_cover_with_the_overlap_in_the_fewest_aligned_tiles():
    from deblurdiff.infer.tiles import tile_spans

    for length, tile, overlap, multiple in [(512, 256, 32, 24), (3840, 256, 32, 24), (721, 256, 32, 24),
                                            (1280, 200, 16, 8), (130, 40, 10, 1), (70, 32, 8, 1)]:
        size, starts = tile_spans(length, tile, overlap, multiple)
        largest = -(-tile // multiple) * multiple
        assert size % multiple == 0 and size <= largest and starts[0] == 0 and starts[-1] + size == length
        assert all(b - a <= size - overlap for a, b in zip(starts, starts[1:]))  # neighbours overlap enough
        assert len(starts) == -(-(length - overlap) // (largest - overlap))  # no fewer tiles could do it
        assert size - multiple < overlap + (length - overlap) / len(starts)  # the smallest aligned size that covers
    assert tile_spans(512, 256, 32, 24) == (192, [0, 160, 320])  # before: 3 tiles of 256 padded to 264
    assert tile_spans(250, 256, 32, 24) == (250, [0])


def test_tiled_with_a_multiple_equals_untiled_and_needs_no_padding():
    x = torch.rand(1, 2, 3, 100, 77)
    sizes = []
    fn = lambda t: sizes.append(tuple(t.shape[-2:])) or torch.tanh(2 * t)
    out = tiled(fn, x, tile=40, overlap=8, multiple=12)
    torch.testing.assert_close(out, torch.tanh(2 * x), atol=1e-6, rtol=1e-6)
    assert all(h % 12 == 0 and w % 12 == 0 and h <= 48 and w <= 48 for h, w in sizes)
