"""Claims of both papers as signed effects with bootstrap intervals and a fixed verdict rule.

A *claim* is one qualitative statement of a paper ("ART's attributions are more robust than PGD-AT's", ART Table 1;
"l-inf adversarial training raises the Gini index", Inequality Sec. 4.2). It is tested as an *effect*: a number
signed so that ``> 0`` supports the claim (e.g. ``IN(ART) - IN(PGD)`` per image), with a 95 % percentile bootstrap
interval over images — and over seeds first where the zoo holds several (a two-level bootstrap: resample the seeds,
then the images within each drawn seed). The verdict follows from the interval only (:func:`verdict`):

- ``holds``: ``ci_low > 0``;
- ``contradicted``: ``ci_high < 0``;
- ``inconclusive``: the interval contains 0.

Verdicts are findings: the images, seeds and models are the notebook's, fixed before the claim is looked at.

Example:
    >>> import numpy as np
    >>> from artlib import claims
    >>> rng = np.random.default_rng(0)
    >>> art, pgd = rng.normal(0.55, 0.1, 200), rng.normal(0.50, 0.1, 200)     # per-image IN of two models
    >>> e = claims.effect(art, pgd, paired=False)                             # mean(art) - mean(pgd)
    >>> claims.verdict(e["ci_low"], e["ci_high"])
    'holds'
"""
from __future__ import annotations

from typing import Callable, Optional, Sequence

import numpy as np

__all__ = ["VERDICTS", "COLUMNS", "verdict", "bootstrap_ci", "effect", "row"]

#: The three verdicts, in the order tables list them.
VERDICTS = ("holds", "contradicted", "inconclusive")
#: Columns of ``figures/claims.csv`` (tests and tools rely on them).
COLUMNS = ["id", "paper", "section", "claim", "statistic", "value", "ci_low", "ci_high", "n_images", "seeds",
           "verdict", "notebook"]


def verdict(ci_low: float, ci_high: float) -> str:
    """``"holds"`` if ``ci_low > 0``, ``"contradicted"`` if ``ci_high < 0``, else ``"inconclusive"`` (also for a
    NaN bound: an effect that could not be measured supports nothing).

    Example:
        >>> verdict(0.01, 0.2), verdict(-0.3, -0.1), verdict(-0.1, 0.1)
        ('holds', 'contradicted', 'inconclusive')
    """
    lo, hi = float(ci_low), float(ci_high)
    if np.isnan(lo) or np.isnan(hi):
        return "inconclusive"
    if lo > hi:
        raise ValueError(f"ci_low must be <= ci_high, got {lo} > {hi}")
    return "holds" if lo > 0 else "contradicted" if hi < 0 else "inconclusive"


def _as_groups(samples, groups) -> list[np.ndarray]:
    """``samples`` as a list of 2-D arrays ``[n_g, k]`` (one per group, ``k`` paired columns)."""
    cols = [np.asarray(s, dtype=float).reshape(-1) for s in (samples if isinstance(samples, tuple) else (samples,))]
    n = len(cols[0])
    if any(len(c) != n for c in cols):
        raise ValueError(f"paired samples must have one length, got {[len(c) for c in cols]}")
    if n == 0:
        raise ValueError("samples are empty")
    data = np.stack(cols, axis=1)
    if groups is None:
        return [data]
    groups = np.asarray(groups).reshape(-1)
    if len(groups) != n:
        raise ValueError(f"groups must label every sample: {len(groups)} labels for {n} samples")
    return [data[groups == g] for g in dict.fromkeys(groups.tolist())]


