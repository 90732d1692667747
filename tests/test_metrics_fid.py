"""FID/KID statistics on features with known answers, and the Inception layout."""
import itertools

import numpy as np
import pytest
import torch

from deblurdiff.errors import CheckpointError, MissingWeightsError
from deblurdiff.metrics.fid import fid, frechet_distance, kid, mmd2_unbiased, polynomial_kernel
from deblurdiff.metrics.inception import FIDInceptionV3


def test_fid_of_a_set_with_itself_is_zero():
    f = np.random.default_rng(0).normal(size=(300, 16)) @ np.random.default_rng(1).normal(size=(16, 16))
    assert abs(fid(f, f)) < 1e-6


def test_frechet_distance_closed_form_for_diagonal_gaussians():
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    v1, v2 = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 1.0])
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(v1) - np.sqrt(v2)) ** 2)
    assert frechet_distance(mu1, np.diag(v1), mu2, np.diag(v2)) == pytest.approx(expected, rel=1e-9)


def test_mmd_matches_explicit_double_sum():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(7, 5, generator=g, dtype=torch.float64), torch.randn(6, 5, generator=g, dtype=torch.float64) + 0.5
    k = lambda a, b: (a @ b / 5 + 1) ** 3
    xx = sum(k(x[i], x[j]) for i, j in itertools.permutations(range(7), 2)) / (7 * 6)
    yy = sum(k(y[i], y[j]) for i, j in itertools.permutations(range(6), 2)) / (6 * 5)
    xy = sum(k(x[i], y[j]) for i in range(7) for j in range(6)) / 42
    assert mmd2_unbiased(x, y).item() == pytest.approx((xx + yy - 2 * xy).item(), rel=1e-12)
    assert polynomial_kernel(x, y).shape == (7, 6)


def _third_moment(mean, cov):
    """E[x_i x_j x_k] of a Gaussian."""
    return (np.einsum("i,j,k->ijk", mean, mean, mean) + np.einsum("i,jk->ijk", mean, cov)
            + np.einsum("j,ik->ijk", mean, cov) + np.einsum("k,ij->ijk", mean, cov))


def _expected_kernel(a, A, b, B):
    """E[(x.y/d + 1)^3] for independent x ~ N(a, A), y ~ N(b, B), from Gaussian moments."""
    d = len(a)
    m1 = a @ b
    m2 = np.trace((A + np.outer(a, a)) @ (B + np.outer(b, b)))
    m3 = np.sum(_third_moment(a, A) * _third_moment(b, B))
    return m3 / d ** 3 + 3 * m2 / d ** 2 + 3 * m1 / d + 1


def test_kid_unbiased_estimator_matches_closed_form_mmd():
    rng = np.random.default_rng(0)
    d = 4
    a, b = np.zeros(d), np.full(d, 0.6)
    L = rng.normal(size=(d, d)) * 0.4
    A, B = np.eye(d), np.eye(d) * 0.5 + L @ L.T
    truth = _expected_kernel(a, A, a, A) + _expected_kernel(b, B, b, B) - 2 * _expected_kernel(a, A, b, B)
    fa = rng.multivariate_normal(a, A, size=4000)
    fb = rng.multivariate_normal(b, B, size=4000)
    # Small subsets make a biased estimator (diagonal included) visibly wrong: bias ~ 1/m.
    mean, std = kid(fa, fb, subsets=4000, subset_size=10, seed=1)
    assert truth > 0.5
    assert mean == pytest.approx(truth, abs=4 * std / np.sqrt(4000) + 0.02)
    same, _ = kid(fa, rng.multivariate_normal(a, A, size=4000), subsets=2000, subset_size=10)
    assert abs(same) < 0.05


