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
from typing import Dict, NamedTuple, Optional, Sequence, Union

import torch
import torch.nn as nn

__all__ = ["MAP_METHODS", "method_label", "with_paper_values", "load_images", "predict", "accuracy", "robust_accuracy", "attribution_robustness",
           "summarize_robustness", "attribution_maps", "gradient_image_cosine", "corruption_accuracy",
           "GenerationResult", "class_seed_sampler", "generate_class_conditional"]

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

    Args:
        dataset (str): a name of :data:`artlib.data.DATASETS` (``"cifar10"``, ``"gtsrb"``, ``"flowers17"``, ...).
        n (int or None): number of images (None: the whole split — mind the memory).
        split (str): default ``"test"``.
        root: data root (default ``$ARTLIB_DATA``).
        **options: loader options of :func:`artlib.data.load_dataset` (e.g. cifar10c ``corruption``, ``severity``).

    Returns:
        ``(x, y)``: ``x`` float ``[n, C, H, W]`` in ``[0, 1]``, ``y`` long ``[n]``.

    Example::

        >>> x, y = load_images("cifar10", 100)          # 10 test images per class
    """
    from artlib import data
    ds = data.load_dataset(dataset, split, root=root, subset=n, **options)
    items = [ds[i] for i in range(len(ds))]
    return torch.stack([it[0] for it in items]), torch.tensor([int(it[1]) for it in items], dtype=torch.long)


@torch.no_grad()
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
    from artlib import attribution
    if map_method not in MAP_METHODS:
        raise ValueError(f"unknown map_method {map_method!r}; choose one of {list(MAP_METHODS)}")
    if map_method == "ig":
        attr = attribution.attribute(model, x, y, "ig", n_steps=n_steps_ig, ig_method="riemann_right",
                                     differentiable=differentiable, beta=beta)
    elif map_method == "saliency":
        attr = attribution.attribute(model, x, y, "saliency", differentiable=differentiable, beta=beta)
    else:
        alphas = _gradshap_alphas(n_samples, seed, x.dtype).to(x.device)
        with (_softplus(model, beta)), _eval(model), torch.enable_grad():
            z = x if x.requires_grad else x.detach().requires_grad_(True)
            pts = (alphas.view(-1, 1, 1, 1, 1) * z.unsqueeze(0)).reshape(-1, *z.shape[1:])
            out = model(pts).gather(1, y.repeat(n_samples).view(-1, 1)).sum()
            (g,) = torch.autograd.grad(out, pts, create_graph=differentiable)
            attr = z * g.view(n_samples, *z.shape).mean(0)
        if not differentiable:
            attr = attr.detach()
    return attribution.to_saliency_map(attr, "sum_abs", normalize=True).flatten(1)


def _softplus(model, beta):
    if beta is None:
        return contextlib.nullcontext()
    from artlib import models
    return models.softplus_relu(model, beta)


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
    for t in range(steps):
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
                           only_correct: bool = True, seed: int = 0, batch_size: Optional[int] = None,
                           progress: bool = False, **attack_kw):
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
    H, W = x.shape[-2:]
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= H * W:
        raise ValueError(f"k must be an int in [1, {H * W}], got {k!r}")
    dev = _device(model)
    idx = torch.arange(x.shape[0])
    if only_correct:
        idx = idx[predict(model, x) == y.cpu()]
    cols = ["index", "label", "IN", "K", "success", "step"]
    if idx.numel() == 0:
        return pd.DataFrame({c: pd.Series(dtype=float if c in ("IN", "K") else int) for c in cols})
    if batch_size is None:
        n_pts = n_steps_ig if map_method == "ig" else (n_samples if map_method == "gradshap" else 1)
        batch_size = max(1, 320 // n_pts) if dev.type == "cpu" else attacks.auto_batch_size(dev, n_pts)
    xs, ys = x[idx].to(dev), y[idx].to(dev)
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


def summarize_robustness(df) -> Dict[str, float]:
    """The table entries of :func:`attribution_robustness`'s output: ``{"IN (%)", "K (%)", "n"}`` (means in percent,
    as ART Table 1 prints them; NaN for an empty frame).

    Example::

        >>> summarize_robustness(df)
        {'IN (%)': 61.2, 'K (%)': 55.0, 'n': 64}
    """
    n = int(len(df))
    return {"IN (%)": float(100 * df["IN"].mean()) if n else math.nan,
            "K (%)": float(100 * df["K"].mean()) if n else math.nan, "n": n}


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
        n (int): test images per (corruption, severity) block, class-stratified. Default 200.
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
        N = ds.n
        pick = data.subset_dataset(_Labels(ds.targets[:N]), n).indices if n is not None else list(range(N))
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
