"""The paper profile's dry run: every notebook's ``paper`` branch on its real code paths, cut to a few steps.

``python -m artlib reproduce --profile paper --dry-run`` (``make paper-check``) executes each notebook with
``profile="paper"`` — the papers' architectures, image sizes, attack and attribution settings — while the library
truncates the work where it is done, not in the notebooks:

========================  ==========================================================================================
what                      cap while a dry run is active (:data:`LIMITS`)
========================  ==========================================================================================
training                  :func:`training_config`: 2 optimiser steps of batch 2 on 4 class-stratified train images,
                          test metrics on 2 images; the request (the full paper config) is recorded for ``--plan``
dataset splits            :func:`dataset`: ``LIMITS["split"]`` images, ``LIMITS["per_class"]`` of each class
                          (CIFAR-10-C's corruption x severity blocks: :func:`images` caps the images per block)
attack / path iterations  :func:`iterations`: PGD, IFIA, targeted attacks, SPSA, ART / RAR inner steps and IG points
                          (a search grid, e.g. the spatial attack's: :func:`grid`, 2 points per axis)
checks                    :func:`relaxed`: a notebook's failing check is printed as ``dry-run, not checked: ...``
========================  ==========================================================================================

A dry run is active in a process whose ``$ARTLIB_DRY_RUN`` names a file: the runner sets it per notebook kernel to
``<out>/<notebook>.requests.jsonl``, where :func:`record` appends one JSON line per model the notebook asked to
train (:mod:`artlib.plan` reads them). Its outputs (executed notebooks, figures, checkpoints) go to
``runs/dry-run/``, never over ``figures/`` or the checkpoint cache: they are not results.

Example::

    >>> from artlib import dryrun
    >>> dryrun.iterations(50)           # 50 outside a dry run; 2 inside one
    50
"""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import numpy as np

__all__ = ["ENV", "LIMITS", "active", "iterations", "grid", "images", "dataset", "training_config", "record", "read_requests",
           "relaxed"]

#: Environment variable naming the request log of the running notebook (unset: no dry run).
ENV = "ARTLIB_DRY_RUN"
#: The caps of a dry run: optimiser steps, batch size, train / test images of a training run, images per dataset
#: split read by a notebook, iterations of an attack or points of an attribution path.
LIMITS = {"train_steps": 2, "batch_size": 2, "train_images": 4, "test_images": 2, "split": 4, "per_class": 2,
          "iterations": 2}


def active() -> bool:
    """Whether this process is a dry run (``$ARTLIB_DRY_RUN`` set)."""
    return bool(os.environ.get(ENV))


def iterations(n):
    """``n`` capped at ``LIMITS["iterations"]`` in a dry run (``n`` itself otherwise; None stays None)."""
    return n if n is None or not active() else min(int(n), LIMITS["iterations"])


def grid(values):
    """A search grid (a 1-D tensor, e.g. a spatial attack's angles) cut to ``LIMITS["iterations"]`` evenly spaced
    entries, its ends kept, in a dry run; ``values`` itself otherwise."""
    n = LIMITS["iterations"]
    if not active() or len(values) <= n:
        return values
    return values[np.linspace(0, len(values) - 1, n).round().astype(np.int64).tolist()]


def images(n):
    """An image count ``n`` (None: all) capped at ``LIMITS["split"]`` in a dry run; ``n`` itself otherwise. For
    code that picks its images from a dataset :func:`dataset` leaves whole (CIFAR-10-C's blocks)."""
    return n if not active() else min(LIMITS["split"], LIMITS["split"] if n is None else int(n))


