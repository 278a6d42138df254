"""The bad-input probe (issue 20) as tables: bad value -> the fragment of the one clear error it must give.

Every option of ``python -m artlib train`` (every :class:`artlib.train.TrainConfig` field) has rows here, checked by
``test_every_train_option_has_bad_input_rows``: a new option cannot land without them. Rules checked for each row:
the command line exits with status 2, prints the message on stderr as an ``error:`` line, and never a traceback; the
public functions raise one ``ValueError`` (or the module's own error class) whose message names the value and the
choices or bounds. Data and checkpoint files: a corrupt file is named, nothing in it is executed, and no temp file is
left behind. Valid values that used to be refused (``--lr 1e-3``) are rows of their own, with the value they give.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import pickle
import signal
import subprocess
import sys
import time
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from artlib import __main__ as cli_main
from artlib import attacks, attribution, checkpoints, data, metrics, models, params, train
from artlib.checkpoints import CheckpointError
from artlib.data import CorruptDataError
from fixtures_data import smooth_images, write_cifar_batches

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parent.parent


# ----------------------------------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------------------------------
def _call(main, argv):
    """Run a command-line ``main(argv)`` in this process: ``(exit status, stdout, stderr)``."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = main(list(argv))
        except SystemExit as exc:  # argparse: --help (0) and usage errors (2)
            rc = exc.code
    return rc, out.getvalue(), err.getvalue()


def _assert_clear_cli_error(rc, err, fragment):
    assert rc == 2, f"exit status {rc}, stderr: {err}"
    assert "Traceback" not in err, err
    assert fragment in err, f"{fragment!r} not in stderr: {err}"
    assert any(line.startswith(("error:", "python -m artlib")) and "error" in line for line in err.splitlines()), err


def _write_cifar_jpeg(root: Path, per_class: int = 2, split: str = "train") -> list[Path]:
    """A ``cifar10-jpeg/<split>/<class>/NNNN.jpg`` tree with ``per_class`` images per class."""
    paths = []
    imgs = smooth_images(10 * per_class, seed=5)
    for c, name in enumerate(data.CIFAR10_CLASSES):
        folder = root / "cifar10-jpeg" / split / name
        folder.mkdir(parents=True, exist_ok=True)
        for k in range(per_class):
            p = folder / f"{k:04d}.jpg"
            Image.fromarray(imgs[c * per_class + k]).save(p, quality=95)
            paths.append(p)
    return paths


HTML = b"<!DOCTYPE html>\n<html><head><title>Sign in</title></head><body>Please log in</body></html>\n"


