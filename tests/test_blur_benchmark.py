"""The embedded benchmark: disjoint from training, deterministic, layout and readers."""
import json

import pytest
import torch

from deblurdiff.blur import benchmark
from deblurdiff.blur.sources import (BENCHMARK_PHOTOS, BENCHMARK_SEED_BASE, TRAIN_PHOTOS, TRAIN_SEED_LIMIT,
                                     load_photo, training_seed)
from deblurdiff.data import build_dataset
from deblurdiff.data.benchmark import BenchmarkDataset, read_exposure_part, read_image_part, read_video_part
from deblurdiff.errors import InputError
from deblurdiff.train.config import DataConfig


def test_benchmark_photos_and_seeds_never_reach_training():
    assert not set(BENCHMARK_PHOTOS) & set(TRAIN_PHOTOS)
    assert set(benchmark.IMAGE_PHOTOS) <= set(BENCHMARK_PHOTOS)
    # No training photo is a benchmark picture under another name (compare the pixels).
    bench_pixels = {tuple(load_photo(name).shape): load_photo(name) for name in BENCHMARK_PHOTOS}
    for name in TRAIN_PHOTOS:
        photo = load_photo(name)
        twin = bench_pixels.get(tuple(photo.shape))
        assert twin is None or not torch.equal(photo, twin), name
    assert min(benchmark.ALL_SEEDS) >= BENCHMARK_SEED_BASE > TRAIN_SEED_LIMIT
    assert len(set(benchmark.ALL_SEEDS)) == len(benchmark.ALL_SEEDS)
    seeds = [training_seed(base, index, split) for base in (0, 1234, -5, 2 ** 63 - 1)
             for index in (0, 1, 10 ** 9) for split in ("train", "val")]
    assert all(0 <= s < TRAIN_SEED_LIMIT for s in seeds)
    # The generated training sources refuse benchmark photos.
    from deblurdiff.errors import ConfigError
    with pytest.raises(ConfigError):
        build_dataset(DataConfig(source="shake", options={"photos": ["coffee"]}))


def test_benchmark_items_are_deterministic():
    a, b = benchmark.exposure_case(3), benchmark.exposure_case(3)
    assert torch.equal(a["blur"], b["blur"]) and torch.equal(a["frames"], b["frames"])
    assert not torch.equal(a["blur"], benchmark.exposure_case(4)["blur"])
    pair = benchmark.image_pair(0)
    assert pair["blur"].shape == pair["sharp"].shape == (3, 256, 256)
    assert torch.equal(pair["blur"], benchmark.image_pair(0)["blur"])
    assert (pair["blur"] - pair["sharp"]).abs().mean() > 0.005   # it is actually blurred


@pytest.fixture(scope="module")
def small_benchmark(tmp_path_factory):
    """The real writer with fewer items per part (counts are read at call time)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(benchmark, "IMAGE_COUNT", 4)
        patch.setattr(benchmark, "VIDEO_COUNT", 4)
        patch.setattr(benchmark, "VIDEO_FRAMES", 3)
        patch.setattr(benchmark, "VIDEO_SIZE", 32)
        patch.setattr(benchmark, "EXPOSURE_COUNT", 4)
        out = tmp_path_factory.mktemp("benchmark") / "bench"
        benchmark.write_benchmark(out)
    return out


def test_layout_manifest_and_readers(small_benchmark):
    out = small_benchmark
    assert sorted(p.name for p in (out / "image" / "blur").iterdir()) == ["000.png", "001.png", "002.png", "003.png"]
    assert sorted(p.name for p in (out / "video" / "clip00" / "sharp").iterdir()) == ["00.png", "01.png", "02.png"]
    assert sorted(p.name for p in (out / "exposure" / "case03" / "frames").iterdir()) == [f"{i:02d}.png" for i in range(10)]
    assert (out / "exposure" / "case00" / "blur.png").is_file() and (out / "preview.png").is_file()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["version"] == benchmark.VERSION
    assert manifest["image"]["seeds"][:4] == list(benchmark.IMAGE_SEEDS[:4])
    images = read_image_part(out)
    assert images["blur"].shape == (4, 3, 256, 256)
    assert torch.allclose(images["blur"][1], benchmark.image_pair(1)["blur"], atol=0.5 / 255 + 1e-6)
    videos = read_video_part(out)
    assert videos["sharp"].shape == (4, 3, 3, 32, 32)
    exposure = read_exposure_part(out)
    assert exposure["frames"].shape == (4, 10, 3, 64, 64)
    assert torch.equal(exposure["sharp"], exposure["frames"][:, 4])
    # Blur equals the mean of its sub-frames up to the 8-bit rounding of each file.
    assert (exposure["blur"] - exposure["frames"].mean(1)).abs().max() <= 1.0 / 255 + 1e-6
    item = BenchmarkDataset(out, "video")[2]
    assert torch.equal(item["blur"], videos["blur"][2])


def test_readers_reject_incomplete_benchmarks(small_benchmark, tmp_path):
    with pytest.raises(InputError, match="synth --benchmark"):
        read_image_part(tmp_path / "nowhere")
    import shutil
    small_benchmark = shutil.copytree(small_benchmark, tmp_path / "copy")
    shutil.rmtree(small_benchmark / "exposure" / "case02")
    with pytest.raises(InputError, match="3 items but the manifest lists 4"):
        read_exposure_part(small_benchmark)
    (small_benchmark / "image" / "sharp" / "001.png").unlink()
    with pytest.raises(InputError, match="001.png"):
        BenchmarkDataset(small_benchmark, "image")
