"""`deblurdiff deblur` end to end: images, folders and videos; bad input leaves nothing behind."""
import json
import os

import numpy as np
import pytest
import torch

from deblurdiff.api import checkpoint_name
from deblurdiff.blur.scenes import generate_clip
from deblurdiff.cli import main
from deblurdiff.data.io import read_image, read_video, write_image, write_video
from deblurdiff.methods import shipped_checkpoint

#: (method, backbone) pairs that ship a checkpoint, plus a training-free baseline.
SHIPPED = [("identity", None), ("nafnet", None), ("mimo-unet", None), ("blurdm", None), ("blurdm", "mimo-unet"),
           ("divd", None), ("vdd", None), ("vdm-md", None)]


def _blurred(seed=0, size=(40, 48), frames=None):
    """A blurred procedural scene (training distribution, never the benchmark's seeds)."""
    clip = generate_clip(seed, size, frames or 1)["blur"]
    return clip if frames else clip[0]


#: methods whose sampler takes a step count (BlurDM's chain has a fixed length)
FEW_STEPS = {"divd", "vdd", "vdm-md"}


def _args(method, backbone, *rest):
    args = ["deblur", *rest, "--method", method, "--quiet", "--seed", "1"]
    args += ["--steps", "2"] if method in FEW_STEPS else []
    return args + (["--backbone", backbone] if backbone else [])


def _require(method, backbone):
    if method != "identity" and not shipped_checkpoint(checkpoint_name(method, backbone)).is_dir():
        pytest.fail(f"{checkpoint_name(method, backbone)} has no shipped checkpoint")


@pytest.mark.parametrize("method,backbone", SHIPPED)
def test_image_folder_and_video(tmp_path, method, backbone, capsys):
    _require(method, backbone)
    image = tmp_path / "photo.png"
    write_image(image, _blurred())
    folder = tmp_path / "frames"
    for i in range(3):
        write_image(folder / f"f{i + 1}.png", _blurred(i))
    video = tmp_path / "clip.mp4"
    write_video(video, _blurred(5, frames=4), fps=12.0)
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}

    if method == "vdm-md":
        assert main(_args(method, backbone, str(image), "-o", str(tmp_path / "out_img"), "--json")) == 0
        summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert summary["method"] == "vdm-md" and summary["seconds"] > 0
        out = tmp_path / "out_img" / "photo"
        names = sorted(p.name for p in out.iterdir())
        assert names[-2:] == ["frames.gif", "mean.png"] and len([n for n in names if n[:2].isdigit()]) >= 2
        frame = read_image(out / "00.png")
        assert frame.shape == (3, 40, 48) and not torch.equal(frame, read_image(image))
        assert main(_args(method, backbone, str(folder), "-o", str(tmp_path / "out_dir"))) == 0
        assert sorted(p.name for p in (tmp_path / "out_dir").iterdir()) == ["f1", "f2", "f3"]
        assert main(_args(method, backbone, str(video), "-o", str(tmp_path / "v.mp4"))) == 2
    else:
        assert main(_args(method, backbone, str(image), "-o", str(tmp_path / "out.png"))) == 0
        result = read_image(tmp_path / "out.png")
        assert result.shape == (3, 40, 48)
        changed = (result - read_image(image)).abs().mean() > 1e-3
        assert main(_args(method, backbone, str(folder), "-o", str(tmp_path / "out_dir"))) == 0
        assert sorted(p.name for p in (tmp_path / "out_dir").iterdir()) == ["f1.png", "f2.png", "f3.png"]
        assert main(_args(method, backbone, str(video), "-o", str(tmp_path / "out.mp4"))) == 0
        frames, fps = read_video(tmp_path / "out.mp4")
        assert frames.shape == (4, 3, 40, 48) and fps == pytest.approx(12.0)
    after = {p: p.read_bytes() for p in before}
    assert after == before, "inputs were modified"
    if method not in ("identity", "vdm-md") and not changed:
        pytest.fail(f"{method} returned its input unchanged")


def test_same_seed_same_output(tmp_path):
    _require("divd", None)
    image = tmp_path / "a.png"
    write_image(image, _blurred())
    for name in ("x.png", "y.png"):
        assert main(_args("divd", None, str(image), "-o", str(tmp_path / name))) == 0
    assert torch.equal(read_image(tmp_path / "x.png"), read_image(tmp_path / "y.png"))


def _tree(path):
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


@pytest.mark.parametrize("case", ["unreadable", "unsupported", "missing", "steps0", "unknown-method", "tiny",
                                  "pixel-limit", "output-is-input", "wrong-checkpoint", "no-checkpoint"])
def test_bad_input_exits_2_and_leaves_nothing(tmp_path, case, capsys):
    src = tmp_path / "in"
    src.mkdir()
    image = src / "a.png"
    write_image(image, _blurred())
    argv = ["deblur", str(image), "-o", str(tmp_path / "out.png"), "--method", "identity", "--quiet"]
    if case == "unreadable":
        (src / "a.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    elif case == "unsupported":
        (src / "notes.txt").write_text("hello")
        argv[1] = str(src / "notes.txt")
    elif case == "missing":
        argv[1] = str(src / "nope.png")
    elif case == "steps0":
        argv += ["--steps", "0"]
    elif case == "unknown-method":
        argv[argv.index("identity")] = "no-such-method"
    elif case == "tiny":
        write_image(image, torch.rand(3, 1, 1))
    elif case == "pixel-limit":
        argv += ["--max-pixels", "100"]
    elif case == "output-is-input":
        argv[3] = str(image)
    elif case in ("wrong-checkpoint", "no-checkpoint"):
        from deblurdiff.methods.regression import NAFNetDeblur

        NAFNetDeblur(width=8, enc_blk_nums=[1], middle_blk_num=1, dec_blk_nums=[1]).save_pretrained(tmp_path / "ck")
        if case == "wrong-checkpoint":
            argv[argv.index("identity")] = "mimo-unet"
            argv += ["--checkpoint", str(tmp_path / "ck")]
        else:
            argv[argv.index("identity")] = "nafnet"
            argv += ["--checkpoint", str(tmp_path / "nothing-here")]
    before_tree, before_bytes = _tree(tmp_path), image.read_bytes()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "error:" in err and "Traceback" not in err
    assert _tree(tmp_path) == before_tree, "something was left behind"
    assert image.read_bytes() == before_bytes
