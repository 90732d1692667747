"""build_dataset for the generated sources: the item contract, determinism, option checks."""
import pytest
import torch

from deblurdiff.data import build_dataset
from deblurdiff.errors import ConfigError
from deblurdiff.train.config import DataConfig


def _check_range(item):
    for value in item.values():
        assert value.dtype == torch.float32
        assert value.min() >= 0 and value.max() <= 1


@pytest.mark.parametrize("source", ["scenes", "shake"])
def test_item_contract_per_mode(source):
    image = build_dataset(DataConfig(source=source, mode="image", size=24, subframes=5, length=3))[1]
    assert image["blur"].shape == image["sharp"].shape == (3, 24, 24)
    assert image["subframes"].shape == (5, 3, 24, 24)
    assert torch.allclose(image["blur"], image["subframes"].mean(0), atol=1e-5)
    video = build_dataset(DataConfig(source=source, mode="video", size=24, frames=3, subframes=4, length=3))[0]
    assert video["blur"].shape == video["sharp"].shape == (3, 3, 24, 24)
    exposure = build_dataset(DataConfig(source=source, mode="exposure", size=24, subframes=10, length=3))[2]
    assert exposure["blur"].shape == (3, 24, 24) and exposure["frames"].shape == (10, 3, 24, 24)
    assert torch.equal(exposure["sharp"], exposure["frames"][4])
    for item in (image, video, exposure):
        _check_range(item)


@pytest.mark.parametrize("source", ["scenes", "shake"])
def test_items_are_deterministic_per_index_and_seed(source):
    cfg = dict(source=source, mode="image", size=16, subframes=4, length=5)
    first, again = build_dataset(DataConfig(**cfg)), build_dataset(DataConfig(**cfg))
    assert torch.equal(first[3]["blur"], again[3]["blur"])
    assert not torch.equal(first[3]["blur"], first[4]["blur"])
    other_seed = build_dataset(DataConfig(**cfg, seed=99))
    assert not torch.equal(first[3]["blur"], other_seed[3]["blur"])
    val = build_dataset(DataConfig(**cfg, split="val"))
    assert not torch.equal(first[3]["blur"], val[3]["blur"])
    with pytest.raises(IndexError):
        first[5]


def test_linear_light_option_changes_the_blur_only():
    base = dict(source="scenes", mode="image", size=24, subframes=6, length=2)
    encoded = build_dataset(DataConfig(**base))[0]
    linear = build_dataset(DataConfig(**base, options={"linear": True, "gamma": 2.2}))[0]
    assert torch.equal(encoded["sharp"], linear["sharp"])
    expected = (linear["subframes"] ** 2.2).mean(0) ** (1 / 2.2)
    assert torch.allclose(linear["blur"], expected, atol=1e-5)


def test_bad_configs_are_config_errors():
    with pytest.raises(ConfigError, match="unknown"):
        build_dataset(DataConfig(source="nonsense"))
    with pytest.raises(ConfigError, match="mode"):
        build_dataset(DataConfig(source="scenes", mode="clip"))
    with pytest.raises(ConfigError, match="max_shfit"):
        build_dataset(DataConfig(source="shake", options={"max_shfit": 3}))
    with pytest.raises(ConfigError, match="benchmark"):
        build_dataset(DataConfig(source="scenes", options={"photos": ["astronaut"]}))
    with pytest.raises(ConfigError, match="duty_cycle"):
        build_dataset(DataConfig(source="scenes", options={"duty_cycle": 1.5}))


def test_shake_over_user_photos(tmp_path):
    from deblurdiff.data.io import write_image

    write_image(tmp_path / "mine.png", torch.rand(3, 50, 60))
    item = build_dataset(DataConfig(source="shake", size=16, subframes=3, length=2, root=str(tmp_path)))[0]
    assert item["blur"].shape == (3, 16, 16) and item["subframes"].shape == (3, 3, 16, 16)


def test_crop_smaller_than_size_takes_an_aligned_window():
    full = build_dataset(DataConfig(source="scenes", mode="video", size=32, crop=0, frames=2, subframes=3, length=2))[1]
    cropped = build_dataset(DataConfig(source="scenes", mode="video", size=32, crop=16, frames=2, subframes=3, length=2))[1]
    assert cropped["blur"].shape == (2, 3, 16, 16)
    found = [(t, l) for t in range(17) for l in range(17)
             if torch.equal(full["blur"][..., t:t + 16, l:l + 16], cropped["blur"])]
    assert len(found) == 1
    t, l = found[0]
    assert torch.equal(full["sharp"][..., t:t + 16, l:l + 16], cropped["sharp"])
    same = build_dataset(DataConfig(source="scenes", mode="video", size=32, crop=64, frames=2, subframes=3, length=2))[1]
    assert torch.equal(same["blur"], full["blur"])     # a crop at least the size leaves items as rendered


