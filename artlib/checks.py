"""Checks that can fail, for the last cell of every notebook, with output that does not depend on the CPU.

A notebook's last cell states what its result depends on — the models it evaluates are learned (accuracy above
chance, by a one-sided binomial test on the images it used), attacks lower what they attack, maps are finite and not
constant, the table's statistics recompute from the saved file — and prints only the names of the checks that
passed. Numbers are never printed by a checked cell, so last-bit differences between CPU instruction sets
(``ATEN_CPU_CAPABILITY``, ``ONEDNN_MAX_CPU_ISA``) cannot change its output; a failing check raises
``AssertionError`` with the numbers.

Example:
    >>> from artlib import checks
    >>> c = checks.Checks()
    >>> c.above_chance("Natural", accuracy=0.62, n=200, num_classes=10)
    >>> c.lower("PGD-10 accuracy < clean", 0.12, 0.62)
    >>> c.report()
    ok  Natural: accuracy above chance (binomial p < 0.001)
    ok  PGD-10 accuracy < clean
"""
from __future__ import annotations

from typing import Iterable

import numpy as np

from artlib import dryrun

__all__ = ["Checks", "binomial_p_above"]


def binomial_p_above(accuracy: float, n: int, chance: float) -> float:
    """One-sided p-value of ``round(accuracy * n)`` or more correct out of ``n`` under guessing at ``chance``
    (``scipy.stats.binom.sf``)."""
    from scipy import stats
    k = int(round(float(accuracy) * int(n)))
    return float(stats.binom.sf(k - 1, int(n), float(chance)))


class Checks:
    """Collects named checks; each raises ``AssertionError`` (with the numbers) when it fails.

    :meth:`report` prints one ``ok  <name>`` line per passed check, in order: the only output of a checked cell.
    """

    def __init__(self):
        self.passed: list[str] = []

    def __call__(self, name: str, ok, detail: str = "") -> None:
        """Assert ``ok`` (a bool, or an iterable of bools that must all hold)."""
        if isinstance(ok, (np.ndarray, list, tuple)) or hasattr(ok, "all"):
            ok = bool(np.asarray(ok).all())
        if dryrun.relaxed(name, bool(ok), detail):
            self.passed.append(f"{name} (dry run: not checked)")
            return
        if not bool(ok):
            raise AssertionError(f"check failed: {name}" + (f" ({detail})" if detail else ""))
        self.passed.append(name)

    def above_chance(self, name: str, accuracy: float, n: int, num_classes: int, alpha: float = 1e-3) -> None:
        """The accuracy ``accuracy`` on ``n`` images is above guessing (1 / ``num_classes``): one-sided binomial
        p-value below ``alpha``. Fails for an unlearned model (the smoke models of old sat at chance)."""
        p = binomial_p_above(accuracy, n, 1.0 / num_classes)
        self(f"{name}: accuracy above chance (binomial p < {alpha:g})", p < alpha,
             f"accuracy {accuracy:.4f} on {n} images, chance {1 / num_classes:.4f}, p = {p:.3g}")

    def at_recorded_accuracy(self, name: str, entry: str, accuracy: float, index) -> None:
        """Zoo model ``entry`` classifies the test images ``index`` (:func:`artlib.evaluate.image_index`) as well as
        when it was recorded (:func:`artlib.zoo.recorded_accuracy`), within 1 point or one image, whichever is more
        (last-bit differences between CPUs' kernels may flip a borderline image). Fails for wrong weights, data or
        preprocessing."""
        from artlib import zoo
        if not zoo.same_test_split(entry):      # e.g. a fresh machine's foolbox images: no record of those
            self(f"{name}: the data root's test split is not the one recorded (accuracy not compared)", True)
            return
        rec = zoo.recorded_accuracy(entry, index)
        tol = max(0.01, 1.0 / len(index)) + 1e-9
        self(f"{name}: at its recorded accuracy on the same {len(index)} images (within 1 point or 1 image)",
             abs(float(accuracy) - rec) <= tol, f"accuracy {float(accuracy):.4f}, recorded {rec:.4f}")

    def lower(self, name: str, attacked: float, clean: float) -> None:
        """An attack lowered what it attacks: ``attacked < clean``."""
        self(name, float(attacked) < float(clean), f"attacked {attacked:.4f}, clean {clean:.4f}")

    def finite_nonconstant(self, name: str, maps) -> None:
        """Attribution maps (array-like) are finite everywhere and not all equal."""
        a = np.asarray(maps.detach().cpu() if hasattr(maps, "detach") else maps, dtype=float)
        self(f"{name}: finite and not constant", np.isfinite(a).all() and a.size > 1 and float(a.std()) > 0,
             f"shape {a.shape}, finite {bool(np.isfinite(a).all())}, std {float(np.nanstd(a)) if a.size else 0:.3g}")

    def close(self, name: str, got, expected, tol: float = 1e-6) -> None:
        """Numbers (or arrays) agree within ``tol`` (absolute): e.g. a statistic recomputed from the saved table."""
        g, e = np.asarray(got, dtype=float), np.asarray(expected, dtype=float)
        self(name, g.shape == e.shape and bool(np.all(np.abs(g - e) <= tol) or np.array_equal(g, e, equal_nan=True)),
             f"got {g.tolist()}, expected {e.tolist()}, tol {tol:g}")

    def covers(self, name: str, present: Iterable, required: Iterable) -> None:
        """Every required key (class, model, setting, ...) is present."""
        missing = sorted(set(map(str, required)) - set(map(str, present)))
        self(name, not missing, f"missing {missing}")

    def recomputes(self, name: str, table, samples, keys, columns: dict, tol: float = 1e-3) -> None:
        """Each row of a saved ``table`` is the mean of its rows in the per-image ``samples`` (the same ``keys``
        values): ``columns`` maps a table column to ``(samples column, scale)``, e.g. ``{"IN (%)": ("IN", 100)}``.
        Fails when the per-image file behind the claims table is not the one behind the notebook's table (a stale or
        truncated ``figures/samples/*.csv``), or a row has no samples. NaN in the table needs no samples."""
        keys = list(keys)
        groups = {k if isinstance(k, tuple) else (k,): g for k, g in samples.groupby(keys, sort=False)}
        bad = []
        for _, r in table.iterrows():
            key = tuple(r[k] for k in keys)
            for col, (src, scale) in columns.items():
                want = float(r[col])
                g = groups.get(key)
                got = float(scale * g[src].mean()) if g is not None and len(g) else float("nan")
                if not (abs(got - want) <= tol or (np.isnan(got) and np.isnan(want))):
                    bad.append(f"{'/'.join(map(str, key))} {col}: table {want:.6g}, samples {got:.6g}")
        self(name, not bad, "; ".join(bad[:5]))

    def report(self) -> None:
        """Print ``ok  <name>`` per passed check."""
        for name in self.passed:
            print(f"ok  {name}")
