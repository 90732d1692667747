"""One trainer for every method, on HF accelerate.

The same call runs on one CPU, one GPU, or one process per device under ``accelerate launch`` /
``torchrun`` (DDP; accelerate reads RANK/LOCAL_RANK/WORLD_SIZE from the environment). Mixed
precision (bf16/fp16 autocast), gradient accumulation and clipping come from accelerate; EMA
from diffusers. The loop itself is here because training is multi-stage (a stage freezes
parameters by regex, has its own lr curve and loss options) and must resume bit-exactly after a
crash, which needs every source of randomness tied to the step (see ``train/data.py``).

Exactness: the order of batches is a function of (seed, epoch), each item of (seed, epoch,
index), and before each micro-batch the global RNGs are seeded from (seed, step, micro-batch,
rank). A checkpoint stores weights, EMA, optimizer, lr scheduler, the data position and the RNG
states; resuming from it replays the remaining steps exactly as an uninterrupted run would.
"""
from __future__ import annotations

import dataclasses
import importlib
import json
import math
import os
import time
from pathlib import Path

import torch

from ..atomic import remove_leftovers
from ..errors import CheckpointError, ConfigError, DeblurDiffError
from ..nn.layout import to_channels_last
from .checkpoint import (checkpoint_name, finalize, find_resumable, list_checkpoints, load_optimizer, load_rng,
                         load_weights, partial_path, prune, read_json, remove_partials, save_optimizer, save_rng,
                         verify, init_weights_folder, warm_start, write_json)
from .config import DataConfig, ExperimentConfig
from .data import ShardedBatches, StreamPosition, batch_stream, derive_seed, seed_everything
from .ema import WeightEMA
from .logging import RunLog, validate
from .schedule import make_scheduler, param_groups, plan_stages, select_trainable, stage_at


class TrainingDiverged(DeblurDiffError):
    """The loss stayed NaN/Inf for ``train.max_bad_steps`` steps in a row."""


class _LossModule(torch.nn.Module):
    """Makes ``training_loss`` the forward of a module, so DDP's gradient hooks and accelerate's
    autocast (both attached to ``forward``) apply to it."""

    def __init__(self, method):
        super().__init__()
        self.method = method

    def forward(self, batch):
        return self.method.training_loss(batch)


def _import_object(spec: str, what: str):
    module_name, _, attr = spec.partition(":")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"cannot import {what} {spec!r} ({exc}); use 'package.module:Name'") from None


def resolve_method_class(name: str):
    """Registry name (``divd``) or ``package.module:Class`` for a method defined outside the package."""
    if ":" in name:
        return _import_object(name, "method")
    from ..methods import method_class

    return method_class(name)


def build_data(data_cfg: DataConfig):
    """``deblurdiff.data.build_dataset`` for registered sources; ``module:callable`` is called with the config."""
    if ":" in data_cfg.source:
        return _import_object(data_cfg.source, "data source")(data_cfg)
    from ..data import build_dataset

    return build_dataset(data_cfg)


def _build_optimizer(train_cfg, params, lr):
    kind = train_cfg.optimizer.lower()
    if kind == "adamw":
        return torch.optim.AdamW(params, lr=lr, betas=tuple(train_cfg.betas), weight_decay=train_cfg.weight_decay)
    if kind == "adam":
        return torch.optim.Adam(params, lr=lr, betas=tuple(train_cfg.betas), weight_decay=train_cfg.weight_decay)
    if kind == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=train_cfg.betas[0], weight_decay=train_cfg.weight_decay)
    raise ConfigError(f"train.optimizer must be adamw, adam or sgd, got {train_cfg.optimizer!r}")


def _to_device(batch, device, channels_last: bool):
    def move(x):
        if isinstance(x, torch.Tensor):
            x = x.to(device, non_blocking=True)
            if channels_last and x.dim() == 4 and x.is_floating_point():
                x = x.contiguous(memory_format=torch.channels_last)
        return x

    return {k: move(v) for k, v in batch.items()}


