r"""The Inequality paper's evaluation, once: model zoo, evaluation images, attributions, Gini tables, inductive noise
and occlusion tables, transfer, the +-3 sigma visualisation, per-class Gini, pruning (A.6) and AutoAttack (Table 5).

Duan et al., "Inequality phenomenon in l-inf adversarial training, and its unrealized threats", ICLR 2023
(``../shared/papers/inequality_iclr2023.txt``). Notebooks ``20_*`` ... ``28_*`` are thin calls into this module; the
maths lives in the modules whose concern it is: the Gini indices in :mod:`artlib.metrics`, the inductive attacks in
:mod:`artlib.attacks`, attributions in :mod:`artlib.attribution`, training in :mod:`artlib.train`.

=================================  ===================================================================================
function                           what (paper)
=================================  ===================================================================================
:data:`MODELS`,                    the compared models (standard, l-inf AT at eps 1, 2, 4, 8 /255, l2 AT, Cutout +
:func:`model_spec`                 l-inf AT): the reference zoo's models on smoke / reference, the paper's on paper
:func:`get_models`                 those models: trained / cached through :func:`artlib.reproduce.get_model`
                                   (CIFAR-10), or the robust-models-transfer ImageNet checkpoints from local files
:func:`eval_images`,               the test images, and the paper's "images correctly classified by all the models"
:func:`correct_by_all`,            (Sec. 4.1); clean accuracy
:func:`accuracy_table`
:func:`attribute`                  attributions with the appendix A.8 settings (``setting="paper"``) or the released
                                   ``utils.py`` ones (``"released"``)
:func:`gini_table`,                Table 1 / 3 / A.5 / A.6 / Table 8 Gini columns (global and regional); A.3's "share
:func:`mass_share`                 of the attribution held by the top 5 % of the entries"
:func:`noise_table`                Fig. 3: error rate under random noise and inductive noise I / II per budget
:func:`occlusion_table`            Table 2 / A.9: inductive occlusion error rate per colour
:func:`attack_summary`             one row per model: Gini + occlusion + noise (A.5, A.6, Table 3, Table 8)
:func:`transfer_table`             A.4 / Table 4: attacked images of one model evaluated on another
:func:`clip_rescale`               Figs 5-6: Tsipras et al.'s +-3 sigma clip-and-rescale visualisation
:func:`class_gini`,                A.7 / Table 6: per-class Gini, top-k and bottom-k classes
:func:`top_bottom`
:func:`prune_filters_l1`,          A.6: l1-norm filter pruning (Li et al., ICLR 2017) and weight pruning (Han et al.,
:func:`prune_weights`,             NeurIPS 2015) with ``torch.nn.utils.prune``
:func:`sparsity`
:func:`autoattack_accuracy`        Table 5: robust accuracy under AutoAttack (adversarial-robustness-toolbox 1.20.1)
=================================  ===================================================================================

Conventions: images ``[B, C, H, W]`` in ``[0, 1]`` (normalisation inside the models); models are left in the
train/eval mode they came in; functions that draw random numbers take ``seed`` and do not touch the caller's RNG.

Example::

    >>> from artlib import inequality as ineq
    >>> models = ineq.get_models("smoke", ["standard", "linf-8"])
    >>> x, y = ineq.eval_images("cifar10", 500)
    >>> x, y = ineq.correct_by_all(models, x, y, n=100)
    >>> attrs = {k: ineq.attribute(m, x, y, "ig", seed=0) for k, m in models.items()}
    >>> ineq.gini_table(attrs, region=4)        # Table 1 columns: Gini global / regional, mean and std
"""
from __future__ import annotations

import contextlib
import copy
import os
from pathlib import Path
from typing import Mapping, Optional, Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn as nn

from artlib import dryrun
from artlib.attribution import _eval_mode  # one eval-mode helper for the package

__all__ = ["MODELS", "IMAGENET_ARCHS", "IMAGENET_NOISE_PIXELS", "CHECKPOINTS_ENV", "REGION",
           "OCCLUSION_BUDGETS", "NOISE_THRESHOLD", "ATTRIBUTION_METHODS", "AUTOATTACK_ATTACKS", "model_spec",
           "paper_eps", "imagenet_checkpoint_name", "get_models", "eval_images", "predict", "correct_by_all",
           "accuracy_table", "attribution_settings", "attribute", "gini_table", "mass_share", "scaled_pixels",
           "noise_table", "occlusion_table", "attack_summary", "transfer_table", "clip_rescale", "class_gini",
           "top_bottom", "prune_filters_l1", "prune_weights", "sparsity", "autoattack_accuracy"]

#: The models the paper compares, as ``label -> (artlib.train method, overrides)``: standard training, l-inf PGD
#: adversarial training at eps = 1, 2, 4, 8 /255 (Table 1), an l2-robust model (A.5; eps 0.5 on CIFAR-10, the common
#: CIFAR-10 l2 budget — the paper gives none) and Cutout + l-inf AT at 8/255 (A.9).
MODELS: dict[str, tuple[str, dict]] = {
    "standard": ("natural", {}),
    "linf-1": ("pgd", {"eps": 1 / 255}),
    "linf-2": ("pgd", {"eps": 2 / 255}),
    "linf-4": ("pgd", {"eps": 4 / 255}),
    "linf-8": ("pgd", {"eps": 8 / 255}),
    "l2-0.5": ("pgd", {"norm": "l2", "eps": 0.5}),
    "cutout-linf-8": ("pgd_cutout", {"eps": 8 / 255}),
}

#: Inequality Sec. 4.1: the robust-models-transfer (Salman et al. 2020) ImageNet architectures, file prefix -> artlib
#: arch (:data:`artlib.models.ARCHS`).
IMAGENET_ARCHS = {"resnet18": "resnet18-imagenet", "resnet50": "resnet50", "wide_resnet50_2": "wide-resnet50-2"}

#: Inequality Sec. 4.3 / Fig. 3: noise budgets on 3x224x224 ImageNet images (perturbed "subpixels").
IMAGENET_NOISE_PIXELS = (500, 1000, 5000, 10000, 20000)

#: Environment variable naming the folder of robust-models-transfer checkpoints when ``checkpoints=None``.
CHECKPOINTS_ENV = "ARTLIB_ROBUST_MODELS"

#: Sec. 4.2: region size of the regional Gini (and of the occlusion's regional map, Sec. 3.2.2) per dataset.
REGION = {"cifar10": 4, "imagenet": 16}

