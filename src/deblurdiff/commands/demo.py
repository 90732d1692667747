"""``deblurdiff demo``: the main job on the embedded data.

Synthesises the embedded benchmark, runs every method with its shipped checkpoint on a few
cases of each part, and writes ``OUT/index.html``: inputs, each method's result and the ground
truth side by side (GIFs for clips and exposure frames), a metrics table per part, and an
uncertainty map (per-pixel std over samples) for each diffusion method.
"""
from __future__ import annotations

import html
import sys
import time
from pathlib import Path

import torch

HELP = "synthesise the embedded benchmark, run every method, write an HTML report"

IMAGE_METHODS = [("identity", None), ("blind", None), ("nafnet", None), ("mimo-unet", None),
                 ("blurdm", "nafnet"), ("blurdm", "mimo-unet")]
VIDEO_METHODS = [("identity", None), ("divd", None), ("vdd", None)]
EXPOSURE_METHODS = [("vdm-md", None)]
#: the most sampling steps a method gets in the demo (its budget is a few minutes on 2 cores); a
#: checkpoint that ships with fewer (VDD and DIVD sample in one step) runs its own. BlurDM's
#: 5-step chain is fixed by training and the regressors take no steps.
DEMO_STEPS = {"divd": 10, "vdd": 10, "vdm-md": 20}
#: methods whose uncertainty map the demo draws (each costs `samples` more runs; these are cheap)
UNCERTAINTY = {"blurdm", "vdm-md"}


def add_arguments(p):
    p.add_argument("--out", default="demo-output", help="output folder (default: demo-output)")
    p.add_argument("--images", type=int, default=2, help="image cases shown")
    p.add_argument("--clips", type=int, default=1, help="video clips shown")
    p.add_argument("--exposures", type=int, default=2, help="exposure cases shown")
    p.add_argument("--frames", type=int, default=4, help="frames per clip")
    p.add_argument("--steps", type=int, default=None, help="sampling steps for diffusion methods (default: each method's)")
    p.add_argument("--samples", type=int, default=2, help="draws for the uncertainty maps")
    p.add_argument("--quick", action="store_true", help="one case per part and few steps (for tests)")
    p.add_argument("--quiet", action="store_true")


def _label(name, backbone):
    return f"{name} ({backbone})" if backbone else name


