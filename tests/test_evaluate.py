"""artlib.evaluate: accuracy / PGD accuracy, attributional robustness (IN / K) on models whose maps are known in closed
form, gradient-image cosine, CIFAR-10-C accuracy rows, class-conditional seeds and generation, model-state hygiene."""
import math
import os
from pathlib import Path

import pytest
import torch
import torch.nn as nn

from artlib import evaluate, models

torch.set_num_threads(max(1, min(2, torch.get_num_threads())))


def _data_root():
    root = os.environ.get("ARTLIB_DATA")
    if root and (Path(root) / "cifar10-jpeg").is_dir():
        return root
    reason = f"real CIFAR-10 images not found (ARTLIB_DATA={root!r} has no cifar10-jpeg/); set ARTLIB_DATA=../shared/data"
    if os.environ.get("ARTLIB_REQUIRE_DATA") == "1":
        pytest.fail(reason)
    pytest.skip(reason)


class Linear(nn.Module):
    """f(x) = W x + b on flattened images: input gradients are the rows of W everywhere (no ReLU)."""

    def __init__(self, shape=(3, 8, 8), k=4, seed=0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        n = math.prod(shape)
        self.fc = nn.Linear(n, k)
        with torch.no_grad():
            self.fc.weight.copy_(torch.randn(k, n, generator=g))
            self.fc.bias.zero_()

    def forward(self, x):
        return self.fc(x.flatten(1))


def _images(n=6, shape=(3, 8, 8), seed=1):
    return torch.rand(n, *shape, generator=torch.Generator().manual_seed(seed))


def _small_cnn(k=4, seed=0):
    torch.manual_seed(seed)
    return models.build_model("small-cnn", k)


# ----------------------------------------------------------------------------------------------------------------------
# accuracy and PGD
# ----------------------------------------------------------------------------------------------------------------------
def test_accuracy_counts_and_restores_mode():
    net = Linear()
    with torch.no_grad():
        net.fc.weight.zero_()
        net.fc.bias.copy_(torch.tensor([0.0, 0.0, 1.0, 0.0]))       # always predicts class 2
    x = _images(8)
    y = torch.tensor([2, 2, 0, 1, 2, 3, 3, 2])
    net.train()
    assert evaluate.accuracy(net, x, y) == pytest.approx(0.5)
    assert net.training
    assert evaluate.predict(net, x, batch_size=3).tolist() == [2] * 8


def test_robust_accuracy_ball_and_bounds():
    net = _small_cnn()
    x = _images(8, (3, 16, 16))
    y = evaluate.predict(net, x)                                   # all clean-correct
    acc0 = evaluate.robust_accuracy(net, x, y, eps=0.0, steps=3)
    assert acc0 == 1.0
    acc, x_adv = evaluate.robust_accuracy(net, x, y, eps=8 / 255, step_size=2 / 255, steps=5, return_adv=True,
                                          batch_size=3)
    assert 0.0 <= acc <= 1.0
    assert (x_adv - x).abs().max() <= 8 / 255 + 1e-6 and x_adv.min() >= 0 and x_adv.max() <= 1
    assert acc == evaluate.robust_accuracy(net, x, y, eps=8 / 255, step_size=2 / 255, steps=5, batch_size=3)
    with pytest.raises(ValueError, match="in \\[0, 1\\]"):
        evaluate.robust_accuracy(net, x * 3, y)


# ----------------------------------------------------------------------------------------------------------------------
# attribution maps and IN / K
# ----------------------------------------------------------------------------------------------------------------------
def test_maps_of_a_linear_model_are_closed_form():
    net = Linear()
    x = _images(5)
    y = torch.tensor([0, 1, 2, 3, 0])
    w = net.fc.weight.detach()[y].view_as(x)
    expect = (x * w).abs().sum(1).flatten(1)
    expect = expect * 64 / expect.sum(1, keepdim=True)              # normalised to sum H*W
    grad = w.abs().sum(1).flatten(1)
    grad = grad * 64 / grad.sum(1, keepdim=True)
    for m in ("ig", "gradshap"):                                    # x * w for a linear logit, zero baseline
        torch.testing.assert_close(evaluate.attribution_maps(net, x, y, m, n_steps_ig=8), expect, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(evaluate.attribution_maps(net, x, y, "saliency"), grad, rtol=1e-4, atol=1e-5)
    z = x.clone().requires_grad_(True)
    d = evaluate.attribution_maps(net, z, y, "gradshap", differentiable=True)
    assert d.requires_grad
    torch.testing.assert_close(d.detach(), expect, rtol=1e-4, atol=1e-5)


def test_gradient_map_of_linear_model_cannot_be_attacked():
    # the gradient of a linear logit is constant: every perturbed map equals the clean one, IN = K = 1, and no
    # iterate is strictly better than the clean image
    net = Linear()
    x = _images(6)
    y = evaluate.predict(net, x)
    df = evaluate.attribution_robustness(net, x, y, map_method="saliency", k=10, eps=8 / 255, step_size=2 / 255,
                                         steps=3, beta=None)
    assert len(df) == 6
    assert (df.IN == 1.0).all() and (df.K - 1.0).abs().max() < 1e-9
    assert not df.success.any() and (df.step == -1).all()


@pytest.mark.parametrize("map_method", ["ig", "gradshap"])
def test_ifia_lowers_similarity_keeps_bounds_and_batch_invariance(map_method):
    net = _small_cnn()
    x = _images(4, (3, 12, 12), seed=3)
    y = evaluate.predict(net, x)
    kw = dict(map_method=map_method, k=20, eps=16 / 255, step_size=4 / 255, steps=3, n_steps_ig=6, n_samples=4)
    net.train()
    df = evaluate.attribution_robustness(net, x, y, batch_size=4, **kw)
    assert net.training
    assert all(p.requires_grad for p in net.parameters()) and all(p.grad is None for p in net.parameters())
    assert list(df.columns) == ["index", "label", "IN", "K", "success", "step"]
    assert df["index"].tolist() == [0, 1, 2, 3] and df.label.tolist() == y.tolist()
    assert ((df.IN >= 0) & (df.IN <= 1)).all() and ((df.K >= -1) & (df.K <= 1)).all()
    assert (df.step[df.success] >= 1).all() and (df.IN[~df.success] == 1.0).all()
    assert df.IN.mean() < 1.0                                      # the attack moved some map
    df1 = evaluate.attribution_robustness(net, x, y, batch_size=1, **kw)
    assert df1.IN.tolist() == pytest.approx(df.IN.tolist(), abs=1e-6)
    s = evaluate.summarize_robustness(df)
    assert s["n"] == 4 and s["IN (%)"] == pytest.approx(100 * df.IN.mean())


def test_eps_zero_keeps_maps_and_only_correct_filters():
    net = _small_cnn()
    x = _images(6, (3, 12, 12), seed=4)
    pred = evaluate.predict(net, x)
    y = pred.clone()
    y[:2] = (pred[:2] + 1) % 4                                       # two misclassified images
    df = evaluate.attribution_robustness(net, x, y, k=15, eps=0.0, step_size=1 / 255, steps=2, n_steps_ig=5)
    assert df["index"].tolist() == [2, 3, 4, 5]
    assert (df.IN == 1.0).all() and (df.K - 1.0).abs().max() < 1e-9
    assert len(evaluate.attribution_robustness(net, x, y, k=15, eps=0.0, step_size=0, steps=1, n_steps_ig=5,
                                               only_correct=False)) == 6
    empty = evaluate.attribution_robustness(net, x[:2], y[:2], k=15, steps=1, n_steps_ig=5)
    assert len(empty) == 0 and math.isnan(evaluate.summarize_robustness(empty)["IN (%)"])


def test_n_attacked_takes_the_first_qualifying_images_with_the_same_results():
    net = _small_cnn()
    x = _images(6, (3, 12, 12), seed=4)
    pred = evaluate.predict(net, x)
    y = pred.clone()
    y[1] = (pred[1] + 1) % 4                                         # image 1 misclassified: skipped, not counted
    kw = dict(k=15, eps=4 / 255, step_size=2 / 255, steps=2, n_steps_ig=5)
    every = evaluate.attribution_robustness(net, x, y, **kw)
    first = evaluate.attribution_robustness(net, x, y, n_attacked=3, **kw)
    assert first["index"].tolist() == [0, 2, 3]
    assert first.IN.tolist() == every.IN.tolist()[:3] and first.K.tolist() == every.K.tolist()[:3]
    assert len(evaluate.attribution_robustness(net, x, y, n_attacked=50, **kw)) == 5     # fewer available: all
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="n_attacked must be a positive int"):
            evaluate.attribution_robustness(net, x, y, n_attacked=bad, **kw)


def test_bad_arguments_raise():
    net = Linear()
    x, y = _images(2), torch.tensor([0, 1])
    with pytest.raises(ValueError, match="map_method"):
        evaluate.attribution_robustness(net, x, y, map_method="lime")
    with pytest.raises(ValueError, match="k must be"):
        evaluate.attribution_robustness(net, x, y, k=65)
    with pytest.raises(ValueError, match="attack"):
        evaluate.attribution_robustness(net, x, y, attack="pgd")
    with pytest.raises(ValueError, match="y must be"):
        evaluate.accuracy(net, x, torch.tensor([0.0, 1.0]))


def test_gradient_image_cosine_linear():
    net = Linear()
    x = _images(5)
    y = torch.tensor([0, 1, 2, 3, 1])
    w = net.fc.weight.detach()[y]
    expect = torch.nn.functional.cosine_similarity(w, x.flatten(1), dim=1)
    torch.testing.assert_close(evaluate.gradient_image_cosine(net, x, y, batch_size=2), expect, rtol=1e-5, atol=1e-6)


# ----------------------------------------------------------------------------------------------------------------------
# generation
# ----------------------------------------------------------------------------------------------------------------------
def test_class_seed_sampler_moments_and_degenerate_class():
    g = torch.Generator().manual_seed(0)
    base = torch.rand(1, 1, 2, 2, generator=g) * 0.5 + 0.25
    xa = (base + 0.05 * torch.randn(50, 1, 2, 2, generator=g)).clamp(0, 1)
    xb = torch.full((3, 1, 2, 2), 0.3)                               # a constant class: zero covariance
    x, y = torch.cat([xa, xb]), torch.tensor([0] * 50 + [1] * 3)
    seeds, labels = evaluate.class_seed_sampler(x, y, [0, 1], 400, seed=1)
    assert labels.tolist() == [0] * 400 + [1] * 400
    torch.testing.assert_close(seeds[400:], torch.full((400, 1, 2, 2), 0.3))
    torch.testing.assert_close(seeds[:400].mean(0), xa.mean(0), atol=0.015, rtol=0)
    emp = torch.cov(xa.flatten(1).T)
    torch.testing.assert_close(torch.cov(seeds[:400].flatten(1).T), emp, atol=6e-4, rtol=0.3)
    with pytest.raises(ValueError, match="at least 2"):
        evaluate.class_seed_sampler(x[:51], y[:51], [1], 2)


def test_generation_maximises_class_within_l2_ball():
    net = _small_cnn()
    x = _images(12, (3, 16, 16), seed=5)
    y = torch.tensor([0, 1, 2] * 4)
    net.train()
    res = evaluate.generate_class_conditional(net, x, y, classes=[0, 2], n_per_class=3, eps=2.0, step_size=0.5,
                                              steps=8, seed=0)
    assert net.training
    assert res.labels.tolist() == [0, 0, 0, 2, 2, 2]
    assert res.images.shape == (6, 3, 16, 16) and res.images.min() >= 0 and res.images.max() <= 1
    assert ((res.images - res.seeds).flatten(1).norm(dim=1) <= 2.0 + 1e-4).all()
    with torch.no_grad():
        net.eval()
        before = net(res.seeds).log_softmax(1).gather(1, res.labels[:, None])
        after = net(res.images).log_softmax(1).gather(1, res.labels[:, None])
    assert (after > before).all()
    assert (res.pred == res.labels).float().mean() >= (res.pred_seed == res.labels).float().mean()


# ----------------------------------------------------------------------------------------------------------------------
# real data: loading and CIFAR-10-C rows
# ----------------------------------------------------------------------------------------------------------------------
def test_load_images_and_corruption_accuracy_on_real_data():
    root = _data_root()
    x, y = evaluate.load_images("cifar10", 20, root=root)
    assert x.shape == (20, 3, 32, 32) and x.min() >= 0 and x.max() <= 1
    assert torch.bincount(y, minlength=10).tolist() == [2] * 10
    net = _small_cnn(10)
    df = evaluate.corruption_accuracy({"a": net, "b": net}, n=10, corruptions=["brightness", "speckle_noise"],
                                      severities=[1, 5], root=root)
    assert list(df.columns) == ["model", "corruption", "severity", "accuracy", "n", "source"]
    assert len(df) == 8
    bright = df[df.corruption == "brightness"]
    assert (bright.n == 10).all() and bright.accuracy.between(0, 1).all()
    assert (bright[bright.model == "a"].accuracy.values == bright[bright.model == "b"].accuracy.values).all()
    if not (Path(root) / "CIFAR-10-C" / "speckle_noise.npy").exists():   # extras are never regenerated
        sp = df[df.corruption == "speckle_noise"]
        assert (sp.source == "missing").all() and sp.accuracy.isna().all()
        assert bright.source.str.startswith("regenerated").all()
        with pytest.raises(FileNotFoundError):
            evaluate.corruption_accuracy(net, n=10, corruptions=["speckle_noise"], severities=[1], root=root,
                                         skip_missing=False)


# ----------------------------------------------------------------------------------------------------------------------
# reporting
# ----------------------------------------------------------------------------------------------------------------------
def test_method_labels_and_paper_values():
    import pandas as pd
    assert [evaluate.method_label(m, "cifar10") for m in ("natural", "pgd", "art")] == ["Natural", "PGD-10", "ART"]
    assert evaluate.method_label("pgd", "gtsrb") == "PGD-7" and evaluate.method_label("ig_sum_norm") == "IG-SUM-NORM"
    with pytest.raises(ValueError, match="unknown method"):
        evaluate.method_label("adam")
    df = pd.DataFrame({"dataset": ["cifar10", "cifar10"], "model": ["PGD-10", "IG-NORM"], "x": [1.0, 2.0]})
    out = evaluate.with_paper_values(df, "table1", ["PGD-40 acc (%)"], keys={"dataset": "dataset", "model": "method"})
    assert list(out.columns) == ["dataset", "model", "x", "paper PGD-40 acc (%)"]
    assert out["paper PGD-40 acc (%)"].iloc[0] == pytest.approx(44.07) and math.isnan(out["paper PGD-40 acc (%)"].iloc[1])
    assert "paper PGD-40 acc (%)" not in df.columns


# ----------------------------------------------------------------------------------------------------------------------
# robustness_report / attribution_robustness_vs_eps (ART Table 5, Figs 8-9, 11-12; notebooks 10-12)
# ----------------------------------------------------------------------------------------------------------------------
_IFIA_SMALL = dict(k=15, steps=2, n_steps_ig=5)


def test_robustness_report_matches_its_parts_and_restores_state():
    net = _small_cnn()
    x = _images(8, (3, 12, 12), seed=5)
    y = evaluate.predict(net, x)
    y[:3] = (y[:3] + 1) % 4                                          # three misclassified images
    x_acc, y_acc = _images(6, (3, 12, 12), seed=6), torch.tensor([0, 1, 2, 3, 0, 1])
    net.train()
    row, per_sample = evaluate.robustness_report(net, x, y, x_acc, y_acc, eps=8 / 255, step_size=4 / 255,
                                                 pgd_steps=3, **_IFIA_SMALL)
    assert net.training and all(p.requires_grad and p.grad is None for p in net.parameters())
    ref = evaluate.attribution_robustness(net, x, y, eps=8 / 255, step_size=4 / 255, **_IFIA_SMALL)
    assert per_sample["index"].tolist() == [3, 4, 5, 6, 7] == ref["index"].tolist()
    assert per_sample.IN.tolist() == pytest.approx(ref.IN.tolist()) and per_sample.K.tolist() == pytest.approx(ref.K.tolist())
    assert row["IN (%)"] == pytest.approx(100 * ref.IN.mean()) and row["K (%)"] == pytest.approx(100 * ref.K.mean())
    assert row["Nat acc (%)"] == pytest.approx(100 * evaluate.accuracy(net, x_acc, y_acc))
    assert row["PGD acc (%)"] == pytest.approx(100 * evaluate.robust_accuracy(net, x_acc, y_acc, steps=3))
    assert row["n attacked"] == 5 and row["n acc"] == 6
    row_same, _ = evaluate.robustness_report(net, x, y, eps=8 / 255, step_size=4 / 255, pgd_steps=3, **_IFIA_SMALL)
    assert row_same["n acc"] == 8 and row_same["Nat acc (%)"] == pytest.approx(62.5)      # 5 of 8 correct
    with pytest.raises(ValueError, match="x_acc and y_acc"):
        evaluate.robustness_report(net, x, y, x_acc, None)


def test_attribution_robustness_vs_eps_per_eps_rows():
    net = _small_cnn()
    x = _images(5, (3, 12, 12), seed=7)
    y = evaluate.predict(net, x)
    df = evaluate.attribution_robustness_vs_eps(net, x, y, [0.0, 8 / 255, 16 / 255], step_size=lambda e: e / 2,
                                                **_IFIA_SMALL)
    assert list(df.columns[:2]) == ["eps", "step_size"] and df.eps.unique().tolist() == pytest.approx([0, 8 / 255, 16 / 255])
    assert len(df) == 15 and df.step_size.tolist() == pytest.approx([e / 2 for e in df.eps])
    zero = df[df.eps == 0]
    assert (zero.IN == 1.0).all() and (zero.K - 1.0).abs().max() < 1e-9         # no budget: maps unchanged
    ref = evaluate.attribution_robustness(net, x, y, eps=16 / 255, step_size=8 / 255, **_IFIA_SMALL)
    assert df[df.eps == 16 / 255].IN.tolist() == pytest.approx(ref.IN.tolist())
    assert df[df.eps == 16 / 255].IN.mean() < 1.0                                # the attack moved some map
    fixed = evaluate.attribution_robustness_vs_eps(net, x, y, [4 / 255], **_IFIA_SMALL)
    assert fixed.step_size.tolist() == pytest.approx([1 / 255] * 5)               # A.3.5's step by default
    for bad in ([], [-1 / 255], [float("nan")], 8 / 255):
        with pytest.raises(ValueError, match="eps_values"):
            evaluate.attribution_robustness_vs_eps(net, x, y, bad, **_IFIA_SMALL)


# ----------------------------------------------------------------------------------------------------------------------
# ART Sec. 5 / appendix C protocols: targeted attribution attack, attack accuracy, accuracy vs eps, transfer matrix
# ----------------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("n", [2, 3, 10, 101])
def test_derangement_has_no_fixed_point_and_is_seeded(n):
    p = evaluate.derangement(n, seed=7)
    assert sorted(p.tolist()) == list(range(n)) and bool((p != torch.arange(n)).all())
    assert torch.equal(p, evaluate.derangement(n, seed=7))
    with pytest.raises(ValueError, match="n must be"):
        evaluate.derangement(1)


def test_targeted_attribution_robustness_moves_maps_towards_targets():
    net = _small_cnn()
    x = _images(4, (3, 12, 12), seed=5)
    y = evaluate.predict(net, x)
    kw = dict(k=20, eps=16 / 255, step_size=4 / 255, steps=3, n_steps_ig=6, beta=10.0, seed=1)
    net.train()
    df, maps = evaluate.targeted_attribution_robustness(net, x, y, return_maps=True, **kw)
    assert net.training and all(p.grad is None for p in net.parameters())
    assert df["index"].tolist() == [0, 1, 2, 3] and (df.target_index != df["index"]).all()
    assert sorted(df.target_index) == [0, 1, 2, 3]
    assert df.IN.between(0, 1).all() and df.K.between(-1, 1).all() and df.IN_target.between(0, 1).all()
    # the attack keeps the best label-preserving iterate: never farther from the target than the clean image
    assert (df.distance <= df.distance_before + 1e-9).all() and (df.distance < df.distance_before).any()
    assert (df.IN[~df.success] == 1.0).all() and (df.step[df.success] >= 1).all()
    assert float((maps["x_adv"] - maps["x"]).abs().max()) <= 16 / 255 + 1e-6
    assert torch.equal(maps["target"], maps["original"][torch.tensor(df.target_index.tolist())])
    assert maps["attacked"].shape == (4, 12, 12)
    assert maps["original"].flatten(1).sum(1).tolist() == pytest.approx([144.0] * 4, rel=1e-4)
    # the map of x_adv is what IN / K compare with the clean map
    m1 = evaluate.attribution_maps(net, maps["x_adv"], y, "ig", n_steps_ig=6)
    from artlib import metrics
    assert metrics.topk_intersection(maps["original"].flatten(1), m1, 20).tolist() == \
        pytest.approx(df.IN.tolist(), abs=1e-6)
    # eps = 0: nothing moves
    df0 = evaluate.targeted_attribution_robustness(net, x, y, **{**kw, "eps": 0.0})
    assert (df0.IN == 1.0).all() and (df0.K - 1.0).abs().max() < 1e-9
    with pytest.raises(ValueError, match="k must be"):
        evaluate.targeted_attribution_robustness(net, x, y, k=145)
    with pytest.raises(ValueError, match="at least 2"):
        evaluate.targeted_attribution_robustness(net, x[:1], y[:1])


def test_attack_accuracy_equals_transfer_to_itself_and_spatial_result_tuple():
    from functools import partial
    from artlib import attacks
    net = _small_cnn()
    x = _images(5, (3, 12, 12), seed=6)
    y = evaluate.predict(net, x)
    fn = partial(attacks.pgd, eps=8 / 255, step_size=2 / 255, steps=3, seed=0)
    assert evaluate.attack_accuracy(net, x, y, fn) == attacks.transfer_accuracy(net, net, x, y, fn)
    rot = partial(attacks.spatial_attack, rotations=[0.0], translations=[0.0])     # identity transform
    assert evaluate.attack_accuracy(net, x, y, rot) == pytest.approx(evaluate.accuracy(net, x, y))


def test_accuracy_vs_eps_endpoints_and_monotone_on_linear_model():
    net = Linear(k=4, seed=2)
    x = _images(12, seed=8)
    y = evaluate.predict(net, x)                                      # all correct at eps 0
    df = evaluate.accuracy_vs_eps({"lin": net}, x, y, [0.0, 1 / 255, 4 / 255, 1.0], steps=10)
    assert list(df.columns) == ["model", "norm", "eps", "accuracy"] and df.eps.tolist()[0] == 0.0
    acc = df.accuracy.tolist()
    assert acc[0] == 1.0 and acc[-1] == 0.0                          # eps 1 reaches any image in [0, 1]^n
    assert all(a >= b for a, b in zip(acc, acc[1:]))
    # each point is robust_accuracy with step 0.25 * eps
    assert acc[2] == evaluate.robust_accuracy(net, x, y, eps=4 / 255, step_size=1 / 255, steps=10)
    d2 = evaluate.accuracy_vs_eps(net, x, y, [0.5], norm="l2", steps=5)
    assert d2.model.tolist() == ["model"] and d2.norm.tolist() == ["l2"]
    with pytest.raises(ValueError, match="norm"):
        evaluate.accuracy_vs_eps(net, x, y, [0.1], norm="l1")
    with pytest.raises(ValueError, match="eps_values"):
        evaluate.accuracy_vs_eps(net, x, y, [-0.1])


def test_transfer_matrix_matches_transfer_accuracy():
    from functools import partial
    from artlib import attacks
    a, b = _small_cnn(seed=0), _small_cnn(seed=1)
    x = _images(6, (3, 12, 12), seed=9)
    y = evaluate.predict(a, x)
    fn = partial(attacks.pgd, eps=8 / 255, step_size=2 / 255, steps=3, seed=0)
    df = evaluate.transfer_matrix({"A": a, "B": b}, x, y, fn)
    assert list(df.columns) == ["model", "A", "B", "clean"] and df.model.tolist() == ["A", "B"]
    for i, tgt in enumerate([a, b]):
        for src_name, src in (("A", a), ("B", b)):
            assert df.loc[i, src_name] == attacks.transfer_accuracy(src, tgt, x, y, fn)
    assert df.loc[0, "clean"] == 1.0
    with pytest.raises(ValueError, match="attack_fn must return"):
        evaluate.transfer_matrix({"A": a}, x, y, lambda m, xx, yy: xx[:1])


def test_summarize_robustness_official_skips_images_without_a_label_preserving_iterate():
    import pandas as pd
    df = pd.DataFrame({"IN": [0.5, 1.0, 0.3], "K": [0.2, 1.0, 0.4], "success": [True, False, True], "step": [3, 0, 1]})
    paper = evaluate.summarize_robustness(df)
    assert paper["n"] == 3 and paper["skipped"] == 0 and paper["IN (%)"] == pytest.approx(100 * 1.8 / 3)
    official = evaluate.summarize_robustness(df, "official")
    assert official["n"] == 2 and official["skipped"] == 1
    assert official["IN (%)"] == pytest.approx(40.0) and official["K (%)"] == pytest.approx(30.0)
    with pytest.raises(ValueError, match="choices"):
        evaluate.summarize_robustness(df, "released")
