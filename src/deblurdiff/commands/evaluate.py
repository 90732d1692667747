"""``deblurdiff eval --method M --data DIR --out results.json``: a method over a dataset, scored.

The dataset is the embedded benchmark (``--layout benchmark``, detected from its manifest) or a
field layout read by ``deblurdiff.data.build_dataset`` (gopro, dvd, reds, folder; test split,
no augmentation, no crop). Per part:

* ``image``: each blurred image is deblurred and scored against its sharp image. An exposure
  method (vdm-md) is scored on its middle frame.
* ``video``: each clip is deblurred (image methods frame by frame) and scored per frame, plus
  the temporal error of frame differences (``metrics.consistency``).
* ``exposure``: an exposure method is scored on the middle frame in the better of both time
  orders (VDM-MD's protocol; ``reversed`` says which) plus re-blur PSNR against the input; an
  image method on its single output against the middle frame.

Results (settings, the scoring convention, one row per case, means, seconds per frame) are
written atomically as JSON; ``deblurdiff compare`` turns several into a table.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

from .argtypes import non_negative_int, positive_int, seed

HELP = "run a method over a dataset and write per-case and mean metrics with timings (JSON)"
DEFAULT_METRICS = "psnr,ssim,lpips"
LAYOUTS = ("benchmark", "gopro", "dvd", "reds", "folder")
PARTS = ("image", "video", "exposure")


def add_arguments(p):
    p.add_argument("--method", required=True, help="registered method name (divd, vdd, vdm-md, blurdm, wiener, ...)")
    p.add_argument("--data", required=True, help="dataset folder")
    p.add_argument("--layout", choices=LAYOUTS, default=None, help="folder layout (default: benchmark if it has a "
                   "manifest.json, else gopro)")
    p.add_argument("--part", choices=PARTS, default="image", help="which task: image, video or exposure")
    p.add_argument("--out", required=True, help="results JSON file")
    p.add_argument("--checkpoint", default=None, help="checkpoint folder (default: the shipped one)")
    p.add_argument("--steps", type=positive_int, default=None, help="sampling steps (diffusion methods)")
    p.add_argument("--seed", type=seed, default=0)
    p.add_argument("--metrics", default=None, help="comma-separated: psnr, ssim, lpips, lpips-vgg, fid, kid "
                   f"(default {DEFAULT_METRICS}, skipping LPIPS when its weights are not installed; metrics named "
                   "here must be computable)")
    p.add_argument("--y-channel", action="store_true", help="score the BT.601 luma (RealBlur convention)")
    p.add_argument("--crop-border", type=non_negative_int, default=0)
    p.add_argument("--frames", type=positive_int, default=None, help="clip length for video layouts (reader default otherwise)")
    p.add_argument("--limit", type=positive_int, default=None, help="only the first N cases (quick checks)")
    p.add_argument("--inception", default=None, help="Inception weights for FID/KID")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--quiet", action="store_true")


def open_dataset(data: Path, layout: str | None, part: str, frames: int | None = None):
    """The dataset for ``layout`` (benchmark detected by its manifest) and ``part``."""
    from ..errors import InputError

    if not data.is_dir():
        raise InputError(f"{data} is not a folder; pass the dataset root with --data")
    layout = layout or ("benchmark" if (data / "manifest.json").is_file() else "gopro")
    if layout == "benchmark":
        from ..data.benchmark import BenchmarkDataset
        return BenchmarkDataset(data, part), layout
    from ..data import build_dataset
    from ..train.config import DataConfig
    cfg = DataConfig(source=layout, mode=part, root=str(data), split="test", augment=False, crop=None,
                     **({"frames": frames} if frames else {}))
    return build_dataset(cfg), layout


def evaluate(deblurrer, dataset, part: str, scorer, steps=None, seed: int = 0, limit=None, progress=None) -> list[dict]:
    """Score ``deblurrer`` on ``dataset``; rows are recorded in ``scorer`` and returned."""
    from ..blur.formation import middle_index
    from ..errors import InputError
    from ..metrics import best_order, reblur_psnr, temporal_error

    kind = deblurrer.kind
    count = len(dataset) if limit is None else min(limit, len(dataset))
    rows = []
    for index in range(count):
        item = dataset[index]
        name = f"{index:03d}"
        blur = item["blur"]
        if part == "video" and kind == "exposure":
            raise InputError("an exposure method (one blurred image -> its sharp frames) cannot be scored on the "
                             "video part; use --part exposure or --part image")
        out = deblurrer.deblur(blur, steps=steps, seed=seed)
        extra = {"seconds_per_frame": deblurrer.last_run.get("seconds_per_frame")}
        if part == "image":
            pred = out[middle_index(len(out))] if kind == "exposure" else out
            row = scorer.add(pred[None], item["sharp"][None], [name], **extra)[0]
        elif part == "video":
            pred, gt = out, item["sharp"]
            frame_rows = scorer.add(pred, gt, [f"{name}/{i:02d}" for i in range(len(pred))], record=False)
            row = {"name": name, **{k: sum(r[k] for r in frame_rows) / len(frame_rows) for k in frame_rows[0]
                                    if k != "name"},
                   "temporal_error": float(temporal_error(pred[None], gt[None])), **extra}
            scorer.record_case(row)
        else:  # exposure
            if kind == "exposure":
                frames = out
                if frames.shape != item["frames"].shape:
                    raise InputError(f"{deblurrer.name} returned {frames.shape[0]} frames but the data has "
                                     f"{item['frames'].shape[0]}; evaluate with matching --frames")
                ordered = best_order(frames[None], item["frames"][None], scorer.convention)
                middle = frames.flip(0) if bool(ordered["reversed"]) else frames
                row = scorer.add(middle[middle_index(len(middle))][None], item["sharp"][None], [name], **extra,
                                 reblur_psnr=reblur_psnr(frames[None], blur[None], scorer.convention),
                                 reversed=bool(ordered["reversed"]))[0]
            else:
                row = scorer.add(out[None], item["sharp"][None], [name], **extra)[0]
        rows.append(row)
        if progress:
            progress(index, count, row)
    return rows


def run(args) -> int:
    from .. import api
    from ..atomic import atomic_file, check_writable
    from ..errors import InputError
    from ..metrics import Convention, Scorer

    check_writable(args.out, "--out")  # before minutes of deblurring, not after
    data = Path(args.data)
    dataset, layout = open_dataset(data, args.layout, args.part, args.frames)
    if len(dataset) == 0:
        raise InputError(f"{data}: no {args.part} cases found for layout {layout}")
    deblurrer = api.load(args.method, checkpoint=args.checkpoint, device=args.device)
    convention = Convention(y_channel=args.y_channel, crop_border=args.crop_border)
    scorer = Scorer(args.metrics or DEFAULT_METRICS, convention, device=deblurrer.device, inception=args.inception,
                    strict=args.metrics is not None)
    print(convention.describe())
    for name, message in scorer.unavailable.items():
        print(f"{name}: unavailable: {message}")

    def progress(i, n, row):
        if not args.quiet:
            shown = "  ".join(f"{k} {v:.4f}" for k, v in row.items() if isinstance(v, float))
            print(f"[{i + 1}/{n}] {row['name']}  {shown}", flush=True)

    start = time.perf_counter()
    evaluate(deblurrer, dataset, args.part, scorer, args.steps, args.seed, args.limit, progress)
    summary = scorer.summary()
    result = {"method": args.method, "checkpoint": args.checkpoint, "data": str(data), "layout": layout,
              "part": args.part, "steps": args.steps, "seed": args.seed, "device": str(deblurrer.device),
              "convention": convention.describe(), "metrics": scorer.metrics, "unavailable": scorer.unavailable,
              "cases": scorer.cases, "mean": summary, "seconds_per_frame": summary.get("seconds_per_frame"),
              "wall_seconds": time.perf_counter() - start, "date": time.strftime("%Y-%m-%d %H:%M:%S")}
    out = Path(args.out)
    with atomic_file(out) as tmp:
        tmp.write_text(json.dumps(result, indent=2))
    print(f"{args.method} on {layout}/{args.part} ({len(scorer.cases)} cases): " + "  ".join(
        f"{k} {v:.4f}" if isinstance(v, float) else f"{k} " + ("unavailable" if k in scorer.unavailable else "n/a")
        for k, v in summary.items()))
    print(f"wrote {out}")
    return 0
