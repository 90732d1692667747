"""Import official checkpoints (NAFNet, MIMO-UNet, BlurDM, VDM-MD) into deblurdiff folders.

``import_weights(kind, files, out)`` reads the files the official code saves, *without executing
code* (``torch.load(weights_only=True)``: a pickle that wants to import or call anything is
refused; or safetensors), maps the parameter names onto deblurdiff's modules, infers the
architecture from the tensors (or takes a named official config), checks that every tensor is
there with its shape, and writes ``config.json`` + safetensors with the method's
``save_pretrained`` into ``out`` atomically. ``--checkpoint out``, ``deblurdiff.load``, ``eval``,
tiled and windowed inference and ``train.init`` then take the folder like any other.

What each kind accepts (the containers are those the official code writes):

``nafnet``     BasicSR ``.pth`` ``{"params": state_dict}`` (megvii-research/NAFNet,
               ``NAFNet-GoPro-width32.pth`` / ``-width64.pth``; ``params_ema`` or a bare state dict
               too). Runs as the official test does (options/test/GoPro/NAFNet-width*.yml): [0, 1]
               values, ``ending(x) + input`` residual, zero padding to ``2 ** levels``
               (``check_image_size`` in NAFNet_arch.py), NAFNetLocal's local average pooling
               (local_arch.py; ``tlc=False`` for the plain NAFNet).
``mimo-unet``  ``.pkl`` / ``.pth`` ``{"model": state_dict, ...}`` (chosj95/MIMO-UNet train.py saves
               model, optimizer, scheduler, epoch; eval.py loads ``state_dict["model"]``).
               MIMO-UNet (``num_res`` 8) or MIMO-UNet+ (20), inferred from the blocks. [0, 1]
               values, the three outputs are residuals on the (downscaled) input, the last one
               clamped (eval.py). Official eval does not pad (GoPro sizes divide by 4); we
               replicate-pad to 8 and crop back, which is a no-op on such sizes.
``blurdm``     the files of Jin-Ting-He/BlurDM's scripts for the MIMO-UNet backbone: one stage-3
               ``.pth`` with ``model_state`` (``MIMOUNetPlusPrior``: MIMO-UNet+ whose ``Decoder.i.kv``
               is the prior fusion) and ``model_dm_state`` (``LatentExposureDiffusion``:
               ``condition_encoder`` = LE_arch, ``lcr_model`` / ``noise_model`` = the blur-residual
               and noise estimators), or the two in separate files (``--model_path`` /
               ``--model_dm_path``; ``model`` and bare state dicts too). [0, 1] values
               (``ZeroToOne=True``). The sharp encoder (training-only, stage 1/2 target) is not in
               the inference files: it is initialised as a copy of the blur encoder.
``vdm-md``     the VQGAN of zhan994/temporal-motion-deblur (``pretrained/<dataset>/vqgan.ckpt``, a
               Lightning ``{"state_dict": ...}`` of ``VQModelNoQuant``: taming Encoder/Decoder,
               ``quant_conv``, ``post_quant_conv``; the codebook and the training loss's weights are
               dropped since the quantiser is unused), with the dataset's ``latent_std`` (BAIR
               1.118574, CLEVRER 0.21848887) and DPS scale. The STDiT2 prior does *not* import: the
               in-repo ``VideoDiT`` has separate spatial and temporal blocks with their own MLPs
               and adaLN layers, where an STDiT2 block shares one MLP, modulates through
               ``scale_shift_table`` + a global ``t_block`` and adds size/fps embedders; such a file
               is refused naming its first such tensor. The folder's prior is freshly initialised
               (a warm start for the ``prior`` training stage on the official latent space).
"""
from __future__ import annotations

import json
import pickle
import re
import zipfile
from pathlib import Path

import torch

from .atomic import atomic_dir
from .errors import CheckpointError, ConfigError, InputError

KINDS = ("nafnet", "mimo-unet", "blurdm", "vdm-md")
METHOD_OF_KIND = {"nafnet": "nafnet", "mimo-unet": "mimo-unet", "blurdm": "blurdm", "vdm-md": "vdm-md"}

