"""Benchmark: batched ``artlib.attacks.ifia`` against the same function called image by image.

IFIA (top-k attack on Integrated Gradients, ART Table 1) is the most expensive evaluation of the ART paper: every step
of every image runs a differentiable IG (``n_steps_ig`` path images with double backprop through the Softplus model)
plus a measured IG on the ReLU model. The reference implementations (Ghorbani et al., RAR, the ART authors' eval)
attack one image at a time; ``ifia`` attacks a whole batch, ``batch_size`` images per pass. Targets (DESIGN.md,
"Performance target for the attributional attack"): on CPU the batched call no slower than the image-by-image loop
with identical results per image; on a GPU >= 30x the images/s of the loop.

Each run: small-cnn (CIFAR-10 normalisation, fixed seed; the weights do not change the cost, IFIA runs a fixed number
of steps), CIFAR-10 test images from ``$ARTLIB_DATA`` when present (else smooth synthetic 32x32 images), labels = the
model's predictions, ART A.3.5 settings (k=100, eps=8/255, step 1/255, IG with 100 points) for ``--steps`` iterations
(the cost per step is constant; ART runs 50). Modes: the loop (``ifia`` on one image at a time, per-sample seeds) on
the first ``--loop-images`` images, and one batched ``ifia`` call on ``--images`` images for each ``--batch-sizes``
entry (``auto`` = ``attacks.auto_batch_size``). After a warm-up, the modes run in turn for ``--rounds`` rounds and the
fastest round of each is reported (the median too); on a CPU the speed-up is taken on the process's CPU time, which
other processes sharing the cores disturb far less than wall-clock time. Results are
compared field by field with the loop's (``x_adv``, ``intersection``, ``kendall``, ``success``, ``step``).

Usage::

    python benchmarks/bench_attacks.py                                    # CPU: 32 images, auto / 8 / 32 per pass
    python benchmarks/bench_attacks.py --device cuda --images 128 --loop-images 16 --batch-sizes auto 128 --steps 5

GPU options for the *batched* modes (the loop stays the plain float32 reference, as the authors run it):
``--amp`` (bfloat16 autocast around the whole attack), ``--channels-last`` (model and images in NHWC; with
``--loop-channels-last`` the loop too),
``--softplus nn`` / ``fused`` (the smooth model of the attack and of IG as before ``losses.smooth_model`` was
used on every device: ``nn.Softplus`` with native convs, or the fused ``SoftplusBeta`` with native convs; the
default ``library`` is ``losses.smooth_model``: fused softplus and convs recorded with an explicit transposed-conv
input gradient), ``--cudnn-benchmark``.
``--pools native`` (all modes) keeps PyTorch's ``max_pool2d`` backward instead of the ``max_unpool2d`` recording.
``--captum-grads captum`` (all modes) takes captum's IG gradients with its own ``compute_gradients`` (one autograd
root per path image) instead of artlib's default ``attribution.summed_gradients`` (one root per call; same values).
``--profile`` prints the 22 GPU kernels that take most time in one batched call. On a GPU the script also prints
the peak memory per path image of one batched call against the leaf-module activations that
``attacks.auto_batch_size`` sizes passes from (``attacks.ACTIVATION_FACTOR``).

Results are written to ``benchmarks/results/attacks.md`` under a section named after the machine, setting and
options, replacing an earlier section of the same name and keeping the others.
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import os
import platform
import re
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

from artlib import attacks, attribution, losses, models

ROOT = Path(__file__).resolve().parent
CIFAR_MEAN, CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def load_images(n: int, seed: int = 0):
    """First ``n`` CIFAR-10 test images (class-stratified) from ``$ARTLIB_DATA``, else smooth synthetic images."""
    root = os.environ.get("ARTLIB_DATA")
    if root and (Path(root) / "cifar10-jpeg").is_dir():
        try:
            from artlib import data
            ds = data.load_dataset("cifar10", "test", root=root, subset=max(n, 10))
            return torch.stack([ds[i][0] for i in range(n)]), f"CIFAR-10 test ({ds.source})"
        except Exception as e:  # a missing loader must not stop the timing
            print(f"(real images unavailable: {e}; using synthetic)")
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n, 3, 8, 8, generator=g)
    x = torch.nn.functional.interpolate(coarse, size=(32, 32), mode="bilinear", align_corners=False)
    return (x + 0.05 * torch.randn(x.shape, generator=g)).clamp(0, 1), "synthetic smooth 32x32"


def machine_name(device: str) -> str:
    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return re.sub(r"\s+", " ", line.split(":", 1)[1]).strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def compare(a: attacks.IFIAResult, b: attacks.IFIAResult, m: int) -> str:
    a, b = (attacks.IFIAResult(*(f[:m] for f in r)) for r in (a, b))
    if all(torch.equal(getattr(a, f), getattr(b, f)) for f in a._fields):
        return f"identical (all {m} compared)"
    dx = (a.x_adv.double() - b.x_adv.double()).abs().max().item()
    dint = (a.intersection.double() - b.intersection.double()).abs().max().item()
    return f"differ on {m} compared: max abs dx {dx:.2e}, max abs d(intersection) {dint:.2f}"


@contextlib.contextmanager
def options(device: str, amp: bool, softplus: str):
    """The batched modes' context: bfloat16 autocast and / or the fused softplus-beta in the attack's and IG's swap."""
    with contextlib.ExitStack() as stack:
        if amp:
            stack.enter_context(torch.autocast(torch.device(device).type, dtype=torch.bfloat16))
        if softplus != "library":
            saved = losses.smooth_model

            def swap(model, beta=50.0, impl="fast", convs=True):
                if beta is None:
                    return contextlib.nullcontext()
                return models.softplus_relu(model, beta) if softplus == "nn" else losses.fast_softplus(model, beta)
            losses.smooth_model = swap
            stack.callback(lambda: setattr(losses, "smooth_model", saved))
        yield