def test_items_collate_into_batches():
    from torch.utils.data import DataLoader

    data = build_dataset(DataConfig(source="scenes", mode="exposure", size=16, subframes=4, length=4))
    batch = next(iter(DataLoader(data, batch_size=2)))
    assert batch["blur"].shape == (2, 3, 16, 16) and batch["frames"].shape == (2, 4, 3, 16, 16)


def test_gamma_option_accepts_srgb_and_rejects_nonsense():
    base = dict(source="scenes", mode="image", size=16, subframes=4, length=1)
    item = build_dataset(DataConfig(**base, options={"linear": True, "gamma": "srgb"}))[0]
    from deblurdiff.blur.formation import temporal_average
    assert torch.allclose(item["blur"], temporal_average(item["subframes"], "srgb", dim=0), atol=1e-6)
    with pytest.raises(ConfigError, match="gamma"):
        build_dataset(DataConfig(**base, options={"linear": True, "gamma": -1}))


def test_noise_std_adds_gaussian_noise_to_the_blur_only():
    base = dict(source="scenes", mode="exposure", size=32, subframes=4, length=1)
    clean = build_dataset(DataConfig(**base))[0]
    noisy = build_dataset(DataConfig(**base, options={"noise_std": 0.02}))[0]
    assert torch.equal(clean["frames"], noisy["frames"])
    difference = (noisy["blur"] - clean["blur"])[(clean["blur"] > 0.1) & (clean["blur"] < 0.9)]
    assert abs(difference.std().item() - 0.02) < 0.003 and abs(difference.mean().item()) < 0.003


def test_linear_and_noise_shares_are_per_item_draws():
    """``linear: 0.5`` averages about half the items in linear light (the blur is then exactly the
    linear-light mean of the item's sub-frames, else their plain mean); ``noise_share`` noises
    about that fraction of the items and leaves the others exactly noise-free."""
    from deblurdiff.blur.formation import temporal_average
    from deblurdiff.data import build_dataset
    from deblurdiff.train.config import DataConfig

    base = {"max_shift": 6.0, "max_rotation": 0.0, "photos": ["camera"]}
    linear = build_dataset(DataConfig(source="shake", size=24, crop=24, length=40, augment=False,
                                      options={**base, "linear": 0.5}))
    kinds = []
    for i in range(40):
        item = linear[i]
        if torch.allclose(item["blur"], temporal_average(item["subframes"], 2.2, dim=0), atol=1e-5):
            kinds.append("linear")
        elif torch.allclose(item["blur"], item["subframes"].mean(0), atol=1e-5):
            kinds.append("gamma")
    assert len(kinds) == 40 and 10 <= kinds.count("linear") <= 30

    noisy = build_dataset(DataConfig(source="shake", size=24, crop=24, length=40, augment=False,
                                     options={**base, "noise_std": 0.05, "noise_share": 0.3}))
    flags = [not torch.allclose(noisy[i]["blur"], noisy[i]["subframes"].mean(0), atol=1e-5) for i in range(40)]
    assert 4 <= sum(flags) <= 22


def _shake(length=6, **options):
    base = {"max_shift": 6.0, "max_rotation": 0.0, "photos": ["camera", "retina"]}
    return build_dataset(DataConfig(source="shake", size=48, crop=48, subframes=4, length=length, augment=False,
                                    options={**base, **options}))


def test_text_share_zero_is_todays_data():
    plain, zero = _shake(), _shake(text_share=0)
    for i in range(3):
        for key in ("blur", "sharp", "subframes"):
            assert torch.equal(plain[i][key], zero[i][key])


def test_text_share_one_puts_lettering_on_the_sharp_photo_and_its_blur():
    """Signs come from a generator of their own: the same index keeps its photo, crop and shake,
    and differs from the unsigned item only where the signs are (with their strong edges); the
    blur carries the shaken signs (the mean of the signed sub-frames), smoother than the sharp."""
    plain, signed = _shake(), _shake(text_share=1.0)
    for i in range(4):
        a, b = plain[i], signed[i]
        _check_range(b)
        assert b["blur"].shape == a["blur"].shape and b["sharp"].shape == a["sharp"].shape
        changed = (b["sharp"] - a["sharp"]).abs().amax(0) > 1e-3
        assert changed.any() and changed.float().mean() < 0.95
        edges = lambda x: (x[:, 1:, :] - x[:, :-1, :]).abs().sum() + (x[:, :, 1:] - x[:, :, :-1]).abs().sum()
        assert edges(b["sharp"]) > edges(a["sharp"])
        assert torch.allclose(b["blur"], b["subframes"].mean(0), atol=1e-5)
        assert not torch.equal(a["blur"], b["blur"])
        assert edges(b["blur"] - a["blur"]) < edges(b["sharp"] - a["sharp"])


