"""The explorers' callbacks: plain functions behind the ipywidgets of ``40_explore_attributions.ipynb`` and
``41_explore_occlusion_noise.ipynb`` (testable without a browser; the notebooks only wire widgets to them).

Attributions (ART, Singh et al., ECCV 2020, Sec. 4.1 / Table 1; Inequality, Duan et al., ICLR 2023, Sec. 3.1):

* :func:`cached_runs` — every finished training run of the checkpoint cache (``runs/*/model.pt``).
* :func:`load_run` — one of them as ``(model, config)`` (cached in memory).
* :func:`attribution_view` — one image: its attribution map, the map after the top-k IFIA on Integrated Gradients
  (Ghorbani et al. 2019, as ART A.3.5 runs it; :func:`artlib.attacks.ifia`), top-k intersection (IN) and Kendall's
  tau (K) between the two maps, and the Gini index of each (Inequality Sec. 3.1, :func:`artlib.metrics.gini_global`).
* :func:`plot_attribution_view` — image, map, attacked map.

Inductive attacks (Inequality Sec. 3.2, :func:`artlib.attacks.inductive_occlusion` and
:func:`artlib.attacks.inductive_noise`):

* :func:`occlusion_view` / :func:`noise_view` — for each compared model, the selected image before and after the
  attack at the chosen budget (count / radius / colour; threshold / noise type), its prediction before and after,
  and the error rate of the attack over all loaded images at that budget.
* :func:`plot_perturbation_view` — one column per model: the attacked image titled with the prediction change.

Widget builders (:func:`attribution_controls`, :func:`occlusion_controls`, :func:`noise_controls`) return dicts of
ipywidgets keyed by the callbacks' argument names, so ``ipywidgets.interactive_output(callback, controls)`` wires
them.

Example::

    >>> from artlib import explore
    >>> runs = explore.cached_runs()                      # {"cifar10_art_small-cnn_smoke_seed0_...": Path, ...}
    >>> model, cfg = explore.load_run(next(iter(runs.values())))
    >>> x, y = explore.images(cfg.dataset, 16)
    >>> view = explore.attribution_view(model, x[:1], y[:1], "ig", eps=8 / 255, steps=5)
    >>> view["IN"], view["K"], view["gini"], view["gini_attacked"]
"""
from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Mapping, Optional, Sequence

import torch
from torch import nn

__all__ = ["ATTRIBUTION_METHODS", "OCCLUSION_COLORS", "NOISE_KINDS", "cached_runs", "load_run", "images",
           "class_names", "attribution_view", "plot_attribution_view", "occlusion_view", "noise_view",
           "plot_perturbation_view", "attribution_controls", "occlusion_controls", "noise_controls"]

#: Attribution methods offered by the explorer (:data:`artlib.attribution.METHODS` that work for any classifier).
ATTRIBUTION_METHODS = ("ig", "saliency", "input_x_gradient", "smoothgrad", "gradshap", "gradcam")
#: Occlusion colours of Inequality Table 2 / A.9.
OCCLUSION_COLORS = ("black", "grey", "white")
#: Noise types of Inequality Eq. 5 (I: added to the important entries, II: replacing them) and the random baseline.
NOISE_KINDS = ("I", "II", "random")


def _choice(name: str, value, choices) -> None:
    if value not in choices:
        raise ValueError(f"unknown {name} {value!r}; choices: {list(choices)}")


# ----------------------------------------------------------------------------------------------------------------------
# models and images
# ----------------------------------------------------------------------------------------------------------------------
def cached_runs(runs_dir: str | os.PathLike | None = None, dataset: Optional[str] = None,
                zoo_entries: bool = True) -> dict:
    """The models to explore, ``{name: path}``: the trained reference-zoo entries (``zoo:<name>`` -> checkpoint
    file, :mod:`artlib.zoo`) first, then the finished runs of the checkpoint cache (run folder name -> folder),
    sorted by name.

    Args:
        runs_dir: the cache (default ``$ARTLIB_RUNS``, else ``<repo>/runs``).
        dataset: keep only models trained on this dataset (the zoo's sidecar / each run's ``config.yaml``).
        zoo_entries: include the zoo. Default True.
    """
    import yaml

    from artlib import train, zoo

    out = {}
    if zoo_entries:
        for e in zoo.entries():
            if dataset is None or e["dataset"] == dataset:
                out[f"zoo:{e['name']}"] = Path(e["path"])
    root = Path(runs_dir or os.environ.get("ARTLIB_RUNS") or train.ROOT / "runs")
    for run in sorted(root.glob("*/model.pt")):
        cfg_path = run.parent / "config.yaml"
        if not cfg_path.is_file():
            continue
        if dataset is not None and (yaml.safe_load(cfg_path.read_text()) or {}).get("dataset") != dataset:
            continue
        out[run.parent.name] = run.parent
    return out