def dataset(ds):
    """``ds`` cut to ``LIMITS["split"]`` images in a dry run: ``LIMITS["per_class"]`` of each of the first classes
    that have as many (label order, dataset order within a class), so that per-class code (a class-conditional Gaussian, a class
    mean) sees more than one image of a class; ``ds`` itself outside a dry run."""
    from artlib import data
    if not active() or len(ds) <= LIMITS["split"] or isinstance(ds, data.CIFAR10C):   # blocks: see images()
        return ds
    targets = np.asarray(ds.targets)
    order = np.argsort(targets, kind="stable")                          # label order, dataset order within
    keep = order[data.class_rank(targets)[order] < LIMITS["per_class"]]
    full = np.bincount(targets)[targets[keep]] >= LIMITS["per_class"]    # classes with enough images come first
    keep = np.concatenate([keep[full], keep[~full]])[:LIMITS["split"]]
    return data.subset_dataset(ds, np.sort(keep).tolist())


def record(kind: str, **info) -> None:
    """Append ``{"kind": kind, **info}`` to the request log of a dry run (nothing outside one)."""
    log = os.environ.get(ENV)
    if log:
        with open(log, "a", encoding="utf-8") as fh:   # one short O_APPEND write per line
            fh.write(json.dumps({"kind": kind, **info}, sort_keys=True, default=str) + "\n")


def read_requests(log: str | os.PathLike) -> list[dict]:
    """The lines :func:`record` wrote to ``log`` ([] when it does not exist)."""
    path = Path(log)
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def training_config(cfg):
    """In a dry run: record ``cfg`` (the full request, for the cost plan) and return it cut to :data:`LIMITS`
    (steps, batch, train / test images, inner attack steps, IG points, evaluation); else ``cfg`` unchanged."""
    if not active():
        return cfg
    full = dataclasses.asdict(cfg)
    record("train", config=full, run_name=cfg.run_dir().name)
    cut = dict(max_steps=LIMITS["train_steps"], batch_size=min(cfg.batch_size, LIMITS["batch_size"]),
               train_subset=min(cfg.train_subset or LIMITS["train_images"], LIMITS["train_images"]),
               test_subset=min(cfg.test_subset or LIMITS["test_images"], LIMITS["test_images"]),
               steps=iterations(cfg.steps), ig_steps=iterations(cfg.ig_steps),
               ig_attack_steps=iterations(cfg.ig_attack_steps), eval_attr_max=min(cfg.eval_attr_max, 2),
               eval_adv_steps=iterations(cfg.eval_adv_steps), num_workers=0, checkpoint_every=1)
    return dataclasses.replace(cfg, **cut)


def relaxed(name: str, ok: bool, detail: str = "") -> bool:
    """For :class:`artlib.checks.Checks`: True when a failing check is to be reported, not raised (a dry run's
    untrained models on a few images cannot meet a result's checks; the notebook must only run and write)."""
    if ok or not active():
        return False
    print(f"dry-run, not checked: {name}" + (f" ({detail})" if detail else ""))
    return True


# ------------------------------------------------------------------------------------------ inputs of a dry run
#: The robust-models-transfer ImageNet models the paper branches of notebooks 21-27 load (Inequality Sec. 4.1).
ROBUST_LABELS = ("standard", "linf-1", "linf-2", "linf-4", "linf-8", "l2-3")


