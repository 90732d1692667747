"""``deblurdiff train CONFIG.yaml``: train any method from a YAML config (single process or DDP)."""
from __future__ import annotations

from pathlib import Path

from .argtypes import positive_int

HELP = "train a method from a YAML config (resumable; runs under accelerate launch / torchrun for DDP)"


EPILOG = """several processes (DDP, one per GPU or CPU process):
  torchrun --standalone --nproc_per_node N -m deblurdiff train CONFIG.yaml     (CPU: gloo; GPU: nccl)
  accelerate launch --multi_gpu --num_processes N -m deblurdiff train CONFIG.yaml   (GPUs)
train.batch_size is per process. Output: OUT/checkpoints/step-XXXXXX/ (last train.keep_last kept),
OUT/final/ (EMA weights, loads with from_pretrained), OUT/tensorboard/."""


def add_arguments(parser) -> None:
    import argparse

    parser.epilog = EPILOG
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("config", help="YAML experiment config (see configs/*.yaml)")
    parser.add_argument("--out", default=None,
                        help="output folder (default: runs/<config name>); checkpoints in OUT/checkpoints, "
                             "shipped EMA weights in OUT/final")
    parser.add_argument("--max-steps", type=positive_int, default=None,
                        help="stop at this global step; the lr schedule keeps the config's length, so a later "
                             "--resume continues exactly (use --set train.max_steps=N to shorten the schedule)")
    parser.add_argument("--resume", default=None, metavar="auto|PATH",
                        help="'auto': newest intact checkpoint in OUT/checkpoints (fresh start if none); "
                             "or a checkpoint folder")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value, e.g. --set train.lr=1e-4 --set data.crop=64 (repeatable)")


def run(args) -> int:
    from ..train import load_config, run as train_run

    from ..atomic import check_writable
    from ..errors import ConfigError

    cfg = load_config(args.config, args.overrides)
    out = Path(args.out) if args.out else Path("runs") / Path(args.config).stem
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file; give a folder for the run's checkpoints and weights")
    check_writable(out, "--out")
    train_run(cfg, out, max_steps=args.max_steps, resume=args.resume)
    return 0
