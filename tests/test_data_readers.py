"""Dataset readers on tiny fixtures written in each layout of CONVENTIONS.md."""
import numpy as np
import pytest
import torch

from deblurdiff.data import build_dataset
from deblurdiff.data.augment import augment
from deblurdiff.data.io import write_image, write_video
from deblurdiff.errors import ConfigError, InputError
from deblurdiff.train.config import DataConfig


def _frame(value, size=(12, 16)):
    """A frame whose top-left pixel encodes ``value`` (and a gradient so crops are visible)."""
    image = torch.zeros(3, *size)
    image[0] = torch.linspace(0, 1, size[1])
    image[1] = value / 255
    return image


def _pairs(blur_dir, sharp_dir, count, ext="png", offset=0, names=None):
    for i in range(count):
        name = names(i) if names else f"{i:06d}.{ext}"
        write_image(blur_dir / name, _frame(offset + i))
        write_image(sharp_dir / name, _frame(100 + offset + i))


def _values(tensor):
    return [round(v) for v in (tensor[..., 1, 0, 0] * 255).flatten().tolist()]


def _cfg(**kwargs):
    kwargs.setdefault("augment", False)
    kwargs.setdefault("crop", 0)
    return DataConfig(**kwargs)


def test_gopro_pairs_and_clips(tmp_path):
    for s, seq in enumerate(("GOPR0372_07_00", "GOPR0374_11_00")):
        base = tmp_path / "train" / seq
        _pairs(base / "blur", base / "sharp", 5, offset=10 * s)
        _pairs(base / "blur_gamma", base / "sharp_unused", 5, offset=50 + 10 * s)
    images = build_dataset(_cfg(source="gopro", root=str(tmp_path)))
    assert len(images) == 10
    assert _values(images[7]["blur"]) == [12] and _values(images[7]["sharp"]) == [112]
    gamma = build_dataset(_cfg(source="gopro", root=str(tmp_path), blur_folder="blur_gamma"))
    assert _values(gamma[0]["blur"]) == [50]
    clips = build_dataset(_cfg(source="gopro", mode="video", frames=3, root=str(tmp_path)))
    assert len(clips) == 6    # 3 windows per 5-frame sequence
    assert _values(clips[4]["blur"]) == [11, 12, 13] and clips[4]["sharp"].shape == (3, 3, 12, 16)
    with pytest.raises(ConfigError, match="exposure"):
        build_dataset(_cfg(source="gopro", mode="exposure", root=str(tmp_path)))
    with pytest.raises(InputError, match="test"):
        build_dataset(_cfg(source="gopro", split="test", root=str(tmp_path)))


def test_flat_layouts(tmp_path):
    _pairs(tmp_path / "restormer" / "test" / "input", tmp_path / "restormer" / "test" / "target", 3)
    _pairs(tmp_path / "mimo" / "train" / "blur", tmp_path / "mimo" / "train" / "sharp", 2, offset=5)
    restormer = build_dataset(_cfg(source="flat", split="test", root=str(tmp_path / "restormer")))
    assert len(restormer) == 3 and _values(restormer[2]["sharp"]) == [102]
    mimo = build_dataset(_cfg(source="flat", root=str(tmp_path / "mimo")))
    assert _values(mimo[1]["blur"]) == [6]


def test_dvd_splits_by_test_sequences(tmp_path):
    base = tmp_path / "quantitative_datasets"
    _pairs(base / "IMG_0003" / "input", base / "IMG_0003" / "GT", 2, ext="jpg", names=lambda i: f"{i:05d}.jpg")
    _pairs(base / "IMG_0200" / "input", base / "IMG_0200" / "GT", 3, ext="jpg", names=lambda i: f"{i:05d}.jpg")
    assert len(build_dataset(_cfg(source="dvd", root=str(tmp_path)))) == 3
    assert len(build_dataset(_cfg(source="dvd", split="test", root=str(tmp_path)))) == 2
    assert len(build_dataset(_cfg(source="dvd", split="all", root=str(tmp_path)))) == 5
    item = build_dataset(_cfg(source="dvd", split="test", root=str(tmp_path)))[1]
    assert abs(item["sharp"][1, 0, 0].item() * 255 - 101) <= 3       # JPEG


def test_reds_and_sequence_filter(tmp_path):
    for seq in ("000", "011"):
        _pairs(tmp_path / "train_blur" / seq, tmp_path / "train_sharp" / seq, 2,
               names=lambda i: f"{i:08d}.png", offset=int(seq))
    data = build_dataset(_cfg(source="reds", root=str(tmp_path), options={"sequences": ["011"]}))
    assert len(data) == 2 and _values(data[0]["blur"]) == [11]
    with pytest.raises(InputError, match="'020'"):
        build_dataset(_cfg(source="reds", root=str(tmp_path), options={"sequences": ["020"]}))


def test_folder_of_pairs_and_missing_partner(tmp_path):
    _pairs(tmp_path / "mine" / "input", tmp_path / "mine" / "GT", 3)
    assert len(build_dataset(_cfg(source="folder", root=str(tmp_path / "mine")))) == 3
    _pairs(tmp_path / "seqs" / "a" / "blur", tmp_path / "seqs" / "a" / "sharp", 2)
    _pairs(tmp_path / "seqs" / "b" / "blur", tmp_path / "seqs" / "b" / "sharp", 2)
    assert len(build_dataset(_cfg(source="folder", root=str(tmp_path / "seqs")))) == 4
    (tmp_path / "mine" / "GT" / "000001.png").unlink()
    with pytest.raises(InputError, match="000001.png: has no sharp partner"):
        build_dataset(_cfg(source="folder", root=str(tmp_path / "mine")))


