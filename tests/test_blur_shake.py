"""Camera shake: determinism, a centred trajectory, exact identity, a translation ramp."""
import torch

from deblurdiff.blur.shake import apply_trajectory, camera_shake, random_trajectory, shake_clip


def test_shake_is_deterministic_and_centred():
    image = torch.rand(3, 40, 40)
    a = camera_shake(image, 10, max_shift=6, margin=8, seed=5)
    b = camera_shake(image, 10, max_shift=6, margin=8, seed=5)
    c = camera_shake(image, 10, max_shift=6, margin=8, seed=6)
    assert torch.equal(a.blurred, b.blurred) and torch.equal(a.trajectory, b.trajectory)
    assert not torch.equal(a.trajectory, c.trajectory)
    assert a.blurred.shape == a.sharp.shape == (3, 24, 24) and a.subframes.shape == (10, 3, 24, 24)
    assert torch.equal(a.sharp, image[:, 8:-8, 8:-8])
    assert torch.allclose(a.blurred, a.subframes.mean(0), atol=1e-6)


def test_trajectory_length_is_bounded_and_path_is_smooth():
    for seed in range(5):
        path = random_trajectory(torch.Generator().manual_seed(seed), 20, max_shift=10.0)
        shifts = path[:, :2]
        assert (shifts[:, None] - shifts[None]).norm(dim=-1).max() <= 10.0 + 1e-4
        assert path[:, 2].abs().max() <= 0.02


def test_zero_trajectory_returns_the_image_exactly():
    image = torch.rand(3, 17, 23)
    out = apply_trajectory(image, torch.zeros(4, 3))
    assert torch.allclose(out, image.expand(4, -1, -1, -1), atol=1e-5)


def test_integer_shift_moves_content_by_that_many_pixels():
    image = torch.rand(1, 20, 30)
    out = apply_trajectory(image, torch.tensor([[3.0, -2.0, 0.0]]))[0]
    # Output pixel p shows the scene point p + d.
    assert torch.allclose(out[:, 4:16, 2:20], image[:, 2:14, 5:23], atol=1e-5)


def test_constant_velocity_shake_on_step_edge_is_linear_ramp():
    step = (torch.arange(64) >= 32).float().expand(1, 8, 64).contiguous()
    travel = 10.0
    trajectory = torch.zeros(200, 3)
    trajectory[:, 0] = torch.linspace(-travel / 2, travel / 2, 200)
    profile = apply_trajectory(step, trajectory).mean(0)[0, 4]
    ramp = profile[(profile > 0.05) & (profile < 0.95)]
    assert abs(len(ramp) - travel) <= 1
    steps = ramp[1:] - ramp[:-1]
    assert torch.allclose(steps, torch.full_like(steps, 1 / travel), atol=0.01)


def test_shake_clip_shapes():
    clip = shake_clip(torch.rand(3, 48, 48), frames=3, subframes=4, max_shift=3, margin=8, seed=1, duty_cycle=0.5)
    assert clip["blur"].shape == clip["sharp"].shape == (3, 3, 32, 32)
    assert clip["subframes"].shape == (3, 4, 3, 32, 32)


def test_reference_is_the_centre_of_mass_of_the_blur():
    """A bright dot blurred by a bent path: the blurred dot's centroid is where the sharp dot is
    (the centroid reference), not where the mid-exposure pose put it."""
    image = torch.zeros(1, 81, 81)
    image[0, 40, 40] = 1.0
    ys, xs = torch.meshgrid(torch.arange(81.0), torch.arange(81.0), indexing="ij")

    def centroid(x):
        return torch.stack([(x * xs).sum() / x.sum(), (x * ys).sum() / x.sum()])

    offsets = {}
    for reference in ("centroid", "middle"):
        worst = 0.0
        for seed in range(6):
            shaken = camera_shake(image, 40, max_shift=16.0, max_rotation=0.0, jitter=1.5, seed=seed,
                                  reference=reference)
            worst = max(worst, float((centroid(shaken.blurred[0]) - centroid(shaken.sharp[0])).norm()))
        offsets[reference] = worst
    assert offsets["centroid"] < 0.05
    assert offsets["middle"] > 0.5


def test_path_lengths_span_min_to_max_shift():
    lengths = []
    for seed in range(40):
        path = random_trajectory(torch.Generator().manual_seed(seed), 32, max_shift=30.0, min_shift=2.0, jitter=0.0)
        assert torch.allclose(path.mean(0), torch.zeros(3), atol=1e-5)  # centred on the mean pose
        lengths.append(float((path[:, None, :2] - path[None, :, :2]).norm(dim=-1).max()))
    assert min(lengths) >= 2.0 * 0.9 and max(lengths) <= 30.0 + 1e-3
    assert min(lengths) < 8 and max(lengths) > 24


def test_margin_renders_the_same_window_as_cropping():
    image = torch.rand(3, 40, 44)
    trajectory = torch.tensor([[1.5, -2.25, 0.01], [-3.0, 0.5, -0.02]])
    full = apply_trajectory(image, trajectory)
    assert torch.allclose(apply_trajectory(image, trajectory, margin=6), full[..., 6:-6, 6:-6], atol=1e-5)


def test_clip_sharp_frames_are_each_exposures_mean_pose():
    image = torch.rand(3, 64, 64)
    a = shake_clip(image, frames=3, subframes=6, max_shift=4, margin=12, seed=3)
    b = shake_clip(image, frames=3, subframes=6, max_shift=4, margin=12, seed=3, reference="middle")
    assert torch.allclose(a["trajectory"], b["trajectory"])
    mean_pose = a["trajectory"].mean(dim=1)
    rendered = apply_trajectory(image, mean_pose, margin=12)
    assert torch.allclose(a["sharp"], rendered, atol=1e-6)
    assert not torch.allclose(a["sharp"], b["sharp"], atol=1e-3)
