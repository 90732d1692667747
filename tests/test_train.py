"""Trainer: exact resume, checkpoints, stages, EMA, NaN handling, config validation."""
import json
import math
import os
import signal
import subprocess
import sys
import time
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


@pytest.mark.parametrize("workers", [0, 2, 3])
def test_sampler_echo_order_spreads_uses_on_one_rank_and_worker(workers):
    """With echo K, the K uses of a render (items r*K .. r*K+K-1) each come once per epoch, on one
    rank, at least 2 batches apart and a multiple of the loader's worker count apart (so the same
    worker, whose cache holds the render, gets them), within a window sized to the cache."""
    from collections import defaultdict

    echo, batch, cache = 3, 4, 12
    ranks = [ShardedBatches(600, batch, 2, r, seed=5, echo=echo, echo_cache=cache, workers=workers) for r in range(2)]
    stride = max(workers, 2)
    assert all(s.window % stride == 0 and s.window * batch // max(workers, 1) <= cache for s in ranks)
    seen = {}
    for rank, sampler in enumerate(ranks):
        uses = defaultdict(list)
        batches = list(sampler.epoch_batches())
        assert len(batches) == sampler.batches_per_epoch and all(len(b) == batch for b in batches)
        for k, b in enumerate(batches):
            for i, _ in b:
                uses[i // echo].append((k, i % echo))
                assert i not in seen
                seen[i] = rank
        for render, where in uses.items():
            assert sorted(u for _, u in where) == list(range(echo))
            gaps = [b[0] - a[0] for a, b in zip(where, where[1:])]
            assert all(g >= 2 and g % stride == 0 for g in gaps) and max(gaps) <= 2 * sampler.window - stride
    assert len(seen) == 2 * ranks[0].batches_per_epoch * batch > 0.7 * 600  # renders that fill no round wait
    full = list(ranks[0].epoch_batches())
    middle = ShardedBatches(600, batch, 2, 0, seed=5, echo=echo, echo_cache=cache, workers=workers,
                            position=StreamPosition(0, 7))
    assert list(middle.epoch_batches()) == full[7:]  # a resume inside a round


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


def test_stage_lr_scale_multiplies_the_lr_of_matching_parameters(tmp_path):
    """Adam's first step moves every weight with a gradient by about its lr: 4x for the scaled tail."""
    raw = raw_config(max_steps=3, ema_decay=0.0, optimizer="adam", lr_schedule="constant", warmup_steps=0,
                     ckpt_every=1, weight_decay=0.0)
    raw["stages"][0]["lr_scale"] = {"tail\\..*": 4.0}
    torch.manual_seed(0)
    method = TinyConvDeblur(channels=8, blocks=1)
    start = {k: v.clone() for k, v in method.state_dict().items()}
    run(parse_config(raw), tmp_path, max_steps=1, method=method)
    moved = {k: float((method.state_dict()[k] - start[k]).abs().max()) for k in start}
    assert max(v for k, v in moved.items() if k.startswith("head.")) == pytest.approx(3e-3, rel=1e-3)
    assert max(v for k, v in moved.items() if k.startswith("tail.")) == pytest.approx(1.2e-2, rel=1e-3)
    run(parse_config(raw), tmp_path, max_steps=3, resume="auto", method=method)  # the groups resume
    raw["stages"][0]["lr_scale"] = {"tail\\..*": 0}
    with pytest.raises(ConfigError, match="lr_scale.*positive"):
        plan_stages(parse_config(raw))


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


# --- fault injection: SIGKILL at random moments, resume each time ---------------------------------

def _kill_self():
    os.kill(os.getpid(), signal.SIGKILL)


def _arm(point: str, n: int) -> None:
    """In a child: SIGKILL at the ``n``-th ``point`` event, inside a checkpoint write.

    save_pretrained: between the files of a checkpoint; half_json: with a JSON file (trainer.json,
    ema.json, the manifest, ...) half on disk; rename: manifest complete, folder not yet renamed;
    rmtree: an old checkpoint half removed by pruning.
    """
    from deblurdiff.train import checkpoint as ck, ema, trainer

    calls = [0]

    def due():
        calls[0] += 1
        return calls[0] == n

    if point == "save_pretrained":
        original = TinyConvDeblur.save_pretrained

        def save_pretrained(self, *args, **kwargs):
            if due():
                _kill_self()
            return original(self, *args, **kwargs)
        TinyConvDeblur.save_pretrained = save_pretrained
    elif point == "half_json":
        original_json = ck.write_json

        def write_json(path, data):
            if due():
                text = json.dumps(data)
                with open(path, "w") as handle:
                    handle.write(text[:len(text) // 2])
                    handle.flush()
                    os.fsync(handle.fileno())
                _kill_self()
            return original_json(path, data)
        for module in (ck, ema, trainer):
            module.write_json = write_json
    elif point in ("rename", "rmtree"):
        target = {"rename": ck.os, "rmtree": ck.shutil}[point]
        name = {"rename": "replace", "rmtree": "rmtree"}[point]
        original_fn = getattr(target, name)

        def wrapped(path, *args, **kwargs):
            if due():
                if point == "rmtree":  # remove about half of the files, then die
                    files = sorted(p for p in Path(path).rglob("*") if p.is_file())
                    for f in files[: len(files) // 2]:
                        f.unlink()
                _kill_self()
            return original_fn(path, *args, **kwargs)
        setattr(target, name, wrapped)


def _train_child(raw: dict, out: Path, log: Path, point: str | None = None, n: int = 0) -> int:
    """Fork (no interpreter start-up: torch is already imported) a process that runs
    ``--resume auto`` training into ``out``; returns its pid."""
    pid = os.fork()
    if pid == 0:  # child: never returns into pytest
        code = 3
        try:
            fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
            os.dup2(fd, 1)
            os.dup2(fd, 2)
            sys.stdout = sys.stderr = open(fd, "w", buffering=1, closefd=False)
            if point:
                _arm(point, n)
            run(parse_config(raw), out, resume="auto")
            code = 0
        except BaseException:
            import traceback
            traceback.print_exc()
        finally:
            os._exit(code)
    return pid


def _kill_and_resume(ref_final, raw, out, rounds, seed):
    """Train under ``rounds`` of kills ((point, n) in the child, or a delay in s for a kill from
    outside), checking after each that every checkpoint is complete; then a clean resume must
    start from the newest one and end with the uninterrupted run's weights."""
    import random

    rng = random.Random(seed)
    ckpts = out / "checkpoints"
    killed = 0
    for i, plan in enumerate(rounds + [None]):
        newest = next(iter(sorted(ckpts.glob("step-*"))[-1:]), None)
        log = out.parent / f"{out.name}-round{i}.log"
        if isinstance(plan, tuple):
            pid = _train_child(raw, out, log, *plan)
        else:
            pid = _train_child(raw, out, log)
            if plan is not None:
                time.sleep(plan * rng.random())
                os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        text = log.read_text()
        assert "Traceback" not in text, text[-3000:]
        if newest is not None:  # this round resumed from the last complete checkpoint
            assert f"resuming from {newest}" in text and "skipping damaged" not in text, text[-2000:]
        if os.WIFSIGNALED(status):
            assert os.WTERMSIG(status) == signal.SIGKILL
            killed += 1
        else:
            assert os.WEXITSTATUS(status) == 0, text[-3000:]
            if plan is not None:
                continue  # finished before the kill came: the next round resumes a finished run
        for folder in ckpts.glob("step-*"):  # never a half-written (or half-deleted) checkpoint
            verify(folder)
    assert_identical(out / "final", ref_final)
    leftovers = [p for p in out.rglob(".*") if p.name.endswith((".partial", ".deleting", ".tmp", ".old"))]
    assert not leftovers, leftovers
    assert json.loads((out / "final/training.json").read_text())["step"] == 6
    return killed


def test_sigkill_during_checkpoint_writes_then_resume_is_bit_identical(reference_run, tmp_path):
    """Killed inside each kind of checkpoint write (and once from outside), resumed each time: every
    resume starts from the last complete checkpoint and the final weights equal the uninterrupted run's."""
    _, ref_final = reference_run
    raw = raw_config(ckpt_every=1, keep_last=2)  # a checkpoint every step: pruning runs too
    # rmtree 1: pruning step 1 after step 3; save_pretrained 3: between the files of step 5; half_json 4:
    # a JSON of step 5 half written; rename 2, half_json 2: manifest in but not renamed / early JSON
    rounds = [("rmtree", 1), ("save_pretrained", 3), ("half_json", 4), ("rename", 2), ("half_json", 2), 0.5]
    assert _kill_and_resume(ref_final, raw, tmp_path / "run", rounds, seed=0) >= 5


@pytest.mark.slow
def test_sigkill_at_random_moments_many_times(reference_run, tmp_path):
    """Eight runs, each killed up to six times at random moments (a random delay from outside, or
    a random checkpoint-write point) and resumed until done: every one ends bit-identical."""
    import random

    _, ref_final = reference_run
    rng = random.Random(19)
    points = ["save_pretrained", "half_json", "rename", "rmtree"]
    killed = 0
    for campaign in range(8):
        rounds = [rng.uniform(0.0, 1.5) if rng.random() < 0.5 else (rng.choice(points), rng.randint(1, 8))
                  for _ in range(6)]
        killed += _kill_and_resume(ref_final, raw_config(ckpt_every=1, keep_last=2), tmp_path / f"run{campaign}",
                                   rounds, seed=campaign)
    assert killed >= 24


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


def test_echoed_items_do_not_depend_on_worker_processes_and_are_rendered_once(monkeypatch):
    """Data echoing through real loader workers: the same batches with 0 or 2 workers, and each
    worker's cache serves the second use of each render (renders counted across processes)."""
    import multiprocessing

    from deblurdiff.data import build_dataset
    from deblurdiff.data.synthetic import ShakeDataset
    from deblurdiff.train.config import DataConfig
    from deblurdiff.train.data import batch_stream

    renders = multiprocessing.get_context("fork").Value("i", 0)
    render = ShakeDataset._render

    def counted(self, index):
        with renders.get_lock():
            renders.value += 1
        return render(self, index)

    monkeypatch.setattr(ShakeDataset, "_render", counted)
    data = build_dataset(DataConfig(source="shake", size=16, subframes=3, length=64, options={"echo": 2}))
    got = []
    for workers in (0, 2):
        renders.value = 0
        sampler = ShardedBatches(64, 4, 1, 0, seed=4, echo=2, echo_cache=data.echo_cache, workers=workers)
        stream = batch_stream(data, sampler, num_workers=workers)
        got.append([next(stream) for _ in range(sampler.batches_per_epoch)])
        assert renders.value == sampler.batches_per_epoch * 4 // 2
    for a, b in zip(*got):
        assert all(torch.equal(a[k], b[k]) for k in a)


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


def test_warm_start_loads_a_backbone_into_blurdm_partially_and_refuses_strictly(tmp_path):
    """train.init: a trained NAFNet initialises BlurDM's backbone.* (partial); strict names the gap."""
    from deblurdiff.methods.blurdm import BlurDM
    from deblurdiff.methods.regression import NAFNetDeblur
    from deblurdiff.train.checkpoint import init_weights_folder, warm_start

    arch = {"width": 8, "enc_blk_nums": [1, 1], "middle_blk_num": 1, "dec_blk_nums": [1, 1]}
    torch.manual_seed(0)
    NAFNetDeblur(**arch).save_pretrained(tmp_path / "nafnet")
    trained = weights(tmp_path / "nafnet")
    blurdm = BlurDM(backbone="nafnet", backbone_options=arch, latent_width=8, latent_dim=16, latent_resblocks=1,
                    estimator_depth=2, timesteps=3)
    with pytest.raises(CheckpointError, match="init_strict"):
        warm_start(blurdm, init_weights_folder(tmp_path / "nafnet"), strict=True)
    report = warm_start(blurdm, init_weights_folder(tmp_path / "nafnet"), strict=False)
    own = blurdm.state_dict()
    assert report["loaded"] and all(k.startswith("backbone.") for k in report["loaded"])
    assert all(torch.equal(own[k], trained[k]) for k in report["loaded"])
    assert report["missing"] and not any(k in trained for k in report["missing"])
    # The prior-fusion parameters exist only in BlurDM: everything else of the backbone was loaded.
    assert {k for k in trained if k.startswith("backbone.")} - set(report["loaded"]) == set(report["misshapen"])


def test_warm_start_from_a_run_continues_its_ema_weights(reference_run, tmp_path):
    """A fresh run with train.init = the reference run's last checkpoint starts from its EMA
    weights (lr 0 keeps them), and the log says how many tensors it loaded."""
    out, final = reference_run
    step = sorted((out / "checkpoints").glob("step-*"))[-1]
    cfg = parse_config(raw_config(lr=0.0, warmup_steps=0, init=str(step)))
    new_final = run(cfg, tmp_path / "warm", max_steps=1)
    assert_identical(step / "ema", new_final)
    with pytest.raises(CheckpointError, match="not a folder of weights"):
        run(parse_config(raw_config(init=str(tmp_path / "nowhere"))), tmp_path / "cold")


@pytest.mark.parametrize("path", sorted((Path(__file__).resolve().parent.parent / "configs").glob("*.yaml")),
                         ids=lambda p: p.stem)
def test_every_shipped_config_loads(path):
    """Each config in configs/ passes the loader's checks (keys, types, stages), so a typo in one
    that no other test builds is caught before a run is launched from it."""
    from deblurdiff.train.config import load_config

    cfg = load_config(path)
    assert cfg.method and cfg.train.batch_size >= 1
