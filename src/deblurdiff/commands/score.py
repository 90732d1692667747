"""``deblurdiff score PRED GT``: the field's metrics for two images or two folders.

Folders are matched by file name (falling back to the name without extension, so ``a.png``
matches ``a.jpg``); files present on one side only are an error, not silently skipped. The
scoring convention is always printed. With ``--json`` the last line is one JSON object holding
the mean of every metric (``null`` for a metric whose weights are not installed).
"""
from __future__ import annotations

import json
from pathlib import Path

from .argtypes import non_negative_int

HELP = "score predictions against ground truth (PSNR, SSIM, LPIPS, FID, KID) in the field's convention"
DEFAULT_METRICS = "psnr,ssim,lpips"
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}


def add_arguments(p):
    p.add_argument("pred", help="predicted image or folder of images")
    p.add_argument("gt", help="ground-truth image or folder (same file names)")
    p.add_argument("--metrics", default=None, help="comma-separated: psnr, ssim, lpips, lpips-vgg, fid, kid "
                   f"(default {DEFAULT_METRICS}, skipping LPIPS when its weights are not installed; metrics named "
                   "here must be computable)")
    p.add_argument("--y-channel", action="store_true", help="score the BT.601 luma (RealBlur convention)")
    p.add_argument("--crop-border", type=non_negative_int, default=0, help="pixels dropped on every side before scoring")
    p.add_argument("--no-quantize", action="store_true", help="do not round to 8-bit levels before scoring")
    p.add_argument("--inception", default=None, help="Inception weights for FID/KID (default: the imported ones)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--per-image", action="store_true", help="also print one line per image")
    p.add_argument("--json", action="store_true", help="print the means as one JSON object on the last line")


def read_image(path):
    """(1, 3, H, W) float in [0, 1], through the data layer's validating reader."""
    from ..data.io import read_image as data_read_image

    return data_read_image(path).unsqueeze(0)


def pair_files(pred: Path, gt: Path) -> list[tuple[Path, Path]]:
    """(prediction, ground truth) file pairs for two files or two folders."""
    from ..errors import InputError

    for p in (pred, gt):
        if not p.exists():
            raise InputError(f"{p} does not exist")
    if pred.is_file() and gt.is_file():
        return [(pred, gt)]
    if pred.is_dir() != gt.is_dir():
        raise InputError(f"give two images or two folders, not a mix ({pred}, {gt})")
    list_images = lambda d: sorted(f for f in d.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
    preds, gts = list_images(pred), list_images(gt)
    gt_by_name = {f.name: f for f in gts}
    gt_by_stem = {f.stem: f for f in gts}
    pairs, unmatched = [], []
    for f in preds:
        match = gt_by_name.get(f.name) or gt_by_stem.get(f.stem)
        (pairs.append((f, match)) if match else unmatched.append(f.name))
    extra = sorted({f.name for f in gts} - {g.name for _, g in pairs})
    if unmatched or extra or not pairs:
        raise InputError(f"folders do not match by file name: only in {pred}: {unmatched[:5]}, only in {gt}: "
                         f"{extra[:5]}{' (no images found)' if not pairs else ''}; give folders with the same names")
    return pairs


def run(args) -> int:
    from ..errors import InputError
    from ..metrics import Convention, Scorer
    from ..tensors import resolve_device

    convention = Convention(y_channel=args.y_channel, crop_border=args.crop_border, quantize=not args.no_quantize)
    pairs = pair_files(Path(args.pred), Path(args.gt))
    scorer = Scorer(args.metrics or DEFAULT_METRICS, convention, device=resolve_device(args.device), inception=args.inception,
                    strict=args.metrics is not None)
    print(convention.describe())
    for name, message in scorer.unavailable.items():
        print(f"{name}: unavailable: {message}")
    for p, g in pairs:
        pred, gt = read_image(p), read_image(g)
        if pred.shape != gt.shape:
            raise InputError(f"{p} is {pred.shape[-1]}x{pred.shape[-2]}x{pred.shape[1]} but {g} is "
                             f"{gt.shape[-1]}x{gt.shape[-2]}x{gt.shape[1]}; score images of identical size")
        row = scorer.add(pred, gt, [p.name])[0]
        if args.per_image:
            print(p.name + "  " + "  ".join(f"{k} {v:.4f}" for k, v in row.items() if k != "name"))
    summary = scorer.summary()
    print(f"{len(pairs)} image pair(s): " + "  ".join(
        f"{k} {v:.4f}" if isinstance(v, float) else f"{k} " + ("unavailable" if k in scorer.unavailable else "n/a")
        for k, v in summary.items()))
    if args.json:
        print(json.dumps(summary))
    return 0
