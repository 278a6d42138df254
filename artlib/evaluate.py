r"""Evaluation protocols that several notebooks share: accuracy, PGD robustness, attributional robustness (IN / K under
an attribution attack), gradient-image alignment, CIFAR-10-C accuracy and class-conditional generation.

Each function runs one paper protocol on tensors ``x`` ``[B, C, H, W]`` in ``[0, 1]`` (normalisation is inside the
model) and labels ``y`` ``[B]``, leaves the model's ``training`` flag and its parameters' ``requires_grad`` flags as
it found them, and is deterministic on a CPU for a given ``seed``.

=================================  ===================================================================================
function                           protocol (paper)
=================================  ===================================================================================
:func:`load_images`                ``n`` class-stratified images of a split as tensors
:func:`predict`, :func:`accuracy`  clean predictions / accuracy ("Nat acc", ART Table 1)
:func:`robust_accuracy`            accuracy under PGD (ART Table 1 "PGD-40": l-inf eps 8/255, step 2/255, 40 steps)
:func:`attribution_robustness`     per-sample top-k intersection (IN) and Kendall's tau (K) between the maps of ``x``
                                   and of its attributionally attacked version (ART Table 1 / 4, Figs 11, 12;
                                   IFIA of Ghorbani et al. 2019 with the hyperparameters of ART A.3.5)
:func:`summarize_robustness`       the table entries (mean IN / K in percent, as ART prints them)
:func:`gradient_image_cosine`      per-sample cos(x, grad_x f_y(x)) (ART Fig. 6, Eq. 5's alignment)
:func:`corruption_accuracy`        accuracy per CIFAR-10-C corruption and severity (ART Table 3)
:func:`generate_class_conditional` class-conditional generation with a robust classifier (Santurkar et al. 2019;
                                   ART Fig. 4)
=================================  ===================================================================================

Sec. 5 and appendix protocols: :func:`targeted_attribution_robustness` (Dombrowski et al.'s targeted attack, IN / K
against :func:`derangement`-shuffled target maps; Fig. 10), :func:`attack_accuracy` (white-box accuracy under any
attack: PGD-100/500, SPSA, l2, spatial), :func:`accuracy_vs_eps` (Fig. 14), :func:`transfer_matrix` (Table 6),
:func:`robustness_report` (one Table 1 / 5 row) and :func:`attribution_robustness_vs_eps` (Fig. 12).

Example::

    >>> from artlib import evaluate, reproduce
    >>> model, _ = reproduce.get_model("smoke", "cifar10", "art")
    >>> x, y = evaluate.load_images("cifar10", 64)
    >>> evaluate.accuracy(model, x, y), evaluate.robust_accuracy(model, x, y)          # Nat acc, PGD-40 acc
    >>> df = evaluate.attribution_robustness(model, x, y, k=100, eps=8/255, step_size=1/255, steps=50)
    >>> evaluate.summarize_robustness(df)                                               # {"IN (%)": .., "K (%)": ..}
"""
from __future__ import annotations

import contextlib
import math
import numbers
from typing import Dict, NamedTuple, Optional, Sequence, Union

import numpy as np
import torch
import torch.nn as nn

from artlib import dryrun

__all__ = ["MAP_METHODS", "method_label", "with_paper_values", "load_images", "image_index", "predict", "accuracy", "robust_accuracy", "attribution_robustness",
           "summarize_robustness", "attribution_maps", "gradient_image_cosine", "corruption_accuracy",
           "GenerationResult", "class_seed_sampler", "generate_class_conditional",
           "derangement", "targeted_attribution_robustness", "attack_accuracy", "accuracy_vs_eps", "transfer_matrix",
           "robustness_report", "attribution_robustness_vs_eps"]

#: attribution maps :func:`attribution_robustness` can attack and measure (ART Table 1: ``ig``; Table 4:
#: ``saliency`` = the paper's "Gradient [56]", ``gradshap`` = "GradSHAP [34]")
MAP_METHODS = ("ig", "saliency", "gradshap")


# ----------------------------------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------------------------------
@contextlib.contextmanager
def _eval(model: nn.Module):
    """Eval mode for the block; every module's own ``training`` flag is restored afterwards (also on error)."""
    flags = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for m, flag in flags:
            m.training = flag


def _check_xy(x, y) -> torch.Tensor:
    if not isinstance(x, torch.Tensor) or x.dim() != 4 or not x.is_floating_point():
        raise ValueError(f"x must be a float tensor [B, C, H, W], got "
                         f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}")
    if x.numel() and not (0.0 <= float(x.min()) and float(x.max()) <= 1.0):
        raise ValueError(f"x must hold images in [0, 1], got values in [{float(x.min()):.4g}, {float(x.max()):.4g}]")
    if not isinstance(y, torch.Tensor) or y.is_floating_point() or y.dim() != 1 or y.shape[0] != x.shape[0]:
        raise ValueError(f"y must be an integer tensor [B] with B = {x.shape[0]}, got "
                         f"{(y.dtype, tuple(y.shape)) if isinstance(y, torch.Tensor) else type(y).__name__}")
    return y.to(device=x.device, dtype=torch.long)


def _chunks(n: int, size: Optional[int]):
    size = n if not size else size
    for s in range(0, n, size):
        yield slice(s, min(n, s + size))


def _check_k(k, x: torch.Tensor) -> None:
    """``k`` (pixels of the top-k region) must be an int in ``[1, H * W]``."""
    H, W = x.shape[-2:]
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= H * W:
        raise ValueError(f"k must be an int in [1, {H * W}] (pixels per map), got {k!r}")


def _attacked_index(model: nn.Module, x: torch.Tensor, y: torch.Tensor, only_correct: bool,
                    n_attacked: Optional[int] = None) -> torch.Tensor:
    """Positions of the images an attribution attack runs on: all, or the correctly classified ones; the first
    ``n_attacked`` of those when given (a positive int)."""
    if n_attacked is not None and (isinstance(n_attacked, bool) or not isinstance(n_attacked, int) or n_attacked < 1):
        raise ValueError(f"n_attacked must be a positive int or None, got {n_attacked!r}")
    idx = torch.arange(x.shape[0])
    idx = idx[predict(model, x) == y.cpu()] if only_correct else idx
    return idx if n_attacked is None else idx[:n_attacked]


def _device(model: nn.Module) -> torch.device:
    p = next(iter(model.parameters()), None)
    return p.device if p is not None else torch.device("cpu")


# ----------------------------------------------------------------------------------------------------------------------
# reporting: the papers' row names and values beside the reproduced ones
# ----------------------------------------------------------------------------------------------------------------------
_LABELS = {"natural": "Natural", "art": "ART", "ig_norm": "IG-NORM", "ig_sum_norm": "IG-SUM-NORM",
           "art_pgd": "ART+PGD", "pgd_cutout": "PGD+Cutout"}


def method_label(method: str, dataset: str = "cifar10") -> str:
    """The row name ART's tables print for a training ``method`` of :data:`artlib.train.METHODS`: ``"Natural"``,
    ``"ART"``, ``"IG-NORM"``, ``"IG-SUM-NORM"``, and ``"PGD-n"`` with the paper's ``n`` for the dataset (ART A.3:
    PGD-10 on CIFAR-10, PGD-7 on SVHN, GTSRB, Flowers) — the paper's name even when a smoke model used fewer steps.

    Example::

        >>> method_label("pgd", "gtsrb")
        'PGD-7'
    """
    from artlib import train
    if method not in train.METHODS:
        raise ValueError(f"unknown method {method!r}; choices: {', '.join(train.METHODS)}")
    if method == "pgd":
        return f"PGD-{train.paper_settings(dataset, 'pgd')['steps']}" if dataset in ("cifar10", "svhn", "gtsrb",
                                                                                       "flowers17", "cub200") \
            else "PGD"
    return _LABELS.get(method, method)


