"""scripts/train_image_models.py: runs a chain of warm-started runs, skips finished ones, ships."""
import importlib.util
import json
import sys
from pathlib import Path

from safetensors.torch import load_file

REPO = Path(__file__).resolve().parent.parent


def _script():
    spec = importlib.util.spec_from_file_location("train_image_models", REPO / "scripts" / "train_image_models.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_chain_warm_starts_skips_finished_runs_and_ships(tmp_path, monkeypatch, capsys):
    script = _script()
    monkeypatch.setattr(script, "PLAN", (
        script.Run("first", "configs/toy-tiny.yaml", 2),
        script.Run("second", "configs/toy-tiny.yaml", 3, init="first", ship_as="toy"),
        script.Run("later", "configs/toy-tiny.yaml", 0, init="second"),
    ))
    monkeypatch.setattr(script, "WEIGHTS", tmp_path / "weights")
    assert script.main(["--runs", str(tmp_path / "runs"), "--batch-scale", "1", "--ship"]) == 0
    first, second = (tmp_path / "runs" / name / "final" for name in ("first", "second"))
    assert json.loads((first / "training.json").read_text())["step"] == 2
    trained = json.loads((second / "training.json").read_text())
    assert trained["step"] == 3 and trained["config"]["train"]["init"] == str(first)
    shipped = tmp_path / "weights" / "toy"
    assert load_file(str(shipped / "diffusion_pytorch_model.safetensors")).keys() == \
        load_file(str(second / "diffusion_pytorch_model.safetensors")).keys()
    out = capsys.readouterr().out
    assert "later: not trained by this recipe yet" in out

    # A second call finds both runs done and trains nothing.
    stamp = (second / "training.json").stat().st_mtime_ns
    assert script.main(["--runs", str(tmp_path / "runs"), "--batch-scale", "1"]) == 0
    assert (second / "training.json").stat().st_mtime_ns == stamp
    assert "first: done" in capsys.readouterr().out
