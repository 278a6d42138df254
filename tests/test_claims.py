"""artlib.claims: the verdict rule, the bootstrap interval (coverage on synthetic effects of known size, agreement with
scipy's percentile bootstrap), paired / independent / two-level (seed) resampling, and the claims-table row."""
import numpy as np
import pytest
from scipy import stats

from artlib import claims


@pytest.mark.parametrize("lo, hi, expected", [(0.01, 0.3, "holds"), (1e-12, 1e-11, "holds"), (-0.3, -0.01, "contradicted"),
                                              (-0.1, 0.1, "inconclusive"), (0.0, 0.2, "inconclusive"),
                                              (-0.2, 0.0, "inconclusive"), (float("nan"), 0.1, "inconclusive")])
def test_verdict_rule(lo, hi, expected):
    assert claims.verdict(lo, hi) == expected


def test_verdict_refuses_a_reversed_interval():
    with pytest.raises(ValueError, match="ci_low must be <= ci_high, got 0.2 > 0.1"):
        claims.verdict(0.2, 0.1)


def test_bootstrap_interval_covers_a_known_mean_at_its_level():
    """95 % intervals of the mean of n = 80 draws from a skewed law (exponential, mean 0.3) contain 0.3 in about
    95 % of 300 independent experiments (the percentile bootstrap undercovers a little at this n)."""
    rng = np.random.default_rng(1)
    hits = 0
    for i in range(300):
        x = rng.exponential(0.3, 80)
        _, lo, hi = claims.bootstrap_ci(x, n_boot=400, seed=i)
        hits += lo <= 0.3 <= hi
    assert 0.89 <= hits / 300 <= 0.985, hits / 300


def test_bootstrap_interval_agrees_with_scipy_percentile_bootstrap():
    x = np.random.default_rng(2).normal(1.0, 2.0, 150)
    value, lo, hi = claims.bootstrap_ci(x, n_boot=4000, seed=0)
    ref = stats.bootstrap((x,), np.mean, n_resamples=4000, method="percentile", random_state=0).confidence_interval
    assert value == pytest.approx(x.mean())
    assert lo == pytest.approx(ref.low, abs=0.04) and hi == pytest.approx(ref.high, abs=0.04)


def test_bootstrap_is_deterministic_and_checks_its_arguments():
    x = np.arange(10.0)
    assert claims.bootstrap_ci(x, seed=3) == claims.bootstrap_ci(x, seed=3)
    assert np.isnan(claims.bootstrap_ci(np.array([1.0]))[1])
    with pytest.raises(ValueError, match="level must be in"):
        claims.bootstrap_ci(x, level=95)
    with pytest.raises(ValueError, match="samples are empty"):
        claims.bootstrap_ci(np.array([]))
    with pytest.raises(ValueError, match="one length"):
        claims.bootstrap_ci((x, x[:5]))
    with pytest.raises(ValueError, match="groups must label every sample"):
        claims.bootstrap_ci(x, groups=[0, 1])


def test_effect_verdicts_on_known_effects():
    rng = np.random.default_rng(4)
    base = rng.normal(0.5, 0.1, 300)
    assert claims.effect(base + 0.05, base)["verdict"] == "holds"               # paired, every image +0.05
    assert claims.effect(base - 0.05, base)["verdict"] == "contradicted"
    noise = rng.normal(0, 0.1, 300)
    assert claims.effect(base + noise, base)["verdict"] == "inconclusive"      # no effect
    e = claims.effect(rng.normal(0.6, 0.1, 200), rng.normal(0.5, 0.1, 250), paired=False)
    assert e["verdict"] == "holds" and e["n"] == 200 and e["ci_low"] < 0.1 < e["ci_high"]


