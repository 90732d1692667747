"""Procedural scenes: determinism, exposure geometry, occlusion, a ramp from constant motion."""
import time

import pytest
import torch

from deblurdiff.errors import InputError
from deblurdiff.blur.scenes import Scene, exposure_times, generate_clip, generate_exposure, render_clip


def _still_scene(background, sprites=None, **motion):
    count = 0 if sprites is None else sprites.shape[0]
    zeros = torch.zeros(count)
    fields = dict(height=16, width=48, background=background, camera_position=torch.zeros(2),
                  camera_velocity=torch.zeros(2), camera_angle=torch.tensor(0.0),
                  camera_spin=torch.tensor(0.0),
                  sprites=torch.zeros(0, 4, 8, 8) if sprites is None else sprites,
                  positions=torch.zeros(count, 2), velocities=torch.zeros(count, 2),
                  accelerations=torch.zeros(count, 2), angles=zeros, spins=zeros,
                  radii=torch.full((count,), 6.0))
    fields.update(motion)
    return Scene(**fields)


def test_clip_is_deterministic_per_seed_and_differs_between_seeds():
    a, b = generate_clip(11, 32, 3, 6), generate_clip(11, 32, 3, 6)
    c = generate_clip(12, 32, 3, 6)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["sharp"], c["sharp"])


def test_clip_shapes_ranges_and_blur_is_mean_of_subframes():
    clip = generate_clip(3, (24, 40), 2, 5, duty_cycle=0.8)
    assert clip["sharp"].shape == clip["blur"].shape == (2, 3, 24, 40)
    assert clip["subframes"].shape == (2, 5, 3, 24, 40)
    assert clip["blur"].min() >= 0 and clip["blur"].max() <= 1
    assert torch.allclose(clip["blur"], clip["subframes"].mean(1), atol=1e-6)
    # With an odd number of sub-frames the middle one is taken at the exposure's centre.
    assert torch.allclose(clip["sharp"], clip["subframes"][:, 2], atol=1e-5)
    exposure = generate_exposure(3, 16, subframes=10)
    assert exposure["frames"].shape == (10, 3, 16, 16)
    assert torch.equal(exposure["sharp"], exposure["frames"][4])


def test_exposure_times_follow_duty_cycle():
    sub, sharp = exposure_times(3, 4, duty_cycle=0.5)
    assert torch.allclose(sharp, torch.tensor([0.0, 1.0, 2.0]))
    assert torch.allclose(sub[1], torch.tensor([0.8125, 0.9375, 1.0625, 1.1875]))
    with pytest.raises(InputError, match="duty cycle"):
        exposure_times(3, 4, duty_cycle=1.5)


def test_shorter_exposure_gives_proportionally_shorter_ramp():
    width = 256
    background = (torch.arange(width) >= width // 2).float().expand(3, width, width).contiguous()
    scene = _still_scene(background, camera_velocity=torch.tensor([16.0, 0.0]))
    profile = render_clip(scene, frames=1, subframes=64, duty_cycle=0.5)["blur"][0, 0, 8]
    assert abs(int(((profile > 0.02) & (profile < 0.98)).sum()) - 8) <= 2


def test_camera_pan_over_step_edge_gives_ramp_of_travelled_width():
    width = 256
    background = (torch.arange(width) >= width // 2).float().expand(3, width, width).contiguous()
    travel = 12.0   # pixels per frame interval, full duty cycle -> 12 px of blur
    scene = _still_scene(background, camera_velocity=torch.tensor([travel, 0.0]))
    clip = render_clip(scene, frames=1, subframes=96)
    profile = clip["blur"][0, 0, 8]
    ramp = profile[(profile > 0.02) & (profile < 0.98)]
    assert abs(len(ramp) - travel) <= 2
    steps = ramp[1:] - ramp[:-1]
    assert torch.allclose(steps, torch.full_like(steps, 1 / travel), atol=0.02)
    sharp = clip["sharp"][0, 0, 8]
    assert ((sharp > 0.02) & (sharp < 0.98)).sum() <= 1   # the sharp frame keeps the edge


def test_front_sprite_occludes_back_sprite():
    red, green = torch.zeros(4, 8, 8), torch.zeros(4, 8, 8)
    red[0], red[3] = 1, 1
    green[1], green[3] = 1, 1
    scene = _still_scene(torch.zeros(3, 64, 64), torch.stack([red, green]))
    centre = scene.render(torch.tensor([0.0]))[0, :, 8, 24]
    assert torch.allclose(centre, torch.tensor([1.0, 0.0, 0.0]), atol=1e-5)
    swapped = _still_scene(torch.zeros(3, 64, 64), torch.stack([green, red]))
    assert torch.allclose(swapped.render(torch.tensor([0.0]))[0, :, 8, 24], torch.tensor([0.0, 1.0, 0.0]), atol=1e-5)


def test_generation_is_fast():
    """One data-loader worker's view (torch uses one thread per worker)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        generate_clip(0, 64, 4, 10)
        start = time.process_time()
        for seed in range(10):
            generate_clip(seed, 64, 4, 10)
        per_item = (time.process_time() - start) / 10
    finally:
        torch.set_num_threads(threads)
    assert per_item < 0.1, f"a 64x64 4-frame clip took {per_item * 1000:.0f} ms of CPU"
