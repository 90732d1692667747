"""Aligned augmentation: one random crop / flip / rot90 / time reversal for every tensor of an item.

Blurred and sharp frames of a pair (and all frames of a clip) must move together, so the random
choices are drawn once per item from a ``torch.Generator`` and applied to each tensor; the
result is a pure function of the generator's state.
"""
from __future__ import annotations

import torch

from ..errors import InputError


def _size(item: dict) -> tuple[int, int]:
    sizes = {tuple(v.shape[-2:]) for v in item.values()}
    if len(sizes) != 1:
        raise InputError(f"blurred and sharp frames differ in size ({sorted(sizes)}); pairs must match")
    return sizes.pop()


def crop_box(height: int, width: int, crop: int, generator: torch.Generator | None, where: str = "") -> tuple[int, int]:
    """Top-left corner of a ``crop`` x ``crop`` window: random with a generator, else centred."""
    if crop > height or crop > width:
        raise InputError(f"{where or 'image'}: crop {crop} is larger than the image ({width}x{height}); "
                         f"lower data.crop or use larger images")
    if generator is None:
        return (height - crop) // 2, (width - crop) // 2
    top = int(torch.randint(0, height - crop + 1, (), generator=generator))
    left = int(torch.randint(0, width - crop + 1, (), generator=generator))
    return top, left


def dihedral_count(height: int, width: int) -> int:
    """How many of :func:`dihedral`'s transforms keep an item's shape: all 8 on a square, else
    only the 4 flips (a 90 degree turn would swap height and width)."""
    return 8 if height == width else 4


def dihedral(item: dict, transform: int) -> dict:
    """Dihedral transform ``transform`` in ``0 .. dihedral_count - 1`` of every tensor of an item:
    bit 0 flips left-right, bit 1 upside-down, bit 2 then turns by 90 degrees; 0 is the identity.
    The 8 are the distinct symmetries of a square. Tensors may come back as views."""
    height, width = _size(item)
    count = dihedral_count(height, width)
    if not 0 <= transform < count:
        raise InputError(f"dihedral transform {transform} is not one of the {count} for a {width}x{height} item"
                         + ("" if count == 8 else " (90 degree turns need square items)"))
    # One flip (a single copy) then a transposed view: rot90(x) is x.flip(-1) with the last two dims swapped.
    dims = [d for bit, d in ((1, -1), (2, -2)) if transform & bit]
    if transform & 4:
        dims = [d for d in dims if d != -1] if -1 in dims else dims + [-1]
    item = {k: v.flip(dims) for k, v in item.items()} if dims else item
    return {k: v.transpose(-2, -1) for k, v in item.items()} if transform & 4 else item


def augment(item: dict, generator: torch.Generator | None, crop: int | None = None, flips: bool = True,
            rotate: bool = True, reverse_keys: tuple = (), where: str = "") -> dict:
    """Crop (random, or centred without a generator), then with a generator: horizontal and
    vertical flips, a rot90 (square crops only) and, for ``reverse_keys``, reversal of time
    (dim 0). All tensors share the choices."""
    height, width = _size(item)
    if crop:
        top, left = crop_box(height, width, crop, generator, where)
        item = {k: v[..., top:top + crop, left:left + crop] for k, v in item.items()}
        height = width = crop
    if generator is not None:
        draws = torch.rand(4, generator=generator)
        item = dihedral(item, int(flips and draws[0] < 0.5) | int(flips and draws[1] < 0.5) << 1
                        | int(rotate and height == width and draws[2] < 0.5) << 2)
        if reverse_keys and draws[3] < 0.5:
            item = {k: v.flip(0) if k in reverse_keys else v for k, v in item.items()}
    return {k: v.contiguous() for k, v in item.items()}
