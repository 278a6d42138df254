"""The reference zoo: learned CPU models trained by artlib, committed under ``zoo/`` and evaluated by every notebook.

Each entry is one training configuration of the ``reference`` profile (:func:`artlib.train.reference_settings`:
small-cnn, the whole train split of the data root, crop + flip, SGD with a step schedule) for one
``(dataset, method, eps / beta / lambda / variant, seed)``. Its weights live in ``zoo/<name>.pt`` (a plain state dict,
read with ``torch.load(weights_only=True)`` after its sha256 is checked against the sidecar ``zoo/<name>.pt.json``);
the sidecar also records the full config, the clean accuracy on the whole test split of the data root it was trained
on, the PGD-20 accuracy, and the provenance (artlib commit, command, thread count, CPU capability, wall time, training
log, number of train / test images).

:func:`artlib.reproduce.get_model` looks a requested model up here first (for the ``smoke`` and ``reference``
notebook profiles), so notebooks evaluate committed weights instead of training, and their outputs do not depend on
the machine that runs them beyond the last bits of float arithmetic.

Command line::

    python -m artlib zoo list [--json] [--all]       # trained entries (--all: also the ones not trained yet)
    python -m artlib zoo train NAME [NAME ...]       # retrain from the recorded config (resumable, checkpoint cache)
    python -m artlib zoo train --all                 # every entry not yet in zoo/, in priority order
    python -m artlib zoo verify [--accuracy]         # sha256, weights-only load, sizes; --accuracy re-measures

Example:
    >>> from artlib import zoo
    >>> [e["name"] for e in zoo.entries()][:3]
    ['cifar10-natural-s0', 'cifar10-pgd-linf8-s0', 'cifar10-art-s0']
    >>> model = zoo.load("cifar10-natural-s0")           # eval mode, [0, 1] images, Normalize inside
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from torch import nn

from artlib import checkpoints

__all__ = ["ZOO_DIR", "FLOORS", "NOTES", "floors", "Spec", "SPECS", "specs", "spec", "entries", "entry", "load", "match", "train_entry",
           "verify", "report", "MAX_FILE_BYTES", "MAX_TOTAL_BYTES", "PGD_EVAL", "ZooError", "pack", "test_correct",
           "recorded_accuracy", "record_test_correct", "split_fingerprint", "same_test_split", "cpu_features", "same_cpu"]

ROOT = Path(__file__).resolve().parent.parent
#: Where the committed checkpoints live (``$ARTLIB_ZOO`` overrides it, e.g. for tests).
ZOO_DIR = ROOT / "zoo"
#: Size limits of the committed zoo (small tensors, not data).
MAX_FILE_BYTES = 1 << 20
MAX_TOTAL_BYTES = 25 << 20
#: The robustness yardstick recorded for every entry: PGD-20, l-inf, step 2/255 at the dataset's eps (ART A.3:
#: 8/255; CUB-200: 2/255 as ART B.1), random start, seed 0, on the first ``n`` test images (class-stratified).
PGD_EVAL = {"default": dict(eps=8 / 255, step_size=2 / 255, steps=20, n=2000),
            "cub200": dict(eps=2 / 255, step_size=0.5 / 255, steps=20, n=2000)}


#: The accuracy floors of the reference zoo (fractions; the issue that introduced the zoo): entry -> (metric, floor).
#: "natural" as a floor means "above the PGD-20 accuracy of cifar10-natural-s0".
FLOORS = (("cifar10-natural-s0", "test_accuracy", 0.60), ("cifar10-pgd-linf8-s0", "test_accuracy", 0.40),
          ("cifar10-pgd-linf8-s0", "pgd20_accuracy", 0.20), ("cifar10-art-s0", "test_accuracy", 0.40),
          ("cifar10-art-s0", "pgd20_accuracy", "natural"), ("cifar10-pgd-linf1-s0", "test_accuracy", 0.40),
          ("cifar10-pgd-linf2-s0", "test_accuracy", 0.40), ("cifar10-pgd-linf4-s0", "test_accuracy", 0.40),
          ("gtsrb-natural-s0", "test_accuracy", 0.80), ("cub200-natural-s0", "test_accuracy", 3 / 50),
          ("cub200-art-s0", "test_accuracy", 3 / 50), ("flowers17-natural-s0", "test_accuracy", 3 / 17),
          ("flowers17-art-s0", "test_accuracy", 3 / 17))


#: Measured facts about entries that are not (or not yet) what the floors ask, written into zoo.md by :func:`report`.
NOTES = (
    "gtsrb: the shared GTSRB train split holds 60 images per class from 2 tracks (near-duplicate frames of 2 physical "
    "signs), so test signs are unseen instances: a 1-nearest-neighbour classifier on raw pixels reaches 11.8 % on "
    "its 1,290 test images (measured), the natural small-cnn fits the train split (100 % train accuracy) and reaches "
    "the test accuracy above; the 80 % floor needs the full GTSRB train set (39,209 images).",
    "cub200-art-s0 was trained (50 epochs at 64 px from random initialisation, 454 s) and stayed at chance: 2.00 % "
    "on the 150 shared test images (22.7 % train accuracy); it is not shipped. ART B.1 fine-tunes ImageNet "
    "weights, which this CPU zoo does not use.",
    "Epochs were cut to fit the CPU budget (PGD and ART 10 epochs of the 10,000-image split): where "
    "cifar10-pgd-linf8-s0 and cifar10-art-s0 miss the 40 % clean floor (table above), a longer schedule is the "
    "next step.",
    "Not trained, for the budget of 4 h on 2 cores (8 single-thread hours; the entries above took the total "
    "below): gtsrb-ig_norm-s0 and gtsrb-ig_sum_norm-s0 (RAR's IG with 10 points inside the loss: ~9 s per step at "
    "1 thread on its first steps, 24 epochs x 20 steps, ~72 min each), the eq2 / eq4_l2 Table 5 variants and the "
    "six Figs 8-9 sweep models (ART-priced, ~30-40 min each), flowers17-art, cub200-pgd and flowers17-pgd-linf8. "
    "Notebooks that use them evaluate a smoke-trained fallback, labelled as such and exempt from the learned-model "
    "checks, and the claims that need them say the zoo lacks them.",
    "cifar10-art-lam2-s0 (ART lambda = 2, notebook 30's second ART row) was trained (10 epochs, 1,796 s, 1 thread) "
    "and stayed at chance: 10.00 % clean, 10.00 % PGD-20 (train accuracy ~9 % at epoch 4); it is not shipped, so "
    "notebook 30 leaves that row out on the reference profile.",
    "gtsrb-art-s0 (shipped) is, like the other GTSRB entries, limited by the shared train split (first "
    "note): above chance (2.3 %) but far from a useful sign classifier.",
)


def floors() -> list[dict]:
    """Each :data:`FLOORS` row with the measured value (None: not trained) and whether it is met."""
    got = {e["name"]: e for e in entries()}
    out = []
    for name, metric, floor in FLOORS:
        if floor == "natural":
            nat = got.get("cifar10-natural-s0")
            floor = None if nat is None else nat["pgd20_accuracy"]
        value = got[name][metric] if name in got else None
        out.append({"entry": name, "metric": metric, "floor": floor, "value": value,
                    "met": None if value is None or floor is None else bool(value >= floor)})
    return out


class ZooError(ValueError):
    """An unknown zoo entry, a missing or corrupt checkpoint, or a zoo over its size limits."""


def zoo_dir() -> Path:
    """The zoo folder: ``$ARTLIB_ZOO`` when set, else :data:`ZOO_DIR`."""
    return Path(os.environ.get("ARTLIB_ZOO") or ZOO_DIR)


@dataclass(frozen=True)
class Spec:
    """One zoo model: ``train.config("reference", dataset, method, seed=seed, **overrides)``.

    Attributes:
        name: stable file stem, e.g. ``"cifar10-pgd-linf4-s1"``.
        dataset, method: as :func:`artlib.train.config`.
        overrides: extra :class:`artlib.train.TrainConfig` fields (``eps``, ``lam``, ``variant``, ...).
        seed: training seed.
        priority: training order of ``zoo train --all`` (lower first).
    """

    name: str
    dataset: str
    method: str
    overrides: dict = field(default_factory=dict)
    seed: int = 0
    priority: int = 0

    def config(self):
        """The full :class:`artlib.train.TrainConfig` of this entry."""
        from artlib import train
        return train.config("reference", self.dataset, self.method, seed=self.seed, progress=False,
                            **self.overrides)


def _specs() -> tuple[Spec, ...]:
    out = []

    def add(name, dataset, method, priority, seeds=(0,), **overrides):
        for s in seeds:
            # seeds 1 and 2 train after every seed-0 model of the core (priority < 10), before the sweeps
            out.append(Spec(f"{name}-s{s}", dataset, method, dict(overrides), s,
                            priority if s == 0 else 9.5 + priority / 100))

    seeds = (0, 1, 2)
    # CIFAR-10: the Natural / PGD / ART trio and the Inequality l-inf ladder, 3 seeds each (seeds 1, 2 after every
    # seed-0 model); the cheap natural models of the other datasets early; then GTSRB / CUB / Flowers PGD and ART, l2,
    # Cutout, the released ART recipe, ART lambda = 2 (bridge study), RAR, Table 5, Figs 8-9.
    add("cifar10-natural", "cifar10", "natural", 0, seeds)
    add("cifar10-pgd-linf8", "cifar10", "pgd", 1, seeds, eps=8 / 255)
    add("cifar10-art", "cifar10", "art", 2, seeds)
    add("gtsrb-natural", "gtsrb", "natural", 0.1)
    add("cub200-natural", "cub200", "natural", 0.2)
    add("flowers17-natural", "flowers17", "natural", 0.3)
    for e in (4, 2, 1):
        add(f"cifar10-pgd-linf{e}", "cifar10", "pgd", 3 + 1 / e, seeds, eps=e / 255)
    add("gtsrb-pgd-linf8", "gtsrb", "pgd", 5, eps=8 / 255)
    add("gtsrb-art", "gtsrb", "art", 5.1)
    add("cub200-art", "cub200", "art", 5.2)
    add("flowers17-art", "flowers17", "art", 5.3)
    add("cifar10-pgd-l2-0.5", "cifar10", "pgd", 7, norm="l2", eps=0.5)
    add("cifar10-cutout-linf8", "cifar10", "pgd_cutout", 8, eps=8 / 255)
    add("cifar10-art-official", "cifar10", "art", 10, setting="official")
    add("cifar10-art-lam2", "cifar10", "art", 11, lam=2.0)
    add("gtsrb-ig_norm", "gtsrb", "ig_norm", 12)
    add("gtsrb-ig_sum_norm", "gtsrb", "ig_sum_norm", 12.1)
    for i, v in enumerate(("eq2", "eq4_l2", "eq4_cos", "argmin")):
        add(f"cifar10-art_variant-{v}", "cifar10", "art_variant", 13 + i / 10, variant=v)
    for i, (hp, v) in enumerate((("beta", 20.0), ("beta", 100.0), ("lam", 0.25), ("lam", 1.0), ("steps", 1),
                                 ("steps", 5))):
        add(f"cifar10-art-{hp}{v:g}", "cifar10", "art", 14 + i / 10, **{hp: v})
    add("cub200-pgd", "cub200", "pgd", 15)
    add("flowers17-pgd-linf8", "flowers17", "pgd", 15.1, eps=8 / 255)
    return tuple(sorted(out, key=lambda s: s.priority))


#: Every zoo entry, trained or not, in training priority order.
SPECS: tuple[Spec, ...] = _specs()


def specs() -> tuple[Spec, ...]:
    """Every :class:`Spec` (trained or not), in priority order."""
    return SPECS


def spec(name: str) -> Spec:
    """The :class:`Spec` called ``name``; :class:`ZooError` naming the choices otherwise."""
    for s in SPECS:
        if s.name == name:
            return s
    raise ZooError(f"unknown zoo entry {name!r}; choices: {', '.join(s.name for s in SPECS)}")


def _path(name: str) -> Path:
    return zoo_dir() / f"{name}.pt"


def _key(cfg) -> str:
    """What identifies a zoo model: the trajectory fields of its config plus its number of epochs."""
    return json.dumps({**cfg.trajectory_dict(), "epochs": cfg.epochs}, sort_keys=True)


def _row(s: Spec, meta: dict) -> dict:
    from artlib import train
    cfg = train.TrainConfig.from_dict(meta["config"])
    m = meta.get("metrics") or {}
    return {"name": s.name, "dataset": s.dataset, "method": s.method, "arch": cfg.arch,
            "eps": None if s.method == "natural" else cfg.eps, "norm": cfg.norm, "seed": s.seed,
            "path": str(_path(s.name).resolve()), "sha256": meta["sha256"], "size": meta.get("size"),
            "test_accuracy": m.get("test_accuracy"), "pgd20_accuracy": m.get("pgd20_accuracy"),
            "n_test": m.get("n_test"), "config": cfg, "provenance": meta.get("provenance") or {}}


def entries(include_missing: bool = False) -> list[dict]:
    """The trained zoo entries (those with a checkpoint under the zoo folder), in priority order.

    Each is a dict with ``name``, ``dataset``, ``method``, ``arch``, ``eps`` (pixel scale; None for natural
    models), ``norm``, ``seed``, ``path`` (absolute), ``sha256``, ``size`` (bytes), ``test_accuracy`` (fraction on
    the whole test split of the data root it was trained on), ``pgd20_accuracy``, ``n_test``, ``config`` (the
    :class:`artlib.train.TrainConfig`) and ``provenance``. ``include_missing=True`` adds the untrained specs as
    dicts with ``name``, ``dataset``, ``method``, ``seed``, ``config`` and ``path`` None.
    """
    out = []
    for s in SPECS:
        meta = checkpoints.read_meta(_path(s.name)) if _path(s.name).is_file() else None
        if meta is not None and meta.get("config"):
            out.append(_row(s, meta))
        elif include_missing:
            cfg = s.config()
            out.append({"name": s.name, "dataset": s.dataset, "method": s.method, "arch": cfg.arch,
                        "eps": None if s.method == "natural" else cfg.eps, "norm": cfg.norm, "seed": s.seed,
                        "path": None, "config": cfg})
    return out


def entry(name: str) -> dict:
    """The trained entry ``name`` (see :func:`entries`); :class:`ZooError` when unknown or not trained."""
    s = spec(name)
    path = _path(name)
    meta = checkpoints.read_meta(path) if path.is_file() else None
    if meta is None or not meta.get("config"):
        raise ZooError(f"zoo entry {name!r} is not trained ({path} or its sidecar is missing); train it with "
                       f"`python -m artlib zoo train {name}`")
    return _row(s, meta)


def match(cfg) -> Optional[str]:
    """The name of the trained zoo entry whose config has ``cfg``'s trajectory and epochs, or None."""
    key = _key(cfg)
    for s in SPECS:
        if _path(s.name).is_file() and _key(s.config()) == key:
            return s.name
    return None


