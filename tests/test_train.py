"""Trainer: exact resume, checkpoints, stages, EMA, NaN handling, config validation."""
import json
import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from deblurdiff.errors import CheckpointError, ConfigError
from deblurdiff.train import load_config, parse_config, run
from deblurdiff.train.checkpoint import find_resumable, verify
from deblurdiff.train.data import ShardedBatches, StreamPosition
from deblurdiff.train.reference import SyntheticBlurPairs, TinyConvDeblur
from deblurdiff.train.schedule import lr_factor, plan_stages
from deblurdiff.train.trainer import TrainingDiverged

REPO = Path(__file__).resolve().parent.parent
PY = sys.executable
METHOD = "deblurdiff.train.reference:TinyConvDeblur"
SOURCE = "deblurdiff.train.reference:synthetic_pairs"


def raw_config(**train):
    """A tiny two-stage config: stage 'outer' trains head/tail only, then everything with MSE."""
    return {
        "method": METHOD,
        "model": {"channels": 8, "blocks": 1},
        "data": {"source": SOURCE, "crop": 16, "length": 24, "seed": 3},
        "train": {"batch_size": 2, "lr": 3e-3, "max_steps": 6, "warmup_steps": 2, "ema_decay": 0.9,
                  "log_every": 1, "ckpt_every": 100, "keep_last": 3, **train},
        "stages": [{"name": "outer", "steps": 2, "trainable": ["head\\..*", "tail\\..*"]},
                   {"name": "all", "trainable": [".*"], "loss": {"loss": "mse"}}],
    }


def weights(folder):
    return load_file(str(next(Path(folder).glob("*.safetensors"))))


def assert_identical(a, b):
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    for key in wa:
        assert torch.equal(wa[key], wb[key]), key


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory):
    """Six uninterrupted steps (checkpoint every 2)."""
    out = tmp_path_factory.mktemp("ref")
    final = run(parse_config(raw_config(ckpt_every=2)), out)
    return out, final


def test_resume_is_bit_identical(reference_run, tmp_path):
    ref_out, ref_final = reference_run
    cfg = parse_config(raw_config(ckpt_every=2))
    run(cfg, tmp_path, max_steps=3)  # stops mid-stage 'all' (checkpoints at 2 and 3)
    assert (tmp_path / "checkpoints" / "step-000003").is_dir()
    first = weights(tmp_path / "final")
    run(cfg, tmp_path, max_steps=6, resume="auto")
    assert_identical(tmp_path / "final", ref_final)
    for part in ("model", "ema"):
        assert_identical(tmp_path / "checkpoints/step-000006" / part, ref_out / "checkpoints/step-000006" / part)
    # the run really continued (weights moved after the resume)
    assert any(not torch.equal(first[k], v) for k, v in weights(tmp_path / "final").items())
    state = json.loads((tmp_path / "checkpoints/step-000006/trainer.json").read_text())
    assert state["step"] == 6 and state["stage_name"] == "all"


def test_final_is_ema_and_loads_with_from_pretrained(reference_run):
    out, final = reference_run
    loaded = TinyConvDeblur.from_pretrained(final)
    ema = weights(out / "checkpoints/step-000006/ema")
    model = weights(out / "checkpoints/step-000006/model")
    for name, param in loaded.state_dict().items():
        assert torch.equal(param, ema[name])
    assert any(not torch.equal(ema[k], model[k]) for k in model)  # EMA is not just a copy of the weights
    assert json.loads((final / "training.json").read_text())["step"] == 6
    assert list((out / "tensorboard").glob("events.*"))


def test_stage_freezes_parameters_and_passes_options(tmp_path):
    seen = []

    class Recorder(TinyConvDeblur):
        def training_loss(self, batch):
            seen.append((batch["stage"], dict(batch["stage_options"])))
            return super().training_loss(batch)

    cfg = parse_config(raw_config(max_steps=3, ema_decay=0.0))
    torch.manual_seed(0)
    method = Recorder(channels=8, blocks=1)
    start = {k: v.clone() for k, v in method.state_dict().items()}
    run(cfg, tmp_path, max_steps=2, method=method)
    assert seen == [("outer", {}), ("outer", {})]
    after = method.state_dict()
    assert all(torch.equal(after[k], start[k]) for k in start if k.startswith("body."))
    assert all(not torch.equal(after[k], start[k]) for k in start if k.startswith(("head.", "tail.")))
    run(cfg, tmp_path, max_steps=3, resume="auto", method=method)
    assert seen[-1] == ("all", {"loss": "mse"})
    assert any(not torch.equal(method.state_dict()[k], start[k]) for k in start if k.startswith("body."))


