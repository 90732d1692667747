"""What the latent methods' latent spaces can represent: autoencoder reconstruction on the embedded benchmark.

    python benchmarks/bench_autoencoder.py [--checkpoint DIR] [--cases N] [--clips N]

A latent method cannot return what its autoencoder cannot reconstruct, so this is the ceiling of
VDM-MD (exposure part: 64x64 scenes, 10 sharp frames a case; target >= 32 dB, issue 16) and of VDD
(video part: 128x128 clips; VDD gains nothing unless reconstruction sits well above the blurry
input's PSNR, issue 17). Rows:

* ``autoencoder`` (``--checkpoint``, default the shipped ``src/deblurdiff/weights/autoencoder``; a
  training checkpoint ``.../checkpoints/step-N`` is read from its ``ema/`` weights): the
  stand-alone per-frame autoencoder (method ``autoencoder``) that both methods load frozen;
* ``vdm-md shipped`` and ``vdd shipped``: the autoencoders inside today's shipped checkpoints.

Figures: PSNR/SSIM (RGB, [0, 255], 8-bit output, no crop, as ``deblurdiff.metrics``) and LPIPS
(alex, where its weights are installed) of decode(encode(frame)) against the frame, beside the
blurry input's PSNR on the video part. The cases are generated in memory by the benchmark's code.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import report, timed  # noqa: E402

from deblurdiff.api import load_method  # noqa: E402
from deblurdiff.blur.benchmark import EXPOSURE_COUNT, VIDEO_COUNT, exposure_case, video_clip  # noqa: E402
from deblurdiff.errors import MissingWeightsError  # noqa: E402
from deblurdiff.methods import shipped_checkpoint  # noqa: E402
from deblurdiff.metrics import psnr, ssim  # noqa: E402
from deblurdiff.nn.vdd_unet import decode_clip, encode_clip  # noqa: E402
from deblurdiff.tensors import to_image, to_model  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
quantize = lambda x: (x.clamp(0, 1) * 255).round() / 255


def frames_of(cases: int, clips: int) -> dict:
    exposure = torch.cat([exposure_case(i)["frames"] for i in range(min(cases, EXPOSURE_COUNT))])
    videos = [video_clip(i) for i in range(min(clips, VIDEO_COUNT))]
    return {"exposure": quantize(exposure),
            "video": quantize(torch.cat([v["sharp"] for v in videos])),
            "video_blur": quantize(torch.cat([v["blur"] for v in videos]))}


def reconstructors(checkpoint: Path) -> dict:
    """name -> function mapping images (N, 3, H, W) in [0, 1] to their reconstructions."""
    out = {}
    if checkpoint.is_dir():
        model = load_method("autoencoder", checkpoint=checkpoint, device="cpu").eval()
        out["autoencoder"] = model.restore
    else:
        print(f"no autoencoder checkpoint at {checkpoint}: its row is skipped")
    vdm = load_method("vdm-md", device="cpu").eval()
    out["vdm-md shipped"] = lambda x: to_image(vdm.autoencoder.decode(vdm.autoencoder.encode(to_model(x))))
    vdd = load_method("vdd", device="cpu").eval()
    # frames as one-frame clips through VDD's own codec helpers (either autoencoder type)
    out["vdd shipped"] = lambda x: to_image(decode_clip(vdd.vae, encode_clip(vdd.vae, to_model(x)[:, None], 1.0), 1.0)[:, 0])
    return out


def lpips_scorer():
    try:
        from deblurdiff.metrics.lpips import LPIPS

        net = LPIPS("alex").eval()
        return lambda a, b: float(net(a, b).mean())
    except MissingWeightsError as exc:
        print(f"LPIPS skipped: {exc}")
        return None


@torch.no_grad()
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, default=shipped_checkpoint("autoencoder"))
    parser.add_argument("--cases", type=int, default=EXPOSURE_COUNT)
    parser.add_argument("--clips", type=int, default=VIDEO_COUNT)
    args = parser.parse_args()
    models = reconstructors(args.checkpoint)
    data = frames_of(args.cases, args.clips)
    lpips = lpips_scorer()
    figures = {"blurry_video_psnr": round(float(psnr(data["video_blur"], data["video"]).mean()), 3)}
    table = []
    for name, reconstruct in models.items():
        row = {"autoencoder": name}
        for part in ("exposure", "video"):
            frames = data[part]
            recon, seconds = timed(lambda: torch.cat([quantize(reconstruct(f)) for f in frames.split(20)]))
            row[f"{part}_psnr"] = round(float(psnr(recon, frames).mean()), 3)
            row[f"{part}_ssim"] = round(float(ssim(recon, frames).mean()), 4)
            if lpips is not None:
                row[f"{part}_lpips"] = round(lpips(recon, frames), 4)
            row[f"{part}_ms_per_frame"] = round(seconds / len(frames) * 1e3, 2)
        table.append(row)
        figures[f"{name.replace(' ', '_')}_exposure_psnr"] = row["exposure_psnr"]
        figures[f"{name.replace(' ', '_')}_video_psnr"] = row["video_psnr"]
    settings = {"checkpoint": str(args.checkpoint), "exposure_frames": len(data["exposure"]),
                "video_frames": len(data["video"]), "metric": "RGB [0,255], 8-bit, no border crop",
                "target": "exposure >= 32 dB (issue 16)"}
    report("autoencoder", figures, settings, table)


if __name__ == "__main__":
    main()