_NAFNET_OFFICIAL = {"value_range": "unit", "pad_mode": "zeros", "tlc_base_size": 384}
_BLURDM_OFFICIAL = {"value_range": "unit", "fusion": "official", "latent_norm": False, "estimator_activation": True,
                    "latent_width": 64, "latent_dim": 256, "latent_resblocks": 6, "estimator_depth": 5,
                    "timesteps": 5, "beta_start": 0.0, "beta_end": 0.02, "a_start": 1.0, "a_end": 2.0,
                    "prior": "blur", "backbone": "mimo-unet"}
_VDMMD_OFFICIAL = {"frames": 10, "image_size": 64, "channels": 3, "ae_ch": 128, "ae_ch_mult": [1, 2, 4],
                   "ae_num_res_blocks": 2, "ae_norm_groups": 32, "ae_mid_attention": True, "latent_channels": 3,
                   "hidden_size": 1152, "depth": 28, "num_heads": 16, "patch_size": [1, 2, 2],
                   "num_train_timesteps": 1000, "default_steps": 1000}

#: The official architectures, with the pre/post-processing of the official test code (see the
#: module docstring for where each setting comes from). ``--config NAME`` picks one.
OFFICIAL_CONFIGS = {
    "nafnet-gopro-width32": ("nafnet", {"width": 32, "enc_blk_nums": [1, 1, 1, 28], "middle_blk_num": 1,
                                        "dec_blk_nums": [1, 1, 1, 1], "pad_multiple": 16, **_NAFNET_OFFICIAL}),
    "nafnet-gopro-width64": ("nafnet", {"width": 64, "enc_blk_nums": [1, 1, 1, 28], "middle_blk_num": 1,
                                        "dec_blk_nums": [1, 1, 1, 1], "pad_multiple": 16, **_NAFNET_OFFICIAL}),
    "mimo-unet": ("mimo-unet", {"base_channel": 32, "num_res": 8, "value_range": "unit"}),
    "mimo-unet-plus": ("mimo-unet", {"base_channel": 32, "num_res": 20, "value_range": "unit"}),
    "blurdm-mimo-unet-plus": ("blurdm", {**_BLURDM_OFFICIAL,
                                         "backbone_options": {"base_channel": 32, "num_res": 20}}),
    "blurdm-mimo-unet": ("blurdm", {**_BLURDM_OFFICIAL, "backbone_options": {"base_channel": 32, "num_res": 8}}),
    "vdm-md-bair": ("vdm-md", {**_VDMMD_OFFICIAL, "latent_scale": 1.118574, "zeta": 1.5}),
    "vdm-md-clevrer": ("vdm-md", {**_VDMMD_OFFICIAL, "latent_scale": 0.21848887, "zeta": 0.8}),
}

_CONTAINER_KEYS = ("params", "params_ema", "state_dict", "model_state", "model", "ema", "module")
_HF_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


