r"""One resumable training loop for every method of the two papers: ``train(cfg)``.

Methods (``TrainConfig.method``):

- ``natural``: cross-entropy.
- ``pgd``: Madry et al. (ICLR 2018) PGD-n adversarial training, l-inf (ART A.3: PGD-10 on CIFAR-10, PGD-7 elsewhere)
  or l2 (``norm="l2"``, Inequality A.5); any epsilon (Inequality Table 1: 1, 2, 4, 8 /255).
- ``pgd_cutout``: l-inf PGD training on Cutout images (DeVries & Taylor 2017), Inequality paper A.9.
- ``art``: ART (Singh et al., ECCV 2020), Algorithm 1 / Eq. 5-6: :math:`\tilde x` from ``steps`` signed ascent steps
  on :math:`L_{attr}` (:func:`artlib.losses.art_perturb`), then :math:`L_{ce}(\tilde x, y) + \lambda
  L_{attr}(\tilde x, y)` (:func:`artlib.losses.art_loss`).
- ``art_variant``: the same loop with one of ART Table 5's objectives (``variant``: ``eq2``, ``eq4_l2``, ``eq4_cos``,
  ``argmin``; see :data:`artlib.losses.ART_VARIANTS`).
- ``art_pgd``: ART appendix C: the perturbation ascends :math:`L_{attr} + L_{ce}`; same outer loss as ``art``.
- ``ig_norm`` / ``ig_sum_norm``: RAR (Chen et al., NeurIPS 2019; ART's baselines [13]):
  :math:`\ell(x) + \lambda\|IG(x, x')\|_1` and :math:`\ell(x') + \lambda\|IG(x, x')\|_1`, :math:`x'` from PGD on the
  regulariser (:func:`artlib.losses.ig_perturb`).

Profiles (:func:`config`): ``smoke`` trains ``small-cnn`` on a few hundred real images of the data root in well under
a minute on 2 CPU cores; ``paper`` carries ART appendix A.3 (CIFAR-10, SVHN, GTSRB, Flowers) and B.1 (CUB-200
fine-tuning) schedules. Anything can be overridden.

Behaviour:

- **Resumable**: a checkpoint (``runs/<run_name>/last.pt``, :func:`artlib.checkpoints.save`) after every
  ``checkpoint_every`` optimiser steps and at the end of every epoch; running the same configuration again continues
  from it (``resume=True``). All randomness is a function of ``(seed, epoch)`` (data order) and ``(seed, step)``
  (random starts, Cutout, augmentation), so on a CPU a killed and resumed run ends with the same weights as an
  uninterrupted one.
- **Logs**: tqdm per epoch; ``log.csv`` / ``log.json`` (one row per epoch: train/test loss, accuracy, L_attr, mean
  cos(g^y, x), robust accuracy) and ``steps.csv`` (one row per step).
- **DDP**: ``torchrun --nproc_per_node=N -m artlib.train ...`` (or ``python -m artlib train`` once wired): one
  process per device, ``DistributedDataParallel``, ``DistributedSampler``; ``batch_size`` is the global batch. Global
  batch ``k`` holds the same images and random draws for any number of processes, so DDP runs match single-process
  runs (BatchNorm statistics aside, which are per process as usual).
- **GPU**: ``amp=True`` (bfloat16 autocast; double backprop works under it) and ``channels_last=True``.
- **NaN / inf**: a non-finite loss stops training with :class:`NonFiniteLossError` before the optimiser step; the
  last checkpoint (written before it) is kept.

Example:
    >>> from artlib import train
    >>> cfg = train.config("smoke", dataset="cifar10", method="art")      # small-cnn, 320 real images, 2 epochs
    >>> result = train.train(cfg)
    >>> result.log_frame()[["epoch", "train_loss", "test_acc", "test_cos"]]

Command line (``python -m artlib train --help``: every field with its description, choices and the profile's
default; a bad value exits with status 2 and one line on stderr)::

    python -m artlib train --profile paper --dataset cifar10 --method art          # WRN-28-10, ART A.3.2
    torchrun --nproc_per_node=4 -m artlib.train --profile paper --dataset cifar10 --method pgd --eps 4/255

Data source: a run folder's checkpoints record the data they were trained on (:func:`artlib.data.data_source`:
the resolved data root, the on-disk source and its number of images). Resuming or loading a run folder from another
data source raises one ``ValueError`` naming both, instead of handing out (and relabelling) a model trained on other
data; the run key itself (:meth:`TrainConfig.fingerprint`) is unchanged, so existing run folders and the zoo keep
their names.
"""
from __future__ import annotations

import argparse
import contextlib
import csv
import dataclasses
import hashlib
import json
import math
import os
import re
import sys
import time
from dataclasses import dataclass, field, fields
from fractions import Fraction
from pathlib import Path
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from artlib import dryrun, losses, models

__all__ = ["METHODS", "PROFILES", "AUGMENTS", "TrainConfig", "TrainResult", "NonFiniteLossError", "config",
           "paper_settings", "train", "method_loss", "build_model", "load_model", "lr_at", "cutout", "main",
           "input_transform"]

