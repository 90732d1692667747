"""``deblurdiff compare results/*.json``: a Markdown table like the seed papers' tables.

One row per results file written by ``deblurdiff eval`` (method x PSNR↑ SSIM↑ LPIPS↓ [FID↓ KID↓]
[re-blur PSNR↑] [temporal error↓] s/frame); the best value of each column is bold. Columns
appear only when some file has them; a metric a run could not compute shows "n/a". Files
scored under different conventions or on different data are refused unless ``--mixed``,
because such numbers are not comparable.
"""
from __future__ import annotations

import json
from pathlib import Path

HELP = "tabulate several `deblurdiff eval` results as a Markdown table (best values bold)"
COLUMNS = [("psnr", "PSNR↑", 2), ("ssim", "SSIM↑", 4), ("lpips", "LPIPS↓", 4), ("lpips-vgg", "LPIPS-VGG↓", 4),
           ("fid", "FID↓", 2), ("kid", "KID↓", 4), ("reblur_psnr", "Re-blur PSNR↑", 2),
           ("temporal_error", "tErr↓", 3), ("seconds_per_frame", "s/frame", 3)]


def add_arguments(p):
    p.add_argument("results", nargs="+", help="results JSON files from `deblurdiff eval`")
    p.add_argument("--out", default=None, help="also write the table to this Markdown file")
    p.add_argument("--mixed", action="store_true", help="allow results on different data, parts or conventions")


def load_results(paths) -> list[dict]:
    from ..errors import InputError

    results = []
    for path in paths:
        path = Path(path)
        try:
            record = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise InputError(f"cannot read results file {path}: {exc}") from None
        if not isinstance(record, dict) or "mean" not in record or "method" not in record:
            raise InputError(f"{path} is not a `deblurdiff eval` results file (no 'method'/'mean')")
        results.append(record)
    return results


def table(results: list[dict]) -> str:
    """The Markdown table; ``results`` are eval records."""
    from ..metrics import HIGHER_IS_BETTER

    number = lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)
    present = [c for c in COLUMNS if any(c[0] in r["mean"] for r in results)]
    best = {}
    for key, _, _ in present:
        values = [r["mean"][key] for r in results if number(r["mean"].get(key))]
        if len(values) > 1:
            best[key] = (max if HIGHER_IS_BETTER.get(key, False) else min)(values)
    label = lambda r: r["method"] + (f" ({r['steps']} steps)" if r.get("steps") else "")
    lines = ["| Method | " + " | ".join(h for _, h, _ in present) + " |", "|---|" + "---:|" * len(present)]
    for r in results:
        cells = []
        for key, _, digits in present:
            v = r["mean"].get(key)
            text = f"{v:.{digits}f}" if number(v) else "n/a"
            cells.append(f"**{text}**" if number(v) and best.get(key) == v else text)
        lines.append(f"| {label(r)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def run(args) -> int:
    from ..atomic import atomic_file, check_writable
    from ..errors import InputError

    if args.out:
        check_writable(args.out, "--out")
    results = load_results(args.results)
    settings = {(r.get("data"), r.get("part"), r.get("convention")) for r in results}
    if len(settings) > 1 and not args.mixed:
        raise InputError("the results were computed on different data, parts or conventions "
                         f"({len(settings)} combinations); compare like with like, or pass --mixed")
    first = results[0]
    caption = f"{first.get('layout', '?')}/{first.get('part', '?')} at {first.get('data', '?')}; {first.get('convention', '')}"
    text = table(results) + "\n\n" + caption
    print(text)
    if args.out:
        with atomic_file(Path(args.out)) as tmp:
            tmp.write_text(text + "\n")
    return 0
