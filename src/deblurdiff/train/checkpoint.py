"""Training checkpoints: complete or absent, verifiable, pickle-free.

Layout of ``OUT/checkpoints/step-000123/``::

    model/       config.json + diffusion_pytorch_model.safetensors   (method.save_pretrained)
    ema/         the same with the EMA weights                        (loads with from_pretrained)
    optimizer.safetensors + optimizer.json   tensors of the optimizer state / param groups, scalars
    scheduler.json                            LambdaLR counters
    ema.json                                  EMA counters
    trainer.json                              step, stage, data position, config, bad-step count
    rng-rank0.safetensors + rng-rank0.json    python / numpy / torch (+cuda) RNG states, one per rank
    manifest.json                             sha256 and size of every file above (written last)

The folder is written as ``.step-000123.partial`` and renamed when the manifest is in, so a crash
leaves either a complete checkpoint or a partial folder that is ignored and cleaned up. Pruning
renames a folder to ``.step-N.deleting`` before removing it, so a kill mid-removal never leaves a
half-deleted ``step-N``. A file
that is missing, truncated or altered afterwards fails the manifest check: loading refuses it and
``--resume auto`` falls back to the newest checkpoint that passes.
"""
from __future__ import annotations

import hashlib
import json
import os
import random
import re
import shutil
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

from ..errors import CheckpointError
from ..weightfiles import load_safetensors

DAMAGED = "the checkpoint is damaged; resume from an earlier one (--resume auto skips damaged ones)"

CHECKPOINT_PATTERN = re.compile(r"^step-(\d{6,})$")
MANIFEST = "manifest.json"


def checkpoint_name(step: int) -> str:
    return f"step-{step:06d}"


def partial_path(root: Path, step: int) -> Path:
    return Path(root) / f".{checkpoint_name(step)}.partial"


def write_json(path: Path, data) -> None:
    """JSON written and fsynced (the manifest hashes what is on disk)."""
    with open(path, "w") as handle:
        json.dump(data, handle, indent=1, sort_keys=True)
        handle.flush()
        os.fsync(handle.fileno())


def read_json(path: Path):
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"cannot read {path}: {exc}; the checkpoint is damaged, resume from another one") from None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() and p.name != MANIFEST)


def finalize(partial: Path, final: Path, step: int) -> Path:
    """Hash every file into the manifest, then rename the partial folder onto its final name."""
    manifest = {"step": step, "format": 1,
                "files": {rel: {"sha256": _sha256(partial / rel), "bytes": (partial / rel).stat().st_size}
                          for rel in _files(partial)}}
    write_json(partial / MANIFEST, manifest)
    if final.exists():  # a re-save of the same step: retire the old folder atomically as well
        doomed = final.with_name(f".{final.name}.deleting")
        os.replace(final, doomed)
        shutil.rmtree(doomed)
    os.replace(partial, final)
    return final


def verify(folder: Path) -> dict:
    """The manifest of a complete, intact checkpoint; ``CheckpointError`` saying what is wrong otherwise."""
    folder = Path(folder)
    if not folder.is_dir():
        raise CheckpointError(f"checkpoint {folder} does not exist; pass a folder under OUT/checkpoints/ or --resume auto")
    if not (folder / MANIFEST).is_file():
        raise CheckpointError(f"checkpoint {folder} has no {MANIFEST}: it is incomplete (interrupted while "
                              "saving?) or not a training checkpoint; resume from an earlier one")
    manifest = read_json(folder / MANIFEST)
    files = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(files, dict) or not files:
        raise CheckpointError(f"checkpoint {folder}: {MANIFEST} lists no files; resume from an earlier checkpoint")
    for rel, info in files.items():
        path = folder / rel
        if not path.is_file():
            raise CheckpointError(f"checkpoint {folder} is missing {rel}; it is incomplete, resume from an earlier one")
        if path.stat().st_size != info["bytes"]:
            raise CheckpointError(f"checkpoint {folder}: {rel} has {path.stat().st_size} bytes, expected "
                                  f"{info['bytes']} (truncated); resume from an earlier checkpoint")
        if _sha256(path) != info["sha256"]:
            raise CheckpointError(f"checkpoint {folder}: {rel} fails its sha256 check (corrupted); "
                                  "resume from an earlier checkpoint")
    return manifest


