"""On-the-fly training sources: procedural moving scenes (``scenes``) and camera shake (``shake``).

Item ``i`` is generated from ``training_seed(cfg.seed, i, cfg.split)``, so a dataset is
reproducible, workers need no shared state, and no item can coincide with the embedded
benchmark (disjoint photos and seed ranges, see ``deblurdiff.blur.sources``).

``cfg.options`` keys (all optional):

``cfg.size`` is the rendered size; a smaller ``cfg.crop`` takes a random aligned window of it.

* both: ``duty_cycle`` (float, or ``[low, high]`` drawn per item; default ``[0.5, 1.0]``),
  ``linear`` (average in linear light with ``gamma``: a bool, or the fraction of items so
  averaged, the rest in gamma-encoded values as GoPro's ``blur``; default false), ``gamma`` (2.2),
  ``photos`` (``pool``: the photo pool of ``deblurdiff photos fetch`` when installed, the default;
  ``skimage``; or a list of names; benchmark photos are refused), ``noise_std`` (Gaussian
  sensor noise added to the blurred input after the average, e.g. 0.01 as VDM-MD's measurement
  model, or ``[low, high]`` drawn per item; default 0), ``noise_share`` (the fraction of items
  that get noise, default 1), ``echo`` (data echoing, Choi et al. 2019: each rendered item is
  used this many times, each use under a different one of the 8 flips/90 degree turns, the same
  for all its tensors; 1 to 8, default 1 = every item rendered; needs ``augment: true``, so
  validation sets keep 1), ``echo_cache`` (renders each loader worker keeps for reuse, default as
  many as fit in 512 MiB, at most 256; 82 for ``configs/nafnet-cpu.yaml``).
* ``scenes``: any field of :class:`deblurdiff.blur.scenes.SceneOptions`.
* ``shake``: ``max_shift`` (pixels per frame, default ``size / 8``), ``min_shift`` (default a
  quarter of ``max_shift``; lengths are drawn uniformly between), ``max_rotation`` (radians,
  0.02), ``jitter`` (0.5), ``reference`` (``centroid``: the photo at the path's mean pose, the
  default; ``middle``: at mid-exposure), ``scene_share`` (the fraction of items that are moving
  scenes (object motion) instead of shake, default 0), ``text_share`` (the fraction of photo items
  that get signs and lettering composited onto the photo before the shake, see
  :mod:`deblurdiff.blur.signage`; default 0); ``cfg.root`` may name a folder of the user's own
  photos. The number of sub-frames is raised to one per pixel of the longest path,
  so a long path blurs into a streak, not a few ghosts.

Echo: item ``i`` is render ``i // echo`` (the plain dataset's item of that index) under transform
``echo_transforms(i // echo)[i % echo]``, a pure function of (cfg, i) as ever. The saving comes
from the cache (LRU, a render freed after its last use), so the uses of a render must come close
together, but not in one batch: the trainer's batch order does that for a dataset with ``echo``
(``deblurdiff.train.data``: uses 2+ batches apart, same rank and loader worker, within a window
the cache holds). In any other order items are the same, only rendered more often. Measured on
``configs/nafnet-cpu.yaml``'s training data (one process, 1 thread, warm photo cache, 256 items in
index order from render 256; the trainer's order hits the cache as often): 17.5 ms CPU per item
with echo 1, 10.8 with echo 2, 6.2 with echo 4 (over the first 64 of them: 17.7, 11.0, 8.1); a
reuse costs ~1.2 ms, the flip and a copy of the item's 33 images of 128 x 128.
"""
from __future__ import annotations

import math
from collections import OrderedDict

import torch
from torch.utils.data import Dataset

from ..blur.formation import DEFAULT_GAMMA, middle_index
from ..blur.scenes import SceneOptions, generate_clip
from ..blur.shake import REFERENCES, camera_shake, shake_clip
from ..blur.sources import (BENCHMARK_PHOTOS, TRAIN_PHOTOS, default_training_photos, load_photo, random_crop_resized,
                            training_seed)
from ..errors import ConfigError
from .augment import augment, dihedral, dihedral_count

MODES = ("image", "video", "exposure")
_COMMON = {"duty_cycle", "linear", "gamma", "photos", "noise_std", "noise_share", "echo", "echo_cache"}
# Default bound of the per-worker echo cache: as many renders as fit in this many bytes, at most ECHO_CACHE_MAX.
ECHO_CACHE_BYTES = 512 * 2**20
ECHO_CACHE_MAX = 256
_SHAKE = {"max_shift", "min_shift", "max_rotation", "jitter", "reference", "scene_share", "text_share"}


def _check_options(cfg, allowed: set) -> dict:
    unknown = sorted(set(cfg.options) - allowed)
    if unknown:
        raise ConfigError(f"data.options: unknown key {unknown[0]!r} for source {cfg.source!r}; "
                          f"valid keys: {', '.join(sorted(allowed))}")
    return dict(cfg.options)


