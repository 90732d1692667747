"""Argument types that refuse bad numbers while the command line is parsed.

A value out of range is an argparse error naming the option (exit 2, before anything is read,
computed or written), the same for every command; without these, a bad ``--tile`` or
``--duty-cycle`` would surface deep inside a run, or not at all.
"""
from __future__ import annotations

import argparse
import math


def _number(kind, text: str):
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {'an integer' if kind is int else 'a number'}, "
                                         f"got {text!r}") from None
    if kind is float and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def int_at_least(minimum: int, maximum: int = 2**63 - 1):
    """An int >= ``minimum`` (and <= ``maximum``: torch seeds and sizes are 64-bit)."""
    def parse(text: str) -> int:
        value = _number(int, text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        if value > maximum:
            raise argparse.ArgumentTypeError(f"must be at most {maximum}, got {value}")
        return value
    parse.__name__ = f"int >= {minimum}"
    return parse


def float_in(low: float, high: float = math.inf, low_open: bool = True):
    """A finite float in ``(low, high]`` (``[low, high]`` when not ``low_open``)."""
    def parse(text: str) -> float:
        value = _number(float, text)
        if value < low or (low_open and value == low) or value > high:
            bounds = f"{'(' if low_open else '['}{low:g}, {high:g}]" if high != math.inf else \
                f"{'above' if low_open else 'at least'} {low:g}"
            raise argparse.ArgumentTypeError(f"must be {'in ' if high != math.inf else ''}{bounds}, got {value:g}")
        return value
    parse.__name__ = "number"
    return parse


def frame_size(text: str) -> tuple[int, int]:
    """``WIDTHxHEIGHT``, each at least 8 pixels (the smallest input a method accepts)."""
    parts = text.lower().split("x")
    try:
        width, height = (int(v) for v in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT such as 1280x720, got {text!r}") from None
    if min(width, height) < 8:
        raise argparse.ArgumentTypeError(f"width and height must be at least 8 pixels, got {text!r}")
    return width, height


def folder_name(text: str) -> str:
    """One folder name (no separators, not '.' or '..'), so an output stays inside its --out."""
    if not text or text in (".", "..") or "/" in text or "\\" in text or "\0" in text:
        raise argparse.ArgumentTypeError(f"expected a plain folder name such as 'train', got {text!r}")
    return text


positive_int = int_at_least(1)
non_negative_int = int_at_least(0)
seed = int_at_least(0)