#: Inductive-occlusion budgets ``(max count N, max radius R)``: ImageNet Sec. 4.4 / A.4 groups 1 and 2; CIFAR-10
#: A.9 (N=10, R=4) — artlib adds (5, 2), half of it, as CIFAR-10's "group 1" for the A.4 transfer table (the paper
#: halves the ImageNet budget the same way).
OCCLUSION_BUDGETS = {"cifar10": [(5, 2), (10, 4)], "imagenet": [(5, 10), (10, 20)]}

#: A.4: the noise attacks' threshold (5000 entries of a 3x224x224 image); :func:`scaled_pixels` rescales it.
NOISE_THRESHOLD = 5000


# ----------------------------------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------------------------------
@contextlib.contextmanager
def _seeded(seed: Optional[int]):
    """Seed torch (CPU) and numpy's global RNGs for the block and restore both afterwards; no-op for None."""
    if seed is None:
        yield
        return
    state = np.random.get_state()
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed))
            np.random.seed(int(seed) % 2 ** 32)
            yield
    finally:
        np.random.set_state(state)


def _check_xy(x, y) -> torch.Tensor:
    if not isinstance(x, torch.Tensor) or x.dim() != 4 or not x.is_floating_point():
        raise ValueError(f"x must be a float tensor [B, C, H, W], got "
                         f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}")
    if not isinstance(y, torch.Tensor) or y.dim() != 1 or y.shape[0] != x.shape[0] or y.is_floating_point():
        raise ValueError(f"y must be an integer tensor [B] with B = {x.shape[0]}, got "
                         f"{tuple(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__}")
    return y.to(x.device)


def _check_models(models) -> dict:
    if not isinstance(models, Mapping) or not models:
        raise ValueError(f"models must be a non-empty mapping label -> nn.Module, got {type(models).__name__}")
    return dict(models)


def _chunks(n: int, size: Optional[int]):
    size = n if not size else int(size)
    for s in range(0, n, size):
        yield slice(s, min(n, s + size))


def _progress(it, enabled: bool, desc: str, total: Optional[int] = None):
    if not enabled:
        return it
    from tqdm.auto import tqdm
    return tqdm(it, desc=desc, total=total, leave=False)


# ----------------------------------------------------------------------------------------------------------------------
# models and images
# ----------------------------------------------------------------------------------------------------------------------
def model_spec(label: str, profile: str = "smoke", arch: Optional[str] = None) -> tuple[str, dict]:
    """The ``(method, overrides)`` that :func:`artlib.reproduce.get_model` trains model ``label`` with.

    Args:
        label (str): a key of :data:`MODELS` (``"standard"``, ``"linf-1"`` ... ``"linf-8"``, ``"l2-0.5"``,
            ``"cutout-linf-8"``).
        profile (str): ``"smoke"`` / ``"reference"``: the reference zoo's model of ``label`` (``"paper"``: the
            paper profile of :func:`artlib.train.config`). Default ``"smoke"``.
        arch (str, optional): architecture override (e.g. ``"resnet18"``, ``"densenet121-cifar"`` for the paper's
            CIFAR-10 models). Default None (the profile's: small-cnn / wrn-28-10).

    Returns:
        ``(method, overrides)``.

    Example::

        >>> model_spec("linf-4")
        ('pgd', {'eps': 0.01568...})
    """
    if label not in MODELS:
        raise ValueError(f"unknown model {label!r}; choices: {list(MODELS)}")
    if profile not in ("smoke", "reference", "paper"):
        raise ValueError(f"unknown profile {profile!r}; choices: ['smoke', 'reference', 'paper']")
    method, own = MODELS[label]
    overrides = dict(own)  # smoke / reference: the zoo's model (artlib.reproduce.get_model); paper: the paper's
    if arch is not None:
        overrides["arch"] = arch
    return method, overrides


def imagenet_checkpoint_name(label: str, arch: str = "resnet50") -> str:
    """File name of model ``label`` among the microsoft/robust-models-transfer ImageNet checkpoints.

    ``standard`` is the ``l2`` eps = 0 file (the same pipeline without attack), ``linf-E`` is ``<arch>_linf_epsE.0``,
    ``l2-E`` is ``<arch>_l2_epsE`` (their l2 names have no ``.0``; A.5 uses eps 3, the README's ResNet-50 l2 model).
    Cutout models have no ImageNet checkpoint.

    Example::

        >>> imagenet_checkpoint_name("linf-8", "resnet50")
        'resnet50_linf_eps8.0.ckpt'
    """
    if arch not in IMAGENET_ARCHS:
        raise ValueError(f"unknown ImageNet arch {arch!r}; choices: {list(IMAGENET_ARCHS)}")
    if label == "standard":
        return f"{arch}_l2_eps0.ckpt"
    if label.startswith("linf-") and label[5:].isdigit():
        return f"{arch}_linf_eps{float(label[5:]):.1f}.ckpt"
    if label.startswith("l2-"):
        value = label[3:]
        return f"{arch}_l2_eps{value[:-2] if value.endswith('.0') else value}.ckpt"
    raise ValueError(f"no robust-models-transfer checkpoint for model {label!r}; choices: 'standard', 'linf-1', "
                     f"'linf-2', 'linf-4', 'linf-8', 'l2-3' (any l2-<eps> of their README)")


def _imagenet_model(label: str, arch: str, checkpoints) -> nn.Module:
    from artlib import models
    folder = checkpoints or os.environ.get(CHECKPOINTS_ENV)
    if not folder:
        raise ValueError(f"ImageNet models need the robust-models-transfer checkpoints from local files: pass "
                         f"checkpoints=<folder> (or set ${CHECKPOINTS_ENV}); artlib never downloads them")
    name = imagenet_checkpoint_name(label, arch)
    folder = Path(folder)
    candidates = [folder / (Path(name).stem + ".weights.pt"), folder / name]  # converted file first (no unpickling)
    path = next((p for p in candidates if p.is_file()), None)
    if path is None:
        raise FileNotFoundError(f"model {label!r}: none of {[str(p) for p in candidates]} exists (convert an original "
                                f"once with `python -m artlib models convert FILE --trust-pickle`)")
    return models.load_robustness_checkpoint(path, IMAGENET_ARCHS[arch]).eval()


