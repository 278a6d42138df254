"""Tests of artlib.inequality (the Inequality paper's evaluation helpers): tiny models and inputs, exact values where
the maths gives them."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn as nn

from artlib import attacks, inequality as ineq, metrics, models


# ---------------------------------------------------------------------------------------------------------- helpers
class CornerModel(nn.Module):
    """Class 1 if the mean of the top-left 4x4 block (all channels) is > 0.5, else class 0."""

    def forward(self, x):
        m = x[:, :, :4, :4].mean((1, 2, 3))
        return torch.stack([0.5 - m, m - 0.5], 1) * 10


class ConstantModel(nn.Module):
    """Always predicts ``cls`` (input-independent logits)."""

    def __init__(self, cls=0, k=3):
        super().__init__()
        self.cls, self.k = cls, k

    def forward(self, x):
        out = torch.zeros(x.shape[0], self.k, dtype=x.dtype)
        out[:, self.cls] = 5.0
        return out + 0 * x.sum((1, 2, 3), keepdim=False)[:, None]


def linear_model(seed=0, C=3, H=8, W=8, k=3):
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Flatten(), nn.Linear(C * H * W, k))
    return models.NormalizedModel(net, (0.4, 0.5, 0.6), (0.2, 0.25, 0.3))


# ---------------------------------------------------------------------------------------------------------- models
def test_model_spec_smoke_paper_and_errors():
    method, ov = ineq.model_spec("linf-4", "smoke")
    assert method == "pgd" and ov["eps"] == pytest.approx(4 / 255)
    assert ov == {"eps": pytest.approx(4 / 255)}                     # smoke / reference: the zoo's model
    assert ineq.model_spec("standard", "smoke") == ("natural", {}) == ineq.model_spec("standard", "reference")
    method, ov = ineq.model_spec("linf-4", "paper", arch="resnet18")
    assert ov == {"eps": pytest.approx(4 / 255), "arch": "resnet18"}
    assert ineq.model_spec("standard", "paper") == ("natural", {})
    assert ineq.model_spec("l2-0.5")[1]["norm"] == "l2"
    assert ineq.model_spec("cutout-linf-8")[0] == "pgd_cutout"
    with pytest.raises(ValueError, match="unknown model 'linf-16'"):
        ineq.model_spec("linf-16")
    with pytest.raises(ValueError, match="unknown profile"):
        ineq.model_spec("standard", "fast")


def test_model_spec_configs_validate():
    from artlib import train
    for label in ineq.MODELS:
        method, ov = ineq.model_spec(label, "reference")
        cfg = train.config("reference", "cifar10", method, **ov)
        assert cfg.method == method
        if "eps" in ov:
            assert cfg.eps == pytest.approx(ov["eps"]) and cfg.step_size == pytest.approx(ov["eps"] / 4)
            paper = train.config("paper", "cifar10", method, **ineq.model_spec(label, "paper")[1])
            assert paper.step_size == pytest.approx(ov["eps"] / 4) and paper.steps == 10   # PGD-10, step eps / 4
            assert paper.norm == ov.get("norm", "linf")


def test_imagenet_checkpoint_names():
    assert ineq.imagenet_checkpoint_name("linf-8") == "resnet50_linf_eps8.0.ckpt"
    assert ineq.imagenet_checkpoint_name("linf-1", "resnet18") == "resnet18_linf_eps1.0.ckpt"
    assert ineq.imagenet_checkpoint_name("standard", "wide_resnet50_2") == "wide_resnet50_2_l2_eps0.ckpt"
    assert ineq.imagenet_checkpoint_name("l2-3") == "resnet50_l2_eps3.ckpt"
    assert ineq.imagenet_checkpoint_name("l2-0.5") == "resnet50_l2_eps0.5.ckpt"
    with pytest.raises(ValueError, match="no robust-models-transfer checkpoint"):
        ineq.imagenet_checkpoint_name("cutout-linf-8")
    with pytest.raises(ValueError, match="unknown ImageNet arch"):
        ineq.imagenet_checkpoint_name("linf-8", "vgg16")


def test_get_models_imagenet_from_local_files(tmp_path, monkeypatch):
    monkeypatch.delenv(ineq.CHECKPOINTS_ENV, raising=False)
    with pytest.raises(ValueError, match="local files"):
        ineq.get_models("paper", ["linf-8"], dataset="imagenet", arch="resnet18")
    with pytest.raises(FileNotFoundError, match="resnet18_linf_eps8.0"):
        ineq.get_models("paper", ["linf-8"], dataset="imagenet", arch="resnet18", checkpoints=tmp_path)
    import torchvision
    torch.manual_seed(0)
    tv = torchvision.models.resnet18(num_classes=1000)
    sd = {"module.model." + k: v for k, v in tv.state_dict().items()}
    sd.update({"module.normalizer.new_mean": torch.zeros(3, 1, 1), "module.attacker.model.fc.bias": tv.fc.bias})
    torch.save({"model": sd, "epoch": 3}, tmp_path / "resnet18_linf_eps8.0.weights.pt")
    monkeypatch.setenv(ineq.CHECKPOINTS_ENV, str(tmp_path))
    got = ineq.get_models("paper", ["linf-8"], dataset="imagenet", arch="resnet18")
    assert list(got) == ["linf-8"] and not got["linf-8"].training
    x = torch.rand(1, 3, 64, 64)
    mean, std = torch.tensor(models.IMAGENET_MEAN).view(1, 3, 1, 1), torch.tensor(models.IMAGENET_STD).view(1, 3, 1, 1)
    with torch.no_grad():
        torch.testing.assert_close(got["linf-8"](x), tv.eval()((x - mean) / std))


# ---------------------------------------------------------------------------------------------------------- images
def test_correct_by_all_and_predict_keep_mode():
    x = torch.rand(6, 3, 8, 8)
    x[:3, :, :4, :4] = 1.0   # corner model says 1
    x[3:, :, :4, :4] = 0.0   # corner model says 0
    y = torch.tensor([1, 1, 0, 0, 0, 1])
    corner, const0 = CornerModel().train(), ConstantModel(0, 2)
    xs, ys = ineq.correct_by_all({"corner": corner}, x, y)
    assert ys.tolist() == [1, 1, 0, 0] and corner.training
    xs, ys = ineq.correct_by_all({"corner": corner, "zero": const0}, x, y)
    assert ys.tolist() == [0, 0] and torch.equal(xs, x[3:5])
    assert ineq.correct_by_all({"corner": corner}, x, y, n=1)[1].tolist() == [1]
    with pytest.raises(ValueError, match="y must be an integer tensor"):
        ineq.correct_by_all({"corner": corner}, x, y.float())
    with pytest.raises(ValueError, match="non-empty mapping"):
        ineq.correct_by_all({}, x, y)


# ---------------------------------------------------------------------------------------------------------- attribution
def test_attribution_settings_follow_a8_and_released():
    assert ineq.attribution_settings("ig") == {"n_steps": 20, "baselines": "gaussian_normalized"}
    assert ineq.attribution_settings("gradshap", image_size=32) == {"n_samples": 10}
    assert ineq.attribution_settings("gradshap", image_size=224) == {"n_samples": 20}
    assert ineq.attribution_settings("smoothgrad") == {"n_samples": 20}
    assert ineq.attribution_settings("input_x_gradient") == {}
    assert ineq.attribution_settings("ig", "released") == {"n_steps": 50, "baselines": "mean"}
    with pytest.raises(ValueError, match="'ig' only"):
        ineq.attribution_settings("smoothgrad", "released")
    with pytest.raises(ValueError, match="unknown attribution method 'saliency'"):
        ineq.attribution_settings("saliency")


def test_attribute_linear_model_exact_and_deterministic():
    model = linear_model().double()
    x = torch.rand(5, 3, 8, 8, dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 0, 1])
    w = model.net[1].weight.view(3, 3, 8, 8)
    std = model.normalize.std
    grad = w[y] / std                                       # d logit_y / dx for f = W (x - mean) / std
    # released: zero baseline in normalised space = the mean image; IG of a linear model is exact
    a = ineq.attribute(model, x, y, "ig", "released", batch_size=2)
    torch.testing.assert_close(a, (x - model.normalize.mean) * grad)
    # input x gradient
    torch.testing.assert_close(ineq.attribute(model, x, y, "input_x_gradient"), x * grad)
    # paper: a Gaussian baseline, reproducible for a seed and different for another
    a1 = ineq.attribute(model, x, y, "ig", seed=3, batch_size=2)
    a2 = ineq.attribute(model, x, y, "ig", seed=3, batch_size=2)
    a3 = ineq.attribute(model, x, y, "ig", seed=4, batch_size=2)
    assert torch.equal(a1, a2) and not torch.allclose(a1, a3)
    # completeness: sum of IG = f(x) - f(baseline) (exact for a linear model), baseline = x - a / grad
    base = x - a1 / grad
    with torch.no_grad():
        gap = model(x).gather(1, y[:, None]) - model(base).gather(1, y[:, None])
    torch.testing.assert_close(a1.sum((1, 2, 3)), gap.squeeze(1))
    # the baseline is N(0, 1) in the model's normalised space: (base - mean) / std ~ N(0, 1)
    z = (base - model.normalize.mean) / model.normalize.std
    assert abs(z.mean().item()) < 0.1 and 0.9 < z.std().item() < 1.1


# ---------------------------------------------------------------------------------------------------------- Gini
def test_gini_table_values():
    one = torch.zeros(2, 3, 8, 8)
    one[:, 0, 0, 0] = 1.0                                     # a single non-zero entry
    flat = torch.ones(2, 3, 8, 8)
    df = ineq.gini_table({"one": one, "flat": -flat}, region=4)
    assert list(df.columns) == ["model", "n", "gini_global", "gini_global_std", "gini_regional", "gini_regional_std"]
    n = 3 * 8 * 8
    r = df.set_index("model")
    assert r.loc["one", "gini_global"] == pytest.approx(1 - 1 / n)
    assert r.loc["one", "gini_regional"] == pytest.approx(1 - 1 / 4)
    assert r.loc["flat", "gini_global"] == pytest.approx(0.0) and r.loc["flat", "gini_regional"] == pytest.approx(0)
    assert r.loc["one", "n"] == 2 and r.loc["one", "gini_global_std"] == pytest.approx(0.0)
    # released setting: positive part only -> the negative flat map has no mass -> 0
    assert ineq.gini_table({"flat": -flat}, 4, "released").gini_global.item() == 0.0
    a = torch.randn(4, 3, 8, 8)
    assert ineq.gini_table({"a": a}, 2).gini_regional.item() == pytest.approx(
        metrics.gini_regional(a, 2).mean().item(), abs=1e-6)


# ---------------------------------------------------------------------------------------------------------- attacks
def test_scaled_pixels_keeps_the_fraction():
    assert ineq.scaled_pixels(3 * 32 * 32) == [10, 20, 102, 204, 408]
    assert ineq.scaled_pixels(3 * 224 * 224) == list(ineq.IMAGENET_NOISE_PIXELS)
    assert ineq.scaled_pixels(12) == [1, 1, 1, 1, 2]
    with pytest.raises(ValueError, match="numel"):
        ineq.scaled_pixels(0)


def test_occlusion_table_corner_model():
    x = torch.ones(3, 3, 16, 16)
    y = torch.ones(3, dtype=torch.long)
    attr = torch.zeros_like(x)
    attr[:, :, :4, :4] = 1.0                                   # the top-left 4x4 block is the most important
    model = CornerModel()
    df, res = ineq.occlusion_table({"corner": model}, x, y, {"corner": attr}, region=4, max_count=2, max_radius=3)
    r = df.set_index("color")
    # radius 1 covers [1, 3)^2 of the block: mean 0.75 (black) -> still class 1; radius 2 covers the whole block
    assert r.loc["black", "error_rate"] == 1.0 and r.loc["black", "mean_radius"] == 2.0
    assert r.loc["black", "mean_count"] == 1.0
    assert r.loc["grey", "error_rate"] == 1.0                 # mean 0.5 is not > 0.5
    assert r.loc["white", "error_rate"] == 0.0 and math.isnan(r.loc["white", "mean_radius"])
    assert res[("corner", "black")].x_adv[:, :, :4, :4].max() == 0.0


def test_noise_table_matches_the_attack():
    model = linear_model(1)
    x = torch.rand(8, 3, 8, 8)
    y = ineq.predict(model, x)
    a = ineq.attribute(model, x, y, "input_x_gradient")
    df = ineq.noise_table({"lin": model}, x, y, {"lin": a}, [5, 50], kinds=("I", "II"), seed=1)
    assert len(df) == 4 and set(df.kind) == {"I", "II"} and df.error_rate.between(0, 1).all()
    ref = attacks.inductive_noise(model, x, y, a, 50, "II", seed=1).success.float().mean().item()
    assert df.query("kind == 'II' and pixels == 50").error_rate.item() == pytest.approx(ref)


def test_transfer_table():
    x = torch.ones(4, 3, 8, 8)
    y = torch.ones(4, dtype=torch.long)
    x_adv = x.clone()
    x_adv[:2, :, :4, :4] = 0.0                               # fools the corner model on the first two
    success = torch.tensor([True, True, False, False])
    mods = {"corner": CornerModel(), "const": ConstantModel(1, 2)}
    df = ineq.transfer_table(mods, y, {"corner": x_adv}, {"corner": success}).set_index("target")
    assert df.loc["corner", "transfer_rate"] == 1.0 and df.loc["corner", "n"] == 2
    assert df.loc["const", "transfer_rate"] == 0.0


# ---------------------------------------------------------------------------------------------------------- figures
def test_clip_rescale_exact_and_ranges():
    a = torch.tensor([[-1.0, 0.0, 1.0, 10.0]])
    mu, sd = 2.5, math.sqrt(19.25)
    hi = mu + sd
    expect = torch.tensor([[0.0, 1 / (hi + 1), 2 / (hi + 1), 1.0]])
    torch.testing.assert_close(ineq.clip_rescale(a, n_sigma=1.0), expect)
    torch.testing.assert_close(ineq.clip_rescale(a, None), torch.tensor([[0.0, 1 / 11, 2 / 11, 1.0]]))
    # ten dominating entries: without the clip the rest is squeezed into a narrow band, with it spread out
    torch.manual_seed(0)
    b = torch.randn(2, 3, 32, 32)
    b.view(2, -1)[:, :10] = 30.0
    raw, clipped = ineq.clip_rescale(b, None), ineq.clip_rescale(b)
    assert raw.min() >= 0 and raw.max() <= 1 and clipped.min() >= 0 and clipped.max() <= 1
    rest = lambda t: t.flatten(1)[:, 10:].std(1)  # noqa: E731
    assert rest(raw).max() < 0.05 < 0.09 < rest(clipped).min()
    assert torch.all(clipped.flatten(1)[:, :10] == 1.0)
    assert torch.equal(ineq.clip_rescale(torch.full((1, 4), 2.0)), torch.full((1, 4), 0.5))
    with pytest.raises(ValueError, match="n_sigma"):
        ineq.clip_rescale(a, n_sigma=0)


def test_class_gini_and_top_bottom():
    v = torch.tensor([0.9, 0.7, 0.5, 0.6, 0.2, 0.4])
    lab = torch.tensor([0, 0, 1, 1, 2, 2])
    df = ineq.class_gini(v, lab, ["a", "b", "c"])
    assert df["name"].tolist() == ["a", "b", "c"]
    assert df.gini.tolist() == pytest.approx([0.8, 0.55, 0.3]) and df.n.tolist() == [2, 2, 2]
    assert df.gini_std.tolist() == pytest.approx([0.1, 0.05, 0.1])
    tb = ineq.top_bottom(df, k=1)
    assert tb.group.tolist() == ["top", "bottom"] and tb["name"].tolist() == ["a", "c"]
    with pytest.raises(ValueError, match="labels"):
        ineq.class_gini(v, lab[:3])


# ---------------------------------------------------------------------------------------------------------- pruning
def test_prune_filters_l1():
    torch.manual_seed(0)
    model = models.build_model("small-cnn", 10).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    pruned = ineq.prune_filters_l1(model, 0.25)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())   # original untouched
    assert pruned.training and not any(n.endswith("_orig") for n in pruned.state_dict())
    for (name, m), m0 in zip(pruned.named_modules(), model.modules()):
        if isinstance(m, nn.Conv2d):
            dead = (m.weight.flatten(1) == 0).all(1)
            assert int(dead.sum()) == round(0.25 * m.out_channels)
            assert torch.all(m.bias[dead] == 0)
            norms = m0.weight.detach().abs().flatten(1).sum(1)                  # the smallest l1 filters went
            assert norms[dead].max() <= norms[~dead].min()
    assert ineq.prune_filters_l1(model, 0.0).state_dict().keys() == model.state_dict().keys()
    with pytest.raises(ValueError, match="amount"):
        ineq.prune_filters_l1(model, 1.0)


def test_prune_weights_global_magnitude():
    torch.manual_seed(0)
    model = models.build_model("small-cnn", 10)
    assert ineq.sparsity(model) < 0.01
    pruned = ineq.prune_weights(model, 0.6)
    assert ineq.sparsity(pruned) == pytest.approx(0.6, abs=1e-3)
    assert ineq.sparsity(model) < 0.01
    ws = torch.cat([m.weight.detach().flatten() for m in pruned.modules() if isinstance(m, (nn.Conv2d, nn.Linear))])
    w0 = torch.cat([m.weight.detach().flatten() for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))])
    assert w0[ws == 0].abs().max() <= w0[ws != 0].abs().min()                    # smallest magnitudes removed


# ---------------------------------------------------------------------------------------------------------- AutoAttack
def test_autoattack_accuracy_ball_and_bounds():
    pytest.importorskip("art", reason="adversarial-robustness-toolbox not installed (Table 5 needs it)")
    torch.manual_seed(0)
    model = models.build_model("small-cnn", 10).train()
    x = torch.rand(6, 3, 16, 16)
    y = ineq.predict(model, x)                                   # all clean-correct
    eps = 8 / 255
    out = ineq.autoattack_accuracy(model, x, y, eps, attacks=("apgd-ce",), max_iter=5, restarts=1)
    assert model.training                                        # mode restored, no .grad left behind
    assert all(p.grad is None and p.requires_grad for p in model.parameters())
    assert out["clean_acc"] == 1.0 and 0.0 <= out["robust_acc"] <= 1.0
    d = out["x_adv"] - x
    assert d.abs().max() <= eps + 1e-6 and out["x_adv"].min() >= 0 and out["x_adv"].max() <= 1
    assert out["robust"].float().mean().item() == out["robust_acc"]
    # an input-independent model cannot be attacked
    const = ConstantModel(2, 10)
    out = ineq.autoattack_accuracy(const, x, torch.full((6,), 2), eps, attacks=("apgd-ce",), max_iter=3, restarts=1)
    assert out["robust_acc"] == 1.0
    with pytest.raises(ValueError, match="unknown attack"):
        ineq.autoattack_accuracy(model, x, y, eps, attacks=("fab",))


# ---------------------------------------------------------------------------------------------------------- summaries
def test_mass_share_and_accuracy_table():
    a = torch.zeros(2, 1, 2, 10)
    a[0, 0, 0, 0] = -3.0                                          # all mass in one of 20 entries
    a[1] = 1.0                                                    # spread evenly
    torch.testing.assert_close(ineq.mass_share(a, 0.05), torch.tensor([1.0, 0.05]))
    assert ineq.mass_share(torch.zeros(1, 4), 0.5).item() == 0.0
    with pytest.raises(ValueError, match="fraction"):
        ineq.mass_share(a, 0.0)
    x = torch.ones(4, 3, 8, 8)
    x[:1, :, :4, :4] = 0.0
    df = ineq.accuracy_table({"corner": CornerModel(), "const": ConstantModel(1, 2)}, x, torch.ones(4).long())
    assert df.set_index("model").clean_acc.to_dict() == {"corner": 0.75, "const": 1.0}


def test_attack_summary_columns_and_values():
    x = torch.ones(2, 3, 32, 32)
    y = torch.ones(2, dtype=torch.long)
    attr = torch.zeros_like(x)
    attr[:, :, :4, :4] = 1.0
    mods = {"corner": CornerModel(), "const": ConstantModel(1, 2)}
    df = ineq.attack_summary(mods, x, y, {"corner": attr, "const": attr}, "cifar10").set_index("model")
    assert list(df.columns) == ["n", "gini_global", "gini_regional", "occ_black", "occ_grey", "occ_white", "noise_I"]
    assert df.loc["corner", "occ_black"] == 1.0 and df.loc["corner", "occ_white"] == 0.0
    assert df.loc["const", ["occ_black", "occ_grey", "occ_white", "noise_I"]].tolist() == [0.0, 0.0, 0.0, 0.0]
    assert df.loc["corner", "gini_regional"] == pytest.approx(1 - 1 / 64)
    with pytest.raises(ValueError, match="unknown dataset"):
        ineq.attack_summary(mods, x, y, {"corner": attr, "const": attr}, "svhn")


def test_eval_images_real_cifar10_class_balanced_prefix():
    import os
    from artlib import data
    root = os.environ.get(data.DATA_ENV)
    if not root or not (data.resolve_root(root) / "cifar10-jpeg").is_dir():
        if os.environ.get("ARTLIB_REQUIRE_DATA") == "1":
            pytest.fail("ARTLIB_REQUIRE_DATA=1 but the cifar10 test images are not under $ARTLIB_DATA")
        pytest.skip("real CIFAR-10 images not found (set ARTLIB_DATA=/work/shared/data)")
    x, y = ineq.eval_images("cifar10", 30)
    assert x.shape == (30, 3, 32, 32) and 0 <= x.min() and x.max() <= 1
    assert y[:10].tolist() == list(range(10)) and torch.bincount(y).tolist() == [3] * 10
