"""Tests of artlib.bridge (ART under the Inequality paper's lens), on tiny linear models with exact answers."""
from __future__ import annotations

import math

import matplotlib
import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn as nn

matplotlib.use("Agg")

from artlib import bridge, inequality as ineq, models  # noqa: E402

MEAN, STD = (0.4, 0.4, 0.4), (0.2, 0.2, 0.2)
H = W = 8
NUMEL = 3 * H * W
FAST = dict(region=4, max_count=2, max_radius=2, noise_pixels=5, pgd=dict(eps=8 / 255, step_size=2 / 255, steps=3),
            ifia=dict(k=8, eps=8 / 255, step_size=2 / 255, steps=1, n_steps_ig=4))


def linear(weight_row: torch.Tensor) -> nn.Module:
    """2-class linear model on normalised 3x8x8 images: logits ``(+w . z, -w . z)`` with ``z`` the normalised image."""
    lin = nn.Linear(NUMEL, 2, bias=False)
    with torch.no_grad():
        lin.weight.copy_(torch.stack([weight_row, -weight_row]))
    return models.NormalizedModel(nn.Sequential(nn.Flatten(), lin), MEAN, STD).eval()


def one_pixel_model() -> nn.Module:
    """Depends on entry 0 only (channel 0, pixel (0, 0)): class 0 iff x[0, 0, 0] > 0.4."""
    w = torch.zeros(NUMEL)
    w[0] = 1.0
    return linear(w)


def dense_model() -> nn.Module:
    """Uses every entry with the same weight: class 0 iff the image mean > 0.4."""
    return linear(torch.ones(NUMEL))


def images(n: int = 8, seed: int = 0):
    """Smooth-ish random images; entry 0 is 0.9 for the first half (class 0 for both models when the mean is high)
    and 0.1 for the second half; labels are the one-pixel model's predictions."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 3, H, W, generator=g) * 0.2 + 0.35
    x[: n // 2] += 0.2                                  # mean ~0.65: dense model says class 0
    x[n // 2:] -= 0.2                                   # mean ~0.25: dense model says class 1
    x[: n // 2, 0, 0, 0] = 0.9
    x[n // 2:, 0, 0, 0] = 0.1
    y = torch.tensor([0] * (n // 2) + [1] * (n - n // 2))
    return x.clamp(0, 1), y


# ------------------------------------------------------------------------------------------------------ model specs
def test_model_spec_smoke_paper_and_errors():
    method, kw = bridge.model_spec("art-2", seed=2)
    assert method == "art" and kw["lam"] == 2.0 and kw["seed"] == 2
    assert kw == {"lam": 2.0, "seed": 2}                             # smoke / reference: the zoo's model
    method, kw = bridge.model_spec("cutout-pgd-8", "paper")
    assert method == "pgd_cutout" and kw["arch"] == bridge.PAPER_ARCH and "train_subset" not in kw
    assert math.isclose(kw["eps"], 8 / 255)
    for bad in (dict(label="art-7"), dict(label="natural", profile="fast"), dict(label="natural", seed=-1),
                dict(label="natural", seed=1.5)):
        with pytest.raises(ValueError):
            bridge.model_spec(**bad)


def test_every_study_model_has_its_own_config_and_the_shared_ones_are_the_inequality_models():
    """18 distinct reference configs (6 models x 3 seeds); natural / pgd-8 / cutout-pgd-8 at seed 0 are the very
    configs of the Inequality notebooks' standard / linf-8 / cutout-linf-8 (one zoo entry each)."""
    from artlib import train
    keys = {}
    for label in bridge.STUDY:
        for seed in (0, 1, 2):
            method, kw = bridge.model_spec(label, seed=seed)
            cfg = train.config("reference", "cifar10", method, **kw)
            assert cfg.seed == seed and cfg.train_subset is None and cfg.profile == "reference"
            keys[(label, seed)] = cfg.fingerprint()
    assert len(set(keys.values())) == 18
    for ineq_label, study_label in (("standard", "natural"), ("linf-8", "pgd-8"), ("cutout-linf-8", "cutout-pgd-8")):
        method, kw = ineq.model_spec(ineq_label)
        assert train.config("reference", "cifar10", method, **kw).fingerprint() == keys[(study_label, 0)]


