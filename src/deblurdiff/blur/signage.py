"""Signage on training photos: plates and lettering, so a deblurrer also learns thin text strokes.

The photo pool is mostly landscapes; real hand-held photos are full of signs, numbers and thin
high-contrast strokes, and a model that never saw them smears them worse (the shipped NAFNet
loses PSNR on a GoPro street sign). :func:`add_signage` composites 1 to ``max_signs`` signs onto
a photo *before* it is shaken, so the blur and the sharp target come from the same signed scene.

A sign is either a plate (rectangle, sometimes rounded, sometimes with a thin inner border) with
text in a contrasting colour, or bare text on the photo (sometimes outlined); 1-3 lines of random
words, numbers, codes and punctuation; font sizes log-uniform from 6 px to a third of the box
height; sometimes a small rotation or a thin rule between lines. Every choice is drawn from the
given ``torch.Generator``, so the result is a pure function of (photo, generator state).

Font: Aileron Regular by Sora Sagano (dotcolon.net), the subset Pillow embeds as
``ImageFont.load_default(size=...)`` (Pillow >= 10.1, drawn by FreeType; no system font, no
download). That build's name table says "No Rights Reserved": Aileron was released into the
public domain (CC0 1.0). It covers printable ASCII, which is all the strings here use.

Pillow draws each sign's masks (plate and ink, antialiased by rendering at 2x and box-reducing),
the compositing onto the tensor is one torch blend per mask over the sign's window. Cost, in CPU
time on one thread: 2.6 ms per 220x220 photo (median over 300; mean 2.8, 95th percentile 5.6),
against 11 ms for the rest of a ``configs/nafnet-cpu.yaml`` shake item.
"""
from __future__ import annotations

import functools
import math

import torch

_UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_LOWER = "abcdefghijklmnopqrstuvwxyz"
_DIGITS = "0123456789"
_SUPERSAMPLE = 2
# Sign colours (RGB in [0, 1]): road-sign blue, green, red, yellow, white, black, brown, orange.
_PLATES = ((0.05, 0.25, 0.65), (0.0, 0.45, 0.25), (0.75, 0.08, 0.1), (0.98, 0.8, 0.05), (0.95, 0.95, 0.93),
           (0.06, 0.06, 0.07), (0.4, 0.22, 0.1), (0.95, 0.45, 0.05))
MIN_FONT_PX = 6


@functools.lru_cache(maxsize=256)
def _font(size: int):
    from PIL import ImageFont

    return ImageFont.load_default(size=size)


def _rand(generator: torch.Generator) -> float:
    return float(torch.rand((), generator=generator))


def _uniform(generator: torch.Generator, low: float, high: float) -> float:
    return low + (high - low) * _rand(generator)


def _int(generator: torch.Generator, low: int, high: int) -> int:
    """An integer in [low, high]."""
    return int(torch.randint(low, high + 1, (), generator=generator))


def _pick(generator: torch.Generator, options):
    return options[_int(generator, 0, len(options) - 1)]


def _letters(generator: torch.Generator, alphabet: str, count: int) -> str:
    return "".join(alphabet[i] for i in torch.randint(0, len(alphabet), (count,), generator=generator).tolist())


def _word(generator: torch.Generator) -> str:
    word = _letters(generator, _LOWER, _int(generator, 2, 9))
    case = _rand(generator)
    return word.upper() if case < 0.5 else word.capitalize() if case < 0.8 else word


def _token(generator: torch.Generator) -> str:
    """One word, number, code or punctuated figure as found on signs and labels."""
    kind = _rand(generator)
    if kind < 0.35:
        return _word(generator)
    if kind < 0.55:                                         # 5511, 750A, 42
        number = _letters(generator, _DIGITS, _int(generator, 1, 5))
        return number + (_pick(generator, _UPPER) if _rand(generator) < 0.3 else "")
    if kind < 0.7:                                          # plates and codes: AB 123 CD, B-52
        head = _letters(generator, _UPPER, _int(generator, 1, 3))
        tail = _letters(generator, _DIGITS, _int(generator, 2, 4))
        code = head + _pick(generator, (" ", "-", "")) + tail
        return code + " " + _letters(generator, _UPPER, 2) if _rand(generator) < 0.3 else code
    if kind < 0.9:                                          # 12:45, 3.5 km, 50%, $9.99, No.7, (1/2)
        a, b = _letters(generator, _DIGITS, _int(generator, 1, 2)), _letters(generator, _DIGITS, _int(generator, 1, 2))
        return _pick(generator, (f"{a}:{b}", f"{a}.{b} km", f"{a}%", f"${a}.{b}", f"No.{a}", f"({a}/{b})",
                                 f"#{a}", f"{a}-{b}", f"{a},{b}", f"+{a}"))
    return _word(generator) + _pick(generator, ("!", ".", ",", "?", ":", " &", " -", "'s"))


