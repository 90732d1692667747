"""Training: one trainer for every method (``run``), configs, checkpoints, EMA, schedules."""
from .config import DataConfig, ExperimentConfig, StageConfig, TrainConfig, load_config, parse_config


def run(cfg, out_dir, max_steps=None, resume=None, **overrides):
    """Train ``cfg`` into ``out_dir``; see ``deblurdiff.train.trainer.run`` (imported lazily: accelerate is heavy)."""
    from .trainer import run as _run

    return _run(cfg, out_dir, max_steps=max_steps, resume=resume, **overrides)


__all__ = ["DataConfig", "ExperimentConfig", "StageConfig", "TrainConfig", "load_config", "parse_config", "run"]
