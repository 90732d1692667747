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
  that get noise, default 1).
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
"""
from __future__ import annotations

import math

import torch
from torch.utils.data import Dataset

from ..blur.formation import DEFAULT_GAMMA, middle_index
from ..blur.scenes import SceneOptions, generate_clip
from ..blur.shake import REFERENCES, camera_shake, shake_clip
from ..blur.sources import (BENCHMARK_PHOTOS, TRAIN_PHOTOS, default_training_photos, load_photo, random_crop_resized,
                            training_seed)
from ..errors import ConfigError
from .augment import augment

MODES = ("image", "video", "exposure")
_COMMON = {"duty_cycle", "linear", "gamma", "photos", "noise_std", "noise_share"}
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


def _duty_range(options: dict) -> tuple[float, float]:
    duty = options.get("duty_cycle", (0.5, 1.0))
    low, high = (float(duty), float(duty)) if isinstance(duty, (int, float)) else map(float, duty)
    if not 0 < low <= high <= 1:
        raise ConfigError(f"data.options.duty_cycle must lie in (0, 1], got {duty!r}")
    return low, high


class _Generated(Dataset):
    """Common part: length, mode check, per-item seed and duty cycle."""

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

    def __len__(self) -> int:
        return self.cfg.length

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

    def __getitem__(self, index: int) -> dict:
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

    def __getitem__(self, index: int) -> dict:
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