def test_paired_interval_is_narrower_than_independent_on_correlated_samples():
    rng = np.random.default_rng(5)
    per_image = rng.normal(0.5, 0.2, 200)                  # images differ a lot, the models by a small shift
    a, b = per_image + 0.03 + rng.normal(0, 0.01, 200), per_image
    p, q = claims.effect(a, b, paired=True), claims.effect(a, b, paired=False)
    assert (p["ci_high"] - p["ci_low"]) < 0.2 * (q["ci_high"] - q["ci_low"])
    assert p["verdict"] == "holds" and q["verdict"] == "inconclusive"


def test_two_level_bootstrap_carries_the_spread_between_seeds():
    """Three seeds whose means differ: resampling the seeds as well widens the interval of the mean."""
    rng = np.random.default_rng(6)
    x = np.concatenate([rng.normal(m, 0.05, 200) for m in (0.1, 0.3, 0.5)])
    seeds = np.repeat([0, 1, 2], 200)
    _, lo1, hi1 = claims.bootstrap_ci(x)
    _, lo3, hi3 = claims.bootstrap_ci(x, groups=seeds)
    assert (hi3 - lo3) > 5 * (hi1 - lo1)
    _, lo, hi = claims.bootstrap_ci(x[:200], groups=seeds[:200])             # one group: the plain bootstrap
    assert (lo, hi) == claims.bootstrap_ci(x[:200])[1:]


def test_row_has_the_table_columns_and_the_verdict_of_its_interval():
    r = claims.row("art.t1.attr_art_gt_pgd.cifar10", "ART", "Table 1", "ART's maps are more robust than PGD-AT's",
                   "mean IN(ART) - IN(PGD)", {"value": 0.02, "ci_low": -0.01, "ci_high": 0.05}, n_images=200,
                   seeds=[0, 1, 2], notebook="03_art_table1_robustness.ipynb")
    assert list(r) == claims.COLUMNS
    assert r["verdict"] == "inconclusive" and r["seeds"] == "0 1 2"
    with pytest.raises(ValueError, match="paper must be 'ART' or 'Inequality', got 'art'"):
        claims.row("x", "art", "", "", "", {"value": 0, "ci_low": 0, "ci_high": 0}, n_images=1, seeds=[0],
                   notebook="")


def test_paired_two_level_bootstrap_resamples_seeds_and_shares_image_rows():
    """Two models measured on each seed's common images: the per-image difference is tiny and the same in every
    seed, while the seeds' levels differ a lot. Sharing the image rows keeps the interval of the difference tight;
    resampling the seeds carries the spread of a statistic that depends on the level."""
    rng = np.random.default_rng(7)
    base = np.concatenate([rng.normal(m, 0.05, 150) for m in (0.2, 0.4, 0.6)])
    seeds = np.repeat([0, 1, 2], 150)
    s = {"a": base + 0.01 + rng.normal(0, 0.002, 450), "b": base}
    g = {"a": seeds, "b": seeds}
    diff = claims.compare(s, lambda m: m["a"] - m["b"], paired=True, groups=g)
    assert diff["verdict"] == "holds" and diff["ci_high"] - diff["ci_low"] < 0.002
    level = claims.compare(s, lambda m: m["b"], paired=True, groups=g)
    flat = claims.compare(s, lambda m: m["b"], paired=True)
    assert (level["ci_high"] - level["ci_low"]) > 5 * (flat["ci_high"] - flat["ci_low"])
    one = claims.compare({k: v[:150] for k, v in s.items()}, lambda m: m["a"] - m["b"], paired=True,
                         groups={k: v[:150] for k, v in g.items()})
    assert one["ci_low"] > 0.0095 - 0.001 and one["ci_high"] < 0.0105 + 0.001
    assert claims.compare(s, lambda m: m["a"] - m["b"], paired=True, groups=g) == diff      # deterministic
    with pytest.raises(ValueError, match="one labelling shared by every key"):
        claims.compare(s, lambda m: m["a"] - m["b"], paired=True, groups={"a": seeds, "b": seeds[::-1]})
