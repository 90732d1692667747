"""Reproduce every shipped image checkpoint: NAFNet, MIMO-UNet, BlurDM on each, and the ablations.

    python scripts/train_image_models.py                 # all of them, in order, into runs/image-models/
    python scripts/train_image_models.py nafnet blurdm   # only these (and nothing they start from)
    python scripts/train_image_models.py --ship          # ... then copy the finals into the package

Each run is ``deblurdiff train CONFIG --max-steps STEPS`` (the config's lr schedule is kept, so the
weights are those of the shipped step), warm-started with ``train.init`` from the run it builds
on. Runs that finished are skipped and interrupted ones resume (``--resume auto``), so the script
can be stopped and started again at any time. The device is chosen by accelerate (a GPU when
there is one). ``--batch-scale K`` (default 1 on a CPU, 4 on a GPU) multiplies the batch by K and
the lr by sqrt(K) and gives data synthesis more worker processes; runs whose config is written for
a GPU's batch (``scaled=False``) keep their batch and get the workers. ``--steps-scale F`` trains F
times longer. With both at 1 the runs are those that shipped.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
WEIGHTS = REPO / "src" / "deblurdiff" / "weights"


@dataclass(frozen=True)
class Run:
    name: str
    config: str
    steps: int                   # the shipped checkpoint's step (in the config's own schedule); 0: not shipped yet
    init: str | None = None      # the run whose final weights this one starts from
    init_strict: bool = True
    ship_as: str | None = None   # folder under src/deblurdiff/weights/
    scaled: bool = True          # False: the config is written for its batch (a GPU run); --batch-scale leaves it


#: The chain that produced the shipped weights, in order.
PLAN = (
    Run("nafnet-warmup", "configs/nafnet-cpu-warmup.yaml", 500),
    Run("nafnet-linear", "configs/nafnet-cpu-linear.yaml", 2000, init="nafnet-warmup"),
    Run("nafnet", "configs/nafnet-cpu.yaml", 20000, init="nafnet-linear"),
    Run("mimo-unet-linear", "configs/mimo-unet-cpu-linear.yaml", 500),
    Run("mimo-unet", "configs/mimo-unet-cpu.yaml", 4000, init="mimo-unet-linear"),
    # The shipped MIMO-UNet: paper width, batch 32, trained on a lent H200 (4000 steps in about 6 minutes
    # at 360 samples/s, bound by synthesis on 15 cores; the same schedule on 2 CPU cores would take about
    # a day). A 2000-step decay from its weights changed the embedded benchmark by -0.004 dB.
    Run("mimo-unet-gpu", "configs/mimo-unet-gpu.yaml", 4000, scaled=False, ship_as="mimo-unet"),
    # The trunk continued BlurDM's 1500 backbone steps without a prior (a learning-rate decay): the
    # ablation of the shipped BlurDM, so the benchmark's two rows compare the prior and nothing else.
    Run("nafnet-continued", "configs/nafnet-cpu-continued.yaml", 1500, init="nafnet"),
    # The shipped NAFNet: that ablation continued for the backbone steps of BlurDM's long recipe.
    Run("nafnet-long", "configs/nafnet-cpu-long.yaml", 7000, init="nafnet-continued", ship_as="nafnet"),
    Run("blurdm", "configs/blurdm-cpu.yaml", 1800, init="nafnet", init_strict=False, ship_as="blurdm"),
    Run("blurdm-ddpm", "configs/blurdm-ddpm-cpu.yaml", 1800, init="nafnet", init_strict=False,
        ship_as="blurdm/ddpm-prior"),
    Run("blurdm-mimo-unet", "configs/blurdm-mimo-unet-cpu.yaml", 0, init="mimo-unet", init_strict=False,
        ship_as="blurdm-mimo-unet"),
)


def gpu_available() -> bool:
    import torch

    return torch.cuda.is_available()


def train(run: Run, out: Path, batch_scale: int, steps_scale: float, runs: Path) -> Path:
    final = out / "final"
    steps = max(1, round(run.steps * steps_scale))
    if (final / "training.json").is_file() and json.loads((final / "training.json").read_text())["step"] >= steps:
        print(f"== {run.name}: done ({final})", flush=True)
        return final
    import yaml

    raw = yaml.safe_load((REPO / run.config).read_text())
    overrides = []
    if run.init:
        overrides += [f"train.init={runs / run.init / 'final'}", f"train.init_strict={str(run.init_strict).lower()}"]
    if run.scaled and batch_scale != 1:
        overrides += [f"train.batch_size={raw['train']['batch_size'] * batch_scale}",
                      f"train.lr={raw['train']['lr'] * math.sqrt(batch_scale):g}"]
    if batch_scale != 1 or not run.scaled:  # synthesis runs in the loader's workers: one per spare core
        overrides.append(f"data.num_workers={max(1, min(15, (os.cpu_count() or 2) - 1))}")
    if steps_scale != 1:
        overrides.append(f"train.max_steps={max(steps, raw['train']['max_steps'])}")
    command = [sys.executable, "-m", "deblurdiff", "train", str(REPO / run.config), "--out", str(out),
               "--max-steps", str(steps), "--resume", "auto", *[a for o in overrides for a in ("--set", o)]]
    print(f"== {run.name}: {' '.join(command[2:])}", flush=True)
    subprocess.run(command, check=True)
    return final


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help=f"runs to do (default all): {', '.join(r.name for r in PLAN)}")
    parser.add_argument("--runs", default=str(REPO / "runs" / "image-models"), help="where the runs go")
    parser.add_argument("--batch-scale", type=int, default=None, help="batch multiplier (default 1 on CPU, 4 on GPU)")
    parser.add_argument("--steps-scale", type=float, default=1.0, help="train this many times longer")
    parser.add_argument("--ship", action="store_true", help="copy the finals into src/deblurdiff/weights/")
    args = parser.parse_args(argv)

    known = {r.name for r in PLAN}
    unknown = [n for n in args.names if n not in known]
    if unknown:
        parser.error(f"unknown run {unknown[0]!r}; choose from {', '.join(r.name for r in PLAN)}")
    batch_scale = args.batch_scale or (4 if gpu_available() else 1)
    runs = Path(args.runs)
    for run in PLAN:
        if args.names and run.name not in args.names:
            continue
        if run.steps < 1:
            print(f"== {run.name}: not trained by this recipe yet (no shipped step count in PLAN); skipped")
            continue
        final = train(run, runs / run.name, batch_scale, args.steps_scale, runs)
        if args.ship and run.ship_as:
            target = WEIGHTS / run.ship_as
            for file in ("config.json", "diffusion_pytorch_model.safetensors", "training.json"):
                target.mkdir(parents=True, exist_ok=True)
                shutil.copy2(final / file, target / file)
            print(f"   shipped {final} -> {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
