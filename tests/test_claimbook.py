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
    r = rows.loc["ineq.t1.gini_global_rises_with_eps.cifar10"]
    assert r.verdict == expected, (r.value, r.ci_low, r.ci_high)
    assert r.n_images == 300 and r.notebook == "20_ineq_table1_gini.ipynb"
    assert r.value == pytest.approx(shift, abs=1e-3)
    # a claim whose notebook did not run is a row that says so, inconclusive, with no interval
    r = rows.loc["art.t1.attr_art_gt_pgd.cifar10.in"]
    assert np.isnan(r.value) and r.verdict == "inconclusive" and \
        "not measured: samples/bridge_art_inequality.csv is missing (run 30_bridge_art_inequality.ipynb)" in r.statistic


def _write_bridge(tmp_path, gini_shift: float, in_shift: float, seed_spread: float = 0.0):
    """Notebook 30's per-image file for natural / pgd-8 / art-0.5 over seeds 0-2: 200 common Gini images per seed
    (pgd-8 = natural + gini_shift), and IFIA IN / K on 120 attacked images per model (art-0.5 = pgd-8 + in_shift);
    each seed's level moved by seed_spread * seed."""
    rng = np.random.default_rng(5)
    parts = []
    for s in (0, 1, 2):
        base = rng.uniform(0.5, 0.7, 200) + seed_spread * s
        for lab, g, i in (("natural", 0.0, 0.3), ("pgd-8", gini_shift, 0.5), ("art-0.5", 0.0, 0.5 + in_shift)):
            parts.append(pd.DataFrame({"label": lab, "method": lab.split("-")[0], "seed": s, "kind": "gini",
                                       "image": range(200), "gini_global": base + g + rng.normal(0, 0.003, 200),
                                       "gini_regional": base / 2 + g, "IN": np.nan, "K": np.nan}))
            v = np.clip(rng.normal(i + seed_spread * s, 0.1, 120), 0, 1)
            parts.append(pd.DataFrame({"label": lab, "method": lab.split("-")[0], "seed": s, "kind": "ifia",
                                       "image": range(120), "gini_global": np.nan, "gini_regional": np.nan,
                                       "IN": v, "K": v}))
    claims.save_samples(pd.concat(parts, ignore_index=True), "bridge_art_inequality", tmp_path)
    # the per-seed table: occlusion error rates on 500 images, pgd-8 = natural + 10 * gini_shift
    pd.DataFrame([{"label": lab, "seed": s, "n": 500, **{f"occ_{c}": 0.3 + d + 0.01 * s for c in ("black", "grey",
                                                                                              "white")}}
                  for s in (0, 1, 2) for lab, d in (("natural", 0.0), ("pgd-8", 10 * gini_shift))]
                 ).to_csv(tmp_path / "bridge_art_inequality_seeds.csv", index=False)


@pytest.mark.parametrize("shift, expected", [(0.02, "holds"), (-0.02, "contradicted"), (0.0, "inconclusive")])
def test_seed_level_claims_bootstrap_over_the_three_seeds(tmp_path, shift, expected):
    """The Table 1 trio and the Gini rows read notebook 30's samples of three seeds: the row names the seeds and
    its interval carries the spread between them."""
    _write_bridge(tmp_path, shift, shift * 5)
    rows = claimbook.table(tmp_path).set_index("id")
    for rid in ("ineq.t1.gini_global_robust_gt_standard.cifar10", "art.t1.attr_art_gt_pgd.cifar10.in",
                "ineq.t2.occlusion_robust_gt_standard.cifar10", "ineq.a9.cifar_occlusion_colours.cifar10"):
        r = rows.loc[rid]
        assert r.verdict == expected, (rid, r.value, r.ci_low, r.ci_high)
        assert r.seeds == "0 1 2" and r.notebook == "30_bridge_art_inequality.ipynb" and "seeds 0 1 2" in r.statistic
    assert rows.loc["ineq.t1.gini_global_robust_gt_standard.cifar10", "n_images"] == 200
    assert rows.loc["art.t1.attr_pgd_gt_natural.cifar10.k", "verdict"] == "holds"       # 0.5 vs 0.3 per image
    # the same effect with seeds whose levels differ: the paired Gini row cancels the levels, the unpaired IN row
    # (each model its own attacked images) widens with them
    _write_bridge(tmp_path, shift, shift * 5, seed_spread=0.2)
    spread = claimbook.table(tmp_path).set_index("id")
    width = lambda t, rid: t.loc[rid, "ci_high"] - t.loc[rid, "ci_low"]  # noqa: E731
    g = "ineq.t1.gini_global_robust_gt_standard.cifar10"
    assert width(spread, g) == pytest.approx(width(rows, g), rel=0.5)
    assert width(spread, "art.t1.attr_pgd_gt_natural.cifar10.in") > 1.5 * width(rows, "art.t1.attr_pgd_gt_natural.cifar10.in")


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
    # the committed table (a local `make reproduce` rewrites figures/claims.csv from this machine's run, while the
    # README keeps the committed reference run's block)
    import io
    import subprocess
    got = subprocess.run(["git", "show", "HEAD:figures/claims.csv"], cwd=plots.ROOT, capture_output=True)
    rows = pd.read_csv(io.BytesIO(got.stdout) if got.returncode == 0 else plots.FIGURES / "claims.csv")
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
