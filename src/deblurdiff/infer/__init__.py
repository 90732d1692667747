"""Generic inference helpers: spatial tiling with blended overlaps, sliding temporal windows,
and statistics over samples. They know nothing about the network they drive."""
from .tiles import blend_window, tiled
from .windows import sliding_windows
from .stats import sample_statistics, time_order_like

__all__ = ["blend_window", "tiled", "sliding_windows", "sample_statistics", "time_order_like"]