def load(name: str, device=None) -> nn.Module:
    """Zoo model ``name`` in eval mode, taking ``[0, 1]`` images (Normalize inside).

    The checkpoint's sha256 must equal its sidecar's, and it is read with ``torch.load(weights_only=True)``.

    Raises:
        ZooError: unknown or untrained entry, or a checkpoint that does not match its sidecar or is corrupt.

    Example:
        >>> model = load("cifar10-art-s0")
    """
    from artlib import train
    e = entry(name)
    try:
        state, _ = checkpoints.load(e["path"], map_location="cpu")
    except checkpoints.CheckpointError as exc:
        raise ZooError(f"zoo entry {name!r}: {exc}") from exc
    model = train.build_model(e["config"].replace(pretrained=None))
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError) as exc:
        raise ZooError(f"zoo entry {name!r}: {e['path']} does not hold the weights of its config "
                       f"({str(exc).splitlines()[0]})") from exc
    model.eval()
    return model if device is None else model.to(device)


def _git_commit() -> str:
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                             timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "artlib"], cwd=ROOT, capture_output=True,
                               text=True, timeout=10).stdout.strip()
        return (sha or "unknown") + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def cpu_features() -> dict:
    """What decides this CPU's floating-point results beyond torch's dispatch level: the CPU's name, its sorted ISA
    flags (e.g. ``amx_tile``, ``avx512_bf16``) and its L1d / L2 cache sizes, from ``torch.cpu.get_capabilities()``.

    ``torch.backends.cpu.get_cpu_capability()`` (``"AVX512"``) is not enough to promise bitwise retraining: two machines
    of one capability whose oneDNN picks other kernels or blockings (AMX, cache-sized tiles) round differently, and
    training amplifies the last bits (measured: ``cub200-natural-s0`` retrained at 1 thread on an AVX512 machine agrees
    bitwise through epoch 3, differs in the 7th digit of epoch 4's loss and ends 2 points away). Recorded in each new
    entry's provenance so :func:`same_cpu` can tell when bitwise agreement is owed.

    Example:
        >>> sorted(cpu_features())
        ['cache', 'cpu_name', 'flags']
    """
    caps = dict(torch.cpu.get_capabilities()) if hasattr(torch.cpu, "get_capabilities") else {}
    return {"cpu_name": str(caps.get("cpu_name", platform.processor())),
            "flags": sorted(k for k, v in caps.items() if v is True),
            "cache": {k: int(caps[k]) for k in ("l1d_cache_size", "l2_cache_size") if k in caps}}