# ------------------------------------------------------------------------------------------------------- measure
def test_measure_one_pixel_model_exact_values():
    model = one_pixel_model()
    x, y = images(8)
    row = bridge.measure(model, x, y, x_acc=x, y_acc=y, **FAST)
    # IG of a linear model is (x - baseline) * w: one non-zero entry of 192 -> global Gini 1 - 1/192; one non-zero
    # 4x4 block of 4 -> regional Gini 1 - 1/4 (Gini of a one-hot vector of length n)
    assert row["gini_global"] == pytest.approx(1 - 1 / NUMEL, abs=1e-6)
    assert row["gini_regional"] == pytest.approx(1 - 1 / 4, abs=1e-6)
    # occluding the top block hides entry 0: black (0) flips the class-0 half, white (1) the class-1 half
    assert row["occ_black"] == pytest.approx(0.5) and row["occ_white"] == pytest.approx(0.5)
    assert row["occ_mean"] == pytest.approx(np.mean([row["occ_black"], row["occ_grey"], row["occ_white"]]))
    assert row["clean_acc"] == 1.0 and row["n"] == 8
    assert row["pgd_acc"] == 1.0                         # |x0 - 0.4| = 0.5 >> 8/255
    assert row["n_attacked"] == 8 and 0 <= row["IN"] <= 1 and -1 <= row["K"] <= 1 and 0 <= row["noise_I"] <= 1
    strong = bridge.measure(model, x, y, x_acc=x, y_acc=y, **{**FAST, "pgd": dict(eps=0.6, step_size=0.2, steps=5)})
    assert strong["pgd_acc"] == 0.0                      # eps 0.6 crosses the 0.4 boundary from 0.9 and 0.1


def test_measure_dense_model_is_more_equal_and_ifia_only_counts_correct_images():
    x, y = images(8)
    sparse = bridge.measure(one_pixel_model(), x, y, x_acc=x, y_acc=y, **FAST)
    dense_model_ = dense_model()
    dense = bridge.measure(dense_model_, x, y, x_acc=x, y_acc=y, **FAST)
    assert dense["gini_global"] < 0.8 < sparse["gini_global"]
    assert dense["gini_regional"] < sparse["gini_regional"]
    y_wrong = y.clone()
    y_wrong[:3] = 1 - y_wrong[:3]                        # 3 of 8 labels wrong: IFIA attacks the other 5
    row = bridge.measure(dense_model_, x, y, x_acc=x, y_acc=y_wrong, **FAST)
    assert row["n_attacked"] == 5 and row["clean_acc"] == pytest.approx(5 / 8)
    assert set(bridge.METRICS) <= set(row)


def test_measure_errors():
    x, y = images(4)
    with pytest.raises(ValueError, match="x must"):
        bridge.measure(one_pixel_model(), x[:0], y[:0], x_acc=x, y_acc=y, **FAST)
    with pytest.raises(ValueError, match="colors"):
        bridge.measure(one_pixel_model(), x, y, x_acc=x, y_acc=y, colors=(), **FAST)


def test_measure_study_uses_each_seeds_correct_by_all_images():
    x, y = images(8)
    x2, _ = images(8, seed=1)
    # a pool where the dense model is wrong on 2 images the one-pixel model gets right
    pool_x = torch.cat([x, x2[:2].clamp(max=0.35)])       # means < 0.4: dense says class 1
    pool_x[8:, 0, 0, 0] = 0.9                            # one-pixel model says class 0
    pool_y = torch.cat([y, torch.tensor([0, 0])])
    models_ = {("natural", 0): one_pixel_model(), ("pgd-8", 0): dense_model(),
               ("natural", 1): one_pixel_model(), ("pgd-8", 1): one_pixel_model()}
    df = bridge.measure_study(models_, pool_x, pool_y, n_images=20, x_acc=x, y_acc=y, **FAST)
    assert list(df.columns[:3]) == ["label", "method", "seed"] and len(df) == 4
    assert df.set_index(["label", "seed"]).n.to_dict() == {("natural", 0): 8, ("pgd-8", 0): 8,
                                                            ("natural", 1): 10, ("pgd-8", 1): 10}
    assert df.method.tolist() == ["natural", "pgd", "natural", "pgd"]
    own = bridge.measure_study(models_, pool_x, pool_y, n_images=20, images="own", x_acc=x, y_acc=y, **FAST)
    assert own.set_index(["label", "seed"]).n.to_dict() == {("natural", 0): 10, ("pgd-8", 0): 8,
                                                             ("natural", 1): 10, ("pgd-8", 1): 10}
    with pytest.raises(ValueError, match="images"):
        bridge.measure_study(models_, pool_x, pool_y, n_images=4, images="all", x_acc=x, y_acc=y)
    with pytest.raises(ValueError, match="no pool image"):
        bridge.measure_study(models_, pool_x, 1 - pool_y, n_images=4, x_acc=x, y_acc=y, **FAST)
    with pytest.raises(ValueError, match="label"):
        bridge.measure_study({("resnet", 0): one_pixel_model()}, pool_x, pool_y, n_images=4, x_acc=x, y_acc=y)
    with pytest.raises(ValueError, match="n_images"):
        bridge.measure_study(models_, pool_x, pool_y, n_images=0, x_acc=x, y_acc=y)