# ----------------------------------------------------------------------------------------------------------------------
# python -m artlib train: every option, bad value -> message fragment
# ----------------------------------------------------------------------------------------------------------------------
# (argv, fragment). All validated before anything is trained (with --print-config, or failing before any data is
# read); rows that need a run folder or data files are in the tests further down.
TRAIN_CLI_ROWS = [
    (["--dataset", "mnist"], "unknown dataset 'mnist'; choices: 'cifar10'"),
    (["--method", "adversarial"], "unknown method 'adversarial'; choices: 'natural', 'pgd'"),
    (["--arch", "resnet9"], "unknown arch 'resnet9'; choices: 'wrn-28-10'"),
    (["--profile", "fast"], "unknown profile 'fast'; choices: 'smoke'"),
    (["--method", "art_variant", "--variant", "eq9"], "unknown variant 'eq9'; choices: 'art'"),
    (["--variant", "eq2"], "variant='eq2' is only used by method='art_variant'"),
    (["--epochs", "0"], "epochs must be >= 1, got 0"),
    (["--epochs", "1.5"], "epochs must be an int, got '1.5'"),
    (["--batch-size", "0"], "batch_size must be >= 1, got 0"),
    (["--batch-size", "many"], "batch_size must be an int, got 'many'"),
    (["--lr", "0"], "lr must be > 0, got 0.0"),
    (["--lr", "-1e-3"], "lr must be > 0, got -0.001"),
    (["--lr", "nan"], "lr must be a finite number, got nan"),
    (["--lr", "fast"], "lr must be a finite number, got 'fast'"),
    (["--momentum", "-0.9"], "momentum must be >= 0, got -0.9"),
    (["--nesterov", "maybe"], "nesterov must be true or false, got 'maybe'"),
    (["--weight-decay", "-5e-4"], "weight_decay must be >= 0, got -0.0005"),
    (["--lr-milestones", "[2.5]", "--lr-factors", "[0.1]"], "lr_milestones must be epochs (ints >= 0), got [2.5]"),
    (["--lr-milestones", "[5,3]", "--lr-factors", "[0.1,0.1]"], "lr_milestones must increase, got [5, 3]"),
    (["--lr-milestones", "[10]"], "lr_milestones [10] and lr_factors [] must have the same length"),
    (["--lr-milestones", "[1]", "--lr-factors", "[0]"], "lr_factors must be finite numbers > 0, got [0.0]"),
    (["--lr-milestones", "[1]", "--lr-factors", "[x]"], "lr_factors must be finite numbers > 0, got ['x']"),
    (["--eps", "8"], "eps must be in [0, 1] (l-inf, images in [0, 1]; 8/255 is written 8/255, not 8), got 8.0"),
    (["--eps", "0x10"], "eps must be a finite number, got '0x10'"),
    (["--eps", "8/0"], "eps '8/0' divides by zero"),
    (["--eps", "-8/255"], "eps must be >= 0, got -0.0313"),
    (["--eps=-8/255"], "eps must be >= 0, got -0.0313"),
    (["--eps", "inf"], "eps must be a finite number, got inf"),
    (["--method", "pgd", "--norm", "l2", "--eps", "100"], "eps must be in [0, 55.43] (l2: the diameter of"),
    (["--step-size", "2"], "step_size must be in [0, 1] (l-inf"),
    (["--step-size", "-1/255"], "step_size must be >= 0"),
    (["--steps", "0"], "steps must be >= 1, got 0"),
    (["--norm", "l1"], "unknown norm 'l1'; choices: 'linf', 'l2'"),
    (["--norm", "l2"], "norm='l2' is only for methods"),
    (["--lam", "-0.5"], "lam must be >= 0, got -0.5"),
    (["--beta", "0"], "beta must be > 0, got 0.0"),
    (["--i-star", "runner"], "unknown i_star 'runner'; choices: 'clean', 'perturbed'"),
    (["--reduce-channels", "max"], "unknown reduce_channels 'max'; choices: None, 'mean', 'abs_mean'"),
    (["--attr-space", "logit"], "unknown attr_space 'logit'; choices: 'pixel', 'normalized'"),
    (["--bn-mode", "frozen"], "unknown bn_mode 'frozen'; choices: 'train', 'eval'"),
    (["--setting", "released"], "unknown setting 'released'; choices: 'paper', 'official'"),
    (["--method", "pgd", "--setting", "official"], "setting='official' (the ART authors' released training) is only"),
    (["--topk", "0"], "topk must be >= 1, got 0"),
    (["--head-lr-mult", "0"], "head_lr_mult must be > 0, got 0.0"),
    (["--image-size", "3"], "image_size must be >= 4 (the smallest input arch 'small-cnn' takes), got 3"),
    (["--arch", "vgg-gap", "--image-size", "8"], "image_size must be >= 16 (the smallest input arch 'vgg-gap'"),
    (["--image-size", "big"], "image_size must be an int, got 'big'"),
    (["--ig-steps", "0"], "ig_steps must be >= 1, got 0"),
    (["--ig-attack-steps", "0"], "ig_attack_steps must be >= 1, got 0"),
    (["--cutout", "-1"], "cutout must be >= 0, got -1"),
    (["--train-subset", "0"], "train_subset must be >= 1, got 0"),
    (["--test-subset", "-5"], "test_subset must be >= 1, got -5"),
    (["--balance", "maybe"], "balance must be true or false or an int >= 1 (images per class), got 'maybe'"),
    (["--augment", "mixup"], "unknown augment 'mixup'; choices: 'none', 'flip'"),
    (["--cache", "sometimes"], "cache must be true or false, got 'sometimes'"),
    (["--eval-every", "0"], "eval_every must be >= 1, got 0"),
    (["--eval-attr-max", "-1"], "eval_attr_max must be >= 0, got -1"),
    (["--eval-adv-steps", "-1"], "eval_adv_steps must be >= 0, got -1"),
    (["--seed", "-1"], "seed must be >= 0, got -1"),
    (["--seed", "0.5"], "seed must be an int, got '0.5'"),
    (["--device", "tpu"], "unknown device 'tpu'; choices: 'auto', 'cpu', 'cuda', 'cuda:N'"),
    (["--amp", "maybe"], "amp must be true or false, got 'maybe'"),
    (["--channels-last", "2"], "channels_last must be true or false, got '2'"),
    (["--impl", "slow"], "unknown impl 'slow'; choices: 'fast', 'reference'"),
    (["--num-workers", "-2"], "num_workers must be >= 0, got -2"),
    (["--run-name", "a/b"], "run_name must be a plain folder name (no '/', not '.' or '..'), got 'a/b'"),
    (["--run-name", ".."], "run_name must be a plain folder name"),
    (["--resume", "nope"], "resume must be true or false, got 'nope'"),
    (["--checkpoint-every", "0"], "checkpoint_every must be >= 1, got 0"),
    (["--max-steps", "0"], "max_steps must be >= 1, got 0"),
    (["--progress", "loud"], "progress must be true or false, got 'loud'"),
    (["--bogus", "1"], "unrecognized arguments: --bogus"),
    (["--eps"], "argument --eps: expected one argument"),
    (["--config", "/nonexistent/cfg.yaml"], "config file not found: /nonexistent/cfg.yaml"),
]
# Rows run by train() (no --print-config): paths checked before any data is read. {tmp} is the test's folder.
TRAIN_RUN_ROWS = [
    (["--pretrained", "{tmp}/missing.pth"], "pretrained weights file not found: {tmp}/missing.pth"),
    (["--out-dir", "{tmp}/a_file"], "out_dir {tmp}/a_file is a file, not a folder"),
    (["--data-root", "{tmp}/nowhere"], "dataset 'cifar10' not found under the data root {tmp}/nowhere"),
]


@pytest.mark.parametrize("argv, fragment", TRAIN_CLI_ROWS, ids=[" ".join(a) for a, _ in TRAIN_CLI_ROWS])
def test_train_cli_bad_value_is_one_clear_line(argv, fragment):
    rc, _, err = _call(train.main, argv + ["--print-config"])
    _assert_clear_cli_error(rc, err, fragment)