# ----------------------------------------------------------------------------- reading, safely
def read_weights(path) -> dict:
    """The object stored in ``path`` (nested dicts of tensors), never executing code from it."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file; pass the official checkpoint file")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file
        try:
            return load_file(str(path))
        except (SafetensorError, OSError, ValueError) as exc:
            raise InputError(f"{path} is not a readable safetensors file ({exc})") from None
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        globals_ = re.findall(r"GLOBAL ([\w.]+)", str(exc)) or re.findall(r"Unsupported global: ([^\s]+)", str(exc))
        if not globals_:  # a damaged or foreign file, not a refused one
            raise InputError(f"{path} is not a readable PyTorch or safetensors file (the pickle inside is damaged); "
                             "pass the .pth/.pkl/.ckpt the official code saved") from None
        detail = f"it needs {globals_[0]}"
        raise InputError(f"{path} refused: it is a pickle that would import or call code to load ({detail}). "
                         "deblurdiff reads weights with torch.load(weights_only=True) and never runs code from a "
                         "file; re-save just the tensors (torch.save(state_dict) or safetensors) from a trusted "
                         "environment") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError) as exc:
        raise InputError(f"{path} is not a readable PyTorch or safetensors file ({str(exc).splitlines()[0]}); "
                         "pass the .pth/.pkl/.ckpt the official code saved") from None


def _tensors(obj, where: str) -> dict:
    """A flat ``{name: tensor}`` with any DataParallel ``module.`` prefix removed."""
    if not isinstance(obj, dict):
        raise InputError(f"{where}: expected a dict of tensors, found {type(obj).__name__}")
    out = {}
    for key, value in obj.items():
        if not isinstance(value, torch.Tensor):
            raise InputError(f"{where}: entry {key!r} is a {type(value).__name__}, not a tensor; "
                             "this is not a state dict of the expected layout")
        out[key[7:] if key.startswith("module.") else key] = value
    return out


def state_dict_of(obj, where: str, prefer=_CONTAINER_KEYS) -> dict:
    """Unwrap the official containers (BasicSR ``params``, MIMO-UNet ``model``, Lightning ``state_dict``...)."""
    if isinstance(obj, dict) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        return _tensors(obj, where)
    if isinstance(obj, dict):
        for key in prefer:
            if key in obj:
                return state_dict_of(obj[key], f"{where}[{key!r}]", prefer)
    keys = list(obj)[:8] if isinstance(obj, dict) else type(obj).__name__
    raise InputError(f"{where}: no state dict found (top-level entries: {keys}); expected one of "
                     f"{', '.join(prefer)} or a bare state dict")


# ----------------------------------------------------------------------------- name mappings
def _count(keys, pattern: str) -> int:
    found = {int(m.group(1)) for k in keys if (m := re.match(pattern, k))}
    return max(found) + 1 if found else 0


def infer_nafnet(sd: dict) -> dict:
    if "intro.weight" not in sd:
        raise InputError("not a NAFNet state dict: tensor 'intro.weight' is missing")
    levels = _count(sd, r"downs\.(\d+)\.weight")
    return {"width": int(sd["intro.weight"].shape[0]),
            "enc_blk_nums": [_count(sd, rf"encoders\.{i}\.(\d+)\.") for i in range(levels)],
            "middle_blk_num": _count(sd, r"middle_blks\.(\d+)\."),
            "dec_blk_nums": [_count(sd, rf"decoders\.{i}\.(\d+)\.") for i in range(_count(sd, r"ups\.(\d+)\."))],
            "pad_multiple": 2 ** levels, **_NAFNET_OFFICIAL}


def infer_mimo(sd: dict, prefix: str = "") -> dict:
    key = f"{prefix}feat_extract.0.main.0.weight"
    if key not in sd:
        raise InputError(f"not a MIMO-UNet state dict: tensor {key!r} is missing")
    return {"base_channel": int(sd[key].shape[0]), "num_res": _count(sd, rf"{prefix}Encoder\.0\.layers\.(\d+)\.")}


def map_identity(sd: dict, prefix: str = "") -> dict:
    """ours -> (official name, tensor) for networks whose names already match."""
    return {prefix + k: (k, v) for k, v in sd.items()}


def map_latent_encoder(sd: dict, src: str, dst: str) -> tuple[dict, int]:
    """LE_arch (``E.0`` conv, ``E.2..`` ResBlocks, then 3 convs, ``mlp``) -> ``LatentEncoder``."""
    blocks = _count(sd, rf"{re.escape(src)}E\.(\d+)\.body\.")
    blocks = max(0, blocks - 2) if blocks else 0
    names = {f"{src}E.0.": f"{dst}head.0."}
    for i in range(blocks):
        names[f"{src}E.{2 + i}.body."] = f"{dst}body.{i}.body."
    for j, tail in enumerate((0, 2, 4)):
        names[f"{src}E.{2 + blocks + 2 * j}."] = f"{dst}tail.{tail}."
    names[f"{src}mlp."] = f"{dst}mlp."
    out = {}
    for k, v in sd.items():
        for a, b in names.items():
            if k.startswith(a):
                out[b + k[len(a):]] = (k, v)
    return out, blocks


def map_estimator(sd: dict, src: str, dst: str) -> dict:
    """``denoise.resmlp`` (Linear, LeakyReLU, ResMLP x depth) -> ``LatentEstimator.mlp``."""
    out = {}
    for k, v in sd.items():
        if not k.startswith(src):
            continue
        rest = k[len(src):]
        if m := re.match(r"resmlp\.0\.(weight|bias)$", rest):
            out[f"{dst}mlp.0.{m.group(1)}"] = (k, v)
        elif m := re.match(r"resmlp\.(\d+)\.resmlp\.0\.(weight|bias)$", rest):
            out[f"{dst}mlp.{2 * (int(m.group(1)) - 1)}.{m.group(2)}"] = (k, v)
    return out


_TAMING_ATTN = {"norm": "group_norm", "q": "to_q", "k": "to_k", "v": "to_v", "proj_out": "to_out.0"}


def _taming_resnet(rest: str) -> str:
    return rest.replace("nin_shortcut", "conv_shortcut")


def map_vqgan(sd: dict, levels: int) -> dict:
    """taming-transformers Encoder/Decoder names -> diffusers ``Encoder``/``Decoder`` (FrameAutoencoder)."""
    out = {}
    for k, v in sd.items():
        new = None
        if k.startswith(("quant_conv.", "post_quant_conv.")):
            new = k
        elif m := re.match(r"(encoder|decoder)\.(.*)$", k):
            part, rest = m.groups()
            if rest.startswith(("conv_in.", "conv_out.")):
                new = f"{part}.{rest}"
            elif rest.startswith("norm_out."):
                new = f"{part}.conv_norm_out.{rest[len('norm_out.'):]}"
            elif mm := re.match(r"mid\.block_(\d)\.(.*)$", rest):
                new = f"{part}.mid_block.resnets.{int(mm.group(1)) - 1}.{_taming_resnet(mm.group(2))}"
            elif mm := re.match(r"mid\.attn_1\.(norm|q|k|v|proj_out)\.(weight|bias)$", rest):
                new = f"{part}.mid_block.attentions.0.{_TAMING_ATTN[mm.group(1)]}.{mm.group(2)}"
                if v.dim() == 4:  # 1x1 conv -> linear
                    v = v[:, :, 0, 0]
            elif mm := re.match(r"down\.(\d+)\.block\.(\d+)\.(.*)$", rest):
                new = f"{part}.down_blocks.{mm.group(1)}.resnets.{mm.group(2)}.{_taming_resnet(mm.group(3))}"
            elif mm := re.match(r"down\.(\d+)\.downsample\.conv\.(.*)$", rest):
                new = f"{part}.down_blocks.{mm.group(1)}.downsamplers.0.conv.{mm.group(2)}"
            elif mm := re.match(r"up\.(\d+)\.block\.(\d+)\.(.*)$", rest):
                new = f"{part}.up_blocks.{levels - 1 - int(mm.group(1))}.resnets.{mm.group(2)}." \
                      f"{_taming_resnet(mm.group(3))}"
            elif mm := re.match(r"up\.(\d+)\.upsample\.conv\.(.*)$", rest):
                new = f"{part}.up_blocks.{levels - 1 - int(mm.group(1))}.upsamplers.0.conv.{mm.group(2)}"
        if new is not None:
            out[f"autoencoder.{new}"] = (k, v)
    return out


def infer_vqgan(sd: dict) -> dict:
    key = "encoder.conv_in.weight"
    if key not in sd:
        raise InputError(f"not a VQGAN (taming) state dict: tensor {key!r} is missing")
    attn = next((k for k in sd if re.match(r"(encoder\.down|decoder\.up)\.\d+\.attn\.", k)), None)
    if attn:
        raise InputError(f"tensor {attn!r}: attention at a resolution level (attn_resolutions not empty) is not "
                         "supported by deblurdiff's FrameAutoencoder; only the VDM-MD VQGAN layout "
                         "(attn_resolutions: []) imports")
    ch = int(sd[key].shape[0])
    levels = _count(sd, r"encoder\.down\.(\d+)\.")
    mult = [int(sd[f"encoder.down.{i}.block.0.conv2.weight"].shape[0]) // ch for i in range(levels)]
    z = int(sd["encoder.conv_out.weight"].shape[0]) if "encoder.conv_out.weight" in sd else None
    embed = int(sd["quant_conv.weight"].shape[0]) if "quant_conv.weight" in sd else z
    if z is not None and embed != z:
        raise InputError(f"tensor 'quant_conv.weight': embed_dim {embed} differs from z_channels {z}; "
                         "deblurdiff's autoencoder needs them equal (VDM-MD: 3 and 3)")
    return {"ae_ch": ch, "ae_ch_mult": mult, "ae_num_res_blocks": _count(sd, r"encoder\.down\.0\.block\.(\d+)\."),
            "latent_channels": embed, "channels": int(sd[key].shape[1]),
            "ae_mid_attention": any(k.startswith("encoder.mid.attn_1.") for k in sd)}


_STDIT2_MARKERS = ("scale_shift_table", "t_block", "x_embedder", "y_embedder", "cross_attn", "attn_temp",
                   "csize_embedder", "fl_embedder", "final_layer")


# ----------------------------------------------------------------------------- per-kind plans
def _classify_blurdm(objs):
    backbone, dm = None, None
    for path, obj in objs:
        where = str(path)
        if isinstance(obj, dict) and "model_dm_state" in obj:
            dm = state_dict_of(obj["model_dm_state"], f"{where}['model_dm_state']")
        if isinstance(obj, dict) and any(k in obj for k in ("model_state", "model", "params")):
            backbone = state_dict_of(obj, where, ("model_state", "model", "params"))
        elif isinstance(obj, dict) and "model_dm_state" not in obj:
            sd = state_dict_of(obj, where)
            if any(k.startswith(("condition_encoder.", "lcr_model.", "noise_model.")) for k in sd):
                dm = sd
            else:
                backbone = sd
    if backbone is None:
        raise InputError("BlurDM import needs the backbone weights ('model_state' in the stage-3 file, or the "
                         "--model_path file); none of the given files holds them")
    if dm is None:
        raise InputError("BlurDM import needs the diffusion weights ('model_dm_state', from --model_dm_path); "
                         "none of the given files holds them")
    return backbone, dm


def _plan(kind: str, objs, config: dict | None, tlc: bool):
    """-> (method config, {ours: (official, tensor)}, official names dropped on purpose)."""
    ignored: dict = {}
    if kind == "nafnet":
        sd = state_dict_of(objs[0][1], str(objs[0][0]), ("params", "params_ema", "state_dict", "model"))
        cfg = config or infer_nafnet(sd)
        if not tlc:
            cfg = {**cfg, "tlc_base_size": 0}
        return cfg, map_identity(sd, "backbone."), ignored
    if kind == "mimo-unet":
        sd = state_dict_of(objs[0][1], str(objs[0][0]), ("model", "model_state", "state_dict", "params"))
        cfg = config or {**infer_mimo(sd), "value_range": "unit"}
        return cfg, map_identity(sd, "backbone."), ignored
    if kind == "blurdm":
        backbone, dm = _classify_blurdm(objs)
        if "feat_extract.0.main.0.weight" not in backbone:
            first = next(iter(backbone), "(empty)")
            raise InputError(f"tensor {first!r}: this BlurDM backbone is not MIMO-UNet; deblurdiff imports BlurDM "
                             "for the MIMO-UNet backbone only (FFTformer, Stripformer and LoFormer have no "
                             "deblurdiff implementation)")
        mapped = {}
        for k, v in backbone.items():
            m = re.match(r"Decoder\.(\d+)\.kv\.weight$", k)
            mapped[f"backbone.fusions.{m.group(1)}.kernel.weight" if m else f"backbone.{k}"] = (k, v)
        le, blocks = map_latent_encoder(dm, "condition_encoder.", "prior.blur_encoder.")
        mapped.update(le)
        mapped.update(map_estimator(dm, "lcr_model.", "prior.residual_estimator."))
        mapped.update(map_estimator(dm, "noise_model.", "prior.noise_estimator."))
        for ours, (name, tensor) in le.items():  # training-only target encoder: start as the blur encoder
            mapped[ours.replace("prior.blur_encoder.", "sharp_encoder.", 1)] = (name, tensor.clone())
        ignored = {k: v for k, v in dm.items() if k in ("alphas", "betas_bar", "time_stamps_list")}
        if config is None:
            le_w = dm.get("condition_encoder.E.0.weight")
            dim = dm["condition_encoder.mlp.0.weight"].shape[0] if "condition_encoder.mlp.0.weight" in dm else 256
            config = {**_BLURDM_OFFICIAL, "backbone_options": infer_mimo(backbone),
                      "latent_width": int(le_w.shape[0]) if le_w is not None else 64, "latent_dim": int(dim),
                      "latent_resblocks": blocks,
                      "estimator_depth": max(0, _count(dm, r"lcr_model\.resmlp\.(\d+)\.") - 2),
                      "timesteps": int(ignored["time_stamps_list"].numel()) if "time_stamps_list" in ignored else 5}
        return config, mapped, ignored
    if kind == "vdm-md":
        vq_sd, prior_sd = None, None
        for path, obj in objs:
            sd = state_dict_of(obj, str(path), ("state_dict", "model", "ema", "module"))
            if any(k.startswith("encoder.") for k in sd):
                vq_sd = sd
            else:
                prior_sd = sd
        if prior_sd is not None:
            bad = next((k for k in prior_sd if any(m in k for m in _STDIT2_MARKERS)), next(iter(prior_sd), "(empty)"))
            raise InputError(f"tensor {bad!r}: the Open-Sora STDiT2 prior cannot be represented by deblurdiff's "
                             "VideoDiT (STDiT2 blocks share one MLP between spatial and temporal attention and "
                             "modulate through scale_shift_table + t_block, with size/fps embedders); import only "
                             "the VQGAN (vqgan.ckpt) and train the prior stage on it")
        if vq_sd is None:
            raise InputError("VDM-MD import needs the VQGAN checkpoint (pretrained/<dataset>/vqgan.ckpt)")
        arch = infer_vqgan(vq_sd)
        cfg = {**OFFICIAL_CONFIGS["vdm-md-bair"][1], **arch, **(config or {})}
        mapped = map_vqgan(vq_sd, len(cfg["ae_ch_mult"]))
        ignored = {k: v for k, v in vq_sd.items() if k.startswith(("quantize.", "loss."))}
        return cfg, mapped, ignored
    raise ConfigError(f"unknown kind {kind!r}; choose one of: {', '.join(KINDS)}")


def _check_schedule(model, ignored: dict) -> None:
    """BlurDM's official buffers (alphas, betas_bar) must equal the schedule the config builds."""
    sched = getattr(getattr(model, "prior", None), "schedule", None)
    checks = {"alphas": getattr(sched, "a", None), "betas_bar": getattr(sched, "beta_bar", None)}
    for name, ours in checks.items():
        if name in ignored and ours is not None:
            theirs = ignored[name].float()
            ours = ours[1:] if name == "betas_bar" else ours
            if theirs.shape != ours.shape or not torch.allclose(theirs, ours.cpu(), atol=1e-5):
                raise InputError(f"tensor {name!r} ({theirs.tolist()}) differs from the schedule of the config "
                                 f"({ours.tolist()}); pass the matching timesteps/beta/a settings")