def get_models(profile: str, labels: Sequence[str], dataset: str = "cifar10", arch: Optional[str] = None,
               checkpoints=None, device=None, progress: bool = False) -> dict:
    """The compared models, in eval mode, keyed by label (in the order of ``labels``).

    CIFAR-10 (and any dataset :func:`artlib.train.config` trains): each model comes from
    :func:`artlib.reproduce.get_model` with :func:`model_spec` — trained once, then loaded from the checkpoint cache
    by every notebook. ImageNet: the robust-models-transfer checkpoints (Inequality Sec. 4.1) are loaded from the
    local folder ``checkpoints`` (or ``$ARTLIB_ROBUST_MODELS``) with :func:`artlib.models.load_robustness_checkpoint`
    — file names from :func:`imagenet_checkpoint_name`, a converted ``<stem>.weights.pt`` preferred.

    Args:
        profile (str): ``"smoke"`` or ``"paper"``.
        labels (sequence of str): keys of :data:`MODELS`.
        dataset (str): ``"cifar10"`` (default) or ``"imagenet"``.
        arch (str, optional): CIFAR-10: a :data:`artlib.models.ARCHS` name (paper: ``"resnet18"``,
            ``"densenet121-cifar"``); ImageNet: a key of :data:`IMAGENET_ARCHS` (default ``"resnet50"``).
        checkpoints (path, optional): ImageNet checkpoint folder.
        device (str or torch.device, optional): move the models there. Default None (where they were built).
        progress (bool): tqdm bars while training. Default False.

    Returns:
        dict ``label -> nn.Module``.

    Example::

        >>> models = get_models("smoke", ["standard", "linf-8"])
    """
    labels = list(labels)
    if not labels:
        raise ValueError("labels must name at least one model")
    out = {}
    for label in labels:
        if dataset == "imagenet":
            out[label] = _imagenet_model(label, arch or "resnet50", checkpoints)
            continue
        from artlib import reproduce
        method, overrides = model_spec(label, profile, arch)
        model, _ = reproduce.get_model(profile, dataset, method, progress=progress, **overrides)
        out[label] = model.eval()
    if device is not None:
        out = {k: m.to(device) for k, m in out.items()}
    return out


def paper_eps(label: str) -> str:
    """The ``eps`` key of :mod:`artlib.paper_numbers` rows for model ``label`` (``"standard"`` -> ``"0"``,
    ``"linf-8"`` -> ``"8/255"``); ValueError for other models."""
    if label == "standard":
        return "0"
    if label.startswith("linf-") and label[5:].isdigit():
        return f"{label[5:]}/255"
    raise ValueError(f"model {label!r} has no eps row in the paper's tables; choices: 'standard', 'linf-<E>'")


