r"""A study neither paper runs: does attributional robustness training (ART) escape the inequality phenomenon?

The Inequality paper (Duan et al., ICLR 2023, ``../shared/papers/inequality_iclr2023.txt``) shows that l-inf
adversarial training concentrates the attribution on few pixels (high global / regional Gini, Sec. 3.1, 4.2,
Table 1) and that this makes the model fragile to inductive occlusion (Sec. 3.2.2, Algorithm 1, Table 2; A.9 for
CIFAR-10: N = 10, R = 4) and to inductive noise (Sec. 3.2.1, Eq. 5, Fig. 3). ART (Singh et al., ECCV 2020,
``../shared/papers/art_eccv2020.txt``) trains the input gradient to align with the image (Eq. 5-6, Algorithm 1),
which gives robust attributions (IN / K under IFIA, Sec. 4.1.3, A.3.5, Table 1) and some adversarial robustness
(PGD-40, Table 1). This module trains Natural, l-inf PGD (several eps), ART (several lambda) and Cutout + PGD models on
the same data with several seeds and measures all of that per model, so a notebook can plot the trade-offs.

The maths lives where it already is: Gini / attributions / attacks in :mod:`artlib.inequality` (which calls
:mod:`artlib.metrics`, :mod:`artlib.attacks`, :mod:`artlib.attribution`), IN / K and PGD accuracy in
:mod:`artlib.evaluate`, training in :mod:`artlib.train` through :func:`artlib.reproduce.get_model`.

=================================  ===================================================================================
name                               what
=================================  ===================================================================================
:data:`STUDY`                      the compared models: label -> (training method, overrides)
:func:`model_spec`,                ``(method, overrides)`` of one model and seed; the models (trained / cached)
:func:`get_models`
:func:`measure`                    one model's row: Gini (global, regional), inductive occlusion and noise error,
                                   clean / PGD accuracy, IN / K under IFIA
:func:`measure_study`              :func:`measure` over every (model, seed), on each seed's images that all of
                                   that seed's models classify correctly (Inequality Sec. 4.1), or on each
                                   model's own correctly classified images
:func:`summarize`                  mean, std and count over seeds per model
:func:`paired_difference`          per-seed difference of one column between two models (same seed, same images)
:func:`paper_reference`            the papers' values for the study's rows where the papers have one
:func:`tradeoff_plot`              one trade-off panel: per-seed points and mean +- std per model
=================================  ===================================================================================

Example::

    >>> from artlib import bridge, evaluate, inequality as ineq
    >>> models = bridge.get_models("smoke", list(bridge.STUDY), seeds=(0, 1))
    >>> x_pool, y_pool = ineq.eval_images("cifar10", 1000)
    >>> x_acc, y_acc = evaluate.load_images("cifar10", 200)
    >>> df = bridge.measure_study(models, x_pool, y_pool, n_images=64, x_acc=x_acc, y_acc=y_acc,
    ...                           x_att=x_acc[:32], y_att=y_acc[:32])
    >>> bridge.summarize(df)
"""
from __future__ import annotations

import math
from typing import Mapping, Optional, Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn as nn

__all__ = ["STUDY", "PAPER_ARCH", "METRICS", "IMAGE_SETS", "model_spec", "get_models", "measure",
           "measure_study", "summarize", "paired_difference", "paper_reference", "tradeoff_plot"]

#: The compared models, ``label -> (artlib.train method, overrides)``: standard training; l-inf PGD adversarial
#: training at eps 2/255 and 8/255 (Inequality Table 1 spans 1-8/255; ART Table 1's PGD-10 is 8/255); ART at the
#: paper's lambda = 0.5 (ART Sec. 4, A.3: "We use lambda = 0.5 ... for all experiments") and at lambda = 2, past the
#: point where ART Fig. 8-9 see attributional and adversarial robustness saturate (0.75); Cutout + l-inf PGD at 8/255
#: (Inequality A.9: meant to release the inequality). All at ART / PGD's eps 8/255 for the inner maximisation unless
#: named.
STUDY: dict[str, tuple[str, dict]] = {
    "natural": ("natural", {}),
    "pgd-2": ("pgd", {"eps": 2 / 255}),
    "pgd-8": ("pgd", {"eps": 8 / 255}),
    "art-0.5": ("art", {"lam": 0.5}),
    "art-2": ("art", {"lam": 2.0}),
    "cutout-pgd-8": ("pgd_cutout", {"eps": 8 / 255}),
}