def same_cpu(provenance: dict) -> bool:
    """Whether this process computes as the one that wrote ``provenance`` did: the same dispatch level
    (``cpu_capability``) and the same :func:`cpu_features`. Entries recorded before features were kept are never the
    same CPU (nothing promises it)."""
    return (provenance.get("cpu_capability") == torch.backends.cpu.get_cpu_capability()
            and provenance.get("cpu_features") == cpu_features())


def measure(model: nn.Module, dataset: str, cfg=None, n_pgd: Optional[int] = None) -> dict:
    """Clean accuracy on the whole test split of the data root and PGD-20 accuracy (:data:`PGD_EVAL`) on its first
    ``n_pgd`` class-stratified test images: ``{"test_accuracy", "n_test", "pgd20_accuracy", "n_pgd"}``."""
    from artlib import data, evaluate, train
    transform = train.input_transform(cfg, "test") if cfg is not None else None
    ds = data.load_dataset(dataset, "test", transform=transform)

    def tensors(d):
        items = [d[i] for i in range(len(d))]
        return torch.stack([it[0] for it in items]), torch.tensor([int(it[1]) for it in items], dtype=torch.long)

    x, y = tensors(ds)
    pgd = dict(PGD_EVAL.get(dataset, PGD_EVAL["default"]))
    n = min(len(y), int(n_pgd or pgd["n"]))
    pgd.pop("n")
    xa, ya = tensors(data.subset_dataset(ds, n)) if n < len(y) else (x, y)
    correct = evaluate.predict(model, x) == y
    return {"test_accuracy": float(correct.float().mean()), "n_test": int(len(y)), "test_correct": pack(correct),
            "test_split": split_fingerprint(ds),
            "pgd20_accuracy": evaluate.robust_accuracy(model, xa, ya, seed=0, **pgd), "n_pgd": int(len(ya)),
            "pgd20": {k: float(v) for k, v in pgd.items()}}


