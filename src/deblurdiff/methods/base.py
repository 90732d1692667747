"""The surface every method exposes (docs/architecture.md).

A method is a diffusers ``ModelMixin`` + ``ConfigMixin``: ``save_pretrained(dir)`` writes
``config.json`` + ``diffusion_pytorch_model.safetensors`` and ``from_pretrained(dir)`` reads them
back, with no pickle involved. Subclasses decorate ``__init__`` with ``@register_to_config``.

Value ranges: ``training_loss`` and ``restore`` take and return tensors in [0, 1]; each method
converts to the model range with ``deblurdiff.tensors.to_model`` / ``to_image``.
"""
from __future__ import annotations

import torch
from diffusers import ConfigMixin, ModelMixin


class DeblurMethod(ModelMixin, ConfigMixin):
    """Base class of every deblurring method.

    Class attributes:
      method_name: registry key (``"divd"``, ``"vdd"``, ...).
      kind: ``"image"`` (B,C,H,W -> B,C,H,W), ``"video"`` (B,F,C,H,W -> B,F,C,H,W) or
            ``"exposure"`` (B,C,H,W -> B,K,C,H,W: the sharp frames of one exposure).
      stochastic: True for diffusion samplers (``samples`` > 1 gives a spread).
      frames: the clip length a video method processes at once (sliding windows beyond it).
      multiple: input height/width are padded to a multiple of this.
      tile: the tile size the API uses for inputs larger than it when the user sets none
            (0: the whole input at once).
    """

    config_name = "config.json"
    method_name: str = ""
    kind: str = "image"
    stochastic: bool = False
    frames: int = 1
    multiple: int = 1
    tile: int = 0

    def training_loss(self, batch: dict) -> dict:
        """Return a dict with a scalar ``"loss"`` (and optional logged extras)."""
        raise TypeError(f"{type(self).__name__} is not trainable")

    @torch.no_grad()
    def restore(self, blurred: torch.Tensor, *, steps: int | None = None, sampler: str | None = None,
                generator: torch.Generator | None = None, progress: bool = False) -> torch.Tensor:
        """Deblur one batch in [0, 1] and return one sample in [0, 1]."""
        raise TypeError(f"{type(self).__name__} must implement restore()")