#: Paper profile architecture: the Inequality paper's CIFAR-10 ResNet-18 (Sec. 4.1; ART itself uses WRN-28-10 on
#: CIFAR-10, Sec. 4 / A.3), one architecture for every row so that the comparison is about the training method.
PAPER_ARCH = "resnet18"

#: The numeric columns :func:`measure` returns (besides ``n``, ``n_attacked``).
METRICS = ("clean_acc", "pgd_acc", "gini_global", "gini_regional", "occ_black", "occ_grey", "occ_white", "occ_mean",
           "noise_I", "IN", "K")

#: The image sets :func:`measure_study` can measure on: ``"common"`` (correct for all models of a seed, Inequality
#: Sec. 4.1) or ``"own"`` (each model's own correctly classified images).
IMAGE_SETS = ("common", "own")


def model_spec(label: str, profile: str = "smoke", seed: int = 0, arch: Optional[str] = None) -> tuple[str, dict]:
    """The ``(method, overrides)`` :func:`artlib.reproduce.get_model` trains study model ``label`` with.

    Args:
        label (str): a key of :data:`STUDY`.
        profile (str): ``"smoke"`` / ``"reference"``: the reference zoo's model; ``"paper"`` keeps :func:`artlib.train.config`'s paper
            profile (ART A.3 schedules, PGD-10 at step eps/4) and sets ``arch`` to :data:`PAPER_ARCH`.
        seed (int): training seed (initialisation, batch order, random starts). Default 0.
        arch (str, optional): architecture override. Default None (smoke: small-cnn; paper: :data:`PAPER_ARCH`).

    Returns:
        ``(method, overrides)``.

    Example::

        >>> model_spec("art-2", seed=1)
        ('art', {'lam': 2.0, 'seed': 1})
    """
    if label not in STUDY:
        raise ValueError(f"unknown study model {label!r}; choices: {list(STUDY)}")
    if profile not in ("smoke", "reference", "paper"):
        raise ValueError(f"unknown profile {profile!r}; choices: ['smoke', 'reference', 'paper']")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    method, own = STUDY[label]
    overrides = {**own, "seed": int(seed)}  # smoke / reference: the zoo's model (artlib.reproduce.get_model)
    arch = arch if arch is not None else (PAPER_ARCH if profile == "paper" else None)
    if arch is not None:
        overrides["arch"] = arch
    return method, overrides


def get_models(profile: str, labels: Sequence[str], seeds: Sequence[int] = (0,), arch: Optional[str] = None,
               device=None, progress: bool = False) -> dict:
    """The study's models in eval mode, ``{(label, seed): model}`` (labels outer, seeds inner), each from
    :func:`artlib.reproduce.get_model` with :func:`model_spec` (trained once, then read from the checkpoint cache).

    Args:
        profile (str): ``"smoke"`` or ``"paper"``. labels (sequence of str): keys of :data:`STUDY`.
        seeds (sequence of int): training seeds. Default ``(0,)``.
        arch (str, optional): architecture override. device: move the models there. progress (bool): tqdm while
            training.

    Example::

        >>> models = get_models("smoke", ["natural", "art-0.5"], seeds=(0, 1))
    """
    from artlib import reproduce
    if not labels or not seeds:
        raise ValueError(f"labels and seeds must be non-empty, got {list(labels)!r} and {list(seeds)!r}")
    out = {}
    for label in labels:
        for seed in seeds:
            method, overrides = model_spec(label, profile, seed, arch)
            model, _ = reproduce.get_model(profile, "cifar10", method, progress=progress, **overrides)
            out[(label, int(seed))] = model.eval() if device is None else model.eval().to(device)
    return out


def _device(model: nn.Module) -> torch.device:
    p = next(iter(model.parameters()), None)
    return p.device if p is not None else torch.device("cpu")


