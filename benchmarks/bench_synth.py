"""Speed of data synthesis: the two synth commands the README promises (< 1 min on 2 cores),
per-item generation cost of the training sources, and batched rendering against a per-time-step
baseline measured in the same run.

Wall-clock seconds are quoted for the commands because the README promise is in wall-clock
time; CPU seconds are given next to them because this machine is shared (load average shown).
"""
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import report  # noqa: E402

from deblurdiff.blur.scenes import exposure_times, random_scene, render_clip  # noqa: E402
from deblurdiff.blur.sources import TRAIN_PHOTOS, load_photo  # noqa: E402
from deblurdiff.data import build_dataset  # noqa: E402
from deblurdiff.train.config import DataConfig  # noqa: E402


def run_command(args: list[str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the child) of ``deblurdiff <args>`` (it runs torch on one thread)."""
    env = dict(os.environ)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "deblurdiff", *args], check=True, env=env, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def per_item(dataset, count: int = 20) -> tuple[float, float]:
    """(wall ms, CPU ms) per item in steady state (photos decoded once per process, as in a
    data-loader worker)."""
    for name in TRAIN_PHOTOS:
        load_photo(name)
    dataset[0]
    wall, cpu = time.perf_counter(), time.process_time()
    for index in range(1, count + 1):
        dataset[index]
    return (time.perf_counter() - wall) / count * 1000, (time.process_time() - cpu) / count * 1000


def main() -> None:
    torch.set_num_threads(1)   # one data-loader worker's view
    rows = []
    for source, mode in (("scenes", "video"), ("scenes", "image"), ("scenes", "exposure"),
                         ("shake", "image"), ("shake", "video")):
        cfg = DataConfig(source=source, mode=mode, size=64, frames=4, subframes=10, length=100)
        wall_ms, cpu_ms = per_item(build_dataset(cfg))
        rows.append({"source": source, "mode": mode, "size": 64, "frames": 4 if mode == "video" else 1,
                     "subframes": 10, "wall_ms_per_item": round(wall_ms, 1), "cpu_ms_per_item": round(cpu_ms, 1)})

    # Batched rendering (all sub-frames in one grid_sample per layer) vs one call per time step.
    scenes = [random_scene(torch.Generator().manual_seed(s), 64, 64, duration=4.0) for s in range(10)]
    sub_times, sharp_times = exposure_times(4, 10)
    times = torch.cat([sub_times.flatten(), sharp_times])
    start = time.process_time()
    for scene in scenes:
        render_clip(scene, 4, 10)
    batched = (time.process_time() - start) / len(scenes)
    start = time.process_time()
    for scene in scenes:
        torch.cat([scene.render(t[None]) for t in times])
    looped = (time.process_time() - start) / len(scenes)

    # The thread choice of `synth`: CPU seconds to generate the benchmark's video clips on one
    # thread vs two (many small ops: a second thread mostly spins).
    from deblurdiff.blur.benchmark import video_clip
    cpu = {}
    for threads in (1, 2):
        torch.set_num_threads(threads)
        start = time.process_time()
        for index in range(4):
            video_clip(index)
        cpu[threads] = time.process_time() - start
    with tempfile.TemporaryDirectory() as tmp:
        scenes_wall, scenes_cpu = run_command(["synth", "--scenes", "8", "--out", f"{tmp}/scenes"])
        bench_wall, bench_cpu = run_command(["synth", "--benchmark", "--out", f"{tmp}/benchmark"])
        files = sum(1 for _ in Path(tmp, "benchmark").rglob("*.png"))

    figures = {
        "synth --scenes 8 (8 x 16 frames, 128x128): wall s": round(scenes_wall, 1),
        "synth --scenes 8: CPU s": round(scenes_cpu, 1),
        "synth --benchmark: wall s": round(bench_wall, 1),
        "synth --benchmark: CPU s": round(bench_cpu, 1),
        "benchmark PNG files": files,
        "scenes 64x64 4-frame video item: CPU ms": rows[0]["cpu_ms_per_item"],
        "batched render speed-up vs per-time-step loop (44 renders)": round(looped / batched, 2),
        "CPU time of 4 benchmark clips, 2 threads / 1 thread": round(cpu[2] / cpu[1], 2),
        "load average (1 min) at end": round(os.getloadavg()[0], 2),
    }
    report("synth", figures, settings={"threads_items": 1, "threads_commands": 1,
                                       "cpu_count": os.cpu_count()}, table=rows)


if __name__ == "__main__":
    main()
