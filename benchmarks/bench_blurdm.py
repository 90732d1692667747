"""BlurDM vs its backbone alone, and vs the plain-DDPM prior ablation, on the embedded benchmark.

Quality: PSNR / SSIM (metrics.image, the field's convention) on the ``image`` part (24 camera-shake
pairs, 256x256) for NAFNet alone, NAFNet + BlurDM, NAFNet + DDPM prior, MIMO-UNet alone and
MIMO-UNet + BlurDM, using the shipped tiny checkpoints (``src/deblurdiff/weights/...``) or
checkpoints given with ``--weights NAME=DIR``. BlurDM is stochastic: its rows are the mean over
``--seeds`` noise draws (the spread is printed too).
Overhead of BlurDM over the backbone: parameters used at inference (blur encoder + estimators +
PFMs; the sharp encoder is training-only), MACs at 256x256 (torch.utils.flop_counter, MACs =
FLOPs / 2), for both the tiny and the paper-width models, and time per image as a ratio against
the backbone alone measured in the same run (CPU: ratios only).
Use of the prior (``prior_*`` figures): each BlurDM's backbone run on the same pairs with the
sampled prior (as shipped), the sharp encoder's latent of the true pair (the oracle the diffusion is
trained to reach: what the prior could carry at best), no prior (every fusion the identity) and the
sampled prior of another image, the oracle of another image and the oracle latents' mean; plus the
spread of the oracle latent across images relative to its RMS. A backbone that scores the same under
all of them ignores its prior, whatever BlurDM adds; one that scores the same with its own oracle,
another image's and their mean, but lower with none, uses the prior as a constant bias only.

    python benchmarks/bench_blurdm.py [--data DIR] [--seeds 3]

``--data`` defaults to ``runs/benchmark`` and is generated there (``deblurdiff synth --benchmark``)
when missing.
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from harness import report, timed  # noqa: E402

from deblurdiff.data.benchmark import read_image_part  # noqa: E402
from deblurdiff.methods import shipped_checkpoint  # noqa: E402
from deblurdiff.methods.blurdm import BlurDM  # noqa: E402
from deblurdiff.methods.regression import MIMOUNetDeblur, NAFNetDeblur  # noqa: E402
from deblurdiff.metrics.image import psnr, ssim  # noqa: E402

MODELS = {  # row name -> (class, shipped checkpoint folder, backbone row it is compared with)
    "nafnet": (NAFNetDeblur, shipped_checkpoint("nafnet"), None),
    "nafnet+blurdm": (BlurDM, shipped_checkpoint("blurdm"), "nafnet"),
    "nafnet+ddpm-prior": (BlurDM, shipped_checkpoint("blurdm") / "ddpm-prior", "nafnet"),
    "mimo-unet": (MIMOUNetDeblur, shipped_checkpoint("mimo-unet"), None),
    "mimo-unet+blurdm": (BlurDM, shipped_checkpoint("blurdm-mimo-unet"), "mimo-unet"),
}


def inference_params(model) -> int:
    """Parameters a deblurring pass uses (BlurDM's sharp encoder is only for training)."""
    return sum(p.numel() for n, p in model.named_parameters() if not n.startswith("sharp_encoder."))


def macs(model, size: int = 256) -> float:
    x = torch.rand(1, 3, size, size)
    with FlopCounterMode(display=False) as counter:
        model.restore(x, generator=torch.Generator().manual_seed(0)) if isinstance(model, BlurDM) else model.restore(x)
    return counter.get_total_flops() / 2


def restore_all(model, blur, seed, batch=4):
    gen = torch.Generator().manual_seed(seed)
    outs = [model.restore(blur[i:i + batch], generator=gen) for i in range(0, len(blur), batch)]
    return torch.cat(outs)


@torch.no_grad()
def prior_use(model: BlurDM, blur: torch.Tensor, sharp: torch.Tensor, seed: int = 0, batch: int = 4) -> dict:
    """PSNR of the backbone under the priors of the module docstring."""
    from deblurdiff.methods.blurdm import final_output
    from deblurdiff.tensors import to_image, to_model

    vr = model.config.value_range
    b, s = to_model(blur, vr), to_model(sharp, vr)
    gen = torch.Generator().manual_seed(seed)
    sampled = torch.cat([model.prior(b[i:i + batch], generator=gen) for i in range(0, len(b), batch)])
    oracle = torch.cat([model.sharp_encoder(b[i:i + batch], s[i:i + batch]) for i in range(0, len(b), batch)])
    priors = {"sampled": sampled, "oracle": oracle, "none": None, "other image": sampled.roll(1, 0),
              "oracle of another image": oracle.roll(1, 0), "mean oracle": oracle.mean(0, keepdim=True).expand_as(oracle)}
    out = {}
    for name, z in priors.items():
        restored = torch.cat([to_image(final_output(model.backbone(b[i:i + batch], None if z is None else z[i:i + batch])), vr)
                              for i in range(0, len(b), batch)])
        out[name] = float(psnr(restored, sharp).mean())
    out["oracle_spread"] = float(oracle.std(0).mean() / oracle.square().mean().sqrt())
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(HERE.parent / "runs" / "benchmark"))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--weights", action="append", default=[], metavar="NAME=DIR")
    parser.add_argument("--timing-repeats", type=int, default=3)
    parser.add_argument("--limit", type=int, default=None, help="score only the first N pairs (quick checks)")
    args = parser.parse_args(argv)
    torch.manual_seed(0)

    data = Path(args.data)
    if not (data / "manifest.json").is_file():
        subprocess.run([sys.executable, "-m", "deblurdiff", "synth", "--benchmark", "--out", str(data)], check=True)
    part = read_image_part(data)
    blur, sharp = part["blur"][:args.limit], part["sharp"][:args.limit]

    paths = {name: spec[1] for name, spec in MODELS.items()}
    for item in args.weights:
        name, _, folder = item.partition("=")
        paths[name] = Path(folder)

    table, figures, loaded = [], {}, {}
    base_psnr = float(psnr(blur, sharp).mean())
    table.append({"model": "blurred input", "PSNR": base_psnr, "SSIM": float(ssim(blur, sharp).mean())})
    for name, (cls, _, _) in MODELS.items():
        folder = paths[name]
        if not (folder / "config.json").is_file():
            print(f"skipping {name}: no checkpoint in {folder}")
            continue
        model = cls.from_pretrained(folder).eval()
        loaded[name] = model
        seeds = range(args.seeds) if isinstance(model, BlurDM) else range(1)
        scores = []
        for seed in seeds:
            out = restore_all(model, blur, seed)
            scores.append((float(psnr(out, sharp).mean()), float(ssim(out, sharp).mean())))
        p = statistics.mean(s[0] for s in scores)
        row = {"model": name, "PSNR": p, "SSIM": statistics.mean(s[1] for s in scores),
               "PSNR spread (seeds)": max(s[0] for s in scores) - min(s[0] for s in scores),
               "params (inference)": inference_params(model), "GMACs@256": macs(model) / 1e9}
        if isinstance(model, BlurDM):
            use = prior_use(model, blur, sharp)
            for key, value in use.items():
                figures[f"prior_{key.replace(' ', '_')}_{name}"] = value
                if key != "oracle_spread":
                    row[f"PSNR, {key} prior"] = value
        table.append(row)
        figures[f"psnr_{name}"] = p

    # gains and overheads against the backbone alone
    for name, (_, _, base) in MODELS.items():
        if base is None or name not in loaded or base not in loaded:
            continue
        row = next(r for r in table if r["model"] == name)
        base_row = next(r for r in table if r["model"] == base)
        backbone_size = sum(p.numel() for n, p in loaded[name].backbone.named_parameters() if ".fusions." not in f".{n}")
        if backbone_size != sum(p.numel() for p in loaded[base].parameters()):
            row["note"] = f"its backbone is not the shipped {base}'s: not compared"
            continue
        figures[f"gain_db_{name}"] = row["PSNR"] - base_row["PSNR"]
        figures[f"extra_params_{name}"] = row["params (inference)"] - base_row["params (inference)"]
        figures[f"extra_gmacs_{name}"] = row["GMACs@256"] - base_row["GMACs@256"]
        x = blur[:1]
        model, base_model = loaded[name], loaded[base]
        restore_all(model, x, 0), restore_all(base_model, x, 0)  # warm-up
        _, t_model = timed(restore_all, model, x, 0, repeats=args.timing_repeats)
        _, t_base = timed(restore_all, base_model, x, 0, repeats=args.timing_repeats)
        figures[f"time_ratio_{name}"] = t_model / t_base
        row["time / backbone"] = t_model / t_base

    # paper-width overhead (untrained weights: sizes and MACs only)
    for backbone in ("mimo-unet", "nafnet"):
        alone = (MIMOUNetDeblur() if backbone == "mimo-unet" else NAFNetDeblur()).eval()
        fused = BlurDM(backbone=backbone).eval()
        figures[f"paper_extra_params_M_{backbone}"] = (inference_params(fused) - inference_params(alone)) / 1e6
        figures[f"paper_extra_params_M_{backbone}_incl_sharp_encoder"] = \
            (sum(p.numel() for p in fused.parameters()) - inference_params(alone)) / 1e6
        figures[f"paper_extra_gmacs_{backbone}"] = (macs(fused) - macs(alone)) / 1e9
        figures[f"paper_gmacs_{backbone}"] = macs(alone) / 1e9

    settings = {"data": str(data), "pairs": len(blur), "size": list(blur.shape[-2:]), "seeds": args.seeds,
                "checkpoints": {k: str(v) for k, v in paths.items()}, "threads": torch.get_num_threads()}
    report("blurdm", figures, settings, table)


if __name__ == "__main__":
    main()
