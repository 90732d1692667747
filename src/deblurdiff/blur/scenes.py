"""Procedural moving scenes: the embedded default training data.

A scene is a textured background seen by a (possibly moving, slightly rotating) camera plus a
few textured sprites that translate, accelerate and rotate and occlude one another in a fixed
depth order. It can be rendered at any set of continuous times, so a clip is rendered at a high
sub-frame rate and blurred frames are exact averages over each exposure window.

Rendering is one batched ``grid_sample`` per layer stack: every (time, layer) pair gets its own
affine sampling grid, and the layers are composited front to back with premultiplied alpha via
a cumulative product of transmittances, so there is no Python loop over pixels, frames or
sub-frames. Time is measured in frame intervals: frame ``i`` is exposed around ``t = i``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange

from ..errors import InputError
from .formation import middle_index, temporal_average
from .sources import TRAIN_PHOTOS, load_photo, random_crop_resized


@dataclass
class SceneOptions:
    """Knobs of the random scene distribution (lengths are fractions of the frame size)."""

    min_objects: int = 1
    max_objects: int = 5
    max_speed: float = 0.12          # object speed, frame sizes per frame interval
    max_camera_speed: float = 0.06   # camera speed, frame sizes per frame interval
    camera_motion: float = 0.7       # probability that the camera moves
    max_camera_rotation: float = 0.03  # radians per frame interval
    max_spin: float = 0.4            # object rotation, radians per frame interval
    min_object_size: float = 0.12
    max_object_size: float = 0.35
    photo_background: float = 0.6    # probability of a photo (vs procedural) background
    photo_sprite: float = 0.3        # probability that a sprite is textured with a photo crop
    sprite_resolution: int = 64

    @classmethod
    def from_dict(cls, raw: dict | None) -> "SceneOptions":
        raw = dict(raw or {})
        known = {k: raw[k] for k in cls.__dataclass_fields__ if k in raw}
        return cls(**known)


@dataclass
class Scene:
    """All parameters of one random scene; :meth:`render` turns times into frames."""

    height: int
    width: int
    background: torch.Tensor        # (3, Hb, Wb)
    camera_position: torch.Tensor   # (2,) pixels, world coordinates of the frame centre at t=0
    camera_velocity: torch.Tensor   # (2,) pixels per frame interval
    camera_angle: torch.Tensor      # () radians at t=0
    camera_spin: torch.Tensor       # () radians per frame interval
    sprites: torch.Tensor           # (O, 4, S, S) premultiplied RGB + alpha, front first
    positions: torch.Tensor         # (O, 2) pixels at t=0 (world)
    velocities: torch.Tensor        # (O, 2)
    accelerations: torch.Tensor     # (O, 2)
    angles: torch.Tensor            # (O,)
    spins: torch.Tensor             # (O,)
    radii: torch.Tensor             # (O,) half-size of each sprite in pixels

    def render(self, times: torch.Tensor, chunk: int = 64) -> torch.Tensor:
        """Frames at ``times`` (N,) -> ``(N, 3, H, W)`` in [0, 1]."""
        times = torch.as_tensor(times, dtype=torch.float32).flatten()
        return torch.cat([self._render(times[i:i + chunk]) for i in range(0, len(times), chunk)])

    def _render(self, times: torch.Tensor) -> torch.Tensor:
        n, h, w = len(times), self.height, self.width
        objects = self.sprites.shape[0]
        # Screen pixel (centred) -> world: world = R(cam) @ px + cam_pos(t).
        cam_angle = self.camera_angle + self.camera_spin * times                      # (N,)
        cam_pos = self.camera_position + self.camera_velocity * times[:, None]        # (N, 2)
        cam_rot = _rotation(cam_angle)                                                # (N, 2, 2)
        half = torch.tensor([w / 2.0, h / 2.0])
        screen = cam_rot * half                                # R @ diag(W/2, H/2): normalised -> world

        bg_h, bg_w = self.background.shape[-2:]
        to_bg = torch.tensor([2.0 / bg_w, 2.0 / bg_h])[:, None]
        base = _base_grid(h, w)                                                       # (H, W, 2)
        # Times are stacked along the grid's height, so each layer is one grid_sample of its
        # own texture: no copy of a texture per time step.
        bg_grid = torch.einsum("nij,hwj->nhwi", to_bg * screen, base) + (to_bg[:, 0] * cam_pos)[:, None, None]
        background = F.grid_sample(self.background[None], rearrange(bg_grid, "n h w i -> 1 (n h) w i"),
                                   mode="bilinear", padding_mode="reflection", align_corners=False)
        background = background[0]                                                    # (3, N*H, W)
        if objects == 0:
            return rearrange(background, "c (n h) w -> n c h w", n=n).clamp(0, 1)

        # World -> sprite-normalised: local = R(-angle) (world - pos(t)) / radius.
        t = times[:, None, None]
        pos = self.positions + self.velocities * t + 0.5 * self.accelerations * t ** 2  # (N, O, 2)
        inv_rot = _rotation(-(self.angles + self.spins * times[:, None])) / self.radii[:, None, None]  # (N,O,2,2)
        linear = inv_rot @ screen[:, None]                                               # (N, O, 2, 2)
        offset = (inv_rot @ (cam_pos[:, None, :] - pos)[..., None])[..., 0]              # (N, O, 2)
        grid = torch.einsum("noij,hwj->onhwi", linear, base) + rearrange(offset, "n o i -> o n 1 1 i")
        layers = F.grid_sample(self.sprites, rearrange(grid, "o n h w i -> o (n h) w i"),
                               mode="bilinear", padding_mode="zeros", align_corners=False)  # (O, 4, N*H, W)
        # Front-to-back "over" in the sampled layout (no transposes until the end): layer o is
        # seen through the transmittance of the layers in front of it.
        color, alpha = layers[:, :3], layers[:, 3:].clamp(0, 1)
        transmit = torch.cumprod(1.0 - alpha, dim=0)
        image = color[0] + (transmit[:-1] * color[1:]).sum(dim=0) + transmit[-1] * background
        return rearrange(image, "c (n h) w -> n c h w", n=n).clamp(0, 1)


def _base_grid(height: int, width: int) -> torch.Tensor:
    """Normalised pixel-centre coordinates ``(H, W, 2)`` as (x, y), ``align_corners=False``."""
    ys = (torch.arange(height, dtype=torch.float32) + 0.5) * 2 / height - 1
    xs = (torch.arange(width, dtype=torch.float32) + 0.5) * 2 / width - 1
    return torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1)


def _rotation(angle: torch.Tensor) -> torch.Tensor:
    cos, sin = torch.cos(angle), torch.sin(angle)
    return torch.stack([torch.stack([cos, -sin], -1), torch.stack([sin, cos], -1)], -2)


def _uniform(generator, low, high, shape=()):
    return low + (high - low) * torch.rand(shape, generator=generator)


def _smooth_noise(generator, channels, size, cells):
    """Band-limited noise: random values on a coarse lattice, bicubically upsampled."""
    coarse = torch.rand(1, channels, cells, cells, generator=generator)
    return F.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=False)[0].clamp(0, 1)


def procedural_texture(generator: torch.Generator, size: int) -> torch.Tensor:
    """A random colourful texture ``(3, size, size)``: stripes, checks, noise or blends of them.

    Sharp edges at many orientations are what makes motion blur visible and learnable, so every
    family has them except smooth noise, which is mixed with an edged pattern.
    """
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    kind = int(torch.randint(0, 4, (), generator=generator))
    angle = _uniform(generator, 0, math.pi)
    u = xs * torch.cos(angle) + ys * torch.sin(angle)
    v = -xs * torch.sin(angle) + ys * torch.cos(angle)
    freq = _uniform(generator, 2.0, 10.0)
    if kind == 0:       # stripes, hard or soft
        pattern = (torch.sin(math.pi * freq * u) > 0).float()
    elif kind == 1:     # checks
        pattern = ((torch.floor(freq * (u + 2)) + torch.floor(freq * (v + 2))) % 2).float()
    elif kind == 2:     # concentric rings
        pattern = (torch.sin(math.pi * freq * torch.sqrt(u ** 2 + v ** 2)) > 0).float()
    else:               # thresholded noise blobs
        cells = int(torch.randint(3, 9, (), generator=generator))
        pattern = (_smooth_noise(generator, 1, size, cells)[0] > 0.5).float()
    colors = torch.rand(2, 3, 1, 1, generator=generator)
    texture = colors[0] * pattern + colors[1] * (1 - pattern)
    noise = _smooth_noise(generator, 3, size, int(torch.randint(2, 12, (), generator=generator)))
    mix = _uniform(generator, 0.0, 0.5)
    return ((1 - mix) * texture + mix * noise).clamp(0, 1)


def sprite_mask(generator: torch.Generator, size: int) -> torch.Tensor:
    """A random shape's alpha ``(size, size)`` with a one-texel soft edge: ellipse, rounded
    rectangle, star or wobbly blob, from their signed distance (approximate for stars/blobs)."""
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    kind = int(torch.randint(0, 4, (), generator=generator))
    aspect = _uniform(generator, 0.5, 1.0)
    if kind == 0:
        distance = torch.sqrt(xs ** 2 + (ys / aspect) ** 2) - 0.95
    elif kind == 1:
        corner = _uniform(generator, 0.0, 0.3)
        qx, qy = xs.abs() - (0.95 - corner), ys.abs() - (0.95 * aspect - corner)
        outside = torch.sqrt(qx.clamp(min=0) ** 2 + qy.clamp(min=0) ** 2)
        distance = outside + torch.maximum(qx, qy).clamp(max=0) - corner
    else:
        radius = torch.sqrt(xs ** 2 + ys ** 2)
        phi = torch.atan2(ys, xs)
        if kind == 2:
            points = int(torch.randint(3, 8, (), generator=generator))
            boundary = 0.95 * (1 - 0.45 * (0.5 + 0.5 * torch.cos(points * phi)))
        else:
            harmonics = torch.arange(1, 5, dtype=torch.float32)
            amps = torch.rand(4, generator=generator) * 0.12 / harmonics
            phases = torch.rand(4, generator=generator) * 2 * math.pi
            boundary = 0.8 + (amps[:, None, None] * torch.cos(harmonics[:, None, None] * phi + phases[:, None, None])).sum(0)
        distance = radius - boundary
    texel = 2.0 / size
    return (0.5 - distance / texel).clamp(0, 1)


def random_scene(generator: torch.Generator, height: int, width: int, duration: float = 1.0,
                 photos=TRAIN_PHOTOS, options: SceneOptions | None = None) -> Scene:
    """Draw a scene from ``generator``; ``duration`` (frame intervals) sizes the background so
    that camera motion never runs off it. ``photos`` are scikit-image photo names."""
    opt = options or SceneOptions()
    size = float(max(height, width))
    g = generator

    moving = float(torch.rand((), generator=g)) < opt.camera_motion
    speed = _uniform(g, 0.0, opt.max_camera_speed * size) if moving else torch.tensor(0.0)
    direction = _uniform(g, 0, 2 * math.pi)
    camera_velocity = speed * torch.stack([torch.cos(direction), torch.sin(direction)])
    camera_spin = _uniform(g, -opt.max_camera_rotation, opt.max_camera_rotation) if moving else torch.tensor(0.0)
    camera_angle = torch.tensor(0.0)
    # Background big enough for the frame's diagonal plus the camera's travel either way.
    travel = float(speed) * (duration + 1.0)
    bg_size = int(math.ceil(math.hypot(height, width) + 2 * travel + 8))
    if photos and float(torch.rand((), generator=g)) < opt.photo_background:
        name = photos[int(torch.randint(0, len(photos), (), generator=g))]
        background = _tint(random_crop_resized(load_photo(name), bg_size, bg_size, g), g)
    else:
        background = procedural_texture(g, bg_size)
    # Centre the camera's path on the background.
    camera_position = -camera_velocity * duration / 2.0

    count = int(torch.randint(opt.min_objects, opt.max_objects + 1, (), generator=g))
    res = opt.sprite_resolution
    sprites = []
    for _ in range(count):
        if photos and float(torch.rand((), generator=g)) < opt.photo_sprite:
            name = photos[int(torch.randint(0, len(photos), (), generator=g))]
            texture = _tint(random_crop_resized(load_photo(name), res, res, g, min_scale=0.1), g)
        else:
            texture = procedural_texture(g, res)
        alpha = sprite_mask(g, res)[None]
        sprites.append(torch.cat([texture * alpha, alpha]))
    sprites = torch.stack(sprites) if sprites else torch.zeros(0, 4, res, res)

    radii = _uniform(g, opt.min_object_size, opt.max_object_size, (count,)) * size
    start = (torch.rand(count, 2, generator=g) - 0.5) * torch.tensor([width, height]) * 0.8
    speeds = _uniform(g, 0.0, opt.max_speed * size, (count,))
    headings = _uniform(g, 0, 2 * math.pi, (count,))
    velocities = speeds[:, None] * torch.stack([torch.cos(headings), torch.sin(headings)], -1)
    accelerations = (torch.rand(count, 2, generator=g) - 0.5) * 0.2 * speeds[:, None]
    # Positions at t=0 are set so the object is near `start` halfway through the clip, plus
    # the camera offset so that it is on screen.
    mid = duration / 2.0
    positions = start + camera_position + camera_velocity * mid - velocities * mid - 0.5 * accelerations * mid ** 2
    return Scene(height=height, width=width, background=background,
                 camera_position=camera_position, camera_velocity=camera_velocity,
                 camera_angle=camera_angle, camera_spin=camera_spin,
                 sprites=sprites, positions=positions, velocities=velocities,
                 accelerations=accelerations, angles=_uniform(g, 0, 2 * math.pi, (count,)),
                 spins=_uniform(g, -opt.max_spin, opt.max_spin, (count,)), radii=radii)


def _tint(photo: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Colourise grey photos (and vary colour ones a little) so textures are not all grey."""
    grey = (photo.max(0).values - photo.min(0).values).mean() < 0.02
    strength = 0.8 if grey else 0.2
    gains = 1.0 + strength * (torch.rand(3, 1, 1, generator=generator) - 0.5) * 2
    return (photo * gains).clamp(0, 1)


