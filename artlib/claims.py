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

from pathlib import Path
from typing import Callable, Mapping, Optional, Sequence

import numpy as np
import pandas as pd

__all__ = ["VERDICTS", "COLUMNS", "verdict", "bootstrap_ci", "effect", "compare", "bernoulli", "row",
           "save_samples", "load_samples", "MissingInput"]

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


def compare(samples: Mapping[str, np.ndarray], statistic: Callable[[dict], float], *, paired: bool = False,
            groups: Optional[Mapping[str, Sequence]] = None, n_boot: int = 2000, level: float = 0.95,
            seed: int = 0) -> dict:
    """A statistic of several samples' means with its percentile bootstrap interval: the general form of
    :func:`effect` for claims over more than two cells ("ART above both baselines at every eps", "Gini rises with
    eps": a slope of the means).

    Args:
        samples: key -> per-image values ``[n_key]`` (e.g. ``{"ART@8": IN, "PGD-10@8": IN, ...}``).
        statistic: ``f(means) -> float`` where ``means`` maps each key to its (resampled) mean; sign it so that
            ``> 0`` supports the claim.
        paired: the keys hold values of the same images in the same order (equal lengths): each resample draws one
            set of image rows for every key. Otherwise each key is resampled on its own.
        groups: optional key -> labels (e.g. seeds) for a two-level bootstrap: the groups drawn with replacement,
            then the samples within each drawn group. Independent mode: per key. Paired mode: one labelling shared
            by every key (the same images of the same seeds), and a drawn group's image rows are drawn once for
            all keys (e.g. two models of one seed measured on that seed's common images).

    Returns:
        dict ``value, ci_low, ci_high, n`` (``n``: the smallest sample) and ``verdict``.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> g = {e: rng.normal(0.5 + 0.01 * e, 0.05, 300) for e in (1, 2, 4, 8)}       # rises with e
        >>> compare(g, lambda m: np.polyfit(list(m), list(m.values()), 1)[0], paired=False)["verdict"]
        'holds'
    """
    if not samples:
        raise ValueError("samples must be a non-empty mapping key -> values")
    keys = list(samples)
    arrays = {k: np.asarray(samples[k], dtype=float).reshape(-1) for k in keys}
    if any(len(v) == 0 for v in arrays.values()):
        raise ValueError(f"empty samples: {[k for k, v in arrays.items() if len(v) == 0]}")
    if paired and len({len(v) for v in arrays.values()}) != 1:
        raise ValueError(f"paired samples must have one length, got { {k: len(v) for k, v in arrays.items()} }")
    value = float(statistic({k: float(v.mean()) for k, v in arrays.items()}))
    n = min(len(v) for v in arrays.values())
    if n < 2:
        return {"value": value, "ci_low": float("nan"), "ci_high": float("nan"), "n": n, "verdict": "inconclusive"}
    rng = np.random.default_rng(seed)
    b = int(n_boot)
    if paired and groups:
        labels = [np.asarray(groups[k]).reshape(-1) for k in keys if k in groups]
        if len(labels) != len(keys) or any(not np.array_equal(labels[0], g) for g in labels[1:]):
            raise ValueError("paired samples with groups need one labelling shared by every key")
        data = np.stack([arrays[k] for k in keys], axis=1)
        boot = _paired_boot_means(_as_groups(tuple(data.T), labels[0]), b, rng)   # [b, keys]
        means = {k: boot[:, j] for j, k in enumerate(keys)}
    elif paired:
        data = np.stack([arrays[k] for k in keys], axis=1)                       # [n, keys]
        means = {k: np.empty(b) for k in keys}
        for s in range(0, b, 256):                                               # [chunk, n] rows per resample
            m = data[rng.integers(0, len(data), (min(256, b - s), len(data)))].mean(1)
            for j, k in enumerate(keys):
                means[k][s:s + len(m)] = m[:, j]
    else:
        means = {k: _boot_means(_as_groups(arrays[k], (groups or {}).get(k)), b, rng) for k in keys}
    boots = np.array([statistic({k: means[k][i] for k in keys}) for i in range(b)], dtype=float)
    lo, hi = (float(q) for q in np.quantile(boots, [(1 - level) / 2, (1 + level) / 2]))
    return {"value": value, "ci_low": lo, "ci_high": hi, "n": int(n), "verdict": verdict(lo, hi)}