# ----------------------------------------------------------------------------- the entry point
def import_weights(kind: str, files, out, *, config: str | dict | None = None, overrides: dict | None = None,
                   tlc: bool = True) -> Path:
    """Import official ``files`` of ``kind`` into the deblurdiff folder ``out``; returns ``out``.

    ``config``: an ``OFFICIAL_CONFIGS`` name (or a dict of method arguments) instead of inferring the
    architecture; ``overrides``: method arguments to change on top (e.g. VDM-MD's ``latent_scale``);
    ``tlc``: NAFNet only, test like NAFNetLocal (True, the official GoPro test) or plain NAFNet.
    Raises ``InputError`` naming the tensor for any missing, extra or misshapen tensor; nothing is
    written then.
    """
    from .methods import method_class

    if kind not in KINDS:
        raise ConfigError(f"unknown kind {kind!r}; choose one of: {', '.join(KINDS)}")
    files = [Path(f) for f in ([files] if isinstance(files, (str, Path)) else files)]
    if not files:
        raise InputError("no checkpoint file given")
    limit = 2 if kind in ("blurdm", "vdm-md") else 1
    if len(files) > limit:
        raise InputError(f"{kind} takes {limit} file{'s' if limit > 1 else ''}, got {len(files)}")
    if isinstance(config, str):
        if config not in OFFICIAL_CONFIGS:
            raise ConfigError(f"unknown official config {config!r}; choose one of: {', '.join(OFFICIAL_CONFIGS)}")
        owner, cfg = OFFICIAL_CONFIGS[config]
        if owner != kind:
            raise ConfigError(f"config {config!r} is for {owner}, not {kind}")
        config = json.loads(json.dumps(cfg))
    out = Path(out)
    if any(out.resolve() == f.resolve() for f in files):
        raise InputError(f"--out {out} is an input file; choose a new folder")
    objs = [(f, read_weights(f)) for f in files]
    cfg, mapped, ignored = _plan(kind, objs, config, tlc)
    cfg = {**cfg, **(overrides or {})}
    try:
        model = method_class(METHOD_OF_KIND[kind])(**cfg)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"cannot build {kind} with {cfg}: {exc}") from None
    _check_schedule(model, ignored)
    expected = model.state_dict()
    if kind == "vdm-md":  # the prior stays freshly initialised; the latent scale comes from the config
        for name, tensor in expected.items():
            if name.startswith("prior.") or name == "latent_std":
                mapped.setdefault(name, ("(initialised)", tensor))
    extra = sorted(official for ours, (official, _) in mapped.items() if ours not in expected)
    if extra:
        raise InputError(f"unexpected tensor {extra[0]!r} ({len(extra)} in all) for {kind} {_arch(cfg)}: "
                         "the file does not match this architecture (renamed or extra weights)")
    missing = sorted(k for k in expected if k not in mapped)
    if missing:
        raise InputError(f"missing tensor for {missing[0]!r} ({len(missing)} in all) in {kind} {_arch(cfg)}: "
                         "the file is incomplete or of another architecture")
    state = {}
    for ours, (official, tensor) in mapped.items():
        if tuple(tensor.shape) != tuple(expected[ours].shape):
            raise InputError(f"tensor {official!r} has shape {tuple(tensor.shape)}, expected "
                             f"{tuple(expected[ours].shape)} (deblurdiff {ours!r}) for {kind} {_arch(cfg)}")
        if not tensor.is_floating_point():
            raise InputError(f"tensor {official!r} has dtype {tensor.dtype}; weights must be floating point")
        state[ours] = tensor.to(expected[ours].dtype)
    model.load_state_dict(state, strict=True)
    with atomic_dir(out) as tmp:
        model.save_pretrained(str(tmp))
        (tmp / "imported.json").write_text(json.dumps(
            {"kind": kind, "files": [str(f) for f in files], "config": cfg, "ignored": sorted(ignored),
             "tensors": len(mapped)}, indent=1, sort_keys=True))
    return out


