"""The paper profile's cost plan, printed before anything runs: ``python -m artlib reproduce --profile paper --plan``.

Per notebook of the manifest: the models it trains (the requests its paper branch made in the last dry run,
:mod:`artlib.dryrun`; a model already in the checkpoint cache, or trained by an earlier notebook, costs nothing),
their estimated GPU hours on one H200 from the step times measured by ``benchmarks/bench_train.py``
(``benchmarks/results/train.md``), and the datasets it needs with those the data root lacks.

How a model's hours are estimated (the ``basis`` column says which rule gave them):

- optimiser steps = ``epochs * floor(train images / batch)``, train images from :data:`TRAIN_IMAGES` (the official
  train split, ``train_subset`` when set, ``per class x classes`` when class-balanced as ART A.3);
- ``measured``: the architecture and method have a measured H200 step (fp32, 32x32, batch 128: natural, and ART as
  the trainer runs it), scaled linearly to the request's batch size;
- ``PGD-k: (k + 1) x natural``: adversarial training is k attack steps plus the update, each about a natural step
  (derived from the measured natural step, not measured itself);
- ``not measured``: any other architecture, image size or method (ResNet-50 / VGG at 224 px, Flowers-17 at 128 px,
  IG-NORM, RAR, ...): no hours are made up; the total says how many such models it leaves out.

Peak memory has not been measured for training on a GPU: the column says so until a benchmark records it.

Example::

    >>> from artlib import plan
    >>> table = plan.model_table()          # one row per (notebook, model)
    >>> print(plan.render(table))
"""
from __future__ import annotations

import datetime
import json
import math
import platform
import re
from pathlib import Path
from typing import Optional, Sequence

import pandas as pd
import torch

from artlib import data, dryrun, plots, reproduce
from artlib.checkpoints import atomic_write

__all__ = ["TRAIN_IMAGES", "STEP_TIMES", "REQUESTS", "step_times", "record", "record_times", "requests", "model_table", "dataset_table", "render",
           "README_BEGIN", "README_END", "update_readme"]

#: Official train-split sizes (CIFAR-10, SVHN's train_32x32.mat, GTSRB's Final_Training, Flowers-17 under ART
#: A.3.4's 72 / 80 split, CUB-200-2011's train_test_split.txt).
TRAIN_IMAGES = {"cifar10": 50_000, "svhn": 73_257, "gtsrb": 39_209, "flowers17": 1_224, "cub200": 5_994}
#: Where the measured step times are read from.
STEP_TIMES = reproduce.ROOT / "benchmarks" / "results" / "train.md"
#: The paper branches' training requests, recorded by the last dry run (:func:`record`).
REQUESTS = reproduce.ROOT / "benchmarks" / "results" / "paper_requests.jsonl"
#: Wall time per notebook of the last dry runs on this kind of machine (:func:`record_times`).
CHECK_TIMES = reproduce.ROOT / "benchmarks" / "results" / "paper_check.md"
#: The benchmark variant whose time stands for a training method's step.
VARIANT = {"natural": "natural", "art": "art_artlib"}
DEVICE = "NVIDIA H200"
README_BEGIN, README_END = "<!-- plan:begin (artlib.plan.update_readme) -->", "<!-- plan:end -->"

_HEADER = re.compile(r"^device cuda \((?P<device>[^)]+)\).*?batch (?P<batch>\d+), (?P<size>\d+)x\d+,.*?"
                     r"amp=(?P<amp>\w+), channels_last=(?P<cl>\w+)")


def step_times(path: str | Path = STEP_TIMES, device: str = DEVICE) -> dict:
    """``{(arch, variant): (seconds per step, batch, image side)}`` from the fp32 tables of ``device`` in
    ``benchmarks/results/train.md`` (the median column; a later table of the file replaces an earlier one)."""
    out, current = {}, None
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line.startswith("device "):              # the header line of every benchmark table
            m = _HEADER.match(line)
            current = m if m and m["device"] == device and m["amp"] == "False" and m["cl"] == "False" else None
            continue
        cells = [c.strip() for c in line.strip("|").split("|")] if line.startswith("|") else []
        if current is None or len(cells) < 4:
            continue
        try:
            out[(cells[0], cells[1])] = (float(cells[3]), int(current["batch"]), int(current["size"]))
        except ValueError:                          # the table's head and rule
            continue
    return out