def run_key(result) -> str:
    """The :func:`cached_runs` key of a :func:`artlib.reproduce.get_model` result: ``zoo:<name>`` for a zoo model,
    else the run folder's name."""
    from artlib import zoo
    path = Path(result.checkpoint)
    return f"zoo:{path.stem}" if path.parent.resolve() == zoo.zoo_dir().resolve() else Path(result.run_dir).name


@functools.lru_cache(maxsize=16)
def _load(path: str, stamp: float):
    from artlib import train
    model = train.load_model(path)
    cfg = train.TrainConfig.load(Path(path) / "config.yaml")
    return model, cfg


def load_run(run_dir: str | os.PathLike):
    """``(model, TrainConfig)`` of a zoo checkpoint or a cached run, in eval mode; loaded once per checkpoint file
    (kept in memory)."""
    run_dir = Path(run_dir)
    if run_dir.is_file():  # a zoo entry
        return _load_zoo(run_dir.name[:-len(".pt")], run_dir.stat().st_mtime)
    if not (run_dir / "model.pt").is_file():
        raise ValueError(f"{run_dir} is not a finished run (no model.pt); choices: {list(cached_runs(run_dir.parent))}")
    return _load(str(run_dir.resolve()), (run_dir / "model.pt").stat().st_mtime)


@functools.lru_cache(maxsize=16)
def _load_zoo(name: str, stamp: float):
    from artlib import zoo
    return zoo.load(name), zoo.entry(name)["config"]