# --------------------------------------------------------------------------------------------- summaries and plots
def frame():
    return pd.DataFrame({"label": ["a", "a", "a", "b", "b", "b"], "method": ["art"] * 3 + ["pgd"] * 3,
                         "seed": [0, 1, 2, 0, 1, 2], "gini_global": [0.5, 0.7, 0.6, 0.8, 0.75, 0.9],
                         "IN": [0.9, 0.8, 0.85, 0.5, 0.4, 0.45]})


def test_summarize_mean_and_sample_std():
    s = bridge.summarize(frame(), ["gini_global", "IN"]).set_index("label")
    assert list(s.index) == ["a", "b"] and s.n_seeds.tolist() == [3, 3]
    assert s.loc["a", "gini_global_mean"] == pytest.approx(0.6)
    assert s.loc["b", "gini_global_std"] == pytest.approx(np.std([0.8, 0.75, 0.9], ddof=1))
    one = bridge.summarize(frame().query("seed == 0"), ["IN"])
    assert one.IN_std.isna().all()
    with pytest.raises(ValueError, match="occ_mean"):
        bridge.summarize(frame(), ["occ_mean"])


def test_paired_difference_by_seed():
    d = bridge.paired_difference(frame(), "a", "b", "gini_global")
    assert d["diffs"] == pytest.approx([-0.3, -0.05, -0.3]) and d["n"] == 3 and d["n_positive"] == 0
    assert d["mean"] == pytest.approx(-0.65 / 3) and d["std"] == pytest.approx(np.std([-0.3, -0.05, -0.3], ddof=1))
    with pytest.raises(ValueError, match="model 'c'"):
        bridge.paired_difference(frame(), "a", "c", "IN")
    with pytest.raises(ValueError, match="column"):
        bridge.paired_difference(frame(), "a", "b", "K")


def test_paper_reference_values():
    art = bridge.paper_reference("art-0.5")
    assert art["IN"] == pytest.approx(0.929) and art["pgd_acc"] == pytest.approx(0.3758)
    assert math.isnan(art["gini_global"])
    assert bridge.paper_reference("natural")["gini_global"] == pytest.approx(0.58)
    assert bridge.paper_reference("pgd-8")["K"] == pytest.approx(0.7227)
    assert all(math.isnan(v) for v in bridge.paper_reference("cutout-pgd-8").values())
    with pytest.raises(ValueError):
        bridge.paper_reference("art-9")


def test_tradeoff_plot_points_and_error_bars():
    import matplotlib.pyplot as plt
    ax = bridge.tradeoff_plot(frame(), "IN", "gini_global")
    assert len(ax.containers) == 2                       # one error bar per model
    bar = ax.containers[0]
    assert bar.lines[0].get_xydata()[0] == pytest.approx([0.85, 0.6])   # the mean of model "a"
    assert len(ax.collections) >= 2
    with pytest.raises(ValueError, match="unknown column"):
        bridge.tradeoff_plot(frame(), "IN", "nope")
    plt.close("all")


def test_measure_study_samples_are_the_values_behind_its_means():
    x, y = images(8)
    models_ = {("natural", 0): one_pixel_model(), ("pgd-8", 0): dense_model(), ("natural", 1): dense_model()}
    table, per_image = bridge.measure_study(models_, x, y, n_images=8, x_acc=x, y_acc=y, samples=True, **FAST)
    assert table.equals(bridge.measure_study(models_, x, y, n_images=8, x_acc=x, y_acc=y, **FAST))
    assert list(per_image.columns) == ["label", "method", "seed", "kind", "image", "gini_global", "gini_regional",
                                       "IN", "K"]
    for r in table.itertuples():
        mine = per_image[(per_image.label == r.label) & (per_image.seed == r.seed)]
        gini, ifia = mine[mine.kind == "gini"], mine[mine.kind == "ifia"]
        assert gini.image.tolist() == list(range(r.n)) and len(ifia) == r.n_attacked
        assert gini.gini_global.mean() == pytest.approx(r.gini_global, abs=1e-6)
        assert gini.gini_regional.mean() == pytest.approx(r.gini_regional, abs=1e-6)
        assert ifia.IN.mean() == pytest.approx(r.IN, abs=1e-12) and ifia.K.mean() == pytest.approx(r.K, abs=1e-12)
        assert gini[["IN", "K"]].isna().all().all() and ifia[["gini_global", "gini_regional"]].isna().all().all()
    # the one-pixel model's maps sit on one entry (Gini near 1), the dense model's are spread (Gini near 0)
    by = per_image[per_image.kind == "gini"].groupby("label").gini_global.mean()
    assert by["natural"] > by["pgd-8"]