def record(out: str | Path | None = None, notebooks: Sequence[str] | None = None,
           path: str | Path | None = None) -> Path:
    """Merge the request logs of a dry run (``<out>/<notebook>.requests.jsonl``, default ``runs/dry-run``) of the
    ``notebooks`` that completed into :data:`REQUESTS` (their earlier lines replaced). The runner calls it after
    ``reproduce --profile paper --dry-run``; the file is committed, so ``--plan`` needs no dry run of its own."""
    out = Path(out or reproduce.ROOT / "runs" / "dry-run")
    path = Path(path or REQUESTS)
    names = [Path(n).stem for n in (notebooks or [])]
    kept = [r for r in (dryrun.read_requests(path) if path.is_file() else []) if r["notebook"] not in names]
    new = [{"notebook": n, "run_name": r["run_name"], "config": r["config"]}
           for n in names for r in dryrun.read_requests(out / f"{n}.requests.jsonl") if r.get("kind") == "train"]
    new += [{"notebook": n, "run_name": None, "config": None} for n in names
            if not any(r["notebook"] == n for r in new)]     # ran, trains nothing
    order = {e.name: i for i, e in enumerate(reproduce.MANIFEST)}
    rows = sorted(kept + new, key=lambda r: order.get(r["notebook"], len(order)))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in rows), encoding="utf-8")
    return path


def record_times(results: dict, path: str | Path | None = None) -> Path:
    """Merge ``{notebook: seconds, or None for a failed one}`` of a dry run into :data:`CHECK_TIMES` (a Markdown
    table: notebook, wall seconds or FAILED, date, CPU threads, device, torch), each notebook's earlier row replaced.

    Example::

        >>> record_times({"05_art_fig4_generation.ipynb": 151.6})
    """
    path = Path(path or CHECK_TIMES)
    head = ["notebook", "wall s", "date", "threads", "machine", "torch"]
    old = {}
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if line.startswith("|") and len(cells) == len(head) and cells[0] not in ("notebook", "---"):
                old[cells[0]] = cells
    machine = torch.cuda.get_device_name() if torch.cuda.is_available() else f"{platform.machine()} CPU"
    stamp = datetime.date.today().isoformat()
    for nb, sec in results.items():
        old[Path(nb).stem] = [Path(nb).stem, "FAILED" if sec is None else f"{sec:.1f}", stamp,
                              str(torch.get_num_threads()), machine, torch.__version__]
    order = {e.name: i for i, e in enumerate(reproduce.MANIFEST)}
    rows = sorted(old.values(), key=lambda r: order.get(r[0], len(order)))
    done = [float(r[1]) for r in rows if r[1] != "FAILED"]
    text = ("# `python -m artlib reproduce --profile paper --dry-run`: wall time per notebook\n\n"
            "Written by artlib.plan.record_times after each dry run (one row per notebook, its latest run).\n\n"
            + "| " + " | ".join(head) + " |\n|" + "---|" * len(head) + "\n"
            + "".join("| " + " | ".join(r) + " |\n" for r in rows)
            + f"\n{len(done)} of {len(rows)} notebooks passed; their wall times sum to {sum(done):.1f} s.\n")
    return atomic_write(path, lambda f: f.write(text.encode("utf-8")))


def requests(entry: reproduce.Entry, path: str | Path | None = None) -> Optional[list[dict]]:
    """The training configs ``entry``'s paper branch requested in its last dry run (:data:`REQUESTS`); None when it
    has not been dry-run. A config whose run name the current code would hash differently is marked ``stale``."""
    from artlib import train
    path = Path(path or REQUESTS)
    rows = [r for r in (dryrun.read_requests(path) if path.is_file() else []) if r["notebook"] == entry.name]
    if not rows:
        return None
    out = []
    for r in rows:
        if r["config"] is None:
            continue
        fields = {k: v for k, v in r["config"].items() if k in train.TrainConfig.__dataclass_fields__}
        now = train.TrainConfig(**fields).run_dir().name
        out.append(dict(r, stale=now != r["run_name"]))
    return out


def _train_images(cfg: dict) -> int:
    n = TRAIN_IMAGES.get(cfg["dataset"], 0)
    if cfg.get("train_subset"):
        n = min(n, int(cfg["train_subset"])) if n else int(cfg["train_subset"])
    if cfg.get("balance"):
        per_class = data.DATASETS[cfg["dataset"]].balance_to
        n = per_class * data.DATASETS[cfg["dataset"]].num_classes if per_class else n
    return n