def _make_accelerator(train_cfg):
    from accelerate import Accelerator, DistributedDataParallelKwargs

    if train_cfg.mixed_precision not in ("no", "bf16", "fp16"):
        raise ConfigError(f"train.mixed_precision must be no, bf16 or fp16, got {train_cfg.mixed_precision!r}")
    if train_cfg.grad_accum < 1:
        raise ConfigError(f"train.grad_accum must be >= 1, got {train_cfg.grad_accum}")
    # Under torchrun without GPUs accelerate only sets up gloo DDP when told the run is on CPU.
    multi_cpu = not torch.cuda.is_available() and int(os.environ.get("WORLD_SIZE", "1")) > 1
    ddp = DistributedDataParallelKwargs(find_unused_parameters=train_cfg.ddp_find_unused)
    try:
        return Accelerator(cpu=multi_cpu, mixed_precision=train_cfg.mixed_precision,
                           gradient_accumulation_steps=train_cfg.grad_accum, kwargs_handlers=[ddp])
    except ValueError as exc:
        raise ConfigError(f"train.mixed_precision={train_cfg.mixed_precision!r} is not usable here: {exc}; "
                          "use 'no' or 'bf16' on CPU") from None


def _folder_config(folder: Path, cls) -> dict:
    """The method arguments stored in a warm-start folder's config.json when it was written for
    ``cls`` (an imported official checkpoint carries its architecture there); {} otherwise."""
    try:
        raw = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError):
        return {}
    if raw.get("_class_name") != getattr(cls, "__name__", None):
        return {}
    return {k: v for k, v in raw.items() if not k.startswith("_")}


def _resolve_resume(resume, ckpt_root: Path, log) -> Path | None:
    if resume in (None, "", "none", "no"):
        return None
    if resume == "auto":
        found, skipped = find_resumable(ckpt_root)
        for reason in skipped:
            log(f"skipping damaged checkpoint: {reason}")
        if found is None and skipped:
            raise CheckpointError(f"--resume auto: every checkpoint under {ckpt_root} is damaged; remove them to "
                                  "start from scratch")
        if found is not None:
            log(f"resuming from {found}")
        return found
    path = Path(resume)
    verify(path)
    return path