def list_checkpoints(root: Path) -> list[Path]:
    """Checkpoint folders under ``root``, newest (highest step) first."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if p.is_dir() and (m := CHECKPOINT_PATTERN.match(p.name))]
    return [p for _, p in sorted(found, reverse=True)]


def find_resumable(root: Path) -> tuple[Path | None, list[str]]:
    """Newest intact checkpoint under ``root`` and the reasons the newer ones were skipped."""
    skipped = []
    for folder in list_checkpoints(root):
        try:
            verify(folder)
            return folder, skipped
        except CheckpointError as exc:
            skipped.append(str(exc))
    return None, skipped


def prune(root: Path, keep: int) -> None:
    """Keep the newest ``keep`` checkpoints and remove partial folders left by crashes."""
    root = Path(root)
    for folder in list_checkpoints(root)[max(1, keep):]:
        # Renamed first: a kill during the removal leaves a hidden leftover, never a half-deleted step-N.
        doomed = folder.with_name(f".{folder.name}.deleting")
        os.replace(folder, doomed)
        shutil.rmtree(doomed, ignore_errors=True)


def remove_partials(root: Path) -> None:
    """Remove what interrupted saves and prunes left behind (``.step-N.partial``, ``.step-N.deleting``)."""
    root = Path(root)
    if root.is_dir():
        for p in root.iterdir():
            if p.name.endswith((".partial", ".deleting")):
                shutil.rmtree(p, ignore_errors=True)


# --- optimizer / scheduler / RNG state without pickle -------------------------------------------

def save_optimizer(optimizer: torch.optim.Optimizer, folder: Path) -> None:
    """Tensors of the optimizer state to safetensors, everything else to JSON."""
    state = optimizer.state_dict()
    tensors, scalars = {}, {}
    for index, entry in state["state"].items():
        for key, value in entry.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{index}.{key}"] = value.detach().contiguous().cpu()
            else:
                scalars[f"{index}.{key}"] = value
    save_file(tensors, str(folder / "optimizer.safetensors"))
    write_json(folder / "optimizer.json", {"param_groups": state["param_groups"], "scalars": scalars,
                                           "type": type(optimizer).__name__})


def load_optimizer(optimizer: torch.optim.Optimizer, folder: Path) -> None:
    meta = read_json(folder / "optimizer.json")
    if meta.get("type") != type(optimizer).__name__:
        raise CheckpointError(f"{folder}: optimizer is {meta.get('type')}, this config uses "
                              f"{type(optimizer).__name__}; resume with the same train.optimizer")
    tensors = load_safetensors(folder / "optimizer.safetensors", DAMAGED, CheckpointError)
    state: dict = {}
    for key, value in list(tensors.items()) + list(meta["scalars"].items()):
        index, name = key.split(".", 1)
        state.setdefault(int(index), {})[name] = value
    groups = meta["param_groups"]
    for group in groups:
        if "betas" in group:
            group["betas"] = tuple(group["betas"])
    current = optimizer.state_dict()["param_groups"]
    if [len(g["params"]) for g in groups] != [len(g["params"]) for g in current]:
        raise CheckpointError(f"{folder}: the optimizer state covers a different set of parameters than this "
                              "model/stage; resume with the same config the checkpoint was trained with")
    device = next((p.device for g in optimizer.param_groups for p in g["params"]), torch.device("cpu"))
    for entry in state.values():
        for name, value in entry.items():
            if isinstance(value, torch.Tensor) and name != "step":
                entry[name] = value.to(device)
    optimizer.load_state_dict({"state": state, "param_groups": groups})


def rng_state() -> tuple[dict, dict]:
    """(tensors, json) of the python, numpy, torch and CUDA generators of this process."""
    version, internal, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state()
    tensors = {"torch": torch.get_rng_state(), "numpy_keys": torch.from_numpy(keys.astype(np.int64))}
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"cuda{i}"] = s
    meta = {"python": [version, list(internal), gauss], "numpy": [name, int(pos), int(has_gauss), float(cached)]}
    return tensors, meta


def set_rng_state(tensors: dict, meta: dict) -> None:
    version, internal, gauss = meta["python"]
    random.setstate((version, tuple(internal), gauss))
    name, pos, has_gauss, cached = meta["numpy"]
    np.random.set_state((name, tensors["numpy_keys"].numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(tensors["torch"])
    cuda = [tensors[f"cuda{i}"] for i in range(torch.cuda.device_count()) if f"cuda{i}" in tensors]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda)


def save_rng(folder: Path, rank: int) -> None:
    tensors, meta = rng_state()
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(folder / f"rng-rank{rank}.safetensors"))
    write_json(folder / f"rng-rank{rank}.json", meta)


def load_rng(folder: Path, rank: int) -> bool:
    """Restore this rank's RNG states; False when the checkpoint has none for this rank."""
    path = folder / f"rng-rank{rank}.safetensors"
    if not path.is_file():
        return False
    set_rng_state(load_safetensors(path, DAMAGED, CheckpointError), read_json(folder / f"rng-rank{rank}.json"))
    return True


