"""scripts/ship_checkpoint.py: a step folder's EMA weights into the package, decoder swap, bf16 storage."""
import importlib.util
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from deblurdiff.methods.vdm_md import VDMMD

REPO = Path(__file__).resolve().parent.parent
WEIGHT_FILE = "diffusion_pytorch_model.safetensors"


def _script():
    spec = importlib.util.spec_from_file_location("ship_checkpoint", REPO / "scripts" / "ship_checkpoint.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def tiny(seed):
    torch.manual_seed(seed)
    return VDMMD(frames=4, image_size=16, ae_ch=4, ae_ch_mult=(1, 2, 4), ae_num_res_blocks=1, ae_norm_groups=2,
                 hidden_size=32, depth=1, num_heads=2, latent_scale=0.8)


def step_folder(root: Path, model: VDMMD, step: int = 7) -> Path:
    folder = root / "checkpoints" / f"step-{step:06d}"
    model.save_pretrained(folder / "ema")
    (folder / "trainer.json").write_text(json.dumps({"step": step, "config": {"method": "vdm-md"}, "method": "vdm-md"}))
    return folder


@pytest.fixture()
def script(tmp_path, monkeypatch):
    module = _script()
    monkeypatch.setattr(module, "WEIGHTS", tmp_path / "weights")
    return module


def test_ships_ema_weights_with_the_new_decoder_and_a_bf16_prior(tmp_path, script):
    run = tiny(0)
    shipped_ae = tiny(0)  # same encoder and latent_std, another decoder: a decoder-only retrain
    with torch.no_grad():
        for p in shipped_ae.autoencoder.decoder.parameters():
            p.add_(0.01)
    shipped_ae.save_pretrained(tmp_path / "weights" / "ae")
    folder = step_folder(tmp_path / "run", run)

    script.main([str(folder), "vdm-md", "--chain", "run 7", "--autoencoder", "ae", "--bf16", "prior."])

    target = tmp_path / "weights" / "vdm-md"
    stored = load_file(str(target / WEIGHT_FILE))
    assert all(v.dtype == torch.bfloat16 for k, v in stored.items() if k.startswith("prior.") and v.is_floating_point())
    assert stored["latent_std"].dtype == torch.float32
    record = json.loads((target / "training.json").read_text())
    assert (record["step"], record["chain"], record["weights"]) == (7, "run 7", "EMA")
    assert not list((tmp_path / "weights").glob(".*"))  # no partial or old folder left behind

    loaded = VDMMD.from_pretrained(target)
    assert {p.dtype for p in loaded.parameters()} == {torch.float32}
    for name, p in loaded.autoencoder.decoder.named_parameters():  # the shipped decoder, exactly
        torch.testing.assert_close(p, dict(shipped_ae.autoencoder.decoder.named_parameters())[name], atol=0, rtol=0)
    for name, p in loaded.prior.named_parameters():  # the run's prior, rounded to bf16
        torch.testing.assert_close(p, dict(run.prior.named_parameters())[name].to(torch.bfloat16).float(),
                                   atol=0, rtol=0)


def test_refuses_an_autoencoder_with_another_encoder(tmp_path, script):
    tiny(1).save_pretrained(tmp_path / "weights" / "ae")  # other seed: other encoder weights
    folder = step_folder(tmp_path / "run", tiny(0))
    with pytest.raises(SystemExit, match="encoder tensor"):
        script.main([str(folder), "vdm-md", "--chain", "x", "--autoencoder", "ae"])
    assert not (tmp_path / "weights" / "vdm-md").exists()


def test_names_a_folder_without_weights(tmp_path, script):
    with pytest.raises(SystemExit, match="final/ or checkpoints/step-N/"):
        script.main([str(tmp_path), "vdm-md", "--chain", "x"])


def test_set_changes_an_inference_default_and_refuses_an_unknown_key(tmp_path, script):
    folder = step_folder(tmp_path / "run", tiny(0))
    with pytest.raises(SystemExit, match="num_stepz"):
        script.main([str(folder), "vdm-md", "--chain", "x", "--set", "num_stepz=3"])
    assert not (tmp_path / "weights" / "vdm-md").exists()
    default = VDMMD.from_pretrained(folder / "ema").config.image_size
    script.main([str(folder), "vdm-md", "--chain", "x", "--set", f"image_size={default * 2}"])
    target = tmp_path / "weights" / "vdm-md"
    assert VDMMD.from_pretrained(target).config.image_size == default * 2
    assert json.loads((target / "training.json").read_text())["config_set"] == {"image_size": default * 2}