def pack(correct) -> str:
    """Per-image 0 / 1 outcomes (test split order) as base64 of their packed bits (1,668 characters for 10,000)."""
    bits = np.packbits(np.asarray(correct, dtype=bool).reshape(-1))
    return base64.b64encode(bits.tobytes()).decode("ascii")


def split_fingerprint(ds) -> str:
    """``"<source>:<n>:<sha256 of the labels, 16 hex>"`` of a test split: which images a per-image record refers to
    (the shared JPEG subset, the official batches and a fresh machine's 20 foolbox images all differ)."""
    labels = np.asarray(ds.targets, dtype=np.int64)
    return f"{getattr(ds, 'source', 'unknown')}:{len(labels)}:{hashlib.sha256(labels.tobytes()).hexdigest()[:16]}"


def same_test_split(name: str, root=None) -> bool:
    """Whether the data root's test split of zoo entry ``name``'s dataset is the one its per-image record was made
    on (:func:`split_fingerprint`), i.e. whether :func:`recorded_accuracy` applies to it."""
    from artlib import data
    e = entry(name)
    m = (checkpoints.read_meta(_path(name)) or {}).get("metrics") or {}
    return m.get("test_split") == split_fingerprint(data.load_dataset(e["dataset"], "test", root=root))


def test_correct(name: str) -> np.ndarray:
    """Which test images (whole shared test split, dataset order) zoo entry ``name`` classified correctly when it was
    recorded: bool ``[n_test]``. :class:`ZooError` when the sidecar predates the record (``record_test_correct``)."""
    e = entry(name)
    meta = checkpoints.read_meta(_path(name)) or {}
    m = meta.get("metrics") or {}
    if "test_correct" not in m:
        raise ZooError(f"zoo entry {name!r} has no per-image test record; run artlib.zoo.record_test_correct()")
    bits = np.unpackbits(np.frombuffer(base64.b64decode(m["test_correct"]), dtype=np.uint8))
    return bits[:int(e["n_test"])].astype(bool)


