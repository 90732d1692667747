"""One registry maps a method name to its class (imported lazily)."""
from __future__ import annotations

import importlib
from pathlib import Path

from ..errors import CheckpointError, DeblurDiffError

METHODS = {
    "divd": "deblurdiff.methods.divd:DIVD",
    "vdd": "deblurdiff.methods.vdd:VDD",
    "vdm-md": "deblurdiff.methods.vdm_md:VDMMD",
    "blurdm": "deblurdiff.methods.blurdm:BlurDM",
    "autoencoder": "deblurdiff.methods.autoencoder:FrameAutoencoderMethod",
    "nafnet": "deblurdiff.methods.regression:NAFNetDeblur",
    "mimo-unet": "deblurdiff.methods.regression:MIMOUNetDeblur",
    "identity": "deblurdiff.methods.classical:Identity",
    "wiener": "deblurdiff.methods.classical:Wiener",
    "richardson-lucy": "deblurdiff.methods.classical:RichardsonLucy",
    "blind": "deblurdiff.methods.classical:BlindDeconvolution",
}

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"


def method_class(name: str):
    """The class registered under ``name``; a clear error for unknown names."""
    if name not in METHODS:
        raise DeblurDiffError(f"unknown method {name!r}; choose one of: {', '.join(sorted(METHODS))}")
    module, attr = METHODS[name].split(":")
    return getattr(importlib.import_module(module), attr)


def shipped_checkpoint(name: str) -> Path:
    """Folder of the checkpoint shipped inside the package for ``name``."""
    return WEIGHTS_DIR / name


def checkpoint_folder(path) -> Path:
    """``path``, or its ``ema/`` when it is a training checkpoint (``OUT/checkpoints/step-N``): the
    EMA weights are what ships, so they are what a step folder stands for when loading."""
    path = Path(path)
    if not (path / "config.json").is_file() and (path / "ema" / "config.json").is_file():
        return path / "ema"
    return path