def run(cfg: ExperimentConfig, out_dir, max_steps: int | None = None, resume: str | os.PathLike | None = None, *,
        method: torch.nn.Module | None = None, method_class=None, dataset=None, val_dataset=None) -> Path:
    """Train ``cfg`` into ``out_dir`` and return ``out_dir/final`` (EMA weights, ``from_pretrained``-loadable).

    ``max_steps`` stops at that global step without changing the lr schedule (resuming later
    continues exactly); ``resume`` is ``None``, ``"auto"`` (newest intact checkpoint in
    ``out_dir/checkpoints``, none = fresh start) or a checkpoint folder. ``method`` (an instance),
    ``method_class`` (built from ``cfg.model`` under the run's seed, like the registry's class),
    ``dataset`` and ``val_dataset`` replace what the config would build (tests, notebooks).
    """
    out_dir = Path(out_dir)
    ckpt_root = out_dir / "checkpoints"
    tc = cfg.train
    stages = plan_stages(cfg)
    total = stages[-1].end
    if max_steps is not None and int(max_steps) < 1:
        raise ConfigError(f"max_steps must be at least 1, got {max_steps}")
    stop = total if max_steps is None else min(total, int(max_steps))
    if tc.batch_size < 1:
        raise ConfigError(f"train.batch_size must be >= 1, got {tc.batch_size}")

    accelerator = _make_accelerator(tc)
    rank, world, main = accelerator.process_index, accelerator.num_processes, accelerator.is_main_process
    device = accelerator.device
    log_run = RunLog(out_dir, total=stop, initial=0, enabled=False)  # replaced once the start step is known

    def say(text):
        if main:
            print(text, flush=True)

    # Identical initial weights on every rank, and on a resume (they are then overwritten anyway).
    seed_everything(derive_seed(tc.seed, 0))
    init = init_weights_folder(tc.init) if tc.init else None
    if method is None:
        cls = method_class or resolve_method_class(cfg.method)
        # The config's `model:` keys override the architecture stored with the warm-start weights.
        kwargs = {**_folder_config(init, cls), **cfg.model} if init is not None else cfg.model
        try:
            method = cls(**kwargs)
        except TypeError as exc:
            raise ConfigError(f"model: {exc}; check the keys under 'model:' against the method's arguments") from None
    from ..methods.base import DeblurMethod

    if isinstance(method, DeblurMethod) and type(method).training_loss is DeblurMethod.training_loss:
        raise ConfigError(f"method {cfg.method!r} has nothing to train (no training_loss); train a learned method")
    if init is not None:
        # On a resume that finds a checkpoint these weights are replaced by the checkpoint's below.
        report = warm_start(method, init, tc.init_strict)
        say(f"warm start from {report['folder']}: {len(report['loaded'])} tensors loaded"
            + "".join(f"; {what} ({len(report[what])}): {', '.join(report[what][:8])}"
                      + (" ..." if len(report[what]) > 8 else "")
                      for what in ("missing", "misshapen", "unused") if report[what]))
    method.to(device)
    if tc.channels_last:
        to_channels_last(method)
    ema = WeightEMA(method, tc.ema_decay)

    dataset = dataset if dataset is not None else build_data(cfg.data)
    if val_dataset is None and cfg.val_data is not None and (tc.val_every > 0):
        val_dataset = build_data(cfg.val_data)
    # A dataset that echoes its items (data.options.echo) gets the order that lets its cache hit.
    sampler = ShardedBatches(len(dataset), tc.batch_size, world, rank, tc.seed, echo=getattr(dataset, "echo", 1),
                             echo_cache=getattr(dataset, "echo_cache", None), workers=cfg.data.num_workers)

    step, bad_streak, bad_total, saved_stage = 0, 0, 0, None
    if resume in (None, "", "none", "no") and list_checkpoints(ckpt_root):
        raise ConfigError(f"{out_dir} already holds checkpoints of a run; pass --resume auto to continue it, or "
                          "choose another --out (or delete the folder) to start again")
    # A bad --resume is refused before anything is written (partial folders are never candidates).
    checkpoint = _resolve_resume(resume, ckpt_root, say)
    if main:
        out_dir.mkdir(parents=True, exist_ok=True)
        remove_partials(ckpt_root)
        remove_leftovers(out_dir / "final")  # of a run killed while writing its final weights
        write_json(out_dir / "config.json", dataclasses.asdict(cfg))
    accelerator.wait_for_everyone()
    if checkpoint is not None:
        state = read_json(checkpoint / "trainer.json")
        if state.get("method") != cfg.method:
            raise CheckpointError(f"{checkpoint} was trained for method {state.get('method')!r}, this config is "
                                  f"{cfg.method!r}; resume with the matching config or a new --out")
        if state.get("world_size") != world:
            say(f"warning: checkpoint written by {state.get('world_size')} processes, resuming with {world}: "
                "the data order will differ from an uninterrupted run")
        saved_workers = state.get("config", {}).get("data", {}).get("num_workers")
        if sampler.echo > 1 and saved_workers not in (None, cfg.data.num_workers):
            say(f"warning: checkpoint written with data.num_workers {saved_workers}, resuming with "
                f"{cfg.data.num_workers}: with data echoing the data order will differ from an uninterrupted run")
        load_weights(method, checkpoint / "model")
        ema.load(checkpoint)
        step, bad_streak, bad_total = state["step"], state["bad_streak"], state["bad_total"]
        saved_stage = state["stage"]
        sampler.position = StreamPosition(**state["position"])

    log_run = RunLog(out_dir, total=stop, initial=min(step, stop), enabled=main)
    stream = batch_stream(dataset, sampler, num_workers=cfg.data.num_workers, pin_memory=device.type == "cuda")
    if checkpoint is not None:
        load_rng(checkpoint, rank)

    last_saved = step if checkpoint is not None else None
    ctx = {"optimizer": None, "scheduler": None, "stage": None}
    step_clock = []  # (wall, process CPU) time after each step: throughput without start-up cost
    window = {"start": time.perf_counter(), "data": 0.0, "steps": 0}  # for the periodic progress line

    def save_checkpoint():
        partial = partial_path(ckpt_root, step)
        if main:
            partial.mkdir(parents=True, exist_ok=True)
        accelerator.wait_for_everyone()
        save_rng(partial, rank)
        accelerator.wait_for_everyone()
        if main:
            method.save_pretrained(partial / "model")
            ema.save(partial, method.save_pretrained)
            save_optimizer(ctx["optimizer"], partial)
            write_json(partial / "scheduler.json", {"last_epoch": ctx["scheduler"].last_epoch,
                                                    "_step_count": ctx["scheduler"]._step_count})
            write_json(partial / "trainer.json", {
                "step": step, "stage": ctx["stage"].index, "stage_name": ctx["stage"].name,
                "position": dataclasses.asdict(sampler.position), "bad_streak": bad_streak, "bad_total": bad_total,
                "world_size": world, "method": cfg.method, "config": dataclasses.asdict(cfg)})
            finalize(partial, ckpt_root / checkpoint_name(step), step)
            prune(ckpt_root, tc.keep_last)
        accelerator.wait_for_everyone()

    try:
        while step < stop:
            stage = stage_at(stages, step)
            accelerator.free_memory()
            select_trainable(method, stage.trainable, stage.name)
            params = [p for p in method.parameters() if p.requires_grad]
            optimizer = _build_optimizer(tc, param_groups(method, stage.lr, stage.lr_scale), stage.lr)
            scheduler = make_scheduler(optimizer, stage, tc.warmup_steps, tc.lr_schedule, tc.min_lr)
            if checkpoint is not None and saved_stage == stage.index and step > stage.start:
                load_optimizer(optimizer, checkpoint)
                scheduler.load_state_dict({**scheduler.state_dict(), **read_json(checkpoint / "scheduler.json")})
                scheduler._last_lr = [g["lr"] for g in optimizer.param_groups]
            raw_optimizer = optimizer
            model, optimizer = accelerator.prepare(_LossModule(method), optimizer)
            model.train()
            ctx.update(optimizer=raw_optimizer, scheduler=scheduler, stage=stage)
            stage_stop = min(stage.end, stop)
            say(f"stage '{stage.name}': steps {step + 1}..{stage_stop} of {total}, {len(params)} trainable tensors, "
                f"lr {stage.lr:g}, {world} process(es) on {device}")

            while step < stage_stop:
                bad = False
                losses = []
                extras = {}
                batch = None
                for micro in range(tc.grad_accum):
                    fetch_start = time.perf_counter()
                    batch = _to_device(next(stream), device, tc.channels_last)
                    window["data"] += time.perf_counter() - fetch_start
                    batch["stage"] = stage.name
                    batch["stage_options"] = stage.loss
                    seed_everything(derive_seed(tc.seed, 1, step, micro, rank))
                    with accelerator.accumulate(model):
                        out = model(batch)
                        loss = out["loss"]
                        finite = torch.isfinite(loss.detach()).float().reshape(1)
                        if world > 1:
                            finite = accelerator.gather(finite).min().reshape(1)
                        if finite.item() < 1 or bad:
                            bad = True
                        else:
                            accelerator.backward(loss)
                            losses.append(loss.detach().float())
                            for key, value in out.items():
                                if key != "loss" and isinstance(value, torch.Tensor) and value.numel() == 1:
                                    extras[key] = float(value.detach())
                        grad_norm = None
                        if accelerator.sync_gradients and not bad:
                            grad_norm = accelerator.clip_grad_norm_(params, tc.grad_clip if tc.grad_clip > 0
                                                                    else float("inf"))
                            if accelerator.scaler is None and not torch.isfinite(grad_norm):
                                bad = True
                        if accelerator.sync_gradients and not bad:
                            optimizer.step()
                        optimizer.zero_grad(set_to_none=True)
                lr_used = scheduler.get_last_lr()[0]
                scheduler.step()
                step += 1
                if bad:
                    bad_streak += 1
                    bad_total += 1
                    log_run.message(f"step {step}: non-finite loss or gradient, step skipped "
                                    f"({bad_streak} in a row, {bad_total} in total)")
                    if bad_streak >= tc.max_bad_steps:
                        good = last_saved if last_saved is not None else "none (no checkpoint yet)"
                        raise TrainingDiverged(
                            f"the loss/gradients were NaN or Inf for {bad_streak} steps in a row (up to step {step}); "
                            f"training stopped. Last good checkpoint: step {good} in {ckpt_root}. Lower train.lr, "
                            "set train.grad_clip, use mixed_precision 'bf16' instead of 'fp16', or check the data")
                else:
                    bad_streak = 0
                    ema.update()
                loss_value = torch.stack(losses).mean().item() if losses else float("nan")
                scalars = {}
                if tc.log_every > 0 and step % tc.log_every == 0:
                    mean_loss = torch.tensor([loss_value], device=device)
                    if world > 1:
                        mean_loss = accelerator.gather(mean_loss).nanmean().reshape(1)
                    scalars = {"train/loss": mean_loss.item(), "train/lr": lr_used,
                               "train/bad_steps": float(bad_total),
                               "train/grad_norm": float(grad_norm) if grad_norm is not None else None,
                               **{f"train/{k}": v for k, v in extras.items()}}
                window["steps"] += 1
                if scalars:
                    elapsed = time.perf_counter() - window["start"]
                    rate = window["steps"] * tc.batch_size * tc.grad_accum * world / max(elapsed, 1e-9)
                    share = window["data"] / max(elapsed, 1e-9)
                    scalars.update({"train/samples_per_s": rate, "train/data_share": share})
                    log_run.progress(f"step {step}/{stop} loss {scalars['train/loss']:.4g} lr {lr_used:.3g} "
                                     f"{rate:.2f} samples/s, data {100 * share:.0f}% of the time")
                    window.update(start=time.perf_counter(), data=0.0, steps=0)
                log_run.step(step, scalars, {"loss": loss_value, "lr": lr_used})
                step_clock.append((time.perf_counter(), time.process_time()))

                if tc.val_every > 0 and val_dataset is not None and step % tc.val_every == 0:
                    if main:
                        with ema.swapped_in():
                            metrics = validate(method, _first_batches(val_dataset, tc.batch_size, tc.val_batches),
                                               device)
                        log_run.scalars(step, metrics)
                        log_run.message(f"step {step}: " + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
                    accelerator.wait_for_everyone()
                if tc.sample_every > 0 and step % tc.sample_every == 0 and hasattr(method, "sample_images"):
                    if main:
                        with ema.swapped_in(), torch.no_grad():
                            images = method.sample_images(batch)
                        log_run.images(step, images if isinstance(images, dict) else {"samples": images})
                    accelerator.wait_for_everyone()
                # no checkpoint inside a run of skipped steps: the last one stays the last good one
                if tc.ckpt_every > 0 and step % tc.ckpt_every == 0 and step < total and bad_streak == 0:
                    save_checkpoint()
                    last_saved = step
            checkpoint = None  # later stages start fresh
        if last_saved != step and step > 0 and ctx["optimizer"] is not None:
            save_checkpoint()
        final = out_dir / "final"
        if main:
            from ..atomic import atomic_dir

            with atomic_dir(final) as tmp, ema.swapped_in():
                method.save_pretrained(tmp)
                timed = len(step_clock) - 1
                seconds, cpu_seconds = ((step_clock[-1][i] - step_clock[0][i]) if timed > 0 else 0.0 for i in (0, 1))
                samples = timed * tc.batch_size * tc.grad_accum * world
                write_json(tmp / "training.json", {
                    "step": step, "of": total, "method": cfg.method, "bad_steps": bad_total,
                    "throughput": {"timed_steps": timed, "seconds": seconds, "cpu_seconds_main_process": cpu_seconds,
                                   "samples_per_s": samples / seconds if seconds > 0 else None},
                    "config": dataclasses.asdict(cfg)})
            say(f"done: step {step}/{total}; EMA weights in {final}")
        accelerator.wait_for_everyone()
        return final
    finally:
        log_run.close()
        accelerator.free_memory()
        # AcceleratorState is a process-wide singleton; forget this run's precision/accumulation so a
        # next run() in the same process (tests, notebooks) may use other settings. The process
        # group (PartialState) is kept.
        from accelerate.state import AcceleratorState

        AcceleratorState._reset_state()


def _first_batches(dataset, batch_size: int, count: int):
    from torch.utils.data import DataLoader

    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False)
    for i, batch in enumerate(loader):
        if i >= count:
            break
        yield batch