def recorded_accuracy(name: str, index) -> float:
    """The recorded accuracy of zoo entry ``name`` on the test images ``index`` (positions in the shared test split,
    e.g. :func:`artlib.evaluate.image_index`): what a notebook evaluating those images must find again.

    Example::

        >>> recorded_accuracy("cifar10-art-s0", evaluate.image_index("cifar10", 500))
    """
    idx = np.asarray(index, dtype=np.int64).reshape(-1)
    rec = test_correct(name)
    if len(idx) == 0 or idx.min() < 0 or idx.max() >= len(rec):
        raise ValueError(f"index must hold positions in [0, {len(rec)}) of the test split, got {len(idx)} values")
    return float(rec[idx].mean())


def record_test_correct(names=None) -> list:
    """Add the per-image test record (:func:`test_correct`) to the sidecars that lack it, from the committed
    weights on the data root's test split; the recorded clean accuracy must agree (the same images: within 1e-4).
    Returns the names updated."""
    from artlib import data, evaluate
    done = []
    for e in entries():
        if names is not None and e["name"] not in names:
            continue
        path = _path(e["name"])
        meta = checkpoints.read_meta(path)
        if {"test_correct", "test_split"} <= set(meta.get("metrics") or {}):
            continue
        model = load(e["name"])
        from artlib import train
        ds = data.load_dataset(e["dataset"], "test", transform=train.input_transform(e["config"], "test"))
        items = [ds[i] for i in range(len(ds))]
        x = torch.stack([it[0] for it in items])
        y = torch.tensor([int(it[1]) for it in items], dtype=torch.long)
        correct = evaluate.predict(model, x) == y
        acc = float(correct.float().mean())
        if len(y) != e["n_test"] or abs(acc - e["test_accuracy"]) > 1e-4:
            raise ZooError(f"{e['name']}: accuracy {acc:.4f} on {len(y)} test images, recorded "
                           f"{e['test_accuracy']:.4f} on {e['n_test']}: not the recorded data or weights")
        meta["metrics"]["test_correct"] = pack(correct)
        meta["metrics"]["test_split"] = split_fingerprint(ds)
        text = json.dumps(meta, indent=2, sort_keys=False) + "\n"
        checkpoints.atomic_write(checkpoints.sidecar_path(path), lambda f: f.write(text.encode("utf-8")))
        done.append(e["name"])
    return done


