"""What users script: ``load(method)`` -> ``Deblurrer`` with ``.deblur(image_or_clip)``.

The API accepts NumPy arrays (channels last, uint8 or float in [0, 1]) or torch tensors
(channels first, float in [0, 1]) and returns the same kind and layout. Spatial tiling,
sliding temporal windows, padding and sample statistics are applied here, so every method's
``restore`` only ever sees one window of one tile.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch

from .errors import CheckpointError, InputError
from .infer import sample_statistics, sliding_windows, tiled, time_order_like
from .infer.tiles import pad_to_multiple
from .methods import METHODS, checkpoint_folder, method_class, shipped_checkpoint
from .tensors import resolve_device
from .weightfiles import check_safetensors

#: inputs above this many pixels per frame need an explicit tile size (memory guard).
DEFAULT_MAX_PIXELS = 4_000_000
MIN_SIZE = 8
#: methods whose shipped checkpoints come per backbone (``--backbone``)
BACKBONES = {"blurdm": ("nafnet", "mimo-unet")}


def checkpoint_name(method: str, backbone: str | None = None) -> str:
    """Name of the shipped checkpoint folder: ``blurdm`` + backbone picks ``blurdm-mimo-unet``."""
    return f"{method}-{backbone}" if backbone and backbone != "nafnet" else method


def load_method(method: str, checkpoint=None, device="cpu", backbone: str | None = None):
    """Instantiate a registered method from a checkpoint folder, a Hugging Face hub id
    (``org/name``, fetched with huggingface_hub) or the method's shipped checkpoint."""
    cls = method_class(method)
    if backbone is not None and backbone not in BACKBONES.get(method, ()):
        raise InputError(f"--backbone {backbone!r} does not apply to {method!r}; " + (
            f"choose one of {', '.join(BACKBONES[method])}" if method in BACKBONES else "omit --backbone"))
    if checkpoint is not None:
        from .weights_import import looks_like_hub_id, resolve_hub

        if looks_like_hub_id(checkpoint):  # ``org/name``: a Hugging Face hub repo holding a deblurdiff folder
            checkpoint = resolve_hub(str(checkpoint))
    path = Path(checkpoint) if checkpoint is not None else shipped_checkpoint(checkpoint_name(method, backbone))
    if checkpoint is None and not path.is_dir():
        model = cls()
        if any(True for _ in model.parameters()):
            raise CheckpointError(f"no shipped checkpoint for {method!r} at {path}; train one with "
                                  f"`deblurdiff train configs/{checkpoint_name(method, backbone)}-tiny.yaml` and pass --checkpoint")
        return model.to(device).eval()
    path = checkpoint_folder(path)
    config_file = path / "config.json"
    if not config_file.is_file():
        raise CheckpointError(f"{path} is not a checkpoint folder (no config.json); pass the folder written by "
                              f"`deblurdiff train` (OUT/final or OUT/checkpoints/step-N) or a shipped one")
    try:
        class_name = json.loads(config_file.read_text()).get("_class_name")
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{config_file} is corrupt ({exc}); restore it or retrain") from None
    if class_name != cls.__name__:
        owner = next((name for name, target in METHODS.items() if target.endswith(f":{class_name}")), class_name)
        raise CheckpointError(f"{path} holds a {owner!r} checkpoint, not {method!r}; "
                              f"use --method {owner} or a {method} checkpoint")
    for weights in sorted(path.rglob("*.safetensors")):  # a damaged file is named, not a diffusers traceback
        check_safetensors(weights, "restore the checkpoint folder or retrain", CheckpointError)
    try:  # safetensors only: a checkpoint folder's pickles (.bin) are never loaded
        model = cls.from_pretrained(str(path), use_safetensors=True)
    except (OSError, ValueError, RuntimeError, KeyError) as exc:
        raise CheckpointError(f"cannot load checkpoint {path}: {exc}") from None
    return model.to(device).eval()


def load(method: str, checkpoint=None, device: str = "auto", backbone: str | None = None) -> "Deblurrer":
    """Load a method by registry name (``divd``, ``vdd``, ``vdm-md``, ``blurdm``, baselines)."""
    dev = resolve_device(device)
    return Deblurrer(load_method(method, checkpoint, dev, backbone), method, dev)


