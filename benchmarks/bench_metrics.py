"""Benchmark: batched ``artlib.metrics`` against the per-image reference loops (scipy / numpy).

Main row (issue 4): ``kendall_tau`` over 1,000 maps of 32x32 against ``scipy.stats.kendalltau`` called map by map,
as ART's / RAR's evaluation does. Also ``topk_intersection`` (k=100) against the ``np.argsort(map)[-k:]`` set loop
and ``gini_global`` against a numpy loop over the Inequality paper's formula. Every row first checks that the batched
result equals the reference (max |diff| is printed), then times both (median of ``--repeats`` runs after one warm-up).

Usage::

    python benchmarks/bench_metrics.py                    # CPU (torch threads as configured) + CUDA if present
    python benchmarks/bench_metrics.py --threads 1 2      # several CPU thread counts
    python benchmarks/bench_metrics.py --out benchmarks/results/metrics.md

Results are written to ``benchmarks/results/metrics.md`` under a section named after the machine (CPU model or GPU
name), replacing an earlier section of the same name and keeping the others.
"""
from __future__ import annotations

import argparse
import os
import platform
import re
import statistics
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import scipy
import scipy.stats
import torch

from artlib import metrics

ROOT = Path(__file__).resolve().parent


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timeit(fn, repeats: int, device: str = "cpu") -> float:
    fn()
    _sync(device)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def make_maps(n: int, size: int, seed: int = 0):
    """Saliency-like maps: |smooth noise|, a pair (clean, perturbed) per image, with a zero region (exact ties)."""
    g = torch.Generator().manual_seed(seed)
    base = torch.rand(n, 1, size // 4, size // 4, generator=g)
    clean = torch.nn.functional.interpolate(base, size=(size, size), mode="bilinear", align_corners=False)[:, 0]
    clean = clean + 0.1 * torch.rand(n, size, size, generator=g)
    pert = clean + 0.2 * torch.rand(n, size, size, generator=g)
    clean[:, :2] = 0.0
    pert[:, -2:] = 0.0
    return clean.contiguous(), pert.contiguous()


def scipy_kendall_loop(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.array([scipy.stats.kendalltau(x, y).statistic for x, y in zip(a, b)])


def numpy_topk_loop(a: np.ndarray, b: np.ndarray, k: int) -> np.ndarray:
    return np.array([len(set(np.argsort(x)[-k:]) & set(np.argsort(y)[-k:])) / k for x, y in zip(a, b)])


def numpy_gini_loop(a: np.ndarray) -> np.ndarray:
    out = []
    for v in a:
        phi = np.sort(np.abs(v))
        n = len(phi)
        out.append((n + 1 - 2 * np.sum((n + 1 - np.arange(1, n + 1)) * phi) / phi.sum()) / n)
    return np.array(out)


def machine_label(device: str) -> str:
    if device.startswith("cuda"):
        return f"GPU {torch.cuda.get_device_name(0)}"
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"CPU {cpu}, {os.cpu_count()} cores"


def run(n: int, size: int, k: int, repeats: int, threads: list[int], devices: list[str]):
    clean, pert = make_maps(n, size)
    a_np, b_np = clean.flatten(1).numpy(), pert.flatten(1).numpy()
    rows = []
    ref_times = {
        "kendall_tau": timeit(lambda: scipy_kendall_loop(a_np, b_np), repeats),
        "topk_intersection": timeit(lambda: numpy_topk_loop(a_np, b_np, k), repeats),
        "gini_global": timeit(lambda: numpy_gini_loop(a_np), repeats),
    }
    refs = {"kendall_tau": scipy_kendall_loop(a_np, b_np), "topk_intersection": numpy_topk_loop(a_np, b_np, k),
            "gini_global": numpy_gini_loop(a_np)}
    ref_names = {"kendall_tau": "scipy.stats.kendalltau loop", "topk_intersection": "np.argsort set loop",
                 "gini_global": "numpy formula loop"}
    default_threads = torch.get_num_threads()
    configs = [("cpu", t) for t in threads] + [(d, None) for d in devices if d != "cpu"]
    for dev, nthreads in configs:
        if nthreads is not None:
            torch.set_num_threads(nthreads)
        a, b = clean.to(dev), pert.to(dev)
        fns = {"kendall_tau": lambda: metrics.kendall_tau(a, b),
               "topk_intersection": lambda: metrics.topk_intersection(a, b, k),
               "gini_global": lambda: metrics.gini_global(a)}
        for name, fn in fns.items():
            got = fn().double().cpu().numpy()
            err = float(np.max(np.abs(got - refs[name])))
            t = timeit(fn, repeats, dev)
            where = f"{dev} ({nthreads} thread{'s' if nthreads != 1 else ''})" if nthreads else dev
            rows.append(dict(metric=name, where=where, reference=ref_names[name], ref_s=ref_times[name], s=t,
                             ref_ips=n / ref_times[name], ips=n / t, speedup=ref_times[name] / t, max_err=err))
    torch.set_num_threads(default_threads)
    return rows


def to_markdown(rows, n, size, k, repeats) -> str:
    head = ("| metric | artlib on | reference (1 CPU thread, per map) | reference maps/s | artlib maps/s | speed-up "
            "| max abs diff |\n|---|---|---|---:|---:|---:|---:|\n")
    body = "".join(f"| `{r['metric']}` | {r['where']} | {r['reference']} | {r['ref_ips']:,.0f} | {r['ips']:,.0f} "
                   f"| {r['speedup']:.1f}x | {r['max_err']:.1e} |\n" for r in rows)
    try:
        load = " / ".join(f"{v:.1f}" for v in os.getloadavg())
    except OSError:
        load = "n/a"
    meta = (f"{n} maps of {size}x{size} (k = {k} for top-k), median of {repeats} runs after a warm-up; "
            f"torch {torch.__version__}, numpy {np.__version__}, scipy {scipy.__version__}; "
            f"load average at the end (1/5/15 min): {load}; {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC.\n\n")
    return meta + head + body


def write_section(path: Path, label: str, text: str) -> None:
    """Replace (or add) the ``## label`` section of the results file, keeping the other sections."""
    title = "# Benchmark: batched metrics vs per-map reference loops (`benchmarks/bench_metrics.py`)\n\n"
    old = path.read_text() if path.exists() else title
    sections = re.split(r"(?m)^## ", old)
    preamble, kept = sections[0], [s for s in sections[1:] if not s.startswith(label + "\n")]
    new = preamble + "".join("## " + s for s in kept) + f"## {label}\n\n{text}\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(new)
    tmp.replace(path)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=1000, help="number of maps (default 1000)")
    p.add_argument("--size", type=int, default=32, help="map side (default 32)")
    p.add_argument("--k", type=int, default=100, help="top-k size (default 100, ART/Ghorbani CIFAR)")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, nargs="*", default=None,
                   help="CPU torch thread counts to time (default: the current setting)")
    p.add_argument("--no-cuda", action="store_true")
    p.add_argument("--out", type=Path, default=ROOT / "results" / "metrics.md")
    args = p.parse_args(argv)
    threads = args.threads or [torch.get_num_threads()]
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() and not args.no_cuda else [])
    rows = run(args.n, args.size, args.k, args.repeats, threads, devices)
    text = to_markdown(rows, args.n, args.size, args.k, args.repeats)
    print(text)
    label = machine_label("cuda" if "cuda" in devices else "cpu")
    if "cuda" in devices:
        label += f" + {machine_label('cpu')}"
    write_section(args.out, label, text)
    print(f"written to {args.out} (section '{label}')")


if __name__ == "__main__":
    main()