def _photos(options: dict) -> tuple:
    """``data.options.photos``: ``pool`` (default: the installed photo pool, else scikit-image's
    training photos), ``skimage`` (:data:`TRAIN_PHOTOS`), or a list of names."""
    choice = options.get("photos", "pool")
    if choice == "pool":
        return default_training_photos()
    if choice == "skimage":
        return TRAIN_PHOTOS
    photos = (choice,) if isinstance(choice, str) else tuple(choice)
    leaked = sorted(set(photos) & set(BENCHMARK_PHOTOS))
    if leaked:
        raise ConfigError(f"data.options.photos: {leaked[0]!r} belongs to the embedded benchmark and "
                          f"must not be trained on; choose from {', '.join(TRAIN_PHOTOS)} or the photo pool")
    return photos


def gamma_option(value) -> float | str:
    """``data.options.gamma``: a positive exponent or ``"srgb"``."""
    if isinstance(value, str) and value.lower() == "srgb":
        return "srgb"
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ConfigError(f"data.options.gamma must be a positive number or 'srgb', got {value!r}")
    return float(value)


def _fraction(options: dict, key: str, default: float) -> float:
    """An option that is a fraction of items in [0, 1] (a bool counts as 0 or 1)."""
    value = options.get(key, default)
    if isinstance(value, bool):
        return float(value)
    if not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise ConfigError(f"data.options.{key} must be true, false or a fraction in [0, 1], got {value!r}")
    return float(value)


def _range_option(options: dict, key: str, default: float) -> tuple[float, float]:
    """A number, or ``[low, high]`` to draw from per item, that must be >= 0."""
    value = options.get(key, default)
    try:
        low, high = (float(value), float(value)) if isinstance(value, (int, float)) else map(float, value)
    except (TypeError, ValueError):
        raise ConfigError(f"data.options.{key} must be a number or [low, high], got {value!r}") from None
    if not 0 <= low <= high:
        raise ConfigError(f"data.options.{key} must satisfy 0 <= low <= high, got {value!r}")
    return low, high


def _whole(options: dict, key: str, default: int, low: int, high: int | None, why: str) -> int:
    """An option that is a whole number in [low, high] (bools refused: ``true`` is no count)."""
    value = options.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
        bound = f"from {low} to {high}" if high is not None else f">= {low}"
        raise ConfigError(f"data.options.{key} must be a whole number {bound} ({why}), got {value!r}")
    return value


def _duty_range(options: dict) -> tuple[float, float]:
    duty = options.get("duty_cycle", (0.5, 1.0))
    low, high = (float(duty), float(duty)) if isinstance(duty, (int, float)) else map(float, duty)
    if not 0 < low <= high <= 1:
        raise ConfigError(f"data.options.duty_cycle must lie in (0, 1], got {duty!r}")
    return low, high


