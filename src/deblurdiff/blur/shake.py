"""Camera shake over a still photo: a smooth random 2-D trajectory plus a small rotation.

The camera's path during one exposure is drawn as a random walk in acceleration (integrated
twice, so velocity is continuous: a hand does not teleport), added to a dominant constant
velocity, and rescaled to a target length. Each of the K sub-frames is the photo warped by the
camera pose at that instant; all K warps are one batched ``grid_sample``. The pose at the
exposure's centre is the identity, so the sharp reference is the photo itself, unresampled.
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


def random_trajectory(generator: torch.Generator, subframes: int = 10, max_shift: float = 8.0,
                      max_rotation: float = 0.02, jitter: float = 0.5) -> torch.Tensor:
    """A smooth random camera path ``(K, 3)`` (dx, dy pixels; angle radians), zero at mid-exposure.

    ``max_shift`` bounds the path's length in pixels (the length itself is drawn in
    [0.25, 1] of it); ``jitter`` is how far the path may bend away from a straight line
    (0 = constant velocity).
    """
    if subframes < 1:
        raise InputError(f"camera shake needs at least one sub-frame, got {subframes}")
    fine = 8 * subframes
    heading = float(torch.rand((), generator=generator)) * 2 * math.pi
    direction = torch.tensor([math.cos(heading), math.sin(heading)])
    acceleration = torch.randn(fine, 2, generator=generator)
    velocity = direction / fine + jitter * 4.0 * torch.cumsum(acceleration, 0) / fine ** 1.5
    path = torch.cumsum(velocity, 0)
    extent = (path - path[:1]).norm(dim=-1).max().clamp(min=1e-8)
    length = max_shift * (0.25 + 0.75 * float(torch.rand((), generator=generator)))
    path = path * (length / extent)
    # Rotation: a constant angular velocity plus a little smooth wobble.
    spin = (float(torch.rand((), generator=generator)) * 2 - 1) * max_rotation
    wobble = torch.cumsum(torch.randn(fine, generator=generator), 0) / fine
    times = (torch.arange(fine, dtype=torch.float32) + 0.5) / fine - 0.5
    angle = spin * times + max_rotation * 0.25 * (wobble - wobble.mean())
    fine_pose = torch.cat([path, angle[:, None]], dim=-1)                     # (fine, 3)
    # Average the fine path within each sub-frame's slice, then re-centre on mid-exposure.
    pose = fine_pose.view(subframes, fine // subframes, 3).mean(dim=1)
    centre = fine_pose[fine // 2 - 1: fine // 2 + 1].mean(dim=0)
    return pose - centre


def apply_trajectory(image: torch.Tensor, trajectory: torch.Tensor) -> torch.Tensor:
    """Warp ``image`` ``(C, H, W)`` by each pose of ``trajectory`` ``(K, 3)`` -> ``(K, C, H, W)``.

    A pose (dx, dy, a) shows the scene point ``R(a) p + d`` at output pixel ``p`` (pixels
    measured from the image centre); borders are filled by reflection.
    """
    if image.dim() != 3:
        raise InputError(f"camera shake expects one image (C, H, W), got shape {tuple(image.shape)}")
    _, h, w = image.shape
    k = trajectory.shape[0]
    cos, sin = torch.cos(trajectory[:, 2]), torch.sin(trajectory[:, 2])
    # Normalised coordinates: x_n = x_px / (W/2); theta = S^-1 R S and offset d / (size/2).
    theta = torch.stack([
        torch.stack([cos, -sin * h / w, trajectory[:, 0] * 2 / w], -1),
        torch.stack([sin * w / h, cos, trajectory[:, 1] * 2 / h], -1),
    ], dim=1)
    grid = F.affine_grid(theta, [k, image.shape[0], h, w], align_corners=False)
    return F.grid_sample(image.expand(k, -1, -1, -1), grid, mode="bilinear",
                         padding_mode="reflection", align_corners=False).clamp(0, 1)


def camera_shake(image: torch.Tensor, subframes: int = 10, max_shift: float = 8.0,
                 max_rotation: float = 0.02, jitter: float = 0.5, gamma: float | None = None,
                 margin: int = 0, seed: int | None = None,
                 generator: torch.Generator | None = None) -> ShakeResult:
    """Blur ``image`` ``(C, H, W)`` by a random camera shake, deterministic for ``seed``.

    ``margin`` pixels are cropped off every side of all outputs, so that a photo given with a
    border shows real content (not reflected borders) where the camera moved.
    """
    if generator is None:
        generator = torch.Generator().manual_seed(0 if seed is None else int(seed))
    trajectory = random_trajectory(generator, subframes, max_shift, max_rotation, jitter)
    frames = apply_trajectory(image, trajectory)
    sharp = image
    if margin:
        if 2 * margin >= min(image.shape[-2:]):
            raise InputError(f"margin {margin} leaves nothing of a {image.shape[-1]}x{image.shape[-2]} image")
        frames = frames[..., margin:-margin, margin:-margin]
        sharp = image[..., margin:-margin, margin:-margin]
    return ShakeResult(blurred=temporal_average(frames, gamma, dim=0), sharp=sharp.clone(),
                       subframes=frames, trajectory=trajectory)


def shake_clip(image: torch.Tensor, frames: int, subframes: int = 10, max_shift: float = 8.0,
               max_rotation: float = 0.02, jitter: float = 0.5, duty_cycle: float = 1.0,
               gamma: float | None = None, margin: int = 0, seed: int | None = None,
               generator: torch.Generator | None = None) -> dict:
    """A hand-held video of a still photo: one smooth camera path across ``frames`` exposures.

    ``max_shift`` bounds the path per frame interval. Frame ``i``'s blur averages the
    ``subframes`` poses inside its exposure (the first ``duty_cycle`` of the interval's slices
    of the path), its sharp frame is the pose at that exposure's centre. Returns ``blur`` and
    ``sharp`` ``(F, C, H, W)``, ``subframes`` ``(F, K, C, H, W)``, ``trajectory`` ``(F, K, 3)``.
    """
    if generator is None:
        generator = torch.Generator().manual_seed(0 if seed is None else int(seed))
    if not 0 < duty_cycle <= 1:
        raise InputError(f"duty_cycle must be in (0, 1], got {duty_cycle}")
    # Sample the path densely over the whole clip: `per_frame` slots per interval, of which
    # the first `subframes` fall inside the exposure.
    per_frame = max(subframes, int(round(subframes / duty_cycle)))
    path = random_trajectory(generator, frames * per_frame * 2, max_shift * frames, max_rotation * frames, jitter)
    path = path.view(frames, per_frame, 2, 3).mean(dim=2)                 # (F, per_frame, 3)
    exposed = path[:, :subframes]                                           # (F, K, 3)
    centre = exposed[:, (subframes - 1) // 2: subframes // 2 + 1].mean(dim=1)  # (F, 3)
    warped = apply_trajectory(image, torch.cat([exposed.reshape(-1, 3), centre]))
    if margin:
        warped = warped[..., margin:-margin, margin:-margin]
    sub = warped[: frames * subframes].reshape(frames, subframes, *warped.shape[1:])
    return {"blur": temporal_average(sub, gamma, dim=1), "sharp": warped[frames * subframes:],
            "subframes": sub, "trajectory": exposed}