def train_entry(name: str, threads: Optional[int] = None, progress: bool = True) -> dict:
    """Train zoo entry ``name`` from its recorded config through the checkpoint cache (``runs/``: resumable, a
    finished run is reused), measure it (:func:`measure`) and write ``zoo/<name>.pt`` with its sidecar.

    Args:
        name: a :data:`SPECS` name.
        threads: torch intra-op threads (recorded; same seed, same thread count, same CPU -> same weights).
            Default: torch's current setting.
        progress: tqdm bars while training.

    Returns:
        the new entry (see :func:`entries`).
    """
    from artlib import train
    s = spec(name)
    if threads is not None:
        torch.set_num_threads(int(threads))
    cfg = s.config().replace(progress=progress)
    t0 = time.time()
    result = train.train(cfg)
    wall = sum(float(r.get("time_s") or 0.0) for r in result.log) or (time.time() - t0)
    model = result.model.cpu().eval()
    metrics = measure(model, s.dataset, cfg)
    from artlib import data
    n_train = len(data.load_dataset(s.dataset, "train"))
    provenance = {"artlib_commit": _git_commit(), "command": f"python -m artlib zoo train {name}",
                  "threads": torch.get_num_threads(), "cpu_capability": torch.backends.cpu.get_cpu_capability(),
                  "cpu_features": cpu_features(),
                  "machine": platform.machine(), "python": platform.python_version(), "torch": torch.__version__,
                  "train_seconds": round(wall, 1), "n_train": n_train,
                  "data_root": str(__import__("artlib.data", fromlist=["resolve_root"]).resolve_root(None)),
                  "log": result.log}
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    zoo_dir().mkdir(parents=True, exist_ok=True)
    checkpoints.save(_path(name), state, config=cfg.replace(progress=False).to_dict(), metrics=metrics,
                     provenance=provenance)
    size = _path(name).stat().st_size
    if size > MAX_FILE_BYTES:
        raise ZooError(f"zoo entry {name!r} is {size:,} bytes, over the {MAX_FILE_BYTES:,}-byte limit per file")
    return entry(name)


