"""Every command against a table of bad inputs: refused by name, exit 2, no traceback, nothing written.

Each case runs the CLI in-process inside a folder of small inputs (good and bad). After each
case the folder must hold exactly the same files with the same bytes: nothing written (not even
a staging folder) and no input touched. ``test_every_option_is_in_the_table`` makes a new option
of these commands fail until a bad value of it joins the table.
"""
import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from deblurdiff.cli import build_parser, main

COMMANDS = ("deblur", "train", "score", "eval", "compare", "bench", "synth", "photos")
SHIPPED_NAFNET = Path(__file__).resolve().parent.parent / "src/deblurdiff/weights/nafnet"
TINY_CONFIG = """method: deblurdiff.train.reference:TinyConvDeblur
model: {channels: 4, blocks: 1}
data: {source: "deblurdiff.train.reference:synthetic_pairs", crop: 16, length: 8}
train: {batch_size: 2, max_steps: 2}
"""


def _png(path, h=16, w=16, seed=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A folder of inputs, good and bad; cases run with it as the working directory."""
    w = tmp_path_factory.mktemp("world")
    _png(w / "img.png")
    _png(w / "img2.png", 20, 24, seed=1)
    _png(w / "tiny.png", 4, 4)
    (w / "empty.png").write_bytes(b"")
    (w / "trunc.png").write_bytes((w / "img.png").read_bytes()[:60])
    (w / "text.png").write_text("this is not an image\n")
    (w / "afile").write_text("a plain file where a folder is expected\n")
    (w / "garbage.mp4").write_bytes(b"\x00\x01garbage" * 50)
    (w / "empty_dir").mkdir()
    for name in ("a", "b"):
        _png(w / "imgs" / f"{name}.png", seed=ord(name))
        _png(w / "other" / f"{name}x.png", seed=ord(name))
    for i in range(2):  # a GoPro-layout test split (eval --layout gopro)
        for kind in ("blur", "sharp"):
            _png(w / "gopro/test/seq/{}/{:06d}.png".format(kind, i), seed=i)
    (w / "good.yaml").write_text(TINY_CONFIG)
    (w / "unknown_key.yaml").write_text(TINY_CONFIG + "bogus_key: 1\n")
    (w / "wrong_type.yaml").write_text(TINY_CONFIG.replace("batch_size: 2", "batch_size: two"))
    (w / "bad_model.yaml").write_text(TINY_CONFIG.replace("blocks: 1", "blokks: 1"))
    (w / "bad_method.yaml").write_text(TINY_CONFIG.replace("deblurdiff.train.reference:TinyConvDeblur", "nosuch"))
    (w / "binary.yaml").write_bytes((w / "img.png").read_bytes())
    (w / "latin1.yaml").write_bytes("method: caf\xe9\n".encode("latin-1"))
    (w / "empty.yaml").write_text("")
    (w / "list.yaml").write_text("- 1\n- 2\n")
    (w / "broken.yaml").write_text("method: [unclosed\n")
    (w / "results.json").write_text(json.dumps({"method": "identity", "mean": {"psnr": 20.0}}))
    (w / "notresults.json").write_text(json.dumps({"hello": 1}))
    (w / "broken.json").write_text("{not json")
    ckpt = w / "ckpt_trunc"
    shutil.copytree(SHIPPED_NAFNET, ckpt)
    weights = ckpt / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    (w / "ckpt_badjson").mkdir()
    (w / "ckpt_badjson/config.json").write_bytes(b"\x89PNG\x00\x00")
    (w / "corrupt.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{\"a\": ")
    torch.save({"w": torch.zeros(3)}, w / "small.pth")
    (w / "trunc.pth").write_bytes((w / "small.pth").read_bytes()[:40])
    (w / "cache").mkdir()  # DEBLURDIFF_CACHE: no metric weights installed
    return w


# (argv, text the message must contain: the input or option at fault)
CASES = [
    # --- deblur: inputs
    (["deblur", "missing.png", "-o", "out.png", "--method", "identity"], "missing.png"),
    (["deblur", "empty.png", "-o", "out.png", "--method", "identity"], "empty.png"),
    (["deblur", "trunc.png", "-o", "out.png", "--method", "identity"], "trunc.png"),
    (["deblur", "text.png", "-o", "out.png", "--method", "identity"], "text.png"),
    (["deblur", "tiny.png", "-o", "out.png", "--method", "identity"], "tiny.png"),
    (["deblur", "garbage.mp4", "-o", "out.mp4", "--method", "identity"], "garbage.mp4"),
    (["deblur", "empty_dir", "-o", "outdir", "--method", "identity"], "empty_dir"),
    # --- deblur: outputs
    (["deblur", "img.png", "-o", "out.txt", "--method", "identity"], "out.txt"),
    (["deblur", "img.png", "-o", "sub/out.txt", "--method", "identity"], "sub/out.txt"),
    (["deblur", "img.png", "-o", "img.png", "--method", "identity"], "img.png"),
    (["deblur", "img.png", "-o", "afile/out.png", "--method", "identity"], "afile"),
    (["deblur", "imgs", "-o", "imgs/sub", "--method", "identity"], "imgs/sub"),
    (["deblur", "imgs", "-o", "afile", "--method", "identity"], "afile"),
    # --- deblur: options
    (["deblur", "img.png", "-o", "out.png", "--method", "nosuch"], "nosuch"),
    (["deblur", "img.png", "-o", "out.png", "--method", "identity", "--steps", "0"], "--steps"),
    (["deblur", "img.png", "-o", "out.png", "--method", "identity", "--steps", "many"], "--steps"),
    (["deblur", "img.png", "-o", "out.png", "--method", "identity", "--samples", "0"], "--samples"),
    (["deblur", "img.png", "-o", "out.png", "--method", "identity", "--sampler", "euler"], "--sampler"),
    (["deblur", "img.png", "-o", "out.png", "--method", "identity", "--seed", "-1"], "--seed"),
    (["deblur", "img.png", "-o", "out.png", "--method", "identity", "--seed", "1e999"], "--seed"),
    (["deblur", "img.png", "-o", "out.png", "--method", "identity", "--tile", "2"], "--tile"),
    (["deblur", "img.png", "-o", "out.png", "--method", "identity", "--max-pixels", "-5"], "--max-pixels"),
    (["deblur", "img.png", "-o", "out.png", "--method", "identity", "--device", "cuda:99"], "cuda:99"),
    (["deblur", "img.png", "-o", "out.png", "--method", "identity", "--device", "gpu"], "gpu"),
    (["deblur", "img.png", "-o", "out.png", "--method", "identity", "--backbone", "resnet"], "resnet"),
    (["deblur", "img.png", "-o", "out.png", "--method", "blurdm", "--backbone", "resnet"], "resnet"),
    (["deblur", "img.png", "-o", "out.png", "--method", "nafnet", "--checkpoint", "missing_ckpt"], "missing_ckpt"),
    (["deblur", "img.png", "-o", "out.png", "--method", "nafnet", "--checkpoint", "ckpt_badjson"], "ckpt_badjson"),
    (["deblur", "img.png", "-o", "out.png", "--method", "nafnet", "--checkpoint", "ckpt_trunc"],
     "ckpt_trunc/diffusion_pytorch_model.safetensors"),
    (["deblur", "img.png", "-o", "out.png", "--method", "nafnet", "--checkpoint", "img.png"], "img.png"),
    # --- train
    (["train", "missing.yaml"], "missing.yaml"),
    (["train", "empty_dir"], "empty_dir"),
    (["train", "img.png"], "img.png"),
    (["train", "binary.yaml"], "binary.yaml"),
    (["train", "latin1.yaml"], "latin1.yaml"),
    (["train", "empty.yaml"], "empty.yaml"),
    (["train", "list.yaml"], "list.yaml"),
    (["train", "broken.yaml"], "broken.yaml"),
    (["train", "unknown_key.yaml"], "bogus_key"),
    (["train", "wrong_type.yaml"], "train.batch_size"),
    (["train", "bad_method.yaml"], "nosuch"),
    (["train", "bad_model.yaml", "--out", "run"], "blokks"),
    (["train", "good.yaml", "--set", "train.lrr=1"], "train.lrr"),
    (["train", "good.yaml", "--set", "no-equals-sign"], "no-equals-sign"),
    (["train", "good.yaml", "--set", "train.lr=[1,"], "train.lr=[1,"),
    (["train", "good.yaml", "--set", "train.batch_size=0", "--out", "run"], "train.batch_size"),
    (["train", "good.yaml", "--max-steps", "0"], "--max-steps"),
    (["train", "good.yaml", "--max-steps", "ten"], "--max-steps"),
    (["train", "good.yaml", "--out", "afile"], "afile"),
    (["train", "good.yaml", "--out", "afile/run"], "afile"),
    (["train", "good.yaml", "--out", "run", "--resume", "missing_ckpt"], "missing_ckpt"),
    (["train", "good.yaml", "--out", "run", "--resume", "imgs"], "imgs"),
    # --- score
    (["score", "missing.png", "img.png"], "missing.png"),
    (["score", "img.png", "empty.png"], "empty.png"),
    (["score", "trunc.png", "img.png"], "trunc.png"),
    (["score", "text.png", "img.png"], "text.png"),
    (["score", "img.png", "img2.png"], "img2.png"),
    (["score", "imgs", "other"], "other"),
    (["score", "imgs", "img.png"], "imgs"),
    (["score", "img.png", "img.png", "--metrics", "psnr,bogus"], "bogus"),
    (["score", "img.png", "img.png", "--metrics", "fid"], "deblurdiff weights inception"),
    (["score", "img.png", "img.png", "--metrics", "lpips"], "deblurdiff weights lpips"),
    (["score", "img.png", "img.png", "--metrics", "fid", "--inception", "corrupt.safetensors"], "corrupt.safetensors"),
    (["score", "img.png", "img.png", "--metrics", "fid", "--inception", "trunc.pth"], "trunc.pth"),
    (["score", "img.png", "img.png", "--metrics", "fid", "--inception", "small.pth"], "pt_inception"),
    (["score", "img.png", "img.png", "--crop-border", "-1"], "--crop-border"),
    (["score", "img.png", "img.png", "--crop-border", "8"], "--crop-border"),
    (["score", "img.png", "img.png", "--device", "cuda:99"], "cuda:99"),
    # --- eval
    (["eval", "--method", "identity", "--data", "missing_dir", "--out", "r.json"], "missing_dir"),
    (["eval", "--method", "identity", "--data", "afile", "--out", "r.json"], "afile"),
    (["eval", "--method", "identity", "--data", "empty_dir", "--out", "r.json"], "empty_dir"),
    (["eval", "--method", "nosuch", "--data", "gopro", "--out", "r.json"], "nosuch"),
    (["eval", "--method", "identity", "--data", "gopro", "--out", "afile/r.json"], "afile"),
    (["eval", "--method", "identity", "--data", "gopro", "--out", "r.json", "--layout", "kitti"], "--layout"),
    (["eval", "--method", "identity", "--data", "gopro", "--out", "r.json", "--part", "audio"], "--part"),
    (["eval", "--method", "identity", "--data", "gopro", "--out", "r.json", "--steps", "0"], "--steps"),
    (["eval", "--method", "identity", "--data", "gopro", "--out", "r.json", "--seed", "x"], "--seed"),
    (["eval", "--method", "identity", "--data", "gopro", "--out", "r.json", "--metrics", "mse"], "mse"),
    (["eval", "--method", "identity", "--data", "gopro", "--out", "r.json", "--metrics", "kid"], "--metrics kid"),
    (["eval", "--method", "identity", "--data", "gopro", "--out", "r.json", "--crop-border", "-3"], "--crop-border"),
    (["eval", "--method", "identity", "--data", "gopro", "--out", "r.json", "--frames", "0"], "--frames"),
    (["eval", "--method", "identity", "--data", "gopro", "--out", "r.json", "--limit", "0"], "--limit"),
    (["eval", "--method", "nafnet", "--data", "gopro", "--out", "r.json", "--checkpoint", "ckpt_trunc"],
     "ckpt_trunc/diffusion_pytorch_model.safetensors"),
    (["eval", "--method", "identity", "--data", "gopro", "--out", "r.json", "--metrics", "fid", "--inception",
      "missing.pth"], "missing.pth"),
    (["eval", "--method", "identity", "--data", "gopro", "--out", "r.json", "--device", "cuda:99"], "cuda:99"),
    # --- compare
    (["compare", "missing.json"], "missing.json"),
    (["compare", "img.png"], "img.png"),
    (["compare", "empty.png"], "empty.png"),
    (["compare", "broken.json"], "broken.json"),
    (["compare", "notresults.json"], "notresults.json"),
    (["compare", "results.json", "--out", "afile/t.md"], "afile"),
    (["compare", "results.json", "--out", "empty_dir"], "empty_dir"),
    # --- bench (writes nothing; must refuse before measuring)
    (["bench", "--method", "nosuch"], "nosuch"),
    (["bench", "--method", "identity", "--size", "big"], "--size"),
    (["bench", "--method", "identity", "--size", "0x0"], "--size"),
    (["bench", "--method", "identity", "--size", "64x-64"], "--size"),
    (["bench", "--method", "identity", "--frames", "0"], "--frames"),
    (["bench", "--method", "identity", "--steps", "-1"], "--steps"),
    (["bench", "--method", "identity", "--sampler", "euler"], "--sampler"),
    (["bench", "--method", "identity", "--tile", "0"], "--tile"),
    (["bench", "--method", "identity", "--repeats", "0"], "--repeats"),
    (["bench", "--method", "identity", "--device", "cuda:99"], "cuda:99"),
    (["bench", "--method", "identity", "--backbone", "resnet"], "resnet"),
    (["bench", "--method", "nafnet", "--checkpoint", "ckpt_trunc"], "ckpt_trunc/diffusion_pytorch_model.safetensors"),
    # --- synth
    (["synth", "--from", "missing_dir", "--out", "data"], "missing_dir"),
    (["synth", "--from", "empty_dir", "--out", "data"], "empty_dir"),
    (["synth", "--from", "garbage.mp4", "--out", "data"], "garbage.mp4"),
    (["synth", "--from", "imgs", "--out", "data"], "imgs"),  # 2 frames, a window of 7
    (["synth", "--photos", "missing_dir", "--out", "data"], "missing_dir"),
    (["synth", "--photos", "empty_dir", "--out", "data"], "empty_dir"),
    (["synth", "--scenes", "1", "--out", "afile"], "afile"),
    (["synth", "--scenes", "1", "--out", "imgs"], "imgs"),
    (["synth", "--scenes", "1", "--out", "afile/data"], "afile"),
    (["synth", "--scenes", "0", "--out", "data"], "--scenes"),
    (["synth", "--from", "imgs", "--out", "data", "--window", "0"], "--window"),
    (["synth", "--from", "imgs", "--out", "data", "--stride", "-2"], "--stride"),
    (["synth", "--from", "imgs", "--out", "data", "--linear", "--gamma", "-1"], "--gamma"),
    (["synth", "--scenes", "1", "--out", "data", "--split", "../escape"], "--split"),
    (["synth", "--scenes", "1", "--out", "data", "--split", ""], "--split"),
    (["synth", "--scenes", "1", "--out", "data", "--seed", "-4"], "--seed"),
    (["synth", "--scenes", "1", "--out", "data", "--size", "2"], "--size"),
    (["synth", "--scenes", "1", "--out", "data", "--frames", "0"], "--frames"),
    (["synth", "--scenes", "1", "--out", "data", "--subframes", "0"], "--subframes"),
    (["synth", "--scenes", "1", "--out", "data", "--duty-cycle", "1.5"], "--duty-cycle"),
    (["synth", "--scenes", "1", "--out", "data", "--duty-cycle", "nan"], "--duty-cycle"),
    (["synth", "--photos", "imgs", "--out", "data", "--per-photo", "0"], "--per-photo"),
    (["synth", "--photos", "imgs", "--out", "data", "--max-shift", "-3"], "--max-shift"),
    # --- photos (the pool itself is redirected to an empty folder by conftest)
    (["photos", "fetch", "--from", "missing_dir"], "missing_dir"),
    (["photos", "fetch", "--from", "afile"], "afile"),
    (["photos", "verify"], "photos fetch"),
]


def snapshot(folder: Path) -> dict:
    """Every file and folder under ``folder`` (hidden ones included) with its bytes' hash."""
    return {str(p.relative_to(folder)): (hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir")
            for p in sorted(folder.rglob("*"))}


@pytest.mark.parametrize("argv, names", CASES, ids=[" ".join(a)[:70] for a, _ in CASES])
def test_bad_input_is_refused_cleanly(argv, names, world, monkeypatch, capsys):
    monkeypatch.chdir(world)
    monkeypatch.setenv("DEBLURDIFF_CACHE", str(world / "cache"))
    before = snapshot(world)
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert code == 2, f"exit {code}\n{out}\n{err}"
    assert "Traceback" not in out + err and "internal error" not in err, err
    message = err.strip().splitlines()[-1] if err.strip() else ""
    assert message.startswith(f"deblurdiff {argv[0]}: error: "), err
    assert names in message, f"{names!r} not in: {message}"
    assert ".deblurdiff-staging" not in err and ".tmp" not in message  # the user's paths, not ours
    assert snapshot(world) == before  # nothing written, no input touched


def test_every_option_is_in_the_table():
    """A new option of these commands fails here until a bad value of it is added to CASES."""
    parser = build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    used = {(argv[0], arg) for argv, _ in CASES for arg in argv if arg.startswith("-")}
    missing = []
    for name in COMMANDS:
        for action in sub.choices[name]._actions:
            if action.option_strings and action.nargs != 0 and action.dest != "help":
                if not any((name, opt) in used for opt in action.option_strings):
                    missing.append(f"{name} {action.option_strings[-1]}")
    assert not missing, f"options without a bad-input case: {missing}"


def test_internal_error_shows_traceback_and_asks_for_a_report(world, monkeypatch, capsys):
    """A bug (not a user error) keeps its traceback, exits 1, and says it is a bug to report."""
    import deblurdiff.commands.compare as compare

    def broken(paths):
        raise ZeroDivisionError("a bug")

    monkeypatch.chdir(world)
    monkeypatch.setattr(compare, "load_results", broken)
    assert main(["compare", "results.json"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and "ZeroDivisionError: a bug" in err
    assert "bug in deblurdiff" in err and "report" in err


def test_staging_path_never_reaches_a_message(tmp_path, monkeypatch):
    """Errors raised while writing through a staging folder name the user's path, including root '.'."""
    from deblurdiff.atomic import atomic_file, staged_into
    from deblurdiff.errors import InputError

    monkeypatch.chdir(tmp_path)
    for root in (Path("."), Path("out"), tmp_path / "abs"):
        with pytest.raises(InputError) as info, staged_into(root) as staging:
            raise InputError(f"{staging / 'a.png'}: cannot encode")
        assert str(info.value) == f"{root / 'a.png'}: cannot encode"
    with pytest.raises(InputError) as info, atomic_file(Path("r.json")) as tmp:
        raise InputError(f"{tmp}: bad")
    assert str(info.value) == "r.json: bad"
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_atomic_outputs_get_the_umask_mode_not_the_private_temp_mode(tmp_path):
    """mkstemp/mkdtemp make 0600/0700 temporaries; the finished output must have the mode a plain
    write would give under the user's umask (here 022: 0644 files, 0755 folders)."""
    import os
    import stat

    from deblurdiff.atomic import atomic_dir, atomic_file

    old = os.umask(0o022)
    try:
        with atomic_file(tmp_path / "out.json") as tmp:
            Path(tmp).write_text("{}")
        with atomic_dir(tmp_path / "weights") as tmp:
            (Path(tmp) / "a.txt").write_text("a")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "out.json").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "weights").stat().st_mode) == 0o755
