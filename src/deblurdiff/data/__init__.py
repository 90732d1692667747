"""Datasets: ``build_dataset(cfg: DataConfig) -> torch.utils.data.Dataset``.

Items are dicts of float32 tensors in [0, 1] (docs/architecture.md):

* mode ``image``: ``blur``, ``sharp`` ``(C, H, W)`` (+ ``subframes`` ``(K, C, H, W)`` when the
  source has them: ``scenes``, ``shake``, and sharp-only videos blurred on the fly)
* mode ``video``: ``blur``, ``sharp`` ``(F, C, H, W)``
* mode ``exposure``: ``blur`` ``(C, H, W)``, ``frames`` ``(K, C, H, W)``, ``sharp`` = middle frame

Sources: ``scenes`` and ``shake`` generate items on the fly (``data.synthetic``); ``gopro``,
``flat``, ``dvd``, ``reds``, ``folder``, ``bair``, ``clevrer`` and ``video`` read the field's
folder layouts (``data.readers``).
"""
from __future__ import annotations

import importlib

from ..errors import ConfigError

SOURCES = {
    "scenes": ("deblurdiff.data.synthetic", "SceneDataset"),
    "shake": ("deblurdiff.data.synthetic", "ShakeDataset"),
    "gopro": ("deblurdiff.data.readers", "GoProDataset"),
    "flat": ("deblurdiff.data.readers", "FlatDataset"),
    "dvd": ("deblurdiff.data.readers", "DVDDataset"),
    "reds": ("deblurdiff.data.readers", "REDSDataset"),
    "folder": ("deblurdiff.data.readers", "FolderDataset"),
    "bair": ("deblurdiff.data.readers", "BAIRDataset"),
    "clevrer": ("deblurdiff.data.readers", "CLEVRERDataset"),
    "video": ("deblurdiff.data.readers", "VideoDataset"),
}


def build_dataset(cfg):
    """The dataset named by ``cfg.source`` (a ``DataConfig``); bad settings raise ``ConfigError``."""
    if cfg.source not in SOURCES:
        raise ConfigError(f"data.source {cfg.source!r} is unknown; choose one of {', '.join(SOURCES)}")
    if cfg.mode not in ("image", "video", "exposure"):
        raise ConfigError(f"data.mode must be image, video or exposure, got {cfg.mode!r}")
    module, name = SOURCES[cfg.source]
    return getattr(importlib.import_module(module), name)(cfg)


__all__ = ["SOURCES", "build_dataset"]
