r"""Adversarial and attributional attacks, batched over the first dimension, in ``[0, 1]`` pixel space.

Every attack takes images ``x`` as a float tensor ``[B, C, H, W]`` in ``[0, 1]`` (normalisation lives inside the model,
see ``artlib.models``), works on the whole batch at once, and returns images that stay inside their perturbation set
(an l-inf or l2 ball of radius ``eps`` around ``x`` where there is one) and inside ``[0, 1]``.

=============================  =====================================================================================
attack                         what (paper)
=============================  =====================================================================================
:func:`pgd`                    PGD, l-inf or l2 (Madry et al., ICLR 2018); ART Table 1 PGD-40, Sec. 4 PGD-100/500,
                               l2 eps=1.0; targeted switch
:func:`ifia`                   top-k Iterative Feature Importance Attack on Integrated Gradients (Ghorbani et al.,
                               AAAI 2019) as ART Table 1 / RAR run it (ART appendix A.3.5)
:func:`targeted_attribution_attack`  targeted attribution manipulation (Dombrowski et al., NeurIPS 2019; ART Sec. 5,
                               Fig. 10)
:func:`spsa`                   gradient-free SPSA (Uesato et al., ICML 2018); ART Sec. 4
:func:`spatial_attack`         worst-of-grid rotations + translations (Engstrom et al., ICML 2019); ART Sec. 4
:func:`transfer_accuracy`      black-box transfer evaluation (ART appendix, Table 6)
:func:`adversarial_images`     ``attack_fn`` over chunks: the images a transfer evaluation feeds other models
:func:`inductive_noise`        inductive noise I / II / random (Duan et al., ICLR 2023, Sec. 3.2.1, Eq. 5)
:func:`inductive_occlusion`    inductive occlusion (Duan et al., ICLR 2023, Sec. 3.2.2, Algorithm 1)
=============================  =====================================================================================

Conventions shared by all attacks:

* The model runs in ``eval()`` mode during an attack (``eval_mode=True``, the default of the gradient attacks; the
  others always) and every module's own ``training`` flag is restored afterwards, also on error. Parameter
  ``requires_grad`` flags are never touched: only input gradients are taken, with ``torch.autograd.grad``.
* Attacks on attributions need second derivatives; through a ReLU network they vanish almost everywhere, so the
  attack gradient is taken on the same weights with every ``nn.ReLU`` swapped for ``Softplus(beta)``
  (``artlib.models.softplus_relu``; ART, Ghorbani et al. and Dombrowski et al. all do this, ``beta=50`` in ART),
  while predictions and *measured* maps use the ReLU network.
* Bad arguments (negative ``eps``, shapes that do not match, ``k`` larger than the number of pixels, images outside
  ``[0, 1]``, unknown option strings) raise one ``ValueError`` naming the value and the choices.
* ``seed`` makes an attack deterministic on CPU without touching the global RNG (a private ``torch.Generator`` on
  the CPU draws the noise, which is then moved to ``x.device``, so CPU and GPU runs start from the same draw).
"""
from __future__ import annotations

import contextlib
import math
import operator
from typing import Callable, NamedTuple, Optional, Sequence, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

from artlib import dryrun

__all__ = ["pgd", "ifia", "IFIAResult", "IFIA_MEASURES", "IFIA_SETTINGS", "auto_batch_size",
           "targeted_attribution_attack", "TargetedResult", "spsa", "spatial_attack", "SpatialResult",
           "transfer_accuracy", "adversarial_images", "inductive_noise", "NoiseResult", "inductive_occlusion",
           "OcclusionResult"]

Seed = Union[None, int, Sequence[int], torch.Tensor]

#: selection criteria of :func:`ifia` (lower = more dissimilar map)
IFIA_MEASURES = ("topk", "kendall", "kendall_topk")
#: :func:`ifia`'s settings: ``"paper"`` (Ghorbani et al. / RAR, as the ART text describes) and ``"official"`` (the ART
#: authors' released ``eval_model.py``).
IFIA_SETTINGS = ("paper", "official")


# ----------------------------------------------------------------------------------------------------------------------
# shared helpers: checks, model mode, randomness, projections
# ----------------------------------------------------------------------------------------------------------------------
@contextlib.contextmanager
def _model_mode(model: nn.Module, eval_mode: bool = True):
    """Run the block with ``model.eval()`` (if ``eval_mode``) and restore every module's own training flag."""
    flags = [(m, m.training) for m in model.modules()]
    if eval_mode:
        model.eval()
    try:
        yield
    finally:
        for m, flag in flags:
            m.training = flag


def _check_images(x, name: str = "x") -> None:
    if not isinstance(x, torch.Tensor) or x.dim() != 4:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{name} must be a float tensor [B, C, H, W], got {shape}")
    if not x.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
    if x.numel() == 0:
        raise ValueError(f"{name} is empty (shape {tuple(x.shape)})")
    lo, hi = float(x.min()), float(x.max())
    if not (0.0 <= lo and hi <= 1.0):  # also catches NaN
        raise ValueError(f"{name} must hold images in [0, 1] (normalisation is inside the model), "
                         f"got values in [{lo:.4g}, {hi:.4g}]")


def _check_labels(y, x: torch.Tensor, name: str = "y") -> torch.Tensor:
    B = x.shape[0]
    if isinstance(y, int) and not isinstance(y, bool):
        return torch.full((B,), y, dtype=torch.long, device=x.device)
    if not isinstance(y, torch.Tensor) or y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
        raise ValueError(f"{name} must be an integer Tensor[B] of class indices, got "
                         f"{y.dtype if isinstance(y, torch.Tensor) else type(y).__name__}")
    y = y.reshape(-1).to(device=x.device, dtype=torch.long)
    if y.numel() != B:
        raise ValueError(f"{name} has {y.numel()} entries but x has batch size {B}")
    return y


def _check_number(name: str, v, *, positive: bool = False, allow_zero: bool = True) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise ValueError(f"{name} must be a finite number, got {v!r}")
    if v < 0 or (positive and v == 0) or (not allow_zero and v == 0):
        raise ValueError(f"{name} must be {'> 0' if positive or not allow_zero else '>= 0'}, got {v!r}")
    return float(v)


def _check_eps(eps, norm: str = "linf", x: Optional[torch.Tensor] = None) -> float:
    """The radius ``eps`` of a perturbation set in ``[0, 1]`` pixel space: ``>= 0``, and at most 1 for l-inf (a
    larger radius covers the whole image cube: ``eps=8`` was meant as 8/255) or the cube's diameter
    ``sqrt(C * H * W)`` for l2."""
    eps = _check_number("eps", eps)
    if norm == "linf" and eps > 1:
        raise ValueError(f"eps must be in [0, 1] for an l-inf ball in [0, 1] pixel space, got {eps!r} (for 8/255 "
                         f"pass eps=8/255, not 8)")
    if norm == "l2" and x is not None and x.dim() == 4 and eps > math.sqrt(x[0].numel()):
        raise ValueError(f"eps must be in [0, {math.sqrt(x[0].numel()):.4g}] for an l2 ball in [0, 1] pixel space "
                         f"(the diameter of a {tuple(x.shape[1:])} image), got {eps!r}")
    return eps


def _check_int(name: str, v, lo: int = 0, hi: Optional[int] = None) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < lo or (hi is not None and v > hi):
        rng = f"in [{lo}, {hi}]" if hi is not None else f">= {lo}"
        raise ValueError(f"{name} must be an int {rng}, got {v!r}")
    return v


def _check_choice(name: str, v, choices) -> str:
    if v not in choices:
        raise ValueError(f"unknown {name} {v!r}; choose one of {list(choices)}")
    return v


def _check_batch_size(batch_size) -> Optional[int]:
    if batch_size is None:
        return None
    return _check_int("batch_size", batch_size, lo=1)


#: Bytes held per path image by the IG attacks' double backprop, in units of the activations of one forward pass
#: (the outputs of the model's leaf modules). Measured peak on an H200 (``torch.cuda.max_memory_allocated`` around
#: one IFIA step, ``benchmarks/results/attacks.md``): small-cnn 2.52x, resnet18 (32x32) 2.30x, wrn-28-10 2.02x,
#: resnet18-imagenet (224x224) 2.68x; 6 leaves a margin of 2.2-3x.
ACTIVATION_FACTOR = 6.0
#: Share of the GPU's free memory :func:`auto_batch_size` plans to fill.
MEMORY_FRACTION = 0.7
#: Most images per pass :func:`auto_batch_size` picks on a GPU: the fastest pass size measured for IFIA on an H200
#: (small-cnn, 100 IG points: 575 / 699 / 739 images/s at 64 / 128 / 256 per pass, ``benchmarks/results/attacks.md``).
MAX_AUTO_BATCH = 256


def _activation_bytes(model: nn.Module, x1: torch.Tensor) -> int:
    """Bytes of the outputs of ``model``'s leaf modules in one no-grad forward pass of ``x1`` (one image); at least
    the image's own size."""
    total = 0

    def count(_m, _i, out):
        nonlocal total
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor):
                total += t.numel() * t.element_size()
    hooks = [m.register_forward_hook(count) for m in model.modules() if next(m.children(), None) is None]
    try:
        with torch.no_grad():
            model(x1)
    finally:
        for h in hooks:
            h.remove()
    return max(total, x1.numel() * x1.element_size())