def test_bair_arrays_and_folders_blurred_by_averaging(tmp_path):
    clip = np.stack([np.full((8, 8, 3), 10 * i, np.uint8) for i in range(12)])
    np.save(tmp_path / "clip0.npy", clip)
    np.savez(tmp_path / "many.npz", frames=np.stack([clip, clip[::-1]]))
    for i in range(10):
        write_image(tmp_path / "traj_7" / f"{i}.png", torch.full((3, 8, 8), i / 20))
    exposure = build_dataset(_cfg(source="bair", mode="exposure", subframes=10, root=str(tmp_path),
                                  options={"clip_stride": 2}))
    # clip0: starts 0, 2; many_0: 0, 2; many_1: 0, 2; traj_7: 0
    assert len(exposure) == 7
    item = exposure[1]
    assert item["frames"].shape == (10, 3, 8, 8)
    assert item["blur"][0, 0, 0].item() == pytest.approx(np.mean(np.arange(2, 12) * 10) / 255, abs=1e-6)
    assert item["sharp"][0, 0, 0].item() == pytest.approx(60 / 255)       # 5th of frames 2..11
    image = build_dataset(_cfg(source="bair", mode="image", subframes=4, root=str(tmp_path)))[0]
    assert image["subframes"].shape == (4, 3, 8, 8)
    linear = build_dataset(_cfg(source="bair", mode="image", subframes=4, root=str(tmp_path),
                                options={"linear": True}))[0]
    assert torch.allclose(linear["blur"], (linear["subframes"] ** 2.2).mean(0) ** (1 / 2.2), atol=1e-5)
    video = build_dataset(_cfg(source="bair", mode="video", frames=3, subframes=4, root=str(tmp_path)))[0]
    assert video["blur"].shape == (3, 3, 8, 8)
    assert video["blur"][:, 0, 0, 0].mul(255).round().tolist() == [15, 55, 95]
    with pytest.raises(ConfigError, match="needs clips of 40 frames"):
        build_dataset(_cfg(source="bair", mode="video", frames=4, subframes=10, root=str(tmp_path)))
    np.save(tmp_path / "bad.npy", np.zeros((4, 8, 8)))
    with pytest.raises(InputError, match="bad.npy"):
        build_dataset(_cfg(source="bair", root=str(tmp_path)))


def test_clevrer_and_video_sources(tmp_path):
    frames = torch.linspace(0, 1, 8)[:, None, None, None].expand(8, 3, 16, 16).contiguous()
    write_video(tmp_path / "video_train" / "video_00000-01000" / "video_00000.mp4", frames, fps=25)
    clevrer = build_dataset(_cfg(source="clevrer", mode="exposure", subframes=4, root=str(tmp_path)))
    assert len(clevrer) == 5
    assert clevrer[4]["blur"].mean().item() == pytest.approx(frames[4:8].mean().item(), abs=0.03)
    write_video(tmp_path / "single.avi", frames, fps=25)
    video = build_dataset(_cfg(source="video", mode="image", subframes=8, root=str(tmp_path / "single.avi")))
    assert len(video) == 1
    assert video[0]["blur"].mean().item() == pytest.approx(frames.mean().item(), abs=2 / 255)


def test_crops_are_aligned_and_reproducible(tmp_path):
    base = tmp_path / "train" / "seq"
    for i in range(4):
        sharp = torch.rand(3, 20, 24)
        write_image(base / "sharp" / f"{i}.png", sharp)
        write_image(base / "blur" / f"{i}.png", 1 - sharp)   # blur = inverse: alignment is checkable
    cfg = DataConfig(source="gopro", mode="video", frames=3, crop=8, augment=True, root=str(tmp_path))
    data = build_dataset(cfg)
    item = data[1]
    assert item["blur"].shape == (3, 3, 8, 8)
    assert torch.allclose(item["blur"], 1 - item["sharp"], atol=1.5 / 255)
    assert torch.equal(build_dataset(cfg)[1]["blur"], item["blur"])
    crops = set()
    for epoch in range(6):
        data.set_epoch(epoch)
        crops.add(tuple(data[1]["blur"].flatten()[:8].tolist()))
    assert len(crops) > 1
    centred = build_dataset(DataConfig(source="gopro", crop=8, augment=False, root=str(tmp_path)))[0]
    from deblurdiff.data.io import read_image
    assert torch.allclose(centred["sharp"], read_image(base / "sharp" / "0.png")[:, 6:14, 8:16])
    with pytest.raises(InputError, match="crop 32 is larger than the image"):
        build_dataset(DataConfig(source="gopro", crop=32, root=str(tmp_path)))[0]


def test_augment_applies_the_same_transform_to_all_keys():
    x = torch.arange(2 * 3 * 6 * 6, dtype=torch.float32).view(2, 3, 6, 6)
    for seed in range(8):
        out = augment({"a": x, "b": x.clone() + 1}, torch.Generator().manual_seed(seed), crop=4,
                      reverse_keys=("a", "b"))
        assert torch.equal(out["a"] + 1, out["b"])
        # The crop is a sub-window of some flip/rotation/reversal of x: values stay a subset.
        assert set(out["a"].flatten().tolist()) <= set(x.flatten().tolist())


def test_reader_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="data.root is required"):
        build_dataset(_cfg(source="gopro"))
    with pytest.raises(InputError, match="not found"):
        build_dataset(_cfg(source="gopro", root=str(tmp_path / "nope")))
    with pytest.raises(ConfigError, match="unknown key 'strides'"):
        build_dataset(_cfg(source="folder", root=str(tmp_path), options={"strides": 2}))
