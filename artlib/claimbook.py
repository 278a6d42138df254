"""The claims table: every claim of both papers as a signed effect on the reference models, with its interval and
verdict (:mod:`artlib.claims`), or a reason why it is not tested here.

- :data:`INVENTORY` holds the 68 claim ids of ``shared/papers/claims_inventory.md`` (a reading of both papers, row
  by row) with their paper and section, so the table can be checked for coverage without ``../shared``.
- :data:`DROPPED` gives, for each id not tested here, the reason (ImageNet, SVHN, full CUB, models not in the zoo,
  no testable statement) and the analogue row that tests its closest CIFAR-10 form where one exists.
- :data:`CLAIMS` is one :class:`Claim` per tested row: its id (the inventory id with a suffix such as
  ``.cifar10.in`` when one claim is tested per dataset / metric), the claim in one sentence, how its effect is
  computed, and ``inputs``: a function of a :class:`Inputs` that returns the samples of :func:`claims.compare`.

Inputs are the notebooks' per-image files (``figures/samples/*.csv``, :func:`claims.save_samples`), their tables,
where a table gives rates and image counts (an accuracy, an error or a transfer rate on ``n`` images is resampled
exactly as its 0 / 1 outcomes, :func:`claims.bernoulli`), and the zoo's recorded accuracies (clean on the 10,000
shared test images, PGD-20 on 2,000; seeds 0-2: a two-level bootstrap over seeds and images).

Effects are in the unit of the metric: IN, K and accuracies in points (%), Gini in its own unit ([0, 1]). Where a
claim says "similar" or "hardly changes", the effect is :data:`SIMILAR_POINTS` minus the absolute difference, fixed
here before any run was looked at.

Example:
    >>> from artlib import claimbook
    >>> table = claimbook.table()                      # reads figures/ (or $ARTLIB_FIGURES)
    >>> table.groupby("paper").verdict.value_counts()
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np
import pandas as pd

from artlib import claims, metrics, plots

__all__ = ["INVENTORY", "DROPPED", "CLAIMS", "SIMILAR_POINTS", "Claim", "Inputs", "table", "dropped_table",
           "coverage", "markdown", "SOURCES"]

#: "Similar" / "hardly changes" in points of accuracy: |difference| below this supports the claim.
SIMILAR_POINTS = 2.0

# The inventory's ids, papers and sections (shared/papers/claims_inventory.md; tests compare the two when present).
_ART = """art.t1.attr_art_gt_pgd|Table 1; Sec 4.1.3
art.t1.attr_pgd_gt_natural|Table 1
art.t1.attr_art_gt_natural|Table 1
art.t1.attr_art_gt_ig_norm|Table 1; Sec 1, 2
art.abs.sota_margin_6_18|Abstract
art.t1.clean_art_gt_pgd|Table 1; Sec 4.1.3
art.t1.adv_art_gt_natural|Table 1; Sec 4.1.3; Sec 6
art.t1.adv_pgd_gt_art|Table 1 (its cells; Sec 1 calls ART's robustness comparable)
art.f3.grad_object_alignment|Fig. 3; Sec 4.1.4
art.f4.image_generation|Fig. 4; Sec 4.1.4
art.t2.grad_loc_art_best|Table 2; Sec 4.2; Sec 3.4
art.t2.top1loc_beats_adl_reported|Table 2; Abstract; Sec 1; Sec 6
art.f5_f13.wsol_maps_qualitative|Fig. 5; Fig. 13; App. B.2
art.f1_f10.natural_maps_manipulable|Fig. 1; App. A, Fig. 10
art.s5.targeted_art_gt_pgd|Sec 5
art.t3.c10c_art_gt_pgd|Table 3; Sec 5; Sec 6
art.t3.c10c_natural_best_low_freq|Table 3
art.t4.other_maps_art_gt_pgd|Table 4; Sec 5
art.t4.other_maps_pgd_gt_natural|Table 4
art.f6.cosine_art_highest|Fig. 6; Sec 5
art.s5.more_pgd_steps_stable|Sec 5
art.s5.spsa_not_stronger_than_pgd|Sec 5
art.s5.l2_art_gt_pgd|Sec 5
art.s5.spatial_art_gt_pgd|Sec 5
art.s5.seg_art_best|Sec 5; Fig. 7
art.f8f9.beta_peaks|Fig. 8, 9; Sec 5
art.f8f9.lambda_raises_robustness|Fig. 8, 9; Sec 5
art.f8f9.lambda_lowers_clean_acc|Fig. 9; Sec 5
art.f8f9.steps_saturate_at_3|Fig. 8, 9; Sec 5
art.t5.cosine_gt_l2_and_eq2|Table 5; App. A.1
art.t5.triplet_gt_plain_cosine|Table 5; App. A.1
art.t5.runner_up_negative_gt_argmin|Table 5; App. A.1
art.f11.art_highest_least_spread|Fig. 11; App. A.4
art.f12.art_best_at_all_eps|Fig. 12; App. A.4
art.f14.linf_similar_below_4|Fig. 14; App. C
art.f14.l2_art_gt_pgd|Fig. 14; App. C
art.t6.art_source_transfers_better|Table 6; App. C
art.t6.art_target_more_robust|Table 6; App. C
art.c.vs_jarn_cure|App. C
art.c.combined_adv_gt_pgd|App. C
art.c.combined_attr_between|App. C"""
_INEQ = """ineq.t1.gini_global_robust_gt_standard|Table 1; Sec 4.2; Abstract; Sec 1
ineq.t1.gini_global_rises_with_eps|Abstract; Sec 1; Sec 2.3; Table 1; Sec 4.2
ineq.t1.gini_regional_robust_gt_standard|Table 1; Sec 3.1; Sec 4.2; Fig. 2
ineq.t1.imagenet_gt_cifar|Sec 4.2; App. A.3
ineq.f2.maps_concentrate_with_eps|Fig. 2; Fig. 9; Sec 4.2
ineq.a7.class_gini_animals_gt_scenes|Sec 4.2; App. A.7
ineq.f3.random_noise_robust_gt_standard|Sec 4.3; Fig. 3
ineq.f3.noise1_robust_gt_standard|Sec 1; Sec 3.2.1; Sec 4.3; Fig. 3
ineq.f3.noise2_near_total|Sec 4.3; Fig. 3
ineq.f3.inductive_gt_random|Sec 4.3; Fig. 3
ineq.s3.noise2_gt_noise1|Sec 3.2.1
ineq.t2.occlusion_robust_gt_standard|Sec 1; Sec 3.2.2; Sec 4.4; Table 2; Fig. 1, 4
ineq.a9.cifar_occlusion_colours|App. A.9
ineq.t3.smoothgrad_highest_gini|Sec 4.5; Table 3; App. A.8
ineq.t3.smoothgrad_boosts_noise|Sec 4.5; Table 3
ineq.t3.ig_boosts_occlusion|Sec 4.5; Table 3
ineq.t3.conclusion_method_invariant|Sec 4.5
ineq.t4.transfer_low|App. A.4; Sec 4.4; Table 4
ineq.t4.std_to_robust_easier|App. A.4
ineq.t5.autoattack_accuracy|Reproducibility statement; Table 5
ineq.a5.l2_not_unequal|Sec 5; App. A.5
ineq.a5.l2_still_occlusion_vulnerable|App. A.5
ineq.a6.pruning_no_inequality|Sec 5; App. A.6
ineq.a6.linf_more_fragile_than_pruned|App. A.6
ineq.a9.cutout_reduces_inequality|Sec 5; App. A.9; Table 8
ineq.a3.gini_toy_values|App. A.3; Sec 3.1
ineq.a2.postprocessing_hides_inequality|Sec 5 / App. A.2; Fig. 5, 6"""

#: ``(id, paper, section)`` of every claim of the inventory, in its order.
INVENTORY: tuple = tuple((line.split("|")[0], paper, line.split("|")[1])
                         for paper, block in (("ART", _ART), ("Inequality", _INEQ)) for line in block.splitlines())

_ZOO_LACKS = "the reference zoo has no {} model (not trained in the CPU budget of the zoo; `python -m artlib zoo " \
             "list` shows it untrained)"
#: id -> why it is not a row of the claims table (and the analogue row that tests its closest form, if any).
DROPPED: dict = {
    "art.t1.attr_art_gt_ig_norm": _ZOO_LACKS.format("IG-NORM / IG-SUM-NORM (gtsrb-ig_norm, gtsrb-ig_sum_norm)")
    + "; the paper copies these numbers from Chen et al. (App. A.3.3-A.3.4), for GTSRB and Flowers only",
    "art.f3.grad_object_alignment": "qualitative (figure only, no ranking in the text); its measurable form, the "
    "cosine between image and gradient, is the row art.f6.cosine_art_highest.cifar10",
    "art.f4.image_generation": "qualitative (visual samples, no metric and no comparison in the paper); notebook 05 "
    "measures how often an independent PGD-10 model judges the generated images as the target class",
    "art.t2.grad_loc_art_best": "needs the full CUB-200-2011 test set (5,794 images; 150 here), ResNet-50 fine-tuned "
    "from ImageNet weights with ART (App. B.1) and VGG-GAP; the zoo's CUB ART trained from random initialisation stayed at chance "
    "(benchmarks/results/zoo.md), so notebook 13's PGD / ART rows are pipeline checks",
    "art.t2.top1loc_beats_adl_reported": "compares with a number quoted from the ADL paper (ResNet50-SE, CAM, full "
    "CUB); needs the same models as art.t2.grad_loc_art_best",
    "art.f5_f13.wsol_maps_qualitative": "qualitative (heatmaps and boxes); needs the models of art.t2.grad_loc_art_best",
    "art.s5.seg_art_best": "needs the Flowers-17 segmentation trimaps (not in the data root) and learned Flowers / "
    "CUB PGD and ART models; notebook 14 runs on CUB box masks as a stand-in, with smoke-trained CUB PGD / ART",
    "art.f8f9.beta_peaks": _ZOO_LACKS.format("softplus-beta sweep (cifar10-art-beta20, -beta100)"),
    "art.f8f9.lambda_raises_robustness": _ZOO_LACKS.format("lambda sweep (cifar10-art-lam0.25, -lam1, -lam2)"),
    "art.f8f9.lambda_lowers_clean_acc": _ZOO_LACKS.format("lambda sweep (cifar10-art-lam0.25, -lam1, -lam2)"),
    "art.f8f9.steps_saturate_at_3": _ZOO_LACKS.format("inner-steps sweep (cifar10-art-steps1, -steps5)"),
    "art.t5.cosine_gt_l2_and_eq2": _ZOO_LACKS.format("Table 5 objective variant (cifar10-art_variant-eq2, -eq4_l2)"),
    "art.c.vs_jarn_cure": "compares with numbers quoted from the JARN and CURE papers; neither method is implemented",
    "art.c.combined_adv_gt_pgd": "the L_attr + L_ce model of App. C is not a method of artlib.train nor in the zoo",
    "art.c.combined_attr_between": "the L_attr + L_ce model of App. C is not a method of artlib.train nor in the zoo",
    "ineq.t1.imagenet_gt_cifar": "needs the ImageNet l-inf robust checkpoints (robust-models-transfer; not reachable "
    "here) and the ImageNet validation set (100 sample images here)",
    "ineq.t5.autoattack_accuracy": "the paper states no direction and no value for Table 5 in this copy; notebook 25 "
    "reports the models' AutoAttack accuracy without a claim to test",
}


class Inputs:
    """What the claims read: ``figures/samples/<name>.csv``, ``figures/<name>.csv`` and the zoo's entries, each read
    once; a missing one raises :class:`claims.MissingInput`."""

    def __init__(self, figures=None):
        self.figures = figures
        self._cache = {}

    def samples(self, name: str) -> pd.DataFrame:
        if ("s", name) not in self._cache:
            self._cache[("s", name)] = claims.load_samples(name, self.figures)
        return self._cache[("s", name)]

    def table(self, name: str) -> pd.DataFrame:
        if ("t", name) not in self._cache:
            path = plots.figures_dir(self.figures) / f"{name}.csv"
            if not path.is_file():
                raise claims.MissingInput(f"{path.name} is missing")
            self._cache[("t", name)] = pd.read_csv(path)
        return self._cache[("t", name)]

    def zoo(self, name: str, column: str) -> tuple[np.ndarray, np.ndarray, list]:
        """The 0 / 1 outcomes behind the zoo's recorded accuracies of every seed of the entry ``name`` (without its
        ``-s<seed>`` suffix, e.g. ``"cifar10-pgd-linf8"``; ``column`` ``test_accuracy``: the whole shared test split,
        ``pgd20_accuracy``: the first 2,000 of it): ``(outcomes, seed labels, seeds)``."""
        from artlib import zoo
        rows = [e for e in zoo.entries() if e["name"].rsplit("-s", 1)[0] == name]
        if not rows:
            raise claims.MissingInput(f"no trained zoo entry {name}-s<seed>")
        n = {"test_accuracy": None, "pgd20_accuracy": zoo.PGD_EVAL["default"]["n"]}[column]
        out = [claims.bernoulli(e[column], min(n, e["n_test"]) if n else e["n_test"]) for e in rows]
        return np.concatenate(out), np.concatenate([[e["seed"]] * len(o) for e, o in zip(rows, out)]), \
            sorted(e["seed"] for e in rows)


@dataclass(frozen=True)
class Claim:
    """One row of the claims table: ``inputs(Inputs) -> (samples, statistic, paired, groups, seeds)``, measured
    by :func:`claims.compare`."""
    id: str
    claim: str
    statistic: str
    notebook: str
    inputs: Callable
    n_boot: int = 2000

    @property
    def base(self) -> str:
        """The inventory id this row tests (``id`` without its dataset / metric suffix)."""
        return next(i for i, _, _ in INVENTORY if self.id == i or self.id.startswith(i + "."))


# ---- input builders: samples dict + statistic ---------------------------------------------------------------------

def _sel(df, **eq):
    for k, v in eq.items():
        df = df[df[k] == v]
    return df


def _ifia(name, metric, models, scale=100.0, **where):
    """Per-image IN or K (points) of each model label under the ``where`` selection."""
    def get(src):
        s = _sel(src.samples(name), **where)
        out = {m: scale * _sel(s, method=m)[metric].to_numpy(float) for m in models}
        missing = [m for m, v in out.items() if len(v) == 0]
        if missing:
            raise claims.MissingInput(f"{name}: no attacked image of {missing}")
        return out
    return get


def _rates(name, rate, keys, n_col="n", scale=1.0, **where):
    """0 / 1 outcomes behind a table's rates: ``keys`` maps a sample key to the table's selection dict."""
    def get(src):
        t = _sel(_need(src.table(name), [rate, n_col], name), **where)
        out = {}
        for key, sel in keys.items():
            r = _sel(t, **sel)
            if len(r) != 1:
                raise claims.MissingInput(f"{name}: {len(r)} rows for {sel}")
            out[key] = claims.bernoulli(float(r[rate].iloc[0]) / scale, int(r[n_col].iloc[0]))
        return out
    return get


def _need(t: pd.DataFrame, cols, name: str) -> pd.DataFrame:
    """``t`` if it has ``cols``; else :class:`claims.MissingInput` (a table written before the column existed)."""
    missing = [c for c in cols if c not in t.columns]
    if missing:
        raise claims.MissingInput(f"{name}.csv has no column {missing}")
    return t


def _diff(a, b, scale=1.0):
    return lambda m: scale * (m[a] - m[b])


def _margin(a, others, scale=1.0):
    """``a`` above the best of ``others``."""
    return lambda m: scale * (m[a] - max(m[o] for o in others))


def _row(claim_id, claim, statistic, notebook, get, stat, paired=False, groups=None, seeds=(0,), **kw):
    def inputs(src, get=get, stat=stat, paired=paired, groups=groups, seeds=seeds):
        got = get(src)
        if isinstance(got, tuple):               # (samples, groups, seeds) from the zoo
            return got[0], stat, paired, got[1], got[2]
        return got, stat, paired, groups, list(seeds)
    return Claim(claim_id, claim, statistic, notebook, inputs, **kw)


_BRIDGE = "bridge_art_inequality"
#: How a statistic over the zoo's seeds is stated (``{seeds}`` is filled with the seeds measured).
_SEEDS_STAT = "seeds {seeds} (two-level bootstrap over seeds and images)"

#: Notebook 30's study labels of the CIFAR-10 trio (ART lambda 0.5 as in the paper, PGD-AT and Natural).
_BRIDGE_TRIO = {"ART": "art-0.5", "PGD-10": "pgd-8", "Natural": "natural"}


def _bridge(kind, column, labels, scale=1.0, paired=False):
    """Notebook 30's per-image values of ``column`` (``kind`` ``"ifia"`` or ``"gini"``) for every seed of each study
    label: ``(samples, seed labels, seeds)`` for a two-level bootstrap over seeds and images. ``labels`` maps a
    sample key to a study label. ``paired``: only the seeds all labels share, rows in (seed, image) order (the
    common images of a seed are the same for its models)."""
    def get(src):
        s = src.samples(_BRIDGE)
        s = s[s.kind == kind]
        parts = {k: s[s.label == lab].sort_values(["seed", "image"]) for k, lab in labels.items()}
        missing = [k for k, v in parts.items() if len(v) == 0]
        if missing:
            raise claims.MissingInput(f"{_BRIDGE}: no {kind} samples of {missing}")
        if paired:
            shared = set.intersection(*(set(v.seed) for v in parts.values()))
            parts = {k: v[v.seed.isin(shared)] for k, v in parts.items()}
        samples = {k: scale * v[column].to_numpy(float) for k, v in parts.items()}
        groups = {k: v.seed.to_numpy(int) for k, v in parts.items()}
        return samples, groups, sorted(set().union(*(set(v.seed) for v in parts.values())))
    return get


def _bridge_rates(columns, labels):
    """0 / 1 outcomes behind notebook 30's per-seed attack error rates (``columns`` of
    ``bridge_art_inequality_seeds.csv``, each over that row's ``n`` images), keyed ``"<key>|<column>"`` for every
    ``key -> study label`` of ``labels``, with the seed of each outcome: a two-level bootstrap over seeds and images."""
    def get(src):
        t = _need(src.table("bridge_art_inequality_seeds"), ["label", "seed", "n", *columns],
                  "bridge_art_inequality_seeds")
        samples, groups, seeds = {}, {}, set()
        for key, lab in labels.items():
            rows = t[t.label == lab]
            if rows.empty:
                raise claims.MissingInput(f"bridge_art_inequality_seeds: no rows of {lab}")
            for col in columns:
                parts = [claims.bernoulli(float(r[col]), int(r.n)) for _, r in rows.iterrows()]
                samples[f"{key}|{col}"] = np.concatenate(parts)
                groups[f"{key}|{col}"] = np.concatenate([[int(r.seed)] * len(p) for (_, r), p in
                                                          zip(rows.iterrows(), parts)])
            seeds |= set(rows.seed.astype(int))
        return samples, groups, sorted(seeds)
    return get


def _table5(metric, variants, scale=100.0):
    """Notebook 10's per-image IN or K (points) of Table 5 variants, each of which must be a zoo model there (a
    smoke-trained fallback sits at chance: not an input to a claim)."""
    def get(src):
        t = src.table("art_table5").set_index("variant")
        bad = [v for v in variants if v not in t.index or not str(t.loc[v, "model"]).startswith("zoo")]
        if bad:
            raise claims.MissingInput(f"art_table5: {bad} not zoo models (smoke-trained fallbacks)")
        s = src.samples("art_table5")
        return {v: scale * _sel(s, variant=v)[metric].to_numpy(float) for v in variants}
    return get


def _zoo_acc(column, methods):
    def get(src):
        samples, groups, seeds = {}, {}, set()
        for label, entry in methods.items():
            v, g, s = src.zoo(entry, column)
            samples[label], groups[label] = v, g
            seeds |= set(s)
        return samples, groups, sorted(seeds)
    return get


_NB = {k: f"{k}.ipynb" for k in (
    "03_art_table1_robustness", "06_art_table4_fig6_attributions", "10_art_table5_loss_ablation", "07_art_table3_corruptions",
    "08_art_sec5_targeted", "09_art_adversarial_extras", "12_art_fig11_12_distributions", "20_ineq_table1_gini",
    "21_ineq_fig2_attributions", "22_ineq_fig3_noise", "23_ineq_table2_occlusion",
    "24_ineq_table3_attribution_ablation", "25_ineq_transfer_autoattack", "26_ineq_l2_and_sparsity",
    "27_ineq_class_gini", "28_ineq_cutout", "30_bridge_art_inequality", "98_claims")}
_TRIO = ["Natural", "PGD-10", "ART"]
_LADDER = ["linf-1", "linf-2", "linf-4", "linf-8"]
_VEHICLES = (0, 1, 8, 9)          # CIFAR-10 airplane, automobile, ship, truck; the other six classes are animals


def _art_claims() -> list:
    nb4, nb8, nb12 = (_NB[k] for k in ("06_art_table4_fig6_attributions", "08_art_sec5_targeted",
                                       "12_art_fig11_12_distributions"))
    out = []
    nb30 = _NB["30_bridge_art_inequality"]
    # Table 1's trio has three zoo seeds: the IFIA claims are measured where all three are attacked (notebook 30,
    # IFIA k = 100, eps 8/255, paper setting, each model's correctly classified images); notebook 03 prints seed 0.
    for metric, suf in (("IN", "in"), ("K", "k")):
        for cid, a, b, text in (("art.t1.attr_art_gt_pgd", "ART", "PGD-10", "ART's IG maps are more robust to IFIA "
                                 "than PGD-AT's"),
                                ("art.t1.attr_pgd_gt_natural", "PGD-10", "Natural", "PGD-AT's IG maps are more robust "
                                 "to IFIA than the naturally trained model's"),
                                ("art.t1.attr_art_gt_natural", "ART", "Natural", "ART's IG maps are more robust to "
                                 "IFIA than the naturally trained model's")):
            out.append(_row(f"{cid}.cifar10.{suf}", text + f" ({metric}).",
                            f"mean {metric}({a}) - mean {metric}({b}) over the correctly classified attacked images "
                            f"(points), IFIA top-k, eps 8/255, paper setting, {_SEEDS_STAT}", nb30,
                            _bridge("ifia", metric, {a: _BRIDGE_TRIO[a], b: _BRIDGE_TRIO[b]}, 100), _diff(a, b)))
    out.append(_row("art.abs.sota_margin_6_18.cifar10", "ART's attributional robustness beats the best baseline by "
                    "at least the abstract's lower margin of 6 points (our reading: IN on CIFAR-10 against the better "
                    "of PGD-AT and Natural; the abstract names neither metric nor baseline).",
                    f"mean IN(ART) - max(mean IN(PGD-10), mean IN(Natural)) - 6 (points), {_SEEDS_STAT}", nb30,
                    _bridge("ifia", "IN", _BRIDGE_TRIO, 100),
                    lambda m: m["ART"] - max(m["PGD-10"], m["Natural"]) - 6))
    zoo_stat = "the zoo's recorded {}, " + _SEEDS_STAT.replace("{seeds}", "{{seeds}}") + ", {} - {} (points)"
    for cid, col, a, b, text in (
            ("art.t1.clean_art_gt_pgd", "test_accuracy", "ART", "PGD-10", "ART's clean accuracy is higher than "
             "PGD-AT's."),
            ("art.t1.adv_art_gt_natural", "pgd20_accuracy", "ART", "Natural", "ART is more adversarially robust "
             "than the naturally trained model (l-inf PGD, eps 8/255)."),
            ("art.t1.adv_pgd_gt_art", "pgd20_accuracy", "PGD-10", "ART", "PGD-AT's adversarial accuracy is above "
             "ART's (l-inf PGD, eps 8/255).")):
        what = {"test_accuracy": "clean accuracy on the 10,000 shared test images",
                "pgd20_accuracy": "PGD-20 accuracy (eps 8/255, step 2/255; the paper: PGD-40) on 2,000 test "
                "images"}[col]
        methods = {"ART": "cifar10-art", "PGD-10": "cifar10-pgd-linf8", "Natural": "cifar10-natural"}
        out.append(_row(f"{cid}.cifar10", text, zoo_stat.format(what, a, b), _NB["98_claims"],
                        _zoo_acc(col, {a: methods[a], b: methods[b]}), _diff(a, b, 100)))
    out.append(_row("art.f1_f10.natural_maps_manipulable.cifar10", "A targeted attribution attack moves the naturally "
                    "trained model's IG map towards a chosen target map.",
                    "mean over images of IN(attacked map, target) - IN(original map, target) for Natural (points, "
                    "paired)", nb8, lambda src: {k: 100 * _sel(src.samples("art_sec5_targeted"), method="Natural")[c]
                                                 .to_numpy(float) for k, c in (("after", "IN_target"),
                                                                              ("before", "IN_target_before"))},
                    _diff("after", "before"), paired=True))
    for metric, suf in (("IN", "in"), ("K", "k")):
        out.append(_row(f"art.s5.targeted_art_gt_pgd.cifar10.{suf}", f"Under a targeted IG attack ART's maps stay "
                        f"closer to the originals than PGD-AT's ({metric}).",
                        f"mean {metric}(ART) - mean {metric}(PGD-10) between original and attacked IG maps (points)",
                        nb8, _ifia("art_sec5_targeted", metric, ["ART", "PGD-10"]), _diff("ART", "PGD-10")))
    for mp, mname in (("saliency", "gradient"), ("gradshap", "GradSHAP")):
        for metric, suf in (("IN", "in"), ("K", "k")):
            for cid, a, b in (("art.t4.other_maps_art_gt_pgd", "ART", "PGD-10"),
                              ("art.t4.other_maps_pgd_gt_natural", "PGD-10", "Natural")):
                text = (f"ART's {mname} maps are more robust to the top-k attack than PGD-AT's ({metric})."
                        if a == "ART" else f"PGD-AT's {mname} maps are more robust to the top-k attack than the "
                        f"naturally trained model's ({metric}).")
                out.append(_row(f"{cid}.cifar10.{mname.lower()}.{suf}", text,
                                f"mean {metric}({a}) - mean {metric}({b}), {mname} maps (points)", nb4,
                                _ifia("art_table4", metric, [a, b], attribution=mp), _diff(a, b)))
    out.append(_row("art.f6.cosine_art_highest.cifar10", "The cosine between an image and its true-class input "
                    "gradient is higher for ART than for PGD-AT and Natural.",
                    "min over the baselines of mean cos(ART) - mean cos(baseline), the same images (paired)", nb4,
                    lambda src: {m: _sel(src.samples("art_fig6_cosine"), method=m).cos.to_numpy(float)
                                 for m in _TRIO}, _margin("ART", ["PGD-10", "Natural"]), paired=True))
    t3 = "art_table3"
    corr = ("gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "glass_blur", "motion_blur", "zoom_blur",
            "snow", "fog", "brightness", "contrast", "elastic_transform", "pixelate", "jpeg_compression",
            "speckle_noise")                                   # ART Table 3's 15 columns

    def c10c(models, which=corr):
        def get(src):
            t = src.table(t3)
            have = t[t["Top-1 acc (%)"].notna()].groupby("corruption").model.nunique()
            present = [c for c in which if have.get(c, 0) == t.model.nunique()]     # measured for every model
            if not present:
                raise claims.MissingInput(f"{t3}: none of {which}")
            return _rates(t3, "Top-1 acc (%)", {f"{m}|{c}": dict(model=m, corruption=c) for m in models
                                               for c in present}, scale=100)(src)
        return get

    def mean_over(a, b):
        def f(m):
            cs = {k.split("|")[1] for k in m}
            return 100 * float(np.mean([m[f"{a}|{c}"] - m[f"{b}|{c}"] for c in cs]))
        return f
    out.append(_row("art.t3.c10c_art_gt_pgd.cifar10", "On CIFAR-10-C, ART's accuracy is above PGD-AT's (averaged over "
                    "the corruptions).", "mean over those of Table 3's 15 corruptions measured here (5 severities "
                    "each) of acc(ART) - acc(PGD-10) (points)", _NB["07_art_table3_corruptions"],
                    c10c(["ART", "PGD-10"]), mean_over("ART", "PGD-10")))

    def majority(m):
        cs = {k.split("|")[1] for k in m}
        return float(np.mean([m[f"ART|{c}"] > max(m[f"PGD-10|{c}"], m[f"Natural|{c}"]) for c in cs])) - 0.5
    out.append(_row("art.t3.c10c_art_gt_pgd.cifar10.majority", "ART generalises better than the other models on a "
                    "majority of the CIFAR-10-C corruptions (Sec. 5's wording: a count against both baselines).",
                    "share of Table 3's corruptions measured here on which acc(ART) > max(acc(PGD-10), acc(Natural)), "
                    "minus 1/2", _NB["07_art_table3_corruptions"], c10c(_TRIO), majority))

    def low_freq(m):
        cs = {k.split("|")[1] for k in m}
        return 100 * min(m[f"Natural|{c}"] - max(m[f"ART|{c}"], m[f"PGD-10|{c}"]) for c in cs)
    out.append(_row("art.t3.c10c_natural_best_low_freq.cifar10", "Natural training beats both robust models on fog, "
                    "brightness and contrast.", "min over fog, brightness, contrast of acc(Natural) - max(acc(ART), "
                    "acc(PGD-10)) (points)", _NB["07_art_table3_corruptions"],
                    c10c(_TRIO, ("fog", "brightness", "contrast")), low_freq))
    for cid, v, text in (("art.t5.triplet_gt_plain_cosine", "eq4_cos", "Adding the negative sample (Eq. 5's soft-margin "
                          "triplet) makes the attributions more robust than the plain cosine objective of Eq. 4"),
                         ("art.t5.runner_up_negative_gt_argmin", "argmin", "Taking the runner-up class as the negative "
                          "makes the attributions more robust than taking the lowest-logit class")):
        for metric, suf in (("IN", "in"), ("K", "k")):
            out.append(_row(f"{cid}.cifar10.{suf}", f"{text} ({metric}).", f"mean {metric}(ART, Eq. 5) - mean "
                            f"{metric}({v}) over each model's correctly classified attacked images (points), IFIA "
                            "top-k, eps 8/255; both zoo models", _NB["10_art_table5_loss_ablation"],
                            _table5(metric, ["art", v]), _diff("art", v)))
    nb9 = _NB["09_art_adversarial_extras"]
    s5 = "art_sec5_attacks"
    out.append(_row("art.s5.more_pgd_steps_stable.cifar10", "ART's adversarial accuracy hardly changes as PGD steps "
                    "increase (no gradient masking).", f"{SIMILAR_POINTS:g} - |acc(ART, fewest PGD steps) - "
                    "acc(ART, most steps)| (points; notebook 09's step counts, 'run as' column)", nb9,
                    _rates(s5, "Adv acc (%)", {"few": dict(attack="PGD-100"), "many": dict(attack="PGD-500")},
                           scale=100, method="ART"), lambda m: SIMILAR_POINTS - 100 * abs(m["few"] - m["many"])))
    out.append(_row("art.s5.spsa_not_stronger_than_pgd.cifar10", "The gradient-free SPSA attack leaves ART at least "
                    "as accurate as white-box PGD does (an inference from Sec. 5's SPSA accuracy and Table 1's PGD-40 "
                    "accuracy; the paper states no comparison).", "acc(ART, SPSA) - acc(ART, PGD with the most steps) (points)",
                    nb9, _rates(s5, "Adv acc (%)", {"spsa": dict(attack="SPSA"), "pgd": dict(attack="PGD-500")},
                                scale=100, method="ART"), _diff("spsa", "pgd", 100)))
    for cid, attack, norm, text in (("art.s5.l2_art_gt_pgd", "PGD-40", "l2", "Against l2 PGD (eps 1.0), ART is more "
                                     "robust than PGD-AT."),
                                    ("art.s5.spatial_art_gt_pgd", "spatial", None, "Against the spatial (rotation / "
                                     "translation) attack, ART is more robust than PGD-AT.")):
        sel = dict(attack=attack) if norm is None else dict(attack=attack, norm=norm)
        out.append(_row(f"{cid}.cifar10", text, f"acc(ART) - acc(PGD-10) under {attack if norm is None else 'l2 PGD'}"
                        " (points)", nb9, _rates(s5, "Adv acc (%)", {"ART": dict(method="ART", **sel),
                                                                    "PGD-10": dict(method="PGD-10", **sel)},
                                                 scale=100), _diff("ART", "PGD-10", 100)))

    def f14(norm):
        def get(src):
            t = src.table("art_fig14")
            t = t[(t.norm == norm) & (t.eps > 0)]
            if norm == "linf":
                t = t[t["eps (x255 for linf)"] < 4 - 1e-9]
            clean = _sel(src.table(s5), attack="clean")
            out = {}
            for _, r in t.iterrows():
                if r.model not in ("ART", "PGD-10"):
                    continue
                n = int(_sel(clean, method=r.model).n.iloc[0])
                out[f"{r.model}|{r.eps:.6g}"] = claims.bernoulli(float(r.accuracy), n)
            if not out:
                raise claims.MissingInput(f"art_fig14: no {norm} rows")
            return out
        return get

    def f14_stat(kind):
        def f(m):
            es = sorted({k.split("|")[1] for k in m}, key=float)
            d = [100 * (m[f"ART|{e}"] - m[f"PGD-10|{e}"]) for e in es]
            return SIMILAR_POINTS - max(abs(x) for x in d) if kind == "similar" else float(np.mean(d))
        return f
    out.append(_row("art.f14.linf_similar_below_4.cifar10", "Under l-inf PGD, ART's accuracy is similar to PGD-AT's "
                    "for eps below 4/255.", f"{SIMILAR_POINTS:g} - max over 0 < eps < 4/255 of |acc(ART) - "
                    "acc(PGD-10)| (points; n from notebook 09's clean row, the same images)", nb9, f14("linf"),
                    f14_stat("similar")))
    out.append(_row("art.f14.l2_art_gt_pgd.cifar10", "Under l2 PGD, ART is more robust than PGD-AT across budgets.",
                    "mean over the l2 budgets of acc(ART) - acc(PGD-10) (points)", nb9, f14("l2"), f14_stat("mean")))

    def t6(pairs):
        def get(src):
            t = src.table("art_table6").set_index("method")
            clean = _sel(src.table(s5), attack="clean").set_index("method")
            return {k: claims.bernoulli(float(t.loc[target, f"Adv acc, perturbation from {source} (%)"]) / 100,
                                        int(clean.loc[target, "n"])) for k, (target, source) in pairs.items()}
        return get
    out.append(_row("art.t6.art_source_transfers_better.cifar10", "Adversarial examples made on ART transfer to the "
                    "naturally trained model better than those made on PGD-AT.",
                    "acc(Natural | from PGD-10) - acc(Natural | from ART) (points)", nb9,
                    t6({"pgd": ("Natural", "PGD-10"), "art": ("Natural", "ART")}), _diff("pgd", "art", 100)))
    out.append(_row("art.t6.art_target_more_robust.cifar10", "ART withstands perturbations made on the naturally "
                    "trained model better than PGD-AT does.", "acc(ART | from Natural) - acc(PGD-10 | from Natural) "
                    "(points)", nb9, t6({"art": ("ART", "Natural"), "pgd": ("PGD-10", "Natural")}),
                    _diff("art", "pgd", 100)))
    for metric, suf in (("IN", "in"), ("K", "k")):
        out.append(_row(f"art.f11.art_highest_least_spread.cifar10.{suf}", f"Over the attacked test images ART has a "
                        f"higher mean {metric} than Natural and PGD-AT.", f"mean {metric}(ART) - max over baselines of "
                        f"mean {metric} at eps 8/255 (points)", nb12, _fig12(metric, [8.0]), _f12_margin()))
    out.append(_row("art.f11.art_highest_least_spread.cifar10.in_spread", "ART's per-image IN has the smallest "
                    "spread of the three models.", "min over baselines of sd(IN(baseline)) - sd(IN(ART)) at eps "
                    "8/255 (points)", nb12, _fig12("IN", [8.0]), None))
    for metric, suf in (("IN", "in"), ("K", "k")):
        out.append(_row(f"art.f12.art_best_at_all_eps.cifar10.{suf}", f"ART has a higher {metric} than PGD-AT and "
                        "Natural at every attack budget.", f"min over eps of [mean {metric}(ART) - max over baselines "
                        f"of mean {metric}] (points)", nb12, _fig12(metric, None), _f12_margin()))
    return out


def _fig12(metric, eps_list):
    """Per-image IN / K of notebook 12 keyed ``model|eps``; the spread row keeps the values for a std statistic."""
    def get(src):
        s = src.samples("art_fig11_12")
        es = sorted(set(s["eps (/255)"])) if eps_list is None else eps_list
        out = {}
        for m in _TRIO:
            for e in es:
                v = 100 * s[(s.method == m) & np.isclose(s["eps (/255)"], e)][metric].to_numpy(float)
                if len(v) == 0:
                    raise claims.MissingInput(f"art_fig11_12: no {m} at eps {e}/255")
                out[f"{m}|{e:g}"] = v
        return out
    return get


def _f12_margin():
    def f(m):
        es = {k.split("|")[1] for k in m}
        return min(m[f"ART|{e}"] - max(m[f"PGD-10|{e}"], m[f"Natural|{e}"]) for e in es)
    return f


def _ineq_claims() -> list:
    out = []
    nb20 = _NB["20_ineq_table1_gini"]

    def gini(name, models, col="gini_global", **where):
        def get(src):
            s = _sel(src.samples(name), **where)
            got = {m: _sel(s, model=m).sort_values("image")[col].to_numpy(float) for m in models}
            missing = [m for m, v in got.items() if len(v) == 0]
            if missing:
                raise claims.MissingInput(f"{name}: no samples of {missing}")
            return got
        return get
    t1 = "ineq_table1_cifar10"
    # the standard and l-inf 8/255 models have three zoo seeds: measured on each seed's common images (notebook 30)
    for col, cid, what in (("gini_global", "ineq.t1.gini_global_robust_gt_standard", "global"),
                           ("gini_regional", "ineq.t1.gini_regional_robust_gt_standard", "regional (4x4 blocks)")):
        out.append(_row(f"{cid}.cifar10", f"The l-inf-robust model's attributions are more unequal ({what} Gini of "
                        "|IG|) than the standard model's.", f"mean {what} Gini(l-inf 8/255) - mean Gini(standard), the "
                        f"same images of each seed (paired), {_SEEDS_STAT}",
                        _NB["30_bridge_art_inequality"],
                        _bridge("gini", col, {"linf-8": "pgd-8", "standard": "natural"}, paired=True),
                        _diff("linf-8", "standard"), paired=True))
    eps = np.array([1.0, 2.0, 4.0, 8.0])
    out.append(_row("ineq.t1.gini_global_rises_with_eps.cifar10", "Global Gini rises with the training budget eps "
                    "(1, 2, 4, 8 /255).", "least-squares slope of mean global Gini on eps (per 1/255), the same images "
                    "(paired), small-cnn (the paper: ResNet-18 / DenseNet)", nb20, gini(t1, _LADDER, arch="small-cnn"),
                    lambda m: float(np.polyfit(eps, [m[k] for k in _LADDER], 1)[0]), paired=True))
    out.append(_row("ineq.f2.maps_concentrate_with_eps.cifar10", "As eps grows, the important pixels gather in fewer "
                    "regions (Fig. 2's reading; measured as the regional Gini of |IG| over 4x4 blocks rising with "
                    "eps 1, 2, 4, 8 /255).", "least-squares slope of mean regional Gini on eps (per 1/255), the same "
                    "images (paired), small-cnn", nb20, gini(t1, _LADDER, "gini_regional", arch="small-cnn"),
                    lambda m: float(np.polyfit(eps, [m[k] for k in _LADDER], 1)[0]), paired=True))
    out.append(_row("ineq.t1.gini_global_rises_with_eps.cifar10.monotone", "Global Gini rises at every step of the "
                    "eps ladder 1 -> 2 -> 4 -> 8 /255.", "min over consecutive eps of the rise in mean global Gini "
                    "(paired)", nb20, gini(t1, _LADDER, arch="small-cnn"),
                    lambda m: min(m[b] - m[a] for a, b in zip(_LADDER, _LADDER[1:])), paired=True))

    def classes(src):
        s = _sel(src.samples("ineq_table6_cifar10"), model="linf-8")
        veh = s.label.isin(_VEHICLES)
        return {"animals": s[~veh].gini_global.to_numpy(float), "vehicles": s[veh].gini_global.to_numpy(float)}
    out.append(_row("ineq.a7.class_gini_animals_gt_scenes.cifar10", "CIFAR-10 analogue of A.7: for the l-inf model, "
                    "images of animal classes have a higher global Gini than images of vehicle classes.",
                    "mean global Gini(animal-class images) - mean Gini(vehicle-class images), l-inf 8/255 model, its "
                    "correctly classified images", _NB["27_ineq_class_gini"], classes, _diff("animals", "vehicles")))
    nb22, f3 = _NB["22_ineq_fig3_noise"], "ineq_fig3_cifar10"

    def noise(models, kinds, pixels=None):
        def get(src):
            t = src.table(f3)
            px = sorted(set(t.pixels)) if pixels is None else [sorted(set(t.pixels))[pixels]]
            return _rates(f3, "error_rate", {f"{m}|{k}|{p}": dict(model=m, kind=k, pixels=p) for m in models
                                             for k in kinds for p in px})(src)
        return get

    def over_px(f):
        def g(m):
            px = sorted({k.split("|")[2] for k in m}, key=int)
            return float(np.mean([f(lambda mk: m[f"{mk}|{p}"]) for p in px]))
        return g
    for kind, cid, text in (("random", "ineq.f3.random_noise_robust_gt_standard", "Noise at random pixel locations"),
                            ("I", "ineq.f3.noise1_robust_gt_standard", "Noise I (Gaussian noise added on the "
                             "highest-attribution entries)")):
        out.append(_row(f"{cid}.cifar10", f"{text} fools the l-inf-robust model more often than the standard one.",
                        f"mean over the noise budgets of error(l-inf 8/255) - error(standard), {kind} noise", nb22,
                        noise(["linf-8", "standard"], [kind]),
                        over_px(lambda v, kind=kind: v(f"linf-8|{kind}") - v(f"standard|{kind}"))))
    out.append(_row("ineq.f3.noise2_near_total.cifar10", "Noise II changes over half of the l-inf-robust model's "
                    "predictions at the budget scaled from 1,000 ImageNet pixels.", "error(l-inf 8/255, Noise II, the "
                    "second budget of the ladder) - 0.5", nb22, noise(["linf-8"], ["II"], pixels=1),
                    lambda m: next(iter(m.values())) - 0.5))
    out.append(_row("ineq.f3.inductive_gt_random.cifar10", "Attribution-guided noise (Noise I) does more damage than "
                    "random noise to both models.", "min over the two models of the mean over budgets of "
                    "error(Noise I) - error(random)", nb22, noise(["linf-8", "standard"], ["I", "random"]),
                    lambda m: min(over_px(lambda v, mk=mk: v(f"{mk}|I") - v(f"{mk}|random"))(m)
                                  for mk in ("linf-8", "standard"))))
    out.append(_row("ineq.s3.noise2_gt_noise1.cifar10", "Noise II (replacing the important entries) gives a higher "
                    "error than Noise I (adding to them) at the same budget.", "min over the two models of the mean "
                    "over budgets of error(Noise II) - error(Noise I)", nb22, noise(["linf-8", "standard"], ["II", "I"]),
                    lambda m: min(over_px(lambda v, mk=mk: v(f"{mk}|II") - v(f"{mk}|I"))(m)
                                  for mk in ("linf-8", "standard"))))
    # notebook 23 measures seed 0; notebook 30 the same budget (A.9: N = 10, R = 4) on each zoo seed's common images
    occ = _bridge_rates(["occ_black", "occ_grey", "occ_white"], {"linf-8": "pgd-8", "standard": "natural"})
    out.append(_row("ineq.t2.occlusion_robust_gt_standard.cifar10", "CIFAR-10 analogue: covering the "
                    "highest-attribution regions with small black patches fools the l-inf-robust model more often "
                    "than the standard model.", "error(l-inf 8/255) - error(standard), black patches (A.9: N = 10, "
                    f"R = 4), {_SEEDS_STAT}", _NB["30_bridge_art_inequality"], occ,
                    _diff("linf-8|occ_black", "standard|occ_black")))
    out.append(_row("ineq.a9.cifar_occlusion_colours.cifar10", "The l-inf-AT model is more vulnerable to occlusion "
                    "than the standard model for every patch colour.", "min over black, grey, white of error(l-inf "
                    f"8/255) - error(standard) (A.9: N = 10, R = 4), {_SEEDS_STAT}", _NB["30_bridge_art_inequality"],
                    occ, lambda m: min(m[f"linf-8|occ_{c}"] - m[f"standard|occ_{c}"] for c in ("black", "grey",
                                                                                         "white"))))
    nb24, t3 = _NB["24_ineq_table3_attribution_ablation"], "ineq_table3_cifar10"
    methods = ("input_x_gradient", "smoothgrad", "gradshap", "ig")

    def by_method(src, col="gini_global"):
        s = src.samples(t3)
        return {f"{m}|{a}": _sel(s, model=m, attribution=a).sort_values("image")[col].to_numpy(float)
                for m in ("linf-8", "standard") for a in methods}
    out.append(_row("ineq.t3.smoothgrad_highest_gini.cifar10", "SmoothGrad gives sparser maps, so a higher Gini, than "
                    "Input x Gradient, GradShap and IG.", "min over the two models of Gini(SmoothGrad) - max over the "
                    "other methods of Gini (paired images)", nb24, by_method,
                    lambda m: min(m[f"{k}|smoothgrad"] - max(m[f"{k}|{a}"] for a in methods if a != "smoothgrad")
                                  for k in ("linf-8", "standard")), paired=True))
    t3_rates = lambda col: _rates(t3, col, {f"{m}|{a}": dict(model=m, attribution=a)  # noqa: E731
                                            for m in ("linf-8", "standard") for a in methods})
    for col, best, cid, text in (("noise_I", "smoothgrad", "ineq.t3.smoothgrad_boosts_noise", "Choosing the noised "
                                  "entries with SmoothGrad gives the noise attack its highest success rate of the "
                                  "four methods (our reading of Sec. 4.5's 'increases')."),
                                 ("occ_black", "ig", "ineq.t3.ig_boosts_occlusion", "Choosing the occluded regions "
                                  "with IG gives the occlusion attack its highest success rate of the four methods "
                                  "(our reading of Sec. 4.5's 'improve').")):
        out.append(_row(f"{cid}.cifar10", text, f"min over the two models of error({best}) - max over the other "
                        f"methods of error ({col})", nb24, t3_rates(col),
                        lambda m, best=best: min(m[f"{k}|{best}"] - max(m[f"{k}|{a}"] for a in methods if a != best)
                                                 for k in ("linf-8", "standard"))))
    out.append(_row("ineq.t3.conclusion_method_invariant.cifar10.gini", "Whatever the attribution method, the robust "
                    "model has the higher Gini.", "min over the four methods of Gini(l-inf 8/255) - Gini(standard) "
                    "(paired images)", nb24, by_method,
                    lambda m: min(m[f"linf-8|{a}"] - m[f"standard|{a}"] for a in methods), paired=True))
    for col, suf, what in (("noise_I", "noise", "noise I"), ("occ_black", "occlusion", "black occlusion")):
        out.append(_row(f"ineq.t3.conclusion_method_invariant.cifar10.{suf}", f"Whatever the attribution method, the "
                        f"robust model has the higher {what} error.", f"min over the four methods of error(l-inf "
                        f"8/255) - error(standard), {what}", nb24, t3_rates(col),
                        lambda m: min(m[f"linf-8|{a}"] - m[f"standard|{a}"] for a in methods)))
    nb25, t4 = _NB["25_ineq_transfer_autoattack"], "ineq_table4_cifar10"

    def transfer(src):
        t = src.table(t4)
        t = t[t.source != t.target]
        return {f"{r.attack}|{r.source}": claims.bernoulli(float(r.transfer_rate), int(r.n)) for r in t.itertuples()}
    out.append(_row("ineq.t4.transfer_low.cifar10", "Occluded and noised images found on one model transfer poorly "
                    "between the l-inf-robust and standard models.", "0.5 - mean transfer rate over the attacks and "
                    "both directions (a 'poor' transfer: fewer than half)", nb25, transfer,
                    lambda m: 0.5 - float(np.mean(list(m.values())))))
    out.append(_row("ineq.t4.std_to_robust_easier.cifar10", "Attacks transfer more easily from the standard model to "
                    "the l-inf-robust model than the other way round.", "mean over attacks of rate(standard -> l-inf) "
                    "- rate(l-inf -> standard)", nb25, transfer,
                    lambda m: float(np.mean([m[k] - m[k.rsplit("|", 1)[0] + "|linf-8"]
                                             for k in m if k.endswith("|standard")]))))
    nb26, a56 = _NB["26_ineq_l2_and_sparsity"], "ineq_a5_a6_cifar10"
    out.append(_row("ineq.a5.l2_not_unequal.cifar10", "The l2-robust model's global Gini is not above the standard "
                    "model's (similar or lower).", "mean Gini(standard) - mean Gini(l2 0.5), paired images "
                    "('similar' reads as inconclusive, 'higher' as contradicted)", nb26,
                    gini(a56, ["standard", "l2-0.5"]), _diff("standard", "l2-0.5"), paired=True))
    occ_cols = ("occ_black", "occ_grey", "occ_white")

    def summary(name, models, cols):
        def get(src):
            t = src.table(name).set_index("model")
            return {f"{m}|{c}": claims.bernoulli(float(t.loc[m, c]), int(t.loc[m, "n"])) for m in models for c in cols}
        return get
    out.append(_row("ineq.a5.l2_still_occlusion_vulnerable.cifar10", "The l2-robust model is more vulnerable to "
                    "occlusion than the standard model.", "mean over black, grey, white of error(l2 0.5) - "
                    "error(standard)", nb26, summary(a56, ["l2-0.5", "standard"], occ_cols),
                    lambda m: float(np.mean([m[f"l2-0.5|{c}"] - m[f"standard|{c}"] for c in occ_cols]))))
    pruned = ("filter-pruned-0.25", "weight-pruned-0.5")
    out.append(_row("ineq.a6.pruning_no_inequality.cifar10", "Pruning (l1 filter pruning, weight pruning) does not "
                    "make attributions more unequal.", "min over the pruned models of mean Gini(standard) - mean "
                    "Gini(pruned), paired images ('similar' reads as inconclusive)", nb26,
                    gini(a56, ["standard", *pruned]), lambda m: min(m["standard"] - m[p] for p in pruned), paired=True))
    out.append(_row("ineq.a6.linf_more_fragile_than_pruned.cifar10", "The l-inf-AT model is more easily affected by "
                    "occlusion and noise than either pruned model.", "min over the pruned models of the mean over "
                    "black / grey / white occlusion and noise I of error(l-inf 8/255) - error(pruned)", nb26,
                    summary(a56, ["linf-8", *pruned], (*occ_cols, "noise_I")),
                    lambda m: min(float(np.mean([m[f"linf-8|{c}"] - m[f"{p}|{c}"] for c in (*occ_cols, "noise_I")]))
                                  for p in pruned)))
    out.append(_row("ineq.a9.cutout_reduces_inequality.cifar10", "Adding Cutout to l-inf adversarial training lowers "
                    "the robust model's inequality.", "mean global Gini(l-inf 8/255) - mean Gini(Cutout + l-inf "
                    "8/255), paired images", _NB["28_ineq_cutout"],
                    gini("ineq_table8_cifar10", ["linf-8", "cutout-linf-8"]), _diff("linf-8", "cutout-linf-8"),
                    paired=True))

    def toy(src):
        import torch
        g = metrics.gini(torch.tensor([[0, 0, 0, 1, 1], [0, 0, 0, 1, 1000]], dtype=torch.float64)).numpy()
        return {"err": np.array([max(abs(g[0] - 0.6), abs(g[1] - 0.799))])}
    out.append(_row("ineq.a3.gini_toy_values", "The Sec. 3.1 Gini gives 0.6 for [0,0,0,1,1] and 0.799 for "
                    "[0,0,0,1,1000].", "0.001 - max |Gini - the paper's value| over the two vectors (exact, no "
                    "sampling: the interval is the value)", _NB["98_claims"], toy, lambda m: 0.001 - m["err"],
                    seeds=()))
    out.append(_row("ineq.a2.postprocessing_hides_inequality.cifar10", "Clipping maps to +-3 sigma and rescaling (the "
                    "usual visualisation) hides the l-inf model's inequality: the raw map's Gini is higher.",
                    "mean global Gini(raw |IG|) - mean Gini(clipped, rescaled), l-inf 8/255 model, paired images",
                    _NB["21_ineq_fig2_attributions"],
                    lambda src: {c: _sel(src.samples("ineq_fig5_cifar10"), model="linf-8")[c].to_numpy(float)
                                 for c in ("gini_global", "gini_global_clipped")},
                    _diff("gini_global", "gini_global_clipped"), paired=True))
    return out


#: Every tested row, ART first.
CLAIMS: tuple = tuple(_art_claims() + _ineq_claims())

#: The per-image files the claims read, each with the notebook table whose means it must reproduce:
#: ``samples name -> (table name, keys, {table column: (samples column, scale)}, samples filter)``.
SOURCES = {
    "art_table1": ("art_table1", ["dataset", "method", "setting"], {"IN (%)": ("IN", 100), "K (%)": ("K", 100)},
                   lambda s: s[(s.setting == "paper") | s.success.astype(bool)]),
    "art_table4": ("art_table4", ["method", "attribution"], {"IN (%)": ("IN", 100), "K (%)": ("K", 100)}, None),
    "art_fig6_cosine": ("art_fig6_cosine", ["method"], {"mean": ("cos", 1)}, None),
    "art_table5": ("art_table5", ["variant"], {"IN (%)": ("IN", 100), "K (%)": ("K", 100)}, None),
    "art_sec5_targeted": ("art_sec5_targeted", ["method"], {"IN (%)": ("IN", 100), "K (%)": ("K", 100)}, None),
    "art_fig11_12": ("art_fig12_eps", ["method", "eps (/255)"], {"IN (%)": ("IN", 100), "K (%)": ("K", 100)}, None),
    "ineq_table1_cifar10": ("ineq_table1_cifar10", ["arch", "model"], {"gini_global": ("gini_global", 1),
                                                                      "gini_regional": ("gini_regional", 1)}, None),
    "ineq_fig5_cifar10": ("ineq_fig5_stats_cifar10", ["model"], {"gini_global": ("gini_global", 1)}, None),
    "ineq_table3_cifar10": ("ineq_table3_cifar10", ["attribution", "model"], {"gini_global": ("gini_global", 1)}, None),
    "ineq_a5_a6_cifar10": ("ineq_a5_a6_cifar10", ["model"], {"gini_global": ("gini_global", 1)}, None),
    "ineq_table8_cifar10": ("ineq_table8_cifar10", ["model"], {"gini_global": ("gini_global", 1)}, None),
    # Gini rows and IFIA rows in one file (NaN in the other kind's columns, which the means skip)
    _BRIDGE: ("bridge_art_inequality_seeds", ["label", "seed"], {m: (m, 1) for m in ("gini_global", "gini_regional",
                                                                                     "IN", "K")}, None),
}


def _measure(c: Claim, src: Inputs) -> dict:
    paper = next(p for i, p, _ in INVENTORY if i == c.base)
    section = next(s for i, _, s in INVENTORY if i == c.base)
    try:
        samples, stat, paired, groups, seeds = c.inputs(src)
        if stat is None:                                   # the spread row: a statistic of the values themselves
            m = _spread_effect(samples)
        else:
            m = claims.compare(samples, stat, paired=paired, groups=groups, n_boot=c.n_boot)
        if len(next(iter(samples.values()))) == 1 and stat is not None and not seeds:   # exact (no sampling)
            m["ci_low"] = m["ci_high"] = m["value"]
        n = m["n"] if seeds or stat is None else 0
        if groups:                                         # zoo rows: samples of every seed; report per seed
            n //= max(1, len(seeds))
        statistic = c.statistic.replace("{seeds}", " ".join(str(int(s)) for s in seeds))
    except claims.MissingInput as e:
        m, n, seeds = {"value": float("nan"), "ci_low": float("nan"), "ci_high": float("nan")}, 0, []
        statistic = f"{c.statistic} -- not measured: {e} (run {c.notebook})"
    return claims.row(c.id, paper, section, c.claim, statistic, m, n_images=n, seeds=seeds, notebook=c.notebook)


def _spread_effect(samples: dict, n_boot: int = 2000, seed: int = 0) -> dict:
    """``min over baselines of sd(baseline) - sd(ART)`` at one eps (Fig. 11's "smallest spread"), each model's
    images resampled on their own."""
    rng = np.random.default_rng(seed)
    art = next(k for k in samples if k.startswith("ART|"))
    others = [k for k in samples if k != art]

    def stat(d):
        return min(np.std(d[o]) for o in others) - np.std(d[art])
    value = float(stat(samples))
    boots = [stat({k: v[rng.integers(0, len(v), len(v))] for k, v in samples.items()}) for _ in range(n_boot)]
    lo, hi = (float(q) for q in np.quantile(boots, [0.025, 0.975]))
    return {"value": value, "ci_low": lo, "ci_high": hi, "n": min(len(v) for v in samples.values())}


def table(figures=None) -> pd.DataFrame:
    """The claims table (:data:`claims.COLUMNS`) measured from the notebooks' outputs under ``figures`` (default
    ``$ARTLIB_FIGURES`` or ``figures/``); a row whose input is missing says so in ``statistic`` and is
    ``inconclusive`` with NaN interval."""
    src = Inputs(figures)
    return pd.DataFrame([_measure(c, src) for c in CLAIMS], columns=claims.COLUMNS)


def dropped_table() -> pd.DataFrame:
    """``id, paper, section, reason`` of every inventory claim that is not a row."""
    return pd.DataFrame([{"id": i, "paper": p, "section": s, "reason": DROPPED[i]} for i, p, s in INVENTORY
                         if i in DROPPED])


def coverage(rows: pd.DataFrame) -> dict:
    """``{"tested": ids with a row, "dropped": ids in DROPPED, "missing": neither, "both": both}``."""
    tested = {next((i for i, _, _ in INVENTORY if r == i or r.startswith(i + ".")), None) for r in rows.id}
    ids = [i for i, _, _ in INVENTORY]
    return {"tested": [i for i in ids if i in tested], "dropped": [i for i in ids if i in DROPPED],
            "missing": [i for i in ids if i not in tested and i not in DROPPED],
            "both": [i for i in ids if i in tested and i in DROPPED]}


def markdown(rows: pd.DataFrame, profile: str) -> str:
    """``figures/claims.md``: verdict counts per paper, then every row with its interval and verdict."""
    counts = rows.groupby(["paper", "verdict"]).size().unstack(fill_value=0).reindex(columns=claims.VERDICTS,
                                                                                    fill_value=0)
    lines = [f"# Claims of both papers on the {profile} models", "",
             "Written by `notebooks/98_claims.ipynb` (`artlib.claimbook`). `value`: the effect, signed so that > 0 "
             "supports the claim (points for IN / K / accuracy, Gini units for Gini, rates for error rates); "
             "`ci_low`, `ci_high`: 95 % bootstrap interval over images (and over seeds where listed). Verdict: "
             "`holds` if ci_low > 0, `contradicted` if ci_high < 0, else `inconclusive`. Claims not tested here: "
             "`claims_dropped.md`.", "", "## Verdicts", "", counts.reset_index().to_markdown(index=False), "",
             "## Claims", ""]
    show = rows[["id", "claim", "value", "ci_low", "ci_high", "n_images", "seeds", "verdict", "notebook"]]
    lines.append(show.to_markdown(index=False, floatfmt=".4g"))
    return "\n".join(lines) + "\n"


def dropped_markdown() -> str:
    """``figures/claims_dropped.md``: every inventory claim that is not a row, with the reason."""
    return ("# Claims not tested on the reference models\n\nEach id of `shared/papers/claims_inventory.md` that is "
            "not a row of `claims.csv` (`artlib.claimbook.DROPPED`), with the reason and, where one exists, the "
            "row that tests its closest CIFAR-10 form.\n\n" + dropped_table().to_markdown(index=False) + "\n")


def save(rows: pd.DataFrame, profile: str, out_dir=None) -> list:
    """Write ``claims.csv``, ``claims.md`` and ``claims_dropped.md`` under the figures folder (atomically)."""
    from artlib.checkpoints import atomic_write
    out = plots.figures_dir(out_dir)
    paths = [atomic_write(out / "claims.csv", lambda f: f.write(rows.to_csv(index=False).encode()))]
    paths.append(atomic_write(out / "claims.md", lambda f: f.write(markdown(rows, profile).encode())))
    paths.append(atomic_write(out / "claims_dropped.md", lambda f: f.write(dropped_markdown().encode())))
    return paths


def summary_markdown(rows: pd.DataFrame) -> str:
    """Prose for the notebook, rendered from the table: verdict counts per paper, then the claims that hold and
    those contradicted, each with its value and interval."""
    lines = []
    for paper, t in rows.groupby("paper", sort=False):
        counts = t.verdict.value_counts().reindex(claims.VERDICTS, fill_value=0)
        measured = int(t.value.notna().sum())
        lines.append(f"**{paper}**: {len(t)} rows ({measured} measured): " +
                     ", ".join(f"{int(counts[v])} {v}" for v in claims.VERDICTS) + ".")
        for v in ("holds", "contradicted"):
            part = t[t.verdict == v]
            if len(part):
                lines.append(f"- {v}: " + "; ".join(f"`{r.id}` {r.value:.3g} [{r.ci_low:.3g}, {r.ci_high:.3g}]"
                                                   for r in part.itertuples()))
    return "\n".join(lines)


README_BEGIN, README_END = "<!-- claims:begin (artlib.claimbook.update_readme) -->", "<!-- claims:end -->"


def readme_block(rows: pd.DataFrame) -> str:
    """The README's verdict table, rendered from ``figures/claims.csv``: rows and verdicts per paper, and the ids
    of the claims that hold and of those contradicted."""
    counts = rows.groupby(["paper", "verdict"]).size().unstack(fill_value=0).reindex(columns=claims.VERDICTS,
                                                                                    fill_value=0)
    counts.insert(0, "rows", counts.sum(axis=1))
    lines = [counts.reset_index().to_markdown(index=False), ""]
    for v in ("holds", "contradicted"):
        ids = rows[rows.verdict == v].id.tolist()
        lines.append(f"- **{v}** ({len(ids)}): " + (", ".join(f"`{i}`" for i in ids) or "none"))
    return "\n".join(lines)


def update_readme(readme=None, figures=None) -> bool:
    """Rewrite the block between :data:`README_BEGIN` and :data:`README_END` of ``README.md`` from
    ``figures/claims.csv``; returns whether it changed."""
    rows = pd.read_csv(plots.figures_dir(figures) / "claims.csv")
    return plots.update_block(readme or plots.ROOT / "README.md", README_BEGIN, README_END, readme_block(rows))