def _arch(cfg: dict) -> str:
    keys = ("width", "enc_blk_nums", "base_channel", "num_res", "backbone_options", "ae_ch", "ae_ch_mult")
    return "(" + ", ".join(f"{k}={cfg[k]}" for k in keys if k in cfg) + ")"


# ----------------------------------------------------------------------------- hub ids
def looks_like_hub_id(text: str) -> bool:
    return bool(_HF_ID.match(str(text))) and not Path(str(text)).exists()


def resolve_hub(repo_id: str) -> Path:
    """Download (or find in the local cache) the deblurdiff folder of a Hugging Face hub repo."""
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        raise CheckpointError("hub ids need the huggingface_hub package (pip install huggingface_hub)") from None
    try:
        return Path(snapshot_download(repo_id, allow_patterns=["config.json", "*.safetensors", "*.json"]))
    except Exception as exc:  # offline, unknown repo, gated, network error: all say the same thing to do
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{repo_id!r} is not a local folder, and fetching it from the Hugging Face hub failed "
                              f"({type(exc).__name__}: {first}). Offline? Download the repo on a connected machine "
                              "(huggingface-cli download ORG/NAME --local-dir DIR) and pass --checkpoint DIR") from None


__all__ = ["KINDS", "OFFICIAL_CONFIGS", "import_weights", "read_weights", "state_dict_of", "looks_like_hub_id",
           "resolve_hub", "map_vqgan", "map_latent_encoder", "map_estimator"]
