"""Several metrics over many image pairs: per-case values, means, and set-level FID/KID.

``Scorer(["psnr", "ssim", "lpips"])`` accumulates batches with ``add(pred, gt, names)`` and
``summary()`` returns the means (plus FID/KID, which need the whole set). A metric whose weights
are not installed is listed in ``unavailable`` with the command that installs them, and gets
no number at all, so a missing download can never be mistaken for a score. With ``strict=True``
(metrics the user named explicitly) a missing one is a ``MissingWeightsError`` instead: a user
who asked for FID must get FID or an error, not a silent gap.
"""
from __future__ import annotations

import numpy as np
import torch

from ..errors import ConfigError, MissingWeightsError
from .image import Convention, psnr, ssim

PAIR_METRICS = ("psnr", "ssim", "lpips", "lpips-vgg")
SET_METRICS = ("fid", "kid")
ALL_METRICS = PAIR_METRICS + SET_METRICS
#: direction for tables: True where higher is better
HIGHER_IS_BETTER = {"psnr": True, "ssim": True, "lpips": False, "lpips-vgg": False, "fid": False, "kid": False,
                    "reblur_psnr": True, "temporal_error": False}


def parse_metrics(text: str | list[str]) -> list[str]:
    names = [m.strip().lower() for m in (text.split(",") if isinstance(text, str) else text) if m.strip()]
    unknown = [m for m in names if m not in ALL_METRICS]
    if unknown or not names:
        raise ConfigError(f"unknown metric(s) {unknown or text!r}; choose from {', '.join(ALL_METRICS)}")
    return list(dict.fromkeys(names))


class Scorer:
    def __init__(self, metrics, convention: Convention = Convention(), device="cpu", inception=None,
                 kid_subset_size: int = 1000, strict: bool = False):
        from .inception import FIDInceptionV3
        from .lpips import LPIPS

        self.metrics, self.convention, self.device = parse_metrics(metrics), convention, torch.device(device)
        self.unavailable: dict[str, str] = {}
        self.models: dict[str, torch.nn.Module] = {}
        loaders = {"lpips": lambda: LPIPS("alex"), "lpips-vgg": lambda: LPIPS("vgg"),
                   "fid": lambda: FIDInceptionV3.from_file(inception)}
        for name in self.metrics:
            key = "fid" if name == "kid" else name
            if key in loaders and key not in self.models and key not in self.unavailable:
                try:
                    self.models[key] = loaders[key]().to(self.device)
                except MissingWeightsError as exc:
                    if strict:
                        raise MissingWeightsError(f"--metrics {name}: {exc}") from None
                    self.unavailable[key] = str(exc)
            if name == "kid" and "fid" in self.unavailable:
                self.unavailable["kid"] = self.unavailable["fid"]
        self.kid_subset_size = kid_subset_size
        self.cases: list[dict] = []
        self._features: dict[str, list[np.ndarray]] = {"pred": [], "gt": []}

    @property
    def active(self) -> list[str]:
        return [m for m in self.metrics if m not in self.unavailable]

    @torch.no_grad()
    def add(self, pred: torch.Tensor, gt: torch.Tensor, names=None, record: bool = True, **extra) -> list[dict]:
        """Score a batch (B, C, H, W) in [0, 1]; returns one dict per case (kept when ``record``).

        ``record=False`` is for frames of one clip that the caller merges into one case
        (``record_case``); set-level features (FID/KID) are collected either way.
        """
        pred, gt = pred.to(self.device).float(), gt.to(self.device).float()
        values: dict[str, torch.Tensor] = {}
        for name in self.active:
            if name == "psnr":
                values[name] = psnr(pred, gt, self.convention)
            elif name == "ssim":
                values[name] = ssim(pred, gt, self.convention)
            elif name in ("lpips", "lpips-vgg"):
                values[name] = self.models[name](pred, gt, quantize=self.convention.quantize)
        if any(m in self.active for m in SET_METRICS):
            from .fid import image_features
            self._features["pred"].append(image_features(self.models["fid"], pred))
            self._features["gt"].append(image_features(self.models["fid"], gt))
        names = list(names) if names is not None else [str(len(self.cases) + i) for i in range(len(pred))]
        rows = [{"name": n, **{k: float(v[i]) for k, v in values.items()},
                 **{k: float(v[i]) if torch.is_tensor(v) else v for k, v in extra.items()}}
                for i, n in enumerate(names)]
        if record:
            self.cases += rows
        return rows

    def record_case(self, row: dict) -> None:
        self.cases.append(row)

    def summary(self) -> dict:
        """Means over cases (``None`` for unavailable metrics) plus FID/KID over the whole set."""
        keys = [k for k in dict.fromkeys(k for c in self.cases for k in c) if k != "name"]
        out = {}
        for k in keys:
            vals = [c[k] for c in self.cases if isinstance(c.get(k), (int, float)) and not isinstance(c.get(k), bool)]
            if vals:
                out[k] = float(np.mean(vals))
        if self._features["pred"]:
            from .fid import fid, kid
            fp, fg = np.concatenate(self._features["pred"]), np.concatenate(self._features["gt"])
            if "fid" in self.active:
                out["fid"] = fid(fp, fg) if len(fp) >= 2 else None
            if "kid" in self.active:
                out["kid"], out["kid_std"] = kid(fp, fg, subset_size=self.kid_subset_size) if len(fp) >= 2 else (None, None)
        for m in self.metrics:
            out.setdefault(m, None)
        return out