class Deblurrer:
    """A loaded method plus the generic inference machinery."""

    def __init__(self, model, name: str, device: torch.device):
        self.model, self.name, self.device = model, name, device
        self.last_run: dict = {}

    @property
    def kind(self) -> str:
        return self.model.kind

    # -- layout handling: the API's inputs -> (B, C, H, W) or (B, N, C, H, W) in [0, 1] ---------
    def _to_batch(self, x):
        numpy_in = isinstance(x, np.ndarray)
        if numpy_in:
            if x.dtype == np.uint8:
                x = x.astype(np.float32) / 255.0
            elif x.dtype == np.uint16:
                x = x.astype(np.float32) / 65535.0
            t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
            if t.dim() == 2:
                t = t[..., None]
            t = t.movedim(-1, -3)  # channels last -> first
        elif isinstance(x, torch.Tensor):
            t = x.float()
        else:
            raise InputError(f"deblur() takes a NumPy array or a torch tensor, got {type(x).__name__}")
        want = 5 if self.kind == "video" else 4
        added = 0
        while t.dim() < want:
            t, added = t.unsqueeze(0), added + 1
        if t.dim() != want:
            raise InputError(f"{self.name} expects {'a clip (N, C, H, W)' if want == 5 else 'an image (C, H, W)'}"
                             f" or a batch of them; got shape {tuple(x.shape)}")
        channels = t.shape[-3]
        if channels not in (1, 3):
            raise InputError(f"expected 1 or 3 channels, got {channels} (shape {tuple(x.shape)}); drop alpha first")
        if min(t.shape[-2:]) < MIN_SIZE:
            raise InputError(f"input is {t.shape[-1]}x{t.shape[-2]} pixels; at least {MIN_SIZE}x{MIN_SIZE} is needed")
        if not torch.isfinite(t).all():
            raise InputError("input contains NaN or infinite values")
        if t.min() < -1e-3 or t.max() > 1 + 1e-3:
            raise InputError(f"values must lie in [0, 1] (got {t.min():.3g}..{t.max():.3g}); divide 8-bit data by 255")
        return t.clamp(0, 1).expand(*t.shape[:-3], 3, *t.shape[-2:]), (numpy_in, added, channels)

    def _from_batch(self, y, layout):
        numpy_in, added, channels = layout
        if channels == 1:
            y = y.mean(dim=-3, keepdim=True)
        for _ in range(added):
            y = y.squeeze(0)
        if numpy_in:
            y = y.movedim(-3, -1).cpu().numpy()
            return y[..., 0] if channels == 1 else y
        return y

    def deblur(self, x, *, steps: int | None = None, sampler: str | None = None, samples: int = 1,
               seed: int = 0, tile: int | None = None, overlap: int = 32, progress: bool = False,
               max_pixels: int = DEFAULT_MAX_PIXELS, return_std: bool = False):
        """Deblur an image, a batch, or a clip (video methods). Returns the same layout
        (``(K, ...)`` frames for ``vdm-md``); with ``return_std`` also the per-pixel std over
        ``samples`` draws. The same ``seed`` gives the same output."""
        if steps is not None and steps < 1:
            raise InputError(f"steps must be at least 1, got {steps}")
        if samples < 1:
            raise InputError(f"samples must be at least 1, got {samples}")
        batch, layout = self._to_batch(x)
        h, w = batch.shape[-2:]
        if tile is None:
            if h * w > max_pixels:
                raise InputError(f"input is {w}x{h} = {h * w / 1e6:.1f} MP, above the {max_pixels / 1e6:.1f} MP limit; "
                                 f"pass a tile size (e.g. --tile 256) to process it in overlapping tiles")
            tile = self.model.tile
        model, kwargs = self.model, {k: v for k, v in (("steps", steps), ("sampler", sampler)) if v is not None}
        batch = batch.to(self.device)
        generator = torch.Generator(device=self.device).manual_seed(seed)

        multiple = max(1, model.multiple)

        def restore_crop(crop):
            padded, (ch, cw) = pad_to_multiple(crop, multiple)
            return model.restore(padded, generator=generator, **kwargs)[..., :ch, :cw]

        def draw():
            if self.kind == "video":
                return sliding_windows(lambda clip: tiled(restore_crop, clip, tile, overlap, multiple=multiple), batch,
                                       model.frames, progress=progress,
                                       batch_windows=getattr(model, "window_batch", 1))
            return tiled(restore_crop, batch, tile, overlap, progress=progress, multiple=multiple)

        n = samples if model.stochastic else 1
        start = time.perf_counter()
        with torch.no_grad():
            # exposure frames (B, K, ...): each draw in the first draw's time order before averaging
            align = (lambda first, x: time_order_like(x, first)[0]) if self.kind == "exposure" else None
            mean, std = sample_statistics(draw, n, align=align)
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - start
        frames = batch.shape[0] * (batch.shape[1] if self.kind == "video" else 1)
        self.last_run = {"method": self.name, "seconds": seconds, "seconds_per_frame": seconds / frames,
                         "samples": n, "steps": steps, "sampler": sampler, "seed": seed, "tile": tile,
                         "device": str(self.device), "input_shape": list(batch.shape)}
        mean = mean.clamp(0, 1)
        out = self._from_batch(mean.cpu(), layout)
        return (out, self._from_batch(std.cpu(), layout)) if return_std else out
