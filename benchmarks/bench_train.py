"""Seconds per training step: natural vs ART (ECCV 2020, Algorithm 1, a = 3), straightforward vs artlib's optimised
step, for small-cnn and resnet18 (CIFAR stem), batch 32, 32x32 images.

Variants (all compute the same loss values; tests/test_losses.py checks fast == reference in float64):

- ``natural``: cross-entropy forward + backward + SGD step.
- ``art_straightforward``: Algorithm 1 transcribed: every L_attr evaluation (3 inner steps + the outer loss) runs a
  clean ReLU forward for i* (line 10), then the softplus network (``nn.Softplus(50)`` via ``models.softplus_relu``)
  and two backward passes (g^y, g^i*) with create_graph.
- ``art_istar_once``: the same, with i* computed once per batch (the trainer's Algorithm-1 reading).
- ``art_fused``: + ``impl="fast"`` of ``artlib.losses``: the fused softplus (``SoftplusBeta``: vectorised forward
  without ``log1p``, backward = grad * sigmoid(beta x), double backward one ``sigmoid_backward`` kernel) and convs
  whose input gradient is recorded as ``conv_transpose2d`` (cheaper double backward).
- ``art_fused_batched_vjp``: + g^y and g^i* from one batched VJP (``is_grads_batched``).
- ``art_artlib``: the trainer's own step (``artlib.train.method_loss`` + backward + SGD step; ``impl="fast"``:
  fused softplus and convolutions whose input gradient is an explicit transposed convolution).
- ``art_gpu_fused_softplus`` / ``art_gpu_fused_softplus_tconv`` (GPU only): ``art_fused`` with the fused softplus
  (and the transposed-conv recording) forced on, as measured before ``losses.smooth_model`` applied them on GPUs
  too (``art_gpu_fused_softplus_tconv`` is now the same as ``art_fused`` there).
- ``art_at_relu_cost``: diagnostic, not a valid ART step: the same passes with ReLU kept (no softplus; ReLU's second
  derivatives vanish), i.e. the cost of the method's passes without any activation overhead (DESIGN.md's floor).

Timings are the minimum (and median) over interleaved repetitions, so that load from other processes on a shared
machine hits every variant alike; the load average is recorded with the table.

Usage::

    python benchmarks/bench_train.py                       # small-cnn (8 reps) and resnet18 (2 reps), 2 threads
    python benchmarks/bench_train.py --archs small-cnn --reps 5 --threads 1
    python benchmarks/bench_train.py --device cuda --amp --channels-last --batch 128 --archs resnet18 wrn-28-10
"""
from __future__ import annotations

import argparse
import contextlib
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from artlib import losses, models, train  # noqa: E402

EPS, ALPHA, A, BETA, LAM = 8 / 255, 1.5 / 255, 3, 50.0, 0.5


def _smooth(model, beta, impl):
    """``losses.smooth_model`` for ``impl`` reference / fast; on a GPU, where ``smooth_model`` keeps ``nn.Softplus``
    and native convs, ``fused_sp`` forces the fused ``SoftplusBeta`` and ``fused_sp_tconv`` also the transposed-conv
    recording (the CPU's fast path), to measure them there."""
    if impl not in ("fused_sp", "fused_sp_tconv"):
        return losses.smooth_model(model, beta, impl)
    stack = contextlib.ExitStack()
    if impl == "fused_sp_tconv":
        stack.enter_context(losses._record_layers(model))
    if beta is not None:
        stack.enter_context(losses.fast_softplus(model, beta))
    return stack


def _attr(model, x, y, i_star, impl, batched, beta=BETA):
    """L_attr [B] for the variants: impl reference / fast, one batched VJP or two backward passes."""
    if not x.requires_grad:
        x = x.detach().requires_grad_(True)
    with _smooth(model, beta, impl):
        logits = model(x)
        g_y, g_i = losses.input_gradients(logits, x, [y, i_star], create_graph=True, batched=batched)
    return F.softplus(losses.cosine_distance(g_y, x) - losses.cosine_distance(g_i, x))


