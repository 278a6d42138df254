"""artlib.train: config validation and YAML / JSON round trip, the papers' schedules, batch randomness, every method
lowering its own loss on real CIFAR-10 images, logs and checkpoints, NaN stop, AMP / channels_last, the command line,
resuming after a real SIGKILL (same final weights as an uninterrupted run) and DDP (torchrun, gloo, 2 processes)
matching a single process."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from unittest import mock

import pytest
import torch
import yaml

from artlib import checkpoints, data, train

# One thread: many small ops; on a shared 2-core machine a 2-thread pool waits on a busy core at every op.
torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parent.parent
EPS = 8 / 255


def _small(tmp_path, method="art", **kw):
    """A tiny smoke config: 16 real training images (one batch), 10 test images, 2 steps."""
    base = dict(out_dir=str(tmp_path), train_subset=16, test_subset=10, batch_size=16, max_steps=2,
                eval_adv_steps=0, progress=False, checkpoint_every=1)
    base.update(kw)
    return train.config("smoke", "cifar10", method, **base)


def _fixed_batch(cfg):
    ds = data.load_dataset("cifar10", "train", subset=cfg.train_subset)
    return torch.stack([ds[i][0] for i in range(len(ds))]), torch.tensor([int(ds[i][1]) for i in range(len(ds))])


# ----------------------------------------------------------------------------------------------------------------------
# Configuration
# ----------------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_config_round_trip(tmp_path, suffix):
    cfg = train.config("paper", "cub200", "art", lr_milestones=[40, 80], lr_factors=[0.1, 0.1])
    path = cfg.save(tmp_path / f"cfg{suffix}")
    back = train.TrainConfig.load(path)
    assert back == cfg and back.fingerprint() == cfg.fingerprint()
    assert train.TrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg


def test_paper_profiles_carry_the_appendix_settings():
    c = train.config("paper", "cifar10", "art")          # ART A.3.2
    assert (c.arch, c.batch_size, c.epochs, c.lr, c.momentum, c.weight_decay) == ("wrn-28-10", 256, 100, 0.1, 0.9, 2e-4)
    assert (c.lr_milestones, c.lr_factors) == ([50, 80, 150], [0.1, 0.1, 0.5])
    assert (c.eps, c.step_size, c.steps, c.beta, c.lam) == (EPS, 1.5 / 255, 3, 50.0, 0.5)
    p = train.config("paper", "cifar10", "pgd")           # PGD-10, step 2/255
    assert (p.steps, p.step_size, p.eps) == (10, 2 / 255, EPS)
    s = train.config("paper", "svhn", "pgd")              # A.3.1: WRN-40-2, PGD-7 step 2.5/255
    assert (s.arch, s.epochs, s.steps, s.step_size) == ("wrn-40-2", 200, 7, 2.5 / 255)
    g = train.config("paper", "gtsrb", "art")             # A.3.3
    assert (g.batch_size, g.epochs, g.lr_milestones, g.balance) == (128, 12, [4, 6, 10], True)
    f = train.config("paper", "flowers17", "ig_norm")     # RAR Flower: lambda 0.1
    assert (f.epochs, f.lam, f.ig_steps, f.ig_attack_steps, f.steps) == (68, 0.1, 50, 5, 7)
    cub = train.config("paper", "cub200", "art")          # B.1
    assert (cub.arch, cub.batch_size, cub.lr, cub.weight_decay, cub.eps, cub.step_size, cub.reduce_channels) == \
        ("resnet50", 90, 0.01, 1e-4, 2 / 255, 1.5 / 255, "mean")
    assert cub.lr_milestones == [40, 80, 120, 160]
    cubp = train.config("paper", "cub200", "pgd")
    assert (cubp.batch_size, cubp.steps, cubp.step_size, cubp.lr_milestones) == (128, 7, 0.5 / 255, [60, 120, 180])
    # Inequality Table 1: PGD at eps 1, 2, 4, 8 /255 on ResNet-18; step eps/4; l2 variant
    for k in (1, 2, 4, 8):
        q = train.config("paper", "cifar10", "pgd", arch="resnet18", eps=f"{k}/255")
        assert q.eps == pytest.approx(k / 255) and q.step_size == pytest.approx(k / 255 / 4) and q.arch == "resnet18"
    l2 = train.config("paper", "cifar10", "pgd", norm="l2")
    assert (l2.norm, l2.eps, l2.step_size) == ("l2", 0.5, 0.125)
    sm = train.config("smoke", "cifar10", "art")
    assert (sm.arch, sm.train_subset, sm.epochs, sm.steps) == ("small-cnn", 320, 2, 3)


def test_lr_schedule():
    c = train.config("paper", "cifar10", "natural")
    assert [round(train.lr_at(c, e), 6) for e in (0, 49, 50, 79, 80, 99, 150)] == \
        [0.1, 0.1, 0.01, 0.01, 0.001, 0.001, 0.0005]


@pytest.mark.parametrize("kw, match", [
    (dict(method="adversarial"), "unknown method 'adversarial'; choices: 'natural', 'pgd'"),
    (dict(dataset="mnist"), "unknown dataset 'mnist'; choices: 'cifar10'"),
    (dict(arch="resnet9"), "unknown arch 'resnet9'; choices: 'wrn-28-10'"),
    (dict(eps=-1 / 255), "eps must be >= 0"),
    (dict(steps=0), "steps must be >= 1"),
    (dict(beta=0.0), "beta must be > 0"),
    (dict(beta=-50.0), "beta must be > 0"),
    (dict(lr=0.0), "lr must be > 0"),
    (dict(norm="l1"), "unknown norm 'l1'; choices: 'linf', 'l2'"),
    (dict(method="art", norm="l2"), "norm='l2' is only for methods"),
    (dict(method="art", variant="eq2"), "only used by method='art_variant'"),
    (dict(method="art_variant", variant="eq9"), "unknown variant 'eq9'; choices: 'art'"),
    (dict(lr_milestones=[10], lr_factors=[]), "same length"),
    (dict(bogus=1), "unknown config key\\(s\\) \\['bogus'\\]"),
    (dict(profile="fast"), "unknown profile 'fast'"),
])
def test_bad_configs_raise_one_clear_error(kw, match):
    kw = dict(kw)
    profile, dataset, method = kw.pop("profile", "smoke"), kw.pop("dataset", "cifar10"), kw.pop("method", "art")
    with pytest.raises(ValueError, match=match):
        train.config(profile, dataset, method, **kw)
    with pytest.raises(ValueError, match="unknown config key"):
        train.TrainConfig.from_dict({"methd": "art"})
    with pytest.raises(ValueError, match="steps must be >= 1"):
        train.TrainConfig(steps=0)


def test_fraction_strings_and_cli_values():
    c = train.TrainConfig.from_dict({"eps": "8/255", "step_size": "1.5/255", "lr_milestones": "[3, 5]",
                                     "lr_factors": "[0.1, 0.5]", "amp": "true", "reduce_channels": "null"})
    assert c.eps == EPS and c.step_size == 1.5 / 255 and c.lr_milestones == [3, 5] and c.amp is True
    assert c.reduce_channels is None


# ----------------------------------------------------------------------------------------------------------------------
# Batch randomness
# ----------------------------------------------------------------------------------------------------------------------
def test_cutout_and_augment_are_deterministic_and_shard_consistently():
    x = torch.rand(6, 3, 8, 8)
    mean = torch.tensor([0.1, 0.2, 0.3]).view(3, 1, 1)
    a = train.cutout(x, 4, mean, torch.Generator().manual_seed(0))
    b = train.cutout(x, 4, mean, torch.Generator().manual_seed(0))
    assert torch.equal(a, b)
    changed = (a != x).any(1)                                  # [B, H, W]
    assert all(0 < int(m.sum()) <= 16 for m in changed)       # one square of at most 4x4 pixels per image
    assert torch.allclose(a.permute(0, 2, 3, 1)[changed], mean.view(1, 3).expand(int(changed.sum()), 3))
    assert torch.equal(train.cutout(x, 0, mean), x)
    for mode in ("flip", "crop_flip"):
        full = train._augment(x, mode, torch.Generator().manual_seed(1))
        assert full.shape == x.shape and not torch.equal(full, x)
        for r in (0, 1):  # a DDP rank's share gets the same augmentation as in the single-process global batch
            part = train._augment_shard(x[r::2], mode, torch.Generator().manual_seed(1), 6, slice(r, None, 2))
            assert torch.equal(part, full[r::2])


# ----------------------------------------------------------------------------------------------------------------------
# Training on real images
# ----------------------------------------------------------------------------------------------------------------------
METHOD_CASES = [("natural", {}), ("pgd", {}), ("pgd", dict(norm="l2", eps=0.5)), ("pgd", dict(eps=2 / 255)),
                ("pgd_cutout", {}), ("art", {}), ("art", dict(i_star="perturbed", attr_space="normalized")),
                ("art", dict(setting="official")), ("art_pgd", {}), ("art_variant", dict(variant="eq2")),
                ("art_variant", dict(variant="eq4_l2")),
                ("art_variant", dict(variant="eq4_cos")), ("art_variant", dict(variant="argmin")),
                ("ig_norm", {}), ("ig_sum_norm", {})]


@pytest.mark.parametrize("method, kw", METHOD_CASES, ids=[f"{m}-{'-'.join(map(str, k.values()))}"
                                                          for m, k in METHOD_CASES])
def test_each_method_trains_two_steps_and_lowers_its_loss(shared_data, tmp_path, method, kw):
    """Two optimiser steps on one batch of 16 real CIFAR-10 images lower the method's own objective (inner
    maximisation included, random draws fixed) on that batch."""
    cfg = _small(tmp_path, method, **kw)
    X, Y = _fixed_batch(cfg)
    model0 = train.build_model(cfg)
    before = train.method_loss(model0, X, Y, cfg, seed=5)
    result = train.train(cfg)
    assert [s["step"] for s in result.steps] == [1, 2]
    result.model.train()
    after = train.method_loss(result.model, X, Y, cfg, seed=5)
    assert torch.isfinite(before["loss"]).all() and torch.isfinite(after["loss"]).all()
    assert float(after["loss"].detach().mean()) < float(before["loss"].detach().mean())
    if method != "natural":
        assert float((before["x_t"] - before["x"]).abs().max()) > 0
    if method in ("art", "art_pgd", "art_variant", "ig_norm", "ig_sum_norm"):
        assert torch.isfinite(before["attr"]).all()
    if method != "pgd" or kw.get("norm") != "l2":
        assert float((before["x_t"] - before["x"]).abs().max()) <= cfg.eps + 1e-6   # l-inf ball
    else:
        assert float((before["x_t"] - before["x"]).flatten(1).norm(dim=1).max()) <= cfg.eps + 1e-5   # l2 ball
    if method == "pgd_cutout":
        assert float((before["x"] - X).abs().amax((1, 2, 3)).min()) > 0          # every image has a cut-out square
    assert 0 <= float(before["x_t"].min()) and float(before["x_t"].max()) <= 1


def test_full_smoke_epoch_writes_logs_and_a_loadable_model(shared_data, tmp_path):
    cfg = _small(tmp_path, "art", max_steps=None, epochs=2, train_subset=32, test_subset=20, eval_adv_steps=2,
                 checkpoint_every=100)
    result = train.train(cfg)
    assert result.completed and len(result.log) == 2 and len(result.steps) == 4
    files = {p.name for p in result.run_dir.iterdir()}
    assert {"config.yaml", "last.pt", "last.pt.json", "model.pt", "model.pt.json", "log.csv", "log.json",
            "steps.csv"} <= files
    row = result.log[-1]
    for k in ("train_loss", "train_ce", "train_attr", "train_cos", "train_acc", "test_loss", "test_acc", "test_attr",
              "test_cos", "test_adv_acc"):
        assert isinstance(row[k], float) and row[k] == row[k], k      # finite, not NaN
    assert -1 <= row["test_cos"] <= 1 and 0 <= row["test_adv_acc"] <= row["test_acc"] + 0.2
    assert row["train_loss"] == pytest.approx(row["train_ce"] + cfg.lam * row["train_attr"], rel=1e-5)
    assert json.loads((result.run_dir / "log.json").read_text())[-1]["epoch"] == 2
    assert train.TrainConfig.load(result.run_dir / "config.yaml") == cfg
    model = train.load_model(result.run_dir)
    assert not model.training
    for k, v in result.model.state_dict().items():
        assert torch.equal(v.cpu(), model.state_dict()[k])
    # Re-running the finished configuration resumes, trains nothing and returns the same log - without decoding
    # any data (the checkpoint-cache hit of reproduce.get_model).
    def no_data(*a, **k):
        raise AssertionError("a finished run must not load its data")
    with mock.patch.object(train, "_Data", no_data):
        again = train.train(cfg)
    assert again.resumed_from == 4 and again.log == result.log and again.completed
    for k, v in result.model.state_dict().items():
        assert torch.equal(v.cpu(), again.model.state_dict()[k].cpu())
    # epochs is not in the run key (runs can be extended), but a finished longer run is never handed out as a
    # shorter one.
    with pytest.raises(ValueError, match="already holds 2 epochs but epochs=1"):
        train.train(cfg.replace(epochs=1))
    # A different configuration under the same run folder is refused.
    with pytest.raises(ValueError, match="different configuration .*'lam'"):
        train.train(cfg.replace(lam=0.7, run_name=result.run_dir.name))


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(shared_data, tmp_path):
    cfg = _small(tmp_path, "natural", lr=1e12, momentum=0.0, weight_decay=0.0, max_steps=6, train_subset=32)
    with pytest.raises(train.NonFiniteLossError, match="non-finite training loss .* at epoch .* last good checkpoint"):
        train.train(cfg)
    state, meta = checkpoints.load(cfg.run_dir() / "last.pt")
    assert meta["metrics"]["global_step"] == state["global_step"] >= 1
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())
    with pytest.raises(train.NonFiniteLossError):     # re-running the same command resumes and stops again
        train.train(cfg)


def test_amp_bfloat16_and_channels_last_double_backprop(shared_data, tmp_path):
    cfg = _small(tmp_path, "art", amp=True, channels_last=True, max_steps=1)
    X, Y = _fixed_batch(cfg)
    model = train.build_model(cfg).to(memory_format=torch.channels_last)
    out = train.method_loss(model, X.contiguous(memory_format=torch.channels_last), Y, cfg, seed=0)
    out["loss"].mean().backward()
    assert torch.isfinite(out["loss"]).all() and torch.isfinite(out["attr"]).all()
    assert float(model.net.features.conv1.weight.grad.abs().sum()) > 0
    result = train.train(cfg)
    assert len(result.steps) == 1 and result.steps[0]["loss"] == result.steps[0]["loss"]


def test_command_line(capsys):
    assert train.main(["--print-config", "--profile", "paper", "--method", "pgd", "--eps", "4/255"]) == 0
    cfg = yaml.safe_load(capsys.readouterr().out)
    assert cfg["eps"] == pytest.approx(4 / 255) and cfg["step_size"] == pytest.approx(1 / 255)
    assert cfg["arch"] == "wrn-28-10" and cfg["steps"] == 10
    assert train.main(["--method", "bogus"]) == 2
    assert "unknown method 'bogus'; choices: 'natural'" in capsys.readouterr().err
    assert train.main(["--method", "art", "--steps", "0", "--print-config"]) == 2
    assert "steps must be >= 1" in capsys.readouterr().err


# ----------------------------------------------------------------------------------------------------------------------
# Subprocesses: resume after SIGKILL, DDP
# ----------------------------------------------------------------------------------------------------------------------
def _env():
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    return env


def _run(cmd, timeout=300):
    """Run ``cmd`` in its own process group; on timeout kill the whole group (torchrun's workers included)."""
    proc = subprocess.Popen(cmd, env=_env(), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail(f"timed out after {timeout} s: {' '.join(map(str, cmd))}")
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def _cli(out_dir, *extra):
    return [sys.executable, "-m", "artlib.train", "--method", "art", "--out-dir", str(out_dir), "--train-subset", "64",
            "--test-subset", "10", "--batch-size", "16", "--epochs", "3", "--checkpoint-every", "1",
            "--eval-adv-steps", "0", "--progress", "false", *extra]


def _final_state(out_dir):
    (run,) = [p for p in Path(out_dir).iterdir() if p.is_dir()]
    state, meta = checkpoints.load(run / "model.pt")
    return state["model"], json.loads((run / "log.json").read_text()), run


@pytest.mark.slow
def test_resume_after_sigkill_gives_the_same_weights(shared_data, tmp_path):
    """Kill -9 a training process right after a mid-epoch checkpoint, re-run the same command: the final weights
    equal those of an uninterrupted run (CPU, same seed)."""
    ref, cut = tmp_path / "ref", tmp_path / "cut"
    done = _run(_cli(ref))
    assert done.returncode == 0, done.stderr[-2000:]
    proc = subprocess.Popen(_cli(cut), env=_env(), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    killed_at = None
    try:
        deadline = time.time() + 240
        while time.time() < deadline and proc.poll() is None:
            sidecars = list(cut.glob("*/last.pt.json"))
            if sidecars:
                try:
                    step = json.loads(sidecars[0].read_text())["metrics"]["global_step"]
                except (ValueError, KeyError):
                    step = 0
                if step >= 2:
                    proc.send_signal(signal.SIGKILL)
                    killed_at = step
                    break
            time.sleep(0.01)
    finally:
        if proc.poll() is None and killed_at is None:
            proc.kill()
        proc.wait(timeout=60)
    assert killed_at is not None and proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    (run,) = [p for p in cut.iterdir() if p.is_dir()]           # (beside it: the run's .lock file)
    assert not (run / "model.pt").exists()                     # it really was interrupted
    state, _ = checkpoints.load(run / "last.pt")
    assert 2 <= state["global_step"] < 12 and state["batch"] > 0   # mid-epoch checkpoint
    again = _run(_cli(cut))
    assert again.returncode == 0, again.stderr[-2000:]
    w_ref, log_ref, _ = _final_state(ref)
    w_cut, log_cut, _ = _final_state(cut)
    assert w_ref.keys() == w_cut.keys()
    for k in w_ref:
        assert torch.equal(w_ref[k], w_cut[k]), k
    strip = lambda log: [{k: v for k, v in r.items() if k != "time_s"} for r in log]  # noqa: E731
    assert strip(log_ref) == strip(log_cut)


@pytest.mark.slow
def test_ddp_two_processes_match_one_process(shared_data, tmp_path):
    """torchrun --nproc_per_node=2 (gloo, CPU) trains the same weights as one process: global batch 16 = 2 x 8, the
    same images, random starts and i* per global batch; gradients averaged by DistributedDataParallel."""
    one, two = tmp_path / "one", tmp_path / "two"
    args = ["--epochs", "1", "--train-subset", "48", "--checkpoint-every", "100"]
    r1 = _run(_cli(one, *args))
    assert r1.returncode == 0, r1.stderr[-2000:]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"] + _cli(two, *args)[1:]
    r2 = _run(cmd)
    assert r2.returncode == 0, r2.stderr[-3000:]
    w1, log1, run1 = _final_state(one)
    w2, log2, run2 = _final_state(two)
    w0 = train.build_model(train.TrainConfig.load(run1 / "config.yaml")).state_dict()
    moved = max(float((w1[k] - w0[k]).abs().max()) for k in w1)
    diff = max(float((w1[k] - w2[k]).abs().max()) for k in w1)
    # Same up to float summation order (batch 16 vs 2 x 8; the inner loop's sign() can flip a near-zero component).
    assert moved > 1e-2 and diff < 2e-4, (diff, moved)
    s1 = [r["loss"] for r in json.loads(json.dumps(_steps(run1)))]
    s2 = [r["loss"] for r in _steps(run2)]
    assert len(s1) == len(s2) == 3 and all(abs(a - b) < 5e-4 for a, b in zip(s1, s2)), (s1, s2)  # all-reduced
    assert log1[0]["train_acc"] == log2[0]["train_acc"]


def _steps(run):
    import csv
    with open(run / "steps.csv") as fh:
        return [{k: float(v) for k, v in r.items()} for r in csv.DictReader(fh)]


# ----------------------------------------------------------------------------------------------------------------------
# setting="official": the ART authors' released recipe (issue 11)
# ----------------------------------------------------------------------------------------------------------------------
def test_adding_the_setting_field_keeps_every_existing_fingerprint():
    """Hashes computed before ``setting`` / ``topk`` / ``head_lr_mult`` existed: the run folders (model cache) of
    every existing configuration stay valid."""
    assert train.config("smoke", "cifar10", "art").fingerprint() == "14b38173"
    assert train.config("paper", "cifar10", "art").fingerprint() == "27738a2f"
    assert train.config("smoke", "cifar10", "pgd").fingerprint() == "aa2d60ec"
    assert train.config("smoke", "cifar10", "natural").fingerprint() == "aff3f81d"
    d = train.config("smoke", "cifar10", "art").trajectory_dict()
    assert "setting" not in d and "topk" not in d and "head_lr_mult" not in d
    off = train.config("smoke", "cifar10", "art", setting="official")
    assert off.trajectory_dict()["setting"] == "official" and off.fingerprint() != "14b38173"


def test_official_profile_carries_the_released_recipe():
    c = train.config("official", "cifar10", "art")
    assert (c.setting, c.profile, c.arch, c.batch_size, c.epochs, c.nesterov) == ("official", "official", "wrn-28-10",
                                                                                 234, 101, True)
    assert (c.lr, c.momentum, c.weight_decay, c.lr_milestones, c.lr_factors) == (0.1, 0.9, 2e-4, [50, 80], [0.1, 0.1])
    assert [train.lr_at(c, e) for e in (49, 50, 79, 80, 100)] == pytest.approx([0.1, 0.01, 0.01, 0.001, 0.001])
    assert (c.eps, c.step_size, c.steps, c.lam, c.beta) == (EPS, 5 / 255, 3, 0.5, 50.0)
    assert (c.augment, c.i_star, c.attr_space, c.topk) == ("crop_flip_jitter", "perturbed", "normalized", None)
    u = train.config("official", "cub200", "art")
    assert (u.batch_size, u.head_lr_mult, u.reduce_channels, u.eps, u.step_size) == (12, 10.0, "abs_mean", 2 / 255,
                                                                                     1.5 / 255)
    s = train.config("smoke", "cifar10", "art", setting="official")   # smoke scale, released algorithm
    assert (s.arch, s.batch_size, s.epochs, s.step_size, s.nesterov) == ("small-cnn", 32, 2, 5 / 255, True)
    assert train.config("smoke", "cifar10", "art", setting="official", step_size=1 / 255).step_size == 1 / 255


@pytest.mark.parametrize("call, match", [
    (lambda: train.config("smoke", "cifar10", "art", setting="released"),
     "unknown setting 'released'; choices: 'paper', 'official'"),
    (lambda: train.config("smoke", "cifar10", "pgd", setting="official"), "only for method 'art'"),
    (lambda: train.config("official", "cifar10", "pgd"), "profile 'official'"),
    (lambda: train.config("official", "svhn", "art"), "profile 'official'"),
    (lambda: train.config("smoke", "cifar10", "art", setting="official", attr_space="pixel"),
     "attr_space='normalized'"),
    (lambda: train.config("smoke", "cifar10", "art", topk=0), "topk must be >= 1"),
    (lambda: train.config("smoke", "cifar10", "art", head_lr_mult=0), "head_lr_mult must be > 0"),
])
def test_bad_official_configs_raise(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_official_method_loss_is_ce_of_perturbed_plus_released_attr(shared_data, tmp_path):
    from artlib import losses
    cfg = _small(tmp_path, "art", setting="official", topk=200)
    X, Y = _fixed_batch(cfg)
    model = train.build_model(cfg).train()
    out = train.method_loss(model, X, Y, cfg, seed=3)
    u = torch.rand(X.shape, generator=torch.Generator().manual_seed(3))  # method_loss's random-start draws
    start = (X + (2 * u - 1) * cfg.eps).clamp(0, 1)
    moved = (out["x_t"] != start).flatten(1).sum(1)
    assert bool((moved <= 200).all()) and bool((moved > 0).all())   # only the top-k entries moved from the start
    with torch.no_grad():
        ce = torch.nn.functional.cross_entropy(model(out["x_t"]), Y, reduction="none")
    assert torch.allclose(out["ce"], ce, atol=1e-5)
    ref = losses.art_loss_official(model, out["x"], out["x_t"], Y, 50.0)
    assert float(out["attr"].mean()) == pytest.approx(float(ref.detach()), abs=1e-5)
    assert torch.allclose(out["loss"].detach(), ce + 0.5 * out["attr"], atol=1e-5)


def test_released_augmentation_is_deterministic_and_in_range():
    x = torch.rand(6, 3, 32, 32)
    a = train._augment(x, "crop_flip_jitter", torch.Generator().manual_seed(0))
    b = train._augment(x, "crop_flip_jitter", torch.Generator().manual_seed(0))
    assert torch.equal(a, b) and a.shape == x.shape and float(a.min()) >= 0 and float(a.max()) <= 1
    assert not torch.equal(a, train._augment(x, "crop_flip", torch.Generator().manual_seed(0)))


def test_head_lr_mult_param_groups():
    from artlib import models
    net = models.build_model("resnet18", 10)
    cfg = train.config("smoke", "cifar10", "art", arch="resnet18", head_lr_mult=10.0)
    groups = train._param_groups(net, cfg)
    assert len(groups) == 2 and groups[1]["lr_mult"] == 10.0
    names = {id(p): n for n, p in net.named_parameters()}
    assert all(names[id(p)].startswith(("net.layer4.", "net.fc.")) for p in groups[1]["params"])
    assert sum(len(g["params"]) for g in groups) == len(list(net.parameters()))
    with pytest.raises(ValueError, match="needs a ResNet"):
        train._param_groups(models.build_model("small-cnn", 10), train.config("smoke", head_lr_mult=10.0))


def test_paper_cub_starts_from_imagenet_weights_unless_told_otherwise():
    """ART B.1 fine-tunes ImageNet weights on CUB-200: the paper (and official) profile's default; ``"none"`` (or
    ``--pretrained none``) is how to ask for random initialisation, a path for other weights."""
    for profile, method in (("paper", "natural"), ("paper", "art"), ("paper", "pgd"), ("official", "art")):
        assert train.config(profile, "cub200", method).pretrained == "imagenet"
        assert train.config(profile, "cub200", method, arch="vgg-gap").pretrained == "imagenet"
    assert train.config("paper", "cub200", "art", pretrained=None).pretrained == "imagenet"   # None keeps the profile
    assert train.config("paper", "cub200", "art", pretrained="none").pretrained is None
    assert train.config("paper", "cub200", "art", pretrained="w.pth").pretrained == "w.pth"
    assert train.config("paper", "cifar10", "art").pretrained is None   # A.3 trains the others from scratch
    out = subprocess.run([sys.executable, "-m", "artlib", "train", "--profile", "paper", "--dataset", "cub200",
                          "--method", "art", "--pretrained", "none", "--print-config"], capture_output=True,
                         text=True, check=True).stdout
    assert "pretrained: null" in out