def measure(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, x_acc: torch.Tensor, y_acc: torch.Tensor,
            x_att: Optional[torch.Tensor] = None, y_att: Optional[torch.Tensor] = None, region: int = 4,
            max_count: int = 10, max_radius: int = 4, colors: Sequence[str] = ("black", "grey", "white"),
            noise_pixels: int = 102, pgd: Optional[Mapping] = None, ifia: Optional[Mapping] = None,
            setting: str = "paper", seed: int = 0, samples: bool = False):
    r"""One model's row of the study: the Inequality paper's measures and ART's.

    * Gini of the Integrated-Gradients attributions of ``(x, y)`` with the Inequality paper's settings (A.8: 20 steps,
      N(0, 1) baseline in normalised space; :func:`artlib.inequality.attribute`): global, and regional over
      ``region x region`` blocks (Sec. 3.1, 4.2; 4 on CIFAR-10), mean over images
      (:func:`artlib.inequality.gini_table`).
    * Inductive occlusion error rate per colour at budget ``(N, R) = (max_count, max_radius)`` (Sec. 3.2.2,
      Algorithm 1; A.9 CIFAR-10: N = 10, R = 4) and its mean over colours
      (:func:`artlib.inequality.occlusion_table`).
    * Inductive noise I error rate on the ``noise_pixels`` most important entries (Sec. 3.2.1, Eq. 5; A.4's 5,000 of
      3 x 224 x 224 entries rescaled to 3 x 32 x 32 = 102 by :func:`artlib.inequality.scaled_pixels`;
      :func:`artlib.inequality.noise_table`).
    * Clean accuracy and PGD accuracy on ``(x_acc, y_acc)`` (ART Table 1: PGD-40, l-inf 8/255, step 2/255;
      :func:`artlib.evaluate.robust_accuracy`).
    * IN / K: top-k intersection and Kendall's tau between the IG maps of the correctly classified images of
      ``(x_att, y_att)`` and of their IFIA-attacked copies (ART Sec. 4.1.3, A.3.5: k 100, eps 8/255, 50 steps of
      1/255, IG 100 points; :func:`artlib.evaluate.attribution_robustness`), as fractions.

    ``x`` should hold images the model classifies correctly (Inequality Sec. 4.1 selects images correct for all the
    compared models: :func:`measure_study` does that), else the attack error rates count the misclassified ones too.

    Args:
        model (nn.Module): classifier on ``[0, 1]`` images (mode restored by the functions called).
        x (Tensor): ``[B, C, H, W]`` in ``[0, 1]``; y (Tensor): labels ``[B]``.
        x_acc, y_acc: images / labels for clean and PGD accuracy.
        x_att, y_att: images / labels for IFIA (default: ``x_acc`` / ``y_acc``).
        region (int): regional-Gini block and occlusion region (4). max_count, max_radius (int): N, R (10, 4).
        colors (sequence of str): occlusion colours. noise_pixels (int): perturbed entries of noise I (102).
        pgd (mapping, optional): :func:`artlib.evaluate.robust_accuracy` keywords. Default ART Table 1's PGD-40.
        ifia (mapping, optional): :func:`artlib.evaluate.attribution_robustness` keywords. Default ART A.3.5.
        setting (str): ``"paper"`` (default) or ``"released"`` for the Inequality measures. seed (int): noise /
            baseline / random-start seed. Default 0.
        samples (bool): also return the per-image values behind the Gini and IN / K means (for the claims'
            bootstrap, :mod:`artlib.claims`).

    Returns:
        dict with ``n`` (images of ``x``), :data:`METRICS` (fractions) and ``n_attacked`` (images IFIA attacked);
        with ``samples=True`` the pair ``(row, per_image)``, ``per_image`` a DataFrame ``kind, image, gini_global,
        gini_regional, IN, K``: ``kind`` ``"gini"`` rows (``image``: position in ``x``) and ``"ifia"`` rows
        (``image``: position in ``x_att`` of an attacked image), NaN in the other kind's columns.

    Example::

        >>> row = measure(model, x, y, x_acc=x_acc, y_acc=y_acc, pgd=dict(steps=10), ifia=dict(steps=5))
    """
    from artlib import evaluate
    from artlib import inequality as ineq
    if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[0] == 0:
        raise ValueError(f"x must be a non-empty tensor [B, C, H, W], got "
                         f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}")
    if not colors:
        raise ValueError("colors must name at least one occlusion colour, e.g. ('black', 'grey', 'white')")
    pgd = {**dict(eps=8 / 255, step_size=2 / 255, steps=40), **(pgd or {})}
    ifia = {**dict(k=100, eps=8 / 255, step_size=1 / 255, steps=50, n_steps_ig=100), **(ifia or {})}
    x_att, y_att = (x_acc, y_acc) if x_att is None else (x_att, y_att)
    dev = _device(model)
    x, y = x.to(dev), y.to(dev)
    key = "model"
    attrs = {key: ineq.attribute(model, x, y, "ig", setting, seed=seed)}
    g = ineq.gini_table(attrs, region, setting).iloc[0]
    occ, _ = ineq.occlusion_table({key: model}, x, y, attrs, region, max_count, max_radius, colors, setting)
    noise = ineq.noise_table({key: model}, x, y, attrs, [int(noise_pixels)], ["I"], setting, seed)
    row = dict(n=int(y.numel()), clean_acc=evaluate.accuracy(model, x_acc, y_acc),
               pgd_acc=evaluate.robust_accuracy(model, x_acc, y_acc, seed=seed, **pgd),
               gini_global=float(g.gini_global), gini_regional=float(g.gini_regional))
    for c in colors:
        row[f"occ_{c}"] = float(occ.loc[occ.color == c, "error_rate"].item())
    row["occ_mean"] = float(occ.error_rate.mean())
    row["noise_I"] = float(noise.error_rate.item())
    rob = evaluate.attribution_robustness(model, x_att, y_att, seed=seed, **ifia)
    row.update(IN=float(rob["IN"].mean()) if len(rob) else math.nan,
               K=float(rob["K"].mean()) if len(rob) else math.nan, n_attacked=int(len(rob)))
    if not samples:
        return row
    gini = ineq.gini_samples(attrs, region, setting).drop(columns="model").assign(kind="gini")
    ifia_rows = pd.DataFrame({"kind": "ifia", "image": rob["index"].to_numpy(int), "IN": rob["IN"].to_numpy(float),
                              "K": rob["K"].to_numpy(float)})
    per_image = pd.concat([gini, ifia_rows], ignore_index=True)
    return row, per_image[["kind", "image", "gini_global", "gini_regional", "IN", "K"]]