def exposure_times(frames: int, subframes: int, duty_cycle: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Sub-frame times ``(frames, subframes)`` and sharp-frame times ``(frames,)``.

    Frame ``i`` is exposed during ``[i - d/2, i + d/2]`` (``d`` the duty cycle, the fraction of
    the frame interval the shutter is open); sub-frames sample the middle of ``subframes`` equal
    slices of it, and the sharp frame is the instant ``t = i`` (the exposure's centre).
    """
    if not 0 < duty_cycle <= 1 or frames < 1 or subframes < 1:
        raise InputError(f"need frames >= 1, subframes >= 1 and a duty cycle in (0, 1]; got frames={frames}, "
                         f"subframes={subframes}, duty_cycle={duty_cycle}")
    centres = torch.arange(frames, dtype=torch.float32)
    offsets = ((torch.arange(subframes, dtype=torch.float32) + 0.5) / subframes - 0.5) * duty_cycle
    return centres[:, None] + offsets, centres


def render_clip(scene: Scene, frames: int, subframes: int, duty_cycle: float = 1.0,
                gamma: float | None = None) -> dict:
    """Render a blurred clip: ``sharp`` and ``blur`` ``(F, 3, H, W)``, ``subframes`` ``(F, K, 3, H, W)``."""
    sub_times, sharp_times = exposure_times(frames, subframes, duty_cycle)
    rendered = scene.render(torch.cat([sub_times.flatten(), sharp_times]))
    sub = rearrange(rendered[: frames * subframes], "(f k) c h w -> f k c h w", f=frames)
    return {"sharp": rendered[frames * subframes:], "blur": temporal_average(sub, gamma, dim=1),
            "subframes": sub}


def generate_clip(seed: int, size: int | tuple[int, int], frames: int, subframes: int = 10,
                  duty_cycle: float = 1.0, gamma: float | None = None, photos=TRAIN_PHOTOS,
                  options: SceneOptions | None = None) -> dict:
    """A random scene drawn from ``seed`` rendered as a blurred clip (see :func:`render_clip`)."""
    height, width = (size, size) if isinstance(size, int) else size
    generator = torch.Generator().manual_seed(int(seed))
    scene = random_scene(generator, height, width, duration=float(frames), photos=photos, options=options)
    return render_clip(scene, frames, subframes, duty_cycle, gamma)


def generate_exposure(seed: int, size: int | tuple[int, int], subframes: int = 10,
                      duty_cycle: float = 1.0, gamma: float | None = None, photos=TRAIN_PHOTOS,
                      options: SceneOptions | None = None) -> dict:
    """One blurred image and its ``subframes`` sharp sub-frames (VDM-MD style).

    Returns ``blur`` ``(3, H, W)``, ``frames`` ``(K, 3, H, W)`` and ``sharp`` = the middle
    sub-frame (index ``(K-1)//2``, the 5th of 10).
    """
    clip = generate_clip(seed, size, 1, subframes, duty_cycle, gamma, photos, options)
    frames = clip["subframes"][0]
    return {"blur": clip["blur"][0], "frames": frames, "sharp": frames[middle_index(subframes)]}