def test_corrupted_checkpoint_is_refused_and_auto_falls_back(reference_run, tmp_path):
    ref_out, ref_final = reference_run
    cfg = parse_config(raw_config(ckpt_every=2))
    run(cfg, tmp_path, max_steps=4)
    newest = tmp_path / "checkpoints/step-000004"
    target = newest / "model/diffusion_pytorch_model.safetensors"
    data = bytearray(target.read_bytes())
    data[-5] ^= 0xFF
    target.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="sha256"):
        verify(newest)
    with pytest.raises(CheckpointError, match="step-000004"):
        run(cfg, tmp_path, resume=newest)
    found, skipped = find_resumable(tmp_path / "checkpoints")
    assert found.name == "step-000002" and "sha256" in skipped[0]
    # truncation and a missing manifest are caught too
    (tmp_path / "checkpoints/step-000004/optimizer.json").write_text("{")
    with pytest.raises(CheckpointError):
        verify(newest)
    (newest / "manifest.json").unlink()
    with pytest.raises(CheckpointError, match="incomplete"):
        verify(newest)
    run(cfg, tmp_path, max_steps=6, resume="auto")  # resumes from step 2
    assert_identical(tmp_path / "final", ref_final)


def test_all_checkpoints_damaged_is_an_error(tmp_path):
    cfg = parse_config(raw_config(ckpt_every=2))
    run(cfg, tmp_path, max_steps=2)
    (tmp_path / "checkpoints/step-000002/trainer.json").write_text("{}")
    with pytest.raises(CheckpointError, match="damaged"):
        run(cfg, tmp_path, max_steps=3, resume="auto")


def test_nan_steps_are_skipped_then_training_stops(tmp_path):
    class Exploding(TinyConvDeblur):
        calls = 0

        def training_loss(self, batch):
            Exploding.calls += 1
            out = super().training_loss(batch)
            if Exploding.calls in (2,) or Exploding.calls >= 5:
                out["loss"] = out["loss"] * float("nan")
            return out

    cfg = parse_config(raw_config(max_steps=20, ckpt_every=3, max_bad_steps=3))
    method = Exploding(channels=8, blocks=1)
    with pytest.raises(TrainingDiverged, match="3 steps in a row.*step 3"):
        run(cfg, tmp_path, method=method)
    verify(tmp_path / "checkpoints/step-000003")  # last good checkpoint intact
    for v in method.state_dict().values():
        assert torch.isfinite(v).all()
    assert not (tmp_path / "final").exists()


def test_sampler_shards_are_disjoint_and_resume_mid_epoch():
    ranks = [ShardedBatches(20, 2, 2, r, seed=5) for r in range(2)]
    epochs = [[i for b in s.epoch_batches() for i, _ in b] for s in ranks]
    assert not set(epochs[0]) & set(epochs[1]) and len(epochs[0]) == len(epochs[1]) == 10
    full = list(ShardedBatches(20, 2, 1, 0, seed=5).epoch_batches())
    later = list(ShardedBatches(20, 2, 1, 0, seed=5, position=StreamPosition(0, 4)).epoch_batches())
    assert later == full[4:]
    assert list(ShardedBatches(20, 2, 1, 0, seed=5, position=StreamPosition(1, 0)).epoch_batches()) != full
    with pytest.raises(ConfigError, match="batch_size"):
        ShardedBatches(3, 2, 2, 0, seed=0)


def test_lr_schedule_and_stage_plan():
    assert lr_factor(0, 10, 2, "cosine", 0.1) == pytest.approx(0.5)
    assert lr_factor(2, 10, 2, "cosine", 0.1) == pytest.approx(1.0)
    assert lr_factor(10, 10, 2, "cosine", 0.1) == pytest.approx(0.1)
    assert lr_factor(6, 10, 2, "cosine", 0.0) == pytest.approx(0.5)
    assert lr_factor(6, 10, 2, "linear", 0.0) == pytest.approx(0.5)
    stages = plan_stages(parse_config(raw_config(max_steps=9)))
    assert [(s.name, s.start, s.end) for s in stages] == [("outer", 0, 2), ("all", 2, 9)]
    with pytest.raises(ConfigError, match="stages\\[1\\]"):
        plan_stages(parse_config(raw_config(max_steps=2)))


