"""Training throughput of the trainer on its reference workload (samples/s and ratios).

Workload: ``deblurdiff.train.reference.TinyConvDeblur`` (32 channels, 2 residual blocks) on 48x48
synthetic blur pairs, batch 4, AdamW + EMA, no checkpoints or validation inside the timed window.
Figures: the trainer's samples/s with fp32, channels_last, bf16 autocast and both (ratios against
fp32 in the same run, best of ``ROUNDS`` interleaved rounds), and the trainer's overhead against a
bare PyTorch loop (same model and items, no EMA/seeding/DataLoader/accelerate/logging).
Throughput is read from ``final/training.json`` (steps after the first, so start-up is excluded).
"""
from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import report  # noqa: E402

from deblurdiff.train import parse_config, run  # noqa: E402
from deblurdiff.train.reference import SyntheticBlurPairs, TinyConvDeblur  # noqa: E402

STEPS = int(os.environ.get("BENCH_TRAIN_STEPS", 12))
ROUNDS = int(os.environ.get("BENCH_TRAIN_ROUNDS", 2))
MODEL = {"channels": 32, "blocks": 2}
BATCH, CROP = 4, 48


def config(mixed_precision: str, channels_last: bool):
    return parse_config({
        "method": "deblurdiff.train.reference:TinyConvDeblur", "model": MODEL,
        "data": {"source": "deblurdiff.train.reference:synthetic_pairs", "crop": CROP, "length": 512, "seed": 1},
        "train": {"batch_size": BATCH, "lr": 1e-3, "max_steps": STEPS, "ckpt_every": 0, "val_every": 0,
                  "log_every": 0, "mixed_precision": mixed_precision, "channels_last": channels_last},
    }, "bench_train")


def trainer_throughput(mixed_precision: str, channels_last: bool) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        final = run(config(mixed_precision, channels_last), tmp)
        return json.loads((final / "training.json").read_text())["throughput"]["samples_per_s"]


def bare_loop_throughput() -> float:
    """The floor of what any trainer can do: make the batch, forward, backward, AdamW step."""
    torch.manual_seed(0)
    model = TinyConvDeblur(**MODEL)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    data = SyntheticBlurPairs(length=BATCH * STEPS, size=CROP, seed=1)
    clock = []
    for i in range(STEPS):
        batch = torch.utils.data.default_collate([data[i * BATCH + j] for j in range(BATCH)])
        loss = model.training_loss(batch)["loss"]
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        clock.append(time.perf_counter())
    return (STEPS - 1) * BATCH / (clock[-1] - clock[0])


def main():
    variants = {"fp32": ("no", False), "channels_last": ("no", True), "bf16": ("bf16", False),
                "bf16+channels_last": ("bf16", True)}
    best = {name: 0.0 for name in variants}
    bare = 0.0
    for _ in range(ROUNDS):
        bare = max(bare, bare_loop_throughput())
        for name, (precision, cl) in variants.items():
            best[name] = max(best[name], trainer_throughput(precision, cl))
    device = "cuda" if torch.cuda.is_available() else "cpu"
    figures = {"device": device, "fp32 samples/s": best["fp32"]}
    for name in ("channels_last", "bf16", "bf16+channels_last"):
        figures[f"{name} / fp32 throughput"] = best[name] / best["fp32"]
    figures["trainer / bare loop throughput (fp32)"] = best["fp32"] / bare
    table = [{"variant": name, "samples/s": value, "ratio vs fp32": value / best["fp32"]} for name, value in best.items()]
    table.append({"variant": "bare torch loop (fp32)", "samples/s": bare, "ratio vs fp32": bare / best["fp32"]})
    report("train", figures, {"model": MODEL, "batch": BATCH, "crop": CROP, "steps": STEPS, "rounds": ROUNDS,
                              "threads": torch.get_num_threads(), "note": "CPU shared with other jobs: ratios are noisy"},
           table=table)


if __name__ == "__main__":
    main()
