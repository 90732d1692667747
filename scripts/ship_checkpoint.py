"""Ship a training checkpoint into the package: ``src/deblurdiff/weights/NAME``.

    python scripts/ship_checkpoint.py runs/vdm-md-cpu-v/checkpoints/step-002000 vdm-md \\
        --chain "vdm-md-cpu 5000 (eps) -> vdm-md-cpu-v 2000 (v)" --autoencoder autoencoder --bf16 prior.

FOLDER is a run's ``final/`` or ``checkpoints/step-N/`` (its EMA weights ship, as everywhere in
this project). ``training.json`` records the step, the run's config, the chain of runs that made the
weights (``--chain``: how to reproduce them) and what this script changed:

* ``--autoencoder NAME``: the ``autoencoder.*`` tensors and ``latent_std`` are replaced by the shipped
  autoencoder's (``src/deblurdiff/weights/NAME``). A latent method keeps the autoencoder its run
  started with; when only the decoder was retrained since (same encoder and latent_std, so the
  latents the prior learned are unchanged), this ships the better decoder. A different encoder or
  latent_std is refused.
* ``--bf16 PREFIX`` (repeatable): tensors whose names start with PREFIX are stored as bfloat16,
  halving their size in the repository; loading upcasts them to the model's float32. Measure the
  effect on the benchmark before shipping (``benchmarks/bench_vdm_md.py --checkpoint`` on both).
* ``--set KEY=VALUE`` (repeatable): an inference default in ``config.json`` chosen by measurement
  after training (``--set steps=1``); VALUE is read as JSON (a bare word is a string). Only keys the
  config already has, so a typo cannot ship silently; the changes are recorded in ``training.json``.

The folder is written next to the target and renamed into place once complete.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from deblurdiff.atomic import atomic_dir
from deblurdiff.errors import DeblurDiffError
from deblurdiff.train.checkpoint import init_weights_folder

REPO = Path(__file__).resolve().parent.parent
WEIGHTS = REPO / "src" / "deblurdiff" / "weights"
WEIGHT_FILE = "diffusion_pytorch_model.safetensors"


def weights_folder(spec) -> Path:
    """The EMA weights a run's folder or a shipped name holds (train.init's resolution)."""
    try:
        return init_weights_folder(spec)
    except DeblurDiffError as exc:
        sys.exit(f"error: {exc}; give a run's final/ or checkpoints/step-N/ folder")


def run_record(folder: Path) -> dict:
    """Step and config of the run, from final/training.json or a step folder's trainer.json."""
    for name in ("training.json", "trainer.json"):
        if (folder / name).is_file():
            info = json.loads((folder / name).read_text())
            return {"step": info["step"], "config": info["config"], "method": info.get("method")}
    sys.exit(f"error: {folder} has neither training.json nor trainer.json; is it a run's folder?")


def swap_autoencoder(tensors: dict, name: str) -> None:
    ae = load_file(str(weights_folder(WEIGHTS / name) / WEIGHT_FILE))
    ours = {k for k in tensors if k.startswith("autoencoder.")}
    if ours != {k for k in ae if k.startswith("autoencoder.")}:
        sys.exit(f"error: the shipped {name} has other autoencoder tensors than this checkpoint; not swapped")
    if not torch.allclose(ae["latent_std"].float(), tensors["latent_std"].float()):
        sys.exit(f"error: latent_std differs ({float(ae['latent_std'])} vs {float(tensors['latent_std'])}): the "
                 "prior learned another latent space")
    for key in ours:
        if ".encoder." in key or key.startswith("autoencoder.quant_conv") or key.startswith("autoencoder.to_latent"):
            if not torch.equal(ae[key], tensors[key]):
                sys.exit(f"error: encoder tensor {key} differs: the prior learned another latent space")
        tensors[key] = ae[key]


def config_settings(items: list[str], config: dict) -> dict:
    """``KEY=VALUE`` strings as a dict, VALUE parsed as JSON; keys the config lacks are refused."""
    settings = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or key not in config:
            known = ", ".join(k for k in sorted(config) if not k.startswith("_"))
            sys.exit(f"error: --set {item!r}: give KEY=VALUE with a key of the checkpoint's config.json: {known}")
        try:
            settings[key] = json.loads(text)
        except json.JSONDecodeError:
            settings[key] = text
    return settings


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", type=Path)
    ap.add_argument("name", help="folder under src/deblurdiff/weights/")
    ap.add_argument("--chain", required=True, help="the runs that made these weights, in order (how to reproduce)")
    ap.add_argument("--autoencoder", default=None, help="swap in this shipped autoencoder's weights")
    ap.add_argument("--bf16", action="append", default=[], metavar="PREFIX", help="store these tensors as bfloat16")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="settings",
                    help="change an inference default in config.json (VALUE as JSON)")
    args = ap.parse_args(argv)

    source = weights_folder(args.folder)
    record = run_record(args.folder)
    config = json.loads((source / "config.json").read_text())
    settings = config_settings(args.settings, config)
    config.update(settings)
    tensors = load_file(str(source / WEIGHT_FILE))
    if args.autoencoder:
        swap_autoencoder(tensors, args.autoencoder)
    stored_bf16 = sorted(k for k in tensors if any(k.startswith(p) for p in args.bf16) and tensors[k].is_floating_point())
    for key in stored_bf16:
        tensors[key] = tensors[key].to(torch.bfloat16)

    target = WEIGHTS / args.name
    record.update(chain=args.chain, weights="EMA", source=str(args.folder), autoencoder_swapped=args.autoencoder,
                  stored_bf16_prefixes=args.bf16, config_set=settings)
    with atomic_dir(target) as tmp:
        if target.is_dir():  # keep sub-checkpoints (e.g. blurdm/ddpm-prior)
            for child in target.iterdir():
                if child.is_dir():
                    shutil.copytree(child, tmp / child.name)
        (tmp / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
        save_file(tensors, str(tmp / WEIGHT_FILE))
        (tmp / "training.json").write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
    size = sum(f.stat().st_size for f in target.rglob("*") if f.is_file()) / 1e6
    print(f"shipped {args.folder} (step {record['step']}) -> {target} ({size:.1f} MB)")


if __name__ == "__main__":
    main()
