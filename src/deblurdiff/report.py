"""The demo's HTML page: cases side by side, a metrics table per part.

Plain HTML with relative links to PNG/GIF files next to it, so the page opens from disk in any
browser and can be zipped and shared.
"""
from __future__ import annotations

import html
from pathlib import Path

from .atomic import atomic_file

#: Marks the page with how many images failed to load (shown to the reader, read by the tests).
_IMAGE_CHECK = """
window.addEventListener('load', () => {
  const broken = [...document.images].filter(i => !(i.complete && i.naturalWidth > 0));
  document.body.dataset.images = document.images.length;
  document.body.dataset.broken = broken.length;
  if (broken.length) document.body.insertAdjacentHTML('afterbegin',
    `<p style="color:#b00">${broken.length} image(s) failed to load</p>`);
});
"""

_STYLE = """
body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1400px}
h1{margin-bottom:0} .sub{color:#666;margin-top:4px}
table{border-collapse:collapse;margin:12px 0} td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}
th{background:#f3f3f3} td:first-child,th:first-child{text-align:left}
.case{display:flex;flex-wrap:wrap;gap:8px;margin:10px 0 22px} figure{margin:0;text-align:center}
figure img{width:192px;image-rendering:pixelated;border:1px solid #ddd} figcaption{font-size:12px;color:#444}
"""


def _fmt(value) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 10 else f"{value:.2f}"
    return html.escape(str(value))


def metrics_table(rows: list[dict], columns: list[str]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{_fmt(r.get(c))}</td>" for c in columns) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def case_strip(title: str, images: list[tuple[str, str]]) -> str:
    """One case: a row of (caption, relative image path)."""
    figs = "".join(f'<figure><img src="{html.escape(src)}" alt="{html.escape(cap)}">'
                   f"<figcaption>{html.escape(cap)}</figcaption></figure>" for cap, src in images)
    return f"<h4>{html.escape(title)}</h4><div class='case'>{figs}</div>"


def write_page(path: Path, title: str, subtitle: str, sections: list[tuple[str, str]]) -> Path:
    """Write ``sections`` (heading, inner HTML) as one page, atomically."""
    body = "".join(f"<h2>{html.escape(h)}</h2>{inner}" for h, inner in sections)
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{_STYLE}</style><script>{_IMAGE_CHECK}</script></head><body><h1>{html.escape(title)}</h1>"
            f"<p class='sub'>{html.escape(subtitle)}</p>{body}</body></html>")
    with atomic_file(path) as tmp:
        tmp.write_text(page, encoding="utf-8")
    return Path(path)


def write_gif(path, frames, fps: float = 6.0, gap: int = 2) -> Path:
    """Frames (K, C, H, W) in [0, 1] -> a looping animated GIF, written atomically. Several clips
    (N, K, C, H, W) play side by side in one GIF, ``gap`` white pixels apart, so they can be
    compared frame for frame."""
    import imageio.v3 as iio
    import numpy as np
    import torch.nn.functional as F
    from einops import rearrange

    if frames.dim() == 5:
        frames = rearrange(F.pad(frames, (0, gap), value=1.0), "n k c h w -> k c h (n w)")
        frames = frames[..., :frames.shape[-1] - gap]
    array = (frames.detach().clamp(0, 1).movedim(-3, -1).cpu().numpy() * 255 + 0.5).astype(np.uint8)
    with atomic_file(path) as tmp:
        iio.imwrite(tmp, array, extension=".gif", duration=1000.0 / fps, loop=0)
    return Path(path)
