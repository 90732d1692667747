"""EMA of the weights: diffusers ``EMAModel`` plus pickle-free save/load by parameter name.

``EMAModel.state_dict`` holds its shadow weights as an unnamed list; here they are stored under
the parameter names through ``method.save_pretrained`` (so the EMA folder of a checkpoint loads
with ``from_pretrained``) and its counters as JSON.
"""
from __future__ import annotations

import contextlib
from pathlib import Path

import torch
from diffusers.training_utils import EMAModel

from .checkpoint import load_weights, read_json, write_json


class WeightEMA:
    def __init__(self, module: torch.nn.Module, decay: float):
        self.module = module
        self.names = [n for n, _ in module.named_parameters()]
        self.ema = EMAModel(module.parameters(), decay=decay, foreach=True)

    def update(self) -> None:
        self.ema.step(self.module.parameters())

    @contextlib.contextmanager
    def swapped_in(self):
        """Temporarily put the EMA weights into the module (for saving, validation, samples)."""
        params = list(self.module.parameters())
        self.ema.store(params)
        self.ema.copy_to(params)
        try:
            yield self.module
        finally:
            self.ema.restore(params)

    def save(self, folder: Path, save_pretrained) -> None:
        with self.swapped_in():
            save_pretrained(folder / "ema")
        state = {k: v for k, v in self.ema.state_dict().items() if k != "shadow_params"}
        write_json(folder / "ema.json", state)

    def load(self, folder: Path) -> None:
        """Shadow weights from ``folder/ema`` (loaded through a copy of the module), counters from JSON."""
        params = list(self.module.parameters())
        self.ema.store(params)
        try:
            load_weights(self.module, folder / "ema")
            shadow = [p.detach().clone() for p in self.module.parameters()]
        finally:
            self.ema.restore(params)
        state = read_json(folder / "ema.json")
        state["shadow_params"] = shadow
        self.ema.load_state_dict(state)
