"""Camera shake over a still photo: a smooth random 2-D trajectory plus a small rotation.

The camera's path during one exposure is drawn as a random walk in acceleration (integrated
twice, so velocity is continuous: a hand does not teleport), added to a dominant constant
velocity, and rescaled to a target length. Each of the K sub-frames is the photo warped by the
camera pose at that instant; all K warps are one batched ``grid_sample``.

The sharp reference is the photo at the path's centre of mass (the mean pose over the exposure),
which is the identity pose, so the reference is the photo itself, unresampled. The centre of mass
is what a blurred image pins down: a translation blur is the photo convolved with the path's
density, whose centroid is the mean shift. The pose at mid-exposure (``reference="middle"``, the
convention of earlier versions) sits off that centroid for any bent path (for 20 px paths
1.15 px on average), and no method can recover that offset from the blur alone. For near-linear
motion at constant speed, as in GoPro, the two coincide with the middle frame.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..errors import InputError
from .formation import temporal_average


@dataclass
class ShakeResult:
    blurred: torch.Tensor      # (C, H, W)
    sharp: torch.Tensor        # (C, H, W): the photo at the exposure's centre
    subframes: torch.Tensor    # (K, C, H, W)
    trajectory: torch.Tensor   # (K, 3): dx, dy in pixels, rotation in radians, per sub-frame


REFERENCES = ("centroid", "middle")


def random_trajectory(generator: torch.Generator, subframes: int = 10, max_shift: float = 8.0,
                      max_rotation: float = 0.02, jitter: float = 0.5, min_shift: float | None = None,
                      reference: str = "centroid") -> torch.Tensor:
    """A smooth random camera path ``(K, 3)`` (dx, dy pixels; angle radians), zero at the reference.

    The path's length in pixels is drawn uniformly in [``min_shift``, ``max_shift``] (default
    ``min_shift``: a quarter of ``max_shift``); ``jitter`` is how far the path may bend away from
    a straight line (0 = constant velocity). ``reference`` is the pose that is zero: the mean pose
    (``centroid``) or the pose at mid-exposure (``middle``).
    """
    if subframes < 1:
        raise InputError(f"camera shake needs at least one sub-frame, got {subframes}")
    if reference not in REFERENCES:
        raise InputError(f"reference must be one of {', '.join(REFERENCES)}, got {reference!r}")
    min_shift = 0.25 * max_shift if min_shift is None else float(min_shift)
    if not 0 <= min_shift <= max_shift:
        raise InputError(f"min_shift must lie in [0, max_shift={max_shift}], got {min_shift}")
    fine = 8 * subframes
    heading = float(torch.rand((), generator=generator)) * 2 * math.pi
    direction = torch.tensor([math.cos(heading), math.sin(heading)])
    acceleration = torch.randn(fine, 2, generator=generator)
    velocity = direction / fine + jitter * 4.0 * torch.cumsum(acceleration, 0) / fine ** 1.5
    path = torch.cumsum(velocity, 0)
    extent = (path - path[:1]).norm(dim=-1).max().clamp(min=1e-8)
    length = min_shift + (max_shift - min_shift) * float(torch.rand((), generator=generator))
    path = path * (length / extent)
    # Rotation: a constant angular velocity plus a little smooth wobble.
    spin = (float(torch.rand((), generator=generator)) * 2 - 1) * max_rotation
    wobble = torch.cumsum(torch.randn(fine, generator=generator), 0) / fine
    times = (torch.arange(fine, dtype=torch.float32) + 0.5) / fine - 0.5
    angle = spin * times + max_rotation * 0.25 * (wobble - wobble.mean())
    fine_pose = torch.cat([path, angle[:, None]], dim=-1)                     # (fine, 3)
    # Average the fine path within each sub-frame's slice, then re-centre on the reference pose.
    pose = fine_pose.view(subframes, fine // subframes, 3).mean(dim=1)
    centre = pose.mean(dim=0) if reference == "centroid" else fine_pose[fine // 2 - 1: fine // 2 + 1].mean(dim=0)
    return pose - centre


def apply_trajectory(image: torch.Tensor, trajectory: torch.Tensor, margin: int = 0) -> torch.Tensor:
    """Warp ``image`` ``(C, H, W)`` by each pose of ``trajectory`` ``(K, 3)`` -> ``(K, C, H-2m, W-2m)``.

    A pose (dx, dy, a) shows the scene point ``R(a) p + d`` at output pixel ``p`` (pixels
    measured from the image centre); borders are filled by reflection. Only the window ``margin``
    pixels inside the border is rendered (the border is there as source content for the moving
    camera), which is where the cost goes: the sampling grid is built by broadcasting rather than
    ``affine_grid``, whose full-image batched product was the slowest step of data synthesis.
    """
    if image.dim() != 3:
        raise InputError(f"camera shake expects one image (C, H, W), got shape {tuple(image.shape)}")
    _, h, w = image.shape
    if 2 * margin >= min(h, w):
        raise InputError(f"margin {margin} leaves nothing of a {w}x{h} image")
    k = trajectory.shape[0]
    x = (torch.arange(margin, w - margin, dtype=torch.float32) + 0.5 - w / 2).view(1, 1, -1)
    y = (torch.arange(margin, h - margin, dtype=torch.float32) + 0.5 - h / 2).view(1, -1, 1)
    cos, sin = (f(trajectory[:, 2]).view(k, 1, 1) for f in (torch.cos, torch.sin))
    dx, dy = trajectory[:, 0].view(k, 1, 1), trajectory[:, 1].view(k, 1, 1)
    # Normalised source coordinates (align_corners=False): x_n = 2 x_px / W, y_n = 2 y_px / H.
    grid = torch.stack([(cos * x - sin * y + dx) * (2 / w), (sin * x + cos * y + dy) * (2 / h)], dim=-1)
    return F.grid_sample(image.expand(k, -1, -1, -1), grid, mode="bilinear",
                         padding_mode="reflection", align_corners=False).clamp(0, 1)


def camera_shake(image: torch.Tensor, subframes: int = 10, max_shift: float = 8.0,
                 max_rotation: float = 0.02, jitter: float = 0.5, gamma: float | None = None,
                 margin: int = 0, seed: int | None = None, generator: torch.Generator | None = None,
                 min_shift: float | None = None, reference: str = "centroid") -> ShakeResult:
    """Blur ``image`` ``(C, H, W)`` by a random camera shake, deterministic for ``seed``.

    ``margin`` pixels are cropped off every side of all outputs, so that a photo given with a
    border shows real content (not reflected borders) where the camera moved. ``sharp`` is the
    photo at the ``reference`` pose (see :func:`random_trajectory`).
    """
    if generator is None:
        generator = torch.Generator().manual_seed(0 if seed is None else int(seed))
    trajectory = random_trajectory(generator, subframes, max_shift, max_rotation, jitter, min_shift, reference)
    frames = apply_trajectory(image, trajectory, margin)
    sharp = image[..., margin:image.shape[-2] - margin, margin:image.shape[-1] - margin]
    return ShakeResult(blurred=temporal_average(frames, gamma, dim=0), sharp=sharp.clone(),
                       subframes=frames, trajectory=trajectory)


def shake_clip(image: torch.Tensor, frames: int, subframes: int = 10, max_shift: float = 8.0,
               max_rotation: float = 0.02, jitter: float = 0.5, duty_cycle: float = 1.0,
               gamma: float | None = None, margin: int = 0, seed: int | None = None,
               generator: torch.Generator | None = None, min_shift: float | None = None,
               reference: str = "centroid") -> dict:
    """A hand-held video of a still photo: one smooth camera path across ``frames`` exposures.

    ``max_shift`` (``min_shift``) bounds the path per frame interval. Frame ``i``'s blur averages
    the ``subframes`` poses inside its exposure (the first ``duty_cycle`` of the interval's slices
    of the path), its sharp frame is the photo at that exposure's mean pose (``reference=
    "centroid"``) or at its middle pose (``"middle"``). Returns ``blur`` and
    ``sharp`` ``(F, C, H, W)``, ``subframes`` ``(F, K, C, H, W)``, ``trajectory`` ``(F, K, 3)``.
    """
    if generator is None:
        generator = torch.Generator().manual_seed(0 if seed is None else int(seed))
    if not 0 < duty_cycle <= 1:
        raise InputError(f"duty_cycle must be in (0, 1], got {duty_cycle}")
    # Sample the path densely over the whole clip: `per_frame` slots per interval, of which
    # the first `subframes` fall inside the exposure.
    per_frame = max(subframes, int(round(subframes / duty_cycle)))
    if reference not in REFERENCES:
        raise InputError(f"reference must be one of {', '.join(REFERENCES)}, got {reference!r}")
    path = random_trajectory(generator, frames * per_frame * 2, max_shift * frames, max_rotation * frames, jitter,
                             None if min_shift is None else min_shift * frames)
    path = path.view(frames, per_frame, 2, 3).mean(dim=2)                 # (F, per_frame, 3)
    exposed = path[:, :subframes]                                           # (F, K, 3)
    centre = exposed.mean(dim=1) if reference == "centroid" else \
        exposed[:, (subframes - 1) // 2: subframes // 2 + 1].mean(dim=1)  # (F, 3)
    warped = apply_trajectory(image, torch.cat([exposed.reshape(-1, 3), centre]), margin)
    sub = warped[: frames * subframes].reshape(frames, subframes, *warped.shape[1:])
    return {"blur": temporal_average(sub, gamma, dim=1), "sharp": warped[frames * subframes:],
            "subframes": sub, "trajectory": exposed}
