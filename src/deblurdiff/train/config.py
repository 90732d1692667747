"""Training configs: YAML validated into dataclasses.

An unknown or mistyped key is a ``ConfigError`` naming the key and the file. Schema::

    method: divd                # registry name (deblurdiff.methods.METHODS), or package.module:Class
    model: {...}                # keyword arguments of the method class's __init__
    data: {...}                 # DataConfig
    train: {...}                # TrainConfig
    stages:                     # optional; default: one stage training everything
      - {name: stage1, steps: 100, trainable: ["encoder2\\..*"], lr: 1e-4, loss: {...}}

``--set key=value`` overrides use dotted paths (``train.lr=2e-4``, ``data.crop=64``).
"""
from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ..errors import ConfigError


@dataclass
class DataConfig:
    """What to train on. ``source`` names a reader of ``deblurdiff.data.build_dataset``.

    sources: ``scenes`` (procedural moving scenes, generated on the fly), ``shake`` (camera
    shake over photos), ``gopro``, ``flat`` (input/target), ``dvd``, ``reds``, ``folder``,
    ``bair``, ``clevrer``, ``video``.
    mode: ``image`` (blur/sharp (C,H,W)), ``video`` (blur/sharp (F,C,H,W)) or ``exposure``
    (blur (C,H,W) and its sharp sub-frames ``frames`` (K,C,H,W)).
    """

    source: str = "scenes"
    mode: str = "image"
    root: str | None = None
    split: str = "train"
    frames: int = 4
    subframes: int = 10
    crop: int = 64
    size: int = 64
    length: int = 10000
    blur_folder: str = "blur"
    seed: int = 1234
    augment: bool = True
    num_workers: int = 0
    options: dict = field(default_factory=dict)


@dataclass
class TrainConfig:
    batch_size: int = 4
    lr: float = 2e-4
    weight_decay: float = 0.0
    betas: tuple = (0.9, 0.999)
    optimizer: str = "adamw"
    max_steps: int = 1000
    warmup_steps: int = 0
    lr_schedule: str = "cosine"
    min_lr: float = 1e-6
    grad_clip: float = 1.0
    grad_accum: int = 1
    mixed_precision: str = "no"
    ema_decay: float = 0.999
    seed: int = 0
    log_every: int = 10
    ckpt_every: int = 500
    keep_last: int = 3
    val_every: int = 0
    val_batches: int = 2
    sample_every: int = 0
    max_bad_steps: int = 5
    channels_last: bool = False
    # Warm start: weights to begin a fresh run from: a run's final/ or checkpoints/step-N/ folder, a
    # shipped checkpoint's name ("nafnet"), a folder of `deblurdiff weights import`, or a hub id. Its
    # config.json gives the architecture when written for the same method (`model:` keys override
    # it). init_strict: false loads the tensors whose names and shapes fit (a backbone into BlurDM).
    # A resume that finds a checkpoint replaces these weights with the checkpoint's.
    init: str | None = None
    init_strict: bool = True
    # DDP: tolerate trainable parameters a stage's loss does not use (one extra graph traversal per
    # step); set false for speed when every trainable parameter always receives a gradient.
    ddp_find_unused: bool = True


@dataclass
class StageConfig:
    name: str = "main"
    steps: int | None = None
    trainable: list = field(default_factory=lambda: [".*"])
    lr: float | None = None
    # Learning-rate multipliers by parameter name: {regex: factor}, the first full match wins, the
    # rest train at the stage's lr. Why: a zero-initialised fusion layer passes almost no gradient
    # to the encoder behind it, so a new branch on a trained backbone can need a faster lr.
    lr_scale: dict = field(default_factory=dict)
    loss: dict = field(default_factory=dict)


@dataclass
class ExperimentConfig:
    method: str
    model: dict = field(default_factory=dict)
    data: DataConfig = field(default_factory=DataConfig)
    val_data: DataConfig | None = None
    train: TrainConfig = field(default_factory=TrainConfig)
    stages: list = field(default_factory=list)


def _build(cls, raw, where: str, file: str):
    if not isinstance(raw, dict):
        raise ConfigError(f"{file}: '{where}' must be a mapping, got {type(raw).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - names)
    if unknown:
        raise ConfigError(f"{file}: unknown key '{where + '.' if where else ''}{unknown[0]}'; "
                          f"valid keys here: {', '.join(sorted(names))}")
    kwargs = {}
    for key, value in raw.items():
        kwargs[key] = _coerce(hints[key], value, f"{where + '.' if where else ''}{key}", file)
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"{file}: '{where}': {exc}") from None