@pytest.mark.parametrize("argv, fragment", TRAIN_RUN_ROWS, ids=[" ".join(a) for a, _ in TRAIN_RUN_ROWS])
def test_train_cli_bad_path_is_one_clear_line(tmp_path, argv, fragment):
    (tmp_path / "a_file").write_text("not a folder")
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    extra = [] if "--out-dir" in argv else ["--out-dir", str(tmp_path / "runs")]
    rc, _, err = _call(train.main, argv + extra + ["--progress", "false"])
    _assert_clear_cli_error(rc, err, fragment.replace("{tmp}", str(tmp_path)))


def test_train_config_file_errors(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("lr: [0.1\n")
    rc, _, err = _call(train.main, ["--config", str(bad), "--print-config"])
    _assert_clear_cli_error(rc, err, f"{bad} is not valid YAML / JSON")
    listy = tmp_path / "list.yaml"
    listy.write_text("- lr\n- 0.1\n")
    rc, _, err = _call(train.main, ["--config", str(listy), "--print-config"])
    _assert_clear_cli_error(rc, err, "does not hold a mapping of config fields")
    amp = tmp_path / "amp.yaml"
    amp.write_text("amp: maybe\nlr: 1e-3\n")        # YAML 1.1 reads 1e-3 as a string: it must still be 0.001
    rc, _, err = _call(train.main, ["--config", str(amp), "--print-config"])
    _assert_clear_cli_error(rc, err, "amp must be true or false, got 'maybe'")
    ok = tmp_path / "ok.yaml"
    ok.write_text("lr: 1e-3\nweight_decay: 5e-4\neps: 4/255\n")
    rc, out, err = _call(train.main, ["--config", str(ok), "--print-config"])
    assert rc == 0, err
    cfg = yaml.safe_load(out)
    assert (cfg["lr"], cfg["weight_decay"], cfg["eps"]) == (0.001, 0.0005, 4 / 255)


def test_every_train_option_has_bad_input_rows():
    """A new TrainConfig field needs a description in train.field_help() (the --help) and a row in these tables."""
    names = {f.name for f in fields(train.TrainConfig)}
    covered = set()
    for argv, _ in TRAIN_CLI_ROWS + TRAIN_RUN_ROWS:
        for a in argv:
            if a.startswith("--"):
                covered.add(a[2:].split("=")[0].replace("-", "_"))
    assert names - covered == set(), f"options without a bad-input row: {sorted(names - covered)}"
    assert set(train.field_help()) == names


# ----------------------------------------------------------------------------------------------------------------------
# Valid values that must be accepted (and give the right number)
# ----------------------------------------------------------------------------------------------------------------------
VALID_CLI_ROWS = [
    (["--lr", "1e-3"], "lr", 0.001),
    (["--lr", "1.0e-2"], "lr", 0.01),
    (["--weight-decay", "5e-4"], "weight_decay", 0.0005),
    (["--eps", "1e-2"], "eps", 0.01),
    (["--eps", "8/255"], "eps", 8 / 255),
    (["--eps", "1.5/255"], "eps", 1.5 / 255),
    (["--step-size", "1e-3"], "step_size", 0.001),
    (["--lam", "1e-1"], "lam", 0.1),
    (["--beta", "5e1"], "beta", 50.0),
    (["--head-lr-mult", "1e1"], "head_lr_mult", 10.0),
    (["--momentum", "0"], "momentum", 0.0),
    (["--amp", "false"], "amp", False),
    (["--amp", "True"], "amp", True),
    (["--resume", "no"], "resume", False),
    (["--reduce-channels", "none"], "reduce_channels", None),
    (["--reduce-channels", "mean"], "reduce_channels", "mean"),
    (["--train-subset", "null"], "train_subset", None),
    (["--lr-milestones", "1,2", "--lr-factors", "0.1,1e-1"], "lr_factors", [0.1, 0.1]),
    (["--lr-milestones", "[1, 2]", "--lr-factors", "[0.1, 0.5]"], "lr_milestones", [1, 2]),
    (["--balance", "500"], "balance", 500),
    (["--run-name", "my-run"], "run_name", "my-run"),
]


@pytest.mark.parametrize("argv, name, value", VALID_CLI_ROWS, ids=[" ".join(a) for a, _, _ in VALID_CLI_ROWS])
def test_train_cli_valid_values(argv, name, value):
    rc, out, err = _call(train.main, argv + ["--print-config"])
    assert rc == 0, err
    assert yaml.safe_load(out)[name] == value


def test_config_api_takes_the_same_strings():
    assert train.config(lr="1e-3").lr == 0.001
    assert train.config("smoke", "cifar10", "pgd", eps="1e-2").step_size == pytest.approx(0.01 / 4)
    assert train.TrainConfig.from_dict({"lr": "5e-4", "amp": "false"}).amp is False
    with pytest.raises(ValueError, match="eps must be a finite number, got 'abc'"):
        train.config("smoke", "cifar10", "pgd", eps="abc")
    with pytest.raises(ValueError, match="amp must be true or false, got 'maybe'"):
        train.TrainConfig(amp="maybe")
    with pytest.raises(ValueError, match=r"eps must be in \[0, 1\]"):
        train.config("smoke", "cifar10", "pgd", eps=8)


def test_cli_fingerprints_are_those_of_the_python_values():
    """The parser change (no YAML 1.1 numbers) keeps the run keys: the same values give the same hashes."""
    assert train.config("smoke", "cifar10", "art").fingerprint() == "14b38173"
    rc, out, _ = _call(train.main, ["--eps", "8/255", "--print-config"])
    assert rc == 0 and train.TrainConfig.from_dict(yaml.safe_load(out)).fingerprint() == "14b38173"
    a = train.config("paper", "cifar10", "pgd", eps="4/255")
    b = train.config("paper", "cifar10", "pgd", eps=4 / 255)
    assert a.trajectory_dict() == b.trajectory_dict()


# ----------------------------------------------------------------------------------------------------------------------
# --help: description, choices and the profile's own default for every option; usage says python -m artlib train
# ----------------------------------------------------------------------------------------------------------------------
def test_train_help_shows_descriptions_choices_and_the_profiles_defaults():
    rc, out, _ = _call(cli_main.main, ["train", "--help"])
    assert rc == 0
    assert out.startswith("usage: python -m artlib train")
    flat = " ".join(out.split())
    for name, (text, choices) in train.field_help().items():
        opt = "--" + name.replace("_", "-")
        assert opt in out, opt
        assert " ".join(text.split()) in flat, name
        if choices:
            assert "{" + ",".join(choices) + "}" in out, name
    # the smoke profile's own values (the generic dataclass defaults are 0.0002, 100, false)
    assert "SGD weight decay (>= 0) (default: 0.0005)" in flat
    assert "optimiser steps between checkpoints (int >= 1) (default: 5)" in flat
    assert "instead of a DataLoader (default: true)" in flat
    assert "(default: 8/255)" in flat
    rc, out, _ = _call(train.main, ["--profile", "paper", "--method", "pgd", "--help"])
    flat = " ".join(out.split())
    assert rc == 0 and "SGD weight decay (>= 0) (default: 0.0002)" in flat and "(default: 500)" in flat
    assert "network (artlib.models.ARCHS) (default: wrn-28-10)" in flat and "(default: 2/255)" in flat


# ----------------------------------------------------------------------------------------------------------------------
# python -m artlib: the other commands
# ----------------------------------------------------------------------------------------------------------------------
MAIN_CLI_ROWS = [
    (["reproduce", "--jobs", "0"], "argument --jobs: must be an int >= 1, got 0"),
    (["reproduce", "--jobs", "two"], "argument --jobs: must be an int >= 1, got 'two'"),
    (["reproduce", "--cell-timeout", "-5"], "argument --cell-timeout: must be an int >= 0, got -5"),
    (["reproduce", "--profile", "huge"], "argument --profile: invalid choice: 'huge'"),
    (["data", "download", "mnist"], "unknown dataset 'mnist'; choices: cifar10"),
    (["data", "unpack"], "argument data_command: invalid choice: 'unpack'"),
    (["models", "convert", "{tmp}/none.ckpt", "--out", "{tmp}/o.pt"], "checkpoint not found: {tmp}/none.ckpt"),
    (["models", "convert", "{tmp}/page.ckpt", "--out", "{tmp}/o.pt"], "{tmp}/page.ckpt is an HTML page, not a"),
    (["models", "convert", "{tmp}/page.ckpt"], "the following arguments are required: --out"),
    (["fly"], "argument command: invalid choice: 'fly'"),
]


@pytest.mark.parametrize("argv, fragment", MAIN_CLI_ROWS, ids=[" ".join(a) for a, _ in MAIN_CLI_ROWS])
def test_main_cli_bad_value_is_one_clear_line(tmp_path, argv, fragment):
    (tmp_path / "page.ckpt").write_bytes(HTML)
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    rc, _, err = _call(cli_main.main, argv)
    _assert_clear_cli_error(rc, err, fragment.replace("{tmp}", str(tmp_path)))
    assert not (tmp_path / "o.pt").exists()


def test_cli_subprocess_exit_2_without_traceback():
    """End to end, in a fresh interpreter: status 2, the one line on stderr, no traceback."""
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    run = subprocess.run([sys.executable, "-m", "artlib", "train", "--eps", "8/0", "--print-config"], cwd=ROOT,
                         env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 2 and run.stdout == ""
    assert run.stderr.strip().splitlines() == ["error: eps '8/0' divides by zero; give a number or a fraction such "
                                               "as 8/255"]


# ----------------------------------------------------------------------------------------------------------------------
# attacks / attribution / metrics: documented contracts
# ----------------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    return models.build_model("small-cnn", 10).eval()


@pytest.fixture(scope="module")
def xy():
    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    return x, torch.tensor([1, 2])


X_BAD = {  # name -> (function of x, fragment)
    "0-255": (lambda x: x * 255, "must hold images in [0, 1] (normalisation is inside the model), got values in "
                                 "[0.02032, 255]; it looks like 0-255 pixel values: divide by 255"),
    "nan": (lambda x: torch.where(x > 0.5, torch.full_like(x, float("nan")), x), "got NaN or inf"),
    "inf": (lambda x: torch.where(x > 0.5, torch.full_like(x, float("inf")), x), "got NaN or inf"),
    "negative": (lambda x: x - 0.5, "must hold images in [0, 1]"),
    "channels-last": (lambda x: x.permute(0, 2, 3, 1).contiguous(),
                      "x has 16 channels (shape (2, 16, 16, 3), read as [B, C, H, W]) but the model takes 3; it looks "
                      "channels-last [B, H, W, C]: pass x.permute(0, 3, 1, 2)"),
    "3-d": (lambda x: x[0], "x must be a float tensor [B, C, H, W], got (3, 16, 16)"),
    "int": (lambda x: (x * 255).to(torch.uint8), "x must be a floating-point tensor, got dtype torch.uint8"),
    "empty": (lambda x: x[:0], "x is empty"),
}


@pytest.mark.parametrize("method", ["ig", "saliency", "gradcam"])
@pytest.mark.parametrize("case", list(X_BAD))
def test_attribute_refuses_bad_images(net, xy, method, case):
    fn, fragment = X_BAD[case]
    with pytest.raises(ValueError) as err:
        attribution.attribute(net, fn(xy[0]), 1, method, n_steps=4)
    assert fragment in str(err.value), str(err.value)


@pytest.mark.parametrize("target, fragment", [
    (10, "target 10 is out of range for a model with 10 classes (0..9)"),
    (torch.tensor([3, 12]), "target 12 is out of range for a model with 10 classes (0..9)"),
    (-1, "target must hold class indices >= 0, got -1"),
    (True, "target must be an int or an integer Tensor[B], got True"),
    (torch.tensor([1.0, 2.0]), "target must be an int or an integer Tensor[B]"),
    (torch.tensor([1, 2, 3]), "target has 3 entries but x has batch size 2"),
])
@pytest.mark.parametrize("method", ["ig", "saliency", "cam"])
def test_attribute_refuses_bad_targets(net, xy, target, fragment, method):
    with pytest.raises(ValueError) as err:
        attribution.attribute(net, xy[0], target, method, n_steps=4)
    assert fragment in str(err.value)


def test_attribute_target_range_without_a_named_classifier(net, xy):
    """A wrapped model (ART's log-softmax evaluation) names no classifier: the range is found after the failure."""
    wrapped = torch.nn.Sequential(net, torch.nn.LogSoftmax(1))
    with pytest.raises(ValueError, match=r"target 10 is out of range for a model with 10 classes \(0\.\.9\)"):
        attribution.attribute(wrapped, xy[0], 10, "saliency")
    assert attribution.attribute(wrapped, xy[0], 9, "saliency").shape == xy[0].shape


ATTACK_ROWS = [
    ("pgd eps 8", lambda m, x, y: attacks.pgd(m, x, y, eps=8.0, step_size=2.0, steps=1),
     "eps must be in [0, 1] for an l-inf ball in [0, 1] pixel space, got 8.0 (for 8/255 pass eps=8/255, not 8)"),
    ("pgd eps -1", lambda m, x, y: attacks.pgd(m, x, y, eps=-1 / 255, step_size=1 / 255, steps=1), "eps must be >= 0"),
    ("pgd eps nan", lambda m, x, y: attacks.pgd(m, x, y, eps=float("nan"), step_size=1 / 255, steps=1),
     "eps must be a finite number, got nan"),
    ("pgd l2 eps 100", lambda m, x, y: attacks.pgd(m, x, y, eps=100.0, step_size=1.0, steps=1, norm="l2"),
     "eps must be in [0, 27.71] for an l2 ball in [0, 1] pixel space"),
    ("pgd norm", lambda m, x, y: attacks.pgd(m, x, y, 8 / 255, 2 / 255, 1, norm="l1"),
     "unknown norm 'l1'; choose one of ['linf', 'l2']"),
    ("pgd steps", lambda m, x, y: attacks.pgd(m, x, y, 8 / 255, 2 / 255, -1), "steps must be an int >= 0, got -1"),
    ("pgd x 0-255", lambda m, x, y: attacks.pgd(m, x * 255, y, 8 / 255, 2 / 255, 1), "must hold images in [0, 1]"),
    ("pgd labels", lambda m, x, y: attacks.pgd(m, x, y.float(), 8 / 255, 2 / 255, 1),
     "y must be an integer Tensor[B] of class indices"),
    ("ifia eps 8", lambda m, x, y: attacks.ifia(m, x, y, k=10, eps=8.0, step_size=1 / 255, steps=1),
     "eps must be in [0, 1] for an l-inf ball"),
    ("ifia k", lambda m, x, y: attacks.ifia(m, x, y, k=1000, eps=8 / 255, step_size=1 / 255, steps=1),
     "k must be an int in [1, 256], got 1000"),
    ("spsa eps 8", lambda m, x, y: attacks.spsa(m, x, y, eps=8.0, steps=1), "eps must be in [0, 1] for an l-inf"),
    ("targeted eps 8", lambda m, x, y: attacks.targeted_attribution_attack(m, x, torch.rand(2, 16, 16), eps=8.0,
                                                                            step_size=1 / 255, steps=1),
     "eps must be in [0, 1] for an l-inf ball"),
]


@pytest.mark.parametrize("name, call, fragment", ATTACK_ROWS, ids=[r[0] for r in ATTACK_ROWS])
def test_attacks_refuse_bad_arguments(net, xy, name, call, fragment):
    with pytest.raises(ValueError) as err:
        call(net, *xy)
    assert fragment in str(err.value), str(err.value)


def test_pgd_accepts_the_pixel_space_radius(net, xy):
    x, y = xy
    x_adv = attacks.pgd(net, x, y, eps=8 / 255, step_size=2 / 255, steps=1, seed=0)
    assert float((x_adv - x).abs().max()) <= 8 / 255 + 1e-6


@pytest.mark.parametrize("bad, fragment", [
    (float("inf"), "gini needs finite values, got inf"),
    (float("nan"), "gini needs finite values, got NaN"),
])
def test_gini_refuses_non_finite_attributions(bad, fragment):
    a = torch.rand(2, 3, 4, 4)
    a[0, 0, 0, 0] = bad
    for fn in (metrics.gini_global, lambda t: metrics.gini(t.flatten(1))):
        with pytest.raises(ValueError) as err:
            fn(a)
        assert fragment in str(err.value)
    with pytest.raises(ValueError, match="non-negative"):
        metrics.gini(torch.tensor([[-1.0, 2.0]]))


# ----------------------------------------------------------------------------------------------------------------------
# Data files: corrupt files are named; nothing in a CIFAR batch is executed
# ----------------------------------------------------------------------------------------------------------------------
def _corrupt_jpeg(kind: str, path: Path) -> None:
    raw = path.read_bytes()
    path.write_bytes({"truncated": raw[: len(raw) // 3], "empty": b"", "html": HTML, "text": b"hello"}[kind])


@pytest.mark.parametrize("kind, fragment", [
    ("truncated", "cannot be read as an image"),
    ("empty", "is empty (0 bytes)"),
    ("html", "is an HTML page, not an image"),
    ("text", "cannot be read as an image"),
])
def test_corrupt_jpeg_is_named(tmp_path, kind, fragment):
    paths = _write_cifar_jpeg(tmp_path)
    bad = paths[3]
    _corrupt_jpeg(kind, bad)
    ds = data.load_dataset("cifar10", "train", root=tmp_path)
    ds[0]  # the others still load
    with pytest.raises(CorruptDataError) as err:
        ds[3]
    assert str(bad) in str(err.value) and fragment in str(err.value)
    assert isinstance(err.value, ValueError) and "\n" not in str(err.value)


def _batch(tmp_path, name="data_batch_1"):
    write_cifar_batches(tmp_path)
    return tmp_path / "cifar-10-batches-py" / name


class _Evil:
    """Unpickling this runs ``open(marker, 'w')`` (what a crafted batch in a data root did)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


@pytest.mark.parametrize("kind, fragment", [
    ("truncated", "is truncated or corrupt"),
    ("empty", "is empty (0 bytes)"),
    ("wrong-shape", "'data' has shape (4, 1000) and there are 4 labels; expected [N, 3072]"),
    ("fewer-labels", "'data' has shape (4, 3072) and there are 3 labels"),
    ("bad-labels", "labels must be in 0..9, got 0..12"),
    ("float-data", "'data' must be uint8"),
    ("not-a-dict", "holds a list, not the batch dict"),
    ("no-data", "lacks its 'data' / 'labels' entries"),
    ("crafted", "refusing to unpickle the CIFAR-10 batch"),
    ("crafted-os", "it names the global posix.system"),
])
def test_corrupt_cifar_batch_is_named_and_never_executed(tmp_path, kind, fragment):
    path = _batch(tmp_path)
    raw = path.read_bytes()
    marker = tmp_path / "PWNED"
    arr = np.zeros((4, 3072), np.uint8)
    payload = {
        "truncated": raw[: len(raw) // 2],
        "empty": b"",
        "wrong-shape": pickle.dumps({b"data": np.zeros((4, 1000), np.uint8), b"labels": [0, 1, 2, 3]}),
        "fewer-labels": pickle.dumps({b"data": arr, b"labels": [0, 1, 2]}),
        "bad-labels": pickle.dumps({b"data": arr, b"labels": [0, 1, 2, 12]}),
        "float-data": pickle.dumps({b"data": arr.astype(np.float32), b"labels": [0, 1, 2, 3]}),
        "not-a-dict": pickle.dumps([arr]),
        "no-data": pickle.dumps({b"pixels": arr}),
        "crafted": pickle.dumps({b"data": _Evil(marker), b"labels": []}),
        "crafted-os": pickle.dumps({b"data": arr, b"labels": [0, 1, 2, 3], b"x": _OsSystem(marker)}),
    }[kind]
    path.write_bytes(payload)
    with pytest.raises(CorruptDataError) as err:
        data.load_dataset("cifar10", "train", root=tmp_path)
    assert str(path) in str(err.value) and fragment in str(err.value), str(err.value)
    assert not marker.exists(), "a CIFAR batch ran code"


class _OsSystem:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_cifar_batches_still_read_in_every_pickle_protocol(tmp_path):
    expected = write_cifar_batches(tmp_path)
    ds = data.load_dataset("cifar10", "train", root=tmp_path)
    assert ds.targets == expected["train"][1]
    for protocol in (2, 4, 5):
        path = tmp_path / "cifar-10-batches-py" / "test_batch"
        with open(path, "wb") as fh:
            pickle.dump({"data": np.full((3, 3072), 7, np.uint8), "labels": [1, 2, 3]}, fh, protocol=protocol)
        ds = data.load_dataset("cifar10", "test", root=tmp_path)
        assert ds.targets == [1, 2, 3] and ds.array.shape == (3, 32, 32, 3) and int(ds.array.max()) == 7


def test_html_foolbox_wheel_is_named(tmp_path):
    wheel = tmp_path / data.FOOLBOX_WHEEL
    wheel.write_bytes(HTML)
    with pytest.raises(RuntimeError, match="is an HTML page, not the foolbox wheel"):
        data.extract_foolbox_samples(wheel, tmp_path / "out")


# ----------------------------------------------------------------------------------------------------------------------
# Checkpoints: integrity, HTML pages, temp files of killed writers
# ----------------------------------------------------------------------------------------------------------------------
def _flip(path: Path, where: float = 0.5) -> None:
    b = bytearray(path.read_bytes())
    b[int(len(b) * where)] ^= 0xFF
    path.write_bytes(bytes(b))


def test_flipped_bytes_without_sidecar_are_caught(tmp_path):
    path = tmp_path / "w.pt"
    torch.save({"model": models.build_model("small-cnn", 10).state_dict()}, path)
    checkpoints.load(path)  # intact: loads without a sidecar
    _flip(path)
    with pytest.raises(CheckpointError, match="fails its CRC-32 check") as err:
        checkpoints.load(path)
    assert str(path) in str(err.value)


def test_models_convert_refuses_a_corrupt_source_and_writes_no_sidecar(tmp_path):
    src = tmp_path / "robust.ckpt"
    sd = {f"module.model.{k}": v for k, v in models.build_model("small-cnn", 10).net.state_dict().items()}
    torch.save({"model": sd, "epoch": 3}, src)
    out = models.convert_robustness_checkpoint(src, tmp_path / "ok.pt")
    assert checkpoints.read_meta(out)["config"]["source_check"] == "zip CRC-32"
    _flip(src)
    rc, _, err = _call(cli_main.main, ["models", "convert", str(src), "--out", str(tmp_path / "bad.pt")])
    _assert_clear_cli_error(rc, err, "fails its CRC-32 check")
    assert not (tmp_path / "bad.pt").exists() and not (tmp_path / "bad.pt.json").exists()


def test_html_page_renamed_to_pt(tmp_path):
    page = tmp_path / "resnet50.pt"
    page.write_bytes(HTML)
    with pytest.raises(CheckpointError, match="is an HTML page, not a torch checkpoint") as err:
        checkpoints.load(page)
    assert str(page) in str(err.value) and "Unsupported operand" not in str(err.value)


def _stale(path: Path, name: str, age: float = 60.0) -> Path:
    tmp = path.parent / f".{path.name}.{name}.tmp"
    tmp.write_bytes(b"PK\x03\x04 half a checkpoint")
    t = time.time() - age
    os.utime(tmp, (t, t))
    return tmp


def _visible(folder: Path) -> list:
    return sorted(p.name for p in folder.iterdir() if not p.name.endswith(".lock"))


def test_sigkill_during_a_checkpoint_write_leaves_no_temp_file_after_the_next_save(tmp_path):
    """A real SIGKILL mid-write (in a forked child) leaves ``.c.pt.*.tmp``; the next save removes it."""
    path = tmp_path / "c.pt"
    checkpoints.save(path, {"w": torch.zeros(3)})
    pid = os.fork()
    if pid == 0:  # child: die in the middle of writing the checkpoint
        try:
            def die(f):
                f.write(b"PK\x03\x04 part of a zip")
                f.flush()
                os.kill(os.getpid(), signal.SIGKILL)
            checkpoints.atomic_write(path, die)
        finally:
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    left = [n for n in os.listdir(tmp_path) if n.endswith(".tmp")]
    assert len(left) == 1 and left[0].startswith(".c.pt.")
    checkpoints.save(path, {"w": torch.ones(3)})
    assert _visible(tmp_path) == ["c.pt", "c.pt.json"]


def test_stale_temp_files_are_removed_on_load_but_not_a_live_writers(tmp_path):
    import fcntl
    path = checkpoints.save(tmp_path / "d.pt", {"w": torch.zeros(3)})
    dead = _stale(path, "dead1")
    dead_side = _stale(checkpoints.sidecar_path(path), "dead2")
    live = _stale(path, "live")
    fd = os.open(live, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX)  # a writer still at work holds its temp file's lock
    try:
        checkpoints.load(path)
        assert not dead.exists() and not dead_side.exists() and live.exists()
    finally:
        os.close(fd)
    checkpoints.load(path)
    assert not live.exists()
    fresh = path.parent / f".{path.name}.fresh.tmp"
    fresh.write_bytes(b"")  # just created by a writer that has not locked it yet: kept
    checkpoints.load(path)
    assert fresh.exists()


# ----------------------------------------------------------------------------------------------------------------------
# Training runs: a corrupt last.pt on resume, the data source of a cached run
# ----------------------------------------------------------------------------------------------------------------------
def _tiny(tmp_path, root, **kw):
    base = dict(data_root=str(root) if root is not None else None, out_dir=str(tmp_path / "runs"), train_subset=8,
                test_subset=6, batch_size=4, epochs=1, eval_adv_steps=0, eval_attr_max=2, progress=False)
    base.update(kw)
    return train.config("smoke", "cifar10", "natural", **base)


def _argv(cfg):
    return ["--method", cfg.method, "--out-dir", cfg.out_dir, "--train-subset", str(cfg.train_subset),
            "--test-subset", str(cfg.test_subset), "--batch-size", str(cfg.batch_size), "--epochs", str(cfg.epochs),
            "--eval-adv-steps", "0", "--eval-attr-max", "2", "--progress", "false"] + \
        (["--data-root", cfg.data_root] if cfg.data_root else [])


@pytest.mark.parametrize("payload", [b"", b"garbage bytes", HTML], ids=["empty", "garbage", "html"])
def test_corrupt_last_pt_on_resume_is_one_line(tmp_path, payload):
    cfg = _tiny(tmp_path, tmp_path / "no-data-needed")
    run = cfg.run_dir()
    run.mkdir(parents=True)
    (run / "last.pt").write_bytes(payload)
    rc, _, err = _call(train.main, _argv(cfg))
    _assert_clear_cli_error(rc, err, str(run / "last.pt"))
    assert "--resume false" in err and len(err.strip().splitlines()) == 1


def test_a_run_trained_on_other_data_is_not_a_cache_hit(tmp_path, monkeypatch):
    """Same config, another data source: refused with both sources named, config.yaml left as it was."""
    root_a, root_b = tmp_path / "a", tmp_path / "b"
    write_cifar_batches(root_a)
    _write_cifar_jpeg(root_b, per_class=2, split="train")
    _write_cifar_jpeg(root_b, per_class=1, split="test")
    first = train.train(_tiny(tmp_path, root_a))
    assert first.completed
    side = json.loads((first.run_dir / "model.pt.json").read_text())
    assert side["provenance"]["data"]["source"] == "cifar-10-batches-py"
    again = train.train(_tiny(tmp_path, root_a))           # same data: the cache hit
    assert again.run_dir == first.run_dir and again.resumed_from is not None
    other = _tiny(tmp_path, root_b)
    assert other.fingerprint() == first.config.fingerprint() and other.run_dir() == first.run_dir
    with pytest.raises(ValueError) as err:
        train.train(other)
    msg = str(err.value)
    assert "cifar-10-batches-py" in msg and "cifar10-jpeg" in msg and str(root_b) in msg and "\n" not in msg
    assert yaml.safe_load((first.run_dir / "config.yaml").read_text())["data_root"] == str(root_a)
    monkeypatch.setenv("ARTLIB_DATA", str(root_b))           # the default data root (data_root None) counts too
    with pytest.raises(ValueError, match="was trained on cifar10 from"):
        train.train(_tiny(tmp_path, None))
    rc, _, err = _call(train.main, _argv(other))
    _assert_clear_cli_error(rc, err, "was trained on cifar10 from")


def test_checkpoints_from_before_the_record_compare_explicit_roots(tmp_path):
    root_a, root_b = tmp_path / "a", tmp_path / "b"
    write_cifar_batches(root_a)
    write_cifar_batches(root_b)
    result = train.train(_tiny(tmp_path, root_a))
    for name in ("last.pt", "model.pt"):  # strip the data record, as older artlib wrote them
        side = checkpoints.sidecar_path(result.run_dir / name)
        meta = json.loads(side.read_text())
        meta.pop("provenance", None)
        side.write_text(json.dumps(meta))
    with pytest.raises(ValueError, match=f"was trained on the data root {root_a}, this config reads {root_b}"):
        train.train(_tiny(tmp_path, root_b))
    assert train.train(_tiny(tmp_path, root_a)).completed  # the same root still loads


# ----------------------------------------------------------------------------------------------------------------------
# Notebook parameters (papermill -p): a misspelt name fails
# ----------------------------------------------------------------------------------------------------------------------
def test_misspelt_notebook_parameter_fails():
    with pytest.raises(ValueError, match=r"unknown parameter 'epoch' of nb\.ipynb \(did you mean 'epochs'\?\); its "
                                         r"parameters: epochs, profile"):
        params.check_parameters({"epoch": 1}, ["profile", "epochs"], where="nb.ipynb")
    assert params.check_parameters({"epochs": 1}, ["profile", "epochs"]) == {"epochs": 1}
    declared = params.declared_parameters(ROOT / "notebooks" / "02_train_art.ipynb")
    assert "profile" in declared
    with pytest.raises(ValueError, match="unknown parameter 'profil'.*did you mean 'profile'"):
        params.check_parameters({"profil": "smoke"}, declared, where="02_train_art.ipynb")


def test_check_injected_inside_a_notebook_namespace():
    ns = {"np": np, "profile": "smoke", "epochs": None}        # after the parameters cell
    params.mark(ns)
    ns["epochs"] = 1                                          # papermill's injected cell: a known name
    assert params.check_injected(ns) == {}
    ns["epoch"] = 1                                           # -p epoch 1
    with pytest.raises(ValueError, match=r"unknown parameter 'epoch' of this notebook \(did you mean 'epochs'\?\); "
                                         r"its parameters: epochs, profile"):
        params.check_injected(ns)
    with pytest.raises(ValueError, match="needs artlib.params.mark"):
        params.check_injected({})


def test_declared_parameters_bad_files(tmp_path):
    (tmp_path / "x.ipynb").write_text("not json")
    with pytest.raises(ValueError, match="is not a readable Jupyter notebook"):
        params.declared_parameters(tmp_path / "x.ipynb")
    (tmp_path / "y.ipynb").write_text(json.dumps({"cells": [{"cell_type": "code", "source": "a = 1",
                                                             "metadata": {}}]}))
    with pytest.raises(ValueError, match="has no cell tagged 'parameters'"):
        params.declared_parameters(tmp_path / "y.ipynb")
