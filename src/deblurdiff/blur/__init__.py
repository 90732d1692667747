"""Blur physics: formation (temporal averages, linear light, progressive blur), camera shake,
procedural moving scenes and the embedded benchmark.

``formation`` is re-exported here; ``shake``, ``scenes`` and ``benchmark`` are imported from
their modules (they pull in scikit-image photos only when used).
"""
from .formation import (DEFAULT_GAMMA, from_linear, middle_index, progressive_blur, temporal_average, to_linear,
                        window_average)

__all__ = ["DEFAULT_GAMMA", "from_linear", "middle_index", "progressive_blur", "temporal_average", "to_linear",
           "window_average"]
