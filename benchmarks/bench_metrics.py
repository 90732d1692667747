"""Baselines on the embedded benchmark's image part, and the speed/agreement of our metrics.

Table: identity (the blurred input), Wiener and Richardson-Lucy with the *true* kernel, and the
blind method (kernel estimated per image), scored with PSNR/SSIM (field convention) and LPIPS
(when its weights are installed). The true kernel is rebuilt from the benchmark's own camera
trajectory (``deblurdiff.blur.benchmark.image_pair``): sub-frame k shows the scene shifted by
d_k, so the blur is a convolution with a kernel holding 1/K at offset -d_k (bilinear splat); the
small camera rotation is ignored, and ``kernel_fit_psnr`` (sharp * kernel vs the benchmark's
blur) says how good that approximation is. Speed is a ratio against Wiener in the same run.

Metric speed: our batched PSNR/SSIM against scikit-image's per-image functions on the same 24
pairs (ratio), and the largest disagreement between the two.

Usage: ``python benchmarks/bench_metrics.py [BENCHMARK_DIR]`` (default ``runs/benchmark``,
written with ``deblurdiff synth --benchmark`` when missing).
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import report  # noqa: E402

from deblurdiff.blur.benchmark import IMAGE_COUNT, image_pair  # noqa: E402
from deblurdiff.data.benchmark import read_image_part  # noqa: E402
from deblurdiff.errors import MissingWeightsError  # noqa: E402
from deblurdiff.methods.classical import (BlindDeconvolution, RichardsonLucy, Wiener,  # noqa: E402
                                          wiener_deconvolve)
from deblurdiff.metrics.image import psnr, ssim  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


def trajectory_kernel(trajectory: torch.Tensor, size: int) -> torch.Tensor:
    """(K, 3) camera poses -> (size, size) blur kernel (translation part, bilinear splat)."""
    kernel = torch.zeros(size, size)
    c = size // 2
    for dx, dy in (-trajectory[:, :2]).tolist():
        x, y = c + dx, c + dy
        x0, y0 = int(np.floor(x)), int(np.floor(y))
        fx, fy = x - x0, y - y0
        for yy, xx, w in ((y0, x0, (1 - fx) * (1 - fy)), (y0, x0 + 1, fx * (1 - fy)),
                          (y0 + 1, x0, (1 - fx) * fy), (y0 + 1, x0 + 1, fx * fy)):
            if 0 <= yy < size and 0 <= xx < size:
                kernel[yy, xx] += w
    return kernel / kernel.sum()


def convolve(images: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    """Per-image convolution with reflected borders (the benchmark's shake reflects at borders too)."""
    pad = kernels.shape[-1] // 2
    x = torch.nn.functional.pad(images, (pad,) * 4, mode="reflect")
    out = [torch.nn.functional.conv2d(x[i:i + 1], kernels[i].flip(0, 1).expand(3, 1, -1, -1), groups=3)
           for i in range(len(images))]
    return torch.cat(out)


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def main(root: Path) -> dict:
    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    if not (root / "manifest.json").is_file():
        from deblurdiff.blur.benchmark import write_benchmark
        write_benchmark(root)
    part = read_image_part(root)
    blur, sharp = part["blur"], part["sharp"]
    kernel_size = 45
    kernels = torch.stack([trajectory_kernel(image_pair(i)["trajectory"], kernel_size) for i in range(IMAGE_COUNT)])
    kernel_fit = psnr(convolve(sharp, kernels), blur).median().item()

    try:
        from deblurdiff.metrics.lpips import LPIPS
        lpips = LPIPS("alex")
    except MissingWeightsError:
        lpips = None

    runs = {"identity": lambda: blur.clone(),
            "wiener (true kernel)": lambda: Wiener().restore(blur, kernel=kernels),
            "richardson-lucy (true kernel, 30 it.)": lambda: RichardsonLucy().restore(blur, kernel=kernels),
            "blind (estimated kernel)": lambda: BlindDeconvolution(kernel_size=kernel_size).restore(blur)}
    rows, seconds = [], {}
    for name, fn in runs.items():
        out, sec = timed(fn)
        seconds[name] = sec
        row = {"method": name, "PSNR": psnr(out, sharp).mean().item(), "SSIM": ssim(out, sharp).mean().item()}
        if lpips is not None:
            with torch.no_grad():
                row["LPIPS"] = lpips(out, sharp).mean().item()
        rows.append(row)
    base = seconds["wiener (true kernel)"]
    for row in rows:
        row["time / Wiener"] = seconds[row["method"]] / base

    # Metric speed and agreement with scikit-image.
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity
    u8 = lambda x: (x.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    b8, s8 = u8(blur), u8(sharp)
    (ours_p, ours_s), t_ours = timed(lambda: (psnr(blur, sharp), ssim(blur, sharp)))
    (ref_p, ref_s), t_ref = timed(lambda: (
        [peak_signal_noise_ratio(s8[i], b8[i], data_range=255) for i in range(len(b8))],
        [structural_similarity(s8[i], b8[i], channel_axis=-1, gaussian_weights=True, sigma=1.5,
                               use_sample_covariance=False, data_range=255) for i in range(len(b8))]))
    figures = {"images": int(len(blur)), "kernel_fit_psnr_db": kernel_fit,
               "psnr_ssim_speedup_vs_skimage": t_ref / t_ours,
               "max_abs_psnr_diff_vs_skimage": float(np.max(np.abs(ours_p.numpy() - ref_p))),
               "max_abs_ssim_diff_vs_skimage": float(np.max(np.abs(ours_s.numpy() - ref_s)))}
    if lpips is not None:
        _, t_lp = timed(lambda: lpips(blur, sharp))
        figures["lpips_alex_time_vs_psnr_ssim"] = t_lp / t_ours
    else:
        figures["lpips"] = "unavailable (run `deblurdiff weights lpips`)"
    settings = {"benchmark": str(root), "kernel_size": kernel_size, "wiener_balance": Wiener().config.balance,
                "rl_iterations": RichardsonLucy().config.iterations,
                "blind_final_balance": BlindDeconvolution().config.final_balance, "threads": torch.get_num_threads()}
    return report("metrics", figures, settings, table=rows)


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else REPO / "runs" / "benchmark")
