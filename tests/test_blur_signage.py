"""Signage on training photos: determinism, range, where the signs go, and that they are text."""
import torch

from deblurdiff.blur.signage import add_signage, random_text


def _signed(photo, seed, **kwargs):
    return add_signage(photo, torch.Generator().manual_seed(seed), **kwargs)


def test_same_generator_state_gives_the_same_signs_and_other_seeds_differ():
    photo = torch.rand(3, 64, 80)
    first, again = _signed(photo, 3), _signed(photo, 3)
    assert torch.equal(first, again)
    assert sum(not torch.equal(first, _signed(photo, seed)) for seed in range(4, 10)) == 6
    texts = {random_text(torch.Generator().manual_seed(seed)) for seed in range(20)}
    assert len(texts) == 20


def test_output_keeps_shape_dtype_range_and_leaves_the_input_alone():
    photo = torch.rand(3, 50, 70)
    before = photo.clone()
    for seed in range(10):
        out = _signed(photo, seed)
        assert out.shape == photo.shape and out.dtype == torch.float32
        assert out.min() >= 0 and out.max() <= 1
    assert torch.equal(photo, before)


def test_signs_are_sharp_edged_marks_on_part_of_the_photo():
    """On a flat grey photo every change is a sign: it covers part of the photo, not all of it,
    and has the strong edges of lettering and plates."""
    photo = torch.full((3, 96, 96), 0.5)
    fractions, edges = [], []
    for seed in range(12):
        out = _signed(photo, seed)
        changed = (out - photo).abs().amax(0) > 1e-3
        fractions.append(changed.float().mean().item())
        steps = torch.maximum((out[:, 1:, :-1] - out[:, :-1, :-1]).abs(), (out[:, :-1, 1:] - out[:, :-1, :-1]).abs())
        edges.append(steps.amax().item())
    middle = len(fractions) // 2
    assert 0 < min(fractions) and sorted(fractions)[middle] < 0.7
    assert min(edges) > 0.15 and sorted(edges)[middle] > 0.5


def test_sign_centres_fall_inside_the_box():
    """With the box in the top-left corner, the far corner of a large photo stays untouched."""
    photo = torch.rand(3, 240, 240)
    for seed in range(6):
        out = _signed(photo, seed, box=(0, 0, 30, 30))
        assert torch.equal(out[:, 160:, 160:], photo[:, 160:, 160:])
        assert not torch.equal(out, photo)