def with_paper_values(df, table_id: str, columns: Sequence[str], keys: Union[Sequence[str], Dict[str, str]] =
                      ("dataset", "method"), paper: str = "art", prefix: str = "paper "):
    """``df`` with one ``"paper <column>"`` column per paper metric, looked up row by row with
    :func:`artlib.paper_numbers.paper_value` (NaN where the paper has no such row or value).

    Args:
        df (pandas.DataFrame): reproduced rows.
        table_id (str): e.g. ``"table1"``; columns (sequence of str): paper columns, e.g. ``["IN (%)", "K (%)"]``.
        keys: ``df`` columns that identify the paper row (a sequence of names used as identifier keys, or a dict
            ``{df column: identifier key}``). Default ``("dataset", "method")``.
        paper (str): ``"art"`` or ``"inequality"``. prefix (str): name prefix of the added columns.

    Returns:
        A new DataFrame.

    Example::

        >>> with_paper_values(pd.DataFrame({"dataset": ["cifar10"], "method": ["ART"]}), "table1", ["IN (%)"])
    """
    from artlib import paper_numbers
    keys = dict(keys) if isinstance(keys, dict) else {k: k for k in keys}
    out = df.copy()
    for col in columns:
        vals = []
        for _, row in df.iterrows():
            try:
                v = paper_numbers.paper_value(paper, table_id, col, **{idk: row[c] for c, idk in keys.items()})
            except ValueError:
                v = None
            vals.append(math.nan if v is None else v)
        out[prefix + col] = vals
    return out


# ----------------------------------------------------------------------------------------------------------------------
# data and accuracy
# ----------------------------------------------------------------------------------------------------------------------
def load_images(dataset: str, n: Optional[int], split: str = "test", root=None, **options):
    """``n`` images of a split as tensors: a deterministic class-stratified pick (``artlib.data.subset_dataset``), the
    same images for every notebook that asks for the same ``(dataset, n, split)``.

    A split that holds fewer than ``n`` images gives all of them (e.g. a fresh machine's 20 foolbox test images):
    ``len(y)`` is the number actually evaluated.

    Args:
        dataset (str): a name of :data:`artlib.data.DATASETS` (``"cifar10"``, ``"gtsrb"``, ``"flowers17"``, ...).
        n (int or None): number of images, at most (None: the whole split — mind the memory).
        split (str): default ``"test"``.
        root: data root (default ``$ARTLIB_DATA``).
        **options: loader options of :func:`artlib.data.load_dataset` (e.g. cifar10c ``corruption``, ``severity``).

    Returns:
        ``(x, y)``: ``x`` float ``[n, C, H, W]`` in ``[0, 1]``, ``y`` long ``[n]``.

    Example::

        >>> x, y = load_images("cifar10", 100)          # 10 test images per class
    """
    from artlib import data
    ds = data.load_dataset(dataset, split, root=root, **options)
    whole = isinstance(n, numbers.Integral) and not isinstance(n, bool) and n >= len(ds)
    if n is not None and not whole:  # (subset_dataset rejects a bad n: 0, negative, a bool, a string)
        ds = data.subset_dataset(ds, n)
    items = [ds[i] for i in range(len(ds))]
    return torch.stack([it[0] for it in items]), torch.tensor([int(it[1]) for it in items], dtype=torch.long)


@torch.no_grad()
def image_index(dataset: str, n: Optional[int], split: str = "test", root=None) -> np.ndarray:
    """The positions in the split of the images :func:`load_images` returns for ``(dataset, n, split)``, in the same
    order (e.g. to look up a zoo model's recorded per-image accuracy, :func:`artlib.zoo.recorded_accuracy`).

    Example::

        >>> image_index("cifar10", 20)[:3]
        array([0, 1, 2])
    """
    from artlib import data
    ds = data.load_dataset(dataset, split, root=root)
    whole = isinstance(n, numbers.Integral) and not isinstance(n, bool) and n >= len(ds)
    if n is None or whole:
        return np.arange(len(ds))
    return np.asarray(data.subset_dataset(ds, n).indices, dtype=np.int64)


def predict(model: nn.Module, x: torch.Tensor, batch_size: Optional[int] = 256) -> torch.Tensor:
    """Predicted labels ``[B]`` of ``model`` (eval mode, restored) on ``x``, ``batch_size`` images per pass."""
    if not isinstance(x, torch.Tensor) or x.dim() != 4:
        raise ValueError(f"x must be a tensor [B, C, H, W], got "
                         f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}")
    dev = _device(model)
    with _eval(model):
        return torch.cat([model(x[s].to(dev)).argmax(1).cpu() for s in _chunks(x.shape[0], batch_size)]) \
            if x.shape[0] else torch.empty(0, dtype=torch.long)


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: Optional[int] = 256) -> float:
    """Clean top-1 accuracy (fraction in ``[0, 1]``) of ``model`` on ``(x, y)`` (ART Table 1 "Nat acc").

    Example::

        >>> accuracy(model, x, y)
        0.42
    """
    y = _check_xy(x, y)
    if x.shape[0] == 0:
        raise ValueError("accuracy of an empty batch is undefined")
    return float((predict(model, x, batch_size) == y.cpu()).float().mean())


def robust_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float = 8 / 255,
                    step_size: float = 2 / 255, steps: int = 40, norm: str = "linf", random_start: bool = True,
                    seed: Optional[int] = 0, batch_size: Optional[int] = 256, return_adv: bool = False):
    """Accuracy under PGD (Madry et al. 2018) with :func:`artlib.attacks.pgd`: ART Table 1's "PGD-40" is l-inf,
    ``eps=8/255``, ``step_size=2/255``, 40 steps, cross-entropy, random start (A.3: "40 step PGD attack using
    cross-entropy loss with l-inf bound of 8/255"; the step 2/255 is the authors' code's check, see
    ``papers/art_official_code_facts.md``); Sec. 4: PGD-100 / PGD-500 and l2 ``eps=1.0``.

    Args:
        model (nn.Module): classifier on ``[0, 1]`` images.
        x (Tensor): ``[B, C, H, W]`` in ``[0, 1]``; y (Tensor): labels ``[B]``.
        eps, step_size, steps, norm, random_start: as :func:`artlib.attacks.pgd`. Defaults: PGD-40 above.
        seed (int, optional): random-start seed; chunk ``i`` of ``batch_size`` images uses ``seed + i *
            batch_size``, so a result is reproducible for a given ``(seed, batch_size)``. Default 0.
        batch_size (int, optional): images per attack pass. Default 256.
        return_adv (bool): also return the adversarial images. Default False.

    Returns:
        float accuracy in ``[0, 1]`` (and ``x_adv`` ``[B, C, H, W]`` if ``return_adv``).

    Example::

        >>> robust_accuracy(model, x, y)                       # PGD-40, l-inf 8/255
        >>> robust_accuracy(model, x, y, eps=1.0, step_size=0.25, norm="l2")
    """
    from artlib import attacks
    y = _check_xy(x, y)
    if x.shape[0] == 0:
        raise ValueError("robust accuracy of an empty batch is undefined")
    dev = _device(model)
    advs = [attacks.pgd(model, x[s].to(dev), y[s].to(dev), eps, step_size, steps, norm=norm,
                        random_start=random_start, seed=None if seed is None else seed + s.start).cpu()
            for s in _chunks(x.shape[0], batch_size)]
    x_adv = torch.cat(advs)
    acc = float((predict(model, x_adv, batch_size) == y.cpu()).float().mean())
    return (acc, x_adv) if return_adv else acc