# Reference layout of pt_inception-2015-12-05 (Szegedy et al. 2016, Fig. 5-7 and Table 1, as
# ported by pytorch-fid): every BasicConv2d as (name, out, in, kh, kw).
def _inception_table():
    convs = [("Conv2d_1a_3x3", 32, 3, 3, 3), ("Conv2d_2a_3x3", 32, 32, 3, 3), ("Conv2d_2b_3x3", 64, 32, 3, 3),
             ("Conv2d_3b_1x1", 80, 64, 1, 1), ("Conv2d_4a_3x3", 192, 80, 3, 3)]
    for name, cin, pool in (("Mixed_5b", 192, 32), ("Mixed_5c", 256, 64), ("Mixed_5d", 288, 64)):
        convs += [(f"{name}.branch1x1", 64, cin, 1, 1), (f"{name}.branch5x5_1", 48, cin, 1, 1),
                  (f"{name}.branch5x5_2", 64, 48, 5, 5), (f"{name}.branch3x3dbl_1", 64, cin, 1, 1),
                  (f"{name}.branch3x3dbl_2", 96, 64, 3, 3), (f"{name}.branch3x3dbl_3", 96, 96, 3, 3),
                  (f"{name}.branch_pool", pool, cin, 1, 1)]
    convs += [("Mixed_6a.branch3x3", 384, 288, 3, 3), ("Mixed_6a.branch3x3dbl_1", 64, 288, 1, 1),
              ("Mixed_6a.branch3x3dbl_2", 96, 64, 3, 3), ("Mixed_6a.branch3x3dbl_3", 96, 96, 3, 3)]
    for name, c7 in (("Mixed_6b", 128), ("Mixed_6c", 160), ("Mixed_6d", 160), ("Mixed_6e", 192)):
        convs += [(f"{name}.branch1x1", 192, 768, 1, 1), (f"{name}.branch7x7_1", c7, 768, 1, 1),
                  (f"{name}.branch7x7_2", c7, c7, 1, 7), (f"{name}.branch7x7_3", 192, c7, 7, 1),
                  (f"{name}.branch7x7dbl_1", c7, 768, 1, 1), (f"{name}.branch7x7dbl_2", c7, c7, 7, 1),
                  (f"{name}.branch7x7dbl_3", c7, c7, 1, 7), (f"{name}.branch7x7dbl_4", c7, c7, 7, 1),
                  (f"{name}.branch7x7dbl_5", 192, c7, 1, 7), (f"{name}.branch_pool", 192, 768, 1, 1)]
    convs += [("Mixed_7a.branch3x3_1", 192, 768, 1, 1), ("Mixed_7a.branch3x3_2", 320, 192, 3, 3),
              ("Mixed_7a.branch7x7x3_1", 192, 768, 1, 1), ("Mixed_7a.branch7x7x3_2", 192, 192, 1, 7),
              ("Mixed_7a.branch7x7x3_3", 192, 192, 7, 1), ("Mixed_7a.branch7x7x3_4", 192, 192, 3, 3)]
    for name, cin in (("Mixed_7b", 1280), ("Mixed_7c", 2048)):
        convs += [(f"{name}.branch1x1", 320, cin, 1, 1), (f"{name}.branch3x3_1", 384, cin, 1, 1),
                  (f"{name}.branch3x3_2a", 384, 384, 1, 3), (f"{name}.branch3x3_2b", 384, 384, 3, 1),
                  (f"{name}.branch3x3dbl_1", 448, cin, 1, 1), (f"{name}.branch3x3dbl_2", 384, 448, 3, 3),
                  (f"{name}.branch3x3dbl_3a", 384, 384, 1, 3), (f"{name}.branch3x3dbl_3b", 384, 384, 3, 1),
                  (f"{name}.branch_pool", 192, cin, 1, 1)]
    table = {}
    for name, cout, cin, kh, kw in convs:
        table[f"{name}.conv.weight"] = (cout, cin, kh, kw)
        for p in ("weight", "bias", "running_mean", "running_var"):
            table[f"{name}.bn.{p}"] = (cout,)
    table["fc.weight"], table["fc.bias"] = (1008, 2048), (1008,)
    return table


def test_inception_state_dict_matches_published_layout():
    model = FIDInceptionV3()
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    table = _inception_table()
    assert len(table) == 94 * 5 + 2
    assert ours == table
    # torchvision's Inception3 has 27,161,264 parameters; minus AuxLogits (3,326,696) plus 8 more
    # classes (8 x 2049) gives the FID network's count.
    assert sum(v.numel() for v in model.parameters()) == 27_161_264 - 3_326_696 + 8 * 2049


def test_inception_loads_its_layout_and_rejects_others(tmp_path):
    from safetensors.torch import save_file
    model = FIDInceptionV3()
    state = {k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    save_file(state, str(tmp_path / "w.safetensors"))
    loaded = FIDInceptionV3.from_file(tmp_path / "w.safetensors")
    assert torch.equal(loaded.Mixed_7c.branch_pool.conv.weight, model.Mixed_7c.branch_pool.conv.weight)
    bad = dict(state)
    bad["fc.weight"] = torch.zeros(1000, 2048)
    with pytest.raises(CheckpointError, match="wrong shapes"):
        FIDInceptionV3().load_checked(bad)
    with pytest.raises(MissingWeightsError, match="deblurdiff weights inception"):
        FIDInceptionV3.from_file(tmp_path / "absent.pth")


@pytest.mark.slow
def test_inception_features_shape_small_input():
    model = FIDInceptionV3().eval()
    with torch.no_grad():
        f = model(torch.rand(1, 3, 32, 32))
    assert f.shape == (1, 2048) and (f >= 0).all()