def _write_svhn(folder: Path, n: int = 8, seed: int = 0) -> None:
    """``train_32x32.mat`` / ``test_32x32.mat`` as released: X ``[32, 32, 3, N]`` uint8, y ``[N, 1]`` in 1..10 (2 images per class)."""
    from scipy.io import savemat
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for split in ("train", "test"):
        savemat(folder / f"{split}_32x32.mat", {"X": rng.integers(0, 256, (32, 32, 3, n), dtype=np.uint8),
                                                "y": (np.arange(n) // 2 % 10 + 1).astype(np.uint8)[:, None]})


def _write_trimaps(flowers: Path, n: int = 4) -> None:
    """``trimaps/image_NNNN.png`` (foreground (128, 0, 0), the rest background) and ``trimaps/imlist.mat`` for the
    first ``n`` images of ``flowers/jpg`` (the Flowers-17 segmentation release's format)."""
    from PIL import Image
    from scipy.io import savemat
    jpgs = sorted((flowers / "jpg").glob("image_*.jpg"))[:n]
    tri = flowers / "trimaps"
    tri.mkdir(parents=True, exist_ok=True)
    for jpg in jpgs:
        w, h = Image.open(jpg).size
        rgb = np.zeros((h, w, 3), dtype=np.uint8)
        rgb[h // 4: 3 * h // 4, w // 4: 3 * w // 4] = (128, 0, 0)
        Image.fromarray(rgb).save(tri / (jpg.stem + ".png"))
    ids = [int(p.stem.split("_")[1]) for p in jpgs]
    savemat(tri / "imlist.mat", {"imlist": np.array([ids], dtype=np.float64)})


def _overlay(src: Path, dst: Path) -> None:
    """``dst`` as a folder of symlinks to the entries of ``src`` (so generated files can be added beside them)."""
    dst.mkdir(parents=True, exist_ok=True)
    for item in src.iterdir():
        link = dst / item.name
        if not link.exists() and not link.is_symlink():
            link.symlink_to(item.resolve())


def prepare_data(out: str | os.PathLike, root: str | os.PathLike | None = None) -> Path:
    """A data root for the dry run under ``<out>/data``: symlinks to the real data root's datasets, plus generated
    trees in the official formats for what it lacks (SVHN ``.mat``, Flowers-17 trimaps); nothing is written into
    the real root. Returns the folder."""
    from artlib import data
    real, overlay = data.resolve_root(root), Path(out).resolve() / "data"
    overlay.mkdir(parents=True, exist_ok=True)
    for item in (real.iterdir() if real.is_dir() else ()):
        if item.name.startswith(("_", ".")) or (overlay / item.name).exists():
            continue
        if item.name == "flowers17" and not data.available("flowers17-trimaps", real):
            _overlay(item, overlay / item.name)                  # a real folder: trimaps are added into it
        else:
            (overlay / item.name).symlink_to(item.resolve())
    if not data.available("svhn", overlay):
        _write_svhn(overlay / "svhn")
    if data.available("flowers17", overlay) and not data.available("flowers17-trimaps", overlay):
        _write_trimaps(overlay / "flowers17")
    return overlay


def prepare_robust_models(out: str | os.PathLike, arch: str = "resnet50", labels=ROBUST_LABELS,
                          python: str | None = None) -> Path:
    """``<out>/robust-models/``: a randomly initialised torchvision ``arch`` written in the robust-models-transfer
    format (``{"model": {"module.model.*", "module.normalizer.*"}, "epoch"}``) under each name of
    :data:`ROBUST_LABELS`, each converted by ``python -m artlib models convert`` (the path a user takes with the
    real checkpoints). Returns the folder (for ``$ARTLIB_ROBUST_MODELS``)."""
    import subprocess
    import sys

    import torch
    import torchvision

    from artlib import inequality
    folder = Path(out).resolve() / "robust-models"
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    net = getattr(torchvision.models, arch)(weights=None)
    ckpt = {"model": {**{f"module.model.{k}": v for k, v in net.state_dict().items()},
                      "module.normalizer.new_mean": torch.zeros(3, 1, 1),
                      "module.normalizer.new_std": torch.ones(3, 1, 1)}, "epoch": 0}
    original = folder / "random.ckpt"
    if not original.is_file():
        torch.save(ckpt, original)
    for label in labels:
        name = folder / inequality.imagenet_checkpoint_name(label, arch)
        converted = name.with_name(name.stem + ".weights.pt")
        if converted.is_file():
            continue
        if not name.exists():
            name.symlink_to(original.name)
        done = subprocess.run([python or sys.executable, "-m", "artlib", "models", "convert", str(name), "--out",
                               str(converted)], capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError(f"python -m artlib models convert {name} failed: "
                               f"{(done.stderr.strip().splitlines() or [''])[-1]}")
    return folder