ROOT = Path(__file__).resolve().parent.parent
METHODS = ("natural", "pgd", "pgd_cutout", "art", "art_variant", "art_pgd", "ig_norm", "ig_sum_norm")
PROFILES = ("smoke", "reference", "paper", "official")
AUGMENTS = ("none", "flip", "crop", "crop_flip", "crop_flip_jitter")
#: ``TrainConfig.setting``: ART as the paper writes it, or as the authors' released code trains (method ``art``).
SETTINGS = ("paper", "official")
_ART_METHODS = ("art", "art_variant", "art_pgd")
_PGD_METHODS = ("pgd", "pgd_cutout")
_IG_METHODS = ("ig_norm", "ig_sum_norm")
_ATTACK_METHODS = _ART_METHODS + _PGD_METHODS + _IG_METHODS


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite; raised before the optimiser step, the last checkpoint is kept."""


# ----------------------------------------------------------------------------------------------------------------------
# Configuration
# ----------------------------------------------------------------------------------------------------------------------
@dataclass
class TrainConfig:
    """Everything a training run depends on. Build it with :func:`config` (profile defaults + overrides), from a
    file with :meth:`load` / :meth:`from_dict`, or directly; invalid values raise one ``ValueError`` naming the value
    and the choices. ``to_dict`` / ``save`` / ``load`` round-trip through YAML or JSON.

    Attributes (ART symbols in brackets):
        dataset, method, arch, profile: see :data:`artlib.data.DATASETS`, :data:`METHODS`,
            :data:`artlib.models.ARCHS`, :data:`PROFILES`.
        variant: ``art_variant`` only, one of :data:`artlib.losses.ART_VARIANTS` (Table 5).
        epochs, batch_size (global, over all processes), lr, momentum, nesterov, weight_decay: SGD.
        lr_milestones, lr_factors: the lr is multiplied by ``lr_factors[i]`` from epoch ``lr_milestones[i]`` on
            (epochs counted from 0; cumulative), e.g. ART A.3.2: ``[50, 80, 150]``, ``[0.1, 0.1, 0.5]``.
        eps [epsilon], step_size [alpha], steps [a for ART; n for PGD-n; k for RAR's PGD]: the inner maximisation.
        norm: ``"linf"`` or ``"l2"`` (``pgd`` / ``pgd_cutout`` only).
        lam [lambda]: weight of L_attr (ART) or of ||IG||_1 (RAR's lambda for IG-NORM, their "beta" for IG-SUM-NORM).
        beta [beta]: softplus beta of the attribution loss (ART: 50).
        i_star: ``"clean"`` (Algorithm 1 line 10: runner-up of the clean image through the ReLU network, once per
            batch) or ``"perturbed"`` (the authors' code: runner-up of the softplus logits at the perturbed image).
        reduce_channels: None, ``"mean"`` (ART B.1, CUB) or ``"abs_mean"`` (authors' WSOL code).
        attr_space: ``"pixel"`` (paper) or ``"normalized"`` (authors' code) for the cosine of L_attr.
        bn_mode: BatchNorm mode during the inner maximisation: ``"train"`` (authors' ART code, Madry's) or ``"eval"``.
        setting: method ``art`` only. ``"paper"`` (default): Eq. 5-6 / Algorithm 1 (:func:`artlib.losses.art_loss`,
            :func:`artlib.losses.art_perturb`). ``"official"``: the authors' released code
            (``papers/art_official_code_facts.md``): the inner ascent moves only the ``topk`` entries of largest
            :math:`|g^y|` (:func:`artlib.losses.art_perturb_official`) and the outer loss is
            CE(perturbed) + ``lam`` * :func:`artlib.losses.art_loss_official` (clean and perturbed rows,
            hard mining, normalised space); it needs ``i_star="perturbed"``, ``attr_space="normalized"`` and
            ``reduce_channels`` None or ``"abs_mean"`` (CUB), which :func:`config` sets. Not part of the
            fingerprint when ``"paper"``, so configs from before the field keep their hash.
        topk: entries the official inner ascent moves (None: :data:`artlib.losses.OFFICIAL_TOPK`, 1000 on CIFAR-10,
            15000 on CUB). Not part of the fingerprint when None.
        head_lr_mult: learning-rate multiplier of the last stage and the classifier (``layer4`` and ``fc`` of a
            ResNet; the released CUB code: 10). Not part of the fingerprint when 1.
        image_size: side of the square input images (None: the dataset's own size, e.g. CUB-200's 224 crop of the
            256x256 resize). Set, it rescales every split (:func:`input_transform`; CUB keeps the 256/224 resize to
            crop ratio and its boxes follow), e.g. 64 for CUB smoke runs on a CPU. Not part of the fingerprint when
            None.
        ig_steps, ig_attack_steps: IG path points in RAR's outer loss (50) and in its inner PGD (5 on GTSRB/Flower).
        cutout: Cutout square side in pixels (``pgd_cutout``; DeVries & Taylor's CIFAR-10 value 16).
        train_subset, test_subset: None (all) or an int (class-stratified, :func:`artlib.data.subset_dataset`).
        balance: ART A.3.3 / A.3.4 class balancing (GTSRB 10,000 / Flowers 1,000 images per class, augmented).
        augment: ``"none"``, ``"flip"``, ``"crop_flip"`` (random 4-pixel-padded crop + horizontal flip), applied to
            the batch in the trainer (deterministic, resumable); for ``cub200``, ``crop_flip`` is the dataset
            transform of the authors' WSOL code (random 224 crop of the 256x256 resize + flip).
        cache: load the (subset) datasets into memory once (small subsets) instead of a DataLoader.
        pretrained: a local weights file or an ``http(s)`` URL of one (fetched once, verified:
            :func:`artlib.models.weights_file`) for :func:`artlib.models.build_model`, or ``"imagenet"`` (torchvision's
            ImageNet weights of ``arch``; the paper profile's CUB-200 default, ART B.1 fine-tunes them); ``"none"``
            in :func:`config` / ``--pretrained none``: random initialisation.
        eval_every, eval_attr_max, eval_adv_steps: test metrics every ``eval_every`` epochs; L_attr / cos on at most
            ``eval_attr_max`` test images; robust accuracy under PGD-``eval_adv_steps`` at ``eps`` (0: skipped).
        seed, device (``"auto"``: CUDA when present), amp (bfloat16 autocast), channels_last, impl (``"fast"`` or
            ``"reference"`` attribution loss, same values), data_root, num_workers.
        out_dir (default ``<repo>/runs``), run_name (default from the config and its hash), resume,
            checkpoint_every (optimiser steps), max_steps (stop after that many steps in total), progress (tqdm).
    """

    dataset: str = "cifar10"
    method: str = "art"
    arch: str = "small-cnn"
    profile: str = "smoke"
    variant: str = "art"
    epochs: int = 2
    batch_size: int = 32
    lr: float = 0.05
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 2e-4
    lr_milestones: list = field(default_factory=list)
    lr_factors: list = field(default_factory=list)
    eps: float = 8 / 255
    step_size: float = 1.5 / 255
    steps: int = 3
    norm: str = "linf"
    lam: float = 0.5
    beta: float = 50.0
    i_star: str = "clean"
    reduce_channels: Optional[str] = None
    attr_space: str = "pixel"
    bn_mode: str = "train"
    setting: str = "paper"
    topk: Optional[int] = None
    head_lr_mult: float = 1.0
    image_size: Optional[int] = None
    ig_steps: int = 50
    ig_attack_steps: int = 5
    cutout: int = 16
    train_subset: Optional[int] = None
    test_subset: Optional[int] = None
    balance: bool = False
    augment: str = "none"
    cache: bool = False
    pretrained: Optional[str] = None
    eval_every: int = 1
    eval_attr_max: int = 500
    eval_adv_steps: int = 0
    seed: int = 0
    device: str = "auto"
    amp: bool = False
    channels_last: bool = False
    impl: str = "fast"
    data_root: Optional[str] = None
    num_workers: int = 0
    out_dir: Optional[str] = None
    run_name: Optional[str] = None
    resume: bool = True
    checkpoint_every: int = 100
    max_steps: Optional[int] = None
    progress: bool = True

    def __post_init__(self):
        self.lr_milestones = _number_list("lr_milestones", self.lr_milestones, integer=True)
        self.lr_factors = _number_list("lr_factors", self.lr_factors, integer=False)
        for name in ("lr", "momentum", "weight_decay", "eps", "step_size", "lam", "beta", "head_lr_mult"):
            value = getattr(self, name)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                setattr(self, name, float(value))
        self.validate()

    def validate(self) -> "TrainConfig":
        """Raise ``ValueError`` (naming the bad value and the choices) for any invalid field; return self."""
        from artlib import data, models

        def choice(name, choices):
            v = getattr(self, name)
            if v not in choices:
                raise ValueError(f"unknown {name} {v!r}; choices: {', '.join(map(repr, choices))}")

        choice("method", METHODS)
        choice("dataset", tuple(data.DATASETS))
        choice("arch", tuple(models.ARCHS))
        choice("profile", PROFILES)
        choice("variant", losses.ART_VARIANTS)
        choice("norm", ("linf", "l2"))
        choice("i_star", ("clean", "perturbed"))
        choice("reduce_channels", losses.REDUCE_CHANNELS)
        choice("attr_space", ("pixel", "normalized"))
        choice("bn_mode", ("train", "eval"))
        choice("setting", SETTINGS)
        choice("augment", AUGMENTS)
        choice("impl", ("fast", "reference"))
        if self.device not in ("auto", "cpu", "cuda") + tuple(f"cuda:{i}" for i in range(16)):
            raise ValueError(f"unknown device {self.device!r}; choices: 'auto', 'cpu', 'cuda', 'cuda:N' (N in 0..15)")

        for name in _BOOL_FIELDS:
            v = getattr(self, name)
            if not isinstance(v, bool) and not (name == "balance" and isinstance(v, int) and v >= 1):
                extra = " or an int >= 1 (images per class)" if name == "balance" else ""
                raise ValueError(f"{name} must be true or false{extra}, got {v!r}")

        def number(name, lo=None, strict=False, integer=False, hi=None, why="", lo_why=""):
            v = getattr(self, name)
            kind = int if integer else (int, float)
            if isinstance(v, bool) or not isinstance(v, kind) or (not integer and not math.isfinite(v)):
                raise ValueError(f"{name} must be {'an int' if integer else 'a finite number'}, got {v!r}")
            if lo is not None and (v <= lo if strict else v < lo):
                raise ValueError(f"{name} must be {'>' if strict else '>='} {lo}{lo_why}, got {v!r}")
            if hi is not None and v > hi:
                raise ValueError(f"{name} must be in [{lo}, {hi}]{why}, got {v!r}")

        if self.norm == "linf":  # pixel space: an l-inf radius / step above 1 covers the whole [0, 1] cube
            for name in ("eps", "step_size"):
                number(name, 0, hi=1, why=" (l-inf, images in [0, 1]; 8/255 is written 8/255, not 8)")
        else:
            info = data.DATASETS[self.dataset]
            side = self.image_size or info.image_size
            diameter = math.sqrt(info.channels * side * side)
            number("eps", 0, hi=round(diameter, 2), why=f" (l2: the diameter of [0, 1]^{info.channels}x{side}x{side})")
            number("step_size", 0)
        number("steps", 1, integer=True)  # a >= 1 (ART), n >= 1 (PGD-n)
        number("beta", 0, strict=True)
        number("lam", 0)
        number("lr", 0, strict=True)
        number("momentum", 0)
        number("weight_decay", 0)
        number("epochs", 1, integer=True)
        number("batch_size", 1, integer=True)
        number("ig_steps", 1, integer=True)
        number("ig_attack_steps", 1, integer=True)
        number("cutout", 0, integer=True)
        number("eval_every", 1, integer=True)
        number("eval_attr_max", 0, integer=True)
        number("eval_adv_steps", 0, integer=True)
        number("seed", 0, integer=True)
        number("num_workers", 0, integer=True)
        number("checkpoint_every", 1, integer=True)
        number("head_lr_mult", 0, strict=True)
        for name in ("train_subset", "test_subset", "max_steps", "topk", "image_size"):
            if getattr(self, name) is not None:
                number(name, 1, integer=True)
        if self.image_size is not None:
            least = models.MIN_INPUT_SIZE.get(self.arch, 1)
            number("image_size", least, integer=True, lo_why=f" (the smallest input arch {self.arch!r} takes)")
        for name in ("lr_milestones", "lr_factors"):
            if not isinstance(getattr(self, name), list):
                raise ValueError(f"{name} must be a list, got {getattr(self, name)!r}")
        if any(isinstance(m, bool) or not isinstance(m, int) or m < 0 for m in self.lr_milestones):
            raise ValueError(f"lr_milestones must be epochs (ints >= 0), got {self.lr_milestones}")
        if any(isinstance(f, bool) or not isinstance(f, (int, float)) or not math.isfinite(f) or f <= 0
               for f in self.lr_factors):
            raise ValueError(f"lr_factors must be finite numbers > 0, got {self.lr_factors}")
        for name in ("data_root", "pretrained", "out_dir", "run_name"):
            v = getattr(self, name)
            if v is not None and not isinstance(v, (str, os.PathLike)):
                raise ValueError(f"{name} must be a path (str) or None, got {v!r}")
        if self.run_name is not None and (str(self.run_name).strip() in ("", ".", "..") or
                                          any(c in str(self.run_name) for c in "/\\\0")):
            raise ValueError(f"run_name must be a plain folder name (no '/', not '.' or '..'), got {self.run_name!r}")
        if self.variant != "art" and self.method != "art_variant":
            raise ValueError(f"variant={self.variant!r} is only used by method='art_variant' (got method "
                             f"{self.method!r}); choices for art_variant: {', '.join(losses.ART_VARIANTS)}")
        if self.setting == "official":
            if self.method != "art":
                raise ValueError(f"setting='official' (the ART authors' released training) is only for method 'art', "
                                 f"got method {self.method!r}; choices for other methods: 'paper'")
            if self.i_star != "perturbed" or self.attr_space != "normalized" or \
                    self.reduce_channels not in (None, "abs_mean"):
                raise ValueError(f"setting='official' needs i_star='perturbed', attr_space='normalized' and "
                                 f"reduce_channels None or 'abs_mean' (the released loss), got "
                                 f"{self.i_star!r}, {self.attr_space!r}, {self.reduce_channels!r}")
        if self.norm == "l2" and self.method not in _PGD_METHODS:
            raise ValueError(f"norm='l2' is only for methods {_PGD_METHODS}; {self.method!r} uses the l-inf ball")
        if len(self.lr_milestones) != len(self.lr_factors):
            raise ValueError(f"lr_milestones {self.lr_milestones} and lr_factors {self.lr_factors} must have the "
                             f"same length")
        if any(b <= a for a, b in zip(self.lr_milestones, self.lr_milestones[1:])):
            raise ValueError(f"lr_milestones must increase, got {self.lr_milestones}")
        return self

    # -- serialisation -------------------------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        """Plain-data dict of every field (JSON / YAML serialisable)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        """Build from a dict; unknown keys raise ``ValueError`` listing the fields. Numbers may be strings such as
        ``"8/255"``."""
        if not isinstance(d, dict):
            raise ValueError(f"a config must be a mapping, got {type(d).__name__}")
        names = [f.name for f in fields(cls)]
        unknown = sorted(set(d) - set(names))
        if unknown:
            raise ValueError(f"unknown config key(s) {unknown}; choices: {', '.join(names)}")
        return cls(**{k: _coerce(k, v) for k, v in d.items()})

    def save(self, path) -> Path:
        """Write the config as YAML (``.yaml`` / ``.yml``) or JSON (any other suffix)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix in (".yaml", ".yml"):
            import yaml
            path.write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))
        else:
            path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        return path

    @classmethod
    def load(cls, path) -> "TrainConfig":
        """Read a config written by :meth:`save` (YAML or JSON)."""
        import yaml
        return cls.from_dict(yaml.safe_load(Path(path).read_text()) or {})

    def replace(self, **changes) -> "TrainConfig":
        """A validated copy with some fields changed."""
        return TrainConfig.from_dict({**self.to_dict(), **changes})

    # -- identity -----------------------------------------------------------------------------------------------------
    def trajectory_dict(self) -> dict:
        """The fields that determine the training trajectory (what a resumed run must share with the checkpoint)."""
        d = self.to_dict()
        for k in _NON_TRAJECTORY:
            d.pop(k, None)
        for k, default in _OPTIONAL_FIELDS.items():  # fields added later: absent at their default (same hashes)
            if d.get(k, default) == default:
                d.pop(k, None)
        return d

    def fingerprint(self) -> str:
        """8 hex digits of the sha256 of :meth:`trajectory_dict`."""
        return hashlib.sha256(json.dumps(self.trajectory_dict(), sort_keys=True).encode()).hexdigest()[:8]

    def default_run_name(self) -> str:
        method = f"{self.method}-{self.variant}" if self.method == "art_variant" else self.method
        return f"{self.dataset}_{method}_{self.arch}_{self.profile}_seed{self.seed}_{self.fingerprint()}"

    def run_dir(self) -> Path:
        out = Path(self.out_dir) if self.out_dir else Path(os.environ.get("ARTLIB_RUNS") or ROOT / "runs")
        return out / (self.run_name or self.default_run_name())


def _number_list(name: str, value, integer: bool):
    """``lr_milestones`` (``integer``) / ``lr_factors`` as a list of ints / floats; strings are parsed like command-line
    numbers, anything that is not a number is kept for :meth:`TrainConfig.validate` to name."""
    if value is None:
        return []
    if isinstance(value, str):
        value = _coerce(name, value)
    if not isinstance(value, (list, tuple)):
        return value
    out = []
    for v in value:
        v = _coerce(name + "[]", v) if isinstance(v, str) else v
        if not isinstance(v, bool) and isinstance(v, (int, float)):
            if integer and isinstance(v, float) and v.is_integer():
                v = int(v)
            elif not integer:
                v = float(v)
        out.append(v)
    return out


# Fields added after configs were first hashed: left out of the fingerprint at these defaults.
_OPTIONAL_FIELDS = {"setting": "paper", "topk": None, "head_lr_mult": 1.0, "image_size": None}
# Fields that do not change the trajectory: a run may be resumed with other values of these.
_NON_TRAJECTORY = ("epochs", "max_steps", "out_dir", "run_name", "resume", "checkpoint_every", "progress",
                   "num_workers", "eval_every", "eval_attr_max", "eval_adv_steps", "data_root", "device", "cache")


def _field_kinds() -> dict:
    """``{field: kind}`` of :class:`TrainConfig` from its annotations: ``bool``, ``int``, ``float``, ``str``, ``list``,
    with an ``optional_`` prefix for ``Optional[...]`` fields."""
    kinds = {}
    for f in fields(TrainConfig):
        t = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
        optional = t.startswith("Optional[")
        base = t[len("Optional["):-1] if optional else t
        kinds[f.name] = ("optional_" if optional else "") + base
    return kinds


_TRUE, _FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0")
_NUMBER_RE = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")


def _parse_number(name: str, text: str, integer: bool):
    """A number typed on a command line / in a file: ``3``, ``1e-3``, ``0.5``, ``8/255`` (``integer``: ``3`` only).
    Returns the number, or ``text`` unchanged when it is not one (validation then names the field and the value);
    a fraction with a zero denominator raises."""
    s = text.strip().replace("_", "")
    if integer:
        return int(s) if re.fullmatch(r"[+-]?\d+", s) else text
    if "/" in s:
        num, den = (p.strip() for p in s.split("/", 1))
        if not (_NUMBER_RE.fullmatch(num) and _NUMBER_RE.fullmatch(den)):
            return text
        if float(den) == 0:
            raise ValueError(f"{name} {text!r} divides by zero; give a number or a fraction such as 8/255")
        return float(Fraction(num)) / float(Fraction(den))
    if _NUMBER_RE.fullmatch(s) or s.lower().lstrip("+-") in ("nan", "inf", "infinity"):
        return float(s)
    return text


def _coerce(name: str, value):
    """A value typed on a command line or read from a file, converted by the field's type: numbers ``3``, ``1e-3``,
    ``8/255`` (no hexadecimal, no YAML 1.1 quirks), booleans ``true`` / ``false`` (also yes / no, on / off, 1 / 0),
    lists as YAML (``[50, 80]``) or comma-separated, ``none`` / ``null`` for optional fields; names and paths stay as
    typed. Anything else is returned unchanged, for :meth:`TrainConfig.validate` to name the field and the value."""
    kind = _FIELD_KINDS.get(name)
    if kind is None or not isinstance(value, str):
        if kind == "list" and isinstance(value, (list, tuple)):
            return [_coerce(name + "[]", v) for v in value]
        return value
    text = value.strip()
    base = kind.replace("optional_", "")
    if kind.startswith("optional_") and text.lower() in ("none", "null", "~", ""):
        return None
    if base == "bool":
        low = text.lower()
        if name == "balance" and re.fullmatch(r"\d+", low) and low not in ("0", "1"):
            return int(low)  # images per class
        return True if low in _TRUE else False if low in _FALSE else value
    if base in ("int", "float"):
        return _parse_number(name, text, integer=base == "int")
    if base == "list":
        if text.lower() in ("", "[]", "none", "null", "~"):
            return []
        import yaml
        if text.startswith("["):
            try:
                items = yaml.safe_load(text)
            except yaml.YAMLError:
                return value
            if not isinstance(items, list):
                return value
        else:
            items = [p for p in text.split(",")]
        return [_coerce(name + "[]", v) for v in items]
    return value


_FIELD_KINDS = {**_field_kinds(), "lr_milestones[]": "int", "lr_factors[]": "float"}
_BOOL_FIELDS = tuple(k for k, v in _FIELD_KINDS.items() if v == "bool")


# ----------------------------------------------------------------------------------------------------------------------
# Profiles: the papers' schedules
# ----------------------------------------------------------------------------------------------------------------------
# ART appendix A.3 (per dataset; "ART: the same training configuration as the Natural model") and B.1 (CUB).
_PAPER = {
    # A.3.2 CIFAR-10: WRN-28-10, SGD lr 0.1, momentum 0.9, wd 2e-4, batch 256, 100 epochs, lr x0.1 at epochs 50 and
    # 80 (x0.5 at 150, past the end); PGD-10 eps 8/255 step 2/255. The paper states no augmentation; crop + flip is
    # the standard CIFAR-10 setting (the authors' code uses it, plus ColorJitter and a 2-degree rotation).
    "cifar10": dict(arch="wrn-28-10", batch_size=256, epochs=100, lr=0.1, weight_decay=2e-4,
                    lr_milestones=[50, 80, 150], lr_factors=[0.1, 0.1, 0.5], augment="crop_flip",
                    pgd_steps=10, pgd_step=2 / 255),
    # A.3.1 SVHN: WRN-40-2, batch 256, 200 epochs, x0.1 at 50 and 80, x0.5 at 150; PGD-7 step 2.5/255.
    "svhn": dict(arch="wrn-40-2", batch_size=256, epochs=200, lr=0.1, weight_decay=2e-4,
                 lr_milestones=[50, 80, 150], lr_factors=[0.1, 0.1, 0.5], augment="none",
                 pgd_steps=7, pgd_step=2.5 / 255),
    # A.3.3 GTSRB: WRN-28-10, batch 128, 12 epochs, x0.1 at 4 and 6, x0.5 at 10; classes balanced to 10,000 images
    # by rotation / translation / projection (artlib.data balance); PGD-7 step 2/255.
    "gtsrb": dict(arch="wrn-28-10", batch_size=128, epochs=12, lr=0.1, weight_decay=2e-4,
                  lr_milestones=[4, 6, 10], lr_factors=[0.1, 0.1, 0.5], balance=True, augment="none",
                  pgd_steps=7, pgd_step=2 / 255),
    # A.3.4 Flowers-17 (128x128): WRN-28-10, batch 128, 68 epochs, x0.1 at 15 and 35, x0.5 at 50; balanced to 1,000
    # images per class; PGD-7 step 2.5/255.
    "flowers17": dict(arch="wrn-28-10", batch_size=128, epochs=68, lr=0.1, weight_decay=2e-4,
                      lr_milestones=[15, 35, 50], lr_factors=[0.1, 0.1, 0.5], balance=True, augment="none",
                      pgd_steps=7, pgd_step=2.5 / 255),
    # B.1 CUB-200: fine-tune an ImageNet ResNet-50 (pretrained="imagenet": torchvision's IMAGENET1K_V1 weights of
    # the arch, VGG16's for vgg-gap, artlib.models.imagenet_weights; a file path overrides); Natural / PGD-7: lr 0.01,
    # momentum 0.9, wd 1e-4, batch 128, 200 epochs, x0.1 every 60 epochs, PGD eps 2/255 step 0.5/255. ART: batch 90,
    # x0.1 every 40 epochs, eps 2/255, step 1.5/255, L_attr on channel means. Augmentation (not in B.1): the authors'
    # WSOL code's random 224 crop of the 256x256 resize + flip (artlib.data.box_transform(train=True)).
    "cub200": dict(arch="resnet50", batch_size=128, epochs=200, lr=0.01, weight_decay=1e-4,
                   lr_milestones=[60, 120, 180], lr_factors=[0.1, 0.1, 0.1], augment="crop_flip", eps=2 / 255,
                   pgd_steps=7, pgd_step=0.5 / 255, pretrained="imagenet"),
    # Inequality paper's CIFAR-10-C / ImageNet sets are evaluation-only; no training schedule.
}
_PAPER_CUB_ART = dict(batch_size=90, lr_milestones=[40, 80, 120, 160], lr_factors=[0.1, 0.1, 0.1, 0.1],
                      reduce_channels="mean")


# The ART authors' released training recipe (papers/art_official_code_facts.md), profile "official" (method art).
_OFFICIAL = {
    # cifar/cifar_robust_train.py: WRN-28-10, SGD lr 0.1, momentum 0.9, Nesterov, wd 2e-4, batch 234, 101 epochs,
    # LambdaLR x1 / x0.1 from epoch 50 / x0.01 from 80; RandomCrop(32, 4) + flip + ColorJitter(0.25, 0.25, 0.25) +
    # RandomRotation(2); attack eps 8/255, 3 steps of 5/255 on the top-1000 entries; PGD-40 check every 10 epochs.
    "cifar10": dict(arch="wrn-28-10", batch_size=234, epochs=101, lr=0.1, weight_decay=2e-4, lr_milestones=[50, 80],
                    lr_factors=[0.1, 0.1], augment="crop_flip_jitter", eps=8 / 255, step_size=5 / 255,
                    eval_every=10, eval_adv_steps=40),
    # WSOL_CUB: ResNet-50 (ImageNet weights), lr 0.01 (layer4 and fc x10), momentum 0.9, Nesterov, wd 1e-4, batch 12
    # (the paper: 90), 200 epochs, x0.1 every 40; Resize(256) + RandomCrop(224) + flip; eps 2/255, 3 steps of
    # 1.5/255 on the top-15000 entries, |x| and |g| averaged over channels.
    "cub200": dict(arch="resnet50", batch_size=12, epochs=200, lr=0.01, weight_decay=1e-4,
                   lr_milestones=[40, 80, 120, 160], lr_factors=[0.1, 0.1, 0.1, 0.1], augment="crop_flip",
                   eps=2 / 255, step_size=1.5 / 255, head_lr_mult=10.0),
}


def _official_algorithm(dataset: str) -> dict:
    """What ``setting="official"`` changes at any profile: the released loss / attack's fixed choices, its step size
    and Nesterov momentum (the schedule, batch and augmentation come with ``profile="official"``)."""
    out = dict(setting="official", i_star="perturbed", attr_space="normalized", nesterov=True, steps=3, lam=0.5,
               beta=50.0, step_size=1.5 / 255 if dataset == "cub200" else 5 / 255)
    if dataset == "cub200":
        out.update(reduce_channels="abs_mean")
    return out


def paper_settings(dataset: str, method: str) -> dict:
    """The ``paper`` profile's values for ``dataset`` and ``method`` (ART A.3 / B.1; RAR for ig_*), as a dict of
    :class:`TrainConfig` fields, with the source of each choice in the comments of ``_PAPER`` in this module."""
    if dataset not in _PAPER:
        raise ValueError(f"no paper training schedule for dataset {dataset!r}; choices: {', '.join(map(repr, _PAPER))}")
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choices: {', '.join(map(repr, METHODS))}")
    p = dict(_PAPER[dataset])
    pgd_steps, pgd_step = p.pop("pgd_steps"), p.pop("pgd_step")
    eps = p.pop("eps", 8 / 255)
    out = dict(p, eps=eps, momentum=0.9, nesterov=False, beta=50.0, lam=0.5, cache=False, eval_adv_steps=10,
               checkpoint_every=500, num_workers=4)
    if method in _ART_METHODS:  # A.3: eps 8/255 (CUB 2/255), step 1.5/255, a = 3, beta 50, lambda 0.5
        out.update(step_size=1.5 / 255, steps=3)
        if dataset == "cub200":
            out.update(_PAPER_CUB_ART)
    elif method in _PGD_METHODS:
        out.update(step_size=pgd_step, steps=pgd_steps)
        if method == "pgd_cutout":
            out.update(cutout=16)  # DeVries & Taylor's CIFAR-10 length; Inequality A.9 gives no size
    elif method in _IG_METHODS:
        # RAR's GTSRB / Flower configs (jfc43/robust-attribution-regularization *-config.json): PGD-7 step 2/255 on
        # the IG regulariser with 50/10 = 5 IG points, 50 points in the outer loss; lambda 1.0 (GTSRB) / 0.1 (Flower)
        # for both IG-NORM and IG-SUM-NORM. ART reports RAR's own numbers and gives no schedule: ART's is used.
        out.update(step_size=2 / 255, steps=7, ig_steps=50, ig_attack_steps=5,
                   lam=0.1 if dataset == "flowers17" else 1.0)
    return out


def _smoke_settings(dataset: str, method: str) -> dict:
    """The ``smoke`` profile: ``small-cnn`` on a class-stratified few hundred real images, 2 epochs, on a CPU."""
    from artlib import data
    k = data.DATASETS[dataset].num_classes
    out = dict(arch="small-cnn", batch_size=32, epochs=2, lr=0.05, momentum=0.9, weight_decay=5e-4,
               lr_milestones=[], lr_factors=[], train_subset=max(320, 4 * k), test_subset=max(200, 2 * k),
               augment="none", cache=True, eval_adv_steps=5, eval_attr_max=200, checkpoint_every=5, num_workers=0,
               eps=8 / 255, beta=50.0, lam=0.5)
    if method in _ART_METHODS:
        out.update(step_size=1.5 / 255, steps=3)
    elif method in _PGD_METHODS:
        out.update(step_size=2 / 255, steps=5, cutout=16 if data.DATASETS[dataset].image_size <= 64 else 64)
    elif method in _IG_METHODS:
        out.update(step_size=2 / 255, steps=3, ig_steps=10, ig_attack_steps=3, lam=1.0)
    if dataset == "cub200":
        out.update(eps=2 / 255, reduce_channels="mean" if method in _ART_METHODS else None)
    return out


#: The ``reference`` profile (the models of :mod:`artlib.zoo`): epochs per method family. Natural training is cheap;
#: PGD-5 costs ~6x and ART's double backprop ~13x a natural step on a CPU (benchmarks/results/zoo.md).
REFERENCE_EPOCHS = {"natural": 30, "pgd": 10, "art": 10, "ig": 8}
REFERENCE_EPOCH_SCALE = {"gtsrb": 3, "cub200": 5, "flowers17": 5}


def reference_settings(dataset: str, method: str) -> dict:
    """The ``reference`` profile: the learned CPU models of the reference zoo (:mod:`artlib.zoo`).

    ``small-cnn`` on the whole train split of the data root (the shared 10,000 CIFAR-10 / 2,580 GTSRB images here,
    the full datasets on a user's machine), batch 128, SGD lr 0.1 (0.05 off CIFAR-10; momentum 0.9, weight decay
    5e-4) divided by 10 at 50 % and 75 % of the epochs (:data:`REFERENCE_EPOCHS`, x :data:`REFERENCE_EPOCH_SCALE`), random crop + flip (crop only for GTSRB: a flipped sign is another sign). The
    inner maximisations keep the papers' budgets: PGD-5 at step eps/4 (l-inf eps 8/255 unless overridden), ART
    A.3's a = 3 steps of 1.5/255 at eps 8/255, beta 50, lambda 0.5; RAR with 10 IG points. CUB-200 and Flowers-17
    run at 64 px (CUB: eps 2/255 as ART B.1).

    Example:
        >>> reference_settings("cifar10", "pgd")["steps"], reference_settings("cifar10", "art")["epochs"]
        (5, 10)
    """
    from artlib import data
    if dataset not in data.DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; choices: {', '.join(map(repr, data.DATASETS))}")
    family = ("art" if method in _ART_METHODS else "pgd" if method in _PGD_METHODS else
              "ig" if method in _IG_METHODS else "natural")
    # the small train splits get more epochs (GTSRB x3, CUB / Flowers x5: a comparable number of steps) and lr 0.05
    # (lr 0.1 diverged on GTSRB: loss 18 at epoch 12, measured)
    epochs = REFERENCE_EPOCHS[family] * REFERENCE_EPOCH_SCALE.get(dataset, 1)
    out = dict(arch="small-cnn", batch_size=128, epochs=epochs, lr=0.1 if dataset == "cifar10" else 0.05, momentum=0.9, nesterov=False,
               weight_decay=5e-4, lr_milestones=[epochs // 2, (3 * epochs) // 4], lr_factors=[0.1, 0.1],
               train_subset=None, test_subset=None, augment="crop" if dataset == "gtsrb" else "crop_flip",
               cache=True, eval_every=epochs, eval_attr_max=200, eval_adv_steps=0, checkpoint_every=100,
               num_workers=0, eps=8 / 255, beta=50.0, lam=0.5)
    if family == "art":
        out.update(step_size=1.5 / 255, steps=3)
    elif family == "pgd":
        out.update(step_size=2 / 255, steps=5, cutout=16 if data.DATASETS[dataset].image_size <= 64 else 64)
    elif family == "ig":
        out.update(step_size=2 / 255, steps=3, ig_steps=10, ig_attack_steps=3, lam=1.0)
    if dataset in ("cub200", "flowers17"):  # CUB: batch-level flip (a dataset-level crop would be cached once)
        out.update(image_size=64, batch_size=32, augment="flip" if dataset == "cub200" else "crop_flip")
    if dataset == "cub200":
        out.update(eps=2 / 255, reduce_channels="mean" if family == "art" else None)
        if family == "pgd":
            out.update(steps=7, step_size=0.5 / 255)
    return out


def config(profile: str = "smoke", dataset: str = "cifar10", method: str = "art", arch: Optional[str] = None,
           **overrides) -> TrainConfig:
    """A validated :class:`TrainConfig`: the ``profile``'s values for ``dataset`` / ``method``, then ``overrides``
    (``None`` values are ignored, so notebook parameters left at None keep the profile's value).

    ``smoke``: small-cnn, ``train_subset`` 320 (cifar10), 2 epochs, batch 32, a = 3 (ART) / PGD-5 / RAR with 10 IG
    points, CPU. ``paper``: :func:`paper_settings` (ART A.3 / B.1). For ``pgd`` at another ``eps`` (Inequality
    Table 1: 1, 2, 4, 8 /255) the step size scales with it (step = eps / 4 on CIFAR-10) unless given; for
    ``norm="l2"`` the default is eps 0.5, step eps / 4 (the Inequality paper's text gives no l2 settings).

    ``official`` (method ``art``, CIFAR-10 and CUB-200): the ART authors' released recipe (``setting="official"``,
    Nesterov, CIFAR-10 batch 234 / 101 epochs / x0.1 at 50 and 80 / ColorJitter + 2-degree rotation / step 5/255 /
    top-1000 ascent; CUB batch 12, layer4 and fc at 10x lr, top-15000). ``setting="official"`` at another profile
    keeps that profile's scale and switches the algorithm (released loss and top-k attack, its step size, Nesterov).

    Example:
        >>> cfg = config("paper", "cifar10", "pgd", arch="resnet18", eps=2/255)     # Inequality Table 1 model
        >>> cfg.step_size * 255, cfg.steps
        (0.5, 10)
    """
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choices: {', '.join(map(repr, PROFILES))}")
    from artlib import data
    if dataset not in data.DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; choices: {', '.join(map(repr, data.DATASETS))}")
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choices: {', '.join(map(repr, METHODS))}")
    names = {f.name for f in fields(TrainConfig)}
    overrides = {k: v for k, v in overrides.items() if v is not None}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise ValueError(f"unknown config key(s) {unknown}; choices: {', '.join(sorted(names))}")
    if profile == "official" and (method != "art" or dataset not in _OFFICIAL):
        raise ValueError(f"profile 'official' (the ART authors' released recipe) exists for method 'art' on "
                         f"{', '.join(map(repr, _OFFICIAL))}; got method {method!r}, dataset {dataset!r}")
    base = {"smoke": _smoke_settings, "reference": reference_settings}.get(profile, paper_settings)(dataset, method)
    if profile == "official" or (overrides.get("setting") == "official" and method == "art"):
        base.update(_official_algorithm(dataset))
        if profile == "official":
            base.update(_OFFICIAL[dataset])
    if method in _PGD_METHODS and "step_size" not in overrides:
        if overrides.get("norm") == "l2":
            eps = _override_number("eps", overrides.get("eps", 0.5))
            overrides.setdefault("eps", eps)
            base["step_size"] = eps / 4
        elif "eps" in overrides:  # keep the profile's step / eps ratio
            base["step_size"] = base["step_size"] * _override_number("eps", overrides["eps"]) / base["eps"]
    settings = dict(base, dataset=dataset, method=method, profile=profile)
    if arch is not None:
        settings["arch"] = arch
    settings.update(overrides)
    if str(settings.get("pretrained")).lower() == "none":  # "random init" (a None override keeps the profile's)
        settings["pretrained"] = None
    return TrainConfig.from_dict(settings)


def _override_number(name: str, value) -> float:
    """A numeric override (``"8/255"``, ``1e-3``, ...) as a float; one clear ``ValueError`` when it is not one."""
    v = _coerce(name, value)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return float(v)


def lr_at(cfg: TrainConfig, epoch: int) -> float:
    """Learning rate of epoch ``epoch`` (0-based): ``lr`` times every ``lr_factors[i]`` with
    ``lr_milestones[i] <= epoch``."""
    lr = cfg.lr
    for m, f in zip(cfg.lr_milestones, cfg.lr_factors):
        if epoch >= m:
            lr *= f
    return lr


# ----------------------------------------------------------------------------------------------------------------------
# Batch-level randomness: augmentation and Cutout (deterministic per step, identical for any number of processes)
# ----------------------------------------------------------------------------------------------------------------------
def _color_jitter_rotate(x: torch.Tensor, gen: torch.Generator, strength: float = 0.25,
                         degrees: float = 2.0) -> torch.Tensor:
    """torchvision's ``ColorJitter(strength, strength, strength)`` (brightness, contrast, saturation factors
    ``U(1 - s, 1 + s)``, applied in a random order per image, each clamped to ``[0, 1]``) then
    ``RandomRotation(degrees)`` (nearest neighbour, zero fill, about the centre), batched, draws from ``gen``: the
    released ART CIFAR-10 augmentation after crop and flip."""
    B, C = x.shape[:2]
    f = 1 - strength + 2 * strength * torch.rand(B, 3, generator=gen)
    order = torch.argsort(torch.rand(B, 3, generator=gen), dim=1)
    angle = (torch.rand(B, generator=gen) * 2 - 1) * math.radians(degrees)
    f, order, angle = f.to(x), order.to(x.device), angle.to(x)
    w = torch.tensor([0.2989, 0.587, 0.114], dtype=x.dtype, device=x.device).view(1, 3, 1, 1)

    def gray(t):
        return (t * w).sum(1, keepdim=True) if C == 3 else t.mean(1, keepdim=True)

    for pos in range(3):
        for op in range(3):
            fac = f[:, op].view(B, 1, 1, 1)
            if op == 0:
                y = x * fac
            elif op == 1:
                y = fac * x + (1 - fac) * gray(x).mean((2, 3), keepdim=True)
            else:
                y = fac * x + (1 - fac) * gray(x)
            x = torch.where((order[:, pos] == op).view(B, 1, 1, 1), y.clamp(0, 1), x)
    cos, sin = torch.cos(angle), torch.sin(angle)
    zero = torch.zeros_like(cos)
    theta = torch.stack([torch.stack([cos, -sin, zero], 1), torch.stack([sin, cos, zero], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="nearest", padding_mode="zeros", align_corners=False)


def _augment(x: torch.Tensor, mode: str, gen: torch.Generator, pad: int = 4) -> torch.Tensor:
    """Random horizontal flip (``flip``), plus a random crop of the zero-padded image (``crop_flip``, as
    torchvision's ``RandomCrop(size, padding=4)``; ``crop``: the crop alone, for traffic signs), drawn per image from ``gen``; ``crop_flip_jitter`` adds the
    released ART code's ``ColorJitter(0.25, 0.25, 0.25)`` and ``RandomRotation(2)``."""
    if mode == "none":
        return x
    if mode == "crop_flip_jitter":
        return _color_jitter_rotate(_augment(x, "crop_flip", gen, pad), gen).contiguous()
    B, C, H, W = x.shape
    flip = torch.rand(B, generator=gen) < 0.5
    if mode in ("crop", "crop_flip"):
        dy = torch.randint(0, 2 * pad + 1, (B,), generator=gen)
        dx = torch.randint(0, 2 * pad + 1, (B,), generator=gen)
        xp = F.pad(x, (pad, pad, pad, pad))
        rows = (dy[:, None] + torch.arange(H)[None]).to(x.device)  # [B, H]
        cols = (dx[:, None] + torch.arange(W)[None]).to(x.device)  # [B, W]
        b = torch.arange(B, device=x.device)[:, None, None]
        x = xp.permute(0, 2, 3, 1)[b, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)
    if mode == "crop":
        return x.contiguous()
    return torch.where(flip.to(x.device).view(B, 1, 1, 1), x.flip(3), x).contiguous()


def cutout(x: torch.Tensor, size: int, fill: torch.Tensor, gen: Optional[torch.Generator] = None) -> torch.Tensor:
    """Cutout (DeVries & Taylor 2017): one ``size`` x ``size`` square per image, centred at a uniformly drawn pixel
    and clipped at the border, set to ``fill`` (the dataset mean ``[C, 1, 1]``: their code zeroes the normalised
    image, i.e. the mean colour in pixel space). Used by ``pgd_cutout`` (Inequality A.9).

    Args:
        x (Tensor): ``[B, C, H, W]`` in ``[0, 1]``.
        size (int): side of the square (0: no-op).
        fill (Tensor): ``[C, 1, 1]`` or scalar.
        gen (torch.Generator, optional): CPU generator for the centres.

    Returns:
        Tensor shaped like ``x``.
    """
    if size <= 0:
        return x
    B, C, H, W = x.shape
    cy = torch.randint(0, H, (B,), generator=gen).to(x.device)
    cx = torch.randint(0, W, (B,), generator=gen).to(x.device)
    ys = torch.arange(H, device=x.device)[None, :]
    xs = torch.arange(W, device=x.device)[None, :]
    in_y = (ys >= (cy[:, None] - size // 2)) & (ys < (cy[:, None] - size // 2 + size))  # [B, H]
    in_x = (xs >= (cx[:, None] - size // 2)) & (xs < (cx[:, None] - size // 2 + size))  # [B, W]
    mask = (in_y[:, :, None] & in_x[:, None, :])[:, None]  # [B, 1, H, W]
    return torch.where(mask, fill.to(x), x)


# ----------------------------------------------------------------------------------------------------------------------
# The per-method loss
# ----------------------------------------------------------------------------------------------------------------------
@contextlib.contextmanager
def _mode(model: nn.Module, train_mode: bool):
    was = model.training
    model.train(train_mode)
    try:
        yield
    finally:
        model.train(was)


def _autocast(cfg: TrainConfig, device: torch.device):
    if not cfg.amp:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def _perturb(cfg: TrainConfig, model: nn.Module, x, y, i_star, noise, dataset_mean=None):
    """The inner maximisation of ``cfg.method`` on the local batch (``noise``: U(0, 1) draws shaped like ``x``).
    Returns the perturbed batch, or ``x`` for ``natural``. The model's mode is ``cfg.bn_mode`` inside."""
    from artlib import attacks

    if cfg.method == "natural":
        return x
    with _mode(model, cfg.bn_mode == "train"):
        if cfg.setting == "official":
            return losses.art_perturb_official(model, x, y, cfg.eps, cfg.step_size, cfg.steps, cfg.beta,
                                               topk=_official_topk(cfg, x), channel_mean=_channel_mean(cfg),
                                               noise=noise, impl=cfg.impl)
        if cfg.method in _ART_METHODS:
            return losses.art_perturb(model, x, y, cfg.eps, cfg.step_size, cfg.steps, cfg.beta,
                                      i_star=i_star, variant=_variant(cfg),
                                      reduce_channels=cfg.reduce_channels, space=cfg.attr_space,
                                      with_ce=cfg.method == "art_pgd", noise=noise, impl=cfg.impl)
        if cfg.method in _IG_METHODS:
            return losses.ig_perturb(model, x, y, cfg.eps, cfg.step_size, cfg.steps, cfg.ig_attack_steps,
                                     objective=cfg.method, lam=cfg.lam, noise=noise)
        # pgd / pgd_cutout: artlib.attacks.pgd (random start from the global RNG, seeded per step by the trainer)
        return attacks.pgd(model, x, y, cfg.eps, cfg.step_size, cfg.steps, norm=cfg.norm, random_start=True,
                           eval_mode=cfg.bn_mode == "eval")


def _official_topk(cfg: TrainConfig, x: torch.Tensor) -> int:
    return min(cfg.topk or losses.OFFICIAL_TOPK.get(cfg.dataset, 1000), x[0].numel())


def _channel_mean(cfg: TrainConfig) -> bool:
    return cfg.reduce_channels == "abs_mean"


class _Objective(nn.Module):
    """The outer loss as one module call, so that ``DistributedDataParallel`` sees one forward per backward."""

    def __init__(self, model: nn.Module, cfg: TrainConfig):
        super().__init__()
        self.model, self.cfg = model, cfg

    def forward(self, x, x_t, y, i_star):
        cfg, model = self.cfg, self.model
        nan = torch.full((x.shape[0],), float("nan"), device=x.device)
        attr = cos = nan
        if cfg.setting == "official":
            logits = model(x_t)  # the released recipe: CE of the perturbed images only (ReLU network)
            ce = F.cross_entropy(logits.float(), y, reduction="none")
            t = losses.art_terms_official(model, x, x_t, y, cfg.beta, _channel_mean(cfg), cfg.impl)
            B = x.shape[0]
            attr = (t["loss"][:B].float() + t["loss"][B:].float()) / 2  # per sample: batch mean = the scalar loss
            cos = t["cos_y"][B:]
            loss = ce + cfg.lam * attr
        elif cfg.method in _ART_METHODS:
            logits = model(x_t)  # L_ce through the ReLU network (Sec. 3.2)
            ce = F.cross_entropy(logits.float(), y, reduction="none")
            t = losses.art_terms(model, x_t, y, cfg.beta, i_star=i_star, variant=_variant(cfg), x_clean=x,
                                 reduce_channels=cfg.reduce_channels, space=cfg.attr_space, impl=cfg.impl)
            attr, cos = t["loss"].float(), t["cos_y"]
            loss = ce + cfg.lam * attr
        elif cfg.method == "ig_norm":
            logits = model(x)  # IG-NORM: clean cross-entropy + lambda ||IG(x -> x')||_1
            ce = F.cross_entropy(logits.float(), y, reduction="none")
            attr = losses.ig_norm(model, x, x_t, y, cfg.ig_steps).float()
            loss = ce + cfg.lam * attr
        elif cfg.method == "ig_sum_norm":
            logits = model(x_t)  # IG-SUM-NORM: adversarial cross-entropy + lambda ||IG(x -> x')||_1
            ce = F.cross_entropy(logits.float(), y, reduction="none")
            attr = losses.ig_norm(model, x, x_t, y, cfg.ig_steps).float()
            loss = ce + cfg.lam * attr
        else:  # natural (x_t is x), pgd, pgd_cutout
            logits = model(x_t)
            ce = F.cross_entropy(logits.float(), y, reduction="none")
            loss = ce
        correct = (logits.detach().argmax(1) == y).float()
        return loss, ce.detach(), attr.detach(), cos.detach(), correct


def _variant(cfg: TrainConfig) -> str:
    return cfg.variant if cfg.method == "art_variant" else "art"


def _needs_clean_i_star(cfg: TrainConfig) -> bool:
    return cfg.method in _ART_METHODS and cfg.i_star == "clean" and _variant(cfg) in ("art", "argmin")


def _clean_runner_up(model: nn.Module, x, y, cfg: TrainConfig) -> torch.Tensor:
    """Algorithm 1 line 10: i* = argmax_{i != y} f(x)_i (argmin for Table 5's variant) of the clean image through
    the ReLU network (BatchNorm in ``cfg.bn_mode``, as in the inner maximisation that uses it)."""
    with torch.no_grad(), _mode(model, cfg.bn_mode == "train"):
        return losses.runner_up(model(x), y, lowest=_variant(cfg) == "argmin")


def method_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, cfg: TrainConfig, seed: int = 0) -> dict:
    """The training objective of ``cfg.method`` on one batch, with its random draws fixed by ``seed``: the inner
    maximisation, then the outer loss (what one training step minimises).

    Returns:
        dict of per-sample tensors ``[B]``: ``loss`` (differentiable w.r.t. the parameters), ``ce``, ``attr`` (L_attr
        or ||IG||_1; NaN for methods without one), ``cos`` (cos(g^y, x) at the training point, ART methods; else NaN),
        ``correct``; ``x`` (the batch after augmentation / Cutout) and ``x_t`` (after the inner maximisation).

    Example:
        >>> out = method_loss(model, x, y, config("smoke", method="art"), seed=0)
        >>> out["loss"].mean().backward()
    """
    device = x.device
    gen = torch.Generator().manual_seed(int(seed))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        if not _dataset_augments(cfg):
            x = _augment(x, cfg.augment, gen)
        if cfg.method == "pgd_cutout":
            x = cutout(x, cfg.cutout, _dataset_mean(cfg, device), gen)
        noise = torch.rand(x.shape, generator=gen).to(device) if cfg.method in _ART_METHODS + _IG_METHODS else None
        with _autocast(cfg, device):
            i_star = _clean_runner_up(model, x, y, cfg) if _needs_clean_i_star(cfg) else None
            x_t = _perturb(cfg, model, x, y, i_star, noise)
            loss, ce, attr, cos, correct = _Objective(model, cfg)(x, x_t, y, i_star)
    return dict(loss=loss, ce=ce, attr=attr, cos=cos, correct=correct, x=x, x_t=x_t)


def _dataset_mean(cfg: TrainConfig, device) -> torch.Tensor:
    from artlib import data
    return torch.tensor(data.DATASETS[cfg.dataset].mean, device=device).view(-1, 1, 1)


# ----------------------------------------------------------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------------------------------------------------------
class _Data:
    """A split as (cached tensors) or (dataset + DataLoader), iterated by index lists."""

    def __init__(self, cfg: TrainConfig, split: str, subset, balance: bool, cache: bool):
        from artlib import data
        transform = input_transform(cfg, split)
        self.ds = data.load_dataset(cfg.dataset, split, root=cfg.data_root, subset=subset, transform=transform,
                                    balance=balance if balance else False)
        self.cfg, self.cache = cfg, cache
        self.n = len(self.ds)
        if cache:
            xs, ys = [], []
            for i in range(self.n):
                item = self.ds[i]
                xs.append(item[0])
                ys.append(int(item[1]))
            self.X, self.Y = torch.stack(xs), torch.tensor(ys, dtype=torch.long)

    def batches(self, indices: list, batch_size: int, drop_last: bool):
        """Yield ``(x, y)`` for consecutive chunks of ``indices``."""
        if self.cache:
            for s in range(0, len(indices), batch_size):
                idx = indices[s:s + batch_size]
                if drop_last and len(idx) < batch_size:
                    return
                t = torch.tensor(idx, dtype=torch.long)
                yield self.X[t], self.Y[t]
            return
        loader = torch.utils.data.DataLoader(self.ds, batch_size=batch_size, sampler=list(indices),
                                             drop_last=drop_last, num_workers=self.cfg.num_workers,
                                             pin_memory=torch.cuda.is_available())
        for batch in loader:
            yield batch[0], torch.as_tensor(batch[1]).long()


def input_transform(cfg: TrainConfig, split: str):
    """The image transform ``cfg`` trains / evaluates ``split`` with, for :func:`artlib.data.load_dataset`'s
    ``transform``; None means the dataset's default (:func:`artlib.data.default_transform`).

    CUB-200 (``crop_flip``, train split): the ART WSOL code's random 224 crop of the 256x256 resize + flip. With
    ``cfg.image_size`` set: CUB resizes to ``round(image_size * 256 / 224)`` and crops ``image_size`` (boxes follow);
    other datasets get their default transform followed by a bilinear (antialiased) resize to
    ``image_size x image_size``.

    Example:
        >>> cfg = config("smoke", "cub200", "natural", image_size=64)
        >>> ds = data.load_dataset("cub200", "test", transform=input_transform(cfg, "test"))   # 64x64, boxes too
    """
    from artlib import data
    train = split == "train" and _dataset_augments(cfg)  # CUB: RandomCrop(224) of the 256 resize + flip (ART WSOL)
    size = cfg.image_size
    if size is None:
        return data.box_transform(train=True) if train else None
    if cfg.dataset == "cub200":
        return data.box_transform(size=size, resize=round(size * 256 / 224), train=train)
    from torchvision.transforms import v2
    return v2.Compose([data.default_transform(cfg.dataset), v2.Resize((size, size), antialias=True)])


def _dataset_augments(cfg: TrainConfig) -> bool:
    """CUB-200's ``crop_flip`` is the dataset transform (random 224 crop of the 256x256 resize, flip: the ART WSOL
    code), not the trainer's padded crop."""
    return cfg.dataset == "cub200" and cfg.augment == "crop_flip"


def _epoch_indices(n: int, cfg: TrainConfig, epoch: int, world: int, rank: int) -> list:
    """This process's sample order for ``epoch``: ``DistributedSampler(shuffle=True, seed=cfg.seed, drop_last=True)``
    with ``set_epoch(epoch)`` (one process: a plain seeded permutation). Global batch ``k`` (the ``k``-th local batch
    of every process together) is ``permutation[k*B:(k+1)*B]`` for any number of processes."""
    from torch.utils.data.distributed import DistributedSampler
    sampler = DistributedSampler(range(n), num_replicas=world, rank=rank, shuffle=True, seed=cfg.seed,
                                 drop_last=True)
    sampler.set_epoch(epoch)
    return list(sampler)


# ----------------------------------------------------------------------------------------------------------------------
# Model helpers
# ----------------------------------------------------------------------------------------------------------------------
def build_model(cfg: TrainConfig) -> nn.Module:
    """The model of ``cfg`` (arch, dataset's classes / mean / std, pretrained weights), initialised from ``cfg.seed``
    (the caller's RNG state is left untouched)."""
    from artlib import data, models
    info = data.DATASETS[cfg.dataset]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        return models.build_model(cfg.arch, info.num_classes, info.mean, info.std, pretrained=cfg.pretrained)


def load_model(path, map_location="cpu") -> nn.Module:
    """A trained model from a run folder (its ``model.pt``, else ``last.pt``) or a checkpoint file written by
    :func:`train`, rebuilt from the config in the checkpoint's sidecar, in eval mode.

    Example:
        >>> model = load_model(result.run_dir)
    """
    from artlib import checkpoints
    path = Path(path)
    if path.is_dir():
        path = path / "model.pt" if (path / "model.pt").is_file() else path / "last.pt"
    state, meta = checkpoints.load(path, map_location=map_location)
    if not meta or not meta.get("config"):
        raise ValueError(f"{path} has no sidecar config; load it with checkpoints.load and build the model yourself")
    cfg = TrainConfig.from_dict(meta["config"]).replace(pretrained=None)
    model = build_model(cfg)
    model.load_state_dict(state["model"] if "model" in state else state)
    return model.eval()


# ----------------------------------------------------------------------------------------------------------------------
# Results
# ----------------------------------------------------------------------------------------------------------------------
@dataclass
class TrainResult:
    """What :func:`train` returns.

    Attributes:
        model: the trained model (eval mode, on the training device).
        config: the :class:`TrainConfig`.
        log: one dict per finished epoch (``epoch``, ``step``, ``lr``, ``train_loss``, ``train_ce``, ``train_attr``,
            ``train_cos``, ``train_acc``, ``test_loss``, ``test_acc``, ``test_attr``, ``test_cos``, ``test_adv_acc``,
            ``time_s``).
        steps: one dict per optimiser step (``step``, ``epoch``, ``loss``, ``ce``, ``attr``, ``acc``).
        run_dir: the run folder (``config.yaml``, ``last.pt``, ``model.pt``, ``log.csv``, ``log.json``,
            ``steps.csv``).
        checkpoint: ``last.pt``; ``model_path``: ``model.pt`` (weights + sidecar with config and final metrics).
        resumed_from: the global step the run resumed from (None for a fresh start).
        completed: all ``epochs`` done (False when stopped by ``max_steps``).
    """

    model: nn.Module
    config: TrainConfig
    log: list
    steps: list
    run_dir: Path
    checkpoint: Path
    model_path: Optional[Path]
    resumed_from: Optional[int]
    completed: bool

    def log_frame(self):
        """The epoch log as a pandas DataFrame."""
        import pandas as pd
        return pd.DataFrame(self.log)

    def steps_frame(self):
        """The step log as a pandas DataFrame."""
        import pandas as pd
        return pd.DataFrame(self.steps)


def _write_csv(path: Path, rows: list) -> None:
    if not rows:
        return
    keys = list(rows[0])
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=keys)
        w.writeheader()
        w.writerows(rows)
    os.replace(tmp, path)


def _write_json(path: Path, obj) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(obj, indent=1) + "\n")
    os.replace(tmp, path)


def _finite(v: float) -> Optional[float]:
    return None if v is None or not math.isfinite(v) else float(v)


# ----------------------------------------------------------------------------------------------------------------------
# Distributed helpers
# ----------------------------------------------------------------------------------------------------------------------
def _dist_env():
    """(world, rank, local_rank, we_initialised) from torchrun's environment; initialises the process group."""
    import torch.distributed as dist
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 1, 0, 0, False
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if dist.is_initialized():
        return dist.get_world_size(), dist.get_rank(), local, False
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    dist.init_process_group(backend=backend)
    return dist.get_world_size(), dist.get_rank(), local, True


def _all_sum(values: list, device, world: int) -> list:
    if world == 1:
        return values
    import torch.distributed as dist
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


def _device(cfg: TrainConfig, local_rank: int) -> torch.device:
    if cfg.device == "auto":
        return torch.device(f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu")
    if cfg.device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {cfg.device!r} requested but CUDA is not available; use device='cpu' or 'auto'")
    if cfg.device == "cuda":
        return torch.device(f"cuda:{local_rank}")
    return torch.device(cfg.device)


# ----------------------------------------------------------------------------------------------------------------------
# Evaluation
# ----------------------------------------------------------------------------------------------------------------------
def _evaluate(cfg: TrainConfig, model: nn.Module, test: "_Data", device) -> dict:
    """Test loss / accuracy (ReLU network, eval mode), mean L_attr and mean cos(g^y, x) on the first
    ``eval_attr_max`` test images (softplus network, i* from the clean logits), robust accuracy under l-inf (l2 for
    ``norm="l2"``) PGD-``eval_adv_steps`` at ``eps`` (step eps/4, seeded start)."""
    from artlib import attacks
    out = dict(test_loss=0.0, test_acc=0.0, test_attr=0.0, test_cos=0.0, test_adv_acc=0.0)
    n = n_attr = 0
    fmt = torch.channels_last if cfg.channels_last else torch.contiguous_format
    with _mode(model, False), _autocast(cfg, device):
        for x, y in test.batches(list(range(test.n)), max(cfg.batch_size, 64), drop_last=False):
            x = x.to(device).contiguous(memory_format=fmt)
            y = y.to(device)
            with torch.no_grad():
                logits = model(x).float()
            out["test_loss"] += F.cross_entropy(logits, y, reduction="sum").item()
            out["test_acc"] += (logits.argmax(1) == y).sum().item()
            m = min(x.shape[0], cfg.eval_attr_max - n_attr)
            if m > 0:
                with torch.enable_grad():
                    t = losses.art_terms(model, x[:m], y[:m], cfg.beta, i_star=losses.runner_up(logits[:m], y[:m]),
                                         reduce_channels=cfg.reduce_channels, space=cfg.attr_space,
                                         create_graph=False, impl=cfg.impl)
                out["test_attr"] += t["loss"].detach().float().sum().item()
                out["test_cos"] += t["cos_y"].float().sum().item()
                n_attr += m
            if cfg.eval_adv_steps > 0:
                x_adv = attacks.pgd(model, x, y, cfg.eps, cfg.eps / 4, cfg.eval_adv_steps, norm=cfg.norm,
                                    seed=cfg.seed)
                with torch.no_grad():
                    out["test_adv_acc"] += (model(x_adv).argmax(1) == y).sum().item()
            n += x.shape[0]
    for k in ("test_loss", "test_acc", "test_adv_acc"):
        out[k] /= max(n, 1)
    for k in ("test_attr", "test_cos"):
        out[k] = out[k] / n_attr if n_attr else float("nan")
    if cfg.eval_adv_steps == 0:
        out["test_adv_acc"] = float("nan")
    return out


# ----------------------------------------------------------------------------------------------------------------------
# The loop
# ----------------------------------------------------------------------------------------------------------------------
_ACC_KEYS = ("loss", "ce", "attr", "cos", "correct", "n", "n_attr")


def _step_seed(cfg: TrainConfig, step: int, salt: int = 0) -> int:
    return (cfg.seed * 1_000_003 + step * 7_919 + salt * 104_729) % (2 ** 62)


def train(cfg: TrainConfig) -> TrainResult:
    """Train ``cfg.model`` with ``cfg.method`` (see the module docstring), resuming from ``<run_dir>/last.pt`` when
    it exists and ``cfg.resume`` is True.

    Inside, the global torch RNG is seeded per step (the caller's RNG state is restored on return); the model is
    built from ``cfg.seed``. Under ``torchrun`` the process group is set up from the environment.

    Args:
        cfg (TrainConfig): from :func:`config` or :meth:`TrainConfig.load`.

    Returns:
        TrainResult: model, logs, paths.

    Raises:
        NonFiniteLossError: the loss became NaN / inf (message: epoch, step, last checkpoint).
        ValueError: invalid configuration, or a checkpoint in ``run_dir`` from a different configuration.

    Example:
        >>> result = train(config("smoke", method="pgd", eps=4/255))
        >>> result.log[-1]["test_acc"], result.run_dir
    """
    if not isinstance(cfg, TrainConfig):
        raise ValueError(f"train() needs a TrainConfig (see artlib.train.config), got {type(cfg).__name__}")
    cfg.validate()
    cfg = dryrun.training_config(cfg)     # a dry run of the paper profile: record the request, train 2 steps
    out = cfg.run_dir().parent
    if out.exists() and not out.is_dir():
        raise ValueError(f"out_dir {out} is a file, not a folder (out_dir / $ARTLIB_RUNS names where run folders go)")
    if cfg.pretrained not in (None, "imagenet") and not models.is_url(cfg.pretrained) \
            and not Path(cfg.pretrained).is_file():
        raise FileNotFoundError(f"pretrained weights file not found: {cfg.pretrained} (or pretrained='imagenet': "
                                f"torchvision's ImageNet weights)")
    if cfg.dataset == "cub200" and cfg.profile in ("paper", "official") and cfg.pretrained is None:
        import warnings
        warnings.warn("ART B.1 fine-tunes an ImageNet-pretrained network on CUB-200; pretrained=None trains it from "
                      "scratch (the paper profile's default is pretrained='imagenet')", stacklevel=2)
    world, rank, local_rank, own_group = _dist_env()
    device = _device(cfg, local_rank)
    devices = [device.index or 0] if device.type == "cuda" else []
    from artlib import cache
    try:
        # One process at a time per run folder (concurrent notebooks share the checkpoint cache); DDP: rank 0 only.
        with cache.run_lock(cfg.run_dir(), enabled=rank == 0), torch.random.fork_rng(devices=devices):
            return _Run(cfg, world, rank, device).run()
    finally:
        if own_group:
            import torch.distributed as dist
            dist.destroy_process_group()


class _Run:
    def __init__(self, cfg: TrainConfig, world: int, rank: int, device: torch.device):
        self.cfg, self.world, self.rank, self.device = cfg, world, rank, device
        if cfg.batch_size % world:
            raise ValueError(f"batch_size {cfg.batch_size} (global) must be divisible by the {world} processes")
        self.local_bs = cfg.batch_size // world
        self.run_dir = cfg.run_dir()
        self.ckpt = self.run_dir / "last.pt"
        self.model_path = self.run_dir / "model.pt"
        self.fmt = torch.channels_last if cfg.channels_last else torch.contiguous_format
        self._source = None  # artlib.data.data_source of the config, computed once when first needed

    # -- checkpointing ------------------------------------------------------------------------------------------------
    def _save(self, epoch: int, batch: int, acc: dict, done: bool) -> None:
        if self.rank != 0:
            return
        from artlib import checkpoints
        state = {"model": self.model.state_dict(), "optimizer": self.opt.state_dict(), "epoch": epoch,
                 "batch": batch, "global_step": self.step, "acc": dict(acc), "log": self.log,
                 "steps": self.steps, "done": done, "fingerprint": self.cfg.fingerprint()}
        metrics = {"epoch": epoch, "batch": batch, "global_step": self.step, "done": done}
        if self.log:
            metrics.update({k: v for k, v in self.log[-1].items() if isinstance(v, (int, float))})
        checkpoints.save(self.ckpt, state, config=self.cfg.to_dict(), metrics=metrics,
                         provenance={"data": self._data_source()})
        self.last_saved = (epoch, batch, self.step)

    def _load(self):
        from artlib import checkpoints
        try:
            state, meta = checkpoints.load(self.ckpt, map_location="cpu")
        except checkpoints.CheckpointError as exc:
            raise checkpoints.CheckpointError(f"{exc}; delete it or pass resume=False (--resume false) to train this "
                                              f"run again from the start") from None
        saved = TrainConfig.from_dict(meta["config"]).trajectory_dict() if meta and meta.get("config") else None
        mine = self.cfg.trajectory_dict()
        if saved is not None and saved != mine:
            diff = sorted(k for k in mine if saved.get(k) != mine.get(k))
            raise ValueError(f"{self.ckpt} was written by a different configuration (fields {diff} differ); use "
                             f"another run_name / out_dir, or resume=False to start over")
        self._check_data_source(meta)
        if not isinstance(state, dict) or not {"model", "optimizer", "epoch", "batch"} <= set(state):
            raise checkpoints.CheckpointError(f"{self.ckpt} is not a training checkpoint of artlib.train (it lacks "
                                              f"model / optimizer / epoch / batch); pass resume=False to start over")
        return state

    def _data_source(self) -> dict:
        if self._source is None:
            from artlib import data
            try:
                self._source = data.data_source(self.cfg.dataset, self.cfg.data_root)
            except Exception as exc:  # noqa: BLE001 - a status probe must never stop a training run
                self._source = {"dataset": self.cfg.dataset, "root": str(data.resolve_root(self.cfg.data_root)),
                                "found": False, "error": f"{type(exc).__name__}: {exc}"}
        return self._source

    def _check_data_source(self, meta) -> None:
        """Refuse a checkpoint trained on another data source than this config reads (one line naming both)."""
        from artlib import data
        meta = meta or {}
        saved = (meta.get("provenance") or {}).get("data")
        if saved is None:  # checkpoints from before the record: compare explicitly given data roots only
            old_root = (meta.get("config") or {}).get("data_root")
            if old_root is None or self.cfg.data_root is None:
                return
            if data.resolve_root(old_root) != data.resolve_root(self.cfg.data_root):
                raise ValueError(f"{self.ckpt} was trained on the data root {data.resolve_root(old_root)}, this config "
                                 f"reads {data.resolve_root(self.cfg.data_root)}; pass data_root={old_root!r}, "
                                 f"another run_name / out_dir, or resume=False")
            return
        mine = self._data_source()
        if not mine.get("found"):  # nothing to conflict with here (a finished run needs no data to be loaded)
            return
        keys = ("source", "path", "n_images")
        if any(saved.get(k) != mine.get(k) for k in keys):
            def show(d):
                return f"{d.get('path')} ({d.get('source')}, {d.get('n_images')} images)"
            raise ValueError(f"{self.ckpt} was trained on {self.cfg.dataset} from {show(saved)}, but this config reads "
                             f"{show(mine)}; pass data_root={saved.get('root')!r} (or set $ARTLIB_DATA to it), "
                             f"another run_name / out_dir, or resume=False to train on the new data")

    # -- main ---------------------------------------------------------------------------------------------------------
    def run(self) -> TrainResult:
        cfg = self.cfg
        from tqdm import tqdm  # text bars: readable in logs, terminals and stored notebook outputs alike

        state = self._load() if cfg.resume and self.ckpt.is_file() else None
        if state is not None and state["epoch"] > cfg.epochs:
            # epochs is not part of the run key (a run can be extended), but a finished longer run cannot be cut
            # back: handing it out would silently give a model trained longer than asked for.
            raise ValueError(f"{self.ckpt} already holds {state['epoch']} epochs but epochs={cfg.epochs} was asked "
                             f"for; pass epochs={state['epoch']}, another run_name / out_dir, or resume=False")
        finished = state is not None and state["epoch"] >= cfg.epochs and state["batch"] == 0
        # A finished run (the checkpoint cache hit of reproduce.get_model) needs no data: skip decoding it.
        self.train_data = None if finished else _Data(cfg, "train", cfg.train_subset, cfg.balance, cfg.cache)
        self.test_data = (_Data(cfg, "test", cfg.test_subset, False, cfg.cache)
                          if cfg.eval_every and not finished else None)
        if self.train_data is not None and self.train_data.n < cfg.batch_size:
            raise ValueError(f"batch_size {cfg.batch_size} is larger than the {self.train_data.n} training images")
        self.model = build_model(cfg).to(self.device, memory_format=self.fmt)
        self.opt = torch.optim.SGD(_param_groups(self.model, cfg), lr=cfg.lr, momentum=cfg.momentum,
                                   nesterov=cfg.nesterov and cfg.momentum > 0, weight_decay=cfg.weight_decay)
        self.step, self.log, self.steps = 0, [], []
        start_epoch, start_batch, acc = 0, 0, dict.fromkeys(_ACC_KEYS, 0.0)
        resumed_from, self.last_saved = None, None
        if state is not None:
            self.model.load_state_dict(state["model"])
            self.opt.load_state_dict(state["optimizer"])
            self.step, self.log, self.steps = state["global_step"], list(state["log"]), list(state["steps"])
            start_epoch, start_batch, acc = state["epoch"], state["batch"], dict(state["acc"])
            resumed_from = self.step
            self.last_saved = (start_epoch, start_batch, self.step)
        elif not cfg.resume and self.rank == 0:
            for stale in ("last.pt", "last.pt.json", "model.pt", "model.pt.json"):
                (self.run_dir / stale).unlink(missing_ok=True)
        if self.rank == 0:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            cfg.save(self.run_dir / "config.yaml")

        net = self.model
        objective = _Objective(self.model, cfg)
        if self.world > 1:
            from torch.nn.parallel import DistributedDataParallel as DDP
            objective = DDP(objective, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        mean = _dataset_mean(cfg, self.device)
        n_batches = (0 if finished else
                     len(_epoch_indices(self.train_data.n, cfg, 0, self.world, self.rank)) // self.local_bs)
        stopped = False
        for epoch in range(start_epoch, cfg.epochs):
            lr = lr_at(cfg, epoch)
            for group in self.opt.param_groups:
                group["lr"] = lr * group.get("lr_mult", 1.0)
            first = start_batch if epoch == start_epoch else 0
            if epoch != start_epoch:
                acc = dict.fromkeys(_ACC_KEYS, 0.0)
            order = _epoch_indices(self.train_data.n, cfg, epoch, self.world, self.rank)
            order = order[first * self.local_bs:]
            t0 = time.time()
            bar = tqdm(total=n_batches, initial=first, desc=f"epoch {epoch + 1}/{cfg.epochs}",
                       disable=not cfg.progress or self.rank != 0, leave=True, dynamic_ncols=True)
            self.model.train()
            for k, (x, y) in enumerate(self.train_data.batches(order, self.local_bs, drop_last=True), start=first):
                if cfg.max_steps is not None and self.step >= cfg.max_steps:
                    stopped = True
                    break
                x = x.to(self.device, non_blocking=True)
                y = y.to(self.device, non_blocking=True)
                stats = self._train_step(net, objective, x, y, mean, epoch, k)
                for key, v in stats.items():
                    acc[key] += v
                self.step += 1
                row = dict(step=self.step, epoch=epoch + 1, loss=stats["loss"] / stats["n"],
                           ce=stats["ce"] / stats["n"],
                           attr=stats["attr"] / stats["n_attr"] if stats["n_attr"] else float("nan"),
                           acc=stats["correct"] / stats["n"])
                self.steps.append(row)
                bar.update(1)
                bar.set_postfix(loss=f"{row['loss']:.3f}", acc=f"{row['acc']:.2f}")
                if self.step % cfg.checkpoint_every == 0:
                    self._save(epoch, k + 1, acc, done=False)
            bar.close()
            if stopped:
                break
            self.log.append(self._epoch_row(epoch, lr, acc, time.time() - t0))
            self._save(epoch + 1, 0, dict.fromkeys(_ACC_KEYS, 0.0), done=epoch + 1 >= cfg.epochs)
            self._write_logs()
        completed = not stopped and (len(self.log) >= cfg.epochs or start_epoch >= cfg.epochs)
        if stopped and (self.last_saved is None or self.last_saved[2] != self.step):
            self._save(epoch, k, acc, done=False)  # noqa: F821 - the loop ran at least once when stopped
        if self.rank == 0:
            self._write_logs()
            if completed and not (finished and self.model_path.is_file()):
                from artlib import checkpoints
                metrics = {k: v for k, v in (self.log[-1] if self.log else {}).items() if isinstance(v, (int, float))}
                checkpoints.save(self.model_path, {"model": self.model.state_dict()}, config=cfg.to_dict(),
                                 metrics=metrics, provenance={"data": self._data_source()})
        if self.world > 1:
            import torch.distributed as dist
            dist.barrier()
        self.model.eval()
        return TrainResult(model=self.model, config=cfg, log=self.log, steps=self.steps, run_dir=self.run_dir,
                           checkpoint=self.ckpt, model_path=self.model_path if completed else None,
                           resumed_from=resumed_from, completed=completed)

    def _train_step(self, net, objective, x, y, mean, epoch, k) -> dict:
        cfg, device = self.cfg, self.device
        B = self.local_bs * self.world
        # Global-batch random draws (same on every process), then this process's share: local sample j of rank r
        # is global position r + world * j (DistributedSampler interleaving).
        torch.manual_seed(_step_seed(cfg, self.step, 1 + self.rank))
        gen = torch.Generator().manual_seed(_step_seed(cfg, self.step))
        sl = slice(self.rank, None, self.world)
        x = x.contiguous(memory_format=self.fmt)
        if cfg.augment != "none" and not _dataset_augments(cfg):
            x = _augment_shard(x, cfg.augment, gen, B, sl)
        if cfg.method == "pgd_cutout":
            x = _cutout_shard(x, cfg.cutout, mean, gen, B, sl)
        noise = None  # the random start of ART / RAR (PGD draws its own from the global RNG seeded above)
        if cfg.method in _ART_METHODS + _IG_METHODS:
            noise = torch.rand((B,) + tuple(x.shape[1:]), generator=gen)[sl].to(device)
        with _autocast(cfg, device):
            i_star = None
            if _needs_clean_i_star(cfg):
                i_star = _clean_runner_up(net, x, y, cfg)
            x_t = _perturb(cfg, net, x, y, i_star, noise)
            self.model.train()
            loss_ps, ce, attr, cos, correct = objective(x, x_t.contiguous(memory_format=self.fmt), y, i_star)
            loss = loss_ps.float().mean()
        finite_attr = torch.isfinite(attr)
        local = [0.0 if bool(torch.isfinite(loss)) else 1.0, loss_ps.detach().float().sum().item(), ce.sum().item(),
                 attr[finite_attr].sum().item(), cos[torch.isfinite(cos)].sum().item(), correct.sum().item(),
                 float(x.shape[0]), float(finite_attr.sum().item())]
        summed = _all_sum(local, device, self.world)  # one all-reduce: the NaN flag and the step's statistics
        if summed[0]:
            where = ("no checkpoint was written yet" if self.last_saved is None else
                     f"the last good checkpoint is {self.ckpt} (epoch {self.last_saved[0] + 1}, "
                     f"batch {self.last_saved[1]}, step {self.last_saved[2]})")
            raise NonFiniteLossError(
                f"non-finite training loss ({loss.item()}) at epoch {epoch + 1}, batch {k + 1} (global step "
                f"{self.step + 1}) of method {cfg.method!r}; training stopped before the optimiser step and {where}. "
                f"Lower lr (now {lr_at(cfg, epoch):g}) or check the data / model")
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return dict(zip(_ACC_KEYS, summed[1:]))

    def _epoch_row(self, epoch: int, lr: float, acc: dict, seconds: float) -> dict:
        cfg = self.cfg
        a = acc  # sums over all processes (each step's statistics are all-reduced)
        n, na = max(a["n"], 1.0), a["n_attr"]
        row = dict(epoch=epoch + 1, step=self.step, lr=lr, train_loss=a["loss"] / n, train_ce=a["ce"] / n,
                   train_attr=a["attr"] / na if na else float("nan"),
                   train_cos=a["cos"] / na if na and cfg.method in _ART_METHODS else float("nan"),
                   train_acc=a["correct"] / n)
        test = dict(test_loss=float("nan"), test_acc=float("nan"), test_attr=float("nan"), test_cos=float("nan"),
                    test_adv_acc=float("nan"))
        if self.test_data is not None and ((epoch + 1) % cfg.eval_every == 0 or epoch + 1 == cfg.epochs):
            if self.rank == 0:
                test = _evaluate(cfg, self.model, self.test_data, self.device)
            if self.world > 1:
                import torch.distributed as dist
                box = [test]
                dist.broadcast_object_list(box, src=0)
                test = box[0]
        row.update(test)
        row["time_s"] = seconds
        return row

    def _write_logs(self) -> None:
        if self.rank != 0:
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        _write_csv(self.run_dir / "log.csv", self.log)
        _write_json(self.run_dir / "log.json", [{k: (_finite(v) if isinstance(v, float) else v) for k, v in r.items()}
                                                for r in self.log])
        _write_csv(self.run_dir / "steps.csv", self.steps)


def _param_groups(model: nn.Module, cfg: TrainConfig) -> list:
    """One group, or (``head_lr_mult != 1``) the backbone and the ResNet's ``layer4`` + ``fc`` at ``head_lr_mult``
    times the lr (the released ART CUB code)."""
    if cfg.head_lr_mult == 1.0:
        return [{"params": list(model.parameters())}]
    head = [p for n, p in model.named_parameters() if n.startswith(("net.layer4.", "net.fc."))]
    if not any(n.startswith("net.layer4.") for n, _ in model.named_parameters()):
        raise ValueError(f"head_lr_mult={cfg.head_lr_mult} needs a ResNet with layer4 and fc, got arch {cfg.arch!r}")
    ids = {id(p) for p in head}
    return [{"params": [p for p in model.parameters() if id(p) not in ids]},
            {"params": head, "lr_mult": cfg.head_lr_mult}]


def _augment_shard(x, mode, gen, B, sl):
    """Augment this process's share ``x`` with draws made for the whole global batch of ``B``."""
    full = torch.zeros((B,) + tuple(x.shape[1:]), dtype=x.dtype, device=x.device)
    full[sl] = x
    return _augment(full, mode, gen)[sl]


def _cutout_shard(x, size, fill, gen, B, sl):
    full = torch.zeros((B,) + tuple(x.shape[1:]), dtype=x.dtype, device=x.device)
    full[sl] = x
    return cutout(full, size, fill, gen)[sl]


# ----------------------------------------------------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------------------------------------------------
def field_help() -> dict:
    """``{field: (description, choices or None)}`` of every :class:`TrainConfig` field: the command line's ``--help``
    (a field without an entry here fails ``tests/test_bad_input.py``)."""
    from artlib import data, models
    devices = ("auto", "cpu", "cuda", "cuda:N")
    return {
        "dataset": ("dataset to train on (artlib.data.DATASETS)", tuple(data.DATASETS)),
        "method": ("training method (see the module docstring of artlib.train)", METHODS),
        "arch": ("network (artlib.models.ARCHS)", tuple(models.ARCHS)),
        "profile": ("preset of every other default: smoke (CPU, seconds), reference (the zoo's models), paper "
                    "(ART A.3 / B.1), official (the ART authors' released recipe)", PROFILES),
        "variant": ("ART Table 5 objective, method art_variant only", losses.ART_VARIANTS),
        "epochs": ("epochs to train (a finished run can be extended; int >= 1)", None),
        "batch_size": ("global batch size over all processes (int >= 1)", None),
        "lr": ("SGD learning rate (> 0; 1e-3, 0.05 and 1/20 all work)", None),
        "momentum": ("SGD momentum (>= 0)", None),
        "nesterov": ("Nesterov momentum", ("true", "false")),
        "weight_decay": ("SGD weight decay (>= 0)", None),
        "lr_milestones": ("epochs (from 0) at which the lr is multiplied by the matching lr_factors entry, e.g. "
                          "[50,80]", None),
        "lr_factors": ("lr multipliers (> 0), one per milestone, cumulative, e.g. [0.1,0.1]", None),
        "eps": ("radius of the inner maximisation in [0, 1] pixel space (l-inf: at most 1, e.g. 8/255; l2: per "
                "image)", None),
        "step_size": ("step of the inner maximisation (pixel space; l-inf at most 1, e.g. 2/255)", None),
        "steps": ("inner maximisation steps: a for ART, n for PGD-n, k for RAR (int >= 1)", None),
        "norm": ("threat model of pgd / pgd_cutout", ("linf", "l2")),
        "lam": ("weight of L_attr (ART) or of ||IG||_1 (RAR) (>= 0)", None),
        "beta": ("softplus beta of the attribution loss (> 0; ART: 50)", None),
        "i_star": ("ART's runner-up class: of the clean image (Algorithm 1) or of the perturbed one (released code)",
                   ("clean", "perturbed")),
        "reduce_channels": ("channel reduction of L_attr (ART B.1 CUB: mean)", ("none", "mean", "abs_mean")),
        "attr_space": ("space of the cosine in L_attr", ("pixel", "normalized")),
        "bn_mode": ("BatchNorm mode during the inner maximisation", ("train", "eval")),
        "setting": ("ART as the paper writes it, or as the authors' released code trains it (method art)", SETTINGS),
        "topk": ("entries the official inner ascent moves (none: 1000 on CIFAR-10, 15000 on CUB; int >= 1)", None),
        "head_lr_mult": ("lr multiplier of a ResNet's layer4 and fc (> 0; the released CUB code: 10)", None),
        "image_size": ("side of the square input images (none: the dataset's own; int >= the arch's smallest input, "
                       "artlib.models.MIN_INPUT_SIZE)", None),
        "ig_steps": ("IG path points in RAR's outer loss (int >= 1)", None),
        "ig_attack_steps": ("IG path points in RAR's inner PGD (int >= 1)", None),
        "cutout": ("Cutout square side in pixels, pgd_cutout (int >= 0)", None),
        "train_subset": ("class-stratified number of training images (none: all; int >= 1)", None),
        "test_subset": ("class-stratified number of test images (none: all; int >= 1)", None),
        "balance": ("ART A.3.3 / A.3.4 class balancing (true: the paper's images per class, or an int)",
                    ("true", "false", "N")),
        "augment": ("batch augmentation", AUGMENTS),
        "cache": ("hold the (subset) datasets in memory instead of a DataLoader", ("true", "false")),
        "pretrained": ("weights to start from: a local file or URL, imagenet (torchvision's), or none (random init)", None),
        "eval_every": ("evaluate on the test split every N epochs (int >= 1)", None),
        "eval_attr_max": ("test images for L_attr / cos (int >= 0)", None),
        "eval_adv_steps": ("PGD steps of the robust test accuracy at eps (int >= 0; 0: skipped)", None),
        "seed": ("seed of the initialisation, data order and every random draw (int >= 0)", None),
        "device": ("where to train (auto: CUDA when present)", devices),
        "amp": ("bfloat16 autocast (GPU)", ("true", "false")),
        "channels_last": ("channels-last memory format (GPU)", ("true", "false")),
        "impl": ("attribution-loss implementation (same values)", ("fast", "reference")),
        "data_root": ("data root (none: $ARTLIB_DATA, else ./data)", None),
        "num_workers": ("DataLoader worker processes (int >= 0)", None),
        "out_dir": ("folder of the run folders (none: $ARTLIB_RUNS, else <repo>/runs)", None),
        "run_name": ("run folder name (none: from the config and its hash)", None),
        "resume": ("continue from <out_dir>/<run_name>/last.pt when it exists", ("true", "false")),
        "checkpoint_every": ("optimiser steps between checkpoints (int >= 1)", None),
        "max_steps": ("stop after this many optimiser steps in total (none: train all epochs; int >= 1)", None),
        "progress": ("tqdm progress bars", ("true", "false")),
    }


def _show(name: str, v) -> str:
    """A default as it is typed on the command line (``8/255`` for the pixel-space radii and steps)."""
    if v is None:
        return "none"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, list):
        return "[" + ",".join(_show(name, x) for x in v) + "]"
    if isinstance(v, float) and name in ("eps", "step_size") and 0 < v < 1:
        k = v * 255
        if abs(k - round(k * 2) / 2) < 1e-9:
            return f"{round(k * 2) / 2:g}/255"
    return f"{v:g}" if isinstance(v, float) else str(v)


def build_parser(profile: str = "smoke", dataset: str = "cifar10", method: str = "art") -> argparse.ArgumentParser:
    """The parser of ``python -m artlib train``; ``--help`` shows each option's description, its choices and its
    default under ``profile`` / ``dataset`` / ``method`` (the profile's actual value)."""
    try:
        defaults = config(profile, dataset, method).to_dict()
        where = f"--profile {profile} --dataset {dataset} --method {method}"
    except ValueError:
        defaults, where = TrainConfig().to_dict(), "the TrainConfig defaults"
    p = argparse.ArgumentParser(
        prog="python -m artlib train",
        usage="python -m artlib train [-h] [--config FILE] [--print-config] [--profile P] [--dataset D] "
              "[--method M] [--FIELD VALUE ...]",
        description="Train a model with one of artlib's methods (natural, PGD, ART, RAR, ...); resumable; DDP under "
                    f"torchrun (torchrun --nproc_per_node=N -m artlib.train ...). Defaults shown: {where} (pass "
                    f"--profile / --dataset / --method with --help to see another profile's).",
        epilog="Numbers may be fractions (--eps 8/255) or exponents (--lr 1e-3); lists are [50,80] or 50,80; "
               "booleans take a value (--amp true / false); none resets an optional field. Re-running the same "
               "command resumes from <out_dir>/<run_name>/last.pt.")
    p.add_argument("--config", metavar="FILE", help="YAML / JSON config file (command-line options override it)")
    p.add_argument("--print-config", action="store_true", help="print the resolved config as YAML and exit")
    helps = field_help()
    for f in fields(TrainConfig):
        text, choices = helps[f.name]
        metavar = "{" + ",".join(choices) + "}" if choices else f.name.upper()
        p.add_argument("--" + f.name.replace("_", "-"), dest=f.name, default=None, metavar=metavar,
                       help=f"{text} (default: {_show(f.name, defaults[f.name])})")
    return p


def _join_negative_values(argv: list) -> list:
    """``--eps -8/255`` -> ``--eps=-8/255``: argparse would read a value starting with ``-`` that is not a plain
    negative number as the next option; joined, it reaches validation, which names the bound."""
    out, i = [], 0
    while i < len(argv):
        a = argv[i]
        if a.startswith("--") and "=" not in a and i + 1 < len(argv) and re.match(r"-[\d.]", argv[i + 1]):
            out.append(f"{a}={argv[i + 1]}")
            i += 2
            continue
        out.append(a)
        i += 1
    return out


def _preparse(argv) -> tuple:
    """``--profile`` / ``--dataset`` / ``--method`` of a command line (for the defaults ``--help`` shows)."""
    pre = argparse.ArgumentParser(add_help=False)
    for name in ("profile", "dataset", "method"):
        pre.add_argument("--" + name, default=None)
    known, _ = pre.parse_known_args(argv)
    return known.profile or "smoke", known.dataset or "cifar10", known.method or "art"


def main(argv=None) -> int:
    """Command-line entry: ``python -m artlib train [--config FILE] [--profile P] [--dataset D] [--method M]
    [--FIELD VALUE ...]`` (also ``torchrun ... -m artlib.train``). Returns the exit status: 0, or 2 with one line on
    stderr for a bad value, a missing data set or a corrupt checkpoint."""
    from artlib import checkpoints
    argv = _join_negative_values(sys.argv[1:] if argv is None else list(argv))
    args = build_parser(*_preparse(argv)).parse_args(argv)
    try:
        given = {k: v for k, v in vars(args).items() if v is not None and k not in ("config", "print_config")}
        if args.config:
            import yaml
            if not Path(args.config).exists():
                raise FileNotFoundError(f"config file not found: {args.config}")
            try:
                from_file = yaml.safe_load(Path(args.config).read_text()) or {}
            except yaml.YAMLError as exc:
                line = getattr(getattr(exc, "problem_mark", None), "line", None)
                where = f" (line {line + 1})" if line is not None else ""
                raise ValueError(f"{args.config} is not valid YAML / JSON{where}: "
                                 f"{getattr(exc, 'problem', None) or exc}") from None
            except (IsADirectoryError, PermissionError, UnicodeDecodeError) as exc:
                raise ValueError(f"cannot read the config file {args.config}: {exc}") from None
            if not isinstance(from_file, dict):
                raise ValueError(f"{args.config} does not hold a mapping of config fields")
            given = {**from_file, **given}
        given = {k: _coerce(k, v) for k, v in given.items()}
        profile = given.pop("profile", "smoke")
        dataset = given.pop("dataset", "cifar10")
        method = given.pop("method", "art")
        cfg = config(profile, dataset, method, **given)
        cleared = {k: None for k, v in given.items() if v is None}  # `--train-subset none`: config() skips Nones
        if cleared:
            cfg = cfg.replace(**cleared)
        if args.print_config:
            import yaml
            print(yaml.safe_dump(cfg.to_dict(), sort_keys=False), end="")
            return 0
        result = train(cfg)
    except (ValueError, FileNotFoundError, NonFiniteLossError, checkpoints.CheckpointError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if int(os.environ.get("RANK", "0")) == 0:
        last = result.log[-1] if result.log else {}
        summary = ", ".join(f"{k} {last[k]:.4f}" for k in ("train_loss", "test_acc", "test_cos")
                            if isinstance(last.get(k), float) and math.isfinite(last[k]))
        state = "completed" if result.completed else "stopped (max_steps)"
        print(f"{state}: {result.run_dir} (step {result.steps[-1]['step'] if result.steps else 0}; {summary})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
