"""Training throughput of the trainer on its reference workload (samples/s and ratios).

Workload: ``deblurdiff.train.reference.TinyConvDeblur`` (32 channels, 2 residual blocks) on 48x48
synthetic blur pairs, batch 4, AdamW + EMA, no checkpoints or validation inside the timed window.
Figures: the trainer's samples/s with fp32, channels_last, bf16 autocast and both (ratios against
fp32 in the same run, best of ``ROUNDS`` interleaved rounds), and the trainer's overhead against a
bare PyTorch loop (same model and items, no EMA/seeding/DataLoader/accelerate/logging).
Throughput is read from ``final/training.json`` (steps after the first, so start-up is excluded),
per wall second and per CPU second of the process: on a shared machine the wall clock measures the
neighbours too, CPU time (with ``OMP_NUM_THREADS=1``) measures the work per sample.
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


def trainer_throughput(mixed_precision: str, channels_last: bool) -> tuple[float, float]:
    """(samples per wall second, samples per CPU second of this process)."""
    with tempfile.TemporaryDirectory() as tmp:
        final = run(config(mixed_precision, channels_last), tmp)
        t = json.loads((final / "training.json").read_text())["throughput"]
        return t["samples_per_s"], t["timed_steps"] * BATCH / t["cpu_seconds_main_process"]


def bare_loop_throughput() -> tuple[float, float]:
    """The floor of what any trainer can do: make the batch, forward, backward, AdamW step."""
    torch.manual_seed(0)
    model = TinyConvDeblur(**MODEL)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    data = SyntheticBlurPairs(length=BATCH * STEPS, size=CROP, seed=1)
    clock = []  # (wall, CPU)
    for i in range(STEPS):
        batch = torch.utils.data.default_collate([data[i * BATCH + j] for j in range(BATCH)])
        loss = model.training_loss(batch)["loss"]
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        clock.append((time.perf_counter(), time.process_time()))
    return tuple((STEPS - 1) * BATCH / (clock[-1][i] - clock[0][i]) for i in (0, 1))


def main():
    # one thread by default: CPU time then measures work per sample, unaffected by other jobs
    torch.set_num_threads(int(os.environ.get("BENCH_TRAIN_THREADS", 1)))
    variants = {"fp32": ("no", False), "channels_last": ("no", True), "bf16": ("bf16", False),
                "bf16+channels_last": ("bf16", True)}
    best = {name: (0.0, 0.0) for name in variants}
    bare = (0.0, 0.0)
    pick = lambda a, b: (max(a[0], b[0]), max(a[1], b[1]))  # best of rounds, per clock
    for _ in range(ROUNDS):
        bare = pick(bare, bare_loop_throughput())
        for name, (precision, cl) in variants.items():
            best[name] = pick(best[name], trainer_throughput(precision, cl))
    device = "cuda" if torch.cuda.is_available() else "cpu"
    figures = {"device": device, "fp32 samples/s (wall)": best["fp32"][0], "fp32 samples/CPU-s": best["fp32"][1]}
    for name in ("channels_last", "bf16", "bf16+channels_last"):
        figures[f"{name} / fp32 (wall)"] = best[name][0] / best["fp32"][0]
        figures[f"{name} / fp32 (CPU time)"] = best[name][1] / best["fp32"][1]
    figures["trainer / bare loop (wall)"] = best["fp32"][0] / bare[0]
    figures["trainer / bare loop (CPU time)"] = best["fp32"][1] / bare[1]
    table = [{"variant": name, "samples/s": v[0], "samples/CPU-s": v[1], "wall ratio": v[0] / best["fp32"][0],
              "CPU ratio": v[1] / best["fp32"][1]} for name, v in {**best, "bare torch loop (fp32)": bare}.items()]
    report("train", figures, {"model": MODEL, "batch": BATCH, "crop": CROP, "steps": STEPS, "rounds": ROUNDS,
                              "threads": torch.get_num_threads(),
                              "note": "CPU shared with other jobs: wall ratios are noisy; CPU-time ratios "
                                      "(run with 1 thread) measure work per sample"},
           table=table)


if __name__ == "__main__":
    main()