def _fit_batch(free_bytes: int, bytes_per_image: float, n_images: Optional[int] = None,
               cap: int = MAX_AUTO_BATCH) -> int:
    """Images per pass: as many as ``MEMORY_FRACTION`` of ``free_bytes`` holds at ``bytes_per_image`` (at least 1,
    at most ``cap``), then evened out over the passes ``n_images`` needs (300 images at a limit of 256 run as two
    passes of 150, not 256 + 44)."""
    size = int(max(1, min(cap, (MEMORY_FRACTION * free_bytes) // max(1.0, bytes_per_image))))
    if n_images:
        size = math.ceil(n_images / math.ceil(n_images / size))
    return size


def auto_batch_size(device: Union[str, torch.device], n_steps_ig: int = 100, model: Optional[nn.Module] = None,
                    x: Optional[torch.Tensor] = None) -> int:
    """Default images per pass of the IG-based attacks (:func:`ifia`, :func:`targeted_attribution_attack`).

    On a CPU one image per pass: one image's IG is already a batch of ``n_steps_ig`` path images, the work is bound
    by arithmetic, and passes over many images spill the caches (measured on the 2-core CI CPU with small-cnn:
    0.15 s per image and step at 1 image per pass, 0.21 s at 4, 0.31 s at 32).

    On a GPU, given the ``model`` and the images ``x``: as many images as fit in :data:`MEMORY_FRACTION` of the
    device's free memory (``torch.cuda.mem_get_info``), at :data:`ACTIVATION_FACTOR` times the activations of one
    forward pass (forward hooks on the leaf modules, one image) per path image, at most :data:`MAX_AUTO_BATCH`, evened
    out over the passes ``len(x)`` needs. Small models get large passes (small-cnn on 32x32: 256 on an H200, and by
    the same rule ~190 on an 80 GB H100), large ones small passes instead of running out of memory (H200: resnet18 on
    32x32 16, resnet18-imagenet on 224x224 4); the attacks also halve an automatic size and retry a pass that still
    runs out of memory. Without ``model`` (or ``x``): ``6400 // n_steps_ig`` (64 at 100 points). Results never
    depend on the batch size.

    Args:
        device: where the attack runs.
        n_steps_ig (int): IG points per image. Default 100.
        model (nn.Module, optional): the attacked model (GPU sizing).
        x (Tensor, optional): the attacked images ``[B, C, H, W]`` (GPU sizing).

    Example::

        >>> attacks.auto_batch_size(x.device, 100, model, x)    # images per pass of ifia(model, x, ...)
    """
    device = torch.device(device)
    n_steps_ig = int(n_steps_ig)
    if device.type == "cpu":
        return 1
    if model is None or x is None or device.type != "cuda" or x.shape[0] == 0:
        return max(1, 6400 // n_steps_ig)
    free, _total = torch.cuda.mem_get_info(device)
    per_image = ACTIVATION_FACTOR * n_steps_ig * _activation_bytes(model, x[:1])
    return _fit_batch(free, per_image, x.shape[0])


def _map_chunks(fn: Callable[[slice], tuple], n: int, size: Optional[int], shrink: bool) -> list:
    """``[fn(s) for s in _chunks(n, size)]``; with ``shrink`` (an automatic size), a pass that runs out of memory
    is retried with half as many images (down to 1), and later passes keep the smaller size. The attacks' results
    are per sample, so the chunking never changes them."""
    size = n if size is None else size
    parts, start = [], 0
    while start < n:
        stop = min(n, start + size)
        try:
            parts.append(fn(slice(start, stop)))
            start = stop
            continue
        except torch.OutOfMemoryError:
            if not shrink or stop - start == 1:
                raise
            size = (stop - start) // 2
        if torch.cuda.is_available():  # the failed pass's tensors are released once the except block is left
            torch.cuda.empty_cache()
    return parts


def _generator(seed: Optional[int]) -> Optional[torch.Generator]:
    if seed is None:
        return None
    return torch.Generator().manual_seed(int(seed))


def _rand(shape, gen: Optional[torch.Generator], like: torch.Tensor, normal: bool = False) -> torch.Tensor:
    """U[0, 1) (or N(0, 1)) noise drawn on the CPU from ``gen`` (global RNG if None) and moved to ``like``'s device."""
    fn = torch.randn if normal else torch.rand
    if gen is None:
        return fn(shape, dtype=like.dtype, device=like.device)
    return fn(shape, generator=gen, dtype=like.dtype).to(like.device)


def _per_sample_seeds(seed: Seed, B: int) -> Optional[list]:
    """``None`` -> None; ``int`` -> the same seed for every sample; a sequence / tensor -> one seed per sample."""
    if seed is None:
        return None
    if isinstance(seed, int) and not isinstance(seed, bool):
        return [seed] * B
    try:
        seeds = seed.reshape(-1).tolist() if isinstance(seed, torch.Tensor) else list(seed)
        if any(isinstance(s, bool) for s in seeds):
            raise TypeError
        seeds = [operator.index(s) for s in seeds]
    except TypeError:
        seeds = None
    if seeds is None or len(seeds) != B:
        raise ValueError(f"seed must be None, an int or {B} ints (one per sample), got {seed!r}")
    return seeds


def _uniform_start(x: torch.Tensor, eps: float, seeds: Optional[list]) -> torch.Tensor:
    """``x + U(-eps, eps)``, clamped to [0, 1]. With per-sample seeds each sample's noise depends only on its own seed
    (a fresh generator per sample), so a sample gets the same start in any batch and when attacked alone."""
    if seeds is None:
        u = torch.rand_like(x)
    else:
        u = torch.stack([torch.rand(x.shape[1:], generator=torch.Generator().manual_seed(int(s)), dtype=x.dtype)
                         for s in seeds]).to(x.device)
    return (x + (2 * u - 1) * eps).clamp(0, 1)


def _project(x_adv: torch.Tensor, x: torch.Tensor, eps: float, norm: str = "linf") -> torch.Tensor:
    """Project onto the ``norm`` ball of radius ``eps`` around ``x``, then clamp to [0, 1] (clamping only moves
    entries towards ``x``, which lies in [0, 1], so the result stays inside the ball)."""
    if norm == "linf":
        return torch.min(torch.max(x_adv, x - eps), x + eps).clamp(0, 1)
    delta = x_adv - x
    n = delta.flatten(1).norm(dim=1).view(-1, *([1] * (x.dim() - 1)))
    delta = delta * torch.clamp(eps / n.clamp_min(1e-12), max=1.0)
    return (x + delta).clamp(0, 1)


def _chunks(n: int, size: Optional[int]):
    size = n if size is None else size
    for s in range(0, n, size):
        yield slice(s, min(n, s + size))


def _find_normalize(model: nn.Module):
    """``(mean, std)`` buffers ``[C, 1, 1]`` of the model's ``artlib.models.Normalize`` layer, or None."""
    from artlib import models
    for m in model.modules():
        if isinstance(m, models.Normalize):
            return m.mean, m.std
    return None


def _progress(it, enabled: bool, desc: str):
    if not enabled:
        return it
    from tqdm.auto import tqdm
    return tqdm(it, desc=desc, leave=False)


@torch.no_grad()
def _predict(model: nn.Module, x: torch.Tensor, max_batch: Optional[int] = None) -> torch.Tensor:
    return torch.cat([model(x[s]).argmax(1) for s in _chunks(x.shape[0], max_batch)])


# ----------------------------------------------------------------------------------------------------------------------
# PGD
# ----------------------------------------------------------------------------------------------------------------------
def pgd(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, step_size: float, steps: int,
        norm: str = "linf", random_start: bool = True, targeted: bool = False,
        loss_fn: Optional[Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = None, seed: Optional[int] = None,
        eval_mode: bool = True) -> torch.Tensor:
    r"""Projected gradient descent (Madry et al., ICLR 2018, https://arxiv.org/abs/1706.06083), l-inf or l2.

    Maximises ``loss_fn(model(x'), y)`` (minimises it if ``targeted``, with ``y`` the target classes) over
    ``x'`` in ``{||x' - x|| <= eps} ∩ [0, 1]^n``:
    ``x' <- Proj(x' + step_size * sign(grad))`` (l-inf) or ``x' <- Proj(x' + step_size * grad / ||grad||_2)`` (l2).
    Random start: ``U(-eps, eps)`` (l-inf) or a Gaussian direction scaled to a ``U(0, eps)`` radius (l2, as
    torchattacks' ``PGDL2``). ART uses PGD-40 (eps 8/255, step 2/255) for Table 1 / Fig. 9, PGD-100 and PGD-500 in
    Sec. 4, and l2 PGD-40 with eps 1.0; adversarial training uses PGD-10 / PGD-7.

    Args:
        model (nn.Module): classifier returning logits for images in ``[0, 1]``.
        x (Tensor): images ``[B, C, H, W]`` in ``[0, 1]``.
        y (Tensor): labels ``[B]`` (targets if ``targeted``).
        eps (float): radius of the ball (l-inf: per entry, e.g. 8/255; l2: per image, e.g. 1.0); ``>= 0``.
        step_size (float): step length (l-inf: per entry; l2: of the whole step); ``>= 0``.
        steps (int): iterations (0 returns the random start, or ``x``).
        norm (str): ``"linf"`` (default) or ``"l2"``.
        random_start (bool): start from a random point of the ball. Default True.
        targeted (bool): descend the loss towards ``y``. Default False.
        loss_fn (callable, optional): ``loss_fn(logits, y)`` -> scalar or per-sample ``[B]`` (summed). Default
            cross-entropy summed over the batch (a sum, so each sample's step does not depend on the batch size).
        seed (int, optional): seeds the random start (CPU generator). Default None (global RNG).
        eval_mode (bool): run the model in eval mode (restored afterwards). Default True; pass False to attack the
            model in its current mode (e.g. BatchNorm in train mode inside a training step).

    Returns:
        Tensor ``[B, C, H, W]`` in ``[0, 1]`` with ``||x_adv - x|| <= eps``, detached.

    Example::

        >>> x_adv = attacks.pgd(model, x, y, eps=8/255, step_size=2/255, steps=40)          # PGD-40, l-inf
        >>> x_l2 = attacks.pgd(model, x, y, eps=1.0, step_size=0.25, steps=40, norm="l2")   # ART Sec. 4, l2
    """
    _check_images(x)
    y = _check_labels(y, x)
    _check_choice("norm", norm, ("linf", "l2"))
    eps = _check_eps(eps, norm, x)
    step_size = _check_number("step_size", step_size)
    steps = _check_int("steps", dryrun.iterations(steps))
    loss_fn = loss_fn or (lambda logits, t: F.cross_entropy(logits, t, reduction="sum"))
    x = x.detach()
    shape = (-1,) + (1,) * (x.dim() - 1)
    gen = _generator(seed)
    with _model_mode(model, eval_mode), torch.enable_grad():
        x_adv = x.clone()
        if random_start and eps > 0:
            if norm == "linf":
                x_adv = x + (2 * _rand(x.shape, gen, x) - 1) * eps
            else:
                d = _rand(x.shape, gen, x, normal=True)
                r = _rand((x.shape[0],), gen, x).view(shape)
                x_adv = x + d / d.flatten(1).norm(dim=1).clamp_min(1e-12).view(shape) * r * eps
            x_adv = _project(x_adv, x, eps, norm)
        for _ in range(steps):
            x_adv.requires_grad_(True)
            loss = loss_fn(model(x_adv), y)
            (grad,) = torch.autograd.grad(loss.sum() if loss.dim() else loss, x_adv)
            if targeted:
                grad = -grad
            with torch.no_grad():
                if norm == "linf":
                    x_adv = x_adv + step_size * grad.sign()
                else:
                    x_adv = x_adv + step_size * grad / (grad.flatten(1).norm(dim=1).view(shape) + 1e-10)
                x_adv = _project(x_adv, x, eps, norm)
    return x_adv.detach()


# ----------------------------------------------------------------------------------------------------------------------
# IFIA: top-k Iterative Feature Importance Attack on Integrated Gradients
# ----------------------------------------------------------------------------------------------------------------------
class IFIAResult(NamedTuple):
    """Result of :func:`ifia` (all tensors have batch size B).

    Attributes:
        x_adv (Tensor[B, C, H, W]): the selected perturbed image per sample (``x`` itself where none qualified).
        intersection (Tensor[B]): top-``eval_k`` intersection between the measured maps of ``x`` and ``x_adv``.
        kendall (Tensor[B]): Kendall's tau-b between the same maps.
        success (Tensor[B] bool): a label-preserving perturbed iterate was selected (``step >= 0``).
        step (Tensor[B] long): which iterate was selected (see :func:`ifia`), ``-1`` for none.
    """
    x_adv: torch.Tensor
    intersection: torch.Tensor
    kendall: torch.Tensor
    success: torch.Tensor
    step: torch.Tensor


def _ig_map(model: nn.Module, x: torch.Tensor, y: torch.Tensor, n_steps: int, ig_method: str = "riemann_right",
            reduce: str = "sum_abs") -> torch.Tensor:
    """Measured saliency ``[B, H*W]``: ``reduce`` over channels of IG of the ``y`` logit (zero baseline, ReLU model),
    normalised to sum ``H*W`` (Ghorbani / RAR / ART)."""
    from artlib import attribution
    attr = attribution.attribute(model, x, y, "ig", n_steps=n_steps, ig_method=ig_method)
    return attribution.to_saliency_map(attr, reduce, normalize=True).flatten(1)


def _ig_path_grads_only(model: nn.Module, z: torch.Tensor, y: torch.Tensor, n_steps: int) -> torch.Tensor:
    """IG with a zero baseline and the right Riemann rule whose graph runs only through the path gradients:
    ``IG = z.detach() * mean_i grad f_y(i/n * z)`` (i = 1..n). Its gradient w.r.t. ``z`` is
    ``sum_i (i/n) * dL/d(counterfactual_i)``, exactly the ART authors' ``saliency_attackIG`` direction (they
    back-propagate to the counterfactuals only and treat the ``(x - baseline)`` factor as a constant)."""
    n = n_steps
    B = z.shape[0]
    alphas = torch.arange(1, n + 1, dtype=z.dtype, device=z.device).div_(n).view(n, 1, 1, 1, 1)
    pts = (alphas * z.unsqueeze(0)).reshape(n * B, *z.shape[1:])
    out = model(pts).gather(1, y.repeat(n).view(-1, 1)).sum()
    (g,) = torch.autograd.grad(out, pts, create_graph=True)
    return z.detach() * g.view(n, *z.shape).mean(0)


def _topk_mask(m: torch.Tensor, k: int) -> torch.Tensor:
    """``{0, 1}`` mask ``[B, N]`` of the ``k`` largest entries per row (ties to the lower index, like
    ``metrics.topk_intersection``)."""
    idx = torch.sort(m, dim=1, descending=True, stable=True).indices[:, :k]
    return torch.zeros_like(m).scatter_(1, idx, 1.0)


def ifia(model: nn.Module, x: torch.Tensor, y: torch.Tensor, k: int, eps: float, step_size: float, steps: int, *,
         beta: Optional[float] = 50.0, n_steps_ig: int = 100, measure: Optional[str] = None, setting: str = "paper",
         random_start: Optional[bool] = None, seed: Seed = None, eval_k: Optional[int] = None,
         batch_size: Optional[int] = None, progress: bool = False) -> IFIAResult:
    r"""Top-k Iterative Feature Importance Attack on Integrated Gradients (Ghorbani et al., "Interpretation of Neural
    Networks is Fragile", AAAI 2019, https://arxiv.org/abs/1710.10547), as ART Table 1 runs it.

    ART (Singh et al., ECCV 2020) Sec. 4 and appendix A.3.5 use the top-k IFIA with the hyperparameters of RAR (Chen
    et al., NeurIPS 2019): CIFAR-10 / SVHN / GTSRB ``k=100, eps=8/255, steps=50, step_size=1/255``; Flowers
    ``k=1000, eps=8/255, steps=100, step_size=1/255``; IG with 100 steps and a zero (black) baseline; evaluated by
    top-k intersection and Kendall's tau between the maps of ``x`` and ``x_adv``.

    The attack, per sample (vectorised over the batch):

    1. Saliency map ``s(x) = H*W * m / sum(m)`` with ``m = sum_c |IG_c(x)|`` (channel-summed ``|IG|``, normalised to
       sum ``H*W``), IG of the **logit of class y** with a zero baseline and the right Riemann rule on ``n_steps_ig``
       points (Ghorbani's ``IntegratedGradientsAttack``, RAR's and ART's ports). The top-``k`` pixel set ``S`` of the
       clean map is fixed once (ReLU model).
    2. Each step descends the **saliency mass on the original top-k pixels**, ``D(x') = sum_{p in S} s(x')_p``
       (Ghorbani's "topK" objective: decrease the total attribution of the originally most important pixels, i.e.
       ascend the dissimilarity of the top-k region), by a signed step
       ``x' <- Proj_{eps, [0,1]}(x' - step_size * sign(grad D))``; the gradient is taken through a differentiable
       IG (``attribution.attribute(..., differentiable=True)``) of the model with ReLU swapped for
       ``Softplus(beta)``.
    3. After each step the map of the ReLU model is measured; iterates whose predicted label differs from the clean
       prediction are discarded; per sample the iterate with the lowest criterion ``measure`` is kept (strictly
       lower than every earlier one, so the earliest of equal iterates wins).

    ``setting="paper"`` (default) follows Ghorbani et al.'s released ``iterative_attack`` (which RAR runs): no
    random start; the exact gradient of ``D`` through the whole IG (path gradients *and* the ``(x - baseline)``
    factor); criterion ``"topk"`` = top-k intersection with the clean map (Ghorbani's ``measure="intersection"``);
    the clean image counts as criterion 1, so ``x`` is returned (``success=False``) where no label-preserving step
    lowered it; ``step`` = number of updates of the selected iterate (1..steps). The returned ``intersection`` and
    ``kendall`` compare the same logit-IG maps.

    ``setting="official"`` follows the ART authors' evaluation (``cifar/saliency_pgd.py: saliency_attackIG`` and
    ``cifar/eval_model.py``, see ``papers/art_official_code_facts.md``): uniform random start in ``[-eps, eps]``;
    the gradient flows only through the IG path gradients (the ``(x - baseline)`` factor is treated as a constant);
    the iterate is measured *before* each update (iterates 0..steps-1, 0 = the random start; the last update is
    never measured); criterion ``"kendall_topk"`` = Kendall's tau between the two maps multiplied by the clean top-k
    indicator; no clean fallback (``success=False`` and ``x`` returned where every iterate changed the label — the
    authors skip such images). The returned ``intersection`` / ``kendall`` use the authors' metric maps: IG of the
    **cross-entropy loss** (computed as IG of ``log softmax_y``, whose ``|IG|`` is the same), 101-point trapezoid
    rule, channel-**mean** ``|IG|`` normalised to sum ``H*W``, tau over all pixels.

    Batched and per-image calls give identical results: every quantity is per-sample (eval mode, per-sample losses
    summed, per-sample random starts from per-sample seeds, IG path points grouped the same way for any batch), so
    attacking ``x[i:i+1]`` alone with ``seed[i]`` reproduces row ``i`` of a batched call bit for bit on the CPU
    (checked in ``tests/test_attacks.py`` and ``benchmarks/bench_attacks.py``). On CUDA, cuDNN (and its default TF32
    convolutions) may pick different kernels for different batch sizes, so the float results differ in the last
    bits and a ``sign()`` can flip: measured on an H100, per-image and batched top-k intersections agreed within 0.04
    after 5 steps (``benchmarks/results/attacks.md``).

    Args:
        model (nn.Module): ReLU classifier returning logits for images in ``[0, 1]``.
        x (Tensor): images ``[B, C, H, W]`` in ``[0, 1]``; should be correctly classified (ART and RAR attack only
            those).
        y (Tensor or None): class whose logit IG is attacked, ``[B]`` (the true labels in ART / RAR); None = the
            model's predictions.
        k (int): size of the attacked top-k pixel set, ``1 <= k <= H*W`` (100 CIFAR / GTSRB / SVHN, 1000 Flowers).
        eps (float): l-inf radius, ``>= 0`` (8/255).
        step_size (float): signed step, ``>= 0`` (1/255).
        steps (int): iterations (50; Flowers 100).
        beta (float or None): Softplus beta of the attack's gradient model. Default 50 (ART); None = the model as is
            (for smooth models).
        n_steps_ig (int): IG points. Default 100 (Ghorbani / RAR / ART).
        measure (str, optional): selection criterion, one of :data:`IFIA_MEASURES`: ``"topk"`` (intersection),
            ``"kendall"`` (tau over all pixels, RAR's selection among restarts), ``"kendall_topk"`` (ART's). Default
            None = ``"topk"`` for ``"paper"``, ``"kendall_topk"`` for ``"official"``.
        setting (str): ``"paper"`` (default) or ``"official"``, see above.
        random_start (bool, optional): override the setting's random start (paper: False, official: True).
        seed (int, sequence of int or Tensor[B], optional): random-start seeds: an int gives every sample a fresh
            generator seeded with it; per-sample seeds make each sample's start independent of the others.
        eval_k (int, optional): k of the returned ``intersection``. Default ``k``.
        batch_size (int, optional): images attacked together in one pass; results do not depend on it. Memory
            grows with ``batch_size * n_steps_ig`` path images held for double backprop (measured on an H200:
            small-cnn on 32x32 1.25 MiB each, i.e. ~31 GiB at 256 x 100; resnet18-imagenet on 224x224 78 MiB).
            Default None = :func:`auto_batch_size`: 1 on a CPU (passes of many images spill the caches and run
            slower there, ``benchmarks/results/attacks.md``); on a GPU as many images as fit in the free memory
            (from the model's activation sizes, at most 256), halved and retried if a pass still runs out of memory.
        progress (bool): tqdm bar over the steps. Default False.

    Returns:
        :class:`IFIAResult` ``(x_adv, intersection, kendall, success, step)``; ``x_adv`` is inside the eps-ball and
        ``[0, 1]`` and has the clean predicted label wherever ``success``.

    Example::

        >>> res = attacks.ifia(model, x, y, k=100, eps=8/255, step_size=1/255, steps=50)   # ART A.3.5, CIFAR-10
        >>> res.intersection.mean(), res.kendall.mean()                                  # ART Table 1 "IN", "K"
    """
    _check_images(x)
    y = None if y is None else _check_labels(y, x)
    H, W = x.shape[-2:]
    k = _check_int("k", k, lo=1, hi=H * W)
    eval_k = k if eval_k is None else _check_int("eval_k", eval_k, lo=1, hi=H * W)
    eps = _check_eps(eps)
    step_size = _check_number("step_size", step_size)
    steps = _check_int("steps", dryrun.iterations(steps))
    n_steps_ig = _check_int("n_steps_ig", dryrun.iterations(n_steps_ig), lo=2)
    _check_choice("setting", setting, IFIA_SETTINGS)
    official = setting == "official"
    measure = ("kendall_topk" if official else "topk") if measure is None else measure
    _check_choice("measure", measure, IFIA_MEASURES)
    if beta is not None:
        _check_number("beta", beta, positive=True)
    random_start = official if random_start is None else bool(random_start)
    seeds = _per_sample_seeds(seed, x.shape[0])
    auto = batch_size is None
    batch_size = _check_batch_size(batch_size)

    with _model_mode(model, True):
        if auto:
            batch_size = auto_batch_size(x.device, n_steps_ig, model, x)
        y = _predict(model, x) if y is None else y
        parts = _map_chunks(lambda s: _ifia_chunk(
            model, x[s].detach(), y[s], k, eval_k, eps, step_size, steps, beta, n_steps_ig, measure, official,
            random_start, None if seeds is None else seeds[s], progress), x.shape[0], batch_size, auto)
    return IFIAResult(*(torch.cat(t) for t in zip(*parts)))


def _ifia_chunk(model, x, y, k, eval_k, eps, step_size, steps, beta, n_ig, measure, official, random_start, seeds,
                progress):
    from artlib import attribution, losses, metrics
    B = x.shape[0]
    pred0 = _predict(model, x)
    m0 = _ig_map(model, x, y, n_ig)                      # clean map of the ReLU model, [B, H*W]
    S = _topk_mask(m0, k)                                # fixed original top-k set

    def criterion(m):
        if measure == "topk":
            return metrics.topk_intersection(m0, m, k)
        if measure == "kendall":
            return metrics.kendall_tau(m0, m)
        return metrics.kendall_tau(m0 * S, m * S)

    inf = torch.full((B,), math.inf, dtype=x.dtype, device=x.device)
    best_x, best_c = x.clone(), (inf if official else torch.ones_like(inf))
    best_step = torch.full((B,), -1, dtype=torch.long, device=x.device)
    best_m = m0

    def consider(xa, t):
        nonlocal best_x, best_c, best_step, best_m
        ok = _predict(model, xa) == pred0
        m = _ig_map(model, xa, y, n_ig)
        c = torch.where(ok, criterion(m).to(x.dtype), inf)
        better = c < best_c
        best_x = torch.where(better.view(-1, 1, 1, 1), xa, best_x)
        best_m = torch.where(better.view(-1, 1), m, best_m)
        best_c = torch.where(better, c, best_c)
        best_step = torch.where(better, torch.full_like(best_step, t), best_step)

    x_adv = _uniform_start(x, eps, seeds) if random_start and eps > 0 else x.clone()
    for t in _progress(range(steps), progress, "ifia"):
        if official:
            consider(x_adv, t)
        with torch.enable_grad():
            z = x_adv.detach().requires_grad_(True)
            if official:
                with losses.smooth_model(model, beta):
                    attr = _ig_path_grads_only(model, z, y, n_ig)
            else:
                attr = attribution.attribute(model, z, y, "ig", n_steps=n_ig, differentiable=True, beta=beta,
                                             ig_method="riemann_right")
            s = attribution.to_saliency_map(attr, "sum_abs", normalize=True).flatten(1)
            (g,) = torch.autograd.grad((s * S).sum(), z)   # d/dx of the top-k saliency mass, per sample
        with torch.no_grad():
            x_adv = _project(x_adv - step_size * g.sign(), x, eps)
        if not official:
            consider(x_adv, t + 1)

    # the reported similarity of the selected images
    if official:
        log_softmax = nn.Sequential(model, nn.LogSoftmax(dim=1)).eval()  # IG of log p_y = -IG of the CE loss
        M0 = _ig_map(log_softmax, x, y, n_ig + 1, "riemann_trapezoid", "mean_abs")
        M1 = _ig_map(log_softmax, best_x, y, n_ig + 1, "riemann_trapezoid", "mean_abs")
    else:
        M0, M1 = m0, best_m
    return (best_x.detach(), metrics.topk_intersection(M0, M1, eval_k), metrics.kendall_tau(M0, M1),
            best_step >= 0, best_step)


# ----------------------------------------------------------------------------------------------------------------------
# Targeted attribution attack (Dombrowski et al. 2019)
# ----------------------------------------------------------------------------------------------------------------------
class TargetedResult(NamedTuple):
    """Result of :func:`targeted_attribution_attack`.

    Attributes:
        x_adv (Tensor[B, C, H, W]): selected perturbed images (``x`` where no step helped).
        distance (Tensor[B]): ``||h(x_adv) - h_target||^2`` on the ReLU model's maps (sum-to-1 normalised).
        success (Tensor[B] bool): a label-preserving iterate closer to the target than ``x`` was found.
        step (Tensor[B] long): updates of the selected iterate, ``-1`` for ``x``.
    """
    x_adv: torch.Tensor
    distance: torch.Tensor
    success: torch.Tensor
    step: torch.Tensor


def _unit_map(attr_or_map: torch.Tensor) -> torch.Tensor:
    """``[B, C, H, W]`` attribution (channel-summed ``|.|``) or ``[B, H, W]`` map -> ``[B, H*W]`` summing to 1."""
    m = attr_or_map.abs().sum(1) if attr_or_map.dim() == 4 else attr_or_map
    m = m.flatten(1)
    return m / m.sum(1, keepdim=True).clamp_min(torch.finfo(m.dtype).tiny)


def targeted_attribution_attack(model: nn.Module, x: torch.Tensor, target_map: torch.Tensor, eps: float,
                                step_size: float, steps: int, gamma: Optional[float] = None, *,
                                y: Optional[torch.Tensor] = None, beta: Optional[float] = 50.0, n_steps_ig: int = 30,
                                random_start: bool = False, seed: Seed = None, batch_size: Optional[int] = None,
                                progress: bool = False) -> TargetedResult:
    r"""Targeted attribution manipulation (Dombrowski et al., "Explanations can be manipulated and geometry is to
    blame", NeurIPS 2019, https://arxiv.org/abs/1906.07983), as ART Sec. 5 / Fig. 10 uses it on IG maps.

    Minimises, over ``x'`` in the l-inf ball of radius ``eps`` around ``x`` (and ``[0, 1]``),

    .. math:: L(x') = \|h(x') - h^t\|^2 + \gamma \|g(x') - g(x)\|^2

    with ``h`` the IG map of the ``y`` logit (zero baseline, right Riemann rule on ``n_steps_ig`` points — Dombrowski
    et al.'s IG uses 30), reduced as ``sum_c |IG_c|`` and normalised to sum 1 (Dombrowski et al.'s normalisation),
    ``h^t`` the target map normalised the same way, and ``g`` the softmax output. Both terms are evaluated on the
    Softplus(``beta``) model (Dombrowski et al. grow beta from 10 to 100 over their run; ART uses 50). The update is
    a signed step followed by projection (Dombrowski et al. run Adam without an eps-ball for 1500 steps; the signed,
    projected step keeps the perturbation imperceptible as ART's evaluation requires). After each step the ReLU
    model's map is measured and, as in :func:`ifia`, only iterates that keep the clean predicted label qualify; the
    one closest to the target (``||h(x') - h^t||^2``) is returned.

    Args:
        model (nn.Module): ReLU classifier on ``[0, 1]`` images.
        x (Tensor): images ``[B, C, H, W]`` in ``[0, 1]``.
        target_map (Tensor): target maps ``[B, H, W]`` (or attributions ``[B, C, H, W]``, reduced by
            ``sum_c |.|``); e.g. the IG maps of shuffled images (ART Sec. 5). Normalised to sum 1 internally.
        eps (float): l-inf radius ``>= 0``.
        step_size (float): signed step ``>= 0``.
        steps (int): iterations.
        gamma (float, optional): weight of the output term. Default None = Dombrowski et al.'s prefactors (1e11 on
            the mean squared map error over ``H*W`` pixels, 1e6 on the mean squared output error over ``K`` classes),
            i.e. ``gamma = 1e-5 * H * W / K``.
        y (Tensor, optional): class whose logit IG is manipulated. Default the model's predictions.
        beta (float or None): Softplus beta for the gradient (None: model as is). Default 50.
        n_steps_ig (int): IG points. Default 30.
        random_start (bool): uniform start in the ball. Default False.
        seed: per-sample random-start seeds (see :func:`ifia`).
        batch_size (int, optional): images per pass (memory and speed, see :func:`ifia`). Default None =
            :func:`auto_batch_size`.
        progress (bool): tqdm bar. Default False.

    Returns:
        :class:`TargetedResult` ``(x_adv, distance, success, step)``.

    Example::

        >>> perm = torch.randperm(len(x))
        >>> target = attribution.to_saliency_map(attribution.attribute(model, x[perm], y[perm], "ig"))
        >>> res = attacks.targeted_attribution_attack(model, x, target, eps=8/255, step_size=1/255, steps=100)
    """
    from artlib import attribution, losses
    _check_images(x)
    B, C, H, W = x.shape
    if not isinstance(target_map, torch.Tensor) or target_map.dim() not in (3, 4) or \
            target_map.shape[0] != B or tuple(target_map.shape[-2:]) != (H, W):
        shape = tuple(target_map.shape) if isinstance(target_map, torch.Tensor) else type(target_map).__name__
        raise ValueError(f"target_map must be [B, H, W] = {(B, H, W)} (or [B, C, H, W]), got {shape}")
    eps = _check_eps(eps)
    step_size = _check_number("step_size", step_size)
    steps = _check_int("steps", dryrun.iterations(steps))
    n_steps_ig = _check_int("n_steps_ig", dryrun.iterations(n_steps_ig), lo=2)
    if gamma is not None:
        gamma = _check_number("gamma", gamma)
    if beta is not None:
        _check_number("beta", beta, positive=True)
    seeds = _per_sample_seeds(seed, B)
    auto = batch_size is None
    batch_size = _check_batch_size(batch_size)
    x = x.detach()
    ht_all = _unit_map(target_map.detach().to(device=x.device, dtype=x.dtype))

    with _model_mode(model, True):
        if auto:
            batch_size = auto_batch_size(x.device, n_steps_ig, model, x)
        y = _predict(model, x) if y is None else _check_labels(y, x)

        def one(sl):
            xs, ys, ht = x[sl], y[sl], ht_all[sl]
            pred0 = _predict(model, xs)
            with torch.no_grad(), losses.smooth_model(model, beta):
                p0 = model(xs).softmax(1)
            g_ = gamma if gamma is not None else 1e-5 * H * W / p0.shape[1]

            def relu_distance(xa):
                attr = attribution.attribute(model, xa, ys, "ig", n_steps=n_steps_ig, ig_method="riemann_right")
                return ((_unit_map(attr) - ht) ** 2).sum(1)

            best_x, best_d = xs.clone(), relu_distance(xs)
            best_step = torch.full((xs.shape[0],), -1, dtype=torch.long, device=x.device)
            x_adv = _uniform_start(xs, eps, None if seeds is None else seeds[sl]) if random_start and eps > 0 \
                else xs.clone()
            for t in _progress(range(steps), progress, "targeted attribution attack"):
                with torch.enable_grad():
                    z = x_adv.detach().requires_grad_(True)
                    attr = attribution.attribute(model, z, ys, "ig", n_steps=n_steps_ig, differentiable=True,
                                                 beta=beta, ig_method="riemann_right")
                    with losses.smooth_model(model, beta):
                        p = model(z).softmax(1)
                    loss = ((_unit_map(attr) - ht) ** 2).sum() + g_ * ((p - p0) ** 2).sum()
                    (grad,) = torch.autograd.grad(loss, z)
                with torch.no_grad():
                    x_adv = _project(x_adv - step_size * grad.sign(), xs, eps)
                ok = _predict(model, x_adv) == pred0
                d = torch.where(ok, relu_distance(x_adv), torch.full_like(best_d, math.inf))
                better = d < best_d
                best_x = torch.where(better.view(-1, 1, 1, 1), x_adv, best_x)
                best_d = torch.where(better, d, best_d)
                best_step = torch.where(better, torch.full_like(best_step, t + 1), best_step)
            return best_x, best_d, best_step >= 0, best_step

        parts = _map_chunks(one, B, batch_size, auto)
    return TargetedResult(*(torch.cat(t) for t in zip(*parts)))


# ----------------------------------------------------------------------------------------------------------------------
# SPSA (gradient-free)
# ----------------------------------------------------------------------------------------------------------------------
def _margin(logits: torch.Tensor, y: torch.Tensor, targeted: bool) -> torch.Tensor:
    """cleverhans' ``margin_logit_loss``: ``z_y - max_{j != y} z_j`` (untargeted; minimised), or
    ``max_{j != t} z_j - z_t`` (targeted)."""
    zy = logits.gather(-1, y.unsqueeze(-1)).squeeze(-1)
    others = logits.scatter(-1, y.unsqueeze(-1), -math.inf).amax(-1)
    return others - zy if targeted else zy - others


def spsa(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, steps: int, lr: float = 0.01,
         delta: float = 0.01, n_samples: int = 128, *, targeted: bool = False, random_start: bool = True,
         seed: Optional[int] = None, max_batch: int = 8192, early_stop: bool = True,
         progress: bool = False) -> torch.Tensor:
    r"""SPSA attack (Uesato et al., "Adversarial Risk and the Dangers of Evaluating Against Weak Attacks", ICML 2018,
    https://arxiv.org/abs/1802.05666), gradient-free, l-inf; ART Sec. 4 uses it to rule out gradient masking.

    Minimises the margin loss ``z_y - max_{j != y} z_j`` (cleverhans' ``margin_logit_loss``) with Adam on the
    perturbation, using the simultaneous-perturbation gradient estimate over ``n_samples`` Rademacher directions
    ``v``: ``g = mean_v [ (L(x' + delta v) - L(x' - delta v)) / (2 delta) * v ]``; after each update the perturbation
    is projected onto the eps-ball and ``[0, 1]``. Defaults are cleverhans' ``SPSA`` (``lr=0.01``, ``delta=0.01``,
    128 samples, random start ``U(-eps, eps)``). With ``early_stop`` a sample stops once it is misclassified (its
    first adversarial iterate is returned), a per-sample form of cleverhans' early stop on the batch loss.

    Args:
        model (nn.Module): classifier (only its outputs are used).
        x (Tensor): images ``[B, C, H, W]`` in ``[0, 1]``.
        y (Tensor): labels ``[B]`` (targets if ``targeted``).
        eps (float): l-inf radius ``>= 0`` (8/255).
        steps (int): Adam iterations.
        lr (float): Adam learning rate. Default 0.01.
        delta (float): finite-difference radius. Default 0.01.
        n_samples (int): Rademacher directions per step (each costs two forward passes). Default 128.
        targeted (bool): push towards class ``y``. Default False.
        random_start (bool): start from ``U(-eps, eps)``. Default True.
        seed (int, optional): seeds the start and the directions (CPU generator). Default None (global RNG).
        max_batch (int): images per forward pass. Default 8192.
        early_stop (bool): freeze samples once adversarial. Default True.
        progress (bool): tqdm bar. Default False.

    Returns:
        Tensor ``[B, C, H, W]`` in ``[0, 1]`` inside the eps-ball.

    Example::

        >>> x_adv = attacks.spsa(model, x, y, eps=8/255, steps=100)
        >>> (model(x_adv).argmax(1) == y).float().mean()     # SPSA accuracy (ART Sec. 4)
    """
    _check_images(x)
    y = _check_labels(y, x)
    eps = _check_eps(eps)
    steps = _check_int("steps", dryrun.iterations(steps))
    lr = _check_number("lr", lr, positive=True)
    delta = _check_number("delta", delta, positive=True)
    n_samples = _check_int("n_samples", dryrun.iterations(n_samples), lo=1)
    max_batch = _check_int("max_batch", max_batch, lo=2)
    gen = _generator(seed)
    x = x.detach()
    B = x.shape[0]
    b1, b2, adam_eps = 0.9, 0.999, 1e-8

    def loss_of(xs, ys):
        return torch.cat([_margin(model(xs[s]), ys[s], targeted) for s in _chunks(xs.shape[0], max_batch)])

    with _model_mode(model, True), torch.no_grad():
        x_adv = _project(x + (2 * _rand(x.shape, gen, x) - 1) * eps, x, eps) if random_start and eps > 0 \
            else x.clone()
        m, v = torch.zeros_like(x), torch.zeros_like(x)
        done = torch.zeros(B, dtype=torch.bool, device=x.device)
        per_chunk = max(1, max_batch // (2 * B))
        for t in _progress(range(1, steps + 1), progress, "spsa"):
            if early_stop:
                done |= loss_of(x_adv, y) < 0
                if bool(done.all()):
                    break
            g = torch.zeros_like(x)
            for s in _chunks(n_samples, per_chunk):
                n = s.stop - s.start
                d = (_rand((n, *x.shape), gen, x) < 0.5).to(x.dtype).mul_(2).sub_(1)  # Rademacher
                pts = torch.cat([x_adv.unsqueeze(0) + delta * d, x_adv.unsqueeze(0) - delta * d])
                L = loss_of(pts.reshape(-1, *x.shape[1:]), y.repeat(2 * n)).view(2, n, B)
                g += (((L[0] - L[1]) / (2 * delta)).view(n, B, 1, 1, 1) * d).sum(0)
            g /= n_samples
            m = b1 * m + (1 - b1) * g
            v = b2 * v + (1 - b2) * g * g
            step = lr * (m / (1 - b1 ** t)) / ((v / (1 - b2 ** t)).sqrt() + adam_eps)
            new = _project(x_adv - step, x, eps)
            x_adv = torch.where(done.view(-1, 1, 1, 1), x_adv, new)
    return x_adv


# ----------------------------------------------------------------------------------------------------------------------
# Spatial attack (Engstrom et al. 2019)
# ----------------------------------------------------------------------------------------------------------------------
class SpatialResult(NamedTuple):
    """Result of :func:`spatial_attack`: the worst transformed image per sample and its transform.

    Attributes:
        x_adv (Tensor[B, C, H, W]), angle (Tensor[B], degrees), tx (Tensor[B], pixels, right), ty (Tensor[B], pixels,
        down), success (Tensor[B] bool: misclassified).
    """
    x_adv: torch.Tensor
    angle: torch.Tensor
    tx: torch.Tensor
    ty: torch.Tensor
    success: torch.Tensor


def _rotate_translate(x: torch.Tensor, angle: torch.Tensor, tx: torch.Tensor, ty: torch.Tensor) -> torch.Tensor:
    """Rotate each image by ``angle`` degrees about its centre (clockwise on screen: the y axis points down), then
    shift it by ``(tx, ty)`` pixels; bilinear sampling, zero (black) padding as Engstrom et al."""
    B, _, H, W = x.shape
    a = torch.deg2rad(angle.to(x.dtype))
    cos, sin = torch.cos(a), torch.sin(a)
    # output pixel p samples the input at R(-a) (p - t); in normalised coordinates (scale S = diag(W/2, H/2)):
    # theta = S^-1 R(-a) S | -S^-1 R(-a) t
    r00, r01, r10, r11 = cos, sin * H / W, -sin * W / H, cos
    txn, tyn = 2 * tx.to(x.dtype) / W, 2 * ty.to(x.dtype) / H
    theta = torch.stack([torch.stack([r00, r01, -(r00 * txn + r01 * tyn)], 1),
                         torch.stack([r10, r11, -(r10 * txn + r11 * tyn)], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False).clamp(0, 1)


def spatial_attack(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                   rotations: Optional[Sequence[float]] = None, translations: Optional[Sequence[float]] = None, *,
                   max_batch: int = 4096) -> SpatialResult:
    r"""Worst-of-grid spatial attack (Engstrom et al., "Exploring the Landscape of Spatial Robustness", ICML 2019,
    https://arxiv.org/abs/1712.02779), as in ART Sec. 4.

    Every image is rotated by each angle of ``rotations`` and translated by each ``(tx, ty)`` of
    ``translations x translations`` (pixels; bilinear, black padding); per sample the transform that misclassifies
    is returned, choosing the one of highest cross-entropy among misclassifying transforms (or among all when none
    misclassifies). Engstrom et al.'s CIFAR grid: 31 rotations in ``[-30, 30]`` degrees and 5 translations in
    ``[-3, 3]`` pixels per axis (775 transforms), the default.

    Args:
        model (nn.Module): classifier on ``[0, 1]`` images.
        x (Tensor): images ``[B, C, H, W]`` in ``[0, 1]``.
        y (Tensor): labels ``[B]``.
        rotations (sequence of float, optional): angles in degrees. Default ``linspace(-30, 30, 31)``.
        translations (sequence of float, optional): shifts in pixels per axis. Default ``linspace(-3, 3, 5)``.
        max_batch (int): images per forward pass. Default 4096.

    Returns:
        :class:`SpatialResult` ``(x_adv, angle, tx, ty, success)``; ``x_adv`` in ``[0, 1]``.

    Example::

        >>> res = attacks.spatial_attack(model, x, y)
        >>> 1 - res.success.float().mean()       # accuracy under the spatial attack
    """
    _check_images(x)
    y = _check_labels(y, x)
    max_batch = _check_int("max_batch", max_batch, lo=1)
    rot = torch.linspace(-30, 30, 31) if rotations is None else torch.as_tensor(rotations, dtype=torch.float64)
    tr = torch.linspace(-3, 3, 5) if translations is None else torch.as_tensor(translations, dtype=torch.float64)
    if rot.dim() != 1 or tr.dim() != 1 or rot.numel() == 0 or tr.numel() == 0 or \
            not bool(torch.isfinite(rot).all() and torch.isfinite(tr).all()):
        raise ValueError(f"rotations and translations must be non-empty 1-D sequences of finite numbers, got "
                         f"{rotations!r} and {translations!r}")
    rot, tr = dryrun.grid(rot), dryrun.grid(tr)
    grid = torch.cartesian_prod(rot.double(), tr.double(), tr.double()).to(device=x.device, dtype=x.dtype)  # [T, 3]
    B, T = x.shape[0], grid.shape[0]
    x = x.detach()
    best_wrong = torch.zeros(B, dtype=torch.bool, device=x.device)
    best_loss = torch.full((B,), -math.inf, dtype=x.dtype, device=x.device)
    best_t = torch.zeros(B, dtype=torch.long, device=x.device)
    per_chunk = max(1, max_batch // B)
    with _model_mode(model, True), torch.no_grad():
        for s in _chunks(T, per_chunk):
            n = s.stop - s.start
            p = grid[s].repeat_interleave(B, 0)                                    # transform-major
            xt = _rotate_translate(x.repeat(n, 1, 1, 1), p[:, 0], p[:, 1], p[:, 2])
            logits = model(xt)
            yy = y.repeat(n)
            loss = F.cross_entropy(logits, yy, reduction="none").view(n, B)
            wrong = (logits.argmax(1) != yy).view(n, B)
            for j in range(n):   # n <= per_chunk small; the batch dimension stays vectorised
                better = (wrong[j] & ~best_wrong) | ((wrong[j] == best_wrong) & (loss[j] > best_loss))
                best_wrong = best_wrong | wrong[j]
                best_loss = torch.where(better, loss[j], best_loss)
                best_t = torch.where(better, torch.full_like(best_t, s.start + j), best_t)
        p = grid[best_t]
        x_adv = _rotate_translate(x, p[:, 0], p[:, 1], p[:, 2])
    return SpatialResult(x_adv, p[:, 0], p[:, 1], p[:, 2], best_wrong)


# ----------------------------------------------------------------------------------------------------------------------
# Transfer evaluation
# ----------------------------------------------------------------------------------------------------------------------
def transfer_accuracy(source_model: nn.Module, target_model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                      attack_fn: Callable[..., object], batch_size: Optional[int] = None) -> float:
    r"""Accuracy of ``target_model`` on adversarial examples crafted on ``source_model`` (black-box transfer; ART
    appendix, Table 6: PGD examples of Natural / PGD-10 / ART models evaluated on the others).

    Args:
        source_model (nn.Module): model the attack sees.
        target_model (nn.Module): model evaluated on the transferred images (eval mode, restored).
        x (Tensor): images ``[B, C, H, W]`` in ``[0, 1]``.
        y (Tensor): labels ``[B]``.
        attack_fn (callable): ``attack_fn(source_model, x, y)`` returning adversarial images, or a tuple /
            NamedTuple whose first field they are (e.g. ``functools.partial(attacks.pgd, eps=8/255,
            step_size=2/255, steps=40)``).
        batch_size (int, optional): images per ``attack_fn`` call. Default None (all).

    Returns:
        float: accuracy in ``[0, 1]``.

    Example::

        >>> from functools import partial
        >>> acc = attacks.transfer_accuracy(natural, art, x, y, partial(attacks.pgd, eps=8/255, step_size=2/255,
        ...                                                                steps=40))
    """
    _check_images(x)
    y = _check_labels(y, x)
    x_adv = adversarial_images(source_model, x, y, attack_fn, batch_size)
    with _model_mode(target_model, True):
        correct = int((_predict(target_model, x_adv) == y).sum())
    return correct / x.shape[0]


def adversarial_images(model: nn.Module, x: torch.Tensor, y: torch.Tensor, attack_fn: Callable[..., object],
                       batch_size: Optional[int] = None) -> torch.Tensor:
    r"""``attack_fn(model, x, y)`` over chunks of ``batch_size`` images, detached and concatenated: the adversarial
    images that :func:`transfer_accuracy` and :func:`artlib.evaluate.transfer_matrix` evaluate other models on.

    Args:
        model (nn.Module): model the attack sees.
        x (Tensor): images ``[B, C, H, W]`` in ``[0, 1]``; y (Tensor): labels ``[B]``.
        attack_fn (callable): returns adversarial images, or a tuple / NamedTuple whose first field they are.
        batch_size (int, optional): images per ``attack_fn`` call. Default None (all).

    Returns:
        Tensor shaped like ``x``.

    Example::

        >>> x_adv = attacks.adversarial_images(pgd_model, x, y, partial(attacks.pgd, eps=8/255, step_size=2/255,
        ...                                                              steps=40))
    """
    _check_images(x)
    y = _check_labels(y, x)
    batch_size = _check_batch_size(batch_size)
    parts = []
    for s in _chunks(x.shape[0], batch_size):
        out = attack_fn(model, x[s], y[s])
        x_adv = out[0] if isinstance(out, tuple) else out
        if not isinstance(x_adv, torch.Tensor) or x_adv.shape != x[s].shape:
            raise ValueError(f"attack_fn must return images shaped like x {tuple(x[s].shape)}, got "
                             f"{tuple(x_adv.shape) if isinstance(x_adv, torch.Tensor) else type(x_adv).__name__}")
        parts.append(x_adv.detach())
    return torch.cat(parts)


# ----------------------------------------------------------------------------------------------------------------------
# Inequality paper: inductive noise and inductive occlusion
# ----------------------------------------------------------------------------------------------------------------------
class NoiseResult(NamedTuple):
    """Result of :func:`inductive_noise`.

    Attributes:
        x_adv (Tensor[B, C, H, W]): noisy images at the first budget that changed the prediction (the largest budget
            where none did).
        success (Tensor[B] bool): prediction differs from ``y``.
        threshold (Tensor[B] long): the budget (number of perturbed entries) that succeeded, 0 for none.
    """
    x_adv: torch.Tensor
    success: torch.Tensor
    threshold: torch.Tensor


class OcclusionResult(NamedTuple):
    """Result of :func:`inductive_occlusion`.

    Attributes:
        x_adv (Tensor[B, C, H, W]): occluded images at the first budget that changed the prediction (the largest
            budget ``(max_count, max_radius)`` where none did).
        success (Tensor[B] bool): prediction differs from ``y``.
        count (Tensor[B] long), radius (Tensor[B] long): the budget that succeeded, 0 for none.
    """
    x_adv: torch.Tensor
    success: torch.Tensor
    count: torch.Tensor
    radius: torch.Tensor


def _check_attr(attr, x: torch.Tensor) -> torch.Tensor:
    B, C, H, W = x.shape
    if not isinstance(attr, torch.Tensor) or not (tuple(attr.shape) == tuple(x.shape) or
                                                  tuple(attr.shape) == (B, H, W)):
        shape = tuple(attr.shape) if isinstance(attr, torch.Tensor) else type(attr).__name__
        raise ValueError(f"attr must be shaped like x {tuple(x.shape)} or be a map {(B, H, W)}, got {shape}")
    return attr.detach().to(x.device)


def _noise_stats(model, x, mean, std):
    """Per-channel ``(mean, std)`` ``[C, 1, 1]`` of the model's input normalisation (explicit values win)."""
    C = x.shape[1]
    found = _find_normalize(model) if mean is None or std is None else None

    def as_c(v, default, name):
        if v is None:
            v = default
        t = torch.as_tensor(v, dtype=x.dtype).to(x.device).flatten()
        if t.numel() == 1:
            t = t.expand(C)
        if t.numel() != C or not bool(torch.isfinite(t).all()):
            raise ValueError(f"{name} must be a number or {C} finite numbers, got {v!r}")
        return t.view(C, 1, 1)

    return (as_c(mean, found[0] if found else 0.0, "mean"), as_c(std, found[1] if found else 1.0, "std"))


def _variant_setting(setting: str, variant: Optional[str]) -> str:
    """``setting`` or, when given, ``variant`` (its alias), checked against ``("paper", "released")``."""
    _check_choice("setting", setting, ("paper", "released"))
    if variant is None:
        return setting
    _check_choice("variant", variant, ("paper", "released"))
    if setting != "paper" and variant != setting:
        raise ValueError(f"variant={variant!r} contradicts setting={setting!r}; give one of them")
    return variant


def inductive_noise(model: nn.Module, x: torch.Tensor, y: torch.Tensor, attr: torch.Tensor,
                    threshold: Union[int, Sequence[int]], kind: str = "I", *, setting: str = "paper",
                    mean: Optional[Sequence[float]] = None, std: Optional[Sequence[float]] = None,
                    seed: Optional[int] = None, batch_size: Optional[int] = None,
                    variant: Optional[str] = None) -> NoiseResult:
    r"""Inductive noise attack (Duan et al., "Inequality phenomenon in l-inf adversarial training, and its unrealized
    threats", ICLR 2023, Sec. 3.2.1, Eq. 5): perturb the most important input entries with noise.

    With ``M`` the mask of the ``threshold`` entries of highest attribution (``a_i >= a_tre``, signed values as Eq. 5
    and the released ``noise_eval.py``, exactly ``threshold`` entries, ties to the lower index):

    * ``kind="I"``: ``x' = x + M * sigma`` (noise added to the important entries);
    * ``kind="II"``: ``x' = (1 - M) * x + M * sigma`` (important entries replaced by noise);
    * ``kind="random"``: as I, with ``M`` a uniformly random set of ``threshold`` entries (the paper's random-noise
      baseline).

    ``threshold`` counts entries of ``attr``: with ``attr`` shaped like ``x`` these are the C*H*W "subpixels"
    (the paper's 500 ... 20000 on 3x224x224 ImageNet images; the released code ranks the C x H x W attribution); with
    a map ``[B, H, W]`` they are pixels and all channels of a chosen pixel are perturbed. A sequence of thresholds is
    tried in increasing order with nested masks and one noise draw per image; each sample reports the first that
    changes its prediction (success = ``pred(x') != y``; the paper attacks correctly classified images only).

    ``setting="paper"``: ``sigma ~ N(0, 1)`` **in the model's normalised input space**, as the paper (its images are
    normalised tensors): in pixel space noise I adds ``std_c * N(0, 1)`` and noise II writes ``mean_c + std_c *
    N(0, 1)``; ``mean`` / ``std`` default to the model's ``artlib.models.Normalize`` (0 / 1 if it has none).
    ``setting="released"``: ``noise_eval.py``: ``U(min(x), max(x))`` per image, added (I) or written (II), then
    clamped to ``[min(x), max(x)]`` (the script's two modes are not named I / II; additive = I and replacement = II
    follows Eq. 5). Both clamp to ``[0, 1]`` (valid images; the paper's Eq. 5 leaves the range
    open).

    Args:
        model (nn.Module): classifier on ``[0, 1]`` images.
        x (Tensor): images ``[B, C, H, W]`` in ``[0, 1]``.
        y (Tensor): labels ``[B]``.
        attr (Tensor): attributions shaped like ``x``, or maps ``[B, H, W]`` (Inequality: IG, 20 steps).
        threshold (int or sequence of int): number(s) of perturbed entries, each in ``[1, numel per sample]``.
        kind (str): ``"I"`` (default), ``"II"`` or ``"random"``.
        setting (str): ``"paper"`` (default) or ``"released"``.
        variant (str, optional): the same choice under the name the Inequality docs use; overrides ``setting``.
            The released variant with the released budget: ``attr`` shaped like ``x`` (signed IG over C*H*W),
            ``threshold=5000``.
        mean, std (float or sequence, optional): normalisation for the paper's noise (see above).
        seed (int, optional): seeds the noise and the random mask (CPU generator). Default None (global RNG).
        batch_size (int, optional): images per forward pass. Default None (all).

    Returns:
        :class:`NoiseResult` ``(x_adv, success, threshold)``; ``x_adv`` differs from ``x`` only on the mask of its
        budget and lies in ``[0, 1]``.

    Example::

        >>> ig = attribution.attribute(model, x, y, "ig", n_steps=20)
        >>> res = attacks.inductive_noise(model, x, y, ig, threshold=[500, 1000, 5000, 10000, 20000], kind="II")
        >>> res.success.float().mean()    # error rate at the largest budget (Inequality Fig. 3)
    """
    _check_images(x)
    y = _check_labels(y, x)
    attr = _check_attr(attr, x)
    _check_choice("kind", kind, ("I", "II", "random"))
    setting = _variant_setting(setting, variant)
    batch_size = _check_batch_size(batch_size)
    B, C, H, W = x.shape
    N = attr[0].numel()
    ths = [threshold] if isinstance(threshold, int) else list(threshold)
    if not ths:
        raise ValueError("threshold must be an int or a non-empty sequence of ints")
    ths = sorted(_check_int("threshold", t, lo=1, hi=N) for t in ths)
    gen = _generator(seed)
    x = x.detach()

    flat = attr.reshape(B, N)
    order = torch.argsort(_rand((B, N), gen, x), dim=1) if kind == "random" else \
        torch.sort(flat, dim=1, descending=True, stable=True).indices
    rank = torch.empty_like(order).scatter_(1, order, torch.arange(N, device=x.device).expand(B, N))
    rank = rank.view(attr.shape) if attr.dim() == 4 else rank.view(B, 1, H, W)   # pixel map: all channels
    if setting == "paper":
        mu, sd = _noise_stats(model, x, mean, std)
        z = _rand(x.shape, gen, x, normal=True)
        noise = sd * z if kind in ("I", "random") else mu + sd * z
        lo, hi = torch.zeros(B, 1, 1, 1, dtype=x.dtype, device=x.device), torch.ones(B, 1, 1, 1, dtype=x.dtype,
                                                                                      device=x.device)
    else:
        lo, hi = x.flatten(1).amin(1).view(B, 1, 1, 1), x.flatten(1).amax(1).view(B, 1, 1, 1)
        noise = lo + (hi - lo) * _rand(x.shape, gen, x)

    x_adv, done = x.clone(), torch.zeros(B, dtype=torch.bool, device=x.device)
    used = torch.zeros(B, dtype=torch.long, device=x.device)
    with _model_mode(model, True), torch.no_grad():
        for i, n in enumerate(ths):
            idx = torch.nonzero(~done).flatten()
            if idx.numel() == 0:
                break
            M = (rank[idx] < n).expand(-1, C, -1, -1).to(x.dtype)
            xi = x[idx]
            xn = xi + M * noise[idx] if kind in ("I", "random") else (1 - M) * xi + M * noise[idx]
            xn = torch.max(torch.min(xn, hi[idx]), lo[idx])
            succ = _predict(model, xn, batch_size) != y[idx]
            take = succ | (i == len(ths) - 1)
            x_adv[idx[take]] = xn[take]
            used[idx[succ]] = n
            done[idx[succ]] = True
    return NoiseResult(x_adv, done, used)


def inductive_occlusion(model: nn.Module, x: torch.Tensor, y: torch.Tensor, attr: torch.Tensor, region: int,
                        max_count: int, max_radius: int, color: Union[str, float, Sequence[float]] = "black", *,
                        setting: str = "paper", reduce: Optional[str] = None,
                        batch_size: Optional[int] = None, variant: Optional[str] = None) -> OcclusionResult:
    r"""Inductive occlusion attack (Duan et al., ICLR 2023, Sec. 3.2.2, Algorithm 1): occlude the most important
    regions with growing patches until the prediction changes.

    The attribution is reduced to a map ``[B, H, W]`` (``reduce``) and summed over non-overlapping
    ``region x region`` blocks — the regional attribution map ``A_r(x)`` of Sec. 3.1 — and the blocks are ranked by
    their sums. A budget ``(n, r)`` occludes, with ``color``, the squares ``[c - r, c + r)`` (side ``2r``, clipped
    at the border; the released code's ``img[x-r:x+r, y-r:y+r]``) centred at the centres ``c`` of the ``n``
    highest-ranked blocks. Budgets are tried in order until ``pred(x') != y`` for each sample (Algorithm 1 meant to
    stop at the first success; its pseudo-code ``break`` leaves only the inner loop).

    ``setting="paper"`` (Algorithm 1): count outer, radius inner (``n = 1..N``, for each ``r = 1..R``); map
    ``sum_c |a_c|`` (the absolute attributions the paper's inequality indices use); colours black = 0, white = 1,
    grey = 0.5 in pixel space. ``setting="released"`` (``occlusion_eval.py``): radius outer, count inner; map the
    signed channel **mean** (``get_feature_map_avg``); black = the image's minimum value (white = its maximum,
    grey = their midpoint; the code implements black only); it ranks single pixels, i.e. use ``region=1``.
    Paper budgets: ImageNet ``(N, R) = (5, 10)`` and ``(10, 20)`` with 16x16 regions; CIFAR-10 ``(10, 4)``, 4x4.

    Args:
        model (nn.Module): classifier on ``[0, 1]`` images.
        x (Tensor): images ``[B, C, H, W]`` in ``[0, 1]`` (the paper attacks correctly classified ones).
        y (Tensor): labels ``[B]``.
        attr (Tensor): attributions shaped like ``x`` or maps ``[B, H, W]`` (used as is).
        region (int): block size in pixels, ``1 <= region <= min(H, W)`` (partial border blocks count too).
        max_count (int): ``N``, at most the number of blocks.
        max_radius (int): ``R >= 1``.
        color (str, float or sequence): ``"black"``, ``"white"``, ``"grey"`` (``"gray"``), a value in [0, 1], or one
            value per channel. Default ``"black"``.
        setting (str): ``"paper"`` (default) or ``"released"``.
        variant (str, optional): the same choice under the name the Inequality docs use; overrides ``setting``.
            The released script's budget: ``region=1, max_count=10, max_radius=20, color="black"``.
        reduce (str, optional): channel reduction (``attribution.to_saliency_map``). Default by setting.
        batch_size (int, optional): images per forward pass. Default None (all).

    Returns:
        :class:`OcclusionResult` ``(x_adv, success, count, radius)``.

    Example::

        >>> ig = attribution.attribute(model, x, y, "ig", n_steps=20)
        >>> res = attacks.inductive_occlusion(model, x, y, ig, region=4, max_count=10, max_radius=4, color="grey")
        >>> res.success.float().mean()   # error rate (Inequality Table 8, CIFAR-10)
    """
    from artlib import attribution
    _check_images(x)
    y = _check_labels(y, x)
    attr = _check_attr(attr, x)
    setting = _variant_setting(setting, variant)
    batch_size = _check_batch_size(batch_size)
    B, C, H, W = x.shape
    region = _check_int("region", region, lo=1, hi=min(H, W))
    nby, nbx = -(-H // region), -(-W // region)
    max_count = _check_int("max_count", dryrun.iterations(max_count), lo=1, hi=nby * nbx)
    max_radius = _check_int("max_radius", dryrun.iterations(max_radius), lo=1)
    x = x.detach()

    if isinstance(color, str):
        _check_choice("color", color, ("black", "white", "grey", "gray"))
        if setting == "paper":
            val = {"black": 0.0, "white": 1.0}.get(color, 0.5)
            fill = torch.full((B, C, 1, 1), val, dtype=x.dtype, device=x.device)
        else:
            lo, hi = x.flatten(1).amin(1).view(B, 1, 1, 1), x.flatten(1).amax(1).view(B, 1, 1, 1)
            fill = {"black": lo, "white": hi}.get(color, (lo + hi) / 2).expand(B, C, 1, 1)
    else:
        t = torch.as_tensor(color, dtype=x.dtype).flatten()
        if t.numel() not in (1, C) or not bool(((t >= 0) & (t <= 1)).all()):
            raise ValueError(f"color must be 'black', 'white', 'grey', a value in [0, 1] or {C} such values, "
                             f"got {color!r}")
        fill = t.to(x.device).expand(C).reshape(1, C, 1, 1).expand(B, C, 1, 1)

    if attr.dim() == 4:
        reduce = reduce or ("sum_abs" if setting == "paper" else "mean")
        amap = attribution.to_saliency_map(attr, reduce)
    else:
        amap = attr
    padded = F.pad(amap, (0, nbx * region - W, 0, nby * region - H))
    sums = padded.view(B, nby, region, nbx, region).sum((2, 4)).flatten(1)          # regional attribution map
    top = torch.sort(sums, dim=1, descending=True, stable=True).indices[:, :max_count]
    cy = ((top // nbx) * region + region // 2).clamp(max=H - 1)                       # block centres [B, N]
    cx = ((top % nbx) * region + region // 2).clamp(max=W - 1)
    rows = torch.arange(H, device=x.device).view(1, 1, H)
    cols = torch.arange(W, device=x.device).view(1, 1, W)

    if setting == "paper":
        budgets = [(n, r) for n in range(1, max_count + 1) for r in range(1, max_radius + 1)]
    else:
        budgets = [(n, r) for r in range(1, max_radius + 1) for n in range(1, max_count + 1)]
    x_adv, done = x.clone(), torch.zeros(B, dtype=torch.bool, device=x.device)
    cnt = torch.zeros(B, dtype=torch.long, device=x.device)
    rad = torch.zeros(B, dtype=torch.long, device=x.device)
    with _model_mode(model, True), torch.no_grad():
        for i, (n, r) in enumerate(budgets):
            idx = torch.nonzero(~done).flatten()
            if idx.numel() == 0:
                break
            ys_, xs_ = cy[idx, :n].unsqueeze(-1), cx[idx, :n].unsqueeze(-1)
            in_r = ((rows >= ys_ - r) & (rows < ys_ + r)).to(x.dtype)                 # [b, n, H]
            in_c = ((cols >= xs_ - r) & (cols < xs_ + r)).to(x.dtype)                 # [b, n, W]
            mask = (torch.bmm(in_r.transpose(1, 2), in_c) > 0).unsqueeze(1)           # [b, 1, H, W]
            xo = torch.where(mask, fill[idx], x[idx])
            succ = _predict(model, xo, batch_size) != y[idx]
            take = succ | (i == len(budgets) - 1)
            x_adv[idx[take]] = xo[take]
            cnt[idx[succ]], rad[idx[succ]] = n, r
            done[idx[succ]] = True
    return OcclusionResult(x_adv, done, cnt, rad)
