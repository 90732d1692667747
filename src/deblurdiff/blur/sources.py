"""Photo pools and seed ranges, split so that training never sees the embedded benchmark.

The photos bundled with scikit-image (``skimage.data``) ship with the installed dependencies.
They are split in two disjoint lists: :data:`BENCHMARK_PHOTOS` (used only by
``deblurdiff.blur.benchmark``) and :data:`TRAIN_PHOTOS`. ``chelsea`` and ``cat`` are the same
picture, so both names are benchmark. The training sources (``scenes``, ``shake``) draw from the
photo pool of ``deblurdiff photos fetch`` (natural photographs, ``pool:package/name``; see
``deblurdiff.blur.photos``) when it is installed, and from :data:`TRAIN_PHOTOS` otherwise.

Seeds are split the same way: training items draw from ``[0, TRAIN_SEED_LIMIT)`` (see
:func:`training_seed`), the benchmark from ``[BENCHMARK_SEED_BASE, ...)``.
"""
from __future__ import annotations

import functools

import numpy as np
import torch

from ..errors import InputError

BENCHMARK_PHOTOS = ("astronaut", "coffee", "chelsea", "cat", "rocket")
TRAIN_PHOTOS = ("immunohistochemistry", "hubble_deep_field", "retina", "camera", "coins", "moon",
                "brick", "grass", "gravel", "clock", "cell", "colorwheel", "page", "text")

TRAIN_SEED_LIMIT = 2 ** 40
BENCHMARK_SEED_BASE = 2 ** 41


SPLIT_STREAMS = {"train": 0, "val": 1, "test": 2}


def training_seed(base_seed: int, index: int, split: str = "train") -> int:
    """Seed of item ``index`` of a split: a hash of (base seed, index, split) below ``TRAIN_SEED_LIMIT``.

    numpy's ``SeedSequence`` mixes the pair so that neighbouring indices and base seeds give
    unrelated streams; the modulo keeps every training seed out of the benchmark's range.
    """
    state = np.random.SeedSequence([int(base_seed) & 0xFFFFFFFFFFFF, int(index), SPLIT_STREAMS.get(split, 3)]).generate_state(2, np.uint64)
    return int(state[0] % np.uint64(TRAIN_SEED_LIMIT))


def default_training_photos() -> tuple[str, ...]:
    """The photo pool when installed, else scikit-image's training photos (with a warning, once)."""
    from .photos import pool_names

    names = pool_names()
    if names:
        return names
    _warn_no_pool()
    return TRAIN_PHOTOS


@functools.lru_cache(maxsize=1)
def _warn_no_pool() -> None:
    import warnings

    warnings.warn("no training photo pool is installed: training on scikit-image's photos (mostly microscopy, "
                  "astronomy and textures); run 'deblurdiff photos fetch' once for natural photographs", stacklevel=3)


@functools.lru_cache(maxsize=None)
def load_photo(name: str) -> torch.Tensor:
    """A pool photo (``pool:package/name``) or a scikit-image sample photo as an RGB float tensor
    ``(3, H, W)`` in [0, 1] (cached)."""
    from .photos import PREFIX, pool_photo_path

    if name.startswith(PREFIX):
        from PIL import Image

        with Image.open(pool_photo_path(name)) as image:
            array = np.array(image.convert("RGB"))
    else:
        import skimage.data

        loader = getattr(skimage.data, name, None)
        if loader is None:
            raise InputError(f"scikit-image has no sample photo named {name!r}")
        array = np.asarray(loader())
    if array.dtype == bool:
        array = array.astype(np.uint8) * 255
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=-1)
    array = array[..., :3]
    tensor = torch.from_numpy(np.ascontiguousarray(array)).permute(2, 0, 1).float() / 255.0
    return tensor.contiguous()


def random_crop_resized(photo: torch.Tensor, height: int, width: int, generator: torch.Generator,
                        min_scale: float = 0.3) -> torch.Tensor:
    """A random crop of ``photo`` (covering ``min_scale``..1 of its short side), resized with
    antialiasing to ``(3, height, width)``."""
    _, ph, pw = photo.shape
    aspect = width / height
    short = min(ph, pw * height / width)
    scale = min_scale + (1.0 - min_scale) * float(torch.rand((), generator=generator))
    ch = max(2, int(round(short * scale)))
    cw = max(2, min(pw, int(round(ch * aspect))))
    top = int(torch.randint(0, ph - ch + 1, (), generator=generator))
    left = int(torch.randint(0, pw - cw + 1, (), generator=generator))
    crop = photo[:, top:top + ch, left:left + cw]
    if (ch, cw) == (height, width):
        return crop.clone()
    return torch.nn.functional.interpolate(crop[None], size=(height, width), mode="bilinear",
                                           align_corners=False, antialias=True)[0].clamp(0, 1)
