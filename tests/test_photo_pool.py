"""The training photo pool: fetched from package archives with their licences, atomically, and
drawn on by the training sources instead of scikit-image's photos."""
import json
import shutil
import subprocess
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from deblurdiff.blur import photos
from deblurdiff.blur.sources import TRAIN_PHOTOS, default_training_photos, load_photo
from deblurdiff.errors import ConfigError, InputError

COPYRIGHT = """Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: fake-backgrounds

Files: *
Copyright: 2020 Someone
License: GPL-2+

Files: 16.04/Lake_by_Ann.jpg
Copyright: 2018 Ann
License: CC-BY-4.0

Files: nature/Tree.jpg
       nature/Rock.jpg
Copyright: 2019 Bob
License: CC0-1.0

Files: debian/*
Copyright: 2021 Packager
License: GPL-3+
"""


def _photo(path, size, seed):
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, (*size[::-1], 3), dtype=np.uint8)).save(path, quality=95)


@pytest.fixture
def archives(tmp_path):
    """A Debian package and a wheel in the layouts the registries serve, holding small photos."""
    if shutil.which("dpkg-deb") is None:
        pytest.skip("dpkg-deb is not installed")
    root = tmp_path / "pkg"
    _photo(root / "usr/share/backgrounds/Lake_by_Ann.jpg", (400, 300), 0)
    _photo(root / "usr/share/backgrounds/nature/Tree.jpg", (2000, 1000), 1)
    (root / "usr/share/doc/fake-backgrounds").mkdir(parents=True)
    (root / "usr/share/doc/fake-backgrounds/copyright").write_text(COPYRIGHT)
    (root / "DEBIAN").mkdir()
    (root / "DEBIAN/control").write_text("Package: fake-backgrounds\nVersion: 1.2-3\nArchitecture: all\n"
                                         "Maintainer: Test <t@example.org>\nDescription: test\n")
    out = tmp_path / "archives"
    out.mkdir()
    subprocess.run(["dpkg-deb", "-Zgzip", "-z1", "--build", "--root-owner-group", str(root), str(out / "fake-backgrounds_1.2-3_all.deb")],
                   check=True, capture_output=True)
    _photo(tmp_path / "face.jpg", (300, 200), 2)
    with zipfile.ZipFile(out / "fake_photos-0.5-py3-none-any.whl", "w") as wheel:
        wheel.write(tmp_path / "face.jpg", "fake_photos/data/face.jpg")
    return out


CATALOGUE = (
    photos.PhotoSource("deb", "fake-backgrounds", {"lake": "usr/share/backgrounds/Lake_by_Ann.jpg",
                                                   "tree": "usr/share/backgrounds/nature/Tree.jpg"}),
    photos.PhotoSource("wheel", "fake-photos", {"face": "fake_photos/data/face.jpg"}, licence="CC-BY-2.0 (test)"),
)


def test_debian_licence_takes_the_last_matching_paragraph_and_skips_packaging():
    assert photos.debian_licence(COPYRIGHT, "usr/share/backgrounds/Lake_by_Ann.jpg") == "CC-BY-4.0"
    assert photos.debian_licence(COPYRIGHT, "usr/share/backgrounds/mate/nature/Rock.jpg") == "CC0-1.0"
    assert photos.debian_licence(COPYRIGHT, "usr/share/backgrounds/Other.jpg") == "GPL-2+"
    assert photos.debian_licence("Files: debian/*\nLicense: GPL-3+\n", "usr/share/x.jpg") is None


def test_fetch_builds_the_pool_with_licences_and_checksums(archives, tmp_path, no_photo_pool):
    manifest = photos.fetch_pool(archives, CATALOGUE, log=lambda _: None)
    by_name = {p["name"]: p for p in manifest["photos"]}
    assert set(by_name) == {"fake-backgrounds/lake", "fake-backgrounds/tree", "fake-photos/face"}
    assert by_name["fake-backgrounds/lake"]["licence"] == "CC-BY-4.0"
    assert by_name["fake-backgrounds/tree"]["licence"] == "CC0-1.0"
    assert by_name["fake-photos/face"]["licence"] == "CC-BY-2.0 (test)"
    assert by_name["fake-backgrounds/lake"]["version"] == "1.2-3"
    assert by_name["fake-backgrounds/tree"]["size"] == [photos.POOL_LONG_SIDE, photos.POOL_LONG_SIDE // 2]
    assert by_name["fake-backgrounds/lake"]["size"] == [400, 300]  # never upscaled
    assert photos.verify_pool() == []
    assert json.loads((no_photo_pool / "manifest.json").read_text()) == manifest

    names = default_training_photos()
    assert set(names) == {"pool:" + n for n in by_name}
    face = load_photo("pool:fake-photos/face")
    original = torch.from_numpy(np.array(Image.open(tmp_path / "face.jpg").convert("RGB"))).permute(2, 0, 1) / 255
    assert face.shape == (3, 200, 300) and torch.allclose(face, original.float(), atol=1 / 255 + 1e-6)

    (no_photo_pool / "fake-photos/face.png").write_bytes(b"changed")
    assert any("checksum" in p for p in photos.verify_pool())


def test_a_failed_fetch_keeps_the_previous_pool(archives, no_photo_pool):
    photos.fetch_pool(archives, CATALOGUE, log=lambda _: None)
    before = sorted(p.name for p in no_photo_pool.rglob("*"))
    broken = CATALOGUE + (photos.PhotoSource("wheel", "fake-photos", {"gone": "fake_photos/data/missing.jpg"},
                                             licence="x"),)
    with pytest.raises(InputError, match="missing.jpg"):
        photos.fetch_pool(archives, broken, log=lambda _: None)
    assert sorted(p.name for p in no_photo_pool.rglob("*")) == before
    assert not [p for p in no_photo_pool.parent.iterdir() if p.name.startswith(f".{no_photo_pool.name}.")]


def test_without_a_pool_sources_fall_back_to_skimage_photos_with_a_warning():
    from deblurdiff.blur import sources

    sources._warn_no_pool.cache_clear()
    with pytest.warns(UserWarning, match="photos fetch"):
        assert default_training_photos() == TRAIN_PHOTOS
    with pytest.raises(InputError, match="photos fetch"):
        load_photo("pool:nowhere/none")


def test_benchmark_photos_are_refused_as_training_photos():
    from deblurdiff.data import build_dataset
    from deblurdiff.train.config import DataConfig

    with pytest.raises(ConfigError, match="embedded benchmark"):
        build_dataset(DataConfig(source="shake", options={"photos": ["astronaut"]}))
