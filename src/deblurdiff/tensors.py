"""The one place where value ranges are converted.

Contract (docs/architecture.md): images ``(B, C, H, W)``, clips ``(B, F, C, H, W)``; float in
[0, 1] at the API and IO boundary, float in [-1, 1] inside models.
"""
import torch


VALUE_RANGES = ("signed", "unit")


def to_model(x01: torch.Tensor, value_range: str = "signed") -> torch.Tensor:
    """[0, 1] -> [-1, 1] (``value_range="unit"``: unchanged, for official weights trained on [0, 1])."""
    return x01 if value_range == "unit" else x01 * 2.0 - 1.0


def to_image(xm: torch.Tensor, value_range: str = "signed") -> torch.Tensor:
    """[-1, 1] (or [0, 1] with ``value_range="unit"``) -> [0, 1], clamped."""
    return (xm if value_range == "unit" else (xm + 1.0) * 0.5).clamp(0.0, 1.0)


def resolve_device(device: str = "auto") -> torch.device:
    """'auto' -> cuda if available else cpu; otherwise the named device."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)