def test_bf16_autocast_and_grad_accumulation_run(tmp_path):
    cfg = parse_config(raw_config(mixed_precision="bf16", grad_accum=2, max_steps=3, channels_last=True))
    final = run(cfg, tmp_path)
    assert all(torch.isfinite(v).all() for v in weights(final).values())


@pytest.mark.parametrize("yaml_text, message", [
    ("method: identity\ntrain: {lrr: 1}\n", "unknown key 'train.lrr'"),
    ("method: identity\nbogus: 1\n", "unknown key 'bogus'"),
    ("method: identity\nstages: [{name: a, stepz: 3}]\n", "unknown key 'stages\\[0\\].stepz'"),
    ("method: identity\ntrain: {batch_size: four}\n", "train.batch_size' must be int"),
    ("method: nosuch\n", "unknown method 'nosuch'"),
    ("method: 'nosuch.module:Thing'\n", "cannot be imported"),
])
def test_config_errors_name_key_and_file(tmp_path, yaml_text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml_text)
    with pytest.raises(ConfigError, match=message) as info:
        load_config(path)
    assert str(path) in str(info.value)


def test_set_overrides_and_cli_error_exit_code(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(json.dumps(raw_config()))
    cfg = load_config(path, ["train.lr=5e-4", "data.crop=32"])
    assert cfg.train.lr == 5e-4 and cfg.data.crop == 32
    proc = subprocess.run([PY, "-m", "deblurdiff", "train", str(path), "--set", "train.nope=1"],
                          capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 2 and "unknown key 'train.nope'" in proc.stderr and "Traceback" not in proc.stderr


KILL_SCRIPT = """
import os, signal, sys
from deblurdiff.train import parse_config, run
from deblurdiff.train.reference import SyntheticBlurPairs, TinyConvDeblur
import json, torch
torch.set_num_threads(int(sys.argv[4]))  # same as the parent: conv reductions depend on the thread count
cfg = parse_config(json.loads(sys.argv[1]))
kill_at = int(sys.argv[3])
class Killed(TinyConvDeblur):
    saves = 0
    def save_pretrained(self, *a, **k):
        Killed.saves += 1
        if Killed.saves == kill_at:   # dies while writing a checkpoint
            os.kill(os.getpid(), signal.SIGKILL)
        return super().save_pretrained(*a, **k)
run(cfg, sys.argv[2], method_class=Killed)
"""


@pytest.mark.slow
def test_sigkill_mid_training_then_resume_is_bit_identical(reference_run, tmp_path, capsys):
    """SIGKILL while the step-4 checkpoint is half written: the partial folder is ignored,
    ``--resume auto`` restarts from step 2 and ends bit-identical to the uninterrupted run."""
    _, ref_final = reference_run
    raw = raw_config(ckpt_every=2)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    # save_pretrained calls: step 2 model (1), step 2 ema (2), step 4 model (3) -> killed there
    proc = subprocess.run([PY, "-c", KILL_SCRIPT, json.dumps(raw), str(tmp_path), "3", str(torch.get_num_threads())],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    ckpts = tmp_path / "checkpoints"
    assert (ckpts / "step-000002").is_dir() and not (ckpts / "step-000004").exists()
    assert (ckpts / ".step-000004.partial").is_dir()
    capsys.readouterr()
    run(parse_config(raw), tmp_path, max_steps=6, resume="auto")
    assert "resuming from" in capsys.readouterr().out.split("step-000002")[0]
    assert json.loads((ckpts / "step-000006/trainer.json").read_text())["step"] == 6
    assert not (ckpts / ".step-000004.partial").exists()
    assert_identical(tmp_path / "final", ref_final)


DDP_SCRIPT = """
import hashlib, json, os, sys
import torch
from deblurdiff.train import parse_config, run
from deblurdiff.train.reference import SyntheticBlurPairs, TinyConvDeblur
out = sys.argv[2]
rank = int(os.environ["RANK"])
class Recording(TinyConvDeblur):
    def __init__(self, **kw):
        super().__init__(**kw)
        Recording.instance = self
    def training_loss(self, batch):
        with open(os.path.join(out, f"indices-rank{rank}.txt"), "a") as f:
            f.write(" ".join(map(str, batch["index"].tolist())) + "\\n")
        return super().training_loss(batch)
run(parse_config(json.loads(sys.argv[1])), out, method_class=Recording)
digest = hashlib.sha256(b"".join(p.detach().numpy().tobytes() for p in Recording.instance.parameters()))
with open(os.path.join(out, f"weights-rank{rank}.txt"), "w") as f:
    f.write(digest.hexdigest())
"""


@pytest.mark.slow
def test_two_processes_ddp_shard_data_and_agree(tmp_path):
    """torchrun, 2 CPU processes (gloo): disjoint data per step, identical weights after every stage."""
    torchrun = Path(PY).with_name("torchrun")
    raw = raw_config(ckpt_every=2, max_steps=4)
    script = tmp_path / "ddp_train.py"
    script.write_text(DDP_SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([str(torchrun), "--standalone", "--nproc_per_node", "2", str(script), json.dumps(raw),
                           str(tmp_path)], env=env, capture_output=True, text=True, timeout=400, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    steps = [[line.split() for line in (tmp_path / f"indices-rank{r}.txt").read_text().splitlines()] for r in (0, 1)]
    assert len(steps[0]) == len(steps[1]) == 4
    for a, b in zip(*steps):
        assert len(a) == len(b) == 2 and not set(a) & set(b)  # each step: different shard per rank
    hashes = [(tmp_path / f"weights-rank{r}.txt").read_text() for r in (0, 1)]
    assert hashes[0] == hashes[1]
    verify(tmp_path / "checkpoints/step-000004")
    assert (tmp_path / "checkpoints/step-000004/rng-rank1.safetensors").is_file()
    assert (tmp_path / "final/diffusion_pytorch_model.safetensors").is_file()
    assert "2 process(es)" in proc.stdout


def test_fresh_start_into_a_run_folder_is_refused(tmp_path):
    cfg = parse_config(raw_config(ckpt_every=2))
    run(cfg, tmp_path, max_steps=2)
    with pytest.raises(ConfigError, match="--resume auto"):
        run(cfg, tmp_path, max_steps=3)


def test_items_do_not_depend_on_worker_processes():
    """Per-item seeding: the same batches (augmentation included) with 0 or 2 loader workers."""
    from deblurdiff.train.data import batch_stream

    data = SyntheticBlurPairs(length=12, size=8, seed=1, augment=True)
    streams = [batch_stream(data, ShardedBatches(12, 3, 1, 0, seed=4), num_workers=w) for w in (0, 2)]
    for _ in range(5):  # crosses an epoch boundary (4 batches per epoch)
        a, b = next(streams[0]), next(streams[1])
        assert torch.equal(a["index"], b["index"]) and torch.equal(a["blur"], b["blur"])


def test_tensorboard_gets_loss_validation_and_samples(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    raw = raw_config(max_steps=4, val_every=2, val_batches=1, sample_every=4)
    raw["val_data"] = {"source": SOURCE, "crop": 16, "length": 4, "seed": 9, "augment": False}
    run(parse_config(raw), tmp_path)
    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    scalars = events.Tags()["scalars"]
    assert {"train/loss", "train/lr", "val/psnr", "val/ssim"} <= set(scalars)
    psnr = [e.value for e in events.Scalars("val/psnr")]
    assert len(psnr) == 2 and all(10 < v < 60 for v in psnr)
    assert any(tag.startswith("restored") for tag in events.Tags()["images"])
    lrs = [e.value for e in events.Scalars("train/lr")]
    assert lrs[0] == pytest.approx(1.5e-3)  # warm-up: step 1 of 2


def test_untrainable_method_is_a_config_error(tmp_path):
    from deblurdiff.methods.base import DeblurMethod

    cfg = parse_config(raw_config())
    with pytest.raises(ConfigError, match="nothing to train"):
        run(cfg, tmp_path, method=DeblurMethod())


@pytest.mark.slow
def test_cli_trains_and_resumes_the_toy_config(tmp_path):
    base = [PY, "-m", "deblurdiff", "train", str(REPO / "configs/toy-tiny.yaml"), "--out", str(tmp_path),
            "--set", "train.ckpt_every=2", "--set", "train.val_every=0", "--set", "train.batch_size=2"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    first = subprocess.run(base + ["--max-steps", "2"], capture_output=True, text=True, env=env, timeout=300)
    assert first.returncode == 0, first.stderr[-2000:]
    again = subprocess.run(base + ["--max-steps", "3"], capture_output=True, text=True, env=env, timeout=300)
    assert again.returncode == 2 and "--resume auto" in again.stderr
    resumed = subprocess.run(base + ["--max-steps", "3", "--resume", "auto"], capture_output=True, text=True,
                             env=env, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resuming from" in resumed.stdout
    assert json.loads((tmp_path / "final/training.json").read_text())["step"] == 3
    TinyConvDeblur.from_pretrained(tmp_path / "final")