def make_steps(model, opt, x, y, device, amp):
    def clean_i_star():
        with torch.no_grad():
            return losses.runner_up(model(x), y)

    def art(impl, batched, i_star_once, beta=BETA):
        def step():
            ist = clean_i_star() if i_star_once else None
            x_t = (x + (2 * torch.rand_like(x) - 1) * EPS).clamp(0, 1)
            for _ in range(A):
                x_t.requires_grad_(True)
                i = ist if i_star_once else clean_i_star()
                (g,) = torch.autograd.grad(_attr(model, x_t, y, i, impl, batched, beta).sum(), x_t)
                x_t = losses.project_linf(x_t.detach() + ALPHA * g.sign(), x, EPS)
            i = ist if i_star_once else clean_i_star()
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(x_t), y) + LAM * _attr(model, x_t, y, i, impl, batched, beta).mean()
            loss.backward()
            opt.step()
        return step

    def natural():
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        opt.step()

    cfg = train.TrainConfig(method="art", eps=EPS, step_size=ALPHA, steps=A, beta=BETA, lam=LAM, amp=amp)

    def artlib_step():
        opt.zero_grad(set_to_none=True)
        train.method_loss(model, x, y, cfg, seed=0)["loss"].mean().backward()
        opt.step()

    ctx = (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if amp else None
    steps = {"natural": natural,
             "art_straightforward": art("reference", False, False),
             "art_istar_once": art("reference", False, True),
             "art_fused": art("fast", False, True),
             "art_fused_batched_vjp": art("fast", True, True),
             "art_artlib": artlib_step,
             "art_at_relu_cost": art("fast", False, True, beta=None)}
    if device.type == "cuda":   # the CPU's fast path, forced on the GPU (smooth_model does not apply it there)
        steps["art_gpu_fused_softplus"] = art("fused_sp", False, True)
        steps["art_gpu_fused_softplus_tconv"] = art("fused_sp_tconv", False, True)
    if ctx is None:
        return steps

    def wrap(f):
        def g():
            with ctx():
                f()
        return g
    return {k: (v if k == "art_artlib" else wrap(v)) for k, v in steps.items()}


def bench(arch, batch, reps, device, amp, channels_last, warmup=1, clock=time.perf_counter):
    torch.manual_seed(0)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = models.build_model(arch, 10, mean=(0.49, 0.48, 0.45), std=(0.25, 0.24, 0.26)).to(device,
                                                                                              memory_format=fmt)
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    x = torch.rand(batch, 3, 32, 32, device=device).contiguous(memory_format=fmt)
    y = torch.randint(0, 10, (batch,), device=device)
    steps = make_steps(model, opt, x, y, device, amp)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    times = {k: [] for k in steps}
    for r in range(warmup + reps):
        for k, f in steps.items():
            sync()
            t = clock()
            f()
            sync()
            if r >= warmup:
                times[k].append(clock() - t)
    return times


def check(device: torch.device) -> None:
    """Correctness on ``device`` before timing: fast == reference (float64) for resnet18, and one ART training
    objective with bfloat16 autocast + channels_last (double backprop under AMP) close to float32."""
    torch.manual_seed(0)
    model = models.build_model("resnet18", 10).to(device).double()
    x = torch.rand(4, 3, 32, 32, device=device, dtype=torch.float64)
    y = torch.tensor([0, 3, 5, 9], device=device)
    out = {}
    for impl in ("reference", "fast"):
        xr = x.clone().requires_grad_(True)
        loss = losses.art_loss(model, xr, y, impl=impl)
        gx, gw = torch.autograd.grad(loss.sum(), [xr, model.net.conv1.weight])
        out[impl] = (loss.detach(), gx, gw)
    for a, b, name in zip(out["reference"], out["fast"], ("loss", "d/dx", "d/dconv1")):
        err = float((a - b).abs().max() / a.abs().max())
        print(f"check float64 {device}: fast vs reference {name}: max rel diff {err:.2e}")
        assert err < 1e-8, name
    res = {}
    for amp, cl in ((False, False), (True, True)):
        torch.manual_seed(0)
        fmt = torch.channels_last if cl else torch.contiguous_format
        m = models.build_model("resnet18", 10).to(device, memory_format=fmt).train()
        xb = torch.rand(16, 3, 32, 32, device=device).contiguous(memory_format=fmt)
        yb = torch.randint(0, 10, (16,), device=device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):   # Eq. 6 at a fixed point
            loss = (F.cross_entropy(m(xb).float(), yb) + 0.5 * losses.art_loss(m, xb, yb).mean())
        loss.backward()
        res[amp] = (float(loss.detach()), m.net.conv1.weight.grad.float().flatten())
        cfg = train.TrainConfig(method="art", amp=amp, channels_last=cl)   # the whole training objective
        m.zero_grad()
        o = train.method_loss(m, xb, yb, cfg, seed=0)
        o["loss"].mean().backward()
        g = m.net.conv1.weight.grad
        assert torch.isfinite(o["loss"]).all() and torch.isfinite(g).all() and float(g.abs().sum()) > 0
    (l32, g32), (l16, g16) = res[False], res[True]
    cosg = float(F.cosine_similarity(g32, g16, dim=0))
    print(f"check AMP bf16 + channels_last on {device}: CE + 0.5 L_attr {l16:.4f} vs fp32 {l32:.4f}, "
          f"cos(d/dconv1 bf16, fp32) {cosg:.3f}")
    assert abs(l16 - l32) < 0.02 * abs(l32) and cosg > 0.85


def write_section(path: Path, key: str, text: str) -> None:
    """Replace (or append) the block between ``<!-- bench:key -->`` and ``<!-- /bench:key -->`` in ``path``; the
    rest of the file (the hand-written context) is kept."""
    start, end = f"<!-- bench:{key} -->", f"<!-- /bench:{key} -->"
    block = f"{start}\n{text}{end}\n"
    old = path.read_text() if path.exists() else "# Training step benchmark\n\n"
    if start in old and end in old:
        new = old[:old.index(start)] + block + old[old.index(end) + len(end) + 1:]
    else:
        new = old.rstrip("\n") + "\n\n" + block
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name("." + path.name + ".tmp")
    tmp.write_text(new)
    os.replace(tmp, path)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--archs", nargs="+", default=["small-cnn", "resnet18"])
    p.add_argument("--reps", type=int, nargs="+", default=None,
                   help="repetitions per arch (default 8 for small-cnn, 2 for the others)")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cpu")
    p.add_argument("--amp", action="store_true", help="bfloat16 autocast")
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--clock", choices=("wall", "thread"), default="wall",
                   help="wall: elapsed time; thread: CPU time of the calling thread (with --threads 1 all the work "
                        "runs there, so the figure does not depend on other processes' load)")
    p.add_argument("--check", action="store_true", help="run the correctness checks (fast == reference, AMP) first")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "train.md"),
                   help="Markdown file to write the table to ('' to skip)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.clock == "thread" and (args.threads != 1 or args.device != "cpu"):
        p.error("--clock thread needs --threads 1 on the cpu (otherwise work runs on other threads)")
    clock = time.thread_time if args.clock == "thread" else time.perf_counter
    device = torch.device(args.device)
    reps = args.reps or [8 if a == "small-cnn" else 2 for a in args.archs]
    if len(reps) == 1:
        reps = reps * len(args.archs)
    if args.check:
        check(device)
    load0 = os.getloadavg()
    rows = []
    for arch, n in zip(args.archs, reps):
        times = bench(arch, args.batch, n, device, args.amp, args.channels_last, clock=clock)
        nat = min(times["natural"])
        for k, v in times.items():
            rows.append((arch, k, min(v), statistics.median(v), min(v) / nat, len(v)))
            print(f"{arch:10s} {k:24s} min {min(v):8.3f} s  median {statistics.median(v):8.3f} s  "
                  f"x natural {min(v) / nat:5.1f}  (n={len(v)})", flush=True)
    load1 = os.getloadavg()
    dev = torch.cuda.get_device_name(device) if device.type == "cuda" else (platform.processor() or "cpu")
    head = (f"device {args.device} ({dev}), torch {torch.__version__}, {args.threads} threads, {args.clock} clock, "
            f"batch {args.batch}, 32x32, a = {A}, amp={args.amp}, channels_last={args.channels_last}; load average "
            f"{load0[0]:.1f} -> {load1[0]:.1f}")
    table = ["| model | variant | s / step (min) | s / step (median) | x natural (min) | reps |",
             "|---|---|---|---|---|---|"]
    table += [f"| {a} | {k} | {t:.3f} | {m:.3f} | {r:.1f} | {n} |" for a, k, t, m, r, n in rows]
    text = head + "\n\n" + "\n".join(table) + "\n"
    print("\n" + text)
    if args.out:
        key = (f"{args.device}-{args.threads}threads-{args.clock}-batch{args.batch}-amp{int(args.amp)}"
               f"-cl{int(args.channels_last)}")
        write_section(Path(args.out), key, text)
        print(f"updated section {key!r} of {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