def eval_images(dataset: str = "cifar10", n: int = 500, root=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Up to ``n`` real test images and labels: the class-stratified CIFAR-10 test subset, or the ImageNet
    validation images of the data root (``imagenet`` folders, else ``imagenet-samples``), 224x224.

    Args:
        dataset (str): ``"cifar10"``, ``"imagenet"`` or another :data:`artlib.data.DATASETS` name with a test/val
            split. Default ``"cifar10"``.
        n (int): number of images (at most the split's size). Default 500.
        root (path, optional): data root (default ``$ARTLIB_DATA``, else ``./data``).

    Returns:
        ``(x [n, C, H, W] in [0, 1], y [n] long)``, ordered so that classes take turns (every prefix, e.g. the first
        ``n`` images :func:`correct_by_all` keeps, is class-balanced).

    Example::

        >>> x, y = eval_images("cifar10", 200)
    """
    from artlib import data
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    if dataset not in data.DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; choices: {list(data.DATASETS)}")
    split = "val" if "val" in data.DATASETS[dataset].splits and dataset == "imagenet" else "test"
    ds = data.load_dataset(dataset, split, root=root)
    if len(ds) > n:
        ds = data.subset_dataset(ds, n)
    xs, ys = zip(*[(item[0], int(item[1])) for item in (ds[i] for i in range(len(ds)))])
    y = np.asarray(ys)
    # classes take turns (each class's first image, then each class's second, ...), so any prefix is class-balanced
    rank = np.empty(len(y), dtype=np.int64)
    for c in np.unique(y):
        rank[y == c] = np.arange(int((y == c).sum()))
    order = torch.from_numpy(np.lexsort((y, rank)))
    return torch.stack(xs)[order], torch.tensor(ys, dtype=torch.long)[order]


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """Predicted labels ``[B]`` of ``model`` (eval mode inside, mode restored), in batches of ``batch_size``."""
    with _eval_mode(model):
        return torch.cat([model(x[s]).argmax(1) for s in _chunks(x.shape[0], batch_size)])


def correct_by_all(models: Mapping[str, nn.Module], x: torch.Tensor, y: torch.Tensor, n: Optional[int] = None,
                   batch_size: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """The images every model classifies correctly (Inequality Sec. 4.1: "we first select 1000 random images ...
    that are correctly classified by all the models"), the first ``n`` of them.

    Args:
        models (mapping): label -> model.
        x (Tensor): ``[B, C, H, W]`` in ``[0, 1]``; y (Tensor): ``[B]``.
        n (int, optional): keep at most this many. Default None (all).
        batch_size (int): forward batch. Default 256.

    Returns:
        ``(x_sel, y_sel)``.

    Example::

        >>> x, y = correct_by_all(models, *eval_images("cifar10", 500), n=100)
    """
    models = _check_models(models)
    y = _check_xy(x, y)
    ok = torch.ones_like(y, dtype=torch.bool)
    for m in models.values():
        ok &= predict(m, x, batch_size) == y
    idx = torch.nonzero(ok).flatten()
    if n is not None:
        idx = idx[:int(n)]
    return x[idx], y[idx]


def expected_images(n: int, pool: int, pool_size: int, selected: int) -> int:
    """How many selected images a notebook's check expects from :func:`correct_by_all`: ``n`` when the test pool
    holds the ``pool`` images asked for, else (a data root whose test split is smaller than the pool, e.g. a fresh
    machine's 20 foolbox images) the ``selected`` ones it offers, at most ``n``.

    Example::

        >>> x, y = correct_by_all(models, x_pool, y_pool, n=500)
        >>> expected_images(500, 3000, len(y_pool), len(y))       # 500 on the full test set, len(y) on 20 images
    """
    return int(n) if int(pool_size) >= int(pool) else min(int(n), int(selected))


def accuracy_table(models: Mapping[str, nn.Module], x: torch.Tensor, y: torch.Tensor,
                   batch_size: int = 256) -> pd.DataFrame:
    """Clean accuracy of each model on ``(x, y)``: DataFrame ``model, n, clean_acc`` (fraction)."""
    models = _check_models(models)
    y = _check_xy(x, y)
    rows = [dict(model=k, n=int(y.numel()), clean_acc=(predict(m, x, batch_size) == y).float().mean().item())
            for k, m in models.items()]
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------------------------------------------------
# attributions
# ----------------------------------------------------------------------------------------------------------------------
ATTRIBUTION_METHODS = ("ig", "input_x_gradient", "smoothgrad", "gradshap")


def attribution_settings(method: str, setting: str = "paper", image_size: int = 32) -> dict:
    """Keyword arguments of :func:`artlib.attribution.attribute` for ``method`` in the Inequality paper.

    ``setting="paper"`` (appendix A.8): IG ``n_steps=20`` with a N(0, 1) baseline; GradShap ``n_samples`` 10
    (CIFAR-10) / 20 (ImageNet), baseline 0; SmoothGrad ``n_samples=20`` (noise level not given: the library's
    0.15); Input X Gradient. The paper's models take *normalised* images (its released code normalises in the data
    transform and attributes the bare network), so its N(0, 1) baseline lives in normalised space: here, with
    normalisation inside the model, that is ``mean + std * N(0, 1)`` in pixel space (``"gaussian_normalized"``,
    resolved in :func:`attribute`; :func:`artlib.attribution.attribute`'s ``"gaussian"`` would draw N(0, 1) in pixel
    space — about 4-5x wider on CIFAR-10 / ImageNet, which drowns the maps in baseline noise: on the smoke models the
    regional Gini drops by ~0.07 and the standard / l-inf gap shrinks). ``setting="released"`` (``utils.py`` of the
    authors' code, IG only — their default): IG ``n_steps=50`` with the zero baseline *in normalised space*, i.e.
    the dataset-mean image (``"mean"``).

    Returns:
        dict of :func:`artlib.attribution.attribute` keywords (``"baselines"`` may be one of the two names above).

    Example::

        >>> attribution_settings("ig")
        {'n_steps': 20, 'baselines': 'gaussian_normalized'}
    """
    if method not in ATTRIBUTION_METHODS:
        raise ValueError(f"unknown attribution method {method!r}; choices: {list(ATTRIBUTION_METHODS)}")
    if setting not in ("paper", "released"):
        raise ValueError(f"unknown setting {setting!r}; choices: ['paper', 'released']")
    if setting == "released":
        if method != "ig":
            raise ValueError(f"setting='released' is defined for method 'ig' only (the released scripts' default), "
                             f"got {method!r}")
        return {"n_steps": 50, "baselines": "mean"}
    return {"ig": {"n_steps": 20, "baselines": "gaussian_normalized"},
            "input_x_gradient": {},
            "smoothgrad": {"n_samples": 20},
            "gradshap": {"n_samples": 10 if image_size <= 64 else 20}}[method]


def _normalize_stats(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    from artlib import models
    for m in model.modules():
        if isinstance(m, models.Normalize):
            return m.mean.to(x), m.std.to(x)
    raise ValueError("baselines in normalised space need a model with an artlib.models.Normalize layer")


def _baseline(name, model: nn.Module, x: torch.Tensor, seed: int):
    """Resolve the normalised-space baselines of :func:`attribution_settings` to pixel-space tensors."""
    if not isinstance(name, str) or name not in ("mean", "gaussian_normalized"):
        return name
    mean, std = _normalize_stats(model, x)
    if name == "mean":
        return mean.expand_as(x)
    z = torch.randn(x.shape, generator=torch.Generator().manual_seed(int(seed)), dtype=x.dtype).to(x.device)
    return mean + std * z


def attribute(model: nn.Module, x: torch.Tensor, y: torch.Tensor, method: str = "ig", setting: str = "paper", *,
              seed: int = 0, batch_size: int = 64, progress: bool = False, **overrides) -> torch.Tensor:
    """Attributions of the label logit with the Inequality paper's settings (:func:`attribution_settings`), in
    batches; deterministic for ``seed`` (batch ``k`` uses ``seed + k``).

    Args:
        model (nn.Module): classifier on ``[0, 1]`` images.
        x (Tensor): ``[B, C, H, W]``; y (Tensor): labels ``[B]`` (the attributed class; the paper's images are
            correctly classified, so label = prediction).
        method (str): ``"ig"`` (default), ``"input_x_gradient"``, ``"smoothgrad"``, ``"gradshap"``.
        setting (str): ``"paper"`` (A.8, default) or ``"released"`` (IG only).
        seed (int): seeds the Gaussian baseline / SmoothGrad / GradShap draws. Default 0.
        batch_size (int): images per call. Default 64.
        progress (bool): tqdm over batches. Default False.
        **overrides: replace any :func:`artlib.attribution.attribute` keyword (e.g. ``n_steps=50``).

    Returns:
        Tensor shaped like ``x``.

    Example::

        >>> a = attribute(model, x, y, "ig")      # IG, 20 steps, N(0, 1) baseline in normalised space (A.8)
    """
    from artlib import attribution
    y = _check_xy(x, y)
    kw = {**attribution_settings(method, setting, x.shape[-1]), **overrides}
    chunks = list(_chunks(x.shape[0], batch_size))
    out = []
    for k, s in enumerate(_progress(chunks, progress, f"{method}")):
        kws = dict(kw)
        if "baselines" in kws:
            kws["baselines"] = _baseline(kws["baselines"], model, x[s], seed + k)
        out.append(attribution.attribute(model, x[s], y[s], method, seed=seed + k, **kws))
    return torch.cat(out)


# ----------------------------------------------------------------------------------------------------------------------
# Gini
# ----------------------------------------------------------------------------------------------------------------------
def gini_table(attrs: Mapping[str, torch.Tensor], region: int, setting: str = "paper") -> pd.DataFrame:
    """Table 1's columns for each model: mean and standard deviation over images of the global Gini
    (:func:`artlib.metrics.gini_global`) and the regional Gini over ``region x region`` blocks
    (:func:`artlib.metrics.gini_regional`; paper: 4 on CIFAR-10, 16 on ImageNet).

    Args:
        attrs (mapping): label -> attributions ``[B, C, H, W]``.
        region (int): block side in pixels.
        setting (str): ``"paper"`` (``|a|``, default) or ``"released"`` (positive part), as :mod:`artlib.metrics`.

    Returns:
        DataFrame with columns ``model, n, gini_global, gini_global_std, gini_regional, gini_regional_std``.

    Example::

        >>> gini_table({"standard": a0, "linf-8": a8}, region=4)
    """
    from artlib import metrics
    if not isinstance(attrs, Mapping) or not attrs:
        raise ValueError("attrs must be a non-empty mapping label -> attributions")
    rows = []
    for label, a in attrs.items():
        g = metrics.gini_global(a, setting=setting).double()
        r = metrics.gini_regional(a, region, setting=setting).double()
        rows.append(dict(model=label, n=int(a.shape[0]), gini_global=g.mean().item(),
                         gini_global_std=g.std(unbiased=False).item(), gini_regional=r.mean().item(),
                         gini_regional_std=r.std(unbiased=False).item()))
    return pd.DataFrame(rows)


def gini_samples(attrs: Mapping[str, torch.Tensor], region: int, setting: str = "paper",
                 labels: Optional[torch.Tensor] = None) -> pd.DataFrame:
    """Per-image global and regional Gini (Sec. 3.1; :func:`artlib.metrics.gini_global`, ``gini_regional``) of each
    model's attributions: the samples behind :func:`gini_table`'s means, for the claims' bootstrap
    (:mod:`artlib.claims`). Images keep their order, so two models on the same images are paired by ``image``.

    Args:
        attrs (mapping): label -> attributions ``[B, C, H, W]``. region (int): block side. setting (str): as
        :func:`gini_table`. labels (tensor, optional): ``[B]`` classes, written as a ``label`` column.

    Returns:
        DataFrame ``model, image, [label], gini_global, gini_regional`` with one row per model and image.

    Example::

        >>> gini_samples({"standard": a0, "linf-8": a8}, region=4).groupby("model").gini_global.mean()
    """
    from artlib import metrics
    if not isinstance(attrs, Mapping) or not attrs:
        raise ValueError("attrs must be a non-empty mapping label -> attributions")
    parts = []
    for label, a in attrs.items():
        d = {"model": label, "image": np.arange(a.shape[0])}
        if labels is not None:
            d["label"] = labels.detach().cpu().numpy()
        d["gini_global"] = metrics.gini_global(a, setting=setting).double().cpu().numpy()
        d["gini_regional"] = metrics.gini_regional(a, region, setting=setting).double().cpu().numpy()
        parts.append(pd.DataFrame(d))
    return pd.concat(parts, ignore_index=True)


def mass_share(attr: torch.Tensor, fraction: float = 0.05) -> torch.Tensor:
    """Share of the total ``|a|`` held by the top ``fraction`` of each sample's entries (A.3's reading of the Gini:
    "Gini of about 0.95 ... less than 5 % of pixels dominate the prediction").

    Args:
        attr (Tensor): ``[B, ...]`` attributions.
        fraction (float): top fraction of entries, in ``(0, 1]``. Default 0.05.

    Returns:
        Tensor[B] in ``[0, 1]`` (0 for an all-zero map).

    Example::

        >>> mass_share(torch.tensor([[0., 0, 0, 1]]), 0.25)
        tensor([1.])
    """
    if not isinstance(attr, torch.Tensor) or attr.dim() < 2:
        raise ValueError("attr must be a batched tensor [B, ...]")
    if not isinstance(fraction, (int, float)) or not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction!r}")
    a = attr.detach().flatten(1).abs().double()
    k = max(1, int(round(fraction * a.shape[1])))
    total = a.sum(1)
    top = a.topk(k, dim=1).values.sum(1)
    return torch.where(total > 0, top / torch.where(total > 0, total, torch.ones_like(total)),
                       torch.zeros_like(total)).to(attr.dtype if attr.is_floating_point() else torch.float32)


# ----------------------------------------------------------------------------------------------------------------------
# inductive noise and occlusion
# ----------------------------------------------------------------------------------------------------------------------
def scaled_pixels(numel: int, budgets: Sequence[int] = IMAGENET_NOISE_PIXELS, reference: int = 3 * 224 * 224) -> list:
    """Noise budgets rescaled from ImageNet's ``3 x 224 x 224`` entries to images of ``numel`` entries, keeping the
    perturbed fraction (Fig. 3: 500 ... 20,000 of 150,528 entries = 0.33 % ... 13.3 %), at least 1 each.

    Example::

        >>> scaled_pixels(3 * 32 * 32)
        [10, 20, 102, 204, 408]
    """
    if not isinstance(numel, int) or numel < 1:
        raise ValueError(f"numel must be a positive int, got {numel!r}")
    return [max(1, min(numel, int(round(b * numel / reference)))) for b in budgets]


def noise_table(models: Mapping[str, nn.Module], x: torch.Tensor, y: torch.Tensor,
                attrs: Mapping[str, torch.Tensor], thresholds: Sequence[int],
                kinds: Sequence[str] = ("random", "I", "II"), setting: str = "paper", seed: int = 0,
                batch_size: Optional[int] = 256) -> pd.DataFrame:
    """Fig. 3: error rate of each model under random noise and inductive noise I / II for each budget, each budget
    evaluated on its own (:func:`artlib.attacks.inductive_noise` with one threshold, the same ``seed`` for every
    budget and model, so the noise draw is shared).

    Args:
        models (mapping): label -> model; attrs (mapping): label -> attributions shaped like ``x`` (same labels).
        x, y: correctly classified images and their labels.
        thresholds (sequence of int): numbers of perturbed entries (e.g. :func:`scaled_pixels`).
        kinds (sequence of str): among ``"random"``, ``"I"``, ``"II"``.
        setting (str): ``"paper"`` (N(0, 1) in normalised space) or ``"released"``.
        seed (int): noise seed. Default 0.
        batch_size (int, optional): forward batch.

    Returns:
        DataFrame ``model, kind, pixels, n, error_rate`` (error rate = fraction of the ``n`` images with
        ``f(x') != y``).

    Example::

        >>> noise_table(models, x, y, attrs, scaled_pixels(3 * 32 * 32))
    """
    from artlib import attacks
    models = _check_models(models)
    y = _check_xy(x, y)
    rows = []
    for label, m in models.items():
        for kind in kinds:
            for t in thresholds:
                res = attacks.inductive_noise(m, x, y, attrs[label], int(t), kind, setting=setting, seed=seed,
                                              batch_size=batch_size)
                rows.append(dict(model=label, kind=kind, pixels=int(t), n=int(len(y)),
                                 error_rate=res.success.float().mean().item()))
    return pd.DataFrame(rows)


def occlusion_table(models: Mapping[str, nn.Module], x: torch.Tensor, y: torch.Tensor,
                    attrs: Mapping[str, torch.Tensor], region: int, max_count: int, max_radius: int,
                    colors: Sequence[str] = ("black", "grey", "white"), setting: str = "paper",
                    batch_size: Optional[int] = 256) -> tuple[pd.DataFrame, dict]:
    """Table 2 / A.9: error rate of each model under inductive occlusion (:func:`artlib.attacks.inductive_occlusion`,
    Algorithm 1) for each patch colour.

    Args:
        models, attrs (mapping): label -> model / attributions.
        x, y: correctly classified images and labels.
        region (int): block size of the regional attribution map (paper: 4 on CIFAR-10, 16 on ImageNet).
        max_count (int), max_radius (int): ``N`` and ``R`` (CIFAR-10 A.9: 10 and 4; ImageNet: (5, 10), (10, 20)).
        colors (sequence of str): patch colours. Default black, grey, white.
        setting (str): ``"paper"`` (default) or ``"released"`` (see the attack).
        batch_size (int, optional): forward batch.

    Returns:
        ``(table, results)``: DataFrame ``model, color, n, error_rate, mean_count, mean_radius`` (``n`` images;
        count / radius of the successful budgets) and ``{(label, color): OcclusionResult}``.

    Example::

        >>> df, res = occlusion_table(models, x, y, attrs, region=4, max_count=10, max_radius=4)
    """
    from artlib import attacks
    models = _check_models(models)
    y = _check_xy(x, y)
    rows, results = [], {}
    for label, m in models.items():
        for color in colors:
            res = attacks.inductive_occlusion(m, x, y, attrs[label], region, max_count, max_radius, color,
                                              setting=setting, batch_size=batch_size)
            s = res.success
            rows.append(dict(model=label, color=color, n=int(len(y)), error_rate=s.float().mean().item(),
                             mean_count=res.count[s].float().mean().item() if s.any() else float("nan"),
                             mean_radius=res.radius[s].float().mean().item() if s.any() else float("nan")))
            results[(label, color)] = res
    return pd.DataFrame(rows), results


def transfer_table(models: Mapping[str, nn.Module], y: torch.Tensor, x_adv: Mapping[str, torch.Tensor],
                   success: Mapping[str, torch.Tensor], batch_size: int = 256) -> pd.DataFrame:
    """A.4 / Table 4: transferability of attacked images — for each source model, its successful attacked images
    (occluded or noisy) fed to every target model.

    Args:
        models (mapping): label -> model (targets; also the sources named in ``x_adv``).
        y (Tensor): labels ``[B]`` (the images are correct for every model).
        x_adv (mapping): source label -> attacked images ``[B, C, H, W]``.
        success (mapping): source label -> bool ``[B]``, the attack fooled the source.

    Returns:
        DataFrame ``source, target, n, transfer_rate``: ``n`` successful source images, and the fraction of them
        that the target also misclassifies (1 on the diagonal by construction).

    Example::

        >>> transfer_table(models, y, {k: r.x_adv for k, r in res.items()}, {k: r.success for k, r in res.items()})
    """
    models = _check_models(models)
    rows = []
    for src, xa in x_adv.items():
        ok = success[src].to(torch.bool)
        for tgt, m in models.items():
            n = int(ok.sum())
            rate = (predict(m, xa[ok], batch_size) != y[ok].to(xa.device)).float().mean().item() if n else float("nan")
            rows.append(dict(source=src, target=tgt, n=n, transfer_rate=rate))
    return pd.DataFrame(rows)


def attack_summary(models: Mapping[str, nn.Module], x: torch.Tensor, y: torch.Tensor,
                   attrs: Mapping[str, torch.Tensor], dataset: str = "cifar10",
                   colors: Sequence[str] = ("black", "grey", "white"), noise_kind: str = "I", seed: int = 0,
                   setting: str = "paper") -> pd.DataFrame:
    """One row per model with the columns of the paper's A.5 / A.6 / Table 3 / Table 8 tables: Gini (global,
    regional over :data:`REGION` blocks), inductive-occlusion error per colour at the dataset's largest
    :data:`OCCLUSION_BUDGETS` budget, and the inductive-noise error at :data:`NOISE_THRESHOLD` entries (rescaled to
    the image size with :func:`scaled_pixels`).

    Args:
        models, attrs (mapping): label -> model / its attributions of ``x``.
        x, y: images correctly classified by every model, and their labels.
        dataset (str): ``"cifar10"`` or ``"imagenet"`` (region and budgets). Default ``"cifar10"``.
        colors (sequence of str): occlusion colours. noise_kind (str): ``"I"`` / ``"II"`` / ``"random"``.
        seed (int): noise seed. setting (str): ``"paper"`` or ``"released"`` for the Gini and both attacks.

    Returns:
        DataFrame ``model, n, gini_global, gini_regional, occ_<color>... (error fractions), noise_<kind>``.

    Example::

        >>> attack_summary(models, x, y, attrs, "cifar10")
    """
    if dataset not in REGION:
        raise ValueError(f"unknown dataset {dataset!r}; choices: {list(REGION)}")
    region = REGION[dataset]
    max_count, max_radius = OCCLUSION_BUDGETS[dataset][-1]
    pixels = scaled_pixels(x[0].numel(), [NOISE_THRESHOLD])[0]
    g = gini_table(attrs, region, setting).set_index("model")
    occ, _ = occlusion_table(models, x, y, attrs, region, max_count, max_radius, colors, setting)
    noise = noise_table(models, x, y, attrs, [pixels], [noise_kind], setting, seed).set_index("model")
    rows = []
    for label in models:
        row = dict(model=label, n=int(g.loc[label, "n"]), gini_global=g.loc[label, "gini_global"],
                   gini_regional=g.loc[label, "gini_regional"])
        for c in colors:
            row[f"occ_{c}"] = occ.query("model == @label and color == @c").error_rate.item()
        row[f"noise_{noise_kind}"] = noise.loc[label, "error_rate"]
        rows.append(row)
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------------------------------------------------
# visualisation (Figs 5-6)
# ----------------------------------------------------------------------------------------------------------------------
def clip_rescale(attr: torch.Tensor, n_sigma: Optional[float] = 3.0) -> torch.Tensor:
    r"""The usual attribution visualisation (Tsipras et al., ICLR 2019: "we clip gradients to within +-3 sigma and
    rescale them to lie in the [0, 1] range"), which the Inequality paper (A.2, Figs 5-6) shows hides the few
    dominating entries.

    Per sample, with mean ``mu`` and standard deviation ``sigma`` over all ``C x H x W`` entries: clip to
    ``[mu - n sigma, mu + n sigma]``, then min-max rescale to ``[0, 1]``. ``n_sigma=None`` skips the clip (the map
    "without post-processing": the raw attribution, min-max rescaled, where a few extreme entries use the whole
    range). A constant map gives 0.5.

    Args:
        attr (Tensor): ``[B, ...]`` attributions.
        n_sigma (float, optional): clip width in standard deviations. Default 3.0.

    Returns:
        Tensor shaped like ``attr`` in ``[0, 1]``.

    Example::

        >>> img = clip_rescale(ig)          # [B, 3, H, W], show as an RGB image
    """
    if not isinstance(attr, torch.Tensor) or attr.dim() < 2:
        raise ValueError(f"attr must be a batched tensor [B, ...], got "
                         f"{tuple(attr.shape) if isinstance(attr, torch.Tensor) else type(attr).__name__}")
    if n_sigma is not None and not n_sigma > 0:
        raise ValueError(f"n_sigma must be a positive number or None, got {n_sigma!r}")
    flat = attr.detach().flatten(1).double()
    if n_sigma is not None:
        mu = flat.mean(1, keepdim=True)
        sd = flat.std(1, unbiased=False, keepdim=True)
        flat = torch.max(torch.min(flat, mu + n_sigma * sd), mu - n_sigma * sd)
    lo, hi = flat.amin(1, keepdim=True), flat.amax(1, keepdim=True)
    span = hi - lo
    out = torch.where(span > 0, (flat - lo) / torch.where(span > 0, span, torch.ones_like(span)),
                      torch.full_like(flat, 0.5))
    return out.to(attr.dtype).view(attr.shape)


# ----------------------------------------------------------------------------------------------------------------------
# per-class Gini (A.7)
# ----------------------------------------------------------------------------------------------------------------------
def class_gini(values: torch.Tensor, labels: torch.Tensor, class_names: Optional[Sequence[str]] = None
               ) -> pd.DataFrame:
    """A.7: mean per-image Gini of each class, sorted from the most to the least unequal.

    Args:
        values (Tensor): per-image Gini ``[B]`` (e.g. :func:`artlib.metrics.gini_global`).
        labels (Tensor): class index per image ``[B]``.
        class_names (sequence of str, optional): names indexed by class.

    Returns:
        DataFrame ``class, name, n, gini, gini_std`` sorted by ``gini`` descending (ties by class).

    Example::

        >>> top_bottom(class_gini(metrics.gini_global(a), y, CIFAR10_CLASSES), k=5)
    """
    if not isinstance(values, torch.Tensor) or values.dim() != 1:
        raise ValueError("values must be a tensor [B]")
    if not isinstance(labels, torch.Tensor) or labels.shape != values.shape:
        raise ValueError(f"labels must be a tensor of shape {tuple(values.shape)}")
    v, lab = values.double().cpu(), labels.long().cpu()
    rows = []
    for c in torch.unique(lab).tolist():
        sel = v[lab == c]
        rows.append({"class": int(c), "name": class_names[c] if class_names is not None else str(c),
                     "n": int(sel.numel()), "gini": sel.mean().item(), "gini_std": sel.std(unbiased=False).item()})
    df = pd.DataFrame(rows)
    return df.sort_values(["gini", "class"], ascending=[False, True], kind="stable").reset_index(drop=True)


def top_bottom(df: pd.DataFrame, k: int = 5, column: str = "gini") -> pd.DataFrame:
    """The ``k`` classes with the highest and the ``k`` with the lowest ``column`` (Table 6's top-5 / bottom-5), with
    a ``group`` column ``"top"`` / ``"bottom"``; bottom sorted ascending as the paper lists them."""
    if not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive int, got {k!r}")
    d = df.sort_values(column, ascending=False, kind="stable")
    top = d.head(k).assign(group="top")
    bottom = d.tail(k).iloc[::-1].assign(group="bottom")
    return pd.concat([top, bottom], ignore_index=True)


# ----------------------------------------------------------------------------------------------------------------------
# pruning (A.6)
# ----------------------------------------------------------------------------------------------------------------------
def _check_amount(amount) -> float:
    if not isinstance(amount, (int, float)) or isinstance(amount, bool) or not 0 <= amount < 1:
        raise ValueError(f"amount must be a fraction in [0, 1), got {amount!r}")
    return float(amount)


def prune_filters_l1(model: nn.Module, amount: float) -> nn.Module:
    """A.6 "l1 norm pruning" (Li et al., "Pruning Filters for Efficient ConvNets", ICLR 2017): in every
    ``nn.Conv2d``, the ``round(amount * out_channels)`` filters of smallest l1 norm are removed — zeroed with
    ``torch.nn.utils.prune.ln_structured(n=1, dim=0)`` together with their bias, so their feature maps are 0 — and
    the pruning is made permanent. No fine-tuning (Li et al. retrain afterwards; artlib keeps the training loop in
    :mod:`artlib.train`).

    Args:
        model (nn.Module): the model (left unchanged).
        amount (float): fraction of filters per conv layer in ``[0, 1)``.

    Returns:
        a pruned deep copy, in the same train/eval mode.

    Example::

        >>> sparse = prune_filters_l1(standard, 0.3)
    """
    from torch.nn.utils import prune
    amount = _check_amount(amount)
    out = copy.deepcopy(model)
    for m in out.modules():
        if isinstance(m, nn.Conv2d) and amount > 0:
            prune.ln_structured(m, "weight", amount=amount, n=1, dim=0)
            mask = m.weight_mask.flatten(1).any(1)
            prune.remove(m, "weight")
            if m.bias is not None:
                with torch.no_grad():
                    m.bias.mul_(mask.to(m.bias.dtype))
    return out


def prune_weights(model: nn.Module, amount: float) -> nn.Module:
    """A.6 "weight pruning" (Han et al., "Learning both Weights and Connections", NeurIPS 2015): global magnitude
    pruning — the fraction ``amount`` of all ``nn.Conv2d`` / ``nn.Linear`` weights with the smallest ``|w|`` set to
    0 (``torch.nn.utils.prune.global_unstructured`` with ``L1Unstructured``), made permanent. No fine-tuning.

    Args:
        model (nn.Module): the model (left unchanged).
        amount (float): fraction of weights in ``[0, 1)``.

    Returns:
        a pruned deep copy.

    Example::

        >>> sparse = prune_weights(standard, 0.5); sparsity(sparse)
        0.5
    """
    from torch.nn.utils import prune
    amount = _check_amount(amount)
    out = copy.deepcopy(model)
    params = [(m, "weight") for m in out.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    if amount > 0 and params:
        prune.global_unstructured(params, pruning_method=prune.L1Unstructured, amount=amount)
        for m, name in params:
            prune.remove(m, name)
    return out


def sparsity(model: nn.Module) -> float:
    """Fraction of zero weights over all ``nn.Conv2d`` / ``nn.Linear`` weight tensors of ``model``."""
    ws = [m.weight.detach() for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    if not ws:
        raise ValueError("model has no Conv2d / Linear weights")
    return sum(int((w == 0).sum()) for w in ws) / sum(w.numel() for w in ws)


# ----------------------------------------------------------------------------------------------------------------------
# AutoAttack (Table 5)
# ----------------------------------------------------------------------------------------------------------------------
AUTOATTACK_ATTACKS = ("apgd-ce", "apgd-dlr", "deepfool", "square")


def autoattack_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, norm: str = "linf", *,
                        attacks: Sequence[str] = AUTOATTACK_ATTACKS, max_iter: int = 100, restarts: int = 5,
                        square_queries: int = 5000, batch_size: int = 128, seed: int = 0) -> dict:
    """Table 5: clean and robust accuracy under AutoAttack (Croce & Hein, ICML 2020) through the
    adversarial-robustness-toolbox (ART 1.20.1) implementation, ``art.attacks.evasion.AutoAttack``.

    ART's AutoAttack runs its attacks in sequence on the images still classified correctly and keeps an adversarial
    image only if it lies in the eps-ball. Its default list (used with the defaults here) is APGD-CE and APGD-DLR
    (``max_iter`` 100, ``restarts`` 5 random starts each), DeepFool and Square (``square_queries`` 5000, 5
    restarts) — ART's "standard" set, which differs from Croce & Hein's (APGD-CE, APGD-T, FAB-T, Square); name a
    shorter list / fewer iterations for a smoke run and say so.

    Args:
        model (nn.Module): classifier on ``[0, 1]`` images (eval mode inside, mode restored).
        x (Tensor): ``[B, C, H, W]`` in ``[0, 1]``; y (Tensor): labels ``[B]``.
        eps (float): radius (l-inf in pixel units, e.g. 8/255; or l2).
        norm (str): ``"linf"`` (default) or ``"l2"``.
        attacks (sequence of str): subset of :data:`AUTOATTACK_ATTACKS`, run in that order.
        max_iter (int), restarts (int): APGD iterations and random starts; DeepFool uses ``max_iter`` too.
        square_queries (int): Square attack iterations.
        batch_size (int): attack batch. Default 128.
        seed (int): seeds numpy / torch draws (restored afterwards). Default 0.

    Returns:
        dict ``clean_acc``, ``robust_acc`` (floats), ``x_adv`` (Tensor like ``x``, in ``[0, 1]`` and the eps-ball),
        ``robust`` (bool ``[B]``: correct on ``x_adv``).

    Example::

        >>> autoattack_accuracy(model, x, y, 8/255, attacks=("apgd-ce", "apgd-dlr"), max_iter=20, restarts=1)
    """
    y = _check_xy(x, y)
    max_iter, restarts, square_queries = (dryrun.iterations(v) for v in (max_iter, restarts, square_queries))
    if norm not in ("linf", "l2"):
        raise ValueError(f"unknown norm {norm!r}; choices: ['linf', 'l2']")
    if not isinstance(eps, (int, float)) or not eps > 0:
        raise ValueError(f"eps must be a positive number, got {eps!r}")
    unknown = [a for a in attacks if a not in AUTOATTACK_ATTACKS]
    if unknown or not attacks:
        raise ValueError(f"unknown attack(s) {unknown or attacks!r}; choices: {list(AUTOATTACK_ATTACKS)}")
    # ART's estimator switches the model's mode and back-propagates into the parameters' .grad: restore both
    grads = {p: p.grad for p in model.parameters()}
    try:
        with _eval_mode(model):
            return _autoattack(model, x, y, eps, norm, attacks, max_iter, restarts, square_queries, batch_size, seed)
    finally:
        for p, g in grads.items():
            p.grad = g


def _autoattack(model, x, y, eps, norm, attacks, max_iter, restarts, square_queries, batch_size, seed) -> dict:
    from art.attacks.evasion import AutoAttack, AutoProjectedGradientDescent, DeepFool, SquareAttack
    from art.estimators.classification import PyTorchClassifier

    art_norm = np.inf if norm == "linf" else 2
    with torch.no_grad():
        num_classes = int(model(x[:1]).shape[1])
    clf = PyTorchClassifier(model=model, loss=nn.CrossEntropyLoss(), input_shape=tuple(x.shape[1:]),
                            nb_classes=num_classes, clip_values=(0.0, 1.0),
                            device_type="gpu" if x.is_cuda else "cpu")
    step = eps / 4
    pool = []
    for a in attacks:
        if a in ("apgd-ce", "apgd-dlr"):
            pool.append(AutoProjectedGradientDescent(
                estimator=clf, norm=art_norm, eps=eps, eps_step=step, max_iter=max_iter, targeted=False,
                nb_random_init=restarts, batch_size=batch_size,
                loss_type="cross_entropy" if a == "apgd-ce" else "difference_logits_ratio", verbose=False))
        elif a == "deepfool":
            pool.append(DeepFool(classifier=clf, max_iter=max_iter, epsilon=1e-3, nb_grads=10, batch_size=batch_size,
                                 verbose=False))
        else:
            pool.append(SquareAttack(estimator=clf, norm=art_norm, max_iter=square_queries, eps=eps, p_init=0.8,
                                     nb_restarts=restarts, batch_size=batch_size, verbose=False))
    xn, yn = x.detach().cpu().numpy().astype(np.float32), y.cpu().numpy()
    with _seeded(seed):
        aa = AutoAttack(estimator=clf, norm=art_norm, eps=eps, eps_step=step, attacks=pool, batch_size=batch_size)
        x_adv = aa.generate(x=xn, y=yn)
    x_adv = torch.from_numpy(x_adv).to(x)
    clean = predict(model, x) == y
    robust = (predict(model, x_adv) == y) & clean
    return dict(clean_acc=clean.float().mean().item(), robust_acc=robust.float().mean().item(), x_adv=x_adv,
                robust=robust)
