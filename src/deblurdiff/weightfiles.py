"""Reading weight files without executing anything in them.

safetensors holds only tensors; torch files are pickles, which can run code when loaded, so
they are only ever read with ``torch.load(weights_only=True)`` (tensors and plain containers,
any other global refused). A damaged, truncated or foreign file is an error naming the file and
what to do, in the caller's error class (``InputError`` for user files, ``CheckpointError`` for
checkpoints).
"""
from __future__ import annotations

import pickle
import warnings
from pathlib import Path

import torch

from .errors import InputError


def load_safetensors(path, fix: str, error=InputError) -> dict[str, torch.Tensor]:
    """All tensors of a .safetensors file; ``error`` naming it (plus ``fix``) if it cannot be read."""
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise error(f"weight file {path} does not exist; {fix}")
    try:
        return load_file(str(path))
    except Exception as exc:  # SafetensorError (bad header, truncated), OSError: both mean a bad file
        raise error(f"{path} is not a readable safetensors file ({_why(exc)}): it is truncated, damaged or "
                    f"another format; {fix}") from None


def check_safetensors(path, fix: str, error=InputError) -> None:
    """Check a .safetensors file's header and size without reading its tensors (cheap)."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            handle.keys()
    except Exception as exc:
        raise error(f"{path} is not a readable safetensors file ({_why(exc)}): it is truncated, damaged or "
                    f"another format; {fix}") from None


def load_torch(path, fix: str, error=InputError):
    """A torch file read with ``weights_only=True``: tensors and containers only, no code runs."""
    path = Path(path)
    if not path.is_file():
        raise error(f"weight file {path} does not exist; {fix}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's notes on pickle protocols are not the user's concern
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise error(f"{path} holds objects other than tensors, which are refused (loading them could run code): "
                    f"{_why(exc, refused=True)}; {fix}") from None
    except Exception as exc:  # truncated zip, not a torch file at all
        raise error(f"{path} cannot be read as torch weights ({_why(exc)}): it is truncated, damaged or another "
                    f"format; {fix}") from None


def load_state_file(path, fix: str, error=InputError) -> dict[str, torch.Tensor]:
    """A state dict from .safetensors or a torch file, unwrapping ``{"state_dict": ...}``."""
    path = Path(path)
    if path.suffix == ".safetensors":
        return load_safetensors(path, fix, error)
    state = load_torch(path, fix, error)
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise error(f"{path} holds a {type(state).__name__}, not a state dict of tensors; {fix}")
    return state


def _why(exc: Exception, refused: bool = False) -> str:
    """The informative line of a library error (torch's weights_only text advises unsafe loading: drop it)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if refused:
        lines = [line for line in lines if "GLOBAL" in line or "Unsupported" in line] or ["unsupported content"]
    return (lines[0].split(". ")[0] if lines else type(exc).__name__)[:200]