# ----------------------------------------------------------------------------------------------------------------------
# attribution maps and attributional robustness
# ----------------------------------------------------------------------------------------------------------------------
def _gradshap_alphas(n_samples: int, seed: int, dtype) -> torch.Tensor:
    return torch.rand(n_samples, generator=torch.Generator().manual_seed(int(seed)), dtype=dtype)


def attribution_maps(model: nn.Module, x: torch.Tensor, y: torch.Tensor, map_method: str = "ig", *,
                     n_steps_ig: int = 100, n_samples: int = 10, seed: int = 0, differentiable: bool = False,
                     beta: Optional[float] = None) -> torch.Tensor:
    r"""The saliency maps ``[B, H*W]`` the attributional-robustness protocol compares: ``sum_c |a_c|`` of the
    attribution ``a`` of the ``y`` logit, normalised to sum ``H*W`` (Ghorbani et al. 2019, RAR, ART A.3.5).

    * ``"ig"``: Integrated Gradients, zero baseline, right Riemann rule on ``n_steps_ig`` points (as
      :func:`artlib.attacks.ifia` measures it).
    * ``"saliency"``: the input gradient ``\partial f_y / \partial x`` (ART Table 4 "Gradient [56]").
    * ``"gradshap"``: GradientSHAP with the zero (black) baseline and no input noise, which reduces to
      ``x * mean_i \nabla f_y(\alpha_i x)``; the ``n_samples`` path positions ``\alpha_i ~ U(0, 1)`` are drawn once
      from ``seed`` and shared by all images (so the maps of ``x`` and of its perturbed copy use the same draws and
      differ only through the image).

    Args:
        model (nn.Module): classifier; x (Tensor): ``[B, C, H, W]``; y (Tensor): ``[B]`` classes.
        map_method (str): one of :data:`MAP_METHODS`.
        n_steps_ig (int): IG points. Default 100. n_samples (int): GradSHAP draws. Default 10 (CIFAR, captum-style).
        seed (int): GradSHAP draws. Default 0.
        differentiable (bool): keep the graph (``x`` must require grad) for an attack. Default False.
        beta (float, optional): compute through ``Softplus(beta)`` instead of ReLU (attack gradients). Default None.

    Returns:
        Tensor ``[B, H*W]`` (non-negative, each row summing to ``H*W`` unless all zero).
    """
    from artlib import attribution, losses
    if map_method not in MAP_METHODS:
        raise ValueError(f"unknown map_method {map_method!r}; choose one of {list(MAP_METHODS)}")
    if map_method == "ig":
        attr = attribution.attribute(model, x, y, "ig", n_steps=n_steps_ig, ig_method="riemann_right",
                                     differentiable=differentiable, beta=beta)
    elif map_method == "saliency":
        attr = attribution.attribute(model, x, y, "saliency", differentiable=differentiable, beta=beta)
    else:
        n_samples = dryrun.iterations(n_samples)
        alphas = _gradshap_alphas(n_samples, seed, x.dtype).to(x.device)
        with losses.smooth_model(model, beta), _eval(model), torch.enable_grad():
            z = x if x.requires_grad else x.detach().requires_grad_(True)
            pts = (alphas.view(-1, 1, 1, 1, 1) * z.unsqueeze(0)).reshape(-1, *z.shape[1:])
            out = model(pts).gather(1, y.repeat(n_samples).view(-1, 1)).sum()
            (g,) = torch.autograd.grad(out, pts, create_graph=differentiable)
            attr = z * g.view(n_samples, *z.shape).mean(0)
        if not differentiable:
            attr = attr.detach()
    return attribution.to_saliency_map(attr, "sum_abs", normalize=True).flatten(1)


def _topk_map_attack(model, x, y, map_method, k, eps, step_size, steps, beta, n_steps_ig, n_samples, seed):
    """Ghorbani et al.'s top-k attack on a non-IG map, the same steps as :func:`artlib.attacks.ifia` with
    ``setting="paper"`` (no random start; signed descent of the map's mass on the clean top-k pixels, gradient
    through Softplus(beta); label-preserving iterate with the lowest top-k intersection, the clean image counting as
    1). Returns ``(intersection, kendall, success, step)`` per sample."""
    from artlib import metrics
    kw = dict(n_steps_ig=n_steps_ig, n_samples=n_samples, seed=seed)
    pred0 = predict(model, x, None).to(x.device)
    m0 = attribution_maps(model, x, y, map_method, **kw)
    top = torch.sort(m0, dim=1, descending=True, stable=True).indices[:, :k]
    S = torch.zeros_like(m0).scatter_(1, top, 1.0)                 # the clean top-k pixels, fixed
    best_c, best_m = torch.ones(x.shape[0], dtype=x.dtype, device=x.device), m0
    best_step = torch.full((x.shape[0],), -1, dtype=torch.long, device=x.device)
    x_adv = x.clone()
    for t in range(dryrun.iterations(steps)):
        z = x_adv.detach().requires_grad_(True)
        s = attribution_maps(model, z, y, map_method, differentiable=True, beta=beta, **kw)
        obj = (s * S).sum()
        (g,) = torch.autograd.grad(obj, z, allow_unused=True) if obj.requires_grad else (None,)
        g = torch.zeros_like(z) if g is None else g                  # a map that does not depend on x
        with torch.no_grad():
            x_adv = torch.min(torch.max(x_adv - step_size * g.sign(), x - eps), x + eps).clamp(0, 1)
        m = attribution_maps(model, x_adv, y, map_method, **kw)
        ok = predict(model, x_adv, None).to(x.device) == pred0
        c = torch.where(ok, metrics.topk_intersection(m0, m, k).to(x.dtype), torch.full_like(best_c, math.inf))
        better = c < best_c
        best_m = torch.where(better.view(-1, 1), m, best_m)
        best_c = torch.where(better, c, best_c)
        best_step = torch.where(better, torch.full_like(best_step, t + 1), best_step)
    return metrics.topk_intersection(m0, best_m, k), metrics.kendall_tau(m0, best_m), best_step >= 0, best_step