def profile_call(fn, device: str) -> None:
    from torch.profiler import ProfilerActivity, profile
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.startswith("cuda") else [])
    with profile(activities=acts) as prof:
        fn()
        _sync(device)
    key = "self_cuda_time_total" if device.startswith("cuda") else "self_cpu_time_total"
    print(prof.key_averages().table(sort_by=key, row_limit=22, max_name_column_width=70))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cpu", help="cpu or cuda[:i]")
    p.add_argument("--images", type=int, default=32, help="images of each batched call")
    p.add_argument("--batch-sizes", nargs="+", default=["auto", "8", "32"],
                   help="ifia batch_size of each batched call ('auto' = attacks.auto_batch_size)")
    p.add_argument("--loop-images", type=int, default=None, help="images attacked one by one (default: --images)")
    p.add_argument("--steps", type=int, default=2, help="IFIA iterations (ART: 50; the cost per step is constant)")
    p.add_argument("--rounds", type=int, default=3, help="timed rounds of every mode (the fastest is reported)")
    p.add_argument("--n-steps-ig", type=int, default=100)
    p.add_argument("--k", type=int, default=100)
    p.add_argument("--setting", default="paper", choices=["paper", "official"])
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: as configured)")
    p.add_argument("--cudnn-benchmark", action="store_true",
                   help="torch.backends.cudnn.benchmark=True: cuDNN times its conv algorithms per shape (GPU; the "
                        "default heuristics pick a slow kernel for some double-backprop convolutions)")
    p.add_argument("--amp", action="store_true", help="batched modes: bfloat16 autocast")
    p.add_argument("--channels-last", action="store_true", help="batched modes: model and images channels_last")
    p.add_argument("--loop-channels-last", action="store_true",
                   help="the loop too: model and images channels_last (to time a library that converts on every call)")
    p.add_argument("--softplus", default="library", choices=["library", "nn", "fused"],
                   help="batched modes' smooth model: library = artlib.losses.smooth_model (fused softplus, convs "
                        "recorded with a transposed-conv input gradient); nn = nn.Softplus, native convs; fused = "
                        "the fused softplus with native convs")
    p.add_argument("--pools", default="recorded", choices=["recorded", "native"],
                   help="all modes: non-overlapping max-pools recorded with a max_unpool2d input gradient "
                        "(losses._MaxPool2dFn, the default) or PyTorch's own max_pool2d backward")
    p.add_argument("--captum-grads", default="summed", choices=["summed", "captum"],
                   help="all modes: captum IG gradients from attribution.summed_gradients (one autograd root, the "
                        "default) or captum's compute_gradients (one root per path image)")
    p.add_argument("--profile", action="store_true", help="print the top GPU kernels of one batched call")
    p.add_argument("--out", default=str(ROOT / "results" / "attacks.md"))
    p.add_argument("--no-write", action="store_true")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.pools == "native":
        recordable = losses._recordable
        losses._recordable = lambda m: type(m) is not torch.nn.MaxPool2d and recordable(m)
    if args.captum_grads == "captum":
        from captum._utils.gradient import compute_gradients
        attribution.summed_gradients = compute_gradients
    if args.cudnn_benchmark:
        torch.backends.cudnn.benchmark = True
    dev = args.device
    n, n_loop = args.images, args.loop_images or args.images

    torch.manual_seed(0)
    model = models.build_model("small-cnn", 10, mean=CIFAR_MEAN, std=CIFAR_STD).to(dev).eval()
    x_all, source = load_images(max(n, n_loop))
    x_all = x_all.to(dev)
    with torch.no_grad():
        y_all = model(x_all).argmax(1)
    seeds = list(range(1000, 1000 + len(x_all)))
    kw = dict(k=args.k, eps=8 / 255, step_size=1 / 255, steps=args.steps, n_steps_ig=args.n_steps_ig,
              setting=args.setting)

    fmt = torch.channels_last if args.channels_last else torch.contiguous_format
    model_l, x_l = model, x_all
    if args.loop_channels_last:
        model_l = copy.deepcopy(model).to(memory_format=torch.channels_last)
        x_l = x_all.contiguous(memory_format=torch.channels_last)

    def loop():
        parts = [attacks.ifia(model_l, x_l[i:i + 1], y_all[i:i + 1], seed=[seeds[i]], batch_size=1, **kw)
                 for i in range(n_loop)]
        return attacks.IFIAResult(*(torch.cat(t) for t in zip(*parts)))

    model_b = copy.deepcopy(model).to(memory_format=fmt) if args.channels_last else model
    x_b = x_all[:n].contiguous(memory_format=fmt)
    sizes = [attacks.auto_batch_size(dev, args.n_steps_ig, model_b, x_b) if b == "auto" else int(b)
             for b in args.batch_sizes]

    def batched(bs):
        def call():
            with options(dev, args.amp, args.softplus):
                return attacks.ifia(model_b, x_b, y_all[:n], seed=seeds[:n], batch_size=bs, **kw)
        return call

    modes = [("image by image", n_loop, loop)] + \
        [(f"batched, {bs} per pass" + (" (auto)" if a == "auto" else ""), n, batched(bs))
         for a, bs in zip(args.batch_sizes, sizes)]

    load0 = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    attacks.ifia(model, x_all[:2], y_all[:2], seed=seeds[:2], **{**kw, "steps": 1})       # warm-up
    for bs in sorted(set(sizes)) if args.cudnn_benchmark else []:                         # autotune every shape
        batched(bs)()
    attacks.ifia(model, x_all[:1], y_all[:1], seed=seeds[:1], batch_size=1, **kw)
    if dev.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    batched(sizes[-1])()
    if dev.startswith("cuda"):   # what attacks.ACTIVATION_FACTOR stands for
        per_path = (torch.cuda.max_memory_allocated() - base) / (min(sizes[-1], n) * args.n_steps_ig)
        act = attacks._activation_bytes(model, x_all[:1])
        print(f"peak memory of one batched call: {per_path / 2**20:.2f} MiB per path image at {sizes[-1]} per pass, "
              f"{per_path / act:.2f}x the leaf-module activations ({act / 2**20:.2f} MiB); auto batch size "
              f"{attacks.auto_batch_size(dev, args.n_steps_ig, model, x_all[:n])} for {n} images")
    if args.profile:
        profile_call(batched(sizes[-1]), dev)
    times = {name: [] for name, _, _ in modes}      # wall-clock seconds
    cpu = {name: [] for name, _, _ in modes}        # CPU seconds of this process (all threads)
    results = {}
    for r in range(args.rounds):
        for name, _, fn in modes:
            _sync(dev)
            t0, c0 = time.perf_counter(), time.process_time()
            results[name] = fn()
            _sync(dev)
            times[name].append(time.perf_counter() - t0)
            cpu[name].append(time.process_time() - c0)
        print(f"round {r + 1}/{args.rounds}: " + ", ".join(f"{k} {v[-1]:.2f}s" for k, v in times.items()),
              flush=True)
    load1 = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")

    # speed-up: wall clock on a GPU; CPU seconds on a CPU (robust to other processes sharing the cores)
    basis = cpu if dev == "cpu" else times
    ref_rate = n_loop / min(basis["image by image"])
    rows = []
    for name, count, _ in modes:
        t, med, c = min(times[name]), statistics.median(times[name]), min(cpu[name])
        verdict = "reference" if name == "image by image" else \
            compare(results[name], results["image by image"], min(count, n_loop))
        rows.append((name, count, t, med, c, count / t, (count / min(basis[name])) / ref_rate, verdict))
    opts = ", ".join([o for o, on in (("cudnn.benchmark", args.cudnn_benchmark), ("bf16 autocast", args.amp),
                                       ("channels_last", args.channels_last),
                                       ("loop channels_last", args.loop_channels_last),
                                       ("nn.Softplus, native convs", args.softplus == "nn"),
                                       ("fused softplus, native convs", args.softplus == "fused"),
                                       ("captum's per-row gradient roots", args.captum_grads == "captum"),
                                       ("native max-pool backward", args.pools == "native")) if on])
    print(f"\ndevice {machine_name(dev)} ({dev}), threads {torch.get_num_threads()}, torch {torch.__version__}, "
          f"images: {source}, setting {args.setting}, {args.steps} steps, load {load0:.2f} -> {load1:.2f}, "
          f"batched options: {opts or 'none'}")
    print(f"{'mode':<30}{'images':>7}{'best s':>9}{'median s':>10}{'CPU s':>9}{'images/s':>10}{'vs loop':>9}  results")
    for r in rows:
        print(f"{r[0]:<30}{r[1]:>7}{r[2]:>9.2f}{r[3]:>10.2f}{r[4]:>9.2f}{r[5]:>10.3f}{r[6]:>8.2f}x  {r[7]}")

    if args.no_write:
        return
    name = f"{machine_name(dev)}, ifia setting {args.setting}" + (f", {opts}" if opts else "")
    cmd = " ".join(argv if argv is not None else sys.argv[1:])
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [f"## {name}", "", f"`python benchmarks/bench_attacks.py {cmd}`".replace(" `", "`"), "",
             f"{stamp}; device `{dev}`, torch {torch.__version__}, {torch.get_num_threads()} CPU threads, "
             f"load average {load0:.2f} -> {load1:.2f}; images: {source}; small-cnn (fixed seed); IFIA setting "
             f"`{args.setting}`, k={args.k}, eps=8/255, step 1/255, {args.steps} steps, IG {args.n_steps_ig} points; "
             f"fastest of {args.rounds} interleaved rounds; 'vs loop' compares images per "
             f"{'CPU second (process time, all threads)' if dev == 'cpu' else 'wall-clock second'}.", "",
             "| mode | images | best wall s | median wall s | best CPU s | images/s (wall) | vs loop "
             "| results vs loop |",
             "|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r[0]} | {r[1]} | {r[2]:.2f} | {r[3]:.2f} | {r[4]:.2f} | {r[5]:.3f} | {r[6]:.2f}x | {r[7]} |"
              for r in rows]
    section = "\n".join(lines) + "\n"
    out = Path(args.out)
    text = out.read_text() if out.exists() else (
        "# IFIA: batched vs image by image\n\nWritten by `benchmarks/bench_attacks.py` (see its docstring); one "
        "section per machine and setting. Targets (DESIGN.md): CPU batched no slower than the loop with identical "
        "results; GPU >= 30x the loop's images/s.\n\n")
    pattern = re.compile(rf"^## {re.escape(name)}\n.*?(?=^## |\Z)", re.S | re.M)
    text = pattern.sub(lambda _: section + "\n", text) if pattern.search(text) else \
        text.rstrip("\n") + "\n\n" + section
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text.rstrip("\n") + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
