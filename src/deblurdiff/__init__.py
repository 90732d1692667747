"""deblurdiff: motion deblurring of images and videos with diffusion models.

Public API (see ``deblurdiff.api``)::

    import deblurdiff
    model = deblurdiff.load("divd")          # shipped checkpoint
    sharp = model.deblur(blurred)            # float tensor / array in [0, 1]
"""
__version__ = "0.1.0"

__all__ = ["load", "DeblurDiffError", "__version__"]

from .errors import DeblurDiffError


def load(method: str, checkpoint=None, device: str = "auto", backbone: str | None = None):
    """Load a deblurring method (its shipped checkpoint unless ``checkpoint`` is given);
    ``backbone`` picks BlurDM's shipped checkpoint for ``nafnet`` or ``mimo-unet``."""
    from .api import load as _load

    return _load(method, checkpoint=checkpoint, device=device, backbone=backbone)
