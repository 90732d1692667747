"""FID and KID from feature sets (Heusel et al. 2017; Binkowski et al. 2018).

Statistics follow pytorch-fid / torch-fidelity: FID is the Frechet distance between Gaussians
fitted to the features (``scipy.linalg.sqrtm`` of the covariance product, with the usual
diagonal offset when it is singular); KID is the unbiased MMD^2 with the cubic polynomial kernel
``k(x, y) = (x.y / d + 1)^3``, averaged over random subsets. Features come from
``FIDInceptionV3`` (``image_features``) or any other extractor.
"""
from __future__ import annotations

import numpy as np
import torch
from scipy import linalg

from ..errors import InputError


def feature_statistics(features) -> tuple[np.ndarray, np.ndarray]:
    """Mean and (sample, ddof=1) covariance of an (N, D) feature array, as pytorch-fid computes them."""
    f = np.asarray(features, dtype=np.float64)
    if f.ndim != 2 or len(f) < 2:
        raise InputError(f"need an (N >= 2, D) feature array, got shape {f.shape}")
    return f.mean(axis=0), np.cov(f, rowvar=False)


def frechet_distance(mu1, sigma1, mu2, sigma2, eps: float = 1e-6) -> float:
    """||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2))."""
    mu1, mu2 = np.atleast_1d(mu1), np.atleast_1d(mu2)
    sigma1, sigma2 = np.atleast_2d(sigma1), np.atleast_2d(sigma2)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
        raise InputError("the two feature sets have different dimensions")
    diff = mu1 - mu2
    covmean = linalg.sqrtm(sigma1 @ sigma2)
    if not np.isfinite(covmean).all():  # singular product: regularise as pytorch-fid does
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if np.iscomplexobj(covmean):
        covmean = covmean.real
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


def fid(features_a, features_b) -> float:
    """FID between two (N, D) feature sets."""
    return frechet_distance(*feature_statistics(features_a), *feature_statistics(features_b))


def polynomial_kernel(x: torch.Tensor, y: torch.Tensor, degree: int = 3, coef0: float = 1.0) -> torch.Tensor:
    """(x . y / d + coef0) ^ degree for every pair of rows."""
    return (x @ y.transpose(-1, -2) / x.shape[-1] + coef0) ** degree


def mmd2_unbiased(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Unbiased MMD^2 for batches of subsets (..., m, D) and (..., n, D): diagonals excluded."""
    m, n = x.shape[-2], y.shape[-2]
    kxx, kyy, kxy = polynomial_kernel(x, x), polynomial_kernel(y, y), polynomial_kernel(x, y)
    sum_xx = kxx.sum(dim=(-1, -2)) - kxx.diagonal(dim1=-2, dim2=-1).sum(-1)
    sum_yy = kyy.sum(dim=(-1, -2)) - kyy.diagonal(dim1=-2, dim2=-1).sum(-1)
    return sum_xx / (m * (m - 1)) + sum_yy / (n * (n - 1)) - 2 * kxy.mean(dim=(-1, -2))


def kid(features_a, features_b, subsets: int = 100, subset_size: int = 1000, seed: int = 0) -> tuple[float, float]:
    """KID mean and standard deviation over ``subsets`` random subsets (without replacement within one)."""
    a = torch.as_tensor(np.asarray(features_a), dtype=torch.float64)
    b = torch.as_tensor(np.asarray(features_b), dtype=torch.float64)
    size = min(subset_size, len(a), len(b))
    if size < 2:
        raise InputError(f"KID needs at least 2 samples per set, got {len(a)} and {len(b)}")
    g = torch.Generator().manual_seed(seed)
    idx_a = torch.stack([torch.randperm(len(a), generator=g)[:size] for _ in range(subsets)])
    idx_b = torch.stack([torch.randperm(len(b), generator=g)[:size] for _ in range(subsets)])
    chunk = max(1, 2_000_000 // (size * size))  # bound the kernel matrices' memory
    values = torch.cat([mmd2_unbiased(a[idx_a[i:i + chunk]], b[idx_b[i:i + chunk]]) for i in range(0, subsets, chunk)])
    return float(values.mean()), float(values.std(unbiased=False))


@torch.no_grad()
def image_features(model, images: torch.Tensor, batch_size: int = 32) -> np.ndarray:
    """(N, C, H, W) images in [0, 1] -> (N, 2048) float64 features, in batches."""
    device = next(model.parameters()).device
    if images.shape[1] == 1:
        images = images.expand(-1, 3, -1, -1)
    feats = [model(images[i:i + batch_size].to(device).float()).double().cpu() for i in range(0, len(images), batch_size)]
    return torch.cat(feats).numpy()