@functools.lru_cache(maxsize=8)
def images(dataset: str = "cifar10", n: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` real test images of ``dataset`` and their labels (class-balanced, the same as the notebooks':
    :func:`artlib.evaluate.load_images`), cached."""
    from artlib import evaluate
    return evaluate.load_images(dataset, n)


def class_names(dataset: str) -> Optional[Sequence[str]]:
    """The dataset's class names where its loader has them (CIFAR-10, Flowers-17, ...), else None."""
    from artlib import data
    return getattr(data.DATASETS[dataset].loader, "classes", None) if dataset in data.DATASETS else None


def _label(i: int, names: Optional[Sequence[str]]) -> str:
    return f"{names[i]}" if names is not None and 0 <= i < len(names) else str(i)


@torch.no_grad()
def _predict(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return model(x).argmax(1)


# ----------------------------------------------------------------------------------------------------------------------
# 40: attribution maps under the IFIA attack
# ----------------------------------------------------------------------------------------------------------------------
def attribution_view(model: nn.Module, x: torch.Tensor, y: torch.Tensor, method: str = "ig", eps: float = 8 / 255,
                     steps: int = 5, *, step_size: float = 2 / 255, k: int = 100, n_steps_ig: int = 10,
                     seed: int = 0) -> dict:
    """One image's attribution map before and after the top-k IFIA, with IN, K and Gini.

    The attack is ART's evaluation attack (:func:`artlib.attacks.ifia`, ``setting="paper"``: Ghorbani et al.'s top-k
    IFIA on IG, ART A.3.5; ``eps``/``steps``/``step_size`` from the sliders, the paper's are 8/255, 50, 1/255); the
    maps shown are ``method``'s attributions of the label logit (channel-summed ``|.|``); IN is the top-``k``
    intersection and K Kendall's tau between the two maps (ART Sec. 4.1.3), Gini the global Gini index of each
    (Inequality Sec. 3.1).

    Args:
        model: classifier on ``[0, 1]`` images (eval mode).
        x, y: one image ``[1, C, H, W]`` and its label ``[1]``.
        method: one of :data:`ATTRIBUTION_METHODS`.
        eps, steps, step_size: the IFIA's l-inf radius, iterations and signed step (``steps=0``: no attack).
        k: top-k size of the attack and of IN (ART: 100 on 32x32 images); clipped to ``H*W``.
        n_steps_ig: IG points of the attack and of IG maps.
        seed: seeds SmoothGrad / GradientShap draws.

    Returns:
        dict with ``image``, ``attacked`` (``[C, H, W]``), ``map``, ``attacked_map`` (``[H, W]``), ``pred``,
        ``pred_attacked``, ``label`` (ints), ``IN``, ``K``, ``gini``, ``gini_attacked``, ``linf`` (floats),
        ``success`` (bool: a label-preserving step lowered the top-k intersection).
    """
    from artlib import attacks, attribution, metrics

    _choice("method", method, ATTRIBUTION_METHODS)
    if x.dim() != 4 or x.shape[0] != 1:
        raise ValueError(f"x must be one image [1, C, H, W], got shape {tuple(x.shape)}")
    H, W = x.shape[-2:]
    k = int(min(k, H * W))
    pred = _predict(model, x)
    if steps > 0 and eps > 0:
        res = attacks.ifia(model, x, y, k=k, eps=float(eps), step_size=float(step_size), steps=int(steps),
                           n_steps_ig=n_steps_ig, seed=seed)
        x_adv, success = res.x_adv.detach(), bool(res.success[0])
    else:
        x_adv, success = x.clone(), False
    kw = {"n_steps": n_steps_ig} if method == "ig" else {}
    a = attribution.attribute(model, x, y, method, seed=seed, **kw)
    a_adv = attribution.attribute(model, x_adv, y, method, seed=seed, **kw)
    m, m_adv = attribution.to_saliency_map(a), attribution.to_saliency_map(a_adv)
    return {"image": x[0].detach(), "attacked": x_adv[0], "map": m[0], "attacked_map": m_adv[0],
            "label": int(y[0]), "pred": int(pred[0]), "pred_attacked": int(_predict(model, x_adv)[0]),
            "IN": float(metrics.topk_intersection(m, m_adv, k)[0]), "K": float(metrics.kendall_tau(m, m_adv)[0]),
            "gini": float(metrics.gini_global(a)[0]), "gini_attacked": float(metrics.gini_global(a_adv)[0]),
            "linf": float((x_adv - x).abs().max()), "success": success, "method": method, "k": k}


def plot_attribution_view(view: dict, names: Optional[Sequence[str]] = None, title: Optional[str] = None):
    """Image, its map and the attacked map of :func:`attribution_view`, with IN / K / Gini in the titles."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(8.4, 3.0))
    img = view["image"].permute(1, 2, 0).clamp(0, 1).cpu().numpy()
    axes[0].imshow(img.squeeze(-1) if img.shape[-1] == 1 else img)
    axes[0].set_title(f"label {_label(view['label'], names)}, pred {_label(view['pred'], names)}", fontsize=8)
    axes[1].imshow(view["map"].cpu().numpy(), cmap="viridis")
    axes[1].set_title(f"{view['method']} map, Gini {view['gini']:.3f}", fontsize=8)
    axes[2].imshow(view["attacked_map"].cpu().numpy(), cmap="viridis")
    axes[2].set_title(f"after IFIA (pred {_label(view['pred_attacked'], names)}), Gini {view['gini_attacked']:.3f}\n"
                      f"IN {view['IN']:.2f}  K {view['K']:.2f}  (top-{view['k']})", fontsize=8)
    for ax in axes:
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------------------------------------------------
# 41: inductive occlusion and noise
# ----------------------------------------------------------------------------------------------------------------------
def _perturbation_view(models, x, y, attack, index: int, names, what: str) -> dict:
    if not 0 <= index < x.shape[0]:
        raise ValueError(f"index {index} out of range; choices: 0..{x.shape[0] - 1}")
    rows, perturbed = [], {}
    for label, model in models.items():
        clean = _predict(model, x)
        res = attack(label, model)
        after = _predict(model, res.x_adv)
        ok = clean == y                                        # the paper attacks correctly classified images
        changed = (after != y) & ok
        perturbed[label] = res.x_adv[index].detach()
        rows.append({"model": label, "label": _label(int(y[index]), names), "pred": _label(int(clean[index]), names),
                     "pred attacked": _label(int(after[index]), names), "changed": bool(after[index] != clean[index]),
                     "error rate": float(changed.sum()) / max(int(ok.sum()), 1), "n correct": int(ok.sum()),
                     "pixels changed": int((res.x_adv[index] != x[index]).any(0).sum())})
    import pandas as pd
    return {"image": x[index].detach(), "perturbed": perturbed, "table": pd.DataFrame(rows), "what": what,
            "names": names}


def occlusion_view(models: Mapping[str, nn.Module], x: torch.Tensor, y: torch.Tensor,
                   attrs: Mapping[str, torch.Tensor], index: int = 0, count: int = 5, radius: int = 2,
                   color: str = "black", *, region: int = 4, names: Optional[Sequence[str]] = None) -> dict:
    """Inductive occlusion (Inequality Algorithm 1, :func:`artlib.attacks.inductive_occlusion`, paper setting) of
    every model's most important ``region x region`` blocks with budget up to ``(count, radius)`` and ``color``.

    Args:
        models: ``{label: model}`` (e.g. ``standard`` and ``linf-8``).
        x, y: images ``[B, C, H, W]`` and labels ``[B]``; ``attrs``: ``{label: attributions shaped like x}`` (IG of
            that model, Inequality A.8).
        index: the image shown; count, radius, color: the budget sliders (paper CIFAR-10: up to (10, 4), 4x4
            regions).
        region: block size (4 on CIFAR-10). names: class names for the table.

    Returns:
        dict with ``image``, ``perturbed`` (``{label: [C, H, W]}``) and ``table`` (one row per model: label,
        prediction before / after for the shown image, ``changed``, the ``error rate`` over the correctly classified
        images among ``x`` at this budget, ``n correct``, ``pixels changed``).
    """
    from artlib import attacks
    _choice("color", color, OCCLUSION_COLORS)
    return _perturbation_view(models, x, y, lambda label, m: attacks.inductive_occlusion(
        m, x, y, attrs[label], region=region, max_count=int(count), max_radius=int(radius), color=color),
        index, names, f"occlusion up to {count} x r{radius} ({color})")


def noise_view(models: Mapping[str, nn.Module], x: torch.Tensor, y: torch.Tensor,
               attrs: Mapping[str, torch.Tensor], index: int = 0, threshold: int = 100, kind: str = "I", *,
               seed: int = 0, names: Optional[Sequence[str]] = None) -> dict:
    """Inductive noise (Inequality Eq. 5, :func:`artlib.attacks.inductive_noise`, paper setting) on each model's
    ``threshold`` most important input entries, ``kind`` I / II / random; the same fields as :func:`occlusion_view`.
    """
    from artlib import attacks
    _choice("kind", kind, NOISE_KINDS)
    return _perturbation_view(models, x, y, lambda label, m: attacks.inductive_noise(
        m, x, y, attrs[label], threshold=int(threshold), kind=kind, seed=seed),
        index, names, f"noise {kind}, {threshold} entries")


def plot_perturbation_view(view: dict, title: Optional[str] = None):
    """The clean image and, per model, the attacked image titled ``pred -> pred attacked`` and the error rate."""
    import matplotlib.pyplot as plt

    t = view["table"]
    fig, axes = plt.subplots(1, 1 + len(t), figsize=(2.6 * (1 + len(t)), 2.9))
    show = [(view["image"], f"label {t['label'].iloc[0]}", False)]
    for _, r in t.iterrows():
        show.append((view["perturbed"][r["model"]],
                     f"{r['model']}: {r['pred']} -> {r['pred attacked']}\nerror rate {r['error rate']:.2f}",
                     bool(r["changed"])))
    for ax, (img, text, changed) in zip(axes, show):
        img = img.permute(1, 2, 0).clamp(0, 1).cpu().numpy()
        ax.imshow(img.squeeze(-1) if img.shape[-1] == 1 else img)
        ax.set_title(text, fontsize=8, color="tab:red" if changed else "black")
        ax.axis("off")
    fig.suptitle(title or view["what"], fontsize=9)
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------------------------------------------------
# widgets (ipywidgets, imported lazily)
# ----------------------------------------------------------------------------------------------------------------------
def attribution_controls(runs: Sequence[str], n_images: int, default_run: Optional[str] = None) -> dict:
    """Widgets for :func:`attribution_view`: ``run`` (dropdown of cached runs), ``method`` (dropdown), ``index``
    (image slider), ``eps`` (in /255), ``steps`` (IFIA iterations)."""
    import ipywidgets as w
    runs = list(runs)
    if not runs:
        raise ValueError("no cached run to explore; train one first (e.g. python -m artlib reproduce --only 03_)")
    return {"run": w.Dropdown(options=runs, value=default_run if default_run in runs else runs[0],
                              description="model", layout=w.Layout(width="480px")),
            "method": w.Dropdown(options=list(ATTRIBUTION_METHODS), value="ig", description="attribution"),
            "index": w.IntSlider(value=0, min=0, max=n_images - 1, description="test image"),
            "eps": w.FloatSlider(value=8.0, min=0.0, max=16.0, step=1.0, description="eps (/255)"),
            "steps": w.IntSlider(value=5, min=0, max=50, description="IFIA steps")}


def occlusion_controls(n_images: int, max_count: int = 10, max_radius: int = 4) -> dict:
    """Widgets for :func:`occlusion_view`: ``index``, ``count``, ``radius``, ``color``."""
    import ipywidgets as w
    return {"index": w.IntSlider(value=0, min=0, max=n_images - 1, description="test image"),
            "count": w.IntSlider(value=5, min=1, max=max_count, description="count"),
            "radius": w.IntSlider(value=2, min=1, max=max_radius, description="radius"),
            "color": w.Dropdown(options=list(OCCLUSION_COLORS), value="black", description="color")}


def noise_controls(n_images: int, max_threshold: int = 1000) -> dict:
    """Widgets for :func:`noise_view`: ``index``, ``threshold`` (perturbed entries), ``kind``."""
    import ipywidgets as w
    return {"index": w.IntSlider(value=0, min=0, max=n_images - 1, description="test image"),
            "threshold": w.IntSlider(value=100, min=10, max=max_threshold, step=10, description="threshold"),
            "kind": w.Dropdown(options=list(NOISE_KINDS), value="I", description="noise type")}
