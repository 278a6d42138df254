"""artlib.claimbook and the claims' general bootstrap: inventory coverage (and agreement with the inventory file when
../shared is beside the checkout), the keyed bootstrap (coverage on a synthetic effect, the binomial shortcut against
plain resampling, paired vs independent, two-level), the rate reconstruction, and rows measured from inputs written
the way the notebooks write them, including a broken input that the checks catch."""
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from artlib import checks, claimbook, claims

INVENTORY_MD = Path(__file__).resolve().parents[2] / "shared" / "papers" / "claims_inventory.md"


def test_every_inventory_claim_is_a_row_or_dropped_and_never_both():
    rows = pd.DataFrame({"id": [c.id for c in claimbook.CLAIMS]})
    cov = claimbook.coverage(rows)
    assert not cov["missing"] and not cov["both"], cov
    assert len(claimbook.INVENTORY) == 68
    assert len({c.id for c in claimbook.CLAIMS}) == len(claimbook.CLAIMS)
    assert set(claimbook.DROPPED) <= {i for i, _, _ in claimbook.INVENTORY}
    assert all(len(reason) > 30 for reason in claimbook.DROPPED.values())


@pytest.mark.skipif(not INVENTORY_MD.is_file(), reason="shared/papers/claims_inventory.md is not beside the checkout")
def test_inventory_ids_and_papers_match_the_inventory_file():
    text = INVENTORY_MD.read_text()
    ids = re.findall(r"^\| ((?:art|ineq)\.[a-z0-9_.]+) \|", text, flags=re.M)
    assert ids == [i for i, _, _ in claimbook.INVENTORY]
    assert all((p == "ART") == i.startswith("art.") for i, p, _ in claimbook.INVENTORY)


def test_compare_covers_a_known_difference_at_its_level():
    """95 % intervals of mean(a) - mean(b) (independent normal samples, true difference 0.1) contain 0.1 in about
    95 % of 200 experiments."""
    rng = np.random.default_rng(0)
    hits = 0
    for i in range(200):
        s = {"a": rng.normal(0.6, 0.3, 120), "b": rng.normal(0.5, 0.3, 150)}
        e = claims.compare(s, lambda m: m["a"] - m["b"], n_boot=500, seed=i)
        hits += e["ci_low"] <= 0.1 <= e["ci_high"]
    assert 0.9 <= hits / 200 <= 0.99, hits / 200


def test_binomial_shortcut_has_the_law_of_resampling_the_outcomes():
    """A 0 / 1 sample is resampled as a binomial draw: its bootstrap interval matches resampling the rows."""
    outcomes = claims.bernoulli(0.37, 400)
    fast = claims.compare({"a": outcomes}, lambda m: m["a"], n_boot=4000, seed=1)
    slow = claims.compare({"a": outcomes + 1e-9 * np.arange(400)}, lambda m: m["a"], n_boot=4000, seed=1)
    assert fast["value"] == pytest.approx(0.37)
    assert fast["ci_low"] == pytest.approx(slow["ci_low"], abs=0.01)
    assert fast["ci_high"] == pytest.approx(slow["ci_high"], abs=0.01)


def test_compare_paired_vs_independent_and_two_level():
    rng = np.random.default_rng(2)
    base = rng.normal(0.5, 0.2, 300)
    s = {"a": base + 0.02 + rng.normal(0, 0.01, 300), "b": base}
    diff = lambda m: m["a"] - m["b"]  # noqa: E731
    assert claims.compare(s, diff, paired=True)["verdict"] == "holds"
    assert claims.compare(s, diff, paired=False)["verdict"] == "inconclusive"
    # three seeds whose means differ: resampling the seeds widens the interval
    x = np.concatenate([rng.normal(m, 0.05, 200) for m in (0.1, 0.3, 0.5)])
    g = np.repeat([0, 1, 2], 200)
    one = claims.compare({"x": x}, lambda m: m["x"])
    two = claims.compare({"x": x}, lambda m: m["x"], groups={"x": g})
    assert (two["ci_high"] - two["ci_low"]) > 5 * (one["ci_high"] - one["ci_low"])
    with pytest.raises(ValueError, match="paired samples must have one length"):
        claims.compare({"a": np.ones(3), "b": np.ones(4)}, diff, paired=True)
    with pytest.raises(ValueError, match="empty samples"):
        claims.compare({"a": np.ones(3), "b": np.array([])}, diff)


def test_bernoulli_reconstructs_a_rate_and_refuses_bad_ones():
    assert claims.bernoulli(0.5, 10).sum() == 5 and len(claims.bernoulli(0.5, 10)) == 10
    with pytest.raises(ValueError, match="a rate in"):
        claims.bernoulli(1.5, 10)
    with pytest.raises(ValueError, match="a rate in"):
        claims.bernoulli(0.5, 0)


def _write_gini(tmp_path, shift: float):
    """Notebook 20's outputs for five models on 300 images: the table and its per-image samples; l-inf models'
    Gini = standard + shift * eps."""
    rng = np.random.default_rng(3)
    base = rng.uniform(0.5, 0.7, 300)
    parts, rows = [], []
    for model, e in (("standard", 0), ("linf-1", 1), ("linf-2", 2), ("linf-4", 4), ("linf-8", 8)):
        g = base + shift * e + rng.normal(0, 0.005, 300)
        parts.append(pd.DataFrame({"model": model, "image": range(300), "gini_global": g, "gini_regional": g / 2,
                                   "arch": "small-cnn"}))
        rows.append({"arch": "small-cnn", "model": model, "n": 300, "gini_global": g.mean(),
                     "gini_regional": g.mean() / 2})
    claims.save_samples(pd.concat(parts, ignore_index=True), "ineq_table1_cifar10", tmp_path)
    pd.DataFrame(rows).to_csv(tmp_path / "ineq_table1_cifar10.csv", index=False)