def _coerce(hint, value, where, file):
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, where, file)
    args = typing.get_args(hint)
    if value is None and type(None) in args:
        return None
    if args and type(None) in args:
        hint = next(a for a in args if a is not type(None))
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, where, file)
    origin = typing.get_origin(hint) or hint
    if origin is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if origin is float and isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    if origin is tuple and isinstance(value, (list, tuple)):
        return tuple(value)
    if origin in (int, float, str, bool, list, dict, tuple) and not isinstance(value, origin) or \
            (origin is int and isinstance(value, bool)):
        raise ConfigError(f"{file}: '{where}' must be {origin.__name__}, got {value!r}")
    return value


def parse_config(raw: dict, file: str = "<config>") -> ExperimentConfig:
    """Validate a raw mapping into an ``ExperimentConfig``."""
    if not isinstance(raw, dict) or "method" not in raw:
        raise ConfigError(f"{file}: a config needs a top-level 'method' key")
    raw = dict(raw)
    stages = raw.pop("stages", []) or []
    cfg = _build(ExperimentConfig, raw, "", file)
    cfg.stages = [_build(StageConfig, s, f"stages[{i}]", file) for i, s in enumerate(stages)]
    from ..methods import METHODS

    if ":" in cfg.method:
        _check_importable(cfg.method, "method", file)
    elif cfg.method not in METHODS:
        raise ConfigError(f"{file}: unknown method {cfg.method!r}; choose one of {', '.join(sorted(METHODS))}")
    for where, data in (("data", cfg.data), ("val_data", cfg.val_data)):
        if data is not None and ":" in data.source:
            _check_importable(data.source, f"{where}.source", file)
    return cfg


def _check_importable(spec: str, what: str, file: str) -> None:
    """``package.module:Name`` entries (methods/data sources defined outside the registry) must import."""
    import importlib

    module_name, _, attr = spec.partition(":")
    try:
        getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"{file}: {what} {spec!r} cannot be imported ({exc}); "
                          "give a registry name or an importable 'package.module:Name'") from None


def apply_overrides(raw: dict, overrides: list[str], file: str = "<config>") -> dict:
    """Apply ``key.sub=value`` strings (values parsed as YAML) to a raw config mapping."""
    for item in overrides or []:
        if "=" not in item:
            raise ConfigError(f"--set expects key=value, got {item!r}")
        key, value = item.split("=", 1)
        node = raw
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"{file}: --set {key}: '{part}' is not a mapping")
        try:
            node[parts[-1]] = yaml.safe_load(value)
        except yaml.YAMLError as exc:
            raise ConfigError(f"--set {item}: the value is not valid YAML ({exc.problem}); quote strings") from None
    return raw


def load_config(path, overrides: list[str] | None = None) -> ExperimentConfig:
    """Read, override and validate a YAML config file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} not found" + (" (it is a folder)" if path.is_dir() else ""))
    raw = parse_yaml_text(path.read_bytes(), str(path))
    return parse_config(apply_overrides(raw, overrides or [], str(path)), str(path))


def parse_yaml_text(data: bytes, file: str) -> dict:
    """Bytes of a YAML config -> a mapping; a binary or non-UTF-8 file is a ``ConfigError``.

    Reads bytes, not text, so that a PNG given by mistake is refused by name rather than failing
    somewhere in a decoder.
    """
    hint = "give a YAML text file such as configs/toy-tiny.yaml"
    if b"\0" in data[:8192]:
        raise ConfigError(f"{file}: is a binary file, not a YAML config; {hint}")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{file}: not UTF-8 text (byte {exc.start}: {data[exc.start:exc.start + 1]!r}); "
                          f"{hint}") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise ConfigError(f"{file}: not valid YAML{where}: {getattr(exc, 'problem', None) or exc}; {hint}") from None
    if raw is None:
        raise ConfigError(f"{file}: the config is empty; {hint}")
    if not isinstance(raw, dict):
        raise ConfigError(f"{file}: a config is a mapping of keys (method:, model:, data:, train:), got a "
                          f"{type(raw).__name__}; {hint}")
    return raw