def measure_study(models: Mapping, x_pool: torch.Tensor, y_pool: torch.Tensor, n_images: int, *,
                  images: str = "common", progress: bool = False, samples: bool = False, **kw):
    """:func:`measure` for every ``(label, seed)`` model on correctly classified pool images.

    * ``images="common"`` (the paper's protocol, Inequality Sec. 4.1: "images ... correctly classified by all the
      models"): each seed's first ``n_images`` pool images that all of that seed's models classify correctly, so the
      models of one seed are compared on the same images.
    * ``images="own"``: each model's own first ``n_images`` correctly classified pool images. For barely trained
      models that agree on no image (the CPU smoke models: ~20 % accuracy each, different classes), at the price of
      comparing Gini / attack errors over different image (and class) mixes.

    Args:
        models (mapping): ``{(label, seed): model}`` as :func:`get_models` returns.
        x_pool, y_pool: candidate test images and labels (e.g. :func:`artlib.inequality.eval_images`, whose classes
            take turns, so a prefix is class-balanced).
        n_images (int): images per seed / model (fewer when fewer qualify).
        images (str): ``"common"`` (default) or ``"own"``.
        progress (bool): tqdm over the models. samples (bool): also return the per-image values (below).
        **kw: :func:`measure` keywords (``x_acc``, ``y_acc`` required).

    Returns:
        DataFrame, one row per model: ``label, method, seed`` then :func:`measure`'s columns; with ``samples=True``
        the pair ``(table, per_image)``, ``per_image`` :func:`measure`'s per-image frame of every model preceded by
        ``label, method, seed`` (with ``images="common"`` the models of one seed share the Gini images: paired by
        ``(seed, image)``).

    Example::

        >>> df = measure_study(models, x_pool, y_pool, 64, x_acc=x_acc, y_acc=y_acc)
    """
    from artlib import inequality as ineq
    if images not in IMAGE_SETS:
        raise ValueError(f"unknown images {images!r}; choices: {list(IMAGE_SETS)}")
    if not isinstance(models, Mapping) or not models:
        raise ValueError("models must be a non-empty mapping {(label, seed): model}")
    bad = [k for k in models if not (isinstance(k, tuple) and len(k) == 2 and k[0] in STUDY)]
    if bad:
        raise ValueError(f"model keys must be (label, seed) with label in {list(STUDY)}; got {bad[:3]}")
    if isinstance(n_images, bool) or not isinstance(n_images, int) or n_images < 1:
        raise ValueError(f"n_images must be a positive int, got {n_images!r}")
    if images == "common":
        chosen = {}
        for s in sorted({s for _, s in models}):
            group = {lab: m for (lab, ss), m in models.items() if ss == s}
            chosen[s] = ineq.correct_by_all(group, x_pool, y_pool, n=n_images)
            if len(chosen[s][1]) == 0:
                raise ValueError(f"no pool image is classified correctly by every model of seed {s}: enlarge the "
                                 f"pool, train the models longer or pass images='own'")
        pick = lambda key, m: chosen[key[1]]  # noqa: E731
    else:
        def pick(key, m):
            xs, ys = ineq.correct_by_all({key[0]: m}, x_pool, y_pool, n=n_images)
            if len(ys) == 0:
                raise ValueError(f"model {key} classifies no pool image correctly")
            return xs, ys
    items = list(models.items())
    if progress:
        from tqdm.auto import tqdm
        items = tqdm(items, desc="measure", leave=False)
    rows, parts = [], []
    for (label, s), m in items:
        got = measure(m, *pick((label, s), m), samples=samples, **kw)
        row, per_image = got if samples else (got, None)
        key = dict(label=label, method=STUDY[label][0], seed=int(s))
        rows.append(dict(key, **row))
        if samples:
            parts.append(per_image.assign(**key)[[*key, *per_image.columns]])
    table = pd.DataFrame(rows)
    return (table, pd.concat(parts, ignore_index=True)) if samples else table