def verify(accuracy: bool = False, tolerance: float = 0.01) -> list[dict]:
    """Check every trained entry: sha256 against its sidecar, weights-only load into its config's model, file and
    total sizes; with ``accuracy=True`` also re-measure the clean test accuracy (must be within ``tolerance`` of
    the recorded value on the same data). Returns one dict per entry (``name``, ``ok``, ``problem``)."""
    out, total = [], 0
    for e in entries():
        problem = None
        try:
            model = load(e["name"])
            total += e["size"] or 0
            if (e["size"] or 0) > MAX_FILE_BYTES:
                problem = f"{e['size']:,} bytes, over {MAX_FILE_BYTES:,}"
            elif accuracy:
                got = measure(model, e["dataset"], e["config"], n_pgd=1)["test_accuracy"]
                if abs(got - e["test_accuracy"]) > tolerance:
                    problem = f"test accuracy {got:.4f}, recorded {e['test_accuracy']:.4f}"
        except ZooError as exc:
            problem = str(exc)
        out.append({"name": e["name"], "ok": problem is None, "problem": problem})
    if total > MAX_TOTAL_BYTES:
        out.append({"name": "(total)", "ok": False, "problem": f"zoo is {total:,} bytes, over {MAX_TOTAL_BYTES:,}"})
    return out


def table(include_missing: bool = False):
    """The zoo as a pandas DataFrame: name, dataset, method, eps (x255 for l-inf), seed, clean / PGD-20 accuracy
    (%), train seconds, threads, size (KB)."""
    import pandas as pd
    rows = []
    for e in entries(include_missing):
        p = e.get("provenance") or {}
        eps = e.get("eps")
        rows.append({"name": e["name"], "dataset": e["dataset"], "method": e["method"],
                     "eps": None if eps is None else (f"{eps * 255:g}/255" if e.get("norm") == "linf" else f"{eps:g}"),
                     "seed": e["seed"], "trained": e["path"] is not None,
                     "clean acc (%)": None if e.get("test_accuracy") is None else round(100 * e["test_accuracy"], 2),
                     "PGD-20 acc (%)": None if e.get("pgd20_accuracy") is None else
                     round(100 * e["pgd20_accuracy"], 2),
                     "n test": e.get("n_test"), "train (s)": p.get("train_seconds"), "threads": p.get("threads"),
                     "size (KB)": None if e.get("size") is None else round(e["size"] / 1024)})
    return pd.DataFrame(rows)