def _boot_means(parts: list[np.ndarray], n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """``n_boot`` bootstrap means of grouped samples (the distribution of :func:`_resample`'s mean), vectorised: the
    groups drawn with replacement when there are several, then each drawn group resampled. A 0 / 1 group (rates) is
    resampled as a binomial draw, which is the same law as resampling its rows."""
    sums = []                                            # per group: [n_boot, slots] resample sums, one per slot
    slots = len(parts) if len(parts) > 1 else 1
    for p in parts:
        v = p[:, 0]
        if np.isin(v, (0.0, 1.0)).all():
            sums.append(rng.binomial(len(v), v.mean(), (n_boot, slots)).astype(float))
        else:
            sums.append(np.stack([v[rng.integers(0, len(v), (n_boot, len(v)))].sum(1) for _ in range(slots)], 1))
    if len(parts) == 1:
        return sums[0][:, 0] / len(parts[0])
    drawn = rng.integers(0, len(parts), (n_boot, slots))                     # which group fills each slot
    sizes = np.array([len(p) for p in parts], dtype=float)
    total = np.zeros(n_boot)
    for g in range(len(parts)):
        total += np.where(drawn == g, sums[g], 0.0).sum(1)
    return total / sizes[drawn].sum(1)


def _paired_boot_means(parts: list[np.ndarray], n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """``[n_boot, k]`` bootstrap means of paired grouped samples (``parts``: one ``[n_g, k]`` array per group): the
    groups drawn with replacement (when there are several), then each drawn group's rows, the same rows for all
    ``k`` columns."""
    slots = len(parts) if len(parts) > 1 else 1
    drawn = rng.integers(0, len(parts), (n_boot, slots)) if len(parts) > 1 else np.zeros((n_boot, 1), int)
    total = np.zeros((n_boot, parts[0].shape[1]))
    for slot in range(slots):
        for g, p in enumerate(parts):
            rows = np.flatnonzero(drawn[:, slot] == g)
            for s in range(0, len(rows), 256):                                # [chunk, n_g] row draws at a time
                chunk = rows[s:s + 256]
                total[chunk] += p[rng.integers(0, len(p), (len(chunk), len(p)))].sum(1)
    sizes = np.array([len(p) for p in parts], dtype=float)
    return total / sizes[drawn].sum(1)[:, None]


def bernoulli(rate: float, n: int) -> np.ndarray:
    """The per-image 0 / 1 outcomes behind a rate measured on ``n`` images (an accuracy, an error or a success
    rate): ``round(rate * n)`` ones. Their bootstrap is that of the original outcomes for any statistic of the mean,
    so a table of rates and counts is enough for an independent (unpaired) interval.

    Example:
        >>> bernoulli(0.25, 8)
        array([1., 1., 0., 0., 0., 0., 0., 0.])
    """
    n = int(n)
    if n < 1 or not 0 <= float(rate) <= 1:
        raise ValueError(f"a rate in [0, 1] on n >= 1 images, got rate {rate!r} on n {n!r}")
    k = int(round(float(rate) * n))
    return np.r_[np.ones(k), np.zeros(n - k)]


class MissingInput(LookupError):
    """A claim's per-image samples or table has not been written by its notebook (under this figures folder)."""


def _samples_dir(out_dir=None) -> Path:
    from artlib import plots
    return plots.figures_dir(out_dir) / "samples"


def save_samples(df: pd.DataFrame, name: str, out_dir=None) -> Path:
    """Write a notebook's per-image results as ``<figures>/samples/<name>.csv`` (atomically), the input of the
    claims table (:mod:`artlib.claimbook`) and of the notebook's own recomputation check.

    Floats are written with 6 significant digits, so the file does not change with last-bit differences between
    CPUs. Returns the path.

    Example:
        >>> save_samples(per_sample.assign(method=label), "art_table1")    # figures/samples/art_table1.csv
    """
    from artlib.checkpoints import atomic_write
    if not isinstance(df, pd.DataFrame) or df.empty:
        raise ValueError(f"samples {name!r} must be a non-empty DataFrame")
    out = _samples_dir(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return atomic_write(out / f"{name}.csv", lambda f: f.write(df.to_csv(index=False, float_format="%.6g").encode()))


def load_samples(name: str, out_dir=None) -> pd.DataFrame:
    """The per-image table :func:`save_samples` wrote; :class:`MissingInput` naming the file when it is absent."""
    path = _samples_dir(out_dir) / f"{name}.csv"
    if not path.is_file():
        raise MissingInput(f"samples/{name}.csv is missing")
    return pd.read_csv(path)