class _Generated(Dataset):
    """Common part: length, mode check, per-item seed and duty cycle, and data echoing (items
    ``r*echo .. r*echo + echo-1`` are render ``r`` under distinct dihedral transforms; a small
    per-process cache makes the reuse cost a flip instead of a render)."""

    def __init__(self, cfg, allowed: set):
        if cfg.mode not in MODES:
            raise ConfigError(f"data.mode must be one of {', '.join(MODES)}, got {cfg.mode!r}")
        if cfg.size < 8 or cfg.frames < 1 or cfg.subframes < 1 or cfg.length < 1:
            raise ConfigError("data.size must be >= 8 and data.frames, data.subframes, data.length >= 1 "
                              f"(got size={cfg.size}, frames={cfg.frames}, subframes={cfg.subframes}, length={cfg.length})")
        self.cfg = cfg
        self.options = _check_options(cfg, allowed)
        self.photos = _photos(self.options)
        self.gamma_value = gamma_option(self.options.get("gamma", DEFAULT_GAMMA))
        self.linear_share = _fraction(self.options, "linear", 0.0)
        self.noise_share = _fraction(self.options, "noise_share", 1.0)
        self.duty = _duty_range(self.options)
        self.noise = _range_option(self.options, "noise_std", 0.0)
        self.subframes = cfg.subframes
        self.side = cfg.crop if cfg.crop and cfg.crop < cfg.size else cfg.size  # items are side x side
        count = dihedral_count(self.side, self.side)
        self.echo = _whole(self.options, "echo", 1, 1, count,
                           f"uses of each rendered item, each under a different one of the {count} flips/turns "
                           f"of a {self.side}x{self.side} item; 1 renders every item")
        if self.echo > 1 and not cfg.augment:
            raise ConfigError(f"data.options.echo is {self.echo}, but this dataset has augment: false (a validation "
                              "set?); echo reuses items under flips and turns, which is training augmentation, so "
                              "leave echo at 1 (or unset) here")
        self._echo_cache_option = _whole(self.options, "echo_cache", 1, 1, None,
                                         "rendered items each loader worker keeps for reuse")
        self._cache = OrderedDict()  # render index -> [item, uses left]

    def __len__(self) -> int:
        return self.cfg.length

    def __getitem__(self, index: int) -> dict:
        if self.echo == 1:
            return self._render(index)
        self._seed(index)  # the range check
        render, use = divmod(index, self.echo)
        entry = self._cache.get(render)
        if entry is None:
            entry = self._cache[render] = [self._render(render), self.echo]
            while len(self._cache) > self.echo_cache:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(render)
        entry[1] -= 1
        if entry[1] == 0:  # its last use in an echo-aware order: free the memory now
            del self._cache[render]
        cached = entry[0]
        item = dihedral(cached, self.echo_transforms(render)[use])
        # Copies, never views of the cached tensors: a caller may write into what it gets.
        return {k: v.clone(memory_format=torch.contiguous_format) if v.data_ptr() == cached[k].data_ptr()
                else v.contiguous() for k, v in item.items()}

    def __getstate__(self) -> dict:
        """Loader workers start with an empty cache (a copy of another process's would only cost memory)."""
        return {**self.__dict__, "_cache": OrderedDict()}

    def echo_transforms(self, render: int) -> list[int]:
        """The distinct dihedral transforms (:func:`deblurdiff.data.augment.dihedral`) of the ``echo``
        uses of render ``render``, drawn per render so that no use is always the untransformed one."""
        generator = torch.Generator().manual_seed(self._seed(render) ^ 0xEC40)
        return torch.randperm(dihedral_count(self.side, self.side), generator=generator)[:self.echo].tolist()

    @property
    def echo_cache(self) -> int:
        """Renders one process keeps for reuse: ``data.options.echo_cache``, by default as many as fit
        in ``ECHO_CACHE_BYTES`` (at most ``ECHO_CACHE_MAX``). The echo-aware batch order
        (``train.data.ShardedBatches``) sizes its reuse window to fit it."""
        if "echo_cache" in self.options:
            return self._echo_cache_option
        images = 2 * self.cfg.frames if self.cfg.mode == "video" else self.subframes + 2
        return max(1, min(ECHO_CACHE_MAX, ECHO_CACHE_BYTES // (images * 3 * self.side ** 2 * 4)))

    def _seed(self, index: int) -> int:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for a dataset of {len(self)} items")
        return training_seed(self.cfg.seed, index, self.cfg.split)

    def _crop(self, item: dict, seed: int) -> dict:
        """A random aligned ``cfg.crop`` window when it is smaller than the rendered ``cfg.size``
        (rendering larger and cropping gives objects entering and leaving the view), then the
        optional sensor noise on the blurred input."""
        crop = self.cfg.crop
        if crop and crop < self.cfg.size:
            item = augment(item, torch.Generator().manual_seed(seed ^ 0xC409), crop=crop, flips=False, rotate=False)
        noisy = self.noise_share >= 1 or float(torch.rand((), generator=torch.Generator().manual_seed(seed ^ 0x5A4E))) \
            < self.noise_share
        if self.noise[1] > 0 and noisy:
            generator = torch.Generator().manual_seed(seed ^ 0x0015E)
            low, high = self.noise
            std = low + (high - low) * float(torch.rand((), generator=generator))
            noise = torch.randn(item["blur"].shape, generator=generator)
            item["blur"] = (item["blur"] + std * noise).clamp(0, 1)
        return item

    def _gamma(self, seed: int) -> float | str | None:
        """The camera response to average this item in linear light with, or None (gamma-encoded)."""
        if self.linear_share in (0.0, 1.0):
            return self.gamma_value if self.linear_share else None
        draw = float(torch.rand((), generator=torch.Generator().manual_seed(seed ^ 0x6A3)))
        return self.gamma_value if draw < self.linear_share else None

    def _duty(self, seed: int) -> float:
        low, high = self.duty
        fraction = float(torch.rand((), generator=torch.Generator().manual_seed(seed ^ 0x5EED)))
        return low + (high - low) * fraction


class SceneDataset(_Generated):
    """Procedural moving scenes rendered at ``cfg.subframes`` sub-frames per exposure."""

    def __init__(self, cfg):
        super().__init__(cfg, _COMMON | set(SceneOptions.__dataclass_fields__))
        self.scene_options = SceneOptions.from_dict(self.options)

    def _render(self, index: int) -> dict:
        seed = self._seed(index)
        cfg = self.cfg
        frames = cfg.frames if cfg.mode == "video" else 1
        clip = generate_clip(seed, cfg.size, frames, cfg.subframes, self._duty(seed), self._gamma(seed),
                             self.photos, self.scene_options)
        return self._crop(_item(cfg.mode, clip), seed)


class ShakeDataset(_Generated):
    """Camera shake over training photos (or the user's photos in ``cfg.root``)."""

    def __init__(self, cfg):
        super().__init__(cfg, _COMMON | _SHAKE)
        self.max_shift = float(self.options.get("max_shift", cfg.size / 8))
        self.min_shift = float(self.options.get("min_shift", self.max_shift / 4))
        if not 0 <= self.min_shift <= self.max_shift:
            raise ConfigError(f"data.options.min_shift must lie in [0, max_shift={self.max_shift}], got {self.min_shift}")
        self.max_rotation = float(self.options.get("max_rotation", 0.02))
        self.jitter = float(self.options.get("jitter", 0.5))
        self.reference = self.options.get("reference", "centroid")
        if self.reference not in REFERENCES:
            raise ConfigError(f"data.options.reference must be one of {', '.join(REFERENCES)}, got {self.reference!r}")
        self.scene_share = float(self.options.get("scene_share", 0.0))
        if not 0 <= self.scene_share <= 1:
            raise ConfigError(f"data.options.scene_share must lie in [0, 1], got {self.scene_share}")
        self.text_share = _fraction(self.options, "text_share", 0.0)
        self.scene_options = SceneOptions()
        # One sub-frame per pixel of the longest path: neighbouring poses at most ~1 px apart.
        self.subframes = max(cfg.subframes, int(math.ceil(self.max_shift)) + 1)
        self.user_photos = None
        if cfg.root is not None:
            from .io import list_images

            self.user_photos = list_images(cfg.root)

    def _photo(self, generator: torch.Generator) -> torch.Tensor:
        if self.user_photos is not None:
            from .io import read_image

            return read_image(self.user_photos[int(torch.randint(0, len(self.user_photos), (), generator=generator))])
        return load_photo(self.photos[int(torch.randint(0, len(self.photos), (), generator=generator))])

    def _signage(self, photo: torch.Tensor, seed: int, margin: int) -> torch.Tensor:
        """Signs on ``text_share`` of the photos, centred in the part the output shows. Drawn from
        a generator of their own, so the item's photo, crop and shake stay those of ``text_share: 0``."""
        if self.text_share <= 0:
            return photo
        generator = torch.Generator().manual_seed(seed ^ 0x7E47)
        if self.text_share < 1 and float(torch.rand((), generator=generator)) >= self.text_share:
            return photo
        from ..blur.signage import add_signage

        return add_signage(photo, generator, box=(margin, margin, photo.shape[-2] - margin, photo.shape[-1] - margin))

    def _render(self, index: int) -> dict:
        seed = self._seed(index)
        cfg = self.cfg
        generator = torch.Generator().manual_seed(seed)
        frames = cfg.frames if cfg.mode == "video" else 1
        if self.scene_share > 0 and float(torch.rand((), generator=generator)) < self.scene_share:
            clip = generate_clip(seed, cfg.size, frames, self.subframes, self._duty(seed), self._gamma(seed), self.photos,
                                 self.scene_options)
            return self._crop(_item(cfg.mode, clip), seed)
        # A border wide enough for the whole path keeps reflected borders out of the result.
        margin = int(math.ceil(self.max_shift * frames * 1.5)) + 2
        side = cfg.size + 2 * margin
        photo = random_crop_resized(self._photo(generator), side, side, generator, min_scale=0.25)
        photo = self._signage(photo, seed, margin)
        if cfg.mode == "video":
            clip = shake_clip(photo, frames, self.subframes, self.max_shift, self.max_rotation, self.jitter,
                              self._duty(seed), self._gamma(seed), margin, generator=generator, min_shift=self.min_shift,
                              reference=self.reference)
        else:
            shaken = camera_shake(photo, self.subframes, self.max_shift, self.max_rotation, self.jitter,
                                  self._gamma(seed), margin, generator=generator, min_shift=self.min_shift,
                                  reference=self.reference)
            clip = {"blur": shaken.blurred[None], "sharp": shaken.sharp[None], "subframes": shaken.subframes[None]}
        return self._crop(_item(cfg.mode, clip), seed)


def _item(mode: str, clip: dict) -> dict:
    """Shape a rendered clip (``blur``/``sharp`` (F,C,H,W), ``subframes`` (F,K,C,H,W)) per mode."""
    if mode == "video":
        return {"blur": clip["blur"].contiguous(), "sharp": clip["sharp"].contiguous()}
    frames = clip["subframes"][0].contiguous()
    if mode == "exposure":
        return {"blur": clip["blur"][0].contiguous(), "frames": frames, "sharp": frames[middle_index(len(frames))].clone()}
    return {"blur": clip["blur"][0].contiguous(), "sharp": clip["sharp"][0].contiguous(), "subframes": frames}