def _hours(cfg: dict, times: dict) -> tuple[Optional[float], str, int]:
    """(estimated H200 hours or None, basis, optimiser steps) of one training config."""
    steps = int(cfg["epochs"]) * (_train_images(cfg) // int(cfg["batch_size"]))
    size = cfg.get("image_size") or data.DATASETS[cfg["dataset"]].image_size
    arch, method = cfg["arch"], cfg["method"]

    def per_step(variant):
        t = times.get((arch, variant))
        return None if t is None or t[2] != size else t[0] * int(cfg["batch_size"]) / t[1]

    if method in VARIANT and per_step(VARIANT[method]) is not None:
        return per_step(VARIANT[method]) * steps / 3600, "measured", steps
    if method == "pgd" and per_step("natural") is not None:
        k = int(cfg["steps"])
        return (k + 1) * per_step("natural") * steps / 3600, f"PGD-{k}: ({k} + 1) x natural", steps
    return None, "not measured", steps


def model_table(manifest: Sequence[reproduce.Entry] | None = None, path: str | Path | None = None,
                runs: str | Path | None = None, times: dict | None = None) -> pd.DataFrame:
    """One row per (notebook, requested model): ``notebook, model, arch, dataset, method, epochs, batch, steps,
    status`` (``train`` / ``cached`` / ``shared with <notebook>`` / ``not dry-run``), ``H200 hours``, ``basis``,
    ``peak memory``. Hours are counted once per model: where it is trained. A notebook that trains nothing has no
    row."""
    times = step_times() if times is None else times
    runs = Path(runs or reproduce.ROOT / "runs")
    seen, rows = {}, []
    for entry in manifest or reproduce.MANIFEST:
        reqs = requests(entry, path)
        if reqs is None:
            rows.append(dict(notebook=entry.name, model="", status="not dry-run (make paper-check)"))
            continue
        if any(r["stale"] for r in reqs):
            rows.append(dict(notebook=entry.name, model="", status="not dry-run (stale: make paper-check)"))
            continue
        for r in reqs:
            cfg, name = r["config"], r["run_name"]
            hours, basis, steps = _hours(cfg, times)
            if name in seen:
                status, hours = f"shared with {seen[name]}", 0.0
            elif (runs / name / "model.pt").is_file():
                status, hours = "cached", 0.0
            else:
                status = "train"
            seen.setdefault(name, entry.name)
            rows.append(dict(notebook=entry.name, model=name, arch=cfg["arch"], dataset=cfg["dataset"],
                             method=cfg["method"], epochs=cfg["epochs"], batch=cfg["batch_size"], steps=steps,
                             status=status, **{"H200 hours": hours}, basis=basis, **{"peak memory": "not measured"}))
    return pd.DataFrame(rows)


def dataset_table(profile: str = "paper", root=None) -> pd.DataFrame:
    """The datasets the profile's notebooks need (:func:`artlib.reproduce.profile_datasets`) and whether the data
    root holds each (``found`` / ``missing: python -m artlib data ensure``)."""
    return pd.DataFrame([dict(dataset=n, state="found" if data.available(n, root) else
                              "missing (python -m artlib data ensure --profile paper)")
                         for n in reproduce.profile_datasets(profile)])


def _fmt(h) -> str:
    return "-" if h is None or (isinstance(h, float) and math.isnan(h)) else f"{h:.1f}"


def render(models: pd.DataFrame, datasets: pd.DataFrame | None = None) -> str:
    """Markdown: per notebook its models to train, hours and the models without an estimate; totals; datasets."""
    lines = ["| notebook | models to train | cached / shared | H200 hours (est.) | not measured |", "|---|---|---|---|---|"]
    total_h, total_n, total_unknown = 0.0, 0, 0
    for nb, g in models.groupby("notebook", sort=False):
        if (g["status"].astype(str).str.startswith("not dry-run")).any():
            lines.append(f"| {nb} | not dry-run | | | |")
            continue
        todo = g[g["status"] == "train"] if len(g) and "status" in g else g.iloc[:0]
        hours = pd.to_numeric(todo["H200 hours"], errors="coerce")
        unknown = int(hours.isna().sum())
        total_h, total_n, total_unknown = total_h + float(hours.sum()), total_n + len(todo), total_unknown + unknown
        lines.append(f"| {nb} | {len(todo)} | {len(g) - len(todo)} | {_fmt(float(hours.sum()))} | {unknown} |")
    lines.append(f"| **total** | **{total_n}** | | **{_fmt(total_h)}** | **{total_unknown}** |")
    lines.append("")
    lines.append(f"{total_n} models to train; {_fmt(total_h)} H200 hours for the {total_n - total_unknown} with a "
                 f"measured or derived step time, {total_unknown} not estimated (no measured step for their "
                 f"architecture / image size / method); peak memory: not measured.")
    if datasets is not None and len(datasets):
        lines += ["", "| dataset | state |", "|---|---|"] + [f"| {r.dataset} | {r.state} |"
                                                             for r in datasets.itertuples()]
    return "\n".join(lines)


def update_readme(readme: str | Path | None = None, requests_file: str | Path | None = None) -> bool:
    """Rewrite the README's block between :data:`README_BEGIN` and :data:`README_END` with :func:`render` of the
    recorded dry run (datasets left out: they depend on the machine); returns whether it changed."""
    return plots.update_block(readme or reproduce.ROOT / "README.md", README_BEGIN, README_END,
                              render(model_table(path=requests_file)))