def report(path: Optional[Path] = None) -> Path:
    """Write ``benchmarks/results/zoo.md``: every trained entry's accuracies, training wall time, thread count and
    size, and the totals."""
    path = Path(path) if path else ROOT / "benchmarks" / "results" / "zoo.md"
    t = table()
    trained = t[t.trained]
    lines = ["# Reference zoo: accuracy, training time, size", "",
             "Written by `artlib.zoo.report()` from the sidecars under `zoo/` (`python -m artlib zoo list`).",
             "Clean accuracy on the whole shared test split; PGD-20 (l-inf, step eps/4, random start) on the first "
             "2,000 class-stratified test images at eps 8/255 (CUB-200: 2/255). Train time: wall seconds of the "
             "training epochs with the recorded thread count on a 2-core machine (other jobs may have shared it).",
             "", trained.drop(columns=["trained"]).to_markdown(index=False), "",
             f"Total: {len(trained)} models, {trained['size (KB)'].sum():,.0f} KB, "
             f"{trained['train (s)'].sum() / 3600:.2f} h of training.", ""]
    fl = floors()
    lines += ["## Accuracy floors", "", "| entry | metric | floor (%) | measured (%) | met |", "|---|---|---|---|---|"]
    for r in fl:
        f = "-" if r["floor"] is None else f"{100 * r['floor']:.2f}"
        v = "not trained" if r["value"] is None else f"{100 * r['value']:.2f}"
        lines.append(f"| {r['entry']} | {r['metric']} | {f} | {v} | {'-' if r['met'] is None else r['met']} |")
    lines += ["", f"{sum(r['met'] is True for r in fl)} of {len(fl)} floors met, "
              f"{sum(r['met'] is False for r in fl)} missed, {sum(r['met'] is None for r in fl)} not trained yet.", ""]
    if NOTES:
        lines += ["## Notes", ""] + [f"- {n}" for n in NOTES] + [""]
    missing = t[~t.trained]
    if len(missing):
        lines += [f"Not trained yet ({len(missing)}): " + ", ".join(missing.name) + ".", ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))
    return path


def main(argv=None) -> int:
    """``python -m artlib zoo {list,train,verify}`` (see the module docstring)."""
    import argparse
    p = argparse.ArgumentParser(prog="python -m artlib zoo", description="The reference zoo of learned models.")
    sub = p.add_subparsers(dest="zoo_command", required=True)
    q = sub.add_parser("list", help="the zoo's models and their accuracies")
    q.add_argument("--json", action="store_true", help="print JSON instead of a table")
    q.add_argument("--all", action="store_true", help="also list the entries not trained yet")
    q = sub.add_parser("train", help="(re)train entries from their recorded configs")
    q.add_argument("names", nargs="*", help="entry names (see `zoo list --all`)")
    q.add_argument("--all", action="store_true", help="every entry not yet in the zoo folder, in priority order")
    q.add_argument("--threads", type=int, default=None, help="torch threads (recorded in the sidecar)")
    q.add_argument("--force", action="store_true", help="rewrite entries that are already in the zoo")
    q = sub.add_parser("verify", help="check sha256, weights-only loading and sizes of every entry")
    q.add_argument("--accuracy", action="store_true", help="also re-measure each clean test accuracy")
    args = p.parse_args(argv)
    if args.zoo_command == "list":
        if args.json:
            rows = [{k: (v.to_dict() if k == "config" else v) for k, v in e.items() if k != "provenance"}
                    for e in entries(args.all)]
            print(json.dumps(rows, indent=1, default=str))
        else:
            print(table(args.all).to_string(index=False))
        return 0
    if args.zoo_command == "train":
        if args.all == bool(args.names):
            raise ZooError("give entry names or --all (not both); see `python -m artlib zoo list --all`")
        names = [s.name for s in SPECS if args.force or not _path(s.name).is_file()] if args.all else args.names
        for name in names:
            spec(name)
        for name in names:
            if args.all and not args.force and _path(name).is_file():
                continue  # trained meanwhile by another process (the checkpoint cache's lock serialises them)
            e = train_entry(name, threads=args.threads)
            print(f"{name}: clean {100 * e['test_accuracy']:.2f} %, PGD-20 {100 * e['pgd20_accuracy']:.2f} %, "
                  f"{e['provenance']['train_seconds']:.0f} s", flush=True)
            report()
        return 0
    rows = verify(accuracy=args.accuracy)
    for r in rows:
        print(f"{r['name']}: {'ok' if r['ok'] else 'FAILED: ' + r['problem']}")
    return 0 if all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