def test_signed_item_without_motion_blurs_to_its_sharp_photo():
    item = _shake(text_share=1.0, max_shift=0.0, min_shift=0.0)[0]
    assert not torch.equal(item["sharp"], _shake(max_shift=0.0, min_shift=0.0)[0]["sharp"])
    assert torch.allclose(item["blur"], item["sharp"], atol=1e-5)


def test_text_share_is_a_per_item_draw_on_photo_items_only():
    plain, half = _shake(length=30), _shake(length=30, text_share=0.5)
    signed = sum(not torch.equal(plain[i]["sharp"], half[i]["sharp"]) for i in range(30))
    assert 6 <= signed <= 24
    scenes = dict(scene_share=1.0, photos=["camera"])
    for i in range(2):
        assert torch.equal(_shake(**scenes)[i]["blur"], _shake(**scenes, text_share=1.0)[i]["blur"])


def test_bad_text_share_is_a_config_error():
    for value in (-0.1, 1.5, "some"):
        with pytest.raises(ConfigError, match="text_share"):
            _shake(text_share=value)


# --- data echoing (data.options.echo) ---

def _echo_cfg(source="shake", mode="image", echo=None, **options):
    """A small generated dataset; ``echo`` None leaves the option unset."""
    return DataConfig(source=source, mode=mode, size=16, frames=2, subframes=3, length=48,
                      options={"noise_std": 0.02, **options, **({} if echo is None else {"echo": echo})})


def test_echo_one_is_the_plain_dataset():
    """``echo: 1`` takes the plain path: no transform, no cache (bit-identity with the code before
    echo was checked by hashing items of both versions)."""
    plain, once = build_dataset(_echo_cfg()), build_dataset(_echo_cfg(echo=1))
    for i in (0, 5, 47):
        a, b = plain[i], once[i]
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert plain.echo == once.echo == 1 and not once._cache


@pytest.mark.parametrize("source,mode,echo", [("shake", "image", 8), ("shake", "video", 3), ("scenes", "exposure", 4),
                                              ("scenes", "image", 2)])
def test_echo_uses_of_a_render_are_its_distinct_dihedral_transforms(source, mode, echo):
    """Known answer: items ``r*K .. r*K+K-1`` are item ``r`` of the plain dataset under K distinct
    flips/turns, the same one for every tensor of the item (echo 8: all eight)."""
    from deblurdiff.data.augment import dihedral

    plain, echoed = build_dataset(_echo_cfg(source, mode)), build_dataset(_echo_cfg(source, mode, echo))
    for render in (0, 5):
        original = plain[render]
        found = []
        for use in range(echo):
            item = echoed[render * echo + use]
            matches = [t for t in range(8)
                       if all(torch.equal(item[k], dihedral(original, t)[k]) for k in original)]
            assert len(matches) == 1 and item.keys() == original.keys()
            found += matches
        assert len(set(found)) == echo and found == echoed.echo_transforms(render)
    assert {t for r in range(40) for t in echoed.echo_transforms(r)[:1]} != {0}  # the first use is not always plain


def test_echo_items_are_reproducible_and_independent_of_the_cache():
    import copy

    first, second = build_dataset(_echo_cfg(echo=4)), build_dataset(_echo_cfg(echo=4))
    order = [9, 3, 10, 8, 11, 2, 40, 0, 1]
    got = {i: first[i] for i in order}
    fresh = copy.deepcopy(first)  # as a loader worker gets it: an empty cache
    assert not fresh._cache
    for i in reversed(order):
        for other in (second, fresh):
            item = other[i]
            assert all(torch.equal(item[k], got[i][k]) for k in item)
    written, clean = build_dataset(_echo_cfg(echo=8)), build_dataset(_echo_cfg(echo=8))
    for use in range(8):  # writing into an item, whatever its transform, must not reach the cached render
        item = written[16 + use]
        assert all(torch.equal(item[k], clean[16 + use][k]) and item[k].is_contiguous() for k in item)
        for value in item.values():
            value.zero_()