def _read_weights(folder: Path) -> dict:
    files = sorted(Path(folder).glob("*.safetensors"))
    if not files:
        raise CheckpointError(f"{folder} holds no .safetensors weights; the checkpoint is incomplete")
    state = {}
    for f in files:
        state.update(load_safetensors(f, DAMAGED, CheckpointError))
    return state


def init_weights_folder(spec) -> Path:
    """The folder of safetensors weights named by ``train.init``.

    Accepts a run's ``final/`` (EMA weights), a ``checkpoints/step-N/`` folder (its EMA weights,
    which are what ships), any folder of safetensors, the name of a shipped checkpoint, or a
    Hugging Face hub id (``org/name``) as ``--checkpoint`` takes it.
    """
    from ..methods import shipped_checkpoint
    from ..weights_import import looks_like_hub_id, resolve_hub

    spec = str(spec)
    path = Path(spec).expanduser()
    if not path.exists() and "/" not in spec and shipped_checkpoint(spec).is_dir():
        path = shipped_checkpoint(spec)
    elif looks_like_hub_id(spec):
        path = resolve_hub(spec)
    if not path.is_dir():
        raise CheckpointError(f"train.init: {spec} is not a folder of weights nor a shipped checkpoint's name; "
                              "give a run's final/ or checkpoints/step-N/ folder")
    for sub in ("ema", "."):
        if any((path / sub).glob("*.safetensors")):
            return (path / sub).resolve()
    raise CheckpointError(f"train.init: {path} holds no .safetensors weights (nor an ema/ folder of them)")


def warm_start(module: torch.nn.Module, folder: Path, strict: bool = True) -> dict:
    """Initialise ``module`` from a folder of weights (see :func:`init_weights_folder`) and return
    what was loaded and skipped.

    Strict: every tensor of the model must be in the file with its shape, and nothing else.
    Partial: tensors whose name and shape match are loaded (e.g. a trained NAFNet into BlurDM's
    ``backbone.*``); the rest keep their fresh initialisation and are listed.
    """
    state = _read_weights(folder)
    own = module.state_dict()
    fits = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    misshapen = sorted(k for k in state if k in own and own[k].shape != state[k].shape)
    missing = sorted(set(own) - set(fits) - set(misshapen))
    unused = sorted(set(state) - set(own))
    if strict and (missing or unused or misshapen):
        raise CheckpointError(
            f"train.init: {folder} does not fit this model strictly (missing {missing[:3]}, unexpected {unused[:3]}, "
            f"misshapen {misshapen[:3]}); set train.init_strict: false to load the tensors that fit")
    if not fits:
        raise CheckpointError(f"train.init: no tensor of {folder} fits this model; is it another method's checkpoint?")
    module.load_state_dict(fits, strict=False)
    return {"folder": str(folder), "loaded": sorted(fits), "missing": missing, "unused": unused,
            "misshapen": misshapen}


def load_weights(module: torch.nn.Module, folder: Path) -> None:
    """Load ``folder``'s safetensors weights (written by save_pretrained) into ``module``, strictly."""
    state = _read_weights(folder)
    missing, unexpected = module.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise CheckpointError(f"{folder}: weights do not fit this model (missing {missing[:3]}, unexpected "
                              f"{unexpected[:3]}); resume with the config the checkpoint was trained with")