def summarize(df: pd.DataFrame, columns: Sequence[str] = METRICS, by: str = "label") -> pd.DataFrame:
    """Mean and standard deviation over seeds of each column, per model: columns ``<c>_mean``, ``<c>_std`` (sample
    std, ddof = 1; NaN for one seed) and ``n_seeds``, rows in order of first appearance.

    Example::

        >>> summarize(pd.DataFrame({"label": ["a", "a"], "seed": [0, 1], "IN": [0.5, 0.7]}), ["IN"])
        ... # IN_mean 0.6, IN_std 0.1414, n_seeds 2
    """
    missing = [c for c in [by, *columns] if c not in df.columns]
    if missing:
        raise ValueError(f"columns {missing} not in the frame; choices: {list(df.columns)}")
    order = list(dict.fromkeys(df[by]))
    grp = df.groupby(by, sort=False)
    out = pd.DataFrame(index=pd.Index(order, name=by))
    for c in columns:
        out[f"{c}_mean"] = grp[c].mean()
        out[f"{c}_std"] = grp[c].std(ddof=1)
    out["n_seeds"] = grp.size()
    return out.reset_index()


def paired_difference(df: pd.DataFrame, a: str, b: str, column: str) -> dict:
    """``column`` of model ``a`` minus model ``b``, seed by seed (with ``images="common"`` the two models of one seed
    are measured on the same images by :func:`measure_study`), so the variation shared by both cancels.

    Returns:
        dict ``mean``, ``std`` (ddof = 1; NaN for one seed), ``n`` (seeds with both), ``n_positive`` (seeds where
        ``a > b``), ``diffs`` (list, by seed).

    Example::

        >>> paired_difference(df, "art-0.5", "pgd-8", "gini_regional")
    """
    for lab in (a, b):
        if lab not in set(df["label"]):
            raise ValueError(f"model {lab!r} not in the frame; choices: {sorted(set(df['label']))}")
    if column not in df.columns:
        raise ValueError(f"unknown column {column!r}; choices: {list(df.columns)}")
    pa = df[df.label == a].set_index("seed")[column]
    pb = df[df.label == b].set_index("seed")[column]
    d = (pa - pb).dropna().sort_index()
    return dict(mean=float(d.mean()) if len(d) else math.nan, std=float(d.std(ddof=1)) if len(d) > 1 else math.nan,
                n=int(len(d)), n_positive=int((d > 0).sum()), diffs=[float(v) for v in d])


