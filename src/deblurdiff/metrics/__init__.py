"""Metrics of the deblurring literature: PSNR, SSIM, LPIPS, FID/KID, re-blur and temporal consistency.

Heavy parts (LPIPS, Inception) are imported from their modules; the light ones are re-exported.
"""
from .consistency import best_order, reblur_psnr, temporal_error
from .image import Convention, psnr, ssim
from .suite import ALL_METRICS, HIGHER_IS_BETTER, Scorer, parse_metrics

__all__ = ["ALL_METRICS", "HIGHER_IS_BETTER", "Convention", "Scorer", "best_order", "parse_metrics", "psnr",
           "reblur_psnr", "ssim", "temporal_error"]