def attribution_robustness(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, map_method: str = "ig",
                           attack: str = "ifia", k: int = 100, eps: float = 8 / 255, step_size: float = 1 / 255,
                           steps: int = 50, n_steps_ig: int = 100, n_samples: int = 10, beta: Optional[float] = 50.0,
                           only_correct: bool = True, n_attacked: Optional[int] = None, seed: int = 0,
                           batch_size: Optional[int] = None, progress: bool = False, **attack_kw):
    r"""Attributional robustness of ``model`` per sample: top-k intersection (IN) and Kendall's tau (K) between the
    saliency map of each image and of its attacked copy (ART Sec. 4.1.3, A.3.5; Table 1, Table 4, Figs 11-12).

    ART A.3.5: "the Top-K variant of Iterative Feature Importance Attack (IFIA) proposed by [19]. Feature importance
    function is taken as Integrated Gradients [...]. The hyperparameters used are the same as in [13] i.e. for
    CIFAR-10, SVHN and GTSRB datasets, k in top-k is 100, eps is 8/255, number of steps is 50 and step-size is 1/255.
    For the Flowers dataset, k is 1000, eps is 8/255, number of steps is 100". Only correctly classified images are
    attacked (``only_correct``, as RAR and the authors' ``eval_model.py``), and the table reports the mean over them.

    * ``map_method="ig"`` runs :func:`artlib.attacks.ifia` (its ``setting="paper"`` default, or ``"official"`` for
      the authors' evaluation: pass ``setting="official"`` in ``attack_kw``; ``measure`` likewise).
    * ``"saliency"`` / ``"gradshap"`` (ART Table 4): the same top-k attack with the gradient / GradSHAP map as the
      feature-importance function (:func:`attribution_maps`; gradient of the attack through ``Softplus(beta)``,
      measured on the ReLU model, label-preserving iterate with the lowest top-k intersection).

    Args:
        model (nn.Module): ReLU classifier on ``[0, 1]`` images.
        x (Tensor): ``[B, C, H, W]`` in ``[0, 1]``; y (Tensor): labels ``[B]`` (the class whose map is attacked).
        map_method (str): one of :data:`MAP_METHODS`. Default ``"ig"``.
        attack (str): ``"ifia"`` (the only attack of these tables). Default ``"ifia"``.
        k (int): top-k size of the attack and of IN (100; Flowers 1000).
        eps (float), step_size (float), steps (int): l-inf budget, signed step and iterations (8/255, 1/255, 50).
        n_steps_ig (int): IG points (100). n_samples (int): GradSHAP draws (10).
        beta (float or None): Softplus beta of the attack gradient (ART: 50).
        only_correct (bool): attack only the correctly classified images. Default True.
        n_attacked (int, optional): attack only the first ``n_attacked`` qualifying images of ``x`` (a fixed count
            per table cell whatever the model's accuracy: pass a pool large enough, e.g. class-stratified test
            images, and read ``len(df)`` for what it held). Default None: every qualifying image.
        seed (int): random starts (``setting="official"``) and GradSHAP draws. Default 0.
        batch_size (int, optional): images per attack pass (results do not depend on it). Default None: on a CPU
            ``320 // n_points`` images (``n_points`` = IG points, GradSHAP draws, 1 for the gradient; 16 at 20 IG
            points: measured on the 2-core CI CPU with small-cnn, 64 images x 5 steps x 20 points, 25 s at 16 per
            pass against 40 s at 64), on a GPU :func:`artlib.attacks.auto_batch_size`.
        progress (bool): tqdm over the passes. Default False.
        **attack_kw: passed to :func:`artlib.attacks.ifia` (``setting``, ``measure``, ``random_start``, ...).

    Returns:
        pandas.DataFrame, one row per attacked image: ``index`` (position in ``x``), ``label``, ``IN`` and ``K``
        (fractions; IN in ``[0, 1]``, K in ``[-1, 1]``), ``success`` (a label-preserving iterate was kept) and
        ``step``. Empty (same columns) when no image qualifies.

    Example::

        >>> df = attribution_robustness(model, x, y, k=100, eps=8/255, step_size=1/255, steps=50)  # ART A.3.5
        >>> summarize_robustness(df)
    """
    import pandas as pd
    from artlib import attacks

    y = _check_xy(x, y)
    if map_method not in MAP_METHODS:
        raise ValueError(f"unknown map_method {map_method!r}; choose one of {list(MAP_METHODS)}")
    if attack != "ifia":
        raise ValueError(f"unknown attack {attack!r}; choose one of ['ifia']")
    if map_method != "ig" and attack_kw:
        raise ValueError(f"options {sorted(attack_kw)} apply to map_method='ig' (artlib.attacks.ifia) only")
    _check_k(k, x)
    dev = _device(model)
    idx = _attacked_index(model, x, y, only_correct, n_attacked)
    cols = ["index", "label", "IN", "K", "success", "step"]
    if idx.numel() == 0:
        return pd.DataFrame({c: pd.Series(dtype=float if c in ("IN", "K") else int) for c in cols})
    xs, ys = x[idx].to(dev), y[idx].to(dev)
    if batch_size is None:
        n_pts = n_steps_ig if map_method == "ig" else (n_samples if map_method == "gradshap" else 1)
        with _eval(model):
            batch_size = max(1, 320 // n_pts) if dev.type == "cpu" else attacks.auto_batch_size(dev, n_pts, model, xs)
    parts = []
    chunks = list(_chunks(len(idx), batch_size))
    if progress:
        from tqdm.auto import tqdm
        chunks = tqdm(chunks, desc=f"{attack} ({map_method})", leave=False)
    with _eval(model):
        for s in chunks:
            if map_method == "ig":
                seeds = [seed * 1_000_003 + int(i) for i in idx[s]]
                r = attacks.ifia(model, xs[s], ys[s], k, eps, step_size, steps, beta=beta, n_steps_ig=n_steps_ig,
                                 seed=seeds, batch_size=batch_size, **attack_kw)
                parts.append((r.intersection, r.kendall, r.success, r.step))
            else:
                parts.append(_topk_map_attack(model, xs[s], ys[s], map_method, k, eps, step_size, steps, beta,
                                              n_steps_ig, n_samples, seed))
    IN, K, ok, step = (torch.cat(t).cpu() for t in zip(*parts))
    return pd.DataFrame({"index": idx.numpy(), "label": y.cpu()[idx].numpy(), "IN": IN.double().numpy(),
                         "K": K.double().numpy(), "success": ok.numpy(), "step": step.numpy()})


def summarize_robustness(df, setting: str = "paper") -> Dict[str, float]:
    """The table entries of :func:`attribution_robustness`'s output: ``{"IN (%)", "K (%)", "n", "skipped"}`` (means
    in percent, as ART Table 1 prints them; NaN when no row counts).

    Args:
        df: :func:`attribution_robustness`'s frame.
        setting: the IFIA setting that produced it. ``"paper"`` (Ghorbani et al. / RAR): an image whose attack found
            no label-preserving iterate keeps its clean map (IN = K = 1) and is averaged in. ``"official"`` (the ART
            authors' ``eval_model.py``): such images are skipped, i.e. dropped from the means and counted in
            ``skipped``.

    Example::

        >>> summarize_robustness(df)
        {'IN (%)': 61.2, 'K (%)': 55.0, 'n': 64, 'skipped': 0}
    """
    from artlib import attacks
    if setting not in attacks.IFIA_SETTINGS:
        raise ValueError(f"unknown setting {setting!r}; choices: {list(attacks.IFIA_SETTINGS)}")
    skipped = 0
    if setting == "official" and len(df) and "success" in df:
        kept = df["success"].astype(bool)
        skipped = int((~kept).sum())
        df = df[kept]
    n = int(len(df))
    return {"IN (%)": float(100 * df["IN"].mean()) if n else math.nan,
            "K (%)": float(100 * df["K"].mean()) if n else math.nan, "n": n, "skipped": skipped}


def gradient_image_cosine(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                          batch_size: Optional[int] = 256) -> torch.Tensor:
    r"""Per-sample ``cos(x, \nabla_x f_y(x))`` over all ``C*H*W`` entries, in pixel space, through the ReLU model in
    eval mode (ART Fig. 6: "Cosine between x and grad_x f(x)_y for different models over test-set of CIFAR-10";
    the alignment that Eq. 5 trains for).

    Returns:
        Tensor[B] in ``[-1, 1]`` (CPU).

    Example::

        >>> gradient_image_cosine(model, x, y).mean()
    """
    from artlib import attribution, metrics
    y = _check_xy(x, y)
    dev = _device(model)
    out = []
    for s in _chunks(x.shape[0], batch_size):
        xs = x[s].to(dev)
        g = attribution.attribute(model, xs, y[s].to(dev), "saliency")
        out.append(metrics.grad_image_cosine(g, xs).cpu())
    return torch.cat(out) if out else torch.empty(0)


# ----------------------------------------------------------------------------------------------------------------------
# CIFAR-10-C
# ----------------------------------------------------------------------------------------------------------------------
def corruption_accuracy(models: Union[nn.Module, Dict[str, nn.Module]], n: int = 200,
                        corruptions: Optional[Sequence[str]] = None, severities: Sequence[int] = (1, 2, 3, 4, 5), *,
                        root=None, seed: int = 0, regenerate: Optional[bool] = None, skip_missing: bool = True,
                        batch_size: int = 256):
    """Top-1 accuracy on CIFAR-10-C (Hendrycks & Dietterich, ICLR 2019) per corruption and severity (ART Table 3:
    "mean accuracy over severity levels for all 15 types of perturbations").

    Reads the released ``CIFAR-10-C/<corruption>.npy`` files when the data root has them, else regenerates the 15
    standard corruptions from the CIFAR-10 test images there (``artlib.data.CIFAR10C``; column ``source`` says
    which). The same ``n`` class-stratified test images are corrupted once and shared by all models. ART Table 3's
    columns include ``speckle_noise`` (one of CIFAR-10-C's four extra corruptions) instead of ``frost``: the extras
    are only read from the released files, never regenerated; with ``skip_missing`` such a corruption gives a row
    with NaN accuracy and ``source="missing"`` instead of an error.

    Args:
        models (nn.Module or dict name -> nn.Module): the classifiers.
        n (int): test images per (corruption, severity) block, class-stratified (at most: a smaller test set gives
            all its images). Default 200.
        corruptions (sequence of str, optional): default the 15 of :data:`artlib.corruptions.CORRUPTIONS`.
        severities (sequence of int): default 1..5.
        root: data root. seed (int): noise of the regenerated corruptions. regenerate: see ``CIFAR10C``.
        skip_missing (bool): NaN rows for corruptions that cannot be read or regenerated. Default True.
        batch_size (int): images per forward pass.

    Returns:
        pandas.DataFrame with columns ``model``, ``corruption``, ``severity``, ``accuracy`` (fraction), ``n``,
        ``source``.

    Example::

        >>> df = corruption_accuracy({"ART": art, "PGD": pgd}, n=100)
        >>> df.groupby(["model", "corruption"]).accuracy.mean().unstack(0)        # ART Table 3 layout
    """
    import pandas as pd
    from artlib import corruptions as C
    from artlib import data

    if isinstance(models, nn.Module):
        models = {"model": models}
    if not isinstance(models, dict) or not models:
        raise ValueError("models must be an nn.Module or a non-empty dict of name -> nn.Module")
    names = list(C.CORRUPTIONS) if corruptions is None else list(corruptions)
    sevs = [int(s) for s in severities]
    # One dataset for all standard corruptions (its set-up lists the clean test set once), one per extra corruption
    # (read-only: a missing file fails at once).
    groups = [[c for c in names if c in C.CORRUPTIONS]] + [[c] for c in names if c not in C.CORRUPTIONS]
    found = {}
    for group in [g for g in groups if g]:
        try:
            ds = data.load_dataset("cifar10c", "test", root=root, corruption=group, severity=sevs, seed=seed,
                                   regenerate=regenerate)
        except data.DatasetNotFoundError:
            if not skip_missing:
                raise
            continue
        N, n = ds.n, dryrun.images(n)
        # (a test set smaller than n, e.g. the 20 foolbox images: all of it)
        pick = data.subset_dataset(_Labels(ds.targets[:N]), n).indices if n is not None and n < N else list(range(N))
        for ci, c in enumerate(group):
            for si, s in enumerate(sevs):
                items = [ds[(ci * len(sevs) + si) * N + j] for j in pick]
                x = torch.stack([it[0] for it in items])
                y = torch.tensor([int(it[1]) for it in items])
                found[c, s] = [dict(model=m, corruption=c, severity=s, accuracy=accuracy(model, x, y, batch_size),
                                    n=len(y), source=ds.source) for m, model in models.items()]
    rows = []
    for c in names:
        for s in sevs:
            rows += found.get((c, s)) or [dict(model=m, corruption=c, severity=s, accuracy=math.nan, n=0,
                                               source="missing") for m in models]
    return pd.DataFrame(rows, columns=["model", "corruption", "severity", "accuracy", "n", "source"])


class _Labels:
    """Just ``targets`` and a length, for :func:`artlib.data.subset_dataset`'s stratified pick."""

    def __init__(self, targets):
        self.targets = list(targets)

    def __len__(self):
        return len(self.targets)


# ----------------------------------------------------------------------------------------------------------------------
# Class-conditional generation (Santurkar et al. 2019)
# ----------------------------------------------------------------------------------------------------------------------
class GenerationResult(NamedTuple):
    """Result of :func:`generate_class_conditional`.

    Attributes:
        seeds (Tensor[N, C, H, W]): the starting images drawn from the class-conditional Gaussians (clamped to [0, 1]).
        images (Tensor[N, C, H, W]): the generated images.
        labels (Tensor[N]): the class each image was generated for.
        pred_seed (Tensor[N]), pred (Tensor[N]): the model's predictions on the seeds and on the images.
    """
    seeds: torch.Tensor
    images: torch.Tensor
    labels: torch.Tensor
    pred_seed: torch.Tensor
    pred: torch.Tensor


def class_seed_sampler(x: torch.Tensor, y: torch.Tensor, classes: Sequence[int], n_per_class: int,
                       seed: int = 0) -> tuple:
    r"""Draw ``n_per_class`` seeds per class from ``N(\mu_y, \Sigma_y)``, the Gaussian fitted to the images of class
    ``y`` (Santurkar et al. 2019, Sec. 3 "Generation": "a multivariate normal distribution fitted to the empirical
    class-conditional distribution"), clamped to ``[0, 1]``.

    Sampling uses the empirical covariance exactly without decomposing it: ``\mu + X_c^T z / \sqrt{m - 1}`` with
    ``X_c`` the ``m`` centred images of the class and ``z ~ N(0, I_m)`` (Santurkar et al. downsample ImageNet to 32x32
    first to make the covariance tractable; at 32x32 none is needed).

    Returns:
        ``(seeds [len(classes) * n_per_class, C, H, W], labels [..])``.
    """
    gen = torch.Generator().manual_seed(int(seed))
    seeds, labels = [], []
    for c in classes:
        xc = x[y == c].double().flatten(1)
        m = xc.shape[0]
        if m < 2:
            raise ValueError(f"class {c} has {m} image(s); fitting a Gaussian needs at least 2")
        mu = xc.mean(0)
        z = torch.randn(n_per_class, m, generator=gen, dtype=torch.float64)
        s = mu + z @ (xc - mu) / math.sqrt(m - 1)
        seeds.append(s.view(n_per_class, *x.shape[1:]).clamp(0, 1).to(x.dtype))
        labels.append(torch.full((n_per_class,), int(c), dtype=torch.long))
    return torch.cat(seeds), torch.cat(labels)


def generate_class_conditional(model: nn.Module, x_train: torch.Tensor, y_train: torch.Tensor,
                               classes: Optional[Sequence[int]] = None, n_per_class: int = 1, *, eps: float = 30.0,
                               step_size: float = 0.5, steps: int = 60, seed: int = 0,
                               batch_size: Optional[int] = 256) -> GenerationResult:
    r"""Class-conditional image generation with a (robust) classifier (Santurkar et al., "Image Synthesis with a
    Single (Robust) Classifier", NeurIPS 2019, Sec. 3; ART Fig. 4 with an ART model).

    Each seed ``x_0`` is drawn from the class-conditional Gaussian of its class (:func:`class_seed_sampler`), then
    ``x = argmin_{||x - x_0||_2 <= eps} L_CE(f(x), y)`` by targeted l2 PGD (:func:`artlib.attacks.pgd`, normalised
    gradient steps, projection onto the ball and ``[0, 1]``, no random start), i.e. the class score of ``y`` is
    maximised near the seed. Santurkar et al.'s CIFAR-10 generation settings (their appendix, Table of attack
    parameters): l2 ``eps=30``, step 0.5, 60 steps — the defaults here.

    Args:
        model (nn.Module): classifier on ``[0, 1]`` images.
        x_train (Tensor), y_train (Tensor): images ``[M, C, H, W]`` and labels ``[M]`` the Gaussians are fitted to.
        classes (sequence of int, optional): classes to generate. Default every class present in ``y_train``.
        n_per_class (int): images per class. Default 1.
        eps (float), step_size (float), steps (int): the l2 PGD (30, 0.5, 60).
        seed (int): seed draws. Default 0.
        batch_size (int, optional): images per PGD pass.

    Returns:
        :class:`GenerationResult` ``(seeds, images, labels, pred_seed, pred)``, class-major.

    Example::

        >>> res = generate_class_conditional(model, x_train, y_train, n_per_class=4)
        >>> (res.pred == res.labels).float().mean()        # how often the target class was reached
    """
    from artlib import attacks
    y_train = _check_xy(x_train, y_train)
    if isinstance(n_per_class, bool) or not isinstance(n_per_class, int) or n_per_class < 1:
        raise ValueError(f"n_per_class must be a positive int, got {n_per_class!r}")
    classes = sorted(set(y_train.tolist())) if classes is None else [int(c) for c in classes]
    seeds, labels = class_seed_sampler(x_train.cpu(), y_train.cpu(), classes, n_per_class, seed)
    dev = _device(model)
    images = torch.cat([attacks.pgd(model, seeds[s].to(dev), labels[s].to(dev), eps, step_size, steps, norm="l2",
                                    random_start=False, targeted=True).cpu()
                        for s in _chunks(seeds.shape[0], batch_size)])
    return GenerationResult(seeds, images, labels, predict(model, seeds, batch_size), predict(model, images, batch_size))


# ----------------------------------------------------------------------------------------------------------------------
# ART Sec. 5 and appendix C: targeted attribution attack, stronger / gradient-free / spatial attacks, accuracy vs eps
# (Fig. 14), transfer attacks (Table 6). Used by notebooks 08 and 09.
# ----------------------------------------------------------------------------------------------------------------------


def derangement(n: int, seed: int = 0) -> torch.Tensor:
    """A random permutation of ``range(n)`` with no fixed point: ``perm[i] != i`` for every ``i`` (``n >= 2``).

    ART Sec. 5 obtains the target attribution maps by "randomly shuffl[ing] the examples"; a derangement makes sure
    no image is its own target. Built as the cyclic successor along a random order (``perm[order[j]] =
    order[j + 1 mod n]``), drawn from a private CPU generator (the global RNG is untouched).

    Example::

        >>> derangement(4, seed=0)      # e.g. tensor([2, 3, 1, 0])
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 2:
        raise ValueError(f"n must be an int >= 2 (a single image cannot be given another image's map), got {n!r}")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(int(seed)))
    perm = torch.empty(n, dtype=torch.long)
    perm[order] = order.roll(-1)
    return perm


def targeted_attribution_robustness(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, k: int = 100,
                                    eps: float = 8 / 255, step_size: float = 1 / 255, steps: int = 50,
                                    n_steps_ig: int = 30, gamma: Optional[float] = None,
                                    beta: Optional[float] = 50.0, only_correct: bool = False, seed: int = 0,
                                    batch_size: Optional[int] = None, return_maps: bool = False,
                                    progress: bool = False):
    r"""Robustness of IG maps to the targeted attribution attack of Dombrowski et al. (NeurIPS 2019), as ART Sec. 5
    ("Robustness to targeted attribution attacks") and appendix A / Fig. 10 evaluate it.

    ART Sec. 5: "We evaluate the robustness of ART model using targeted attribution attack as proposed in [15] using
    the IG attribution method on a batch of 1000 test examples. To obtain the target attribution maps, we randomly
    shuffle the examples [...]. The kendall's tau coefficient and top-k intersection similarity measure between
    original and perturbed images on ART was 64.76 and 70.64 as compared to 36.29 and 31.81 on the PGD-10 adversarially
    trained model." Here: the images are shuffled with :func:`derangement` (``seed``), each image's target map is the
    IG map of the ``y`` logit of its partner image on the same model, the attack is
    :func:`artlib.attacks.targeted_attribution_attack` (l-inf ball ``eps``, signed steps, label-preserving iterate
    closest to the target), and IN / K compare the IG map of each image with that of its attacked copy
    (:func:`attribution_maps`: ``sum_c |IG|``, zero baseline, ``n_steps_ig`` right-Riemann points, ReLU model).
    The paper does not restate eps, steps or k for this attack; the defaults are its attributional-attack budget
    (A.3.5: eps 8/255, step 1/255, k = 100 on CIFAR-10) with 50 steps and Dombrowski et al.'s 30 IG points.

    Args:
        model (nn.Module): ReLU classifier on ``[0, 1]`` images.
        x (Tensor): ``[B, C, H, W]`` in ``[0, 1]``; y (Tensor): labels ``[B]`` (the class whose IG map is used).
        k (int): top-k of IN. Default 100 (ART A.3.5 for CIFAR-10; Fig. 10's caption prints top-1000).
        eps (float), step_size (float), steps (int): the attack's l-inf budget, signed step and iterations.
        n_steps_ig (int): IG points of the attack and of the measured maps. Default 30.
        gamma (float, optional): weight of the output-preserving term (see the attack). Default Dombrowski et al.'s.
        beta (float or None): Softplus beta of the attack gradient. Default 50 (ART).
        only_correct (bool): use only the correctly classified images (the paper uses the whole batch). Default False.
        seed (int): the shuffle. Default 0.
        batch_size (int, optional): images per attack pass (see the attack). Default None.
        return_maps (bool): also return the images and maps for a Fig. 10 panel. Default False.
        progress (bool): tqdm over the attack steps. Default False.

    Returns:
        pandas.DataFrame, one row per attacked image: ``index`` (position in ``x``), ``label``, ``target_index``,
        ``IN`` and ``K`` (original vs attacked map; fractions), ``IN_target_before`` / ``IN_target`` (top-k
        intersection of the original / attacked map with the target map: how far the attack moved the map towards
        the target), ``distance_before`` / ``distance`` (the attack's ``||h - h^t||^2`` on sum-1 maps), ``success``,
        ``step``. With ``return_maps`` a tuple ``(df, maps)`` with ``maps`` a dict of CPU tensors: ``x``, ``x_adv``
        ``[n, C, H, W]`` and ``original``, ``target``, ``attacked`` ``[n, H, W]`` (sum ``H*W`` each).

    Example::

        >>> df = targeted_attribution_robustness(model, x, y, steps=50)
        >>> summarize_robustness(df)                     # {"IN (%)": .., "K (%)": .., "n": ..}
    """
    import pandas as pd
    from artlib import attacks, metrics
    y = _check_xy(x, y)
    _check_k(k, x)
    H, W = x.shape[-2:]
    dev = _device(model)
    idx = _attacked_index(model, x, y, only_correct)
    if idx.numel() < 2:
        raise ValueError(f"the targeted attack needs at least 2 images to shuffle, got {idx.numel()}"
                         + (" correctly classified" if only_correct else ""))
    perm = derangement(int(idx.numel()), seed)
    xs, ys = x[idx].to(dev), y[idx].to(dev)
    with _eval(model):
        m0 = attribution_maps(model, xs, ys, "ig", n_steps_ig=n_steps_ig)
        mt = m0[perm.to(dev)]                     # the partner's map on the same model
        res = attacks.targeted_attribution_attack(model, xs, mt.view(-1, H, W), eps, step_size, steps, gamma, y=ys,
                                                  beta=beta, n_steps_ig=n_steps_ig, batch_size=batch_size,
                                                  progress=progress)
        m1 = attribution_maps(model, res.x_adv, ys, "ig", n_steps_ig=n_steps_ig)
        ht = mt / mt.sum(1, keepdim=True).clamp_min(torch.finfo(mt.dtype).tiny)
        h0 = m0 / m0.sum(1, keepdim=True).clamp_min(torch.finfo(m0.dtype).tiny)
        d0 = ((h0 - ht) ** 2).sum(1)
    df = pd.DataFrame({"index": idx.numpy(), "label": y.cpu()[idx].numpy(), "target_index": idx[perm].numpy(),
                       "IN": metrics.topk_intersection(m0, m1, k).double().cpu().numpy(),
                       "K": metrics.kendall_tau(m0, m1).double().cpu().numpy(),
                       "IN_target_before": metrics.topk_intersection(m0, mt, k).double().cpu().numpy(),
                       "IN_target": metrics.topk_intersection(m1, mt, k).double().cpu().numpy(),
                       "distance_before": d0.double().cpu().numpy(), "distance": res.distance.double().cpu().numpy(),
                       "success": res.success.cpu().numpy(), "step": res.step.cpu().numpy()})
    if not return_maps:
        return df
    maps = {"x": xs.cpu(), "x_adv": res.x_adv.detach().cpu(), "original": m0.view(-1, H, W).cpu(),
            "target": mt.view(-1, H, W).cpu(), "attacked": m1.view(-1, H, W).cpu()}
    return df, maps


def attack_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, attack_fn, batch_size: Optional[int] = None
                    ) -> float:
    """White-box accuracy of ``model`` under any attack: ``attack_fn(model, x, y)`` returns the adversarial images (or
    a tuple / NamedTuple whose first field they are, e.g. :func:`artlib.attacks.spatial_attack`'s result). ART Sec. 5
    evaluates PGD-100 / PGD-500, SPSA, l2 PGD-40 (eps 1.0) and the spatial attack this way.

    Same as :func:`artlib.attacks.transfer_accuracy` with the model as its own source.

    Example::

        >>> attack_accuracy(model, x, y, functools.partial(attacks.spsa, eps=8/255, steps=100, seed=0))
    """
    from artlib import attacks
    _check_xy(x, y)
    return attacks.transfer_accuracy(model, model, x, y, attack_fn, batch_size=batch_size)


def accuracy_vs_eps(models: Union[nn.Module, Dict[str, nn.Module]], x: torch.Tensor, y: torch.Tensor,
                    eps_values: Sequence[float], norm: str = "linf", steps: int = 40, step_fraction: float = 0.25,
                    seed: Optional[int] = 0, batch_size: Optional[int] = 256):
    """PGD accuracy of each model over a range of budgets (ART appendix C, Fig. 14: "l-inf and l2 adversarial
    robustness on varying eps of ART, PGD-10 and Natural model on CIFAR-10").

    Every point is :func:`robust_accuracy` with ``norm``, ``steps`` and a step of ``step_fraction * eps`` (the
    paper does not state Fig. 14's attack; 0.25 * eps reproduces Table 1's PGD-40 step 2/255 at 8/255 and the l2
    step 0.25 at eps 1.0). ``eps = 0`` gives the clean accuracy.

    Args:
        models (nn.Module or dict name -> nn.Module): the classifiers.
        x (Tensor): ``[B, C, H, W]`` in ``[0, 1]``; y (Tensor): labels ``[B]``.
        eps_values (sequence of float): budgets (l-inf per entry, l2 per image), each ``>= 0``.
        norm (str): ``"linf"`` (default) or ``"l2"``.
        steps (int): PGD iterations. Default 40.
        step_fraction (float): step size over eps. Default 0.25.
        seed (int, optional): random starts (as :func:`robust_accuracy`). batch_size (int, optional): images per pass.

    Returns:
        pandas.DataFrame with columns ``model``, ``norm``, ``eps``, ``accuracy`` (fraction), one row per (model, eps)
        in the given orders.

    Example::

        >>> accuracy_vs_eps({"ART": art, "PGD-10": pgd}, x, y, [0, 2/255, 4/255, 8/255])
    """
    import pandas as pd
    if norm not in ("linf", "l2"):
        raise ValueError(f"unknown norm {norm!r}; choose one of ['linf', 'l2']")
    if isinstance(models, nn.Module):
        models = {"model": models}
    if not isinstance(models, dict) or not models:
        raise ValueError("models must be an nn.Module or a non-empty dict of name -> nn.Module")
    eps_values = [float(e) for e in eps_values]
    if not eps_values or any(not math.isfinite(e) or e < 0 for e in eps_values):
        raise ValueError(f"eps_values must be a non-empty sequence of finite numbers >= 0, got {eps_values!r}")
    if isinstance(step_fraction, bool) or not isinstance(step_fraction, (int, float)) or not step_fraction > 0:
        raise ValueError(f"step_fraction must be a number > 0, got {step_fraction!r}")
    rows = []
    for name, model in models.items():
        for e in eps_values:
            acc = accuracy(model, x, y, batch_size) if e == 0 else \
                robust_accuracy(model, x, y, eps=e, step_size=step_fraction * e, steps=steps, norm=norm, seed=seed,
                                batch_size=batch_size)
            rows.append({"model": name, "norm": norm, "eps": e, "accuracy": acc})
    return pd.DataFrame(rows, columns=["model", "norm", "eps", "accuracy"])


def transfer_matrix(models: Dict[str, nn.Module], x: torch.Tensor, y: torch.Tensor, attack_fn,
                    batch_size: Optional[int] = None):
    """Transfer (black-box) attack accuracies between models (ART appendix C, Table 6: rows = the evaluated model,
    columns = the model the adversarial perturbation was created on, plus the clean accuracy).

    Each source model's adversarial images are computed once, ``attack_fn(source, x, y)`` per chunk of
    ``batch_size`` images (as :func:`artlib.attacks.transfer_accuracy`, whose value every cell equals), and every
    model is evaluated on them; the diagonal is the white-box accuracy. Table 6 uses l-inf PGD with eps 8/255 (its
    diagonal equals Table 1's PGD-40 column).

    Args:
        models (dict name -> nn.Module): the models, in row / column order.
        x (Tensor): ``[B, C, H, W]`` in ``[0, 1]``; y (Tensor): labels ``[B]``.
        attack_fn (callable): ``attack_fn(model, x, y)`` -> adversarial images (or a tuple whose first field they
            are), e.g. ``functools.partial(attacks.pgd, eps=8/255, step_size=2/255, steps=40, seed=0)``.
        batch_size (int, optional): images per ``attack_fn`` call. Default None (all).

    Returns:
        pandas.DataFrame with a ``model`` column (the evaluated model), one accuracy column (fraction) per source
        model named after it, and ``clean``.

    Example::

        >>> transfer_matrix({"Natural": nat, "PGD-10": pgd, "ART": art}, x, y,
        ...                 functools.partial(attacks.pgd, eps=8/255, step_size=2/255, steps=40, seed=0))
    """
    import pandas as pd
    from artlib import attacks
    y = _check_xy(x, y)
    if not isinstance(models, dict) or not models:
        raise ValueError("models must be a non-empty dict of name -> nn.Module")
    advs = {}
    for src, model in models.items():
        dev = _device(model)
        advs[src] = attacks.adversarial_images(model, x.to(dev), y.to(dev), attack_fn, batch_size).cpu()
    rows = []
    for tgt, model in models.items():
        row = {"model": tgt}
        for src in models:
            row[src] = int((predict(model, advs[src]) == y.cpu()).sum()) / x.shape[0]
        row["clean"] = accuracy(model, x, y)
        rows.append(row)
    return pd.DataFrame(rows, columns=["model", *models, "clean"])


# ----------------------------------------------------------------------------------------------------------------------
# ART Table 5, Figs 8-9 and 11-12: one robustness row per model (IN / K under IFIA, natural and PGD accuracy) and
# attributional robustness against the attack's eps. Used by notebooks 10, 11 and 12.
# ----------------------------------------------------------------------------------------------------------------------


def robustness_report(model: nn.Module, x_attack: torch.Tensor, y_attack: torch.Tensor,
                      x_acc: Optional[torch.Tensor] = None, y_acc: Optional[torch.Tensor] = None, *, k: int = 100,
                      eps: float = 8 / 255, step_size: float = 1 / 255, steps: int = 50, n_steps_ig: int = 100,
                      pgd_eps: float = 8 / 255, pgd_step_size: float = 2 / 255, pgd_steps: int = 40, seed: int = 0,
                      **attack_kw):
    r"""The four numbers ART reports per trained model — IN and K under IFIA on IG, natural accuracy and PGD
    accuracy — as one table row (ART Table 1's columns, reused by Table 5's loss ablation and Figs 8-9's
    hyperparameter sweeps, which report "attributional robustness", "test accuracy" and "adversarial accuracy").

    * IN / K: :func:`attribution_robustness` (``map_method="ig"``) on ``(x_attack, y_attack)``: top-k IFIA with ART
      A.3.5's CIFAR-10 settings by default (k = 100, eps 8/255, 50 steps of 1/255, IG with 100 points); only the
      correctly classified images are attacked and averaged (Sec. 4.1.3).
    * Natural accuracy: :func:`accuracy` on ``(x_acc, y_acc)``.
    * PGD accuracy: :func:`robust_accuracy` on ``(x_acc, y_acc)``, l-inf, ``pgd_eps`` 8/255, ``pgd_step_size``
      2/255, ``pgd_steps`` 40 (Sec. 4.1.3 / Fig. 9: "PGD-40 perturbations with eps = 8/255").

    Args:
        model (nn.Module): ReLU classifier on ``[0, 1]`` images (its mode and ``requires_grad`` flags are restored).
        x_attack (Tensor), y_attack (Tensor): images ``[B, C, H, W]`` in ``[0, 1]`` and labels ``[B]`` for IFIA.
        x_acc (Tensor, optional), y_acc (Tensor, optional): images / labels for the two accuracies. Default: the
            attack images.
        k, eps, step_size, steps, n_steps_ig: the IFIA of :func:`attribution_robustness` (100, 8/255, 1/255, 50, 100).
        pgd_eps, pgd_step_size, pgd_steps: the PGD of :func:`robust_accuracy` (8/255, 2/255, 40).
        seed (int): IFIA and PGD random starts. Default 0.
        **attack_kw: further options of :func:`attribution_robustness` (``setting``, ``beta``, ``batch_size``, ...).

    Returns:
        ``(row, per_sample)``: ``row`` a dict with ``"IN (%)"``, ``"K (%)"`` (means in percent, NaN when no image
        was attacked), ``"Nat acc (%)"``, ``"PGD acc (%)"`` (percent), ``"n attacked"``, ``"n acc"``; ``per_sample``
        the :func:`attribution_robustness` DataFrame (one row per attacked image, IN / K as fractions).

    Example::

        >>> row, per_sample = robustness_report(model, x[:100], y[:100], x, y)             # ART Table 1 / 5 row
        >>> row["IN (%)"], row["PGD acc (%)"]
    """
    y_attack = _check_xy(x_attack, y_attack)
    if (x_acc is None) != (y_acc is None):
        raise ValueError("give both x_acc and y_acc, or neither (then the attack images are used)")
    if x_acc is None:
        x_acc, y_acc = x_attack, y_attack
    y_acc = _check_xy(x_acc, y_acc)
    per_sample = attribution_robustness(model, x_attack, y_attack, k=k, eps=eps, step_size=step_size, steps=steps,
                                        n_steps_ig=n_steps_ig, seed=seed, **attack_kw)
    s = summarize_robustness(per_sample, attack_kw.get("setting", "paper"))
    row = {"IN (%)": s["IN (%)"], "K (%)": s["K (%)"], "Nat acc (%)": 100 * accuracy(model, x_acc, y_acc),
           "PGD acc (%)": 100 * robust_accuracy(model, x_acc, y_acc, eps=pgd_eps, step_size=pgd_step_size,
                                                steps=pgd_steps, seed=seed),
           "n attacked": s["n"], "n acc": int(y_acc.shape[0])}
    return row, per_sample


def attribution_robustness_vs_eps(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                                  eps_values: Sequence[float] = (2 / 255, 4 / 255, 8 / 255, 12 / 255), *,
                                  step_size=1 / 255, **kw):
    r"""Per-sample IN / K under the attributional attack for several l-inf budgets ``eps`` (ART appendix A.4,
    Fig. 12: "We also measure the attributional robustness of models on varying eps to the standard values of 2/255,
    4/255, 8/255 and 12/255 in the attack methodology as explained in Section A.3.5").

    Runs :func:`attribution_robustness` once per ``eps`` on the same images, with the same seed and the other
    settings of ``kw`` (A.3.5: k = 100, 50 steps of 1/255 on CIFAR-10 — the paper keeps the step at 1/255 for every
    eps). ``step_size`` may instead be a function of eps (e.g. ``lambda e: e / 4``), for short attacks whose fixed
    step could not reach the larger balls.

    Args:
        model (nn.Module): ReLU classifier on ``[0, 1]`` images.
        x (Tensor): ``[B, C, H, W]`` in ``[0, 1]``; y (Tensor): labels ``[B]``.
        eps_values (sequence of float): the budgets, each >= 0. Default ``(2, 4, 8, 12) / 255`` (Fig. 12).
        step_size (float or callable): the attack step, or ``eps -> step``. Default 1/255 (A.3.5).
        **kw: further options of :func:`attribution_robustness` (``k``, ``steps``, ``n_steps_ig``, ``seed``, ...).

    Returns:
        pandas.DataFrame: :func:`attribution_robustness`'s columns preceded by ``eps`` (float) and ``step_size``,
        one row per (eps, attacked image), eps in the given order.

    Example::

        >>> df = attribution_robustness_vs_eps(model, x, y)                                 # ART Fig. 12
        >>> df.groupby("eps")[["IN", "K"]].mean()
    """
    import pandas as pd
    try:
        values = [float(e) for e in eps_values]
    except TypeError:
        raise ValueError(f"eps_values must be a sequence of numbers, got {eps_values!r}") from None
    if not values or any(not math.isfinite(e) or e < 0 for e in values):
        raise ValueError(f"eps_values must be a non-empty sequence of finite numbers >= 0, got {eps_values!r}")
    parts = []
    for e in values:
        step = float(step_size(e)) if callable(step_size) else float(step_size)
        df = attribution_robustness(model, x, y, eps=e, step_size=step, **kw)
        df.insert(0, "step_size", step)
        df.insert(0, "eps", e)
        parts.append(df)
    return pd.concat(parts, ignore_index=True)
