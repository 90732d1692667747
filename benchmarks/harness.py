"""Shared reporting for benchmark scripts.

Every benchmark script calls ``report(name, figures, settings)``, which prints the figures,
and writes ``benchmarks/results/<name>.json`` and ``<name>.md`` stamped with the machine, the
device, the commit and the settings. Speed figures on CPU are given as ratios against a
baseline measured in the same run; absolute seconds only from a GPU (named).
"""
from __future__ import annotations

import json
import os
import platform
import subprocess
import time
from pathlib import Path

import torch

RESULTS = Path(__file__).resolve().parent / "results"
#: real camera blur (evaluation only, never a training source): ``../shared/data/real`` beside the repo
REAL = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "real"


def machine() -> dict:
    info = {"platform": platform.platform(), "python": platform.python_version(), "torch": torch.__version__,
            "cpu_count": os.cpu_count(), "threads": torch.get_num_threads()}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=Path(__file__).parent, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def timed(fn, *args, repeats: int = 1, **kwargs):
    """Run ``fn`` and return (result, seconds per call); synchronises CUDA around the timing."""
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        result = fn(*args, **kwargs)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return result, (time.perf_counter() - start) / repeats


def lpips_scorer(tag: str):
    """AlexNet LPIPS, or None (with the reason printed) where its weights are not installed: LPIPS
    is then left out of the figures, never made up."""
    from deblurdiff.errors import MissingWeightsError
    from deblurdiff.metrics.lpips import LPIPS

    try:
        return LPIPS("alex")
    except MissingWeightsError as exc:
        print(f"[{tag}] LPIPS not scored: {exc}")
        return None


def _markdown_table(rows: list[dict]) -> str:
    keys = list(dict.fromkeys(k for r in rows for k in r))
    fmt = lambda v: f"{v:.4g}" if isinstance(v, float) else str(v)
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(fmt(r.get(k, "")) for k in keys) + " |" for r in rows]
    return "\n".join(lines)


def report(name: str, figures: dict, settings: dict | None = None, table: list[dict] | None = None) -> dict:
    """Print and save a benchmark's figures (``table``: optional rows printed as Markdown)."""
    record = {"name": name, "figures": figures, "settings": settings or {}, "table": table or [],
              "machine": machine(), "device": "cuda" if torch.cuda.is_available() else "cpu",
              "commit": commit(), "date": time.strftime("%Y-%m-%d %H:%M:%S")}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(record, indent=2, default=str))
    md = [f"# {name}", "", f"commit {record['commit']}, device {record['device']}, {record['date']}", ""]
    md += [f"- **{k}**: {v:.4g}" if isinstance(v, float) else f"- **{k}**: {v}" for k, v in figures.items()]
    if table:
        md += ["", _markdown_table(table)]
    md += ["", "Settings: `" + json.dumps(settings or {}, default=str) + "`", ""]
    (RESULTS / f"{name}.md").write_text("\n".join(md))
    print("\n".join(md))
    return record