class Demo:
    def __init__(self, out: Path, args):
        from ..metrics.suite import Scorer

        self.out, self.args = out, args
        self.assets = out / "assets"
        self.scorer_metrics = ["psnr", "ssim", "lpips"]
        self.lpips_note = Scorer(self.scorer_metrics).unavailable.get("lpips")
        self.notes: list[str] = []

    def say(self, text):
        if not self.args.quiet:
            print(text, file=sys.stderr, flush=True)

    def load(self, name, backbone):
        from ..api import load
        from ..errors import DeblurDiffError

        try:
            return load(name, device="auto", backbone=backbone)
        except DeblurDiffError as exc:
            self.notes.append(f"{_label(name, backbone)}: not shown ({exc})")
            return None

    def save(self, rel: str, tensor) -> str:
        from ..data.io import write_image
        from ..report import write_gif

        rel += ".gif" if tensor.dim() == 4 else ".png"
        path = self.assets / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        (write_gif if tensor.dim() == 4 else write_image)(path, tensor)
        return f"assets/{rel}"

    def run_method(self, model, x, **kw):
        if model.name in DEMO_STEPS:
            config = model.model.config  # VDD names its default "steps", DIVD and VDM-MD "default_steps"
            shipped = config.get("default_steps", config.get("steps")) or DEMO_STEPS[model.name]
            kw.setdefault("steps", self.args.steps or min(shipped, DEMO_STEPS[model.name]))
        return model.deblur(x, seed=0, progress=False, **kw)

    def uncertainty(self, model, x, label, case_rel):
        """Per-pixel std over samples -> a gray map scaled to its maximum."""
        _, std = self.run_method(model, x, samples=self.args.samples, return_std=True)
        while std.dim() > 3:
            std = std[std.shape[0] // 2]
        gray = std.mean(0, keepdim=True)
        return self.save(f"{case_rel}/{label}-std", (gray / gray.max().clamp_min(1e-8)).expand(3, -1, -1))

    def part(self, title, methods, cases, run_case, score_case):
        """Run every available method on every case; return (heading, html)."""
        from ..report import case_strip, metrics_table

        rows, strips = [], {i: [] for i in range(len(cases))}
        for name, backbone in methods:
            label = _label(name, backbone)
            model = self.load(name, backbone)
            if model is None:
                continue
            self.say(f"  {title}: {label} ...")
            scores, seconds, frames = [], 0.0, 0
            for i, case in enumerate(cases):
                result = run_case(model, case)
                seconds += model.last_run["seconds"]
                frames += model.last_run["input_shape"][0] * (model.last_run["input_shape"][1] if model.kind == "video" else 1)
                scores.append(score_case(result, case))
                strips[i].append((f"{label} {scores[-1].get('psnr', 0):.2f} dB", self.save(f"{title}/{i}/{label}", result)))
                if name in UNCERTAINTY and i == 0 and self.args.samples > 1:
                    strips[i].append((f"{label} uncertainty", self.uncertainty(model, case["blur"], label, f"{title}/{i}")))
            row = {"method": label}
            for key in scores[0]:
                row[key] = sum(s[key] for s in scores) / len(scores)
            row["s/frame"] = seconds / max(frames, 1)
            self.say(f"    {seconds:.1f} s")
            rows.append(row)
        html = [metrics_table(rows, list(dict.fromkeys(k for r in rows for k in r)))]
        for i, case in enumerate(cases):
            images = [("blurred input", self.save(f"{title}/{i}/input", case["blur"]))] + strips[i]
            images.append(("ground truth", self.save(f"{title}/{i}/truth", case["truth"])))
            html.append(case_strip(f"{title} case {i}", images))
        return title, "".join(html)

    # -- the three parts of the embedded benchmark ---------------------------------------------
    def image_part(self, bench: Path, n: int):
        from ..data.benchmark import BenchmarkDataset
        from ..metrics.suite import Scorer

        data = BenchmarkDataset(bench, "image")
        cases = [{"blur": data[i]["blur"], "truth": data[i]["sharp"]} for i in range(n)]

        def score(result, case):
            row = Scorer(self.scorer_metrics).add(result[None], case["truth"][None])[0]
            return {k: v for k, v in row.items() if k != "name"}

        return self.part("images", IMAGE_METHODS, cases, lambda m, c: self.run_method(m, c["blur"]), score)

    def video_part(self, bench: Path, n: int, frames: int):
        from ..data.benchmark import BenchmarkDataset
        from ..metrics.consistency import temporal_error
        from ..metrics.suite import Scorer

        data = BenchmarkDataset(bench, "video")
        cases = [{"blur": data[i]["blur"][:frames], "truth": data[i]["sharp"][:frames]} for i in range(n)]

        def score(result, case):
            rows = Scorer(self.scorer_metrics).add(result, case["truth"])
            values = {k: sum(r[k] for r in rows) / len(rows) for k in rows[0] if k != "name"}
            values["temporal error"] = float(temporal_error(result[None], case["truth"][None])[0])
            return values

        return self.part("videos", VIDEO_METHODS, cases, lambda m, c: self.run_method(m, c["blur"]), score)

    def exposure_part(self, bench: Path, n: int):
        from ..data.benchmark import BenchmarkDataset
        from ..metrics.consistency import best_order, reblur_psnr

        data = BenchmarkDataset(bench, "exposure")
        cases = [{"blur": data[i]["blur"], "truth": data[i]["frames"]} for i in range(n)]

        def score(result, case):
            best = best_order(result[None], case["truth"][None])
            return {"psnr": float(best["psnr"][0]), "ssim": float(best["ssim"][0]),
                    "re-blur psnr": float(reblur_psnr(result[None], case["blur"][None])[0]),
                    "reversed": float(best["reversed"][0])}

        return self.part("exposures", EXPOSURE_METHODS, cases, lambda m, c: self.run_method(m, c["blur"]), score)


def run(args) -> int:
    from ..atomic import atomic_dir
    from ..blur.benchmark import write_benchmark
    from ..report import write_page

    out = Path(args.out)
    if args.quick:
        args.images = args.clips = args.exposures = 1
        args.frames, args.samples = min(args.frames, 4), 2
        args.steps = args.steps or 2
    start = time.perf_counter()
    bench = out / "benchmark"
    if not (bench / "manifest.json").is_file():
        print(f"synthesising the embedded benchmark into {bench} ...", file=sys.stderr, flush=True)
        write_benchmark(bench)
    with atomic_dir(out / "assets") as assets:
        demo = Demo(out, args)
        demo.assets = assets
        sections = [("The embedded benchmark", "<p>Camera shake over photos (images), procedural moving scenes "
                     "(videos), and single exposures with their 10 sharp frames. "
                     "<a href='benchmark/preview.png'>Preview of every case</a>.</p>")]
        demo.say("running methods ...")
        sections.append(demo.image_part(bench, args.images))
        sections.append(demo.video_part(bench, args.clips, args.frames))
        sections.append(demo.exposure_part(bench, args.exposures))
        notes = demo.notes + ([f"LPIPS: {demo.lpips_note}"] if demo.lpips_note else [])
        notes.append("PSNR/SSIM: RGB, [0, 255], no border crop (GoPro convention). Exposure cases: middle frame, "
                     "better of forward and reversed order; re-blur PSNR compares the mean of the frames with the input.")
        sections.append(("Notes", "<ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in notes) + "</ul>"))
    seconds = time.perf_counter() - start
    page = write_page(out / "index.html", "deblurdiff demo", f"every method with its shipped checkpoint; "
                      f"{seconds:.0f} s on {torch.get_num_threads()} CPU thread(s)" if not torch.cuda.is_available()
                      else f"{seconds:.0f} s on {torch.cuda.get_device_name(0)}", sections)
    print(f"demo written to {page.resolve()} ({seconds:.0f} s)")
    return 0