def paper_reference(label: str) -> dict:
    """The values the papers print for the study's rows (their CIFAR-10 models, not the smoke ones), NaN where the
    paper has none: Inequality Table 1 (ResNet-18, global Gini of IG) for natural / pgd-2 / pgd-8, ART Table 1
    (WRN-28-10; IN, K, PGD-40 accuracy as fractions) for natural / pgd-8 (their PGD-10) / art-0.5. ART at lambda 2
    and Cutout + PGD have no printed numbers (Inequality A.9's Table 8 body is not in the text).

    Example::

        >>> paper_reference("art-0.5")["IN"]
        0.929
    """
    from artlib import paper_numbers as pn
    if label not in STUDY:
        raise ValueError(f"unknown study model {label!r}; choices: {list(STUDY)}")
    out = dict(gini_global=math.nan, IN=math.nan, K=math.nan, pgd_acc=math.nan)
    eps = {"natural": "0", "pgd-2": "2/255", "pgd-8": "8/255"}.get(label)
    if eps is not None:
        v = pn.paper_value("inequality", "table1", "Gini global (fraction)", dataset="cifar10", model="resnet18",
                           eps=eps)
        out["gini_global"] = math.nan if v is None else float(v)
    art = {"natural": "Natural", "pgd-8": "PGD-10", "art-0.5": "ART"}.get(label)
    if art is not None:
        for col, name in (("IN", "IN (%)"), ("K", "K (%)"), ("pgd_acc", "PGD-40 acc (%)")):
            v = pn.paper_value("art", "table1", name, dataset="cifar10", method=art)
            out[col] = math.nan if v is None else float(v) / 100
    return out


#: plot colour per training method (one hue per family; :func:`tradeoff_plot`)
_COLORS = {"natural": "tab:gray", "pgd": "tab:red", "art": "tab:blue", "pgd_cutout": "tab:orange"}
_MARKERS = ["o", "s", "^", "D", "v", "P"]


def tradeoff_plot(df: pd.DataFrame, x: str, y: str, ax=None, labels: Optional[Sequence[str]] = None):
    """One trade-off panel: each model's per-seed values (small points) and its mean +- std over seeds (error bars
    in both directions), coloured by training method, e.g. Gini vs PGD accuracy or occlusion error vs IN.

    Args:
        df (DataFrame): :func:`measure_study`'s output (``label``, ``method``, ``seed`` and the columns).
        x, y (str): columns on the axes. ax: matplotlib axes (default: a new figure).
        labels (sequence of str, optional): models to draw, in legend order (default: all, in frame order).

    Returns:
        the axes.

    Example::

        >>> tradeoff_plot(df, "pgd_acc", "gini_regional")
    """
    import matplotlib.pyplot as plt
    for c in (x, y):
        if c not in df.columns:
            raise ValueError(f"unknown column {c!r}; choices: {list(df.columns)}")
    if ax is None:
        _, ax = plt.subplots(figsize=(4, 3.2))
    labels = list(dict.fromkeys(df.label)) if labels is None else list(labels)
    for i, lab in enumerate(labels):
        d = df[df.label == lab]
        color = _COLORS.get(d.method.iloc[0], "k") if len(d) else "k"
        marker = _MARKERS[i % len(_MARKERS)]
        ax.scatter(d[x], d[y], s=12, color=color, marker=marker, alpha=0.45, linewidths=0)
        sx = d[x].std(ddof=1) if len(d) > 1 else 0.0
        sy = d[y].std(ddof=1) if len(d) > 1 else 0.0
        ax.errorbar(d[x].mean(), d[y].mean(), xerr=sx, yerr=sy, color=color, marker=marker, ms=6, capsize=2,
                    label=lab, lw=1)
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    ax.grid(alpha=0.3)
    return ax