def _resample(parts: list[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """One bootstrap resample of grouped samples: the groups drawn with replacement (when there are several), then
    the rows within each drawn group."""
    drawn = [parts[i] for i in rng.integers(0, len(parts), len(parts))] if len(parts) > 1 else parts
    return np.concatenate([p[rng.integers(0, len(p), len(p))] for p in drawn])


def bootstrap_ci(samples, statistic: Callable = None, *, groups: Optional[Sequence] = None, n_boot: int = 2000,
                 level: float = 0.95, seed: int = 0) -> tuple[float, float, float]:
    """The statistic of ``samples`` and its percentile bootstrap interval.

    Args:
        samples: an array ``[n]``, or a tuple of equally long arrays resampled together (paired, e.g. two models'
            values on the same images).
        statistic: ``f(*columns) -> float`` on one resample (columns ``[m]`` each); default the mean of the first.
        groups: optional labels ``[n]`` (e.g. the seed of each image's model): a two-level bootstrap that draws the
            groups with replacement, then the samples within each drawn group. With one group it is the plain
            bootstrap.
        n_boot (int): resamples. level (float): coverage of the interval. seed (int): resampling seed.

    Returns:
        ``(value, ci_low, ci_high)``: the statistic on all samples and the ``(1 - level) / 2`` and
        ``(1 + level) / 2`` quantiles of its bootstrap distribution. NaN bounds when there is one sample only.

    Example:
        >>> bootstrap_ci(np.arange(100.0))[0]
        49.5
    """
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level!r}")
    if int(n_boot) < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot!r}")
    stat = statistic or (lambda a, *rest: float(np.mean(a)))
    parts = _as_groups(samples, groups)
    whole = np.concatenate(parts)
    value = float(stat(*whole.T))
    if len(whole) < 2:
        return value, float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    boots = np.array([stat(*_resample(parts, rng).T) for _ in range(int(n_boot))])
    lo, hi = np.quantile(boots, [(1 - level) / 2, (1 + level) / 2])
    return value, float(lo), float(hi)


def effect(a, b=None, *, paired: bool = True, groups: Optional[Sequence] = None, groups_b: Optional[Sequence] = None,
           n_boot: int = 2000, level: float = 0.95, seed: int = 0) -> dict:
    """A signed effect with its interval: ``mean(a)`` (``b`` None), ``mean(a - b)`` on paired samples (the same
    images), or ``mean(a) - mean(b)`` on independent ones (each resampled on its own, within its groups).

    Sign the inputs so that ``> 0`` supports the claim (e.g. ``a`` = ART's per-image IN, ``b`` = PGD-AT's).

    Returns:
        dict ``value, ci_low, ci_high, n`` (``n``: samples of ``a``), and ``verdict`` (:func:`verdict`).
    """
    a = np.asarray(a, dtype=float).reshape(-1)
    if b is None:
        value, lo, hi = bootstrap_ci(a, groups=groups, n_boot=n_boot, level=level, seed=seed)
    elif paired:
        value, lo, hi = bootstrap_ci((a, np.asarray(b, dtype=float).reshape(-1)), lambda x, y: float(np.mean(x - y)),
                                     groups=groups, n_boot=n_boot, level=level, seed=seed)
    else:
        b = np.asarray(b, dtype=float).reshape(-1)
        ga = _as_groups(a, groups)
        gb = _as_groups(b, groups_b)
        rng = np.random.default_rng(seed)
        value = float(a.mean() - b.mean())
        if len(a) < 2 or len(b) < 2:
            lo = hi = float("nan")
        else:
            boots = np.array([_resample(ga, rng).mean() - _resample(gb, rng).mean() for _ in range(int(n_boot))])
            lo, hi = (float(q) for q in np.quantile(boots, [(1 - level) / 2, (1 + level) / 2]))
    return {"value": value, "ci_low": lo, "ci_high": hi, "n": int(len(a)), "verdict": verdict(lo, hi)}


def row(id: str, paper: str, section: str, claim: str, statistic: str, measured: dict, *, n_images: int,
        seeds: Sequence[int], notebook: str) -> dict:
    """One row of ``figures/claims.csv`` (:data:`COLUMNS`) from an :func:`effect` result.

    Example:
        >>> row("art.t1.attr_art_gt_pgd.cifar10", "ART", "Table 1", "ART's IG maps are more robust than PGD-AT's",
        ...     "mean IN(ART) - IN(PGD) over attacked images", effect(art, pgd, paired=False), n_images=200,
        ...     seeds=[0], notebook="03_art_table1_robustness.ipynb")["verdict"]
        'holds'
    """
    if paper not in ("ART", "Inequality"):
        raise ValueError(f"paper must be 'ART' or 'Inequality', got {paper!r}")
    lo, hi = measured["ci_low"], measured["ci_high"]
    return {"id": id, "paper": paper, "section": section, "claim": claim, "statistic": statistic,
            "value": float(measured["value"]), "ci_low": float(lo), "ci_high": float(hi), "n_images": int(n_images),
            "seeds": " ".join(str(int(s)) for s in seeds), "verdict": verdict(lo, hi), "notebook": notebook}