def random_text(generator: torch.Generator) -> str:
    """1-3 lines of one or two tokens each."""
    lines = 1 + (_rand(generator) > 0.5) + (_rand(generator) > 0.75)
    return "\n".join(" ".join(_token(generator) for _ in range(_int(generator, 1, 2))) for _ in range(lines))


def _colour(generator: torch.Generator) -> torch.Tensor:
    return torch.rand(3, generator=generator)


def _luma(colour: torch.Tensor) -> float:
    return float(0.299 * colour[0] + 0.587 * colour[1] + 0.114 * colour[2])


def _contrasting(generator: torch.Generator, background_luma: float) -> torch.Tensor:
    """A colour far in luminance from the background: near white/black, or a tinted light/dark."""
    dark = background_luma > 0.5
    colour = torch.full((3,), 0.03 if dark else 0.97) if _rand(generator) < 0.6 else \
        (_colour(generator) * 0.3 if dark else 0.7 + _colour(generator) * 0.3)
    return (colour + (torch.rand(3, generator=generator) - 0.5) * 0.06).clamp(0, 1)


def _render(generator: torch.Generator, text: str, size: int, plate: bool):
    """The sign's masks at 2x as PIL "L" images ``(plate, ink, outline)``: ``plate`` is None for
    bare text, ``outline`` (a stroke drawn under the ink, in another colour) None unless outlined."""
    from PIL import Image, ImageDraw

    s = _SUPERSAMPLE
    font = _font(size * s)
    spacing = int(size * s * _uniform(generator, 0.1, 0.5))
    align = _pick(generator, ("left", "center", "right"))
    outlined = not plate and size >= 10 and _rand(generator) < 0.3
    bold = size >= 9 and _rand(generator) < 0.3
    stroke = max(1, round(size * s * _uniform(generator, 0.02, 0.06 if bold else 0.1))) if outlined or bold else 0
    bbox = ImageDraw.Draw(Image.new("L", (1, 1))).multiline_textbbox(
        (0, 0), text, font=font, spacing=spacing, align=align, stroke_width=stroke)
    left, top, right, bottom = math.floor(bbox[0]), math.floor(bbox[1]), math.ceil(bbox[2]), math.ceil(bbox[3])
    pad_x = int(size * s * _uniform(generator, 0.2, 0.9)) if plate else 2 * s
    pad_y = int(size * s * _uniform(generator, 0.15, 0.6)) if plate else 2 * s
    width, height = right - left + 2 * pad_x, bottom - top + 2 * pad_y
    origin = (pad_x - left, pad_y - top)
    ink = Image.new("L", (width, height))
    draw = ImageDraw.Draw(ink)
    outline = None
    if outlined:
        outline = Image.new("L", (width, height))
        ImageDraw.Draw(outline).multiline_text(origin, text, fill=255, font=font, spacing=spacing, align=align,
                                               stroke_width=stroke, stroke_fill=255)
        draw.multiline_text(origin, text, fill=255, font=font, spacing=spacing, align=align)
    else:
        draw.multiline_text(origin, text, fill=255, font=font, spacing=spacing, align=align,
                            stroke_width=stroke, stroke_fill=255)
    lines = text.count("\n") + 1
    if lines > 1 and _rand(generator) < 0.25:               # thin rules between the lines
        rule = max(s, int(size * s * 0.08))
        for k in range(1, lines):
            y = pad_y + (bottom - top) * k // lines
            draw.rectangle((pad_x // 2, y - rule // 2, width - pad_x // 2, y - rule // 2 + rule - 1), fill=255)
    backing = None
    if plate:
        backing = Image.new("L", (width, height))
        radius = int(min(width, height) * _uniform(generator, 0.05, 0.3)) if _rand(generator) < 0.5 else 0
        ImageDraw.Draw(backing).rounded_rectangle((0, 0, width - 1, height - 1), radius=radius, fill=255)
        if _rand(generator) < 0.35:                         # a thin border inside the plate's edge
            inset = max(s, min(pad_x, pad_y) // 3)
            line = max(s, int(size * s * _uniform(generator, 0.05, 0.12)))
            draw.rounded_rectangle((inset, inset, width - 1 - inset, height - 1 - inset),
                                   radius=max(0, radius - inset), outline=255, width=line)
    return backing, ink, outline


def _masks(images: list, angle: float) -> torch.Tensor:
    """Box-reduce the 2x masks to 1x and rotate them: a ``(M, h, w)`` float tensor in [0, 1]."""
    import numpy as np
    from PIL import Image

    images = [image.reduce(_SUPERSAMPLE) for image in images]
    if angle:
        images = [image.rotate(angle, resample=Image.Resampling.BILINEAR, expand=True) for image in images]
    return torch.from_numpy(np.stack([np.asarray(image) for image in images])).float() / 255.0


def add_signage(photo: torch.Tensor, generator: torch.Generator, box: tuple[int, int, int, int] | None = None,
                max_signs: int = 3) -> torch.Tensor:
    """``photo`` ``(3, H, W)`` in [0, 1] with 1..``max_signs`` signs composited on (a new tensor).

    ``box`` ``(top, left, bottom, right)`` is where sign centres fall and what the font size scales
    with (its height); default the whole photo. A caller that crops the photo later passes the
    part that will be seen, so that signs are not wasted in the margin.
    """
    _, height, width = photo.shape
    top, left, bottom, right = box if box is not None else (0, 0, height, width)
    out = photo.clone()
    largest = max(MIN_FONT_PX, (bottom - top) // 3)
    for _ in range(_int(generator, 1, max_signs)):
        text = random_text(generator)
        lines = text.count("\n") + 1
        size = int(round(math.exp(_uniform(generator, math.log(MIN_FONT_PX), math.log(largest + 1)))))
        # At most as tall as the box, and (at ~0.6 em a character) at most 1.5 box widths wide.
        longest = max(len(line) for line in text.split("\n"))
        size = max(MIN_FONT_PX, min(size, (bottom - top) // (lines + 1), int(2.5 * (right - left) / longest)))
        plate = _rand(generator) < 0.6
        backing, ink, outline = _render(generator, text, size, plate)
        angle = _uniform(generator, -8, 8) if _rand(generator) < 0.4 else 0.0
        masks = _masks([m for m in (backing, outline, ink) if m is not None], angle)
        mh, mw = masks.shape[-2:]
        cy, cx = _int(generator, top, bottom - 1), _int(generator, left, right - 1)
        y0, x0 = cy - mh // 2, cx - mw // 2
        # The part of the sign's window inside the photo.
        sy, sx = max(0, -y0), max(0, -x0)
        ey, ex = min(mh, height - y0), min(mw, width - x0)
        if sy >= ey or sx >= ex:
            continue
        window = out[:, y0 + sy:y0 + ey, x0 + sx:x0 + ex]
        masks = masks[:, sy:ey, sx:ex]
        under = _luma(window.mean(dim=(1, 2)))
        if plate:
            base = torch.tensor(_pick(generator, _PLATES)) if _rand(generator) < 0.6 else _colour(generator)
            base = (base + (torch.rand(3, generator=generator) - 0.5) * 0.1).clamp(0, 1)
            colours = [base, _contrasting(generator, _luma(base))]
        elif outline is not None:
            fill = _contrasting(generator, under)
            colours = [_contrasting(generator, _luma(fill)), fill]
        else:
            colours = [_contrasting(generator, under) if _rand(generator) < 0.8 else _colour(generator)]
        for mask, colour in zip(masks, colours):
            window.mul_(1 - mask).add_(colour.view(3, 1, 1) * mask)
    return out.clamp_(0, 1)
