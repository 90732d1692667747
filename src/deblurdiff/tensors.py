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
    """'auto' -> cuda if available else cpu; otherwise the named device, checked to exist here.

    Checked up front because torch only fails at the first tensor moved there, deep inside a model.
    """
    from .errors import DeviceError

    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise DeviceError(f"--device {device!r} is not a device name; use auto, cpu, cuda or cuda:N") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            why = "this torch build has no CUDA support" if torch.version.cuda is None else "no CUDA GPU is visible"
            raise DeviceError(f"--device {device}: {why}; use --device cpu (or auto)")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise DeviceError(f"--device {device}: only {torch.cuda.device_count()} CUDA device(s) are visible "
                              f"(cuda:0..cuda:{torch.cuda.device_count() - 1})")
    elif dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise DeviceError(f"--device {device}: MPS is not available on this machine; use --device cpu (or auto)")
    elif dev.type not in ("cpu", "cuda", "mps"):
        raise DeviceError(f"--device {device}: unsupported device type {dev.type!r}; use auto, cpu or cuda")
    return dev