def test_echo_cache_is_bounded_and_frees_a_render_after_its_last_use():
    data = build_dataset(_echo_cfg(echo=2, echo_cache=3))
    assert data.echo_cache == 3
    for render in range(10):
        data[2 * render]
        assert len(data._cache) <= 3
    assert list(data._cache) == [7, 8, 9]
    data[19]
    assert list(data._cache) == [7, 8]  # render 9's second and last use
    big = build_dataset(DataConfig(source="shake", size=128, crop=128, subframes=8, length=10,
                                   options={"echo": 2, "max_shift": 30.0}))
    assert big.echo_cache * 33 * 3 * 128 * 128 * 4 <= 512 * 2**20  # 31 sub-frames + blur + sharp per render


@pytest.mark.parametrize("workers,echo", [(0, 2), (2, 4), (3, 3)])
def test_echo_renders_once_per_echo_items_in_the_training_order(monkeypatch, workers, echo):
    """Over the trainer's batch order, with each loader worker's own copy of the dataset taking
    every ``workers``-th batch (the loader's round robin), every render is made once and all its
    uses hit the cache; the cache stays within its bound."""
    import copy

    from deblurdiff.data.synthetic import ShakeDataset
    from deblurdiff.train.data import ShardedBatches

    calls = []
    render = ShakeDataset._render
    monkeypatch.setattr(ShakeDataset, "_render", lambda self, index: calls.append(index) or render(self, index))
    cache = (8 if workers < 2 else 4) + 1  # the live renders (two batches of 4; one per worker from 2) + a spare
    data = build_dataset(DataConfig(source="shake", size=16, subframes=3, length=144, options={"echo": echo,
                                                                                              "echo_cache": cache}))
    sampler = ShardedBatches(len(data), 4, 1, 0, seed=3, echo=echo, echo_cache=data.echo_cache, workers=workers)
    copies = [copy.deepcopy(data) for _ in range(max(workers, 1))]
    items = 0
    for k, batch in enumerate(sampler.epoch_batches()):
        worker = copies[k % len(copies)]
        for index, _ in batch:
            worker[index]
            assert len(worker._cache) <= cache
        items += len(batch)
    assert items >= 96 and len(calls) == items // echo == len(set(calls))
    assert not any(worker._cache for worker in copies)  # every render freed after its last use


def test_echo_option_errors_say_what_to_do():
    with pytest.raises(ConfigError, match=r"echo must be a whole number from 1 to 8.*got 9"):
        build_dataset(_echo_cfg(echo=9))
    for bad in (0, 2.0, True, "2"):
        with pytest.raises(ConfigError, match="data.options.echo"):
            build_dataset(DataConfig(source="scenes", size=16, options={"echo": bad}))
    with pytest.raises(ConfigError, match="augment: false.*leave echo at 1"):
        build_dataset(DataConfig(source="shake", size=16, split="val", augment=False, options={"echo": 2}))
    with pytest.raises(ConfigError, match="echo_cache must be a whole number >= 1"):
        build_dataset(_echo_cfg(echo=2, echo_cache=0))
    from deblurdiff.train.data import ShardedBatches

    with pytest.raises(ConfigError, match="echo_cache 7 is below the 8 renders.*at least 8"):
        ShardedBatches(100, 4, 1, 0, seed=0, echo=2, echo_cache=7, workers=1)
    with pytest.raises(ConfigError, match="20 training items 5 renders.*larger data.length or lower echo"):
        ShardedBatches(20, 4, 1, 0, seed=0, echo=4)


def test_dihedral_transforms_are_the_flips_then_a_turn():
    from deblurdiff.data.augment import dihedral

    item = {"blur": torch.rand(3, 5, 5), "frames": torch.rand(4, 3, 5, 5)}
    seen = []
    for t in range(8):
        out = dihedral(item, t)
        for k, v in item.items():
            v = v.flip(-1) if t & 1 else v
            v = v.flip(-2) if t & 2 else v
            assert torch.equal(out[k], v.rot90(1, dims=(-2, -1)) if t & 4 else v)
        seen.append(out["blur"])
    assert all(not torch.equal(a, b) for i, a in enumerate(seen) for b in seen[:i])  # 8 distinct


def test_dihedral_keeps_to_flips_on_non_square_items():
    from deblurdiff.data.augment import dihedral, dihedral_count
    from deblurdiff.errors import InputError

    item = {"blur": torch.rand(3, 4, 6), "frames": torch.rand(2, 3, 4, 6)}
    assert dihedral_count(4, 6) == 4 and dihedral_count(5, 5) == 8
    assert torch.equal(dihedral(item, 3)["frames"], item["frames"].flip(-1).flip(-2))
    with pytest.raises(InputError, match="90 degree turns need square items"):
        dihedral(item, 4)
