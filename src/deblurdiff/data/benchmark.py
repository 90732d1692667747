"""Readers of the embedded benchmark written by ``deblurdiff synth --benchmark --out DIR``.

Each part loads as stacked tensors in [0, 1] (``read_image_part``, ``read_video_part``,
``read_exposure_part``) or as a dataset whose items follow the dataset contract
(``BenchmarkDataset``), so evaluation code treats the benchmark like any other source.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
from torch.utils.data import Dataset

from ..blur.formation import middle_index
from ..errors import InputError
from .io import list_images, read_frames, read_image

PARTS = ("image", "video", "exposure")
_HINT = "generate it with `deblurdiff synth --benchmark --out DIR`"


def _root(root) -> Path:
    root = Path(root)
    if not (root / "manifest.json").is_file():
        raise InputError(f"{root}: not an embedded benchmark (no manifest.json); {_HINT}")
    return root


def read_manifest(root) -> dict:
    path = _root(root) / "manifest.json"
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: corrupt manifest ({exc}); {_HINT}") from None


def _folder(root: Path, *parts) -> Path:
    folder = root.joinpath(*parts)
    if not folder.is_dir():
        raise InputError(f"{folder}: missing from the benchmark; {_HINT}")
    return folder


def _check_count(found: int, manifest: dict, part: str, root: Path) -> None:
    expected = manifest.get(part, {}).get("count")
    if expected is not None and found != expected:
        raise InputError(f"{root / part}: {found} items but the manifest lists {expected}; "
                         f"the benchmark is incomplete, {_HINT}")


def _image_paths(root: Path) -> list[tuple[Path, Path]]:
    blur = list_images(_folder(root, "image", "blur"))
    sharp_dir = _folder(root, "image", "sharp")
    pairs = []
    for path in blur:
        partner = sharp_dir / path.name
        if not partner.is_file():
            raise InputError(f"{partner}: the sharp partner of {path} is missing; {_HINT}")
        pairs.append((path, partner))
    return pairs


def _clip_dirs(root: Path) -> list[Path]:
    return sorted(p for p in _folder(root, "video").iterdir() if p.is_dir() and p.name.startswith("clip"))


def _case_dirs(root: Path) -> list[Path]:
    return sorted(p for p in _folder(root, "exposure").iterdir() if p.is_dir() and p.name.startswith("case"))


def read_image_part(root) -> dict:
    """``blur``, ``sharp``: ``(24, 3, 256, 256)``."""
    root = _root(root)
    pairs = _image_paths(root)
    _check_count(len(pairs), read_manifest(root), "image", root)
    return {"blur": torch.stack([read_image(b) for b, _ in pairs]),
            "sharp": torch.stack([read_image(s) for _, s in pairs])}


def read_video_part(root) -> dict:
    """``blur``, ``sharp``: ``(8, 12, 3, 128, 128)``."""
    root = _root(root)
    clips = _clip_dirs(root)
    _check_count(len(clips), read_manifest(root), "video", root)
    return {"blur": torch.stack([read_frames(c / "blur") for c in clips]),
            "sharp": torch.stack([read_frames(c / "sharp") for c in clips])}


def read_exposure_part(root) -> dict:
    """``blur``: ``(32, 3, 64, 64)``; ``frames``: ``(32, 10, 3, 64, 64)``; ``sharp``: middle frames."""
    root = _root(root)
    cases = _case_dirs(root)
    _check_count(len(cases), read_manifest(root), "exposure", root)
    frames = torch.stack([read_frames(c / "frames") for c in cases])
    return {"blur": torch.stack([read_image(c / "blur.png") for c in cases]), "frames": frames,
            "sharp": frames[:, middle_index(frames.shape[1])].clone()}


def read_part(root, part: str) -> dict:
    readers = {"image": read_image_part, "video": read_video_part, "exposure": read_exposure_part}
    if part not in readers:
        raise InputError(f"unknown benchmark part {part!r}; choose one of {', '.join(PARTS)}")
    return readers[part](root)


class BenchmarkDataset(Dataset):
    """One part of the benchmark as a dataset (items as ``build_dataset``'s contract; files
    are read lazily, one item at a time)."""

    def __init__(self, root, part: str):
        self.root = _root(root)
        if part not in PARTS:
            raise InputError(f"unknown benchmark part {part!r}; choose one of {', '.join(PARTS)}")
        self.part = part
        if part == "image":
            self.items = _image_paths(self.root)
        else:
            self.items = _clip_dirs(self.root) if part == "video" else _case_dirs(self.root)
        _check_count(len(self.items), read_manifest(self.root), part, self.root)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict:
        item = self.items[index]
        if self.part == "image":
            return {"blur": read_image(item[0]), "sharp": read_image(item[1])}
        if self.part == "video":
            return {"blur": read_frames(item / "blur"), "sharp": read_frames(item / "sharp")}
        frames = read_frames(item / "frames")
        return {"blur": read_image(item / "blur.png"), "frames": frames,
                "sharp": frames[middle_index(len(frames))].clone()}
