"""Stage plan (which parameters train when) and the learning-rate curve of a stage.

The curve is linear warm-up then cosine decay to ``min_lr``, as a ``LambdaLR`` factor of the
stage's base lr. Written here rather than taken from ``diffusers.optimization.get_scheduler``
because that cosine decays to zero, with no floor.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import torch

from ..errors import ConfigError
from .config import ExperimentConfig, StageConfig


@dataclass
class PlannedStage:
    index: int
    name: str
    start: int          # global step at which the stage begins
    steps: int
    lr: float
    trainable: list
    loss: dict
    lr_scale: dict = field(default_factory=dict)

    @property
    def end(self) -> int:
        return self.start + self.steps


def plan_stages(cfg: ExperimentConfig, file: str = "<config>") -> list[PlannedStage]:
    """Stages with absolute step ranges. No stages = one stage ``main`` training everything for
    ``train.max_steps``; a stage without ``steps`` takes what is left of ``train.max_steps``."""
    stages = cfg.stages or [StageConfig(name="main", steps=cfg.train.max_steps)]
    planned, start = [], 0
    for i, stage in enumerate(stages):
        steps = stage.steps
        if steps is None:
            if i != len(stages) - 1:
                raise ConfigError(f"{file}: stages[{i}] ('{stage.name}') needs 'steps'; only the last stage may "
                                  "omit it (it then runs to train.max_steps)")
            steps = cfg.train.max_steps - start
        if steps <= 0:
            raise ConfigError(f"{file}: stages[{i}] ('{stage.name}') has {steps} steps; give it a positive "
                              "'steps' (or raise train.max_steps)")
        for key, patterns in (("trainable", stage.trainable), ("lr_scale", stage.lr_scale)):
            for pattern in patterns:
                try:
                    re.compile(pattern)
                except re.error as exc:
                    raise ConfigError(f"{file}: stages[{i}].{key}: bad regex {pattern!r}: {exc}") from None
        for pattern, factor in stage.lr_scale.items():
            if not isinstance(factor, (int, float)) or isinstance(factor, bool) or factor <= 0:
                raise ConfigError(f"{file}: stages[{i}].lr_scale[{pattern!r}] must be a positive number "
                                  f"(a multiplier of the stage's lr), got {factor!r}")
        planned.append(PlannedStage(i, stage.name, start, steps, stage.lr if stage.lr is not None else cfg.train.lr,
                                    list(stage.trainable), dict(stage.loss), dict(stage.lr_scale)))
        start += steps
    names = [s.name for s in planned]
    if len(set(names)) != len(names):
        raise ConfigError(f"{file}: stage names must be unique, got {names}")
    return planned


def stage_at(stages: list[PlannedStage], step: int) -> PlannedStage | None:
    """The stage that performs global step ``step + 1`` (None when training is complete)."""
    return next((s for s in stages if s.start <= step < s.end), None)


def select_trainable(module: torch.nn.Module, patterns: list[str], stage_name: str = "") -> list[str]:
    """Set ``requires_grad`` by full-match of parameter names against ``patterns``; return the trainable names."""
    compiled = [re.compile(p) for p in patterns]
    names = []
    for name, param in module.named_parameters():
        param.requires_grad_(any(c.fullmatch(name) for c in compiled))
        if param.requires_grad:
            names.append(name)
    if not names:
        sample = ", ".join(n for n, _ in list(module.named_parameters())[:8])
        raise ConfigError(f"stage '{stage_name}': trainable patterns {patterns} match no parameter; "
                          f"parameter names look like: {sample}")
    return names


def param_groups(module: torch.nn.Module, lr: float, lr_scale: dict | None) -> list[dict]:
    """The trainable parameters as optimizer groups: one at ``lr`` and one per ``lr_scale`` pattern
    that matches (the first full match wins), at ``lr`` times its factor. Empty groups are left out,
    so a stage without ``lr_scale`` is one group; the stage-lr group comes first (the one the log prints)."""
    compiled = [(re.compile(p), float(f)) for p, f in (lr_scale or {}).items()]
    buckets: dict = {}
    for name, param in module.named_parameters():
        if not param.requires_grad:
            continue
        factor = next((f for c, f in compiled if c.fullmatch(name)), 1.0)
        buckets.setdefault(factor, []).append(param)
    ordered = sorted(buckets.items(), key=lambda item: item[0] != 1.0)
    return [{"params": params, "lr": lr * factor} for factor, params in ordered]


def lr_factor(step: int, total: int, warmup: int, kind: str, min_ratio: float) -> float:
    """Factor of the base lr at stage-local ``step`` (0-based) for ``kind`` in constant/linear/cosine."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    if kind == "constant":
        return 1.0
    span = max(1, total - warmup)
    progress = min(1.0, (step - warmup) / span)
    if kind == "linear":
        return min_ratio + (1.0 - min_ratio) * (1.0 - progress)
    if kind == "cosine":
        return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))
    raise ConfigError(f"train.lr_schedule must be constant, linear or cosine, got {kind!r}")


def make_scheduler(optimizer, stage: PlannedStage, warmup: int, kind: str, min_lr: float):
    """``LambdaLR`` over the stage's steps (warm-up is capped to the stage length)."""
    lr_factor(0, stage.steps, 0, kind, 0.0)  # validate kind early
    min_ratio = min(1.0, min_lr / stage.lr) if stage.lr > 0 else 0.0
    warm = min(warmup, stage.steps)
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(s, stage.steps, warm, kind, min_ratio))