@pytest.mark.parametrize("shift, expected", [(0.01, "holds"), (-0.01, "contradicted"), (0.0, "inconclusive")])
def test_gini_claims_measured_from_samples(tmp_path, shift, expected):
    _write_gini(tmp_path, shift)
    rows = claimbook.table(tmp_path).set_index("id")
    for rid in ("ineq.t1.gini_global_robust_gt_standard.cifar10", "ineq.t1.gini_global_rises_with_eps.cifar10"):
        r = rows.loc[rid]
        assert r.verdict == expected, (rid, r.value, r.ci_low, r.ci_high)
        assert r.n_images == 300 and r.notebook == "20_ineq_table1_gini.ipynb"
    assert rows.loc["ineq.t1.gini_global_rises_with_eps.cifar10", "value"] == pytest.approx(shift, abs=1e-3)
    # a claim whose notebook did not run is a row that says so, inconclusive, with no interval
    r = rows.loc["art.t1.attr_art_gt_pgd.cifar10.in"]
    assert np.isnan(r.value) and r.verdict == "inconclusive" and "not measured: samples/art_table1.csv is missing" \
        in r.statistic


def test_a_broken_sample_file_fails_the_recompute_check(tmp_path):
    """The check the claims notebook (and notebook 20) runs: a per-image file that does not reproduce its table
    (stale, truncated or edited) fails, naming the row."""
    _write_gini(tmp_path, 0.01)
    table, keys, cols, _ = claimbook.SOURCES["ineq_table1_cifar10"]
    t = pd.read_csv(tmp_path / f"{table}.csv")
    c = checks.Checks()
    c.recomputes("intact", t, claims.load_samples("ineq_table1_cifar10", tmp_path), keys, cols, tol=1e-4)
    broken = claims.load_samples("ineq_table1_cifar10", tmp_path)
    broken.loc[broken.model == "linf-8", "gini_global"] += 0.01
    with pytest.raises(AssertionError, match="small-cnn/linf-8 gini_global: table"):
        c.recomputes("broken", t, broken, keys, cols, tol=1e-4)
    with pytest.raises(AssertionError, match="samples nan"):
        c.recomputes("truncated", t, broken[broken.model != "standard"], keys, cols, tol=1e-4)


def test_exact_claim_has_its_value_as_interval():
    r = claimbook.table().set_index("id").loc["ineq.a3.gini_toy_values"]
    assert r.verdict == "holds" and r.ci_low == r.ci_high == r.value
    assert r.value == pytest.approx(0.001 - abs(0.7996 - 0.799), abs=1e-4)


def test_save_samples_refuses_empty_and_writes_six_digits(tmp_path):
    with pytest.raises(ValueError, match="non-empty DataFrame"):
        claims.save_samples(pd.DataFrame(), "x", tmp_path)
    p = claims.save_samples(pd.DataFrame({"v": [1 / 3]}), "x", tmp_path)
    assert p.read_text().splitlines()[1] == "0.333333"
    with pytest.raises(claims.MissingInput, match="samples/y.csv is missing"):
        claims.load_samples("y", tmp_path)


def test_readme_verdicts_are_rendered_from_the_committed_claims_table(tmp_path):
    from artlib import plots
    readme = (plots.ROOT / "README.md").read_text()
    start = readme.index(claimbook.README_BEGIN) + len(claimbook.README_BEGIN)
    block = readme[start:readme.index(claimbook.README_END)].strip()
    rows = pd.read_csv(plots.FIGURES / "claims.csv")
    assert block == claimbook.readme_block(rows).strip(), \
        "README's claims block is stale: python -c 'from artlib import claimbook; claimbook.update_readme()'"
    assert set(rows.columns) == set(claims.COLUMNS) and len(rows) == len(claimbook.CLAIMS)


def test_claims_notebook_check_fails_on_a_broken_input(tmp_path):
    """Notebook 98 on the committed reference outputs, with one per-image file edited so that it no longer reproduces
    its notebook's table: its checked cell fails (one line at the CLI) on exactly that check."""
    import shutil
    import subprocess
    import sys

    from artlib import plots
    for f in plots.FIGURES.glob("*.csv"):
        shutil.copy(f, tmp_path / f.name)
    shutil.copytree(plots.FIGURES / "samples", tmp_path / "samples")
    s = pd.read_csv(tmp_path / "samples" / "ineq_table1_cifar10.csv")
    s.loc[s.model == "linf-8", "gini_global"] += 0.01
    s.to_csv(tmp_path / "samples" / "ineq_table1_cifar10.csv", index=False)
    nb = plots.ROOT / "notebooks" / "98_claims.ipynb"
    r = subprocess.run([sys.executable, "-m", "artlib", "notebook", str(nb), str(tmp_path / "out.ipynb"),
                        "--no-progress", "-p", "profile", "reference"], capture_output=True, text=True,
                       cwd=plots.ROOT / "notebooks", env={**__import__("os").environ, "ARTLIB_FIGURES": str(tmp_path)})
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert "check failed: samples/ineq_table1_cifar10.csv reproduces ineq_table1_cifar10.csv" in r.stderr
    assert "small-cnn/linf-8 gini_global: table" in r.stderr
